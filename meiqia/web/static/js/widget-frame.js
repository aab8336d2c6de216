// The widget panel (inside the iframe of /widget/frame): session, websocket, messages,
// bot "did you mean", human, queue, leave-a-message, emoji, uploads, status, typing, rating.
// User text is only ever set with textContent; the bot's and agents' links and images
// are built as nodes by rich-text.js.
import { WIDGET_KEYS, lengthLimit } from './length-limit.js';
import { richSpan } from './rich-text.js';
import { ChatSocket } from './socket.js';
import { createTickets } from './widget-tickets.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
const T = (key, values) => {
  let text = boot.i18n[key] ?? key;
  if (values) text = text.replace(/\{(\w+)\}/g, (all, k) => (k in values ? String(values[k]) : all));
  return text;
};
const $ = (id) => document.getElementById(id);
const teamId = boot.team.id;
const store = {
  get(key) { try { return JSON.parse(localStorage.getItem(`meiqia.${teamId}.${key}`)); } catch { return null; } },
  set(key, value) { try { localStorage.setItem(`meiqia.${teamId}.${key}`, JSON.stringify(value)); } catch { /* private mode */ } },
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const state = {
  token: store.get('token'),
  conversation: null,
  lastId: 0,
  // The highest message position (seq) received: where the socket resumes (docs/protocol.md).
  lastSeq: 0,
  shown: new Map(),        // server id -> element
  pending: new Map(store.get('pending') || []), // client_msg_id -> {body}
  visible: window.parent === window,
  unread: 0,
  initData: null,
  socket: null,
  counter: 0,
};

const list = $('mq-messages');
const input = $('mq-input');
// "My messages" (the visitor's tickets) and the leave-a-message form. The closed widget's
// badge counts new ticket replies together with unread chat messages.
const tickets = createTickets({
  T, el, call, state, boot, list, scrollDown,
  onUnread: () => { if (!state.visible) tellParent('unread', { count: state.unread + tickets.unread() }); },
});

// Every request says the widget's language, so the server's refusals come back in it
// (web/error_text.py); the socket says it in its URL.
const LANG_HEADER = 'X-Meiqia-Lang';

async function call(method, path, body, isForm = false) {
  const headers = { Accept: 'application/json', [LANG_HEADER]: boot.lang };
  if (state.token) headers['X-Visitor-Token'] = state.token;
  if (body !== undefined && !isForm) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers, body: isForm ? body : (body === undefined ? undefined : JSON.stringify(body)),
    });
  } catch (e) {
    e.network = true;  // no answer at all: offline, or the server not reachable
    throw e;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || response.statusText);
    error.field = data.error && data.error.field;
    error.code = data.error && data.error.code;
    error.status = response.status;
    error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
    throw error;
  }
  return data;
}

function tellParent(type, data) {
  if (window.parent !== window) window.parent.postMessage({ meiqia: type, data }, '*');
}

function scrollDown() {
  list.scrollTop = list.scrollHeight;
}

function statusText(status) {
  return { sending: T('widget.status.sending'), sent: T('widget.status.sent'), delivered: T('widget.status.delivered'),
    read: T('widget.status.read'), failed: T('widget.status.failed') }[status] || '';
}

function attachmentNode(message) {
  const key = message.payload && message.payload.attachment;
  if (!key) return el('span', { text: message.body });
  const url = `/api/v1/attachments/${encodeURIComponent(key)}?token=${encodeURIComponent(state.token)}`;
  if (message.kind === 'image') {
    return el('a', { href: url, target: '_blank', rel: 'noopener' }, el('img', { src: url, alt: message.body, class: 'mq-img' }));
  }
  return el('a', { href: url, target: '_blank', rel: 'noopener', class: 'mq-filelink' }, '📄 ', message.body);
}

