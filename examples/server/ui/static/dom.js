// Small DOM helpers. Text is always set as text (never parsed as HTML), so
// nothing the server returns can inject markup or script.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** replaces the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export function id(prefix) {
  uid += 1;
  return (prefix || 'f') + '-' + uid;
}

/** a labelled form field: <label for> + control. */
export function field(label, control, hint) {
  if (!control.id) control.id = id('f');
  const parts = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hid = id('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', { id: hid, class: 'hint', text: hint }));
  }
  return h('div', { class: 'field' }, parts);
}

/** a status line (role=status, announced by screen readers). */
export function statusLine(cls) {
  return h('p', { role: 'status', class: 'status ' + (cls || '') });
}

export function setStatus(el, kind, text) {
  el.className = 'status ' + kind;
  el.textContent = text;
}

export function errorText(err) {
  if (err && err.code) return err.code + ': ' + err.message;
  return String((err && err.message) || err);
}

/** a table; columns: [{title, cell(row) -> node|string}]. */
export function table(caption, columns, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty', text: empty || 'Nothing yet.' });
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      {},
      h('caption', { text: caption }),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c.title })))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { 'data-label': c.title }, c.cell(r)))))),
    ),
  );
}

export function short(s, n = 16) {
  s = String(s ?? '');
  return s.length > n ? s.slice(0, n) + '…' : s;
}

export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
