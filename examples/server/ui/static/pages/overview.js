// Overview: decision statistics (GET /v1/admin/stats), the live audit
// stream (GET /v1/audit/stream), budget burn per team (GET /v1/budgets) and
// dependency health (GET /health/ready), refreshed while the page is open.

import { ApiError, get, list, sse } from '../api.js';
import { budgetBar, hbars, perMinute } from '../charts.js';
import { errorText, field, fill, h, setStatus, statusLine, when } from '../dom.js';

export const title = 'Overview';

const REFRESH_MS = 10000;

// decision reasons that allow (every other reason is a denial's)
const ALLOWING = new Set(['ALLOWED', 'ATTESTED', 'OK']);

function kpi(label, value) {
  return h('div', {}, h('dt', { text: label }), h('dd', { text: String(value) }));
}

function pct(n, d) {
  return d ? ((100 * n) / d).toFixed(1) + '%' : '0%';
}

export function render(main, ctx) {
  const ctl = new AbortController();
  const windowSel = h('select', {}, ['5m', '15m', '1h', '6h', '24h'].map((w) => h('option', { value: w, text: w, selected: w === '15m' })));
  const statsStatus = statusLine();
  const kpis = h('dl', { class: 'kpis' });
  const minuteBox = h('div');
  const reasonBox = h('div');
  const surfaceBox = h('div');
  const scopeNote = h('p', { class: 'hint' });
  const burnBox = h('div');
  const healthBox = h('div');
  const liveStatus = statusLine();
  const liveList = h('ol', { class: 'live', 'aria-live': 'polite', 'aria-label': 'Latest decisions', id: 'live-decisions' });

  fill(
    main,
    h('h1', { text: 'Overview' }),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'ov-stats' },
      h('h2', { id: 'ov-stats', text: 'Decisions' }),
      h('div', { class: 'row' }, field('Window', windowSel), h('button', { type: 'button', class: 'secondary', text: 'Refresh', onclick: () => refresh() })),
      statsStatus,
      kpis,
      scopeNote,
    ),
    h(
      'div',
      { class: 'grid' },
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'ov-min' },
        h('h2', { id: 'ov-min', text: 'Decisions per minute' }),
        h('p', { class: 'legend' }, h('span', {}, h('span', { class: 'sw ok' }), 'allowed'), h('span', {}, h('span', { class: 'sw denied' }), 'denied')),
        minuteBox,
      ),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'ov-reason' },
        h('h2', { id: 'ov-reason', text: 'Decisions by reason' }),
        h('p', { class: 'legend' }, h('span', {}, h('span', { class: 'sw ok' }), 'allowing'), h('span', {}, h('span', { class: 'sw denied' }), 'denial reasons')),
        reasonBox,
      ),
      h('section', { class: 'card', 'aria-labelledby': 'ov-surface' }, h('h2', { id: 'ov-surface', text: 'Decisions by surface' }), surfaceBox),
      h('section', { class: 'card', 'aria-labelledby': 'ov-burn' }, h('h2', { id: 'ov-burn', text: 'Budget burn per team' }), burnBox),
      h('section', { class: 'card', 'aria-labelledby': 'ov-health' }, h('h2', { id: 'ov-health', text: 'Dependencies' }), healthBox),
    ),
    h('section', { class: 'card', 'aria-labelledby': 'ov-live' }, h('h2', { id: 'ov-live', text: 'Live decisions' }), liveStatus, liveList),
  );

  async function loadStats() {
    if (!ctx.can('admin.stats', 'read')) {
      setStatus(statsStatus, 'info', 'Your role cannot read statistics (admin.stats).');
      return;
    }
    const st = await get('/v1/admin/stats?window=' + encodeURIComponent(windowSel.value), { signal: ctl.signal });
    const d = st.decisions || {};
    const by = d.by_outcome || {};
    const lat = st.latency_ms || {};
    const auth = st.authorize_latency_ms || lat;
    const ms = (x) => (Number(x) || 0).toFixed(Number(x) >= 10 ? 0 : 2) + ' ms';
    const denied = by.denied || 0;
    fill(
      kpis,
      kpi('Decisions', d.total || 0),
      kpi('Denied', `${denied} (${pct(denied, d.total || 0)})`),
      kpi('Errors', by.error || 0),
      kpi('p50 authorize', ms(auth.p50)),
      kpi('p95 authorize', ms(auth.p95)),
      kpi('p95 whole decision', ms(lat.p95)),
      kpi('Rate-limit denials', st.rate_limit_denials || 0),
      kpi('Budget denials', st.budget_denials || 0),
    );
    scopeNote.textContent = `${when(st.from)} to ${when(st.to)}; counts are ${st.scope === 'cluster' ? "every replica's" : "this replica's only"} (${st.scope || 'replica'}).`;
    fill(minuteBox, perMinute(st.per_minute || []));
    const reasons = Object.entries(d.by_reason || {}).sort((a, b) => b[1] - a[1]);
    fill(reasonBox, hbars('Decisions by reason', reasons, (k) => ALLOWING.has(k)));
    fill(surfaceBox, hbars('Decisions by surface', Object.entries(d.by_surface || {}).sort((a, b) => b[1] - a[1]), () => true));
    setStatus(statsStatus, 'ok', 'Updated ' + when(new Date()));
  }

  async function loadBurn() {
    if (!ctx.can('admin.budgets', 'read')) {
      fill(burnBox, h('p', { class: 'empty', text: 'Your role cannot read budgets.' }));
      return;
    }
    const items = (await list('/v1/budgets')).filter((b) => !b.scope.startsWith('key:'));
    fill(
      burnBox,
      items.length
        ? items.map((b) => {
            const used = Number(b.used_usd);
            const limit = Number(b.limit_usd);
            return h(
              'div',
              { class: 'field' },
              h('span', { class: 'mono', text: `${b.scope}: ${b.used_usd} used, ${b.reserved_usd} reserved of ${b.limit_usd} USD (${pct(used, limit)}, ${b.period}, ${b.mode})` }),
              budgetBar(b.scope, used, Number(b.reserved_usd), Number(b.remaining_usd), limit),
            );
          })
        : h('p', { class: 'empty', text: 'No team budgets.' }),
    );
  }

  async function loadHealth() {
    const resp = await fetch('/health/ready', { signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
    let body = {};
    try {
      body = await resp.json();
    } catch {
      body = {};
    }
    const checks = body.checks || body.dependencies || {};
    const rows = Object.entries(checks).map(([name, v]) => {
      const ok = typeof v === 'string' ? v === 'ok' : v && (v.ok === true || v.status === 'ok');
      const detail = typeof v === 'string' ? v : v && (v.error || v.status || JSON.stringify(v));
      return h('li', {}, h('span', { class: 'badge ' + (ok ? 'ok' : 'bad'), text: ok ? 'ok' : 'failing' }), ' ', h('strong', { text: name }), ' ', detail && detail !== 'ok' ? detail : '');
    });
    fill(
      healthBox,
      h('p', {}, 'Ready: ', h('span', { class: 'badge ' + (resp.ok ? 'ok' : 'bad'), text: resp.ok ? 'yes' : 'no (' + resp.status + ')' })),
      rows.length ? h('ul', { class: 'live' }, rows) : h('pre', { text: JSON.stringify(body, null, 2) }),
    );
  }

  const failures = {};
  async function guarded(name, fn, statusEl) {
    try {
      await fn();
      delete failures[name];
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (err instanceof ApiError && err.status === 401) throw err;
      failures[name] = errorText(err);
      if (statusEl) setStatus(statusEl, 'bad', failures[name]);
    }
  }

  let timer = 0;
  function refresh() {
    clearTimeout(timer);
    Promise.all([guarded('stats', loadStats, statsStatus), guarded('burn', loadBurn, null), guarded('health', loadHealth, null)]).finally(() => {
      if (!ctl.signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
    });
  }
  windowSel.addEventListener('change', refresh);

  // The live stream: each audit event as it is appended on any replica;
  // reconnects after the last event id it saw (no gap, no duplicate).
  let lastId = '';
  let debounce = 0;
  async function live() {
    if (!ctx.can('admin.audit', 'read')) {
      setStatus(liveStatus, 'info', 'Your role cannot read the audit stream (admin.audit).');
      return;
    }
    let backoff = 1000;
    while (!ctl.signal.aborted) {
      try {
        setStatus(liveStatus, 'busy', 'Connecting…');
        await sse('/v1/audit/stream', {
          signal: ctl.signal,
          lastEventId: lastId,
          onOpen: () => {
            backoff = 1000;
            setStatus(liveStatus, 'ok', 'Live');
          },
          onEvent: (e) => {
            if (e.event !== 'audit') return;
            lastId = e.id;
            let ev;
            try {
              ev = JSON.parse(e.data);
            } catch {
              return;
            }
            const p = ev.principal || {};
            const http = ev.http || {};
            liveList.prepend(
              h(
                'li',
                { class: 'decision', 'data-surface': ev.surface_id || '', 'data-outcome': ev.outcome || '' },
                h('span', { class: 'badge ' + (ev.outcome || ''), text: ev.outcome || '?' }),
                ' ',
                when(ev.ts),
                ' ',
                h('strong', { text: ev.surface_id || '' }),
                ' ',
                `${http.method || ''} ${http.path || ''} ${http.status_code || ''}`,
                ' · ',
                h('span', { class: 'mono', text: p.principal_id || '' }),
              ),
            );
            while (liveList.children.length > 50) liveList.lastChild.remove();
            clearTimeout(debounce);
            debounce = setTimeout(() => guarded('stats', loadStats, statsStatus), 1000);
          },
        });
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 400 || err.status === 404)) {
          setStatus(liveStatus, 'bad', errorText(err));
          if (err.status === 401) throw err;
          return;
        }
        setStatus(liveStatus, 'bad', 'Stream interrupted (' + errorText(err) + '); reconnecting');
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 30000);
    }
  }

  refresh();
  live();
  return () => {
    ctl.abort();
    clearTimeout(timer);
    clearTimeout(debounce);
  };
}
