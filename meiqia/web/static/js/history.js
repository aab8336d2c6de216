// History (历史对话): the filter form, the result table with pagination, the column chooser
// (show/hide, drag to reorder, saved per agent on the server) and the transcript panel.
// The filter and the page live in the query string; the open transcript in the hash (#c12).
import { api, clear, deviceLabel, dialog, el, fmtDuration, fmtTime, formError, regionText, t, toast } from './lib.js';
import { offeredQuestions, specialBody, textBody } from './message-body.js';
import { FILTERS, channelLabel, choiceLabel, exportDialog, filtersFrom, queryOf } from './history-common.js';

const $ = (id) => document.getElementById(id);
const form = $('history-filters');
const table = $('history-table');
const ALL_COLUMNS = JSON.parse($('history-columns').textContent);

const state = {
  filters: filtersFrom(location.search),
  page: Math.max(1, Number(new URLSearchParams(location.search).get('page')) || 1),
  perPage: Number(new URLSearchParams(location.search).get('per_page')) || 20,
  columns: null, // the agent's choice, from the server
  result: null,
  agents: [],
  openId: null,
};

// ---- cells -------------------------------------------------------------------------------

const yes = (value) => (value ? t('history.yes') : t('history.no'));

function chips(list) {
  return (list || []).map((tag) => el('span', { class: 'chip', text: tag }));
}

/** One cell of a row: always built from text nodes. */
function cell(name, row) {
  switch (name) {
    case 'visitor':
      return el('td', { class: 'c-visitor' }, el('a', {
        href: `#c${row.id}`, class: 'visitor-link', text: row.visitor || t('ws.visitor', { id: row.visitor_id }),
        onclick: (e) => { e.preventDefault(); e.stopPropagation(); openTranscript(row.id); },
      }));
    case 'started_at':
    case 'ended_at':
      return el('td', { class: 'nowrap', text: fmtTime(row[name], true) });
    case 'duration_s':
    case 'first_response_s':
      return el('td', { class: 'nowrap', text: fmtDuration(row[name]) });
    case 'tags':
      return el('td', {}, chips(row.tags));
    case 'rating':
      return el('td', { dataset: { rating: row.rating }, text: choiceLabel('rating', row.rating) });
    case 'rating_comment':
      return el('td', { class: 'c-comment', title: row.rating_comment || '', text: row.rating_comment || '' });
    case 'device':
      return el('td', { text: deviceLabel(row.device) });
    case 'source':
      return el('td', { text: row.source ? t(`source.${row.source}`) : '' });
    case 'platform':
      return el('td', { text: row.platform ? t(`platform.${row.platform}`) : '' });
    case 'region':
      return el('td', { text: regionText(row.region) });
    case 'channel':
      return el('td', { dataset: { channel: row.channel }, text: channelLabel(row.channel) });
    case 'visit_trail': {
      const trail = row.visit_trail || [];
      return el('td', { title: trail.map((p) => p.title || p.url).join('\n'), text: trail.length ? t('history.pages_visited', { n: trail.length }) : '' });
    }
    case 'visitor_messages':
    case 'agent_messages':
      return el('td', { class: 'num', text: row[name] });
    default:
      return el('td', { text: row[name] ?? '' });
  }
}

function flags(row) {
  const marks = [];
  if (row.invalid) marks.push(el('span', { class: 'flag invalid', text: t('history.flag.invalid') }));
  if (row.missed) marks.push(el('span', { class: 'flag missed', text: t('history.flag.missed') }));
  return marks;
}

// ---- table --------------------------------------------------------------------------------

function renderTable() {
  const { result } = state;
  const columns = state.columns;
  const head = clear(table.querySelector('thead tr'));
  for (const name of columns) head.append(el('th', { dataset: { col: name }, scope: 'col', text: t(`history.col.${name}`) }));
  const body = clear(table.querySelector('tbody'));
  if (!result.items.length) {
    body.append(el('tr', { class: 'empty' }, el('td', { colspan: columns.length, class: 'muted', text: t('history.empty') })));
  }
  for (const row of result.items) {
    const tr = el('tr', { dataset: { id: row.id }, tabindex: 0, class: row.id === state.openId ? 'current' : '' },
      columns.map((name) => {
        const td = cell(name, row);
        td.dataset.col = name;
        return td;
      }));
    const first = tr.firstChild;
    if (first) first.append(...flags(row));
    tr.addEventListener('click', () => openTranscript(row.id));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') openTranscript(row.id); });
    body.append(tr);
  }
  const pages = Math.max(1, Math.ceil(result.total / result.per_page));
  $('history-total').textContent = t('history.total', { total: result.total });
  $('page-info').textContent = t('history.page', { page: result.page, pages });
  $('page-prev').disabled = result.page <= 1;
  $('page-next').disabled = result.page >= pages;
}