function messageNode(message) {
  const mine = message.sender_kind === 'visitor';
  if (message.kind === 'event') return eventNode(message);
  if (message.kind === 'rating_invite') {
    setTimeout(() => { if (!(state.conversation && state.conversation.rating)) showRating(); }, 0);
    return el('li', { class: 'mq-system', text: T('widget.rate_invite') });
  }
  const who = message.sender_kind === 'bot' ? T('widget.bot')
    : message.sender_kind === 'system' ? '' : (mine ? '' : message.sender_name);
  // The bot's and agents' text may hold links and images (KB answers); a visitor's is text.
  const text = () => (mine ? el('span', { class: 'mq-text', text: message.body }) : richSpan(message.body, 'mq-text'));
  const bubble = el('div', { class: 'mq-bubble' }, message.kind === 'text' ? text() : attachmentNode(message));
  const item = el('li', { class: `mq-msg ${mine ? 'mine' : 'theirs'} from-${message.sender_kind}` },
    who ? el('div', { class: 'mq-who', text: who }) : null, bubble);
  const payload = message.payload || {};
  if (payload.candidates && payload.candidates.length) {
    // The bot's message already asks "did you mean"; the hint is for an empty one.
    item.append(el('div', { class: 'mq-candidates' }, message.body ? null : el('div', { class: 'mq-hint', text: T('widget.did_you_mean') }),
      payload.candidates.map((c) => el('button', { type: 'button', class: 'mq-candidate', text: c.question, onclick: () => sendText(c.question) }))));
  }
  if (payload.offer_human) {
    // Only while the bot serves him: after a handover nobody offers a human any more.
    item.append(el('button', { type: 'button', class: 'mq-offer-human', text: T('widget.human'), onclick: askHuman,
      hidden: Boolean(state.conversation && state.conversation.status !== 'bot') }));
  }
  if (mine) item.append(el('div', { class: 'mq-status', 'data-status': message.status, text: statusText(message.status) }));
  return item;
}

function eventNode(message) {
  const payload = message.payload || {};
  if (payload.event === 'ended') {
    // Rate only a chat an agent took (not one that ended in a left message or with the bot).
    const rateable = state.conversation && state.conversation.handler && !state.conversation.rating;
    setTimeout(() => { if (rateable) showRating(); showRestart(); }, 0);
    // The inactivity rule's end says why (in the team's language); others say "ended".
    return el('li', { class: 'mq-system', text: message.body || T('widget.ended') });
  }
  if (payload.event === 'leave_message') {
    setTimeout(showLeaveMessage, 0);
    return el('li', { class: 'mq-system', text: message.body || T('widget.leave_prompt') });
  }
  return el('li', { class: 'mq-system', text: message.body || '' });
}

function addMessage(message) {
  if (state.shown.has(message.id)) return;
  const pendingNode = message.client_msg_id ? list.querySelector(`[data-client="${CSS.escape(message.client_msg_id)}"]`) : null;
  const node = messageNode(message);
  node.dataset.id = message.id;
  state.shown.set(message.id, node);
  if (pendingNode) pendingNode.replaceWith(node);
  else list.append(node);
  if (message.client_msg_id && state.pending.has(message.client_msg_id)) {
    state.pending.delete(message.client_msg_id);
    savePending();
  }
  if (message.client_msg_id && retries.delete(message.client_msg_id)) busyOver();
  state.lastId = Math.max(state.lastId, message.id);
  if (message.seq) state.lastSeq = Math.max(state.lastSeq, message.seq);
  // An image grows the list when it has loaded: stay at the bottom if we were there.
  node.querySelectorAll('img').forEach((img) => img.addEventListener('load', () => {
    if (list.scrollHeight - list.scrollTop - list.clientHeight < img.offsetHeight + 80) scrollDown();
  }, { once: true }));
  if (message.sender_kind !== 'visitor') {
    if (state.visible) markRead();
    else if (message.kind !== 'event' && message.status !== 'read') {
      // Only what he has not read yet: a reload replays the read ones too.
      state.unread += 1;
      tellParent('unread', { count: state.unread + tickets.unread() });
    }
  }
  scrollDown();
}

function setStatus(id, status) {
  const node = state.shown.get(id);
  const label = node && node.querySelector('.mq-status');
  if (label && label.dataset.status !== 'read') {
    label.dataset.status = status;
    label.textContent = statusText(status);
  }
}

function savePending() {
  store.set('pending', [...state.pending.entries()]);
}

function markRead() {
  state.unread = 0;
  tellParent('unread', { count: 0 });
  if (state.socket && state.lastId) state.socket.send('read', { up_to: state.lastId });
}

