// Config: documents (GET /v1/config), their versions, a line diff between
// two versions, and each version's digest checked here (SHA-256 of the
// document's RFC 8785 canonical JSON).

import { get, list } from '../api.js';
import { errorText, field, fill, h, setStatus, short, statusLine, table, when } from '../dom.js';
import { canonicalJSON, documentDigest } from '../verify.js';

export const title = 'Config';

// lineDiff is an LCS diff of two line arrays: [{op: ' '|'+'|'-', line}].
export function lineDiff(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > 4e6) return [...a.map((line) => ({ op: '-', line })), ...b.map((line) => ({ op: '+', line }))];
  const t = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) t[i][j] = a[i] === b[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: ' ', line: a[i] });
      i++;
      j++;
    } else if (t[i + 1][j] >= t[i][j + 1]) out.push({ op: '-', line: a[i++] });
    else out.push({ op: '+', line: b[j++] });
  }
  while (i < n) out.push({ op: '-', line: a[i++] });
  while (j < m) out.push({ op: '+', line: b[j++] });
  return out;
}

function pretty(doc) {
  // sorted keys, so a diff shows changes and not reordering
  return JSON.stringify(JSON.parse(canonicalJSON(doc)), null, 2).split('\n');
}

export function render(main) {
  const st = statusLine();
  const docsBox = h('div');
  const vSection = h('section', { class: 'card', hidden: true, 'aria-labelledby': 'cf-v' });

  const kind = h('select', { id: 'open-kind' }, ['budget', 'policy'].map((k) => h('option', { value: k, text: k })));
  const name = h('input', { type: 'text', id: 'open-name', spellcheck: 'false', required: true, placeholder: 'team-a' });
  const openForm = h(
    'form',
    { class: 'row', id: 'open-doc', onsubmit: (e) => (e.preventDefault(), versions({ kind: kind.value, name: name.value.trim() }).catch((err) => setStatus(st, 'bad', errorText(err)))) },
    field('Kind', kind),
    field('Name', name),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'secondary', text: 'Open versions' })),
  );

  fill(
    main,
    h('h1', { text: 'Configuration' }),
    h('section', { class: 'card', 'aria-labelledby': 'cf-docs' }, h('h2', { id: 'cf-docs', text: 'Documents' }), st, docsBox, h('h2', { text: 'Open a document by name' }), openForm),
    vSection,
  );

  async function versions(doc) {
    const base = `/v1/config/${encodeURIComponent(doc.kind)}/${encodeURIComponent(doc.name)}`;
    const vs = [];
    let after = 0;
    for (let i = 0; i < 20; i++) {
      const page = await get(`${base}/versions?limit=1000${after ? '&after=' + after : ''}`);
      vs.push(...(page.versions || []));
      if (!page.next_after) break;
      after = page.next_after;
    }
    const older = h('select', {}, vs.map((v) => h('option', { value: String(v.version), text: `v${v.version} · ${when(v.created_at)}` })));
    const newer = h('select', {}, vs.map((v) => h('option', { value: String(v.version), text: `v${v.version} · ${when(v.created_at)}` })));
    if (vs.length > 1) older.value = String(vs[vs.length - 2].version);
    if (vs.length) newer.value = String(vs[vs.length - 1].version);
    const ds = statusLine();
    const diffBox = h('div', { class: 'diff', role: 'region', 'aria-label': 'Difference between the versions', tabindex: '0', id: 'config-diff' });
    const cache = new Map();
    const fetchVersion = async (n) => {
      if (!cache.has(n)) cache.set(n, await get(`${base}/versions/${n}`));
      return cache.get(n);
    };
    const compare = async () => {
      setStatus(ds, 'busy', 'Comparing…');
      try {
        const [a, b] = await Promise.all([fetchVersion(older.value), fetchVersion(newer.value)]);
        const [da, db] = await Promise.all([documentDigest(a.document), documentDigest(b.document)]);
        const okA = da === a.digest;
        const okB = db === b.digest;
        fill(
          diffBox,
          lineDiff(pretty(a.document), pretty(b.document)).map((d) => h('span', { class: d.op === '+' ? 'add' : d.op === '-' ? 'del' : 'same', text: `${d.op} ${d.line}` })),
        );
        setStatus(ds, okA && okB ? 'ok' : 'bad', `v${a.version} digest ${short(a.digest, 16)} ${okA ? 'matches' : 'DOES NOT match'} its document; v${b.version} digest ${short(b.digest, 16)} ${okB ? 'matches' : 'DOES NOT match'}.`);
      } catch (err) {
        setStatus(ds, 'bad', errorText(err));
      }
    };
    fill(
      vSection,
      h('h2', { id: 'cf-v', tabindex: '-1', text: `${doc.kind}/${doc.name}` }),
      table(
        'Versions',
        [
          { title: 'Version', cell: (v) => 'v' + v.version },
          { title: 'Created', cell: (v) => when(v.created_at) },
          { title: 'Digest (SHA-256 of canonical JSON)', cell: (v) => h('code', { text: v.digest }) },
        ],
        vs,
      ),
      h('div', { class: 'row' }, field('Older version', older), field('Newer version', newer), h('div', { class: 'field' }, h('button', { type: 'button', text: 'Show diff', onclick: compare }))),
      ds,
      diffBox,
    );
    vSection.hidden = false;
    vSection.querySelector('h2').focus();
    if (vs.length) compare();
  }

  async function load() {
    setStatus(st, 'busy', 'Loading…');
    try {
      const items = await list('/v1/config');
      fill(
        docsBox,
        table(
          'Configuration documents',
          [
            { title: 'Kind', cell: (d) => d.kind },
            { title: 'Name', cell: (d) => d.name },
            { title: 'Latest', cell: (d) => 'v' + d.latest_version },
            { title: 'Digest', cell: (d) => h('code', { title: d.digest, text: short(d.digest, 16) }) },
            { title: 'Updated', cell: (d) => when(d.updated_at) },
            { title: 'Versions', cell: (d) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Versions of ${d.kind}/${d.name}`, text: 'Versions', onclick: () => versions(d).catch((err) => setStatus(st, 'bad', errorText(err))) }) },
          ],
          items,
          'No documents.',
        ),
      );
      setStatus(st, 'info', `${items.length} document(s).`);
    } catch (err) {
      if (err.status === 404) setStatus(st, 'info', 'This server does not list its documents (GET /v1/config); open one by name below.');
      else setStatus(st, 'bad', errorText(err));
    }
  }

  load();
}
