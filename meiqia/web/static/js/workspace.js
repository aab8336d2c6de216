// The agent workspace: left lists (mine / colleagues' / @me / queue), the chat, the customer sidebar.
// Live updates come from /ws/agent (docs/protocol.md); lists are re-read from the API when they change.
import { api, boot, clear, el, fmtTime, me, t, toast } from './lib.js';
import { ChatSocket } from './socket.js';
import { Chat } from './ws-chat.js';
import { Sidebar } from './ws-side.js';

const listNode = document.getElementById('ws-list');
const state = { lists: { mine: [], colleagues: [], at_me: [], queue: [] }, tab: 'mine', current: null };
const sidebar = new Sidebar({ open: (id) => openConversation(id, true) });
const chat = new Chat({ onChanged: () => refreshLists(), sidebar });

function visitorName(v) {
  return v.name || t('ws.visitor', { id: v.id });
}

function avatar(v) {
  const name = visitorName(v);
  return el('span', { class: `avatar ${v.online ? 'online' : 'offline'}`, title: v.online ? t('ws.online') : t('ws.offline'),
    text: [...name][0].toUpperCase() });
}

/** The conversation's channel (e-mail, WeChat…) as a small tag; none for the web widget. */
function channelTag(row) {
  if (!row.channel || row.channel === 'web') return null;
  const name = (row.channel_name && (row.channel_name[boot.lang] || row.channel_name.en)) || row.channel;
  return el('span', { class: `tag channel-tag channel-${row.channel}`, text: name, dataset: { channel: row.channel } });
}

function renderList() {
  clear(listNode);
  const rows = state.lists[state.tab] || [];
  if (!rows.length) listNode.append(el('li', { class: 'muted empty', text: t('ws.empty_list') }));
  for (const row of rows) {
    listNode.append(el('li', {
      class: `ws-item${state.current === row.id ? ' current' : ''}`, dataset: { id: row.id },
      onclick: () => openConversation(row.id),
    }, avatar(row.visitor),
    el('div', { class: 'ws-item-main' },
      el('div', { class: 'ws-item-top' }, el('span', { class: 'ws-item-name', text: visitorName(row.visitor) }),
        channelTag(row),
        el('span', { class: 'muted small', text: fmtTime(row.last_message_at || row.created_at) })),
      el('div', { class: 'ws-item-last muted', text: row.status === 'queued' && row.queue_position
        ? t('ws.queued_at', { n: row.queue_position }) : (row.last_message || '') })),
    row.unread ? el('span', { class: 'badge', text: row.unread }) : null));
  }
  for (const key of ['mine', 'colleagues', 'at_me']) {
    const badge = document.querySelector(`[data-unread="${key}"]`);
    const count = key === 'at_me' ? state.lists.at_me.length : state.lists[key].reduce((n, r) => n + (r.unread || 0), 0);
    badge.hidden = !count;
    badge.textContent = count;
  }
  const queueBadge = document.querySelector('[data-unread="queue"]');
  queueBadge.hidden = !state.lists.queue_count;
  queueBadge.textContent = state.lists.queue_count || 0;
  document.getElementById('queue-count').textContent = state.lists.queue_count || 0;
}

function takeLists(data) {
  state.lists = { mine: data.mine || [], colleagues: data.colleagues || [], at_me: data.at_me || [],
    queue: data.queue || [], queue_count: data.queue_count || 0 };
  renderList();
}

let refreshTimer = null;
function refreshLists() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    try { takeLists(await api('GET', '/conversations')); } catch (e) { toast(e.message, 'error'); }
  }, 250);
}

async function openConversation(id, readOnly = false) {
  state.current = id;
  renderList();
  history.replaceState(null, '', `#c${id}`);
  await chat.open(id, readOnly);
}

document.querySelectorAll('.ws-tabs [role=tab]').forEach((tab) => tab.addEventListener('click', () => {
  state.tab = tab.dataset.list;
  document.querySelectorAll('.ws-tabs [role=tab]').forEach((b) => b.setAttribute('aria-selected', String(b === tab)));
  renderList();
}));
document.getElementById('ws-queue').addEventListener('click', () => document.querySelector('[data-list=queue]').click());

// Desktop notification and a short sound for visitor messages I should see.
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.15);
  } catch { /* no audio */ }
}

function notify(message) {
  const mineConversation = state.lists.mine.some((r) => r.id === message.conversation_id);
  if (!mineConversation || (!document.hidden && state.current === message.conversation_id)) return;
  beep();
  if ('Notification' in window && Notification.permission === 'granted') {
    const n = new Notification(t('ws.new_message'), { body: message.kind === 'text' ? message.body.slice(0, 100) : t('ws.attachment'), tag: `c${message.conversation_id}` });
    n.onclick = () => { window.focus(); openConversation(message.conversation_id); };
  }
}
if ('Notification' in window && Notification.permission === 'default') {
  document.addEventListener('click', () => Notification.requestPermission().catch(() => {}), { once: true });
}

// ?lang=: the socket's error frames in the page's language. ?after_seq=: the open
// conversation resumes from the last position shown, so a drop loses nothing of it
// (docs/protocol.md, "Positions and resume"); the lists come fresh with hello.
const socket = new ChatSocket(() => `/ws/agent?lang=${encodeURIComponent(boot.lang || 'en')}${
  chat.id && chat.lastSeq ? `&after_seq=${chat.id}:${chat.lastSeq}` : ''}`, {
  onFrame(type, data) {
    if (type === 'hello') {
      takeLists(data);
      chat.resync();
      return;
    }
    if (type === 'message') {
      chat.onMessage(data);
      if (data.sender_kind === 'visitor') notify(data);
      refreshLists();
    } else if (type === 'suggestions') chat.onSuggestions(data);
    else if (type === 'typing') chat.onTyping(data);
    else if (type === 'presence') {
      // A visitor came or went: his avatar turns coloured or grey.
      for (const rows of [state.lists.mine, state.lists.colleagues, state.lists.at_me, state.lists.queue]) {
        for (const row of rows) if (row.visitor.id === data.visitor_id) row.visitor.online = data.online;
      }
      renderList();
      chat.onPresence(data);
    }
    else if (type === 'read' || type === 'delivered') chat.onStatus(type, data);
    else if (type === 'delivery') chat.onDelivery(data);
    else if (type === 'mention') { toast(t('ws.mentioned', { by: data.by || '' })); refreshLists(); }
    else if (type === 'assigned') { toast(t('ws.assigned', { id: data.conversation_id })); refreshLists(); }
    else if (['conversation', 'conversation.started', 'rated', 'conversation.ended'].includes(type)) {
      chat.onConversation(data);
      if (type === 'rated') sidebar.onRated(data);
      refreshLists();
    } else if (type === 'error') {
      // A typing or read frame refused while the database is busy or unreachable: nothing
      // of his is to send again (his replies go by REST, whose refusal says so itself),
      // so no "send it again" for each keystroke's frame (docs/ui.md).
      if (data.code === 'unavailable' && ['typing', 'read'].includes(data.ref)) return;
      toast(data.message, 'error');
    }
  },
  onStatus: (online) => document.body.classList.toggle('ws-disconnected', !online),
});
chat.socket = socket;

document.addEventListener('meiqia:status', refreshLists);
document.addEventListener('meiqia:card-saved', () => {
  refreshLists();
  chat.reloadHead();
});
const fromHash = /^#c(\d+)$/.exec(location.hash);
if (fromHash) openConversation(Number(fromHash[1]));
void me;