function renderState(conv) {
  if (!conv) return;
  state.conversation = { ...(state.conversation || {}), ...conv };
  const c = state.conversation;
  let text = '';
  if (c.status === 'bot') text = T('widget.state.bot');
  else if (c.status === 'queued') text = c.queue_position ? T('widget.state.position', { n: c.queue_position }) : T('widget.state.waiting');
  else if (c.status === 'open') text = c.handler ? T('widget.state.open', { name: c.handler.name }) : '';
  else if (c.status === 'ended') text = T('widget.state.ended');
  $('mq-state').textContent = text;
  $('mq-human').hidden = c.status !== 'bot';
  for (const node of list.querySelectorAll('.mq-offer-human')) node.hidden = c.status !== 'bot';
  const banner = $('mq-banner');
  if (c.status === 'queued') {
    delete banner.dataset.busy;
    banner.hidden = false;
    banner.replaceChildren(el('span', { text: c.queue_position ? T('widget.queue.position', { n: c.queue_position }) : T('widget.state.waiting') }),
      el('button', { type: 'button', class: 'mq-link', text: T('widget.leave_instead'), onclick: showLeaveMessage }));
  } else if (!(banner.dataset.busy && resending())) {
    delete banner.dataset.busy;
    banner.hidden = true;
  }
  const ended = c.status === 'ended';
  for (const node of [input, $('mq-send'), $('mq-emoji-btn'), $('mq-image'), $('mq-file')]) node.disabled = ended;
  document.body.classList.toggle('mq-ended', ended);
  if (ended) $('mq-emoji').hidden = true;
}

function extra(node) {
  $('mq-extra').replaceChildren(node || '');
  scrollDown();
}

function showRating() {
  if (document.querySelector('.mq-rating')) return;
  let chosen = null;
  const buttons = ['good', 'neutral', 'bad'].map((r) => el('button', {
    type: 'button', class: 'mq-rate', 'data-rating': r, text: T(`widget.rating.${r}`),
    onclick: (event) => {
      chosen = r;
      form.querySelectorAll('.mq-rate').forEach((b) => b.classList.toggle('chosen', b === event.currentTarget));
    },
  }));
  const comment = el('textarea', { name: 'comment', rows: 2, maxlength: 1000, placeholder: T('widget.rating.comment') });
  const error = el('p', { class: 'mq-error', hidden: true });
  const form = el('form', { class: 'mq-card mq-rating' }, el('strong', { text: T('widget.rating.title') }),
    el('div', { class: 'mq-rates' }, buttons), comment, error,
    el('button', { type: 'submit', class: 'mq-primary', text: T('widget.rating.submit') }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!chosen) { error.hidden = false; error.textContent = T('widget.rating.choose'); return; }
    try {
      const conv = await call('POST', `/widget/conversations/${state.conversation.conversation_id}/rating`, { rating: chosen, comment: comment.value });
      renderState(conv);
      form.replaceWith(el('p', { class: 'mq-card mq-thanks', text: T('widget.rating.thanks') }));
    } catch (e) {
      error.hidden = false;
      error.textContent = refusal(e);
    }
  });
  list.append(el('li', { class: 'mq-extra-item' }, form));
  scrollDown();
}

function showRestart() {
  if (document.querySelector('.mq-restart')) return;
  // Scenario 3: after the chat, the visitor may still leave a message (source after_end).
  extra(el('div', { class: 'mq-restart' },
    el('button', { type: 'button', class: 'mq-primary', text: T('widget.restart'), onclick: restart }),
    el('button', { type: 'button', class: 'mq-link mq-leave-after', text: T('widget.leave_after_end'), onclick: showLeaveMessage })));
}

/** The leave-a-message form (widget-tickets.js): contact, content, attachments. */
function showLeaveMessage() {
  tickets.showLeaveMessage();
}

function nextClientId() {
  state.counter += 1;
  return `v-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${state.counter}`;
}

function showPending(clientId, body) {
  const item = el('li', { class: 'mq-msg mine from-visitor', 'data-client': clientId },
    el('div', { class: 'mq-bubble' }, el('span', { class: 'mq-text', text: body })),
    el('div', { class: 'mq-status', 'data-status': 'sending', text: statusText('sending') }));
  list.append(item);
  scrollDown();
}

function sendText(body) {
  body = body.trim();
  if (!body) return;
  const clientId = nextClientId();
  state.pending.set(clientId, { body });
  savePending();
  showPending(clientId, body);
  // Without an open socket yet, the pending list is sent when it opens (resendPending).
  if (state.socket) state.socket.send('message', { client_msg_id: clientId, body });
}

