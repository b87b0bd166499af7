// Agents and capabilities: principals with their teams and keys, issuing a
// capability (the token is shown once, never stored), issued capabilities
// as an issuer → subject tree, delegation chain inspection, and revocation
// with confirmation.

import { json, list } from '../api.js';
import { errorText, field, fill, h, setStatus, short, statusLine, table, when } from '../dom.js';

export const title = 'Agents & capabilities';

export function render(main, ctx) {
  const teamFilter = h('input', { type: 'text', spellcheck: 'false', placeholder: 'team id' });
  const prStatus = statusLine();
  const prBox = h('div');

  const subject = h('input', { type: 'text', spellcheck: 'false', required: true, list: 'principal-dids', placeholder: 'did:key:z6Mk…' });
  const dids = h('datalist', { id: 'principal-dids' });
  const tool = h('input', { type: 'text', spellcheck: 'false', required: true, placeholder: 'files' });
  const actions = h('input', { type: 'text', spellcheck: 'false', required: true, placeholder: 'read, write' });
  const expires = h('input', { type: 'number', min: '60', max: '2592000', step: '1', value: '3600', required: true });
  const audience = h('input', { type: 'text', spellcheck: 'false', placeholder: 'this server' });
  const readOnly = h('input', { type: 'checkbox', id: 'issue-ro' });
  const issueStatus = statusLine();
  const tokenBox = h('div', { id: 'issued-token' });

  const capStatus = statusLine();
  const revokeStatus = h('p', { role: 'status', class: 'status', id: 'revoke-status' });
  const capBox = h('div');
  const treeBox = h('div');
  const showRevoked = h('input', { type: 'checkbox', id: 'show-revoked' });

  const chain = h('textarea', { rows: '3', spellcheck: 'false', id: 'chain-input' });
  const chainStatus = h('p', { role: 'status', class: 'status', id: 'chain-status' });
  const chainTree = h('div');

  const dialog = h('dialog', { 'aria-labelledby': 'revoke-title', id: 'revoke-dialog' });
  const mayWrite = ctx.can('admin.capabilities', 'write');

  fill(
    main,
    h('h1', { text: 'Agents and capabilities' }),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'ag-pr' },
      h('h2', { id: 'ag-pr', text: 'Principals' }),
      h('form', { class: 'row', onsubmit: (e) => (e.preventDefault(), loadPrincipals()) }, field('Team', teamFilter), h('div', { class: 'field' }, h('button', { type: 'submit', class: 'secondary', text: 'Filter' }))),
      prStatus,
      prBox,
    ),
    mayWrite &&
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'ag-issue' },
        h('h2', { id: 'ag-issue', text: 'Issue a capability' }),
        h(
          'form',
          { id: 'issue-form', onsubmit: (e) => (e.preventDefault(), issue()) },
          h('div', { class: 'row' }, field('Subject (agent DID)', subject), dids, field('Tool', tool), field('Actions', actions, 'comma-separated')),
          h('div', { class: 'row' }, field('Expires in (seconds)', expires), field('Audience', audience, 'empty: this server'), h('div', { class: 'field inline' }, readOnly, h('label', { for: 'issue-ro', text: 'Read-only' }))),
          h('button', { type: 'submit', text: 'Issue capability' }),
        ),
        issueStatus,
        tokenBox,
      ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'ag-caps' },
      h('h2', { id: 'ag-caps', text: 'Issued capabilities' }),
      h('div', { class: 'field inline' }, showRevoked, h('label', { for: 'show-revoked', text: 'Show revoked' })),
      revokeStatus,
      capStatus,
      capBox,
      h('h2', { text: 'Issuers and subjects' }),
      treeBox,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'ag-chain' },
      h('h2', { id: 'ag-chain', text: 'Inspect a delegation chain' }),
      h('form', { onsubmit: (e) => (e.preventDefault(), inspect()) }, field('Delegation chain', chain, 'the chain an agent presents (tokens joined as the server expects)'), h('button', { type: 'submit', class: 'secondary', id: 'verify-chain', text: 'Verify chain' })),
      chainStatus,
      chainTree,
    ),
    dialog,
  );
  showRevoked.addEventListener('change', loadCaps);

  async function loadPrincipals() {
    setStatus(prStatus, 'busy', 'Loading…');
    try {
      const t = teamFilter.value.trim();
      const items = await list('/v1/principals' + (t ? '?team=' + encodeURIComponent(t) : ''));
      fill(dids, items.map((p) => h('option', { value: p.did || p.principal_id })));
      fill(
        prBox,
        table(
          'Registered agent principals',
          [
            { title: 'Principal (key)', cell: (p) => h('code', { text: p.did || p.principal_id }) },
            { title: 'Team', cell: (p) => p.team_id || '' },
            { title: 'Registered', cell: (p) => when(p.created_at) },
          ],
          items,
          'No principals registered.',
        ),
      );
      setStatus(prStatus, 'info', `${items.length} principal(s).`);
    } catch (err) {
      setStatus(prStatus, 'bad', errorText(err));
    }
  }

  async function issue() {
    const acts = actions.value.split(',').map((a) => a.trim()).filter(Boolean);
    const body = { subject: subject.value.trim(), grants: [{ tool: tool.value.trim(), actions: acts }], expires_in_seconds: Number(expires.value), read_only: readOnly.checked };
    if (audience.value.trim()) body.audience = audience.value.trim();
    setStatus(issueStatus, 'busy', 'Issuing…');
    fill(tokenBox);
    try {
      const tok = await json('POST', '/v1/capabilities', { body });
      const area = h('textarea', { readonly: true, rows: '4', id: 'token-value', 'aria-label': 'Capability token (shown once)' });
      area.value = tok.token;
      const copy = h('button', {
        type: 'button',
        class: 'secondary',
        text: 'Copy token',
        onclick: async () => {
          area.select();
          try {
            await navigator.clipboard.writeText(area.value);
            copy.textContent = 'Copied';
          } catch {
            copy.textContent = 'Select and copy by hand';
          }
        },
      });
      const dismiss = h('button', { type: 'button', class: 'secondary', text: 'Done (forget the token)', onclick: () => fill(tokenBox) });
      fill(
        tokenBox,
        h('div', { class: 'token' }, h('p', {}, h('strong', { text: 'Shown once. ' }), 'The server keeps only its hash (', h('code', { text: short(tok.capability_hash, 20) }), '); copy it now.'), area, h('div', { class: 'row' }, copy, dismiss)),
      );
      tokenBox.dataset.hash = tok.capability_hash;
      setStatus(issueStatus, 'ok', `Issued capability ${short(tok.capability_hash, 20)}, expires ${when(new Date(tok.exp * 1000))}.`);
      area.focus();
      loadCaps();
    } catch (err) {
      setStatus(issueStatus, 'bad', errorText(err));
    }
  }

  const known = new Map(); // capability hash → its record, as last listed

  async function loadCaps() {
    setStatus(capStatus, 'busy', 'Loading…');
    try {
      const items = await list('/v1/capabilities' + (showRevoked.checked ? '' : '?revoked=false'));
      for (const c of items) known.set(c.capability_hash, c);
      fill(
        capBox,
        table(
          'Issued capabilities (tokens are never listed)',
          [
            { title: 'Hash', cell: (c) => h('code', { title: c.capability_hash, text: short(c.capability_hash, 16) }) },
            { title: 'Subject', cell: (c) => h('code', { title: c.subject, text: short(c.subject, 28) }) },
            { title: 'Grants', cell: (c) => (c.grants || []).map((g) => `${g.tool}: ${(g.actions || []).join(', ')}`).join('; ') + (c.read_only ? ' (read-only)' : '') },
            { title: 'Expires', cell: (c) => when(c.expires_at) },
            { title: 'State', cell: (c) => h('span', { class: 'badge ' + (c.revoked ? 'bad' : 'ok'), text: c.revoked ? 'revoked ' + when(c.revoked_at) : 'active' }) },
            {
              title: 'Action',
              cell: (c) =>
                c.revoked || !mayWrite
                  ? ''
                  : h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke capability ${c.capability_hash.slice(0, 12)} of ${c.subject}`, 'data-hash': c.capability_hash, text: 'Revoke', onclick: (e) => confirmRevoke(c, e.currentTarget) }),
            },
          ],
          items,
          'No capabilities issued.',
        ),
      );
      drawTree(items);
      setStatus(capStatus, 'info', `${items.length} capabilit${items.length === 1 ? 'y' : 'ies'}.`);
    } catch (err) {
      setStatus(capStatus, 'bad', errorText(err));
    }
  }

  function drawTree(items) {
    const byIssuer = new Map();
    for (const c of items) {
      if (!byIssuer.has(c.issuer)) byIssuer.set(c.issuer, []);
      byIssuer.get(c.issuer).push(c);
    }
    const subjects = new Set(items.map((c) => c.subject));
    const roots = [...byIssuer.keys()].filter((i) => !subjects.has(i));
    const seen = new Set();
    const node = (did, depth) => {
      const kids = seen.has(did) || depth > 8 ? [] : byIssuer.get(did) || [];
      seen.add(did);
      return h(
        'li',
        { role: 'treeitem', 'aria-expanded': kids.length ? 'true' : undefined },
        h('code', { text: short(did, 40) }),
        kids.length ? h('ul', { role: 'group' }, kids.map((c) => h('li', { role: 'treeitem' }, `${(c.grants || []).map((g) => g.tool + ':' + (g.actions || []).join('+')).join(' ')} → `, node(c.subject, depth + 1)))) : '',
      );
    };
    fill(treeBox, roots.length ? h('ul', { class: 'tree', role: 'tree', 'aria-label': 'Capabilities by issuer' }, roots.map((r) => node(r, 0))) : h('p', { class: 'empty', text: 'No capabilities.' }));
  }

  function confirmRevoke(c, opener) {
    const st = statusLine();
    const cancel = h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => dialog.close() });
    const ok = h('button', {
      type: 'button',
      class: 'danger',
      id: 'confirm-revoke',
      text: 'Revoke now',
      onclick: async () => {
        ok.disabled = true;
        try {
          await json('POST', '/v1/capabilities/revocations', { body: { capability_hash: c.capability_hash } });
          dialog.close();
          setStatus(revokeStatus, 'ok', `Revoked ${short(c.capability_hash, 20)}.`);
          if (tokenBox.dataset.hash === c.capability_hash) fill(tokenBox); // a revoked token is of no use
          loadCaps();
        } catch (err) {
          ok.disabled = false;
          setStatus(st, 'bad', errorText(err));
        }
      },
    });
    fill(
      dialog,
      h('h2', { id: 'revoke-title', text: 'Revoke this capability?' }),
      h('p', {}, 'Capability ', h('code', { text: c.capability_hash }), ' of ', h('code', { text: c.subject }), ' stops working on every replica at once. This cannot be undone.'),
      h('div', { class: 'row' }, cancel, ok),
      st,
    );
    dialog.onclose = () => opener && opener.isConnected && opener.focus();
    dialog.showModal();
    cancel.focus();
  }

  async function inspect() {
    setStatus(chainStatus, 'busy', 'Verifying…');
    fill(chainTree);
    try {
      const r = await json('POST', '/v1/capabilities/delegations', { body: { chain: chain.value.trim() } });
      const hashes = r.capability_hashes || [];
      let tree = h('li', { role: 'treeitem', class: 'chain-leaf' }, 'used by ', h('code', { text: r.subject }));
      for (let i = hashes.length - 1; i >= 0; i--) {
        const rec = known.get(hashes[i]);
        const what = rec ? ` → ${rec.subject} (${(rec.grants || []).map((g) => g.tool + ': ' + (g.actions || []).join(', ')).join('; ')}${rec.revoked ? ', REVOKED' : ''})` : i === 0 ? ' (not issued by this server\'s admin API)' : ' (delegated by the previous subject)';
        tree = h('li', { role: 'treeitem', 'aria-expanded': 'true' }, `${i === 0 ? 'root' : 'delegation ' + i}: capability `, h('code', { title: hashes[i], text: short(hashes[i], 20) }), what, h('ul', { role: 'group' }, tree));
      }
      fill(chainTree, h('ul', { class: 'tree', role: 'tree', 'aria-label': 'Delegation chain' }, tree));
      setStatus(chainStatus, r.valid ? 'ok' : 'bad', r.valid ? `Valid chain of depth ${r.depth}.` : 'The chain does not verify.');
    } catch (err) {
      setStatus(chainStatus, 'bad', errorText(err));
    }
  }

  loadPrincipals();
  loadCaps();
}
