// The visitor's tickets (留言) inside the widget panel:
// - the leave-a-message form: the contact the team asks for, the content, and attachments
//   uploaded with progress inside the limits the server enforces; the server's refusals are
//   shown in the page's language (error code + field -> a string, the server's text if none);
// - "my messages": his tickets with their status and public replies, replies that came
//   since his last visit flagged as new on load (GET /widget/tickets), marked read once shown.
// Everything the visitor or an agent typed is only ever set with textContent (an agent's
// ticket's links and images are built as nodes by rich-text.js).
import { WIDGET_KEYS, lengthLimit } from './length-limit.js';
import { richText } from './rich-text.js';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const MB = 1024 * 1024;

/** Which string says what went wrong with the form, from the server's error and what was sent. */
const FORM_ERRORS = {
  'invalid:phone': (sent, limits) => (sent.phone || '').trim() ? 'widget.err.phone_invalid'
    : (limits.ask_email ? 'widget.err.contact_required' : 'widget.err.phone_required'),
  'invalid:email': (sent, limits) => (sent.email || '').trim() ? 'widget.err.email_invalid'
    : (limits.ask_phone ? 'widget.err.contact_required' : 'widget.err.email_required'),
  'invalid:name': (sent) => (sent.name || '').trim() ? 'widget.err.name_too_long' : 'widget.err.name_required',
  'invalid:content': (sent) => (sent.content || '').trim() ? 'widget.err.content_too_long' : 'widget.err.content_required',
  'invalid:attachments': (sent, limits) => (!limits.allow_attachments ? 'widget.err.attachments_off'
    : (sent.attachments || []).length > limits.max_attachments ? 'widget.err.attachments_too_many'
      : 'widget.err.attachments_invalid'),
  'too_large:attachments': () => 'widget.err.attachments_too_large',
  'not_found:': () => 'widget.err.conversation_gone',
  'rate_limited:': () => 'widget.err.rate_limited',
  // 503: the database busy or unreachable. The server's text names it; the visitor is told
  // what the chat tells him (the form and what he typed stay, to be sent again).
  'unavailable:': () => 'widget.busy.later',
};

/**
 * The localised message for a refused leave-a-message form.
 * @param {{code?: string, field?: string, status?: number, message: string}} error as thrown by call()
 * @param {object} sent the body that was sent
 * @param {object} limits the form's limits (GET /widget/ticket-form)
 * @param {(key: string, values?: object) => string} T the widget's strings
 * @param {object} strings the catalogue, to tell a known key from a missing one
 */
export function formErrorText(error, sent, limits, T, strings) {
  if (error.status === undefined) return T('widget.err.network');
  const pick = FORM_ERRORS[`${error.code}:${error.field || ''}`];
  const key = pick && pick(sent, limits);
  if (!key || !(key in strings)) return error.message;
  return T(key, { max: limits.max_content, n: limits.max_attachments, mb: Math.round(limits.max_attachment_bytes / MB) });
}

/**
 * Every required thing the visitor left empty, the message first, as the server asks for
 * them (services/tickets.py): the message; with require_contact, a phone or an email (those
 * the form asks for), or the name when it asks for neither. An empty form said only "leave
 * a phone or email", not that the message was missing too (a Chinese support lead).
 * @param {object} sent the body about to be sent
 * @param {object} limits the form's settings (GET /widget/ticket-form)
 * @returns {{field: string, key: string}[]}
 */
export function missingFields(sent, limits) {
  const blank = (name) => !(sent[name] || '').trim();
  const missing = [];
  if (blank('content')) missing.push({ field: 'content', key: 'widget.err.content_required' });
  if (!limits.require_contact) return missing;
  const asked = ['phone', 'email'].filter((name) => limits[`ask_${name}`]);
  if (asked.length && asked.every(blank)) {
    const key = asked.length > 1 ? 'widget.err.contact_required'
      : { phone: 'widget.err.phone_required', email: 'widget.err.email_required' }[asked[0]];
    missing.push({ field: asked[0], key });
  } else if (!asked.length && limits.ask_name && blank('name')) {
    missing.push({ field: 'name', key: 'widget.err.name_required' });
  }
  return missing;
}

