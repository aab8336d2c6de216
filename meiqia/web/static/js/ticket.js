// One ticket: content, the customer's contact, status / priority / assignee / group / tags,
// comments (internal notes and public replies), the change history and the transcript.
import { api, clear, dialog, el, fmtTime, formError, t, toast } from './lib.js';
import { LIST_KEY, agentName, groupName, loadPeople } from './tickets-common.js';
import { MAX_BODY, UI_KEYS, lengthLimit } from './length-limit.js';
import { textBody } from './message-body.js';
import { richText } from './rich-text.js';

const config = JSON.parse(document.getElementById('tk-config').textContent);
const page = document.getElementById('ticket');
const props = document.getElementById('tk-props');
const commentForm = document.getElementById('tk-comment-form');
const REFRESH_MS = 30_000;
let ticket = null;
let people = { agents: [], groups: [] };

const back = sessionStorage.getItem(LIST_KEY);
if (back !== null) document.getElementById('tk-back').href = `/tickets${back}`;

function who(kind, id) {
  if (kind === 'visitor') return t('tk.customer');
  if (kind === 'system' || !id) return t('tk.system');
  return agentName(people, id);
}

/** A history value in words: statuses, priorities, agents and groups by name. */
function valueText(field, value) {
  if (value === '' || value === null || value === undefined) return t('tk.nothing');
  if (field === 'status') return t(`tstatus.${value}`);
  if (field === 'priority') return t(`priority.${value}`);
  if (field === 'assignee') return agentName(people, value);
  if (field === 'group') return groupName(people, value);
  return value;
}

function historyLine(event) {
  if (event.field === 'created') return t('tk.ev.created', { source: t(`tk.source.${event.new}`) });
  if (event.field === 'comment.internal') return t('tk.ev.note');
  if (event.field === 'comment.public') return t('tk.ev.reply');
  return t('tk.ev.changed', {
    field: t(`tk.field.${event.field}`), old: valueText(event.field, event.old), new: valueText(event.field, event.new),
  });
}

function renderHead() {
  document.title = `#${ticket.id} ${ticket.subject} · ${t('nav.tickets')}`;
  document.getElementById('tk-number').textContent = `#${ticket.id}`;
  document.getElementById('tk-subject').textContent = ticket.subject || t('tk.no_subject');
  const badge = document.getElementById('tk-status-badge');
  badge.className = `tk-status s-${ticket.status}`;
  badge.textContent = t(`tstatus.${ticket.status}`);
  const meta = [t(`tk.source.${ticket.source}`), t('tk.created_at', { time: fmtTime(ticket.created_at, true) })];
  if (ticket.created_by) meta.push(t('tk.created_by', { name: agentName(people, ticket.created_by) }));
  document.getElementById('tk-meta').textContent = meta.join(' · ');
}

function renderContent() {
  // An agent's ticket (often a chat's transcript) may hold the bot's links and images,
  // drawn as in the chat; what a visitor wrote stays text.
  const content = clear(document.getElementById('tk-content'));
  content.append(ticket.source === 'agent_created' ? richText(ticket.content) : ticket.content);
  const list = clear(document.getElementById('tk-attachments'));
  list.hidden = !ticket.attachments.length;
  for (const file of ticket.attachments) {
    list.append(el('li', {}, el('a', { href: file.url, target: '_blank', rel: 'noopener', text: file.name || file.key })));
  }
}