function pushUrl() {
  const query = queryOf(state.filters);
  const params = new URLSearchParams(query);
  if (state.page > 1) params.set('page', state.page);
  if (state.perPage !== 20) params.set('per_page', state.perPage);
  const lang = new URLSearchParams(location.search).get('lang');
  if (lang) params.set('lang', lang);
  const search = params.toString();
  const url = `${location.pathname}${search ? `?${search}` : ''}${state.openId ? `#c${state.openId}` : ''}`;
  history.replaceState(null, '', url);
  $('exports-link').href = `/history/exports${query ? `?${query}` : ''}`;
}

let loading = 0; // the latest request: an older answer arriving late is dropped

async function load() {
  const params = new URLSearchParams(queryOf(state.filters));
  params.set('page', state.page);
  params.set('per_page', state.perPage);
  const mine = (loading += 1);
  table.setAttribute('aria-busy', 'true');
  try {
    const result = await api('GET', `/history?${params}`);
    if (mine !== loading) return;
    formError(form, null);
    state.result = result;
    state.columns = result.columns;
    pushUrl();
    renderTable();
  } catch (error) {
    if (mine !== loading) return;
    formError(form, error);
    if (error.field) $('more-filters').open = $('more-filters').open || !!$('more-filters').querySelector(`[name="${error.field}"]`);
  } finally {
    if (mine === loading) table.removeAttribute('aria-busy');
  }
}

// ---- the filter form ----------------------------------------------------------------------

function fillForm() {
  for (const name of FILTERS) {
    const input = form.elements[name];
    if (input) input.value = state.filters[name] || '';
  }
  const more = $('more-filters');
  more.open = [...more.querySelectorAll('[name]')].some((input) => input.value);
  $('per-page').value = String(state.perPage);
}

function readForm() {
  const filters = {};
  for (const name of FILTERS) {
    const input = form.elements[name];
    const value = input ? String(input.value).trim() : '';
    if (value) filters[name] = value;
  }
  return filters;
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  state.filters = readForm();
  state.page = 1;
  load();
});
$('clear-filters').addEventListener('click', () => {
  state.filters = {};
  state.page = 1;
  fillForm();
  load();
});
$('per-page').addEventListener('change', () => {
  state.perPage = Number($('per-page').value);
  state.page = 1;
  load();
});
$('page-prev').addEventListener('click', () => { state.page -= 1; load(); });
$('page-next').addEventListener('click', () => { state.page += 1; load(); });

// ---- column chooser -----------------------------------------------------------------------

function columnItem(name, shown) {
  const item = el('li', { class: 'col-item', draggable: 'true', dataset: { col: name } },
    el('span', { class: 'grip', 'aria-hidden': 'true', text: '⋮⋮' }),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'show', value: name, checked: shown }), t(`history.col.${name}`)),
    el('span', { class: 'row-actions' },
      el('button', { type: 'button', class: 'link small up', title: t('history.move_up'), 'aria-label': t('history.move_up'), text: '↑',
        onclick: () => { if (item.previousElementSibling) item.previousElementSibling.before(item); } }),
      el('button', { type: 'button', class: 'link small down', title: t('history.move_down'), 'aria-label': t('history.move_down'), text: '↓',
        onclick: () => { if (item.nextElementSibling) item.nextElementSibling.after(item); } })));
  return item;
}

/** Drag to reorder: the dragged item moves before/after the one under the pointer. */
function sortable(list) {
  let dragged = null;
  list.addEventListener('dragstart', (e) => {
    dragged = e.target.closest('.col-item');
    if (!dragged) return;
    dragged.classList.add('dragging');
    e.dataTransfer.effectAllowed = 'move';
    e.dataTransfer.setData('text/plain', dragged.dataset.col);
  });
  list.addEventListener('dragover', (e) => {
    const over = e.target.closest('.col-item');
    if (!dragged || !over || over === dragged) return;
    e.preventDefault();
    const box = over.getBoundingClientRect();
    if (e.clientY < box.top + box.height / 2) over.before(dragged);
    else over.after(dragged);
  });
  list.addEventListener('drop', (e) => e.preventDefault());
  list.addEventListener('dragend', () => {
    if (dragged) dragged.classList.remove('dragging');
    dragged = null;
  });
}

