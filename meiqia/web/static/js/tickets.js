// Tickets list: status tabs with counts, filters, pages. The filter lives in the URL.
import { api, clear, dialog, el, fmtTime, formData, formError, t, toast } from './lib.js';
import { LIST_KEY, agentName, groupName, loadPeople } from './tickets-common.js';

const PER_PAGE = 20;
const REFRESH_MS = 30_000;
const FIELDS = ['status', 'q', 'assignee_id', 'group_id', 'priority', 'source', 'page'];
const page = document.getElementById('tickets');
const form = document.getElementById('tk-filters');
const tbody = document.querySelector('#tk-table tbody');
let people = { agents: [], groups: [] };
let loading = null;

/** The filter from the page's query string. */
function current() {
  const params = new URLSearchParams(window.location.search);
  const filter = {};
  for (const key of FIELDS) {
    const value = params.get(key);
    if (value) filter[key] = value;
  }
  return filter;
}

function toQuery(filter) {
  const params = new URLSearchParams();
  for (const key of FIELDS) {
    if (filter[key] && !(key === 'page' && filter[key] === '1')) params.set(key, filter[key]);
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The API's query: "me" in the assignee select is the API's ``mine``. */
function apiQuery(filter) {
  const params = new URLSearchParams({ per_page: String(PER_PAGE) });
  for (const [key, value] of Object.entries(filter)) {
    if (key === 'assignee_id' && value === 'me') params.set('mine', 'true');
    else params.set(key, value);
  }
  return `?${params}`;
}

function go(filter, push = true) {
  const query = toQuery(filter);
  if (push && query !== window.location.search) history.pushState(null, '', query || window.location.pathname);
  load();
}

function fillForm(filter) {
  for (const name of ['q', 'assignee_id', 'group_id', 'priority', 'source']) {
    form.elements[name].value = filter[name] || '';
  }
}

function fillSelects() {
  const assignee = form.elements.assignee_id;
  assignee.querySelectorAll('option[data-agent]').forEach((o) => o.remove());
  for (const agent of people.agents) {
    assignee.append(el('option', { value: String(agent.id), text: agent.display_name || agent.name, dataset: { agent: agent.id } }));
  }
  const group = form.elements.group_id;
  group.querySelectorAll('option[data-group]').forEach((o) => o.remove());
  for (const g of people.groups) group.append(el('option', { value: String(g.id), text: g.name, dataset: { group: g.id } }));
}

function renderTabs(filter, counts) {
  const total = Object.values(counts).reduce((s, n) => s + n, 0);
  document.querySelectorAll('#tk-tabs a').forEach((link) => {
    const status = link.dataset.status;
    const tab = { ...filter, status, page: '' };
    link.href = toQuery(tab) || window.location.pathname;
    if ((filter.status || '') === status) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
    link.querySelector('[data-count]').textContent = String(status ? counts[status] ?? 0 : total);
  });
}

function contactText(contact) {
  return [contact.name, contact.phone, contact.email].filter(Boolean).join(' · ') || '–';
}

function renderRows(items) {
  clear(tbody);
  if (!items.length) {
    tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: 10, class: 'muted', text: t('tk.empty') })));
    return;
  }
  for (const ticket of items) {
    tbody.append(el('tr', { dataset: { id: ticket.id, status: ticket.status } },
      el('td', { class: 'muted', text: `#${ticket.id}` }),
      el('td', { class: 'tk-subject-cell' },
        el('a', { href: `/tickets/${ticket.id}`, class: 'tk-subject', text: ticket.subject || t('tk.no_subject') }),
        ticket.tags.map((tag) => el('span', { class: 'tag', text: tag }))),
      el('td', { class: 'tk-contact-cell', text: contactText(ticket.contact) }),
      el('td', {}, el('span', { class: `tk-status s-${ticket.status}`, text: t(`tstatus.${ticket.status}`) })),
      el('td', {}, el('span', { class: `tk-priority p-${ticket.priority}`, text: t(`priority.${ticket.priority}`) })),
      el('td', { class: 'tk-assignee', text: ticket.assignee_id ? agentName(people, ticket.assignee_id) : '–' }),
      el('td', { class: 'tk-group', text: ticket.group_id ? groupName(people, ticket.group_id) : '–' }),
      el('td', { class: 'small', text: t(`tk.source.${ticket.source}`) }),
      el('td', { class: 'small', text: fmtTime(ticket.created_at, true) }),
      el('td', { class: 'small', text: fmtTime(ticket.updated_at, true) })));
  }
}

