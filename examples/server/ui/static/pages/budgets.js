// Budgets and limits: every budget (per key and per team) with used /
// reserved / remaining bars, mode and period, rate-limit and budget denials
// from the statistics, and editing a budget (PUT /v1/budgets/{scope}).

import { get, json, list } from '../api.js';
import { budgetBar } from '../charts.js';
import { errorText, field, fill, h, setStatus, statusLine } from '../dom.js';

export const title = 'Budgets & limits';

const MODES = ['hard', 'warn', 'off'];

export function render(main, ctx) {
  const st = statusLine();
  const box = h('div', { id: 'budget-list' });
  const limits = h('dl', { class: 'kpis' });
  const mayWrite = ctx.can('admin.budgets', 'write');

  const nScope = h('input', { type: 'text', spellcheck: 'false', placeholder: 'team:team-a or key:did:key:z6Mk…', required: true });
  const nLimit = h('input', { type: 'text', inputmode: 'decimal', placeholder: '100.00', required: true });
  const nMode = h('select', {}, MODES.map((m) => h('option', { value: m, text: m })));
  const nPeriod = h('input', { type: 'text', value: 'monthly', required: true });
  const nStatus = statusLine();

  fill(
    main,
    h('h1', { text: 'Budgets and limits' }),
    h('section', { class: 'card', 'aria-labelledby': 'bu-lim' }, h('h2', { id: 'bu-lim', text: 'Limit denials (last hour)' }), limits),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'bu-list' },
      h('h2', { id: 'bu-list', text: 'Budgets' }),
      h('p', { class: 'legend' }, h('span', {}, h('span', { class: 'sw used' }), 'used'), h('span', {}, h('span', { class: 'sw reserved' }), 'reserved (in flight)'), h('span', {}, h('span', { class: 'sw free' }), 'remaining')),
      st,
      box,
    ),
    mayWrite &&
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'bu-new' },
        h('h2', { id: 'bu-new', text: 'Set a budget' }),
        h(
          'form',
          { onsubmit: (e) => (e.preventDefault(), put(nScope.value.trim(), nLimit.value.trim(), nMode.value, nPeriod.value.trim(), nStatus)) },
          h('div', { class: 'row' }, field('Scope', nScope, 'team:<team id> or key:<agent DID>'), field('Limit (USD)', nLimit), field('Mode', nMode), field('Period', nPeriod, 'daily, monthly, lifetime or rolling:<duration>')),
          h('button', { type: 'submit', text: 'Save budget' }),
        ),
        nStatus,
      ),
  );

  async function put(scope, limit, mode, period, statusEl) {
    setStatus(statusEl, 'busy', 'Saving…');
    try {
      await json('PUT', '/v1/budgets/' + encodeURIComponent(scope), { body: { limit_usd: limit, mode, period } });
      setStatus(statusEl, 'ok', `Saved budget ${scope}: ${limit} USD, ${mode}, ${period}.`);
      await load();
      return true;
    } catch (err) {
      setStatus(statusEl, 'bad', errorText(err));
      return false;
    }
  }

  function editor(b, row) {
    const limit = h('input', { type: 'text', inputmode: 'decimal', value: b.limit_usd, required: true });
    const mode = h('select', {}, MODES.map((m) => h('option', { value: m, text: m, selected: m === b.mode })));
    const period = h('input', { type: 'text', value: b.period, required: true });
    const es = statusLine();
    const form = h(
      'form',
      {
        class: 'budget-edit',
        'aria-label': `Edit budget ${b.scope}`,
        onsubmit: async (e) => {
          e.preventDefault();
          await put(b.scope, limit.value.trim(), mode.value, period.value.trim(), es);
        },
      },
      h('div', { class: 'row' }, field(`Limit (USD) of ${b.scope}`, limit), field('Mode', mode), field('Period', period)),
      h('div', { class: 'row' }, h('button', { type: 'submit', text: 'Save' }), h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => (form.remove(), row.querySelector('button.edit').focus()) })),
      es,
    );
    row.append(form);
    limit.focus();
  }

  async function load() {
    setStatus(st, 'busy', 'Loading…');
    try {
      const items = await list('/v1/budgets');
      fill(
        box,
        items.length
          ? items.map((b) => {
              const row = h(
                'div',
                { class: 'field budget', 'data-scope': b.scope },
                h('strong', { text: b.scope }),
                h('span', { class: 'mono', text: `limit ${b.limit_usd} · used ${b.used_usd} · reserved ${b.reserved_usd} · remaining ${b.remaining_usd} USD · mode ${b.mode} · period ${b.period}${b.usage_known === false ? ' · usage unknown (principal not registered)' : ''}` }),
                budgetBar(b.scope, Number(b.used_usd), Number(b.reserved_usd), Number(b.remaining_usd), Number(b.limit_usd)),
              );
              if (Number(b.used_usd) + Number(b.reserved_usd) > Number(b.limit_usd)) row.append(h('span', { class: 'badge bad', text: 'over limit' }));
              if (mayWrite) {
                row.append(
                  h('div', {}, h('button', { type: 'button', class: 'secondary edit', 'aria-label': `Edit budget ${b.scope}`, text: 'Edit', onclick: () => row.querySelector('form') || editor(b, row) })),
                );
              }
              return row;
            })
          : h('p', { class: 'empty', text: 'No budgets set.' }),
      );
      setStatus(st, 'info', `${items.length} budget(s).`);
    } catch (err) {
      setStatus(st, 'bad', errorText(err));
    }
  }

  async function loadLimits() {
    if (!ctx.can('admin.stats', 'read')) return;
    try {
      const s = await get('/v1/admin/stats?window=1h');
      fill(
        limits,
        h('div', {}, h('dt', { text: 'Rate-limit denials' }), h('dd', { text: String(s.rate_limit_denials || 0) })),
        h('div', {}, h('dt', { text: 'Budget denials' }), h('dd', { text: String(s.budget_denials || 0) })),
        h('div', {}, h('dt', { text: 'Counted over' }), h('dd', { text: s.scope === 'cluster' ? 'every replica' : 'this replica' })),
      );
    } catch (err) {
      fill(limits, h('p', { class: 'status bad', text: errorText(err) }));
    }
  }

  load();
  loadLimits();
}