// A message the server refused as 'unavailable' (its database busy or unreachable)
// was not stored: it stays pending and goes again with the same client_msg_id, after
// 1, 2, 4 … at most 30 seconds (docs/protocol.md), so a hiccup costs time, not text.
// Meanwhile the banner says so in the visitor's words (widget.busy.resending), never
// the server's (which names its database and asks to send again: the widget does),
// and it goes as soon as no message waits for a resend any more (docs/ui.md).
const retries = new Map(); // client_msg_id -> attempts so far, until it is acknowledged

/** Whether a message refused as 'unavailable' still waits for its resend. */
function resending() {
  return [...retries.keys()].some((id) => state.pending.has(id));
}

/** The banner of an outage: ``text``, and gone by itself when it is over (busyOver). */
function busyBanner(text) {
  banner(text);
  $('mq-banner').dataset.busy = '1';
}

/** The outage is over for the visitor (a message of his went through): its banner goes,
 * unless another message of his still waits for its resend. */
function busyOver() {
  const node = $('mq-banner');
  if (!node.dataset.busy || resending()) return;
  delete node.dataset.busy;
  node.hidden = true;
  node.replaceChildren();
}

/** What the visitor reads of a refused call: an 'unavailable' one (503, the server's
 * database or queue busy) in the widget's words, not the server's; others as said. */
function refusal(error) {
  return error.code === 'unavailable' ? T('widget.busy.later') : error.message;
}

/** Show a refused call's reason in the banner (an outage's goes by itself). */
function bannerFor(error) {
  if (error.code === 'unavailable') busyBanner(refusal(error));
  else banner(error.message);
}

function retryLater(clientId) {
  const attempt = (retries.get(clientId) || 0) + 1;
  retries.set(clientId, attempt);
  setTimeout(() => {
    const item = state.pending.get(clientId);
    if (item && state.socket) state.socket.send('message', { client_msg_id: clientId, body: item.body });
  }, Math.min(30000, 1000 * 2 ** (attempt - 1)));
}

function resendPending() {
  for (const [clientId, item] of state.pending) {
    if (!list.querySelector(`[data-client="${CSS.escape(clientId)}"]`)) showPending(clientId, item.body);
    state.socket.send('message', { client_msg_id: clientId, body: item.body });
  }
}

// State frames (hello, conversation) the socket has delivered so far. An HTTP answer
// carries the state when the server answered; a frame that arrived after the request
// was sent is as new or newer (every change is published after it is stored, and the
// socket delivers in order), so it wins: a "queued" answer held up on a slow network
// must not undo the "open" frame of the assignment that came meanwhile.
let stateFrames = 0;

async function askHuman() {
  const seen = stateFrames;
  try {
    const result = await call('POST', `/widget/conversations/${state.conversation.conversation_id}/human`);
    if (stateFrames === seen) renderState(result);
  } catch (e) {
    bannerFor(e);
  }
}

function banner(text) {
  const node = $('mq-banner');
  delete node.dataset.busy;
  node.hidden = false;
  node.replaceChildren(el('span', { text }));
}

