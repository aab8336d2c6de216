// Small inline-SVG charts for the agent pages: vertical bars, a line with points,
// horizontal bars and a donut. No library and no build step.
//
// Every chart is a <figure class="chart"> with:
//   * a caption (the title) and an <svg role="img"> whose <title>/<desc> name it,
//   * a tooltip on every bar, point and segment (pointer hover or keyboard focus),
//   * the same numbers as a <table> in a <details> below it (the accessible fallback).
// Labels may be user data (agent names): they only ever enter the page as textContent.
import { el, t } from './lib.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
export const PALETTE = ['#1f6feb', '#2da44e', '#d4a72c', '#cf222e', '#8250df', '#8c959f', '#0a7ea4'];
let serial = 0;

/** Build an SVG element; text only through textContent. */
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A round number at or above ``max`` (1, 2, 2.5, 5 × 10^k), at least 1. */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

/** An axis for values up to ``max``: about four round steps (whole steps for counts). */
export function scale(max, integer = true) {
  if (!(max > 0)) return { max: integer ? 4 : 1, steps: 4 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = 10 * power;
  for (const m of [1, 2, 2.5, 5, 10]) {
    const candidate = m * power;
    if (candidate >= rough && (!integer || Number.isInteger(candidate))) {
      step = candidate;
      break;
    }
  }
  if (integer) step = Math.max(1, step);
  const steps = Math.max(1, Math.ceil(max / step));
  return { max: step * steps, steps };
}

/** Roughly how wide ``text`` is at ``size`` px: CJK characters are square, Latin narrower. */
function textWidth(text, size) {
  let em = 0;
  for (const ch of String(text)) em += ch.codePointAt(0) >= 0x2e80 ? 1 : 0.6;
  return em * size;
}

/** ``text`` cut with an ellipsis to fit ``px`` at ``size`` px. */
function fit(text, px, size = 12) {
  const s = String(text);
  if (textWidth(s, size) <= px) return s;
  let out = '';
  for (const ch of s) {
    if (textWidth(`${out}${ch}…`, size) > px) break;
    out += ch;
  }
  return `${out}…`;
}

/** An SVG text fitted to ``px``; when cut, the whole text is its tooltip (<title>). */
function label(attrs, text, px, size = 12) {
  const shown = fit(text, px, size);
  const node = svg('text', attrs, shown);
  if (shown !== String(text)) node.append(svg('title', {}, text));
  return node;
}

/** The figure around a chart: caption, svg, tooltip box and the data table. */
function frame({ id, title, summary, data, format, columns }) {
  const n = ++serial;
  const titleId = `chart-title-${n}`;
  const descId = `chart-desc-${n}`;
  const figure = el('figure', { class: 'chart', id, dataset: { count: data.length } });
  const root = svg('svg', {
    viewBox: '0 0 640 240', role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    preserveAspectRatio: 'xMidYMid meet', class: 'chart-svg',
  });
  root.append(svg('title', { id: titleId }, title), svg('desc', { id: descId }, summary || ''));
  const tip = el('div', { class: 'chart-tip', role: 'tooltip', hidden: true });
  const table = el('table', { class: 'table chart-table' },
    el('caption', { class: 'visually-hidden', text: title }),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, data.map((d) => el('tr', {},
      el('th', { scope: 'row', text: d.label }),
      el('td', { text: d.value === null || d.value === undefined ? '–' : format(d.value) })))));
  figure.append(
    el('figcaption', { class: 'chart-title', text: title }),
    el('div', { class: 'chart-box' }, root, tip),
    el('details', { class: 'chart-data' }, el('summary', { text: t('chart.table') }), table));
  wireTooltip(figure, root, tip);
  return { figure, root };
}

/** Show ``data-tip`` of the hovered or focused mark in the figure's tooltip box. */
function wireTooltip(figure, root, tip) {
  const show = (mark) => {
    tip.textContent = mark.dataset.tip;
    tip.hidden = false;
    const box = figure.querySelector('.chart-box').getBoundingClientRect();
    const r = mark.getBoundingClientRect();
    tip.style.left = `${Math.max(0, r.left - box.left + r.width / 2)}px`;
    tip.style.top = `${Math.max(0, r.top - box.top)}px`;
    mark.classList.add('active');
  };
  const hide = (mark) => {
    tip.hidden = true;
    if (mark) mark.classList.remove('active');
  };
  root.addEventListener('pointerover', (e) => { const m = e.target.closest('[data-tip]'); if (m) show(m); });
  root.addEventListener('pointerout', (e) => { const m = e.target.closest('[data-tip]'); if (m) hide(m); });
  root.addEventListener('focusin', (e) => { const m = e.target.closest('[data-tip]'); if (m) show(m); });
  root.addEventListener('focusout', (e) => { const m = e.target.closest('[data-tip]'); if (m) hide(m); });
}