function chooseColumns() {
  const chosen = state.columns || ALL_COLUMNS;
  const order = [...chosen, ...ALL_COLUMNS.filter((c) => !chosen.includes(c))];
  const list = el('ol', { class: 'col-list', id: 'column-list' }, order.map((name) => columnItem(name, chosen.includes(name))));
  sortable(list);
  const form = el('form', { class: 'columns-form', novalidate: true },
    el('p', { class: 'hint', text: t('history.columns_hint') }), list,
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'columns-default', text: t('history.columns_default'), onclick: () => {
        list.replaceChildren(...ALL_COLUMNS.map((name) => columnItem(name, true)));
      } }),
      el('button', { type: 'submit', class: 'primary', text: t('ui.save') })));
  const box = dialog(t('history.columns'), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const columns = [...list.querySelectorAll('input[name=show]')].filter((i) => i.checked).map((i) => i.value);
    if (!columns.length) {
      formError(form, { message: t('history.columns_none') });
      return;
    }
    try {
      const saved = await api('PUT', '/history/columns', { columns });
      state.columns = saved.columns;
      box.close();
      renderTable();
      toast(t('ui.saved'));
    } catch (error) {
      formError(form, error);
    }
  });
}

$('choose-columns').addEventListener('click', chooseColumns);

// ---- export -------------------------------------------------------------------------------

$('start-export').addEventListener('click', () => {
  const total = state.result ? state.result.total : null;
  exportDialog(state.filters, total, state.agents, (created) => {
    location.href = `/history/exports#e${created.id}`;
  });
});

// ---- transcript ---------------------------------------------------------------------------

function facts(node, pairs) {
  clear(node);
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== '');
  if (!shown.length) node.append(el('dd', { class: 'muted', text: t('ui.none') }));
  for (const [label, value, key] of shown) {
    node.append(el('dt', { text: label }), el('dd', { dataset: key ? { fact: key } : {} }, value instanceof Node ? value : String(value)));
  }
}

function senderName(m, customer) {
  if (m.sender_kind === 'visitor') return customer.name || t('ws.visitor', { id: customer.id });
  if (m.sender_kind === 'bot') return t('widget.bot');
  if (m.sender_kind === 'system') return t('ws.system');
  const real = state.agents.find((a) => a.id === m.agent_id);
  return real ? real.name : m.sender_name;
}

function messageBody(m) {
  const special = specialBody(m);
  if (special) return special;
  const text = textBody(m); // a bot's or agent's links and images drawn as in the chat
  const offered = offeredQuestions(m);  // a "did you mean": what the visitor was offered
  return offered ? el('span', {}, text, offered) : text;
}

function messageItem(m, customer) {
  const internal = m.visibility === 'internal';
  const classes = ['ws-msg', `from-${m.sender_kind}`, internal ? 'internal' : '', m.anonymous ? 'anonymous' : '', m.kind === 'event' ? 'event' : ''];
  return el('li', { class: classes.filter(Boolean).join(' '), dataset: { id: m.id } },
    el('div', { class: 'meta' }, el('span', { class: 'who', text: senderName(m, customer) }),
      internal ? el('span', { class: 'tag internal-tag', title: t('history.internal_hint'), text: t('history.internal_note') }) : null,
      m.anonymous ? el('span', { class: 'tag anon-tag', text: t('ws.anon_as', { name: m.sender_name }) }) : null,
      el('span', { class: 'muted small', text: fmtTime(m.created_at, true) })),
    el('div', { class: 'bubble' }, messageBody(m)));
}

async function allMessages(id) {
  const found = [];
  let after = 0;
  for (;;) {
    const { messages } = await api('GET', `/conversations/${id}/messages?after=${after}`);
    found.push(...messages);
    if (messages.length < 500) return found;
    after = messages[messages.length - 1].id;
  }
}

