// History exports (导出记录): start an export of the filter in the query string, list my
// exports (admins: the team's) with a live progress bar while the job runs, download, delete.
import { api, clear, dialog, el, fmtTime, formError, t, toast } from './lib.js';
import { MAX_EXPORT, describe, exportError, filtersFrom, queryOf, startExport } from './history-common.js';

const $ = (id) => document.getElementById(id);
const form = $('export-form');
const tbody = document.querySelector('#exports-table tbody');
const filters = filtersFrom(location.search);
const ACTIVE = new Set(['queued', 'running']);
const POLL_MS = 1000;

let agents = [];
let total = null;
const rows = new Map(); // export id -> <tr>
let timer = null;

function size(bytes) {
  if (!bytes) return '';
  if (bytes < 1024) return t('export.bytes', { n: bytes });
  if (bytes < 1024 * 1024) return t('export.kb', { n: (bytes / 1024).toFixed(1) });
  return t('export.mb', { n: (bytes / 1024 / 1024).toFixed(1) });
}

function progressCell(exp) {
  const fraction = exp.status === 'done' ? 1 : exp.progress || 0;
  const percent = Math.round(fraction * 100);
  return el('td', { class: 'progress-cell' },
    el('progress', { max: 100, value: percent, 'aria-label': t('export.progress'), dataset: { percent } }),
    el('span', { class: 'percent', text: `${percent}%` }),
    el('span', { class: 'muted small', text: ` ${t('export.rows', { done: exp.done, total: exp.total })}` }));
}

function statusCell(exp) {
  return el('td', { class: 'status-cell' },
    el('span', { class: `export-status ${exp.status}`, dataset: { status: exp.status }, text: t(`export.status.${exp.status}`) }),
    exp.status === 'failed' && exp.error ? el('div', { class: 'error small', role: 'alert', text: t('export.failed_reason', { reason: exp.error }) }) : null,
    // An attempt failed and another is due (exports are retried): say so, and why.
    exp.status === 'queued' && exp.error ? el('div', { class: 'hint small export-retry', role: 'status', text: t('export.retrying', { reason: exp.error }) }) : null,
    exp.refused ? el('div', { class: 'hint small export-refused', role: 'status', text: exp.refused }) : null);
}

function actionsCell(exp) {
  return el('td', { class: 'nowrap' },
    exp.download ? el('a', { href: exp.download, class: 'download', download: '', text: t('export.download') }) : null,
    ' ',
    el('button', { type: 'button', class: 'link danger delete', text: t('ui.delete'), onclick: () => confirmDelete(exp) }));
}

function rowOf(exp) {
  const tr = el('tr', { dataset: { id: exp.id, status: exp.status }, id: `e${exp.id}`, class: location.hash === `#e${exp.id}` ? 'current' : '' },
    el('td', { text: exp.id }),
    el('td', { class: 'nowrap', text: fmtTime(exp.created_at, true) }),
    el('td', { text: `${exp.format.toUpperCase()}${exp.with_content ? ` · ${t('export.content_short')}` : ''}` }),
    el('td', {}, el('div', { class: 'chips' }, describe(exp.filters || {}, agents))),
    statusCell(exp), progressCell(exp),
    el('td', { class: 'nowrap', text: size(exp.size) }),
    actionsCell(exp));
  return tr;
}

function put(exp) {
  const fresh = rowOf(exp);
  const old = rows.get(exp.id);
  if (old) old.replaceWith(fresh);
  else {
    const after = [...tbody.children].find((tr) => Number(tr.dataset.id) < exp.id);
    tbody.insertBefore(fresh, after || null);
  }
  rows.set(exp.id, fresh);
  const empty = tbody.querySelector('tr.empty');
  if (empty) empty.remove();
}

function showEmpty() {
  if (!rows.size && !tbody.querySelector('tr.empty')) {
    tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: 8, class: 'muted', text: t('export.none_yet') })));
  }
}

/** Poll every export still queued or running until none is. */
function poll() {
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    const active = [...rows.values()].filter((tr) => ACTIVE.has(tr.dataset.status)).map((tr) => Number(tr.dataset.id));
    if (!active.length) return;
    await Promise.all(active.map(async (id) => {
      try {
        const exp = await api('GET', `/history/exports/${id}`);
        if (!rows.has(id)) return; // deleted meanwhile
        put(exp);
        if (exp.status === 'done') toast(t('export.ready', { id }));
        if (exp.status === 'failed') toast(t('export.failed', { id }), 'error');
      } catch (error) {
        if (error.status === 404) {
          rows.get(id)?.remove();
          rows.delete(id);
          showEmpty();
        }
      }
    }));
    poll();
  }, POLL_MS);
}

async function load() {
  const list = await api('GET', '/history/exports');
  clear(tbody);
  rows.clear();
  for (const exp of list) put(exp);
  showEmpty();
  poll();
}

function confirmDelete(exp) {
  const box = dialog(t('export.confirm_delete', { id: exp.id }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', text: t('ui.cancel'), onclick: () => box.close() }),
      el('button', { type: 'button', class: 'primary danger-fill', id: 'confirm-delete', text: t('ui.delete'), onclick: async () => {
        try {
          await api('DELETE', `/history/exports/${exp.id}`);
          box.close();
          rows.get(exp.id)?.remove();
          rows.delete(exp.id);
          showEmpty();
          toast(t('export.deleted', { id: exp.id }));
        } catch (error) {
          box.close();
          toast(error.message, 'error');
        }
      } })));
}

// ---- start an export of the filter in the URL --------------------------------------------------

async function countMatches() {
  const params = new URLSearchParams(queryOf(filters));
  params.set('per_page', 1);
  try {
    const result = await api('GET', `/history?${params}`);
    total = result.total;
    $('export-count').textContent = total > MAX_EXPORT ? t('export.err.too_many', { total, max: MAX_EXPORT })
      : t('export.count', { total });
    $('export-count').classList.toggle('error', total === 0 || total > MAX_EXPORT);
    if (total === 0) $('export-count').textContent = t('export.err.none');
  } catch (error) {
    $('export-count').textContent = error.message;
    $('export-count').classList.add('error');
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (total === 0 || total > MAX_EXPORT) {
    formError(form, exportError(null, total));
    return;
  }
  const button = $('export-start');
  button.disabled = true;
  try {
    const exp = await startExport(filters, form.elements.format.value, form.elements.with_content.checked);
    formError(form, null);
    put(exp);
    toast(t('export.started', { id: exp.id }));
    poll();
  } catch (error) {
    formError(form, error);
  } finally {
    button.disabled = false;
  }
});

async function start() {
  agents = await api('GET', '/agents').catch(() => []);
  $('export-filters').replaceChildren(...describe(filters, agents));
  const query = queryOf(filters);
  $('back-to-history').href = `/history${query ? `?${query}` : ''}`;
  await Promise.all([countMatches(), load()]);
  // Enabled once both are here: an export started before the list had come was wiped
  // from the page when it came (the list was read before the export existed), and one
  // started before the count was not told "nothing to export".
  $('export-start').disabled = false;
}

start().catch((error) => toast(error.message, 'error'));