function mark(node, label, value, format) {
  node.dataset.tip = `${label}: ${value === null || value === undefined ? '–' : format(value)}`;
  node.dataset.value = value ?? '';
  return node;
}

function noData(root, total) {
  if (total > 0) return;
  root.append(svg('text', { x: W / 2, y: 110, 'text-anchor': 'middle', class: 'chart-empty' }, t('chart.no_data')));
}

/** Value axis: grid lines and labels from 0 to ``max`` (vertical charts). */
function yAxis(root, box, { max, steps }, format) {
  for (let i = 0; i <= steps; i++) {
    const value = (max * i) / steps;
    const y = box.bottom - ((box.bottom - box.top) * i) / steps;
    root.append(svg('line', { x1: box.left, x2: box.right, y1: y, y2: y, class: i ? 'grid' : 'axis' }));
    root.append(svg('text', { x: box.left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' },
      format(Number.isInteger(value) ? value : Math.round(value * 100) / 100)));
  }
}

function xLabels(root, box, data, labelFormat) {
  const band = (box.right - box.left) / data.length;
  const every = Math.max(1, Math.ceil(data.length / 12));
  data.forEach((d, i) => {
    if (i % every) return;
    root.append(label({ x: box.left + band * (i + 0.5), y: box.bottom + 16, 'text-anchor': 'middle', class: 'tick' },
      labelFormat(d.label), Math.max(36, band * every - 4), 11));
  });
  return band;
}

const BOX = { left: 44, right: W - 12, top: 14, bottom: 206 };

/**
 * Vertical bars: ``data`` is [{label, value}], one <rect class="bar"> each.
 * Options: id, title, summary, format (values), tickFormat, labelFormat, columns, color.
 */
export function barChart({ id, title, summary, data, format = String, tickFormat, labelFormat = String,
  columns = ['', ''], color = PALETTE[0], integer = true }) {
  const { figure, root } = frame({ id, title, summary, data, format, columns });
  const axis = scale(Math.max(0, ...data.map((d) => d.value || 0)), integer);
  const { max } = axis;
  yAxis(root, BOX, axis, tickFormat || format);
  const band = xLabels(root, BOX, data, labelFormat);
  const width = Math.max(1, band * 0.7);
  const plot = svg('g', { class: 'marks' });
  data.forEach((d, i) => {
    const h = ((d.value || 0) / max) * (BOX.bottom - BOX.top);
    plot.append(mark(svg('rect', {
      class: 'bar', x: BOX.left + band * i + (band - width) / 2, y: BOX.bottom - h, width, height: h,
      fill: d.color || color, tabindex: 0,
    }), labelFormat(d.label), d.value, format));
  });
  root.append(plot);
  noData(root, data.reduce((s, d) => s + (d.value || 0), 0));
  return figure;
}

/** A line through one <circle class="point"> per datum, with the area under it shaded. */
export function lineChart({ id, title, summary, data, format = String, tickFormat, labelFormat = String,
  columns = ['', ''], color = PALETTE[0], integer = true }) {
  const { figure, root } = frame({ id, title, summary, data, format, columns });
  const axis = scale(Math.max(0, ...data.map((d) => d.value || 0)), integer);
  const { max } = axis;
  yAxis(root, BOX, axis, tickFormat || format);
  const band = xLabels(root, BOX, data, labelFormat);
  const xy = data.map((d, i) => [BOX.left + band * (i + 0.5),
    BOX.bottom - ((d.value || 0) / max) * (BOX.bottom - BOX.top)]);
  if (xy.length) {
    const line = xy.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    const area = `${line} L${xy[xy.length - 1][0].toFixed(1)},${BOX.bottom} L${xy[0][0].toFixed(1)},${BOX.bottom} Z`;
    root.append(svg('path', { d: area, class: 'area', fill: color }));
    root.append(svg('path', { d: line, class: 'line', stroke: color }));
  }
  const plot = svg('g', { class: 'marks' });
  data.forEach((d, i) => {
    plot.append(mark(svg('circle', { class: 'point', cx: xy[i][0], cy: xy[i][1], r: data.length > 40 ? 2.5 : 4,
      fill: '#fff', stroke: color, tabindex: 0 }), labelFormat(d.label), d.value, format));
  });
  root.append(plot);
  noData(root, data.reduce((s, d) => s + (d.value || 0), 0));
  return figure;
}

/** Horizontal bars with the label on the left and the value at the end of the bar. */
export function hbarChart({ id, title, summary, data, format = String, columns = ['', ''], color = PALETTE[0] }) {
  const rowH = 30;
  const height = Math.max(60, data.length * rowH + 16);
  const { figure, root } = frame({ id, title, summary, data, format, columns });
  root.setAttribute('viewBox', `0 0 ${W} ${height}`);
  const left = 150;
  const right = W - 90;
  const max = niceMax(Math.max(0, ...data.map((d) => d.value || 0)));
  const plot = svg('g', { class: 'marks' });
  data.forEach((d, i) => {
    const y = 8 + i * rowH;
    const w = ((d.value || 0) / max) * (right - left);
    root.append(label({ x: left - 8, y: y + rowH / 2 + 1, 'text-anchor': 'end', class: 'label' }, d.label, left - 14));
    root.append(svg('rect', { x: left, y: y + 4, width: right - left, height: rowH - 10, class: 'track' }));
    plot.append(mark(svg('rect', { class: 'bar', x: left, y: y + 4, width: w, height: rowH - 10,
      fill: d.color || color, tabindex: 0 }), d.label, d.value, format));
    root.append(svg('text', { x: left + w + 6, y: y + rowH / 2 + 1, class: 'value' },
      d.value === null || d.value === undefined ? '–' : format(d.value)));
  });
  root.append(plot);
  if (!data.length) {
    root.append(svg('text', { x: W / 2, y: height / 2 + 4, 'text-anchor': 'middle', class: 'chart-empty' }, t('chart.no_data')));
  }
  return figure;
}

/** A donut: one <path class="segment"> per non-zero part, with a legend and shares. */
export function donutChart({ id, title, summary, data, format = String, columns = ['', ''], center }) {
  const { figure, root } = frame({ id, title, summary, data, format, columns });
  const total = data.reduce((s, d) => s + (d.value || 0), 0);
  const cx = 150;
  const cy = 120;
  const r = 95;
  const inner = 58;
  root.append(svg('circle', { cx, cy, r: (r + inner) / 2, class: 'track-ring', 'stroke-width': r - inner, fill: 'none' }));
  const plot = svg('g', { class: 'marks' });
  let angle = -Math.PI / 2;
  const point = (a, radius) => `${(cx + radius * Math.cos(a)).toFixed(2)},${(cy + radius * Math.sin(a)).toFixed(2)}`;
  data.forEach((d, i) => {
    const value = d.value || 0;
    if (!value) return;
    const share = value / total;
    const tip = `${d.label} (${Math.round(share * 1000) / 10}%)`;
    const color = d.color || PALETTE[i % PALETTE.length];
    if (share >= 0.9999) {  // a full ring: two half arcs
      const mid = angle + Math.PI;
      const dPath = `M${point(angle, r)} A${r},${r} 0 1 1 ${point(mid, r)} A${r},${r} 0 1 1 ${point(angle, r)} `
        + `M${point(angle, inner)} A${inner},${inner} 0 1 0 ${point(mid, inner)} A${inner},${inner} 0 1 0 ${point(angle, inner)} Z`;
      plot.append(mark(svg('path', { d: dPath, class: 'segment', fill: color, 'fill-rule': 'evenodd', tabindex: 0 }), tip, value, format));
      return;
    }
    const end = angle + share * 2 * Math.PI;
    const large = share > 0.5 ? 1 : 0;
    const dPath = `M${point(angle, r)} A${r},${r} 0 ${large} 1 ${point(end, r)} L${point(end, inner)} `
      + `A${inner},${inner} 0 ${large} 0 ${point(angle, inner)} Z`;
    plot.append(mark(svg('path', { d: dPath, class: 'segment', fill: color, tabindex: 0 }), tip, value, format));
    angle = end;
  });
  root.append(plot);
  root.append(svg('text', { x: cx, y: cy + 6, 'text-anchor': 'middle', class: 'center' },
    center ?? (total ? format(total) : t('chart.no_data'))));
  data.forEach((d, i) => {
    const y = 70 + i * 28;
    const color = d.color || PALETTE[i % PALETTE.length];
    const share = total ? ` · ${Math.round(((d.value || 0) / total) * 1000) / 10}%` : '';
    root.append(svg('rect', { x: 300, y: y - 11, width: 14, height: 14, rx: 3, fill: color }));
    root.append(label({ x: 322, y, class: 'label' }, `${d.label}  ${format(d.value || 0)}${share}`, W - 330));
  });
  return figure;
}
