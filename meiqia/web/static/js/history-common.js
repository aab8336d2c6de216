// Shared by the history page and the exports page: the filter names (as the API knows
// them), reading a filter from the query string, describing it in words, starting an export.
import { api, el, formError, t, dialog } from './lib.js';

/** Every filter of GET /api/v1/history, in the order the form shows them. */
export const FILTERS = [
  'ended_from', 'ended_to', 'agent_id', 'customer_name', 'content', 'tags', 'rating', 'grade',
  'source', 'platform', 'lead', 'invalid', 'missed', 'duration_min', 'duration_max',
  'first_response_min', 'first_response_max', 'customer_tags', 'phone', 'note', 'summary',
  'rating_comment', 'region', 'keyword', 'landing_page', 'ip', 'agent_name', 'channel',
];
/** Filters whose value is one of a few words: their labels are translated. */
export const CHOICES = {
  rating: ['good', 'neutral', 'bad', 'none'],
  source: ['direct', 'link', 'search_engine'],
  platform: ['pc_web', 'mobile_web'],
  lead: ['true', 'false'],
  invalid: ['true', 'false'],
  missed: ['true', 'false'],
};
/** An export holds at most this many conversations (services/exports.MAX_ROWS). */
export const MAX_EXPORT = 20000;

/** The filter of a query string (only known names, only non-empty values). */
export function filtersFrom(search) {
  const params = new URLSearchParams(search);
  const filters = {};
  for (const name of FILTERS) {
    const value = (params.get(name) || '').trim();
    if (value) filters[name] = value;
  }
  return filters;
}

export function queryOf(filters) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) params.set(name, filters[name]);
  return params.toString();
}

/** The label of a choice value ("good" → 满意, "true" → 是). */
export function choiceLabel(name, value) {
  if (name === 'source') return t(`source.${value}`);
  if (name === 'platform') return t(`platform.${value}`);
  if (name === 'channel') return channelLabel(value);
  if (name === 'rating') return t(`history.rating.${value}`);
  if (value === 'true') return t('history.yes');
  if (value === 'false') return t('history.no');
  return value;
}

/** A channel's name: the history page's filter lists them (web, e-mail, WeChat…). */
export function channelLabel(slug) {
  const option = document.querySelector(`select[name="channel"] option[value="${CSS.escape(slug || '')}"]`);
  return option ? option.textContent : (slug || '');
}

/** The filter as chips "label: value" (user values as text nodes). */
export function describe(filters, agents = []) {
  const names = FILTERS.filter((name) => filters[name]);
  if (!names.length) return [el('span', { class: 'muted', text: t('history.no_filter') })];
  return names.map((name) => {
    let value = filters[name];
    if (name === 'agent_id') {
      const agent = agents.find((a) => String(a.id) === String(value));
      value = agent ? agent.name : `#${value}`;
    } else if (CHOICES[name] || name === 'channel') {
      value = choiceLabel(name, value);
    }
    return el('span', { class: 'chip', dataset: { filter: name } },
      el('span', { class: 'chip-label', text: t('history.chip', { label: t(`history.f.${name}`) }) }), el('span', { text: value }));
  });
}

/** Local helper: a localised reason for the usual refusals, else the server's message. */
export function exportError(error, total) {
  if (total === 0) return { message: t('export.err.none'), field: null };
  if (total > MAX_EXPORT) return { message: t('export.err.too_many', { total, max: MAX_EXPORT }), field: null };
  return error;
}

/** POST the export; resolves with the export (202) or throws the ApiError. */
export function startExport(filters, format, withContent) {
  return api('POST', '/history/exports', { filters, format, with_content: withContent });
}

/** The "export" dialog: format and content, then start; calls done(export) on success. */
export function exportDialog(filters, total, agents, done) {
  const form = el('form', { class: 'export-form', novalidate: true },
    el('div', { class: 'chips' }, describe(filters, agents)),
    total === null || total === undefined ? null
      : el('p', { class: 'muted', text: t('export.count', { total }) }),
    el('fieldset', {}, el('legend', { text: t('export.format') }),
      el('label', { class: 'check' }, el('input', { type: 'radio', name: 'format', value: 'xlsx', checked: true }), t('export.xlsx')),
      el('label', { class: 'check' }, el('input', { type: 'radio', name: 'format', value: 'csv' }), t('export.csv'))),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'with_content' }), t('export.with_content')),
    el('p', { class: 'hint', text: t('export.hint', { max: MAX_EXPORT }) }),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: t('export.start') })));
  const box = dialog(t('export.title'), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (total === 0 || total > MAX_EXPORT) {
      formError(form, exportError(null, total));
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const created = await startExport(filters, form.elements.format.value, form.elements.with_content.checked);
      box.close();
      done(created);
    } catch (error) {
      formError(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return box;
}