export function createTickets({ T, el, call, state, boot, list, scrollDown, onUnread }) {
  let tickets = [];
  let unread = 0;

  const badge = el('span', { class: 'mq-tickets-badge', hidden: true });
  const button = el('button', { type: 'button', id: 'mq-tickets-btn', class: 'mq-human mq-tickets-btn', hidden: true, onclick: openList },
    T('widget.tickets.open'), badge);
  document.getElementById('mq-human').before(button);
  const notice = el('div', { id: 'mq-ticket-notice', class: 'mq-banner mq-ticket-notice', role: 'status', hidden: true });
  document.getElementById('mq-banner').after(notice);
  const panel = el('section', { id: 'mq-tickets', class: 'mq-tickets', hidden: true, 'aria-labelledby': 'mq-tickets-title' });
  list.after(panel);

  const when = (iso) => {
    try {
      // The team's clock and the agents' pages' format (lib.js fmtTime with the date:
      // 2026/12/06 23:51, never 2026/12/6), so the ticket pages quote the same times.
      return new Date(iso).toLocaleString(boot.lang, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: boot.team.timezone || 'Asia/Shanghai' });
    } catch {
      return iso;
    }
  };

  function showCounts() {
    unread = tickets.reduce((n, t) => n + (t.unread || 0), 0);
    button.hidden = !tickets.length;
    badge.hidden = !unread;
    badge.textContent = unread > 99 ? '99+' : String(unread);
    if (unread && panel.hidden) {
      notice.hidden = false;
      notice.replaceChildren(
        el('span', { text: T(unread === 1 ? 'widget.tickets.new_replies' : 'widget.tickets.new_replies_many', { n: unread }) }),
        el('button', { type: 'button', class: 'mq-link', text: T('widget.tickets.view'), onclick: openList }));
    } else {
      notice.hidden = true;
    }
    onUnread();
  }

  /** The visitor's tickets from the server: on load, after he leaves one, when he opens them. */
  async function load() {
    try {
      tickets = await call('GET', '/widget/tickets');
    } catch {
      return false;
    }
    showCounts();
    return true;
  }

  function replyNode(reply) {
    return el('li', { class: `mq-reply${reply.unread ? ' unread' : ''}`, 'data-id': reply.id },
      el('div', { class: 'mq-reply-meta' },
        reply.unread ? el('span', { class: 'mq-new', text: T('widget.tickets.new') }) : null,
        el('span', { text: T('widget.tickets.reply') }),
        el('time', { datetime: reply.created_at, text: when(reply.created_at) })),
      el('div', { class: 'mq-reply-body', text: reply.body }));
  }

  function ticketNode(ticket) {
    return el('li', { class: 'mq-ticket', 'data-id': ticket.id, 'data-status': ticket.status },
      el('div', { class: 'mq-ticket-meta' },
        el('span', { class: `mq-ticket-status s-${ticket.status}`, text: T(`widget.tickets.status.${ticket.status}`) }),
        el('span', { text: T('widget.tickets.number', { id: ticket.id }) }),
        el('time', { datetime: ticket.created_at, text: when(ticket.created_at) })),
      // An agent's ticket (a chat's transcript) may hold the bot's links and images: drawn
      // as the chat draws them (rich-text.js, never HTML); what the visitor wrote stays text.
      ticket.source === 'agent_created' ? el('p', { class: 'mq-ticket-content' }, richText(ticket.content))
        : el('p', { class: 'mq-ticket-content', text: ticket.content }),
      ticket.replies.length ? el('ol', { class: 'mq-replies' }, ticket.replies.map(replyNode))
        : el('p', { class: 'mq-hint', text: T('widget.tickets.no_reply') }));
  }

  function renderList(body) {
    panel.replaceChildren(
      el('div', { class: 'mq-tickets-head' },
        el('button', { type: 'button', class: 'mq-link mq-tickets-back', text: `← ${T('widget.tickets.back')}`, onclick: closeList }),
        el('strong', { id: 'mq-tickets-title', text: T('widget.tickets.title') })),
      body);
  }

  async function openList() {
    document.body.classList.add('mq-show-tickets');
    panel.hidden = false;
    notice.hidden = true;
    renderList(el('p', { class: 'mq-hint', text: T('widget.tickets.loading') }));
    if (!(await load())) {
      renderList(el('p', { class: 'mq-error', text: T('widget.tickets.load_failed') }));
      return;
    }
    renderList(tickets.length ? el('ol', { class: 'mq-ticket-list' }, tickets.map(ticketNode))
      : el('p', { class: 'mq-hint', text: T('widget.tickets.empty') }));
    // Shown: read now (they keep their "new" mark until he leaves this view). Up to the
    // newest reply drawn, so one that arrives meanwhile stays new.
    await Promise.all(tickets.filter((t) => t.unread).map(async (ticket) => {
      try {
        const upTo = Math.max(...ticket.replies.map((r) => r.id));
        const fresh = await call('POST', `/widget/tickets/${ticket.id}/read`, { up_to: upTo });
        tickets[tickets.indexOf(ticket)] = fresh;
      } catch {
        // Still new next time.
      }
    }));
    showCounts();
  }

  function closeList() {
    document.body.classList.remove('mq-show-tickets');
    panel.hidden = true;
    showCounts();
    scrollDown();
  }

  // --- the leave-a-message form ---------------------------------------------------

  async function formLimits() {
    const fallback = { ...boot.team.ticket_form, max_content: 5000, max_attachments: boot.team.ticket_form.allow_attachments ? 5 : 0, max_attachment_bytes: 20 * MB };
    try {
      return { ...fallback, ...(await call('GET', '/widget/ticket-form')) };
    } catch {
      return fallback;
    }
  }

  function attachments(limits, error) {
    const items = [];
    const listNode = el('ul', { class: 'mq-attachments' });
    const picker = el('input', { type: 'file', name: 'files', multiple: true, class: 'mq-attach-input' });
    const say = (text) => { error.hidden = !text; error.textContent = text || ''; };
    const total = () => items.reduce((n, item) => n + item.file.size, 0);

    function upload(item) {
      const conversationId = state.conversation && state.conversation.conversation_id;
      const form = new FormData();
      form.append('file', item.file);
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open('POST', `/api/v1/widget/conversations/${conversationId}/ticket-uploads?kind=${item.kind}`);
      xhr.setRequestHeader('X-Visitor-Token', state.token);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('X-Meiqia-Lang', boot.lang);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) item.progress.value = Math.round((e.loaded / e.total) * 100);
      };
      xhr.onload = () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 201 && data.key) {
          item.key = data.key;
          item.progress.value = 100;
          item.node.dataset.state = 'done';
          return;
        }
        item.node.dataset.state = 'failed';
        const err = data.error || {};
        if (xhr.status === 413) say(T('widget.too_big', { name: item.file.name, mb: Math.round(item.limit / MB) }));
        else if (xhr.status === 422 && err.field === 'file' && item.kind === 'image') say(T('widget.err.file_type', { name: item.file.name }));
        else say(err.message || T('widget.upload_failed'));
      };
      xhr.onerror = () => { item.node.dataset.state = 'failed'; say(T('widget.err.network')); };
      xhr.send(form);
    }

    function remove(item) {
      if (item.xhr && item.node.dataset.state === 'uploading') item.xhr.abort();
      items.splice(items.indexOf(item), 1);
      item.node.remove();
      say('');
    }

    function add(files) {
      say('');
      for (const file of files) {
        if (items.length >= limits.max_attachments) {
          say(T('widget.err.attachments_too_many', { n: limits.max_attachments }));
          break;
        }
        const kind = IMAGE_TYPES.has(file.type) ? 'image' : 'file';
        const limit = Math.min(boot.limits[kind] || Infinity, limits.max_attachment_bytes);
        if (file.size > limit) {
          say(T('widget.too_big', { name: file.name, mb: Math.round(limit / MB) }));
          continue;
        }
        if (total() + file.size > limits.max_attachment_bytes) {
          say(T('widget.err.attachments_too_large', { mb: Math.round(limits.max_attachment_bytes / MB) }));
          continue;
        }
        const item = { file, kind, limit, key: null };
        item.progress = el('progress', { max: 100, value: 0, 'aria-label': T('widget.leave.uploading') });
        item.node = el('li', { class: 'mq-attachment', 'data-state': 'uploading' },
          el('span', { class: 'mq-attachment-name', text: file.name }), item.progress,
          el('button', { type: 'button', class: 'mq-link mq-attachment-remove', text: '×', 'aria-label': T('widget.leave.remove', { name: file.name }), onclick: () => remove(item) }));
        items.push(item);
        listNode.append(item.node);
        upload(item);
      }
      scrollDown();
    }

    picker.addEventListener('change', () => { add([...picker.files]); picker.value = ''; });
    const node = el('div', { class: 'mq-attach-box' },
      el('label', { class: 'mq-attach' }, T('widget.leave.attach'), picker),
      el('span', { class: 'mq-hint', text: T('widget.leave.attach_hint', { n: limits.max_attachments, mb: Math.round(limits.max_attachment_bytes / MB) }) }),
      listNode);
    return {
      node,
      busy: () => items.some((item) => item.node.dataset.state === 'uploading'),
      keys: () => items.filter((item) => item.key).map((item) => item.key),
    };
  }

  let building = false;
  async function showLeaveMessage() {
    const existing = document.querySelector('.mq-leave');
    if (existing || building) {
      if (existing) existing.scrollIntoView({ block: 'nearest' });
      return;
    }
    building = true;
    let limits;
    try {
      limits = await formLimits();
    } finally {
      building = false;
    }
    if (document.querySelector('.mq-leave')) return;
    const field = (name, type, label, max) => el('label', {}, label, el('input', { name, type, maxlength: max }));
    const error = el('p', { class: 'mq-error', role: 'alert', hidden: true });
    const files = limits.allow_attachments && limits.max_attachments > 0 ? attachments(limits, error) : null;
    // No maxlength on the content: a longer paste would be cut without a word. The note
    // counts near the limit and, over it, says so; nothing is sent and the text stays.
    const content = el('textarea', { name: 'content', rows: 3, required: true });
    const count = el('div', { class: 'mq-count', hidden: true });
    const limit = lengthLimit(content, count, limits.max_content, T, WIDGET_KEYS);
    const node = el('form', { class: 'mq-card mq-leave', novalidate: true },
      el('strong', { text: T('widget.leave.title') }),
      el('p', { class: 'mq-hint', text: T('widget.leave.hint') }),
      limits.ask_name ? field('name', 'text', T('widget.leave.name'), 120) : null,
      limits.ask_phone ? field('phone', 'tel', T('widget.leave.phone'), 40) : null,
      limits.ask_email ? field('email', 'email', T('widget.leave.email'), 254) : null,
      el('label', {}, T('widget.leave.content'), content), count,
      files ? files.node : null,
      error,
      el('div', { class: 'mq-actions' },
        el('button', { type: 'button', class: 'mq-link', text: T('widget.cancel'), onclick: () => node.closest('li').remove() }),
        el('button', { type: 'submit', class: 'mq-primary', text: T('widget.leave.submit') })));
    node.addEventListener('submit', async (event) => {
      event.preventDefault();
      node.querySelectorAll('[aria-invalid]').forEach((n) => n.removeAttribute('aria-invalid'));
      if (files && files.busy()) {
        error.hidden = false;
        error.textContent = T('widget.leave.wait_uploads');
        return;
      }
      if (!limit.fits()) {
        content.focus();
        return;
      }
      const body = { content: node.elements.content.value, conversation_id: state.conversation ? state.conversation.conversation_id : null };
      for (const key of ['name', 'phone', 'email']) if (node.elements[key]) body[key] = node.elements[key].value;
      if (files && files.keys().length) body.attachments = files.keys();
      // Everything missing at once, one line each (the server would name only the first).
      const missing = missingFields(body, limits);
      if (missing.length) {
        error.hidden = false;
        error.replaceChildren(...missing.flatMap((m, i) => (i ? [el('br'), T(m.key)] : [T(m.key)])));
        for (const m of missing) if (node.elements[m.field]) node.elements[m.field].setAttribute('aria-invalid', 'true');
        node.elements[missing[0].field]?.focus();
        return;
      }
      const submit = node.querySelector('button[type=submit]');
      submit.disabled = true;
      try {
        await call('POST', '/widget/tickets', body);
        node.replaceWith(el('p', { class: 'mq-card mq-thanks', text: T('widget.leave.thanks') }));
        scrollDown();
        load();
      } catch (e) {
        error.hidden = false;
        error.textContent = formErrorText(e, body, limits, T, boot.i18n);
        if (e.field && node.elements[e.field]) node.elements[e.field].setAttribute('aria-invalid', 'true');
      } finally {
        submit.disabled = false;
      }
    });
    list.append(el('li', { class: 'mq-extra-item' }, node));
    scrollDown();
  }

  return { load, showLeaveMessage, openList, unread: () => unread };
}
