// Hand-written SVG charts. Each is an <svg role="img"> with a <title> and an
// aria-label that states the numbers it draws, so it reads without sight.

import { s } from './dom.js';

function svg(label, w, hgt, children) {
  return s('svg', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': label, class: 'chart' }, s('title', { text: label }), children);
}

/**
 * columns per minute: points [{minute, total, denied}], allowed part and
 * denied part stacked.
 */
export function perMinute(points) {
  const w = 360;
  const hgt = 150;
  const axis = 16; // room for the time labels
  const max = Math.max(1, ...points.map((p) => p.total || 0));
  const n = Math.max(points.length, 1);
  const bw = w / n;
  const total = points.reduce((a, p) => a + (p.total || 0), 0);
  const denied = points.reduce((a, p) => a + (p.denied || 0), 0);
  const bars = points.map((p, i) => {
    const base = hgt - axis;
    const th = ((p.total || 0) / max) * (base - 20);
    const dh = ((p.denied || 0) / max) * (base - 20);
    const x = i * bw + 1;
    return [
      s('rect', { x, y: base - th, width: Math.max(bw - 2, 1), height: th - dh, class: 'bar-ok' }),
      s('rect', { x, y: base - dh, width: Math.max(bw - 2, 1), height: dh, class: 'bar-denied' }),
    ];
  });
  const hhmm = (t) => (t ? String(t).slice(11, 16) : '');
  return svg(`Decisions per minute over ${points.length} minutes: ${total} in all, ${denied} denied; peak ${max} a minute`, w, hgt, [
    s('line', { x1: 0, y1: hgt - axis - 0.5, x2: w, y2: hgt - axis - 0.5, class: 'axis' }),
    s('text', { x: 4, y: 12, class: 'chart-label', text: `max ${max}/min` }),
    points.length ? s('text', { x: 2, y: hgt - 3, class: 'chart-label', text: hhmm(points[0].minute) }) : '',
    points.length ? s('text', { x: w - 2, y: hgt - 3, class: 'chart-label', 'text-anchor': 'end', text: hhmm(points[points.length - 1].minute) + ' UTC' }) : '',
    bars,
  ]);
}

/**
 * horizontal bars: entries [[label, value]]; good(label) picks the
 * allowed colour instead of the denied one.
 */
export function hbars(title, entries, good = () => false) {
  const w = 360;
  const lw = 150; // label column
  const row = 22;
  const hgt = Math.max(entries.length, 1) * row + 4;
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const label = entries.length ? `${title}: ` + entries.map(([k, v]) => `${k} ${v}`).join(', ') : `${title}: none`;
  const span = w - lw - 40;
  return svg(label, w, hgt, entries.map(([k, v], i) => [
    s('rect', { x: lw, y: i * row + 4, width: Math.max((v / max) * span, 1), height: row - 8, class: good(k) ? 'bar-ok' : 'bar-denied' }),
    s('text', { x: 2, y: i * row + 17, class: 'chart-label', text: k.length > 22 ? k.slice(0, 21) + '…' : k }),
    s('text', { x: lw + 4 + (v / max) * span, y: i * row + 17, class: 'chart-label', text: String(v) }),
  ]));
}

/** one budget bar: used, reserved and remaining of limit (numbers, USD). */
export function budgetBar(scope, used, reserved, remaining, limit) {
  const w = 360;
  const hgt = 22;
  const total = Math.max(limit, used + reserved + remaining, 1e-9);
  const uw = (used / total) * w;
  const rw = (reserved / total) * w;
  return svg(`Budget ${scope}: used ${used}, reserved ${reserved}, remaining ${remaining} of ${limit} USD`, w, hgt, [
    s('rect', { x: 0, y: 0, width: w, height: hgt, class: 'bar-free' }),
    s('rect', { x: 0, y: 0, width: uw, height: hgt, class: 'bar-used' }),
    s('rect', { x: uw, y: 0, width: rw, height: hgt, class: 'bar-reserved' }),
  ]);
}
