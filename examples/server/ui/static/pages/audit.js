// Audit explorer: filtered event list (GET /v1/audit/events), an event's
// detail, its inclusion proof verified here in the browser against the
// signed checkpoint with only the log's public key (GET /v1/identity's
// audit_verifier_key), consistency between two checkpoints, and evidence
// bundle export (GET /v1/audit/bundle).

import { get, raw } from '../api.js';
import { errorText, field, fill, h, setStatus, short, statusLine, table, when } from '../dom.js';
import { b64encode, hex, leafHash, verifyCheckpoint, verifyConsistency, verifyInclusion } from '../verify.js';

export const title = 'Audit';

const CP_KEY = 'talos.checkpoints';
const PIN_KEY = 'talos.logkey';

// The log's verifier key, fetched once per page view from the server's
// public identity document.
async function verifierKey() {
  const id = await get('/v1/identity');
  if (!id.audit_verifier_key) throw new Error('the server publishes no audit verifier key');
  return id.audit_verifier_key;
}

async function latestCheckpoint(vkey) {
  const resp = await raw('GET', '/v1/audit/checkpoint', { accept: 'text/plain' });
  return verifyCheckpoint(await resp.text(), vkey);
}

function savedCheckpoints() {
  try {
    const v = JSON.parse(sessionStorage.getItem(CP_KEY) || '[]');
    return Array.isArray(v) ? v.filter((s) => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

function rfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d) ? '' : d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function render(main) {
  // The log key: pinned by the operator (known out of band), or else the
  // one the server publishes.
  const pin = h('input', { type: 'text', id: 'pin-key', spellcheck: 'false', autocomplete: 'off', value: sessionStorage.getItem(PIN_KEY) || '', placeholder: 'origin+hash+key' });
  pin.addEventListener('change', () => {
    const k = pin.value.trim();
    if (k) sessionStorage.setItem(PIN_KEY, k);
    else sessionStorage.removeItem(PIN_KEY);
    vkeyP = null;
  });
  let vkeyP = null;
  const vkey = () => {
    const pinned = pin.value.trim();
    if (pinned) return Promise.resolve(pinned);
    return (vkeyP ||= verifierKey().catch((e) => ((vkeyP = null), Promise.reject(e))));
  };

  // --- filters and list
  const since = h('input', { type: 'datetime-local', step: '1' });
  const until = h('input', { type: 'datetime-local', step: '1' });
  const principal = h('input', { type: 'text', placeholder: 'did:key:z6Mk…', spellcheck: 'false' });
  const surface = h('input', { type: 'text', placeholder: 'kernel.authorize', spellcheck: 'false' });
  const outcome = h('select', {}, ['', 'success', 'denied', 'failure'].map((o) => h('option', { value: o, text: o || 'any' })));
  const listStatus = statusLine();
  const listBox = h('div');
  const more = h('button', { type: 'button', class: 'secondary', text: 'Older events', hidden: true });
  let cursor = '';
  let rows = [];

  // --- detail
  const detail = h('section', { class: 'card', 'aria-labelledby': 'au-detail', id: 'event-detail', hidden: true });

  // --- checkpoints
  const cpStatus = h('p', { role: 'status', class: 'status', id: 'cp-status' });
  const olderSel = h('select', { id: 'cp-older' });
  const newerSel = h('select', { id: 'cp-newer' });
  const consStatus = h('p', { role: 'status', class: 'status', id: 'consistency-status' });
  let checkpoints = []; // verified, oldest first

  // --- bundle
  const bStart = h('input', { type: 'number', min: '0', step: '1', value: '0' });
  const bEnd = h('input', { type: 'number', min: '1', step: '1', value: '1' });
  const bStatus = statusLine();

  fill(
    main,
    h('h1', { text: 'Audit explorer' }),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'au-filter' },
      h('h2', { id: 'au-filter', text: 'Events' }),
      h(
        'form',
        {
          onsubmit: (e) => {
            e.preventDefault();
            cursor = '';
            rows = [];
            load();
          },
        },
        h(
          'div',
          { class: 'row' },
          field('From', since),
          field('Until', until),
          field('Principal', principal),
          field('Surface', surface),
          field('Outcome', outcome, 'applied to the loaded page'),
          h('div', { class: 'field' }, h('button', { type: 'submit', text: 'Search' })),
        ),
      ),
      listStatus,
      listBox,
      more,
    ),
    detail,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'au-cp' },
      h('h2', { id: 'au-cp', text: 'Checkpoints and consistency' }),
      h('p', { class: 'hint', text: 'Each checkpoint is verified here with the log key before it is listed; consistency proves the newer tree extends the older one (no history rewritten).' }),
      field('Pinned log key', pin, "the log's verifier key as you know it from elsewhere; empty: the key the server publishes at /v1/identity"),
      h('button', { type: 'button', class: 'secondary', id: 'record-cp', text: 'Record the latest checkpoint', onclick: () => recordCheckpoint() }),
      cpStatus,
      h('div', { class: 'row' }, field('Older checkpoint', olderSel), field('Newer checkpoint', newerSel), h('div', { class: 'field' }, h('button', { type: 'button', id: 'verify-consistency', text: 'Verify consistency', onclick: () => consistency() }))),
      consStatus,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'au-bundle' },
      h('h2', { id: 'au-bundle', text: 'Evidence bundle' }),
      h('p', { class: 'hint', text: 'Entries [start, end) with inclusion proofs and a signed checkpoint, verifiable offline with the log key alone.' }),
      h('div', { class: 'row' }, field('Start index', bStart), field('End index (exclusive)', bEnd), h('div', { class: 'field' }, h('button', { type: 'button', id: 'export-bundle', text: 'Export bundle', onclick: () => bundle() }))),
      bStatus,
    ),
  );

  function matches(ev) {
    return !outcome.value || ev.outcome === outcome.value;
  }

  function drawList() {
    const shown = rows.filter((r) => matches(r.ev));
    fill(
      listBox,
      table(
        'Audit events, newest first',
        [
          { title: 'Index', cell: (r) => String(r.index) },
          { title: 'Time', cell: (r) => when(r.ev.ts) },
          { title: 'Surface', cell: (r) => r.ev.surface_id },
          { title: 'Outcome', cell: (r) => h('span', { class: 'badge ' + r.ev.outcome, text: r.ev.outcome }) },
          { title: 'Principal', cell: (r) => h('code', { title: (r.ev.principal || {}).principal_id || '', text: short((r.ev.principal || {}).principal_id, 28) }) },
          { title: 'Request', cell: (r) => `${(r.ev.http || {}).method || ''} ${(r.ev.http || {}).path || ''} ${(r.ev.http || {}).status_code || ''}` },
          { title: 'Detail', cell: (r) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Show event ${r.index}`, 'data-index': r.index, text: 'Show', onclick: () => show(r) }) },
        ],
        shown,
        'No events match.',
      ),
    );
    if (shown.length) bEnd.value = String(Math.max(...shown.map((r) => r.index)) + 1);
  }

  async function load() {
    setStatus(listStatus, 'busy', 'Loading…');
    const q = new URLSearchParams({ limit: '100' });
    if (rfc3339(since.value)) q.set('since', rfc3339(since.value));
    if (rfc3339(until.value)) q.set('until', rfc3339(until.value));
    if (principal.value.trim()) q.set('principal_id', principal.value.trim());
    if (surface.value.trim()) q.set('surface_id', surface.value.trim());
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await get('/v1/audit/events?' + q);
      (page.events || []).forEach((ev, i) => rows.push({ ev, index: page.indexes[i] }));
      cursor = page.next_cursor || '';
      more.hidden = !cursor;
      drawList();
      setStatus(listStatus, 'info', `${rows.length} events loaded${cursor ? ' (more available)' : ''}.`);
    } catch (err) {
      setStatus(listStatus, 'bad', errorText(err));
    }
  }
  more.addEventListener('click', load);
  outcome.addEventListener('change', drawList);

  function show(r) {
    const st = h('p', { role: 'status', class: 'status', id: 'proof-status' });
    const pre = h('pre', { text: JSON.stringify(r.ev, null, 2), 'aria-label': 'Event as listed (not yet verified)' });
    const steps = h('ol', { class: 'hint', id: 'proof-steps' });
    const verify = h('button', { type: 'button', id: 'verify-proof', text: 'Verify inclusion proof', onclick: () => prove(r.index, st, steps, pre) });
    fill(
      detail,
      h('h2', { id: 'au-detail', tabindex: '-1', text: `Event ${r.index}` }),
      h('p', {}, h('span', { class: 'badge ' + r.ev.outcome, text: r.ev.outcome }), ' ', r.ev.surface_id, ' · ', when(r.ev.ts), ' · event hash ', h('code', { text: r.ev.event_hash || '' })),
      verify,
      st,
      steps,
      pre,
    );
    detail.hidden = false;
    detail.querySelector('h2').focus();
  }

  // prove fetches the entry's stored bytes, its inclusion proof and the
  // latest signed checkpoint, and checks all of it here: "verified" only
  // after every step passed.
  async function prove(index, st, steps, pre) {
    setStatus(st, 'busy', 'Verifying…');
    fill(steps);
    const step = (t) => steps.append(h('li', { text: t }));
    try {
      const key = await vkey();
      step('log key: ' + key.slice(0, key.indexOf('+')));
      const cp = await latestCheckpoint(key);
      remember(cp);
      step(`checkpoint signature verified (Ed25519): size ${cp.size}, root ${cp.rootB64}`);
      const entryResp = await raw('GET', `/v1/audit/entries/${index}`);
      const entry = new Uint8Array(await entryResp.arrayBuffer());
      const leaf = await leafHash(entry);
      step(`entry ${index}: ${entry.length} bytes, leaf hash ${b64encode(leaf)}`);
      const pf = await get(`/v1/audit/proofs/inclusion?index=${index}&tree_size=${cp.size}`);
      step(`inclusion proof: ${pf.proof.length} hashes`);
      await verifyInclusion(pf.proof, BigInt(index), cp.size, leaf, cp.root);
      let parsed;
      try {
        parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(entry));
      } catch {
        throw new Error('the verified entry is not JSON');
      }
      pre.textContent = JSON.stringify(parsed, null, 2);
      pre.setAttribute('aria-label', 'Event as stored in the log (verified)');
      setStatus(st, 'ok', `Verified: entry ${index} is in the log of size ${cp.size} under the checkpoint signed by ${cp.origin} (leaf ${hex(leaf).slice(0, 16)}…).`);
    } catch (err) {
      setStatus(st, 'bad', 'Verification FAILED: ' + errorText(err));
    }
  }

  // --- checkpoints
  function remember(cp) {
    if (checkpoints.some((c) => c.size === cp.size && c.rootB64 === cp.rootB64)) {
      drawCheckpoints();
      return;
    }
    checkpoints.push(cp);
    checkpoints.sort((a, b) => (a.size < b.size ? -1 : a.size > b.size ? 1 : 0));
    checkpoints = checkpoints.slice(-20);
    sessionStorage.setItem(CP_KEY, JSON.stringify(checkpoints.map((c) => c.note)));
    drawCheckpoints();
  }

  function drawCheckpoints() {
    const opts = () => checkpoints.map((c, i) => h('option', { value: String(i), text: `size ${c.size} · root ${c.rootB64.slice(0, 12)}…` }));
    const o = olderSel.value;
    const n = newerSel.value;
    fill(olderSel, opts());
    fill(newerSel, opts());
    if (o && checkpoints[o]) olderSel.value = o;
    else olderSel.value = '0';
    newerSel.value = n && checkpoints[n] && n !== olderSel.value ? n : String(checkpoints.length - 1);
    setStatus(cpStatus, 'info', `${checkpoints.length} verified checkpoint(s) recorded in this tab.`);
  }

  async function recordCheckpoint() {
    setStatus(cpStatus, 'busy', 'Fetching…');
    try {
      remember(await latestCheckpoint(await vkey()));
    } catch (err) {
      setStatus(cpStatus, 'bad', 'Checkpoint FAILED verification: ' + errorText(err));
    }
  }

  async function consistency() {
    const older = checkpoints[Number(olderSel.value)];
    const newer = checkpoints[Number(newerSel.value)];
    if (!older || !newer) {
      setStatus(consStatus, 'bad', 'Record two checkpoints first.');
      return;
    }
    setStatus(consStatus, 'busy', 'Verifying…');
    try {
      const pf = older.size === newer.size ? { proof: [] } : await get(`/v1/audit/proofs/consistency?old_size=${older.size}&tree_size=${newer.size}`);
      await verifyConsistency(pf.proof, older, newer);
      setStatus(consStatus, 'ok', `Consistent: the tree of size ${newer.size} extends the tree of size ${older.size}.`);
    } catch (err) {
      setStatus(consStatus, 'bad', 'Consistency FAILED: ' + errorText(err));
    }
  }

  async function bundle() {
    const start = Number(bStart.value);
    const end = Number(bEnd.value);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start) {
      setStatus(bStatus, 'bad', 'Need whole numbers with start < end.');
      return;
    }
    setStatus(bStatus, 'busy', 'Exporting…');
    try {
      const resp = await raw('GET', `/v1/audit/bundle?start=${start}&end=${end}`);
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `talos-audit-bundle-${start}-${end}.json`, text: 'download' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setStatus(bStatus, 'ok', `Exported entries ${start} to ${end - 1} (${blob.size} bytes).`);
    } catch (err) {
      setStatus(bStatus, 'bad', errorText(err));
    }
  }

  // Checkpoints recorded earlier in this tab are verified again, not trusted.
  (async () => {
    const notes = savedCheckpoints();
    if (!notes.length) return;
    try {
      const key = await vkey();
      for (const n of notes) {
        try {
          remember(await verifyCheckpoint(n, key));
        } catch {
          // dropped: it does not verify
        }
      }
    } catch (err) {
      setStatus(cpStatus, 'bad', errorText(err));
    }
  })();

  load();
}