function renderPager(data) {
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  document.getElementById('tk-page-info').textContent = t('tk.page_info', { page: data.page, pages, total: data.total });
  document.getElementById('tk-prev').disabled = data.page <= 1;
  document.getElementById('tk-next').disabled = data.page >= pages;
  page.dataset.page = String(data.page);
}

/** A ticket written by the agent (e.g. from a phone call): then open it. */
function newTicket() {
  const select = (name, items, blank) => el('select', { name },
    blank ? el('option', { value: '', text: blank }) : null,
    items.map(([value, text]) => el('option', { value, text, selected: value === 'normal' })));
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('label', {}, t('tickets.subject'), el('input', { name: 'subject', maxlength: 200 })),
    el('label', {}, t('tickets.content'), el('textarea', { name: 'content', rows: 5, required: true })),
    el('fieldset', {}, el('legend', { text: t('tk.contact') }),
      el('label', {}, t('card.name'), el('input', { name: 'name', maxlength: 120 })),
      el('label', {}, t('card.phone'), el('input', { name: 'phone', maxlength: 40, inputmode: 'tel' })),
      el('label', {}, t('card.email'), el('input', { name: 'email', type: 'email', maxlength: 254 }))),
    el('label', {}, t('tickets.priority'), select('priority',
      ['low', 'normal', 'high', 'urgent'].map((p) => [p, t(`priority.${p}`)]))),
    el('label', {}, t('tk.assignee'), select('assignee_id',
      people.agents.map((a) => [String(a.id), a.display_name || a.name]), t('tk.unassigned'))),
    el('label', {}, t('tk.group'), select('group_id',
      people.groups.map((g) => [String(g.id), g.name]), t('tk.no_group'))),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: t('tk.create') })));
  const box = dialog(t('tk.new'), form);
  box.id = 'tk-new-dialog';
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = formData(form);
    for (const key of ['subject', 'name', 'phone', 'email']) if (!body[key].trim()) delete body[key];
    for (const key of ['assignee_id', 'group_id']) body[key] = body[key] ? Number(body[key]) : null;
    try {
      const created = await api('POST', '/tickets', body);
      box.close();
      window.location.assign(`/tickets/${created.id}`);
    } catch (error) {
      formError(form, error);
    }
  });
}

async function load() {
  const filter = current();
  fillForm(filter);
  if (loading) loading.abort();
  const controller = new AbortController();
  loading = controller;
  page.setAttribute('aria-busy', 'true');
  try {
    const data = await api('GET', `/tickets${apiQuery(filter)}`, undefined, { signal: controller.signal });
    renderTabs(filter, data.counts);
    renderRows(data.items);
    renderPager(data);
    sessionStorage.setItem(LIST_KEY, window.location.search);
    page.setAttribute('aria-busy', 'false');
  } catch (error) {
    if (error.name === 'AbortError') return;
    page.setAttribute('aria-busy', 'false');
    toast(error.message, 'error');
  } finally {
    if (loading === controller) loading = null;
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const filter = { status: current().status };
  for (const name of ['q', 'assignee_id', 'group_id', 'priority', 'source']) {
    const value = form.elements[name].value.trim();
    if (value) filter[name] = value;
  }
  go(filter);
});
form.querySelectorAll('select').forEach((select) => select.addEventListener('change', () => form.requestSubmit()));
document.getElementById('tk-reset').addEventListener('click', () => go({ status: current().status }));
document.getElementById('tk-tabs').addEventListener('click', (event) => {
  const link = event.target.closest('a[data-status]');
  if (!link) return;
  event.preventDefault();
  go({ ...current(), status: link.dataset.status, page: '' });
});
document.getElementById('tk-prev').addEventListener('click', () => {
  const filter = current();
  go({ ...filter, page: String(Math.max(1, Number(filter.page || 1) - 1)) });
});
document.getElementById('tk-next').addEventListener('click', () => {
  const filter = current();
  go({ ...filter, page: String(Number(filter.page || 1) + 1) });
});
window.addEventListener('popstate', () => load());
document.getElementById('tk-new').addEventListener('click', newTicket);
// Colleagues' changes show up without a reload (quietly, while the page is visible).
setInterval(() => { if (!document.hidden && !loading) load(); }, REFRESH_MS);

// The new-ticket button waits for the agents and groups: its form offers them, and a form
// built before they arrived offered none.
loadPeople().then((loaded) => {
  people = loaded;
  fillSelects();
  document.getElementById('tk-new').disabled = false;
  load();
}).catch((error) => toast(error.message, 'error'));
