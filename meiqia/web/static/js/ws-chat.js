// The workspace's middle column: one conversation, the composer (reply / anonymous / internal),
// #keyword quick replies, @colleague in internal notes, emoji, uploads, bot suggestions, actions.
import { LANG_HEADER, api, boot, clear, dialog, el, fmtTime, formData, formError, me, t, toast, confirmDialog } from './lib.js';
import { offeredQuestions, specialBody, textBody } from './message-body.js';
import { MAX_BODY, UI_KEYS, lengthLimit } from './length-limit.js';
import { richText } from './rich-text.js';

const $ = (id) => document.getElementById(id);
const EMOJI = '😀 😂 😊 😍 🤔 😅 😭 👍 👎 🙏 👏 🎉 ❤️ 🔥 ✅ ❌ ❓ 📦 🚚 💰'.split(' ');
// delivered_read_unknown: a channel that cannot report reads (e.g. SMS); the title says so.
const MARKS = { sent: '✓', delivered: '✓✓', delivered_read_unknown: '✓✓', read: '✓✓' };
let counter = 0;
const clientId = () => `a-${me.id}-${Date.now().toString(36)}-${(counter += 1)}`;

export class Chat {
  constructor({ onChanged, sidebar }) {
    this.onChanged = onChanged;
    this.sidebar = sidebar;
    this.id = null;
    this.data = null;
    this.shown = new Map();
    // Channel conversations: message id -> its delivery (meiqia/channels/outbound.py).
    this.deliveries = new Map();
    this.lastId = 0;
    // The open conversation's highest position (seq) shown: what a resync asks after.
    this.lastSeq = 0;
    this.suggestion = null;
    this.suggestionsFor = new Map();
    this.agents = [];
    // Conversations I transferred away: read-only for me at once (conversation id -> to whom).
    this.handedOver = new Map();
    this.input = $('ws-input');
    this.list = $('ws-messages');
    this.setupComposer();
    this.setupActions();
    // The colleagues an @ offers: an @ typed before they came is answered when they do.
    this.agentsLoaded = api('GET', '/agents').then((a) => {
      this.agents = a;
      if (this.data) this.renderHead();
    }).catch(() => {});
  }

  async open(id, readOnly = false) {
    this.stopTyping();
    clearTimeout(this.typingTimer);
    $('ws-typing').hidden = true;
    this.id = id;
    this.shown.clear();
    this.lastId = 0;
    this.lastSeq = 0;
    clear(this.list);
    this.hideSuggestions(false);
    let data;
    try {
      data = await api('GET', `/conversations/${id}`);
    } catch (e) {
      toast(e.message, 'error');
      return;
    }
    if (this.id !== id) return;
    this.data = data;
    $('ws-empty').hidden = true;
    document.querySelector('.ws-chat-head').hidden = false;
    this.list.hidden = false;
    this.renderHead();
    // A conversation of another channel: each reply's delivery state (sent, retrying, failed).
    this.deliveries = new Map();
    if (data.channel && data.channel !== 'web') {
      try {
        const { deliveries } = await api('GET', `/conversations/${id}/deliveries`);
        deliveries.forEach((d) => this.deliveries.set(d.message_id, d));
      } catch (e) { /* shown as unknown; the socket's delivery frames fill them in */ }
    }
    if (this.id !== id) return;
    const { messages } = await api('GET', `/conversations/${id}/messages`);
    messages.forEach((m) => this.add(m));
    this.markRead();
    this.sidebar.show(data);
    const kept = this.suggestionsFor.get(id);
    if (kept && data.status !== 'ended') this.onSuggestions(kept);
    else if (data.status !== 'ended') {
      // Opened after the frame went out (a reload, another tab): ask for them.
      api('GET', `/conversations/${id}/suggestions`)
        .then((found) => { if (this.id === id && !this.suggestionsFor.has(id)) this.onSuggestions(found); })
        .catch(() => {});
    }
    // Opening a conversation I was @mentioned in takes it off my @me list.
    api('POST', `/conversations/${id}/mentions/seen`).then((r) => { if (r.seen) this.onChanged(); }).catch(() => {});
    void readOnly;
  }