function renderProps() {
  const status = props.elements.status;
  clear(status);
  // In the ticket's life (config.statuses: open, pending, solved, closed), the current one in its place.
  const next = config.transitions[ticket.status] || [];
  const allowed = config.statuses.filter((s) => s === ticket.status || next.includes(s));
  for (const s of allowed) status.append(el('option', { value: s, text: t(`tstatus.${s}`), selected: s === ticket.status }));
  status.disabled = allowed.length === 1;
  props.elements.priority.value = ticket.priority;
  const assignee = props.elements.assignee_id;
  assignee.querySelectorAll('option[value]:not([value=""])').forEach((o) => o.remove());
  for (const agent of people.agents) {
    assignee.append(el('option', { value: String(agent.id), text: agent.display_name || agent.name }));
  }
  assignee.value = ticket.assignee_id ? String(ticket.assignee_id) : '';
  const group = props.elements.group_id;
  group.querySelectorAll('option[value]:not([value=""])').forEach((o) => o.remove());
  for (const g of people.groups) group.append(el('option', { value: String(g.id), text: g.name }));
  group.value = ticket.group_id ? String(ticket.group_id) : '';
  props.elements.tags.value = ticket.tags.join(', ');
}

function renderContact() {
  const box = clear(document.getElementById('tk-contact'));
  const { name, phone, email } = ticket.contact;
  const row = (label, value, href) => [el('dt', { text: label }),
    el('dd', {}, value ? (href ? el('a', { href, text: value }) : value) : el('span', { class: 'muted', text: '–' }))];
  box.append(...row(t('card.name'), name), ...row(t('card.phone'), phone, phone ? `tel:${phone}` : null),
    ...row(t('card.email'), email, email ? `mailto:${email}` : null));
}

function renderComments() {
  const list = clear(document.getElementById('tk-comments'));
  if (!ticket.comments.length) list.append(el('li', { class: 'muted empty', text: t('tk.no_comments') }));
  for (const c of ticket.comments) {
    list.append(el('li', { class: `tk-comment ${c.visibility}`, dataset: { id: c.id } },
      el('div', { class: 'meta' },
        el('strong', { text: who('agent', c.author_id) }),
        el('span', { class: `tag ${c.visibility === 'internal' ? 'internal-tag' : ''}`, text: t(`tk.${c.visibility}`) }),
        el('time', { datetime: c.created_at, class: 'muted', text: fmtTime(c.created_at, true) })),
      el('div', { class: 'body', text: c.body })));
  }
}

function renderHistory() {
  const list = clear(document.getElementById('tk-history'));
  for (const event of [...ticket.history].reverse()) {
    list.append(el('li', { dataset: { field: event.field } },
      el('span', { class: 'who', text: who(event.actor_kind, event.actor_id) }), ' ',
      el('span', { class: 'what', text: historyLine(event) }),
      el('time', { datetime: event.at, class: 'muted small', text: fmtTime(event.at, true) })));
  }
}

function renderTranscript() {
  const box = document.getElementById('tk-transcript-box');
  box.hidden = !ticket.transcript.length;
  const list = clear(document.getElementById('tk-transcript'));
  for (const m of ticket.transcript) {
    list.append(el('li', { class: `tk-line from-${m.sender}` },
      el('div', { class: 'meta' }, el('strong', { text: t(`tk.sender.${m.sender}`) }),
        el('time', { datetime: m.at, class: 'muted', text: fmtTime(m.at, true) })),
      el('div', { class: 'body' }, textBody({ sender_kind: m.sender, body: m.body }))));
  }
}

/** Whether a public reply is emailed, and if not why (e.g. no email sink configured):
 * the agent must not believe the customer got an email he never will. */
function renderReplyHint() {
  const hint = document.getElementById('tk-public-hint');
  hint.hidden = commentForm.elements.visibility.value !== 'public';
  const info = ticket.reply_email;
  if (!info) return;
  hint.textContent = info.will_email ? t('tk.public_hint_email', { email: ticket.contact.email })
    : t(`tk.public_hint_${info.reason}`);
  hint.dataset.reason = info.reason;
  hint.classList.toggle('warn', !info.will_email);
}

// The page comes with its controls disabled (the subject's edit button, the properties, the
// comment's send button): each acts on the ticket, which is not here until load() has it.
function enableControls() {
  document.getElementById('tk-edit-subject').disabled = false;
  commentForm.querySelector('button[type=submit]').disabled = false;
  for (const name of ['priority', 'assignee_id', 'group_id', 'tags']) props.elements[name].disabled = false;
}