async function openTranscript(id) {
  state.openId = id;
  pushUrl();
  table.querySelectorAll('tbody tr').forEach((tr) => tr.classList.toggle('current', Number(tr.dataset.id) === id));
  const drawer = $('transcript');
  const wasHidden = drawer.hidden;
  drawer.hidden = false;
  if (wasHidden) $('transcript-close').focus();
  drawer.setAttribute('aria-busy', 'true');
  $('transcript-title').textContent = t('ui.loading');
  $('transcript-sub').textContent = '';
  const list = clear($('transcript-messages'));
  let conversation;
  let messages;
  try {
    [conversation, messages] = await Promise.all([api('GET', `/conversations/${id}`), allMessages(id)]);
  } catch (error) {
    if (state.openId === id) {
      $('transcript-title').textContent = error.message;
      drawer.removeAttribute('aria-busy');
    }
    return;
  }
  if (state.openId !== id) return;
  const customer = conversation.customer;
  const row = (state.result && state.result.items.find((r) => r.id === id)) || null;
  $('transcript-title').textContent = customer.name || t('ws.visitor', { id: customer.id });
  $('transcript-sub').textContent = `#${id} · ${t(`cstatus.${conversation.status}`)}`;
  const handler = state.agents.find((a) => a.id === conversation.handler_id);
  const r = row || {};
  facts($('transcript-figures'), [
    [t('history.col.agent'), handler ? handler.name : r.agent, 'agent'],
    [t('history.col.started_at'), fmtTime(conversation.created_at, true), 'started_at'],
    [t('history.col.ended_at'), fmtTime(r.ended_at, true), 'ended_at'],
    [t('history.col.duration_s'), row ? fmtDuration(r.duration_s) : '', 'duration_s'],
    [t('history.col.first_response_s'), row ? fmtDuration(r.first_response_s) : '', 'first_response_s'],
    [t('history.col.visitor_messages'), r.visitor_messages, 'visitor_messages'],
    [t('history.col.agent_messages'), r.agent_messages, 'agent_messages'],
    [t('history.col.rating'), choiceLabel('rating', conversation.rating || 'none'), 'rating'],
    [t('history.col.rating_comment'), conversation.rating_comment, 'rating_comment'],
    [t('history.col.grade'), r.grade, 'grade'],
    [t('history.col.lead'), r.lead, 'lead'],
    [t('history.f.invalid'), row ? yes(r.invalid) : '', 'invalid'],
    [t('history.f.missed'), row ? yes(r.missed) : '', 'missed'],
    [t('history.col.tags'), (conversation.tags || []).length ? el('span', {}, chips(conversation.tags)) : '', 'tags'],
    [t('history.col.summary'), conversation.summary, 'summary'],
  ]);
  const v = customer.visit || {};
  facts($('transcript-visit'), [
    [t('visit.device'), deviceLabel(r.device || [v.device, v.os, v.browser].filter(Boolean).join(' / '))],
    [t('visit.platform'), (r.platform || v.platform) ? t(`platform.${r.platform || v.platform}`) : ''],
    [t('visit.region'), regionText(r.region || v.region)], [t('visit.ip'), r.ip || v.ip],
    [t('visit.source'), (r.source || v.source) ? t(`source.${r.source || v.source}`) : ''],
    [t('visit.keyword'), r.search_keyword || v.search_keyword], [t('visit.landing'), v.landing_page], [t('visit.referrer'), v.referrer],
    [t('history.col.visit_trail'), (r.visit_trail || []).length ? el('ol', { class: 'trail' },
      r.visit_trail.map((p) => el('li', { text: p.title ? `${p.title} · ${p.url}` : p.url }))) : ''],
  ]);
  facts($('transcript-customer'), [
    [t('card.name'), customer.name], [t('card.phone'), customer.phone], [t('card.email'), customer.email],
    [t('card.company'), customer.company], [t('card.address'), customer.address], [t('card.note'), customer.note],
    [t('card.tags'), (customer.tags || []).length ? el('span', {}, chips(customer.tags)) : ''],
  ]);
  if (!messages.length) list.append(el('li', { class: 'muted', text: t('history.no_messages') }));
  for (const m of messages) list.append(messageItem(m, customer));
  drawer.removeAttribute('aria-busy');
}

function closeTranscript() {
  const row = table.querySelector(`tbody tr[data-id="${state.openId}"]`);
  state.openId = null;
  $('transcript').hidden = true;
  table.querySelectorAll('tbody tr.current').forEach((tr) => tr.classList.remove('current'));
  pushUrl();
  if (row) row.focus(); // back where the keyboard was
}

$('transcript-close').addEventListener('click', closeTranscript);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('transcript').hidden && !document.querySelector('dialog[open]')) closeTranscript();
});

// ---- start --------------------------------------------------------------------------------

async function start() {
  fillForm();
  const [agents, rules] = await Promise.all([
    api('GET', '/agents').catch(() => []),
    api('GET', '/conversation-rules').catch(() => ({ grades: [] })),
  ]);
  state.agents = agents;
  const select = form.elements.agent_id;
  for (const agent of agents) select.append(el('option', { value: agent.id, text: agent.name }));
  select.value = state.filters.agent_id || '';
  const grades = $('grade-list');
  for (const g of rules.grades || []) grades.append(el('option', { value: g.grade }));
  const match = /^#c(\d+)$/.exec(location.hash);
  if (match) state.openId = Number(match[1]);
  await load();
  // Enabled once the agents and the first page are here: the column chooser shows the
  // agent's saved choice (before it, every column, which a save would have stored), and
  // the export dialog names the filter's agent and the count.
  $('choose-columns').disabled = false;
  $('start-export').disabled = false;
  if (match) openTranscript(state.openId);
}

start().catch((error) => toast(error.message, 'error'));