  renderHead() {
    const d = this.data;
    $('chat-title').textContent = d.customer.name || t('ws.visitor', { id: d.customer.id });
    const handler = this.agents.find((a) => a.id === d.handler_id);
    // Online/offline is the widget's socket: a channel's customer has none to show.
    const presence = d.status === 'ended' || (d.channel && d.channel !== 'web') ? ''
      : ` · ${t(d.customer.online ? 'ws.online' : 'ws.offline')}`;
    $('chat-state').textContent = `${t(`cstatus.${d.status}`)}${handler ? ` · ${handler.name}` : ''}${presence}`;
    const ended = d.status === 'ended';
    $('ws-composer').hidden = false;
    $('ws-composer').classList.toggle('ended', ended);
    // Transferred away by me and not mine again: nothing more to type here.
    const away = this.handedOver.has(d.id) && d.handler_id !== me.id && !ended;
    if (!away) this.handedOver.delete(d.id);
    $('ws-composer').classList.toggle('read-only', away);
    if (away !== Boolean(this.locked)) {
      for (const node of $('ws-composer').querySelectorAll('textarea, button, input, select')) node.disabled = away;
      this.locked = away;
      this.input.placeholder = away ? t('ws.transferred_away', { to: this.handedOver.get(d.id) }) : t('ws.placeholder');
    }
    // The channel, and what it cannot carry (declared by the channel class): hidden.
    const channel = $('chat-channel');
    const viaChannel = d.channel && d.channel !== 'web';
    channel.hidden = !viaChannel;
    channel.textContent = viaChannel ? ((d.channel_name && (d.channel_name[boot.lang] || d.channel_name.en)) || d.channel) : '';
    channel.dataset.channel = d.channel || 'web';
    $('act-rating').hidden = !this.can('rating');
    $('act-take').hidden = d.handler_id === me.id || ended;
    for (const id of ['act-rating', 'act-transfer', 'act-end']) $(id).disabled = ended;
    if (ended) this.setMode('internal');
    this.list.closest('.ws-chat').dataset.status = d.status;
  }

  resync() {
    if (this.id && this.lastSeq) {
      api('GET', `/conversations/${this.id}/messages?after_seq=${this.lastSeq}`)
        .then(({ messages }) => messages.forEach((m) => this.add(m))).catch(() => {});
    }
  }

  label(m) {
    if (m.sender_kind === 'visitor') return this.data ? (this.data.customer.name || t('ws.visitor', { id: this.data.customer.id })) : '';
    if (m.sender_kind === 'bot') return t('widget.bot');
    if (m.sender_kind === 'system') return t('ws.system');
    const real = this.agents.find((a) => a.id === m.agent_id);
    return real ? real.name : m.sender_name;
  }

  body(m) {
    const special = specialBody(m);
    if (special) return special;
    // The bot's and agents' text may hold links and images (KB answers); a visitor's is text.
    const node = textBody(m);
    const p = m.payload || {};
    if (p.bot) node.append(el('span', { class: 'tag', text: t(`bot.${p.bot}`) }));
    // "Did you mean": the agent sees the questions the visitor was offered.
    const offered = offeredQuestions(m);
    return offered ? el('span', {}, node, offered) : node;
  }

  /** Whether the open conversation's channel carries a feature (all of them on the web). */
  can(capability) {
    const caps = this.data && this.data.capabilities;
    return !caps || caps.includes(capability);
  }

  /** A channel message's delivery: sent, retrying (why, next try) or failed (why, retry). */
  delivery(m) {
    const d = this.deliveries && this.deliveries.get(m.id);
    if (!d) return el('span', { class: 'delivery pending', dataset: { delivery: 'pending' }, text: t('dlv.pending') });
    const why = d.reason ? ` · ${d.reason}` : '';
    const title = d.status === 'retrying' && d.next_attempt_at
      ? t('dlv.retrying_at', { time: fmtTime(d.next_attempt_at), reason: d.reason || '' }) : `${t(`dlv.${d.status}`)}${why}`;
    return el('span', { class: `delivery ${d.status}`, title, dataset: { delivery: d.status } },
      t(`dlv.${d.status}`), d.status !== 'sent' && d.reason ? el('span', { class: 'delivery-reason', text: why }) : null,
      d.status === 'failed' || d.status === 'retrying' ? el('button', { type: 'button', class: 'link delivery-retry', text: t('dlv.retry'),
        onclick: () => this.retryDelivery(d) }) : null);
  }