function render() {
  renderHead();
  renderContent();
  renderProps();
  renderContact();
  renderComments();
  renderHistory();
  renderTranscript();
  renderReplyHint();
  page.setAttribute('aria-busy', 'false');
  page.dataset.status = ticket.status;
}

async function save(body) {
  props.setAttribute('aria-busy', 'true');
  try {
    ticket = await api('PATCH', `/tickets/${ticket.id}`, body);
    formError(props, null);
    toast(t('ui.saved'));
  } catch (error) {
    formError(props, error);
  } finally {
    props.removeAttribute('aria-busy');
    render();
  }
}

props.addEventListener('change', (event) => {
  const { name, value } = event.target;
  if (name === 'status' || name === 'priority') save({ [name]: value });
  else if (name === 'assignee_id' || name === 'group_id') save({ [name]: value ? Number(value) : null });
  else if (name === 'tags') save({ tags: value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean) });
});
props.addEventListener('submit', (event) => event.preventDefault());

document.getElementById('tk-edit-subject').addEventListener('click', () => {
  const input = el('input', { name: 'subject', maxlength: 200, value: ticket.subject, required: true });
  const form = el('form', { novalidate: true }, el('label', {}, t('tickets.subject'), input),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: t('ui.save') })));
  const box = dialog(t('tk.edit_subject'), form);
  input.select();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      ticket = await api('PATCH', `/tickets/${ticket.id}`, { subject: input.value });
      box.close();
      render();
      toast(t('ui.saved'));
    } catch (error) {
      formError(form, error);
    }
  });
});

commentForm.addEventListener('change', () => {
  if (ticket) renderReplyHint();
});
// A reply holds what a ticket's content may (tickets.MAX_CONTENT, as a chat message):
// over it, said under the box and not sent; the text stays to be shortened.
const commentLimit = lengthLimit(commentForm.elements.body, document.getElementById('tk-comment-count'), MAX_BODY, t, UI_KEYS);
commentForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!commentLimit.fits()) {
    commentForm.elements.body.focus();
    return;
  }
  const body = commentForm.elements.body.value;
  const visibility = commentForm.elements.visibility.value;
  const button = commentForm.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const sent = await api('POST', `/tickets/${ticket.id}/comments`, { body, visibility });
    formError(commentForm, null);
    commentForm.elements.body.value = '';
    commentLimit.reset();
    ticket = await api('GET', `/tickets/${ticket.id}`);
    render();
    if (visibility !== 'public') toast(t('tk.note_added'));
    else if (sent.email && sent.email.will_email) toast(t('tk.reply_sent_email'));
    else toast(t('tk.reply_not_emailed', { why: t(`tk.why.${sent.email ? sent.email.reason : 'not_queued'}`) }));
  } catch (error) {
    formError(commentForm, error);
  } finally {
    button.disabled = false;
  }
});
commentForm.elements.body.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) commentForm.requestSubmit();
});

async function load() {
  const [loaded, data] = await Promise.all([loadPeople(), api('GET', `/tickets/${config.ticket_id}`)]);
  people = loaded;
  ticket = data;
  render();
  enableControls();
}

/** A colleague's change shows up without a reload; the form being used is left alone. */
async function refresh() {
  if (document.hidden || !ticket || props.hasAttribute('aria-busy')) return;
  try {
    const data = await api('GET', `/tickets/${ticket.id}`);
    if (data.updated_at === ticket.updated_at) return;
    ticket = data;
    if (props.contains(document.activeElement)) {
      renderHead();
      renderComments();
      renderHistory();
    } else {
      render();
    }
  } catch (error) {
    // Keep what is shown; the next tick tries again.
  }
}

load().catch((error) => toast(error.message, 'error'));
setInterval(refresh, REFRESH_MS);
