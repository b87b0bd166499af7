// A2A: relay sessions and groups as metadata only (ids, participants,
// state, frame counts, event chain head and whether the server verified the
// chain). Frame payloads are end-to-end encrypted and never fetched.

import { get, list } from '../api.js';
import { errorText, fill, h, setStatus, short, statusLine, table, when } from '../dom.js';

export const title = 'A2A';

function chainBadge(o) {
  const ok = o.chain_verified === true;
  return h('span', { class: 'badge ' + (ok ? 'ok' : 'bad'), text: ok ? 'chain verified' : 'chain NOT verified' });
}

function participants(o) {
  const p = o.participants || o.members || [];
  return (Array.isArray(p) ? p : [])
    .map((x) => (typeof x === 'string' ? x : x.did || x.principal_id || ''))
    .map((x) => short(x, 24))
    .join(', ');
}

function frames(o) {
  if (typeof o.frame_count === 'number') return String(o.frame_count);
  if (o.frame_counts && typeof o.frame_counts === 'object') return Object.entries(o.frame_counts).map(([k, v]) => `${k}: ${v}`).join(', ');
  if (typeof o.frames === 'number') return String(o.frames);
  return '';
}

export function render(main) {
  const sStatus = statusLine();
  const sBox = h('div');
  const gStatus = statusLine();
  const gBox = h('div');
  const detail = h('section', { class: 'card', hidden: true, 'aria-labelledby': 'a2a-detail' });

  fill(
    main,
    h('h1', { text: 'Agent-to-agent' }),
    h('p', { class: 'hint', text: 'Metadata only: frames are end-to-end encrypted between agents; this page never fetches their payloads.' }),
    h('section', { class: 'card', 'aria-labelledby': 'a2a-s' }, h('h2', { id: 'a2a-s', text: 'Sessions' }), sStatus, sBox),
    h('section', { class: 'card', 'aria-labelledby': 'a2a-g' }, h('h2', { id: 'a2a-g', text: 'Groups' }), gStatus, gBox),
    detail,
  );

  async function show(kind, id) {
    try {
      const o = await get(`/v1/admin/a2a/${kind}/${encodeURIComponent(id)}`);
      const safe = { ...o };
      delete safe.payload;
      delete safe.ciphertext;
      fill(detail, h('h2', { id: 'a2a-detail', tabindex: '-1', text: `${kind === 'sessions' ? 'Session' : 'Group'} ${id}` }), h('p', {}, chainBadge(o), ' frames: ', frames(o) || '0'), h('pre', { text: JSON.stringify(safe, null, 2) }));
      detail.hidden = false;
      detail.querySelector('h2').focus();
    } catch (err) {
      fill(detail, h('p', { class: 'status bad', text: errorText(err) }));
      detail.hidden = false;
    }
  }

  async function load(kind, statusEl, boxEl) {
    setStatus(statusEl, 'busy', 'Loading…');
    try {
      const items = await list(`/v1/admin/a2a/${kind}`);
      fill(
        boxEl,
        table(
          kind === 'sessions' ? 'A2A sessions' : 'A2A groups',
          [
            { title: 'Id', cell: (o) => h('code', { text: short(o.id || o.session_id || o.group_id, 20) }) },
            { title: 'Participants', cell: participants },
            { title: 'State', cell: (o) => o.state || '' },
            { title: kind === 'sessions' ? 'Frames' : 'Members', cell: (o) => (kind === 'sessions' ? frames(o) : String(o.member_count ?? (o.members || []).length)) },
            { title: 'Events', cell: (o) => String(o.event_count ?? '') },
            { title: 'Chain', cell: chainBadge },
            { title: 'Updated', cell: (o) => when(o.updated_at || o.created_at) },
            { title: 'Detail', cell: (o) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Show ${kind === 'sessions' ? 'session' : 'group'} ${o.id || o.session_id || o.group_id}`, text: 'Show', onclick: () => show(kind, o.id || o.session_id || o.group_id) }) },
          ],
          items,
          kind === 'sessions' ? 'No sessions.' : 'No groups.',
        ),
      );
      setStatus(statusEl, 'info', `${items.length} ${kind}.`);
    } catch (err) {
      if (err.status === 404) setStatus(statusEl, 'info', `This server does not serve GET /v1/admin/a2a/${kind}.`);
      else setStatus(statusEl, 'bad', errorText(err));
    }
  }

  load('sessions', sStatus, sBox);
  load('groups', gStatus, gBox);
}