  async retryDelivery(d) {
    try {
      this.onDelivery(await api('POST', `/channel-deliveries/${d.id}/retry`));
    } catch (e) { toast(e.message, 'error'); }
  }

  onDelivery(d) {
    if (d.conversation_id !== this.id || !this.deliveries) return;
    this.deliveries.set(d.message_id, d);
    const node = this.shown.get(d.message_id);
    const old = node && node.querySelector('.delivery');
    if (old) old.replaceWith(this.delivery({ id: d.message_id }));
  }

  ticks(m) {
    if (m.sender_kind !== 'agent' && m.sender_kind !== 'bot' && m.sender_kind !== 'system') return null;
    if (m.visibility === 'internal') return null;
    // On another channel than the widget: the delivery through the channel as well.
    const viaChannel = this.data && this.data.channel && this.data.channel !== 'web';
    const delivery = viaChannel && (this.deliveries.has(m.id) || (m.sender_kind !== 'system' && m.kind !== 'rating_invite')
      || (m.kind === 'event' && m.body)) ? this.delivery(m) : null;
    if (m.sender_kind === 'system') return delivery;
    const marks = MARKS[m.status] || '';
    const tick = el('span', { class: `ticks ${m.status}`, title: t(`widget.status.${m.status}`), text: marks, dataset: { status: m.status } });
    return delivery ? [tick, delivery] : tick;
  }

  add(m) {
    if (m.conversation_id !== this.id || this.shown.has(m.id)) return;
    const internal = m.visibility === 'internal';
    const classes = ['ws-msg', `from-${m.sender_kind}`, internal ? 'internal' : '', m.anonymous ? 'anonymous' : '', m.kind === 'event' ? 'event' : ''];
    const node = el('li', { class: classes.filter(Boolean).join(' '), dataset: { id: m.id } },
      el('div', { class: 'meta' }, el('span', { class: 'who', text: this.label(m) }),
        internal ? el('span', { class: 'tag internal-tag', text: t('ws.mode.internal') }) : null,
        m.anonymous ? el('span', { class: 'tag anon-tag', text: t('ws.anon_as', { name: m.sender_name }) }) : null,
        el('span', { class: 'muted small', text: fmtTime(m.created_at) }), this.ticks(m)),
      el('div', { class: 'bubble' }, this.body(m)));
    this.shown.set(m.id, node);
    const after = [...this.list.children].find((child) => Number(child.dataset.id) > m.id);
    this.list.insertBefore(node, after || null);
    this.lastId = Math.max(this.lastId, m.id);
    if (m.seq) this.lastSeq = Math.max(this.lastSeq, m.seq);
    this.list.scrollTop = this.list.scrollHeight;
    // An image grows the list when it has loaded: stay at the bottom if we were there.
    node.querySelectorAll('img').forEach((img) => img.addEventListener('load', () => {
      if (this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < img.offsetHeight + 80) {
        this.list.scrollTop = this.list.scrollHeight;
      }
    }, { once: true }));
  }

  onMessage(m) {
    if (m.conversation_id !== this.id) return;
    this.add(m);
    if (m.sender_kind === 'visitor') {
      $('ws-typing').hidden = true;
      if (!document.hidden) this.markRead();
    }
    if (m.kind === 'event') this.reloadHead();
  }

  onStatus(type, data) {
    if (data.conversation_id !== this.id) return;
    const ids = type === 'delivered' ? data.message_ids : [...this.shown.keys()].filter((id) => id <= data.up_to);
    if (type === 'read' && data.reader !== 'visitor') return;
    // A "delivered" event says which delivered: plain, or read state unknown.
    const status = type === 'delivered' ? (data.status || 'delivered') : 'read';
    for (const id of ids) {
      const tick = this.shown.get(id) && this.shown.get(id).querySelector('.ticks');
      if (tick && tick.dataset.status !== 'read') {
        tick.dataset.status = status;
        tick.className = `ticks ${status}`;
        tick.textContent = MARKS[status];
        tick.title = t(`widget.status.${status}`);
      }
    }
  }

  onTyping(data) {
    if (data.conversation_id !== this.id || data.who !== 'visitor') return;
    if (data.preview && !this.can('typing_preview')) data = { ...data, preview: '' };
    const node = $('ws-typing');
    node.hidden = !data.typing;
    node.textContent = data.preview ? t('ws.typing_preview', { text: data.preview }) : t('ws.visitor_typing');
    // A visitor who closes the page says nothing more: forget the preview after a while.
    clearTimeout(this.typingTimer);
    if (data.typing) this.typingTimer = setTimeout(() => { node.hidden = true; }, 8000);
  }

