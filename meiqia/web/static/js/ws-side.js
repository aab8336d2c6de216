// The workspace's right column: the customer card (editable), visit information, custom
// information, recent conversations and tickets, quick replies, and the plugins' iframe
// panels (sandboxed; their URLs carry a signed token, see docs/plugins.md).
import { api, clear, deviceLabel, el, fmtTime, formError, regionText, t, toast } from './lib.js';

const $ = (id) => document.getElementById(id);

function facts(node, pairs) {
  clear(node);
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== '');
  if (!shown.length) node.append(el('dd', { class: 'muted', text: t('ui.none') }));
  for (const [label, value] of shown) node.append(el('dt', { text: label }), el('dd', { text: String(value) }));
}

export class Sidebar {
  constructor({ open }) {
    this.open = open;
    this.visitorId = null;
    const form = $('card-form');
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {};
      for (const key of ['name', 'phone', 'email', 'company', 'address', 'note']) body[key] = form.elements[key].value;
      body.tags = form.elements.tags.value.split(/[,，\s]+/).filter(Boolean);
      if (!body.email) delete body.email;
      try {
        await api('PATCH', `/visitors/${this.visitorId}`, body);
        formError(form, null);
        toast(t('ui.saved'));
        // The new name shows in the list and the chat head at once.
        document.dispatchEvent(new CustomEvent('meiqia:card-saved', { detail: { visitor_id: this.visitorId } }));
      } catch (err) { formError(form, err); }
    });
  }

  /** The plugins' panels of a conversation: reloaded (with fresh tokens) when another
   *  conversation is opened, or this one again after five minutes. */
  async panels(conversationId) {
    const box = $('sidebar-panels');
    if (!box) return;
    if (box.dataset.conversation === String(conversationId) && Date.now() - this.panelsAt < 300000) return;
    box.dataset.conversation = String(conversationId);
    this.panelsAt = Date.now();
    clear(box);
    const panels = await api('GET', `/conversations/${conversationId}/sidebar-panels`).catch(() => []);
    if (box.dataset.conversation !== String(conversationId)) return;
    for (const p of panels) {
      box.append(el('section', { class: 'panel plugin-panel' }, el('h3', { text: p.name }),
        el('iframe', { src: p.url, title: p.name, sandbox: 'allow-scripts allow-forms allow-popups',
          referrerpolicy: 'no-referrer', height: String(p.height),
          style: `width:100%;height:${Number(p.height) || 300}px;border:0;display:block` })));
    }
  }

  /** The customer's recent conversations: when, state, agent, his rating and what he wrote
   *  with it (满意 · 评价内容：服务很好), and the summary. */
  renderRecent(recent) {
    this.recentIds = new Set(recent.map((r) => r.id));
    const recentNode = clear($('recent-conversations'));
    if (!recent.length) recentNode.append(el('li', { class: 'muted', text: t('ui.none') }));
    for (const r of recent) {
      recentNode.append(el('li', { dataset: { id: r.id } },
        el('a', { href: `#c${r.id}`, onclick: (e) => { e.preventDefault(); this.open(r.id); } },
          `${fmtTime(r.started_at, true)} · ${t(`cstatus.${r.status}`)}${r.agent ? ` · ${r.agent}` : ''}`),
        r.rating ? el('span', { class: 'recent-rating', dataset: { rating: r.rating }, text: ` · ${t(`history.rating.${r.rating}`)}` }) : null,
        r.rating_comment ? el('div', { class: 'small recent-comment', text: t('ws.rating_comment', { text: r.rating_comment }) }) : null,
        r.summary ? el('div', { class: 'muted small', text: r.summary }) : null));
    }
  }

  /** A ``rated`` frame: the visitor rated one of the conversations listed, so the list is
   *  read again and shows his rating and comment as they arrive. */
  async onRated(data) {
    if (!this.visitorId || !(this.recentIds && this.recentIds.has(data.conversation_id))) return;
    const visitorId = this.visitorId;
    const recent = await api('GET', `/visitors/${visitorId}/conversations`).catch(() => null);
    if (recent && this.visitorId === visitorId) this.renderRecent(recent);
  }

  async show(conversation) {
    $('ws-right').hidden = false;
    this.panels(conversation.id);
    const c = conversation.customer;
    this.visitorId = c.id;
    const form = $('card-form');
    for (const key of ['name', 'phone', 'email', 'company', 'address', 'note']) form.elements[key].value = c[key] || '';
    form.elements.tags.value = (c.tags || []).join(', ');
    const v = c.visit || {};
    facts($('visit-info'), [
      [t('visit.device'), deviceLabel(v.device)], [t('visit.os'), v.os], [t('visit.browser'), v.browser],
      [t('visit.platform'), v.platform ? t(`platform.${v.platform}`) : ''], [t('visit.region'), regionText(v.region)], [t('visit.ip'), v.ip],
      [t('visit.source'), v.source ? t(`source.${v.source}`) + (v.search_engine ? ` · ${v.search_engine}` : '') : ''],
      [t('visit.keyword'), v.search_keyword], [t('visit.landing'), v.landing_page], [t('visit.referrer'), v.referrer],
    ]);
    facts($('custom-info'), Object.entries({ ...(v.custom_info || {}), ...(c.attributes || {}) }));
    const [recent, tickets, replies] = await Promise.all([
      api('GET', `/visitors/${c.id}/conversations`).catch(() => []),
      api('GET', `/visitors/${c.id}/tickets`).catch(() => []),
      api('GET', '/quick-replies').catch(() => []),
    ]);
    if (this.visitorId !== c.id) return;
    this.renderRecent(recent);
    const ticketNode = clear($('recent-tickets'));
    if (!tickets.length) ticketNode.append(el('li', { class: 'muted', text: t('ui.none') }));
    for (const tk of tickets) {
      ticketNode.append(el('li', {}, el('a', { href: `/tickets/${tk.id}`, text: `#${tk.id} ${tk.subject || ''}` }),
        el('span', { class: 'muted small', text: ` ${t(`tstatus.${tk.status}`)}` })));
    }
    const replyNode = clear($('quick-replies'));
    if (!replies.length) replyNode.append(el('li', { class: 'muted', text: t('ui.none') }));
    for (const r of replies) {
      replyNode.append(el('li', { class: 'quick', title: r.body, onclick: () => {
        const input = $('ws-input');
        input.value = r.body;
        input.focus();
      } }, el('strong', { text: `#${r.keyword}` }), ' ', el('span', { class: 'muted', text: r.title || r.body.slice(0, 30) }),
      r.team ? el('span', { class: 'tag', text: t('qr.team') }) : null));
    }
  }
}
