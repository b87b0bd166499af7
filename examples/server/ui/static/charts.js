// Hand-written SVG charts. Each is an <svg role="img"> with a <title> and an
// aria-label that states the numbers it draws, so it reads without sight.

import { s } from './dom.js';

function svg(label, w, hgt, children) {
  return s('svg', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': label, class: 'chart', preserveAspectRatio: 'none' }, s('title', { text: label }), children);
}

/**
 * columns per minute: points [{minute, total, denied}], allowed part and
 * denied part stacked.
 */
export function perMinute(points) {
  const w = 600;
  const hgt = 160;
  const max = Math.max(1, ...points.map((p) => p.total || 0));
  const n = Math.max(points.length, 1);
  const bw = w / n;
  const total = points.reduce((a, p) => a + (p.total || 0), 0);
  const denied = points.reduce((a, p) => a + (p.denied || 0), 0);
  const bars = points.map((p, i) => {
    const th = ((p.total || 0) / max) * (hgt - 20);
    const dh = ((p.denied || 0) / max) * (hgt - 20);
    const x = i * bw + 1;
    return [
      s('rect', { x, y: hgt - th, width: Math.max(bw - 2, 1), height: th - dh, class: 'bar-ok' }),
      s('rect', { x, y: hgt - dh, width: Math.max(bw - 2, 1), height: dh, class: 'bar-denied' }),
    ];
  });
  return svg(`Decisions per minute over ${points.length} minutes: ${total} in all, ${denied} denied; peak ${max} a minute`, w, hgt, [
    s('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, class: 'axis' }),
    s('text', { x: 4, y: 12, class: 'chart-label', text: `max ${max}/min` }),
    bars,
  ]);
}

/** horizontal bars: entries [[label, value]]. */
export function hbars(title, entries) {
  const w = 600;
  const row = 24;
  const hgt = Math.max(entries.length, 1) * row + 4;
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const label = entries.length ? `${title}: ` + entries.map(([k, v]) => `${k} ${v}`).join(', ') : `${title}: none`;
  return svg(label, w, hgt, entries.map(([k, v], i) => [
    s('rect', { x: 220, y: i * row + 4, width: Math.max((v / max) * (w - 280), 1), height: row - 8, class: 'bar-denied' }),
    s('text', { x: 4, y: i * row + 18, class: 'chart-label', text: k }),
    s('text', { x: 226 + (v / max) * (w - 280), y: i * row + 18, class: 'chart-label', text: String(v) }),
  ]));
}

/** one budget bar: used, reserved and remaining of limit (numbers, USD). */
export function budgetBar(scope, used, reserved, remaining, limit) {
  const w = 600;
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