  onPresence(data) {
    if (!this.data || this.data.customer.id !== data.visitor_id) return;
    this.data.customer.online = data.online;
    this.renderHead();
  }

  onConversation(data) {
    if (data.conversation_id === this.id) this.reloadHead();
  }

  async reloadHead() {
    if (!this.id) return;
    const id = this.id;
    try {
      this.data = await api('GET', `/conversations/${id}`);
      this.renderHead();
    } catch (e) {
      if (e.status === 404 && this.id === id) this.gone();
    }
  }

  /** The open conversation left my view (transferred to someone outside my scope, or
   *  my scope was narrowed): close it, so nothing of it stays on screen to act on. */
  gone() {
    const to = this.handedOver.get(this.id);
    this.stopTyping();
    this.hideSuggestions();
    this.suggestionsFor.delete(this.id);
    this.handedOver.delete(this.id);
    this.id = null;
    this.data = null;
    this.lastSeq = 0;
    this.shown.clear();
    clear(this.list);
    this.list.hidden = true;
    $('ws-typing').hidden = true;
    $('ws-composer').hidden = true;
    document.querySelector('.ws-chat-head').hidden = true;
    $('ws-right').hidden = true;
    $('ws-empty').hidden = false;
    history.replaceState(null, '', location.pathname + location.search);
    toast(to ? t('ws.gone_transferred', { to }) : t('ws.gone'));
    this.onChanged();
  }

  onSuggestions(data) {
    if (!data.suggestions.length) return;
    // Kept per conversation: they are still there when the agent switches back to it.
    this.suggestionsFor.set(data.conversation_id, data);
    if (data.conversation_id !== this.id) return;
    const box = $('ws-suggestions');
    box.hidden = false;
    box.replaceChildren(el('div', { class: 'muted small', text: t('ws.suggestions') }),
      ...data.suggestions.map((s) => el('div', { class: 'suggestion' },
        el('div', { class: 'q', text: s.question }), el('div', { class: 'a' }, richText(s.answer)),
        el('div', { class: 'row-actions' },
          el('button', { type: 'button', class: 'primary small', text: t('ws.send_suggestion'), title: t('ws.send_suggestion_title'),
            onclick: () => this.send(s.answer, 'reply', { message_id: data.message_id, entry_id: s.entry_id, edited: false }) }),
          el('button', { type: 'button', class: 'small fill-suggestion', text: t('ws.fill_suggestion'), title: t('ws.fill_suggestion_title'), onclick: () => {
            this.input.value = s.answer;
            this.limit.reset();
            this.suggestion = { message_id: data.message_id, entry_id: s.entry_id, text: s.answer };
            this.input.focus();
          } })))));
  }

  hideSuggestions(forget = true) {
    $('ws-suggestions').hidden = true;
    this.suggestion = null;
    if (forget && this.id) this.suggestionsFor.delete(this.id);
  }

  markRead() {
    const visitorIds = [...this.shown.entries()].filter(([, n]) => n.classList.contains('from-visitor')).map(([id]) => id);
    if (!visitorIds.length || !this.data || this.data.handler_id !== me.id) return;
    api('POST', `/conversations/${this.id}/read`, { up_to: Math.max(...visitorIds) }).then(() => this.onChanged()).catch(() => {});
  }

  mode() {
    return $('ws-composer').querySelector('input[name=mode]:checked').value;
  }

  setMode(mode) {
    const radio = $('ws-composer').querySelector(`input[name=mode][value=${mode}]`);
    radio.checked = true;
    $('ws-composer').dataset.mode = mode;
  }

  /** One client_msg_id per composed message, kept across its retries: when a send
   * stored the message but its response was lost, the retry is answered as a
   * duplicate instead of being stored twice. Another text, mode or conversation
   * is another message, and so is the same text sent again while the first send is
   * still on its way (the composer is cleared at once, so the agent may well). */
  draftFor(body, mode) {
    const key = JSON.stringify([this.id, mode, body]);
    if (!this.draft || this.draft.key !== key || this.draft.sending) this.draft = { key, id: clientId(), sending: false };
    return this.draft;
  }