function upload(file, kind) {
  const limit = boot.limits[kind];
  if (file.size > limit) {
    banner(T('widget.too_big', { name: file.name, mb: Math.round(limit / 1048576) }));
    return;
  }
  const bar = $('mq-progress');
  const conversationId = state.conversation.conversation_id;
  const form = new FormData();
  form.append('kind', kind);
  form.append('file', file);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/api/v1/widget/conversations/${conversationId}/uploads?kind=${kind}`);
  xhr.setRequestHeader('X-Visitor-Token', state.token);
  xhr.setRequestHeader(LANG_HEADER, boot.lang);
  bar.hidden = false;
  bar.querySelector('span').textContent = file.name;
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.firstElementChild.style.width = `${Math.round((e.loaded / e.total) * 100)}%`; };
  xhr.onload = async () => {
    bar.hidden = true;
    bar.firstElementChild.style.width = '0';
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status !== 201) {
      if (data.error && data.error.code === 'unavailable') busyBanner(T('widget.busy.later'));
      else banner((data.error && data.error.message) || T('widget.upload_failed'));
      return;
    }
    try {
      const sent = await call('POST', `/widget/conversations/${conversationId}/messages`, {
        body: data.name, kind, attachment: data.key, client_msg_id: nextClientId() });
      addMessage(sent.message);
    } catch (e) {
      bannerFor(e);
    }
  };
  xhr.onerror = () => { bar.hidden = true; banner(T('widget.upload_failed')); };
  xhr.send(form);
}

const EMOJI = '😀 😂 😊 😍 🤔 😅 😭 😡 👍 👎 🙏 👏 🎉 ❤️ 💔 🔥 ✅ ❌ ❓ 📦 🚚 💰 📱 ☕'.split(' ');

function setupComposer() {
  const emoji = $('mq-emoji');
  EMOJI.forEach((e) => emoji.append(el('button', { type: 'button', text: e, onclick: () => {
    const at = input.selectionStart ?? input.value.length;
    input.value = input.value.slice(0, at) + e + input.value.slice(input.selectionEnd ?? at);
    limit.reset();
    input.focus();
  } })));
  $('mq-emoji-btn').addEventListener('click', () => { emoji.hidden = !emoji.hidden; });
  // Over what a message may hold: said, not sent, and the text stays to be shortened.
  const limit = lengthLimit(input, $('mq-count'), boot.max_body || 5000, T, WIDGET_KEYS);
  $('mq-composer').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!limit.fits()) {
      event.stopImmediatePropagation(); // the typing preview goes on: he is still writing
      input.focus();
      return;
    }
    sendText(input.value);
    input.value = '';
    limit.reset();
    emoji.hidden = true;
    if (state.socket) state.socket.send('typing', { typing: false });
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $('mq-composer').requestSubmit();
    }
  });
  // At most one typing frame per 800 ms, and always one for the last keystroke, so the
  // agent's preview ends with what the visitor really typed.
  let lastTyping = 0;
  let typingLater = null;
  const reportTyping = () => {
    lastTyping = Date.now();
    if (state.socket) state.socket.send('typing', { typing: input.value.length > 0, preview: input.value.slice(0, 200) });
  };
  input.addEventListener('input', () => {
    clearTimeout(typingLater);
    const wait = 800 - (Date.now() - lastTyping);
    if (wait <= 0) reportTyping();
    else typingLater = setTimeout(reportTyping, wait);
  });
  $('mq-composer').addEventListener('submit', () => clearTimeout(typingLater));
  $('mq-image').addEventListener('change', (e) => { if (e.target.files[0]) upload(e.target.files[0], 'image'); e.target.value = ''; });
  $('mq-file').addEventListener('change', (e) => { if (e.target.files[0]) upload(e.target.files[0], 'file'); e.target.value = ''; });
  $('mq-human').addEventListener('click', askHuman);
  // The page comes with the composer disabled: typed into before this script had run,
  // Enter only added a new line, and the question was never sent. From here a question
  // is kept (pending) and goes once the session's socket opens.
  input.disabled = false;
  $('mq-emoji-btn').disabled = false;
  $('mq-close').addEventListener('click', () => tellParent('close', {}));
  $('mq-close').hidden = window.parent === window;
}

let typingTimer = null;
function onFrame(type, data, envelope) {
  if (type === 'hello' || type === 'conversation') stateFrames += 1;
  if (type === 'hello') renderState(data);
  else if (type === 'message') addMessage(data);
  else if (type === 'ack') {
    addMessage(data.message);
    setStatus(data.message.id, data.message.status);
  } else if (type === 'conversation') {
    renderState(data);
    // Nobody can take the chat: the form (the stored line that says so comes at most
    // once per 30 s; this frame with every request).
    if (data.offer_ticket) showLeaveMessage();
  } else if (type === 'typing') {
    $('mq-typing').hidden = !data.typing;
    clearTimeout(typingTimer);
    if (data.typing) typingTimer = setTimeout(() => { $('mq-typing').hidden = true; }, 6000);
  } else if (type === 'read') {
    // Only the agent's reads make the visitor's messages "read" (his own reads come back too).
    if (data.reader === 'visitor') return;
    for (const [id, node] of state.shown) if (id <= data.up_to && node.classList.contains('mine')) setStatus(id, 'read');
  } else if (type === 'error') {
    if (data.ref && state.pending.has(data.ref) && data.code === 'unavailable') {
      retryLater(data.ref);
      busyBanner(T('widget.busy.resending'));
    } else if (data.code === 'unavailable') {
      // A typing or read frame refused (or a resend of what is acknowledged by now):
      // nothing of his waits (a typing preview is of the moment, his next read covers
      // this one), so nothing to tell him, and no banner that would outlive the outage.
    } else if (data.ref && state.pending.has(data.ref)) {
      state.pending.delete(data.ref);
      savePending();
      if (retries.delete(data.ref)) busyOver();
      const node = list.querySelector(`[data-client="${CSS.escape(data.ref)}"] .mq-status`);
      if (node) { node.dataset.status = 'failed'; node.textContent = `${statusText('failed')}: ${data.message}`; }
    } else if (data.code === 'token_expired') {
      // The token outlived VISITOR_TOKEN_DAYS: a new session with the renewal key
      // resumes the same visitor and conversation (docs/protocol.md, "Visitor tokens").
      if (state.socket) state.socket.close();
      startOnce();
    } else if (data.code === 'unauthorized') {
      state.token = null;
      store.set('token', null);
    } else {
      banner(data.message);
    }
  }
  void envelope;
}

/** Custom information as the server takes it: at most 30 text values under 1-60 character keys. */
function cleanCustom(custom) {
  const out = {};
  if (!custom || typeof custom !== 'object') return out;
  for (const [rawKey, value] of Object.entries(custom).slice(0, 30)) {
    const key = String(rawKey).trim().slice(0, 60);
    if (!key || value === undefined || value === null) continue;
    out[key] = (typeof value === 'object' ? JSON.stringify(value) : String(value)).slice(0, 500);
  }
  return out;
}

const FIELD_LIMITS = { name: 120, phone: 40, email: 254 };

// "Reconnecting…" in the header once the connection has been gone for a moment.
let connTimer = null;
function connectionStatus(online) {
  document.body.classList.toggle('mq-offline', !online);
  clearTimeout(connTimer);
  if (online) $('mq-conn').hidden = true;
  else connTimer = setTimeout(() => { $('mq-conn').hidden = false; }, 1500);
}

async function start() {
  const info = state.initData || {};
  const visitor = info.visitor || {};
  const body = { team_id: teamId, token: state.token, renew_key: store.get('renew_key') };
  for (const [key, max] of Object.entries(FIELD_LIMITS)) {
    if (visitor[key]) body[key] = String(visitor[key]).trim().slice(0, max);
  }
  const custom = cleanCustom(visitor.custom);
  if (Object.keys(custom).length) body.custom = custom;
  for (const key of ['landing_page', 'referrer', 'title']) if (info[key]) body[key] = String(info[key]);
  if (!body.landing_page && window.parent === window) body.landing_page = location.href;
  let session;
  try {
    session = await call('POST', '/widget/session', body);
  } catch (e) {
    // What the embedding page passed was refused (say a malformed e-mail): chat without it
    // rather than not at all.
    if (e.status !== 422 && e.status !== 400) throw e;
    for (const key of ['name', 'phone', 'email', 'custom']) delete body[key];
    session = await call('POST', '/widget/session', body);
  }
  keepToken(session);
  // What the embedding page passed and the server did not keep (a malformed phone):
  // for its developer, in the console; the visitor chats on.
  for (const w of session.warnings || []) console.warn(`meiqia: ${w.message}`);
  const conversationChanged = state.conversation && state.conversation.conversation_id !== session.conversation.conversation_id;
  if (conversationChanged) {
    list.replaceChildren();
    state.shown.clear();
    state.lastId = 0;
    state.lastSeq = 0;
    extra(null);
  }
  renderState(session.conversation);
  if (!state.shown.size) showEarlier(session.earlier);
  showGreeting(session.greeting);
  session.messages.forEach(addMessage);
  tickets.load();
  if (state.socket) state.socket.close();
  state.socket = new ChatSocket(
    () => `/ws/visitor?token=${encodeURIComponent(state.token)}&after_seq=${state.lastSeq}&lang=${encodeURIComponent(boot.lang)}`,
    { onFrame, onOpen: resendPending, onStatus: connectionStatus },
  );
}

/** Keep a token answer (session or renewal): the token, its expiry, the renewal key.
 * A session resumed without the right key answers renew_key null (the server never
 * hands the key to a token alone): the key stored, if any, stays. */
function keepToken(answer) {
  keepTokenQuietly(answer);
  scheduleRenewal();
}

// Silent renewal: when less than half of the token's lifetime is left (checked at
// start and every hour while the page is open), POST /widget/token swaps it for a
// fresh one; the socket picks the new token up on its next reconnect.
let renewTimer = null;
function scheduleRenewal() {
  clearTimeout(renewTimer);
  renewTimer = setTimeout(renewIfDue, 0);
}

async function renewIfDue() {
  clearTimeout(renewTimer);
  renewTimer = setTimeout(renewIfDue, 3600 * 1000);
  const expires = Date.parse(store.get('token_expires_at') || '');
  const key = store.get('renew_key');
  if (!state.token || !key || !expires) return;
  const left = expires - Date.now();
  const lifetime = (boot.token_days || 30) * 86400 * 1000;
  if (left > lifetime / 2) return;
  try {
    keepTokenQuietly(await call('POST', '/widget/token', { token: state.token, renew_key: key }));
  } catch (e) {
    if (e.status === 401) {
      // The server no longer knows the token or the key (a key of before the v2 keys,
      // docs/security.md §11): forget the key, so this is not tried again every hour,
      // and start afresh.
      store.set('renew_key', null);
      startOnce();
    }
  }
}

function keepTokenQuietly(answer) {
  state.token = answer.token;
  store.set('token', answer.token);
  store.set('token_expires_at', answer.token_expires_at);
  if (answer.renew_key) store.set('renew_key', answer.renew_key);
}

// A returning visitor (same browser: the token is kept in localStorage) whose last
// conversation ended sees it above the new one, greyed, behind a divider.
function showEarlier(earlier) {
  if (!earlier || !earlier.messages.length || list.querySelector('.mq-earlier')) return;
  const items = earlier.messages.filter((m) => m.kind !== 'rating_invite').map((m) => {
    const node = m.kind === 'event' ? el('li', { class: 'mq-system', text: m.body || '' }) : messageNode(m);
    node.classList.add('mq-earlier');
    node.querySelectorAll('button').forEach((b) => b.remove());
    return node;
  });
  list.prepend(...items, el('li', { class: 'mq-system mq-earlier-end', text: T('widget.earlier_end') }));
}

// The built-in welcome (in his language) while the team has none of its own: shown
// first, like a bot line, but not a stored message (the team's own welcome is one).
function showGreeting(text) {
  if (!text || list.querySelector('.mq-greeting')) return;
  // Its own class, not .mq-msg: it is no message (no id, no read state, not counted).
  list.append(el('li', { class: 'mq-greeting' },
    el('div', { class: 'mq-who', text: T('widget.bot') }),
    el('div', { class: 'mq-bubble' }, el('span', { class: 'mq-text', text }))));
}

async function restart() {
  extra(null);
  document.querySelectorAll('.mq-rating').forEach((n) => n.closest('li').remove());
  await startOnce();
}

// One session start at a time: an identify() arriving while the first start is still
// waiting for its token would otherwise create a second visitor and a second socket.
// A start the server could not serve now (503 with Retry-After: its database busy or
// restarting; 429; the network down) is tried again by itself, after Retry-After and
// at least 1, 2, 4 … at most 30 s (with jitter), the header saying "Reconnecting…"
// meanwhile: what the visitor typed stays pending and goes once the socket opens
// (docs/protocol.md, "Outages"). Any other refusal is shown.
let starting = Promise.resolve();
let startRetry = { timer: null, attempts: 0 };

function retryable(error) {
  return Boolean(error.network) || error.status === 429 || error.status >= 502;
}

function startOnce() {
  clearTimeout(startRetry.timer);
  startRetry.timer = null;
  starting = starting.then(() => start()).then(() => {
    startRetry.attempts = 0;
  }).catch((e) => {
    if (!retryable(e)) {
      banner(e.message);
      return;
    }
    connectionStatus(false);
    const backoff = Math.min(30000, 1000 * 2 ** startRetry.attempts);
    startRetry.attempts += 1;
    const wait = Math.max(1000 * (e.retryAfter || 0), Math.round(backoff / 2 + Math.random() * backoff));
    startRetry.timer = setTimeout(startOnce, wait);
  });
  return starting;
}

window.addEventListener('message', (event) => {
  if (event.source !== window.parent || !event.data || !event.data.meiqia) return;
  const { meiqia: type, data } = event.data;
  if (type === 'init' && !state.initData) {
    state.initData = data || {};
    startOnce();
  } else if (type === 'identify' && state.initData) {
    state.initData.visitor = data || {};
    startOnce();
  } else if (type === 'visible') {
    state.visible = Boolean(data && data.visible);
    if (state.visible) { markRead(); input.focus(); }
  }
});

setupComposer();
if (window.parent === window) {
  state.initData = {};
  startOnce();
} else {
  tellParent('ready', {});
}