  async send(body, mode, suggestion) {
    body = body.trim();
    if (!body || !this.id) return;
    const id = this.id;
    const draft = this.draftFor(body, mode);
    draft.sending = true;
    // The suggestions this reply answers: those showing now. Ones that arrive while it is
    // on its way are for a newer question and stay.
    const answering = this.suggestionsFor.get(id);
    const payload = { body, mode, client_msg_id: draft.id };
    if (suggestion) payload.suggestion = suggestion;
    try {
      const { message } = await api('POST', `/conversations/${id}/messages`, payload);
      if (this.draft === draft) this.draft = null;
      this.add(message);
      if (this.suggestionsFor.get(id) === answering) {
        this.suggestionsFor.delete(id);
        if (this.id === id) this.hideSuggestions();
      }
      return true;
    } catch (e) {
      draft.sending = false;  // kept for the retry, under the same id
      toast(e.message, 'error');
      return false;
    }
  }

  setupComposer() {
    const form = $('ws-composer');
    form.addEventListener('change', (e) => { if (e.target.name === 'mode') form.dataset.mode = e.target.value; });
    // Over what a message may hold (messages.MAX_BODY): said under the box, not sent, and
    // the text stays to be shortened (a maxlength cut a paste without a word).
    this.limit = lengthLimit(this.input, $('ws-count'), MAX_BODY, t, UI_KEYS);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = this.input.value;
      let suggestion;
      if (this.suggestion) suggestion = { message_id: this.suggestion.message_id, entry_id: this.suggestion.entry_id, edited: text.trim() !== this.suggestion.text.trim() };
      if (!text.trim()) return;
      if (!this.limit.fits()) {
        this.input.focus();
        return;
      }
      // Clear at once: what the agent types while this is sending is the next message.
      this.input.value = '';
      this.limit.reset();
      this.stopTyping();
      this.closeComplete();
      if (!(await this.send(text, this.mode(), suggestion)) && !this.input.value) {
        this.input.value = text;
        this.limit.reset();
      }
    });
    this.input.addEventListener('keydown', (e) => {
      const box = $('ws-complete');
      if (!box.hidden && ['ArrowDown', 'ArrowUp', 'Enter', 'Tab', 'Escape'].includes(e.key)) {
        e.preventDefault();
        const items = [...box.children];
        let i = items.findIndex((n) => n.getAttribute('aria-selected') === 'true');
        if (e.key === 'Escape') return this.closeComplete();
        if (e.key === 'Enter' || e.key === 'Tab') return items[Math.max(i, 0)] && items[Math.max(i, 0)].click();
        i = (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        items.forEach((n, j) => n.setAttribute('aria-selected', String(j === i)));
        return undefined;
      }
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
      return undefined;
    });
    this.input.addEventListener('input', () => {
      this.autocomplete();
      this.reportTyping();
    });
    const emoji = $('ws-emoji');
    EMOJI.forEach((x) => emoji.append(el('button', { type: 'button', text: x, onclick: () => { this.insert(x); } })));
    $('ws-emoji-btn').addEventListener('click', () => { emoji.hidden = !emoji.hidden; });
    $('ws-image').addEventListener('change', (e) => { if (e.target.files[0]) this.upload(e.target.files[0], 'image'); e.target.value = ''; });
    $('ws-file').addEventListener('change', (e) => { if (e.target.files[0]) this.upload(e.target.files[0], 'file'); e.target.value = ''; });
  }

  /** Tell the visitor the agent is typing (never while writing an internal note). */
  reportTyping() {
    // A channel without a typing indicator (e-mail) is told nothing.
    const typing = this.mode() !== 'internal' && this.input.value.trim().length > 0 && this.can('typing_preview');
    if (!this.socket || !this.id || (!typing && !this.typingSent)) return;
    const now = Date.now();
    if (typing && this.typingSent === this.id && now - this.typingAt < 3000) return;
    this.socket.send('typing', { conversation_id: this.id, typing });
    this.typingSent = typing ? this.id : null;
    this.typingAt = now;
  }

  stopTyping() {
    if (this.typingSent && this.socket) this.socket.send('typing', { conversation_id: this.typingSent, typing: false });
    this.typingSent = null;
  }

  insert(text) {
    const at = this.input.selectionStart ?? this.input.value.length;
    this.input.value = this.input.value.slice(0, at) + text + this.input.value.slice(this.input.selectionEnd ?? at);
    this.limit.reset();
    this.input.focus();
  }

  closeComplete() {
    this.completeSeq = (this.completeSeq || 0) + 1;
    $('ws-complete').hidden = true;
  }

  async autocomplete() {
    const seq = (this.completeSeq = (this.completeSeq || 0) + 1);
    const hash = this.token('#');
    const at = this.mode() === 'internal' ? this.token('@') : null;
    if (hash !== null) {
      const found = await api('GET', `/quick-replies/search?q=${encodeURIComponent(hash)}`).catch(() => []);
      // Answers may come back out of order: only the latest keystroke's is shown.
      if (seq !== this.completeSeq) return;
      this.showComplete(found.map((r) => ({ label: `#${r.keyword}`, detail: r.body,
        apply: () => this.replaceToken('#', r.body) })));
    } else if (at !== null) {
      await this.agentsLoaded;
      if (seq !== this.completeSeq) return;
      const q = at.toLowerCase();
      const found = this.agents.filter((a) => a.id !== me.id && a.active !== false
        && [a.name, a.nickname].some((n) => n && n.toLowerCase().includes(q))).slice(0, 8);
      this.showComplete(found.map((a) => ({ label: `@${a.name}`, detail: t(`status.${a.status}`),
        apply: () => this.replaceToken('@', `@${a.name} `) })));
    } else {
      this.closeComplete();
    }
  }

  /** The #keyword or @name being typed before the caret (without its sign), or null. */
  token(sign) {
    const before = this.input.value.slice(0, this.input.selectionStart);
    // Chinese puts no space before # or @ ("好的，@李客服"): any character but a Latin
    // letter or digit may precede them (so "a@b.com" is not a mention).
    // A Chinese input method in full-width mode types ＃ and ＠ (and ﹟ ﹫ exist): the
    // server folds them to # and @ (names.AT_SIGNS), so the completion takes them too.
    const pattern = sign === '#' ? /(?:^|[^A-Za-z0-9_])[#＃﹟]([^\s#＃﹟]{0,20})$/ : /(?:^|[^A-Za-z0-9_])[@＠﹫]([^\s@＠﹫,，。:：;；!?！？]{0,20})$/;
    const found = pattern.exec(before);
    return found ? found[1] : null;
  }

  /** Replace the token being typed (sign included) by text, at the caret. */
  replaceToken(sign, text) {
    const typed = this.token(sign);
    const end = this.input.selectionStart;
    const start = typed === null ? end : end - typed.length - 1;
    this.input.value = this.input.value.slice(0, start) + text + this.input.value.slice(end);
    this.limit.reset();
    const caret = start + text.length;
    this.input.setSelectionRange(caret, caret);
    this.input.focus();
  }

  showComplete(items) {
    const box = $('ws-complete');
    box.replaceChildren(...items.map((item, i) => el('li', { role: 'option', 'aria-selected': String(i === 0),
      onclick: () => { item.apply(); this.closeComplete(); } },
    el('strong', { text: item.label }), ' ', el('span', { class: 'muted', text: item.detail.slice(0, 60) }))));
    box.hidden = !items.length;
  }

  upload(file, kind) {
    const form = new FormData();
    form.append('kind', kind);
    form.append('file', file);
    const xhr = new XMLHttpRequest();
    const progress = $('ws-progress');
    xhr.open('POST', `/api/v1/conversations/${this.id}/uploads?kind=${kind}`);
    xhr.setRequestHeader('X-CSRF-Token', boot.csrf);
    xhr.setRequestHeader(LANG_HEADER, boot.lang || 'en');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.textContent = `${file.name} ${Math.round((e.loaded / e.total) * 100)}%`; };
    xhr.onload = async () => {
      progress.textContent = '';
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status !== 201) return toast((data.error && data.error.message) || t('widget.upload_failed'), 'error');
      try {
        const { message } = await api('POST', `/conversations/${this.id}/messages`, {
          body: data.name, kind, attachment: data.key, mode: this.mode() === 'internal' ? 'internal' : this.mode(), client_msg_id: clientId() });
        this.add(message);
      } catch (e) { toast(e.message, 'error'); }
      return undefined;
    };
    xhr.send(form);
  }

  setupActions() {
    $('act-end').addEventListener('click', async () => {
      if (!(await confirmDialog(t('ws.confirm_end')))) return;
      try { await api('POST', `/conversations/${this.id}/end`); await this.reloadHead(); this.onChanged(); } catch (e) { toast(e.message, 'error'); }
    });
    $('act-rating').addEventListener('click', async () => {
      try { this.add(await api('POST', `/conversations/${this.id}/rating-invite`)); toast(t('ws.rating_sent')); } catch (e) { toast(e.message, 'error'); }
    });
    $('act-take').addEventListener('click', async () => {
      try {
        await api('POST', `/conversations/${this.id}/transfer`, { agent_id: me.id, accept_over_limit: true });
        await this.reloadHead();
        this.onChanged();
      } catch (e) { toast(e.message, 'error'); }
    });
    $('act-transfer').addEventListener('click', () => this.transferDialog());
    $('act-ticket').addEventListener('click', () => this.ticketDialog());
  }

  async transferDialog() {
    // Fresh presence: who is there now (online with a workspace open, away, offline).
    const [groups, agents] = await Promise.all([api('GET', '/groups').catch(() => []),
      api('GET', '/agents').catch(() => this.agents)]);
    this.agents = agents;
    // A live chat goes only to a colleague who is there (the server says 409 otherwise):
    // offline and away agents are listed, greyed out, so the list still says who is who.
    const there = (a) => a.id === me.id || ['online', 'invisible'].includes(a.presence || a.status);
    const form = el('form', { novalidate: true },
      el('label', {}, t('ws.to_agent'), el('select', { name: 'agent_id' }, el('option', { value: '', text: '–' }),
        this.agents.filter((a) => a.id !== this.data.handler_id).map((a) => el('option', { value: a.id, 'data-presence': a.presence || a.status, disabled: !there(a), text: `${a.name} · ${t(`status.${a.presence || a.status}`)}` })))),
      el('p', { class: 'hint', text: t('ws.transfer_hint') }),
      el('label', {}, t('ws.to_group'), el('select', { name: 'group_id' }, el('option', { value: '', text: '–' }),
        groups.map((g) => el('option', { value: g.id, text: g.name })))),
      el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: t('ws.transfer') })));
    const box = dialog(t('ws.transfer'), form);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {};
      if (form.elements.agent_id.value) body.agent_id = Number(form.elements.agent_id.value);
      if (form.elements.group_id.value) body.group_id = Number(form.elements.group_id.value);
      try {
        const id = this.id;
        await api('POST', `/conversations/${id}/transfer`, body);
        box.close();
        toast(t('ws.transferred'));
        // Read-only at once, before the reload (which may not even be allowed any more).
        const target = body.agent_id ? this.agents.find((a) => a.id === body.agent_id) : groups.find((g) => g.id === body.group_id);
        this.handedOver.set(id, target ? target.name : '');
        if (this.id === id && this.data) {
          this.data.handler_id = body.agent_id || null;
          this.renderHead();
        }
        await this.reloadHead().catch(() => {});
        this.onChanged();
      } catch (err) { formError(form, err); }
    });
  }

  ticketDialog() {
    const c = this.data.customer;
    const form = el('form', { novalidate: true },
      el('label', {}, t('tickets.subject'), el('input', { name: 'subject', maxlength: 200 })),
      el('label', {}, t('tickets.content'), el('textarea', { name: 'content', rows: 4 })),
      el('label', {}, t('tickets.priority'), el('select', { name: 'priority' },
        ['low', 'normal', 'high', 'urgent'].map((p) => el('option', { value: p, selected: p === 'normal', text: t(`priority.${p}`) })))),
      el('label', {}, t('card.name'), el('input', { name: 'name', value: c.name || '' })),
      el('label', {}, t('card.phone'), el('input', { name: 'phone', value: c.phone || '' })),
      el('label', {}, t('card.email'), el('input', { name: 'email', value: c.email || '' })),
      el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: t('ws.create_ticket') })));
    const box = dialog(t('ws.create_ticket'), form);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { conversation_id: this.id, ...formData(form) };
      for (const key of Object.keys(body)) if (body[key] === '') delete body[key];
      try {
        const ticket = await api('POST', '/tickets', body);
        box.close();
        toast(t('ws.ticket_created', { id: ticket.id }));
        this.sidebar.show(this.data);
      } catch (err) { formError(form, err); }
    });
  }
}
