// How a message's content is drawn, the same in the workspace chat and the history
// transcript: images and files as links to the permission-checked attachment route,
// events and rating invitations as translated notes, text as text (never as HTML).
import { el, t } from './lib.js';
import { richSpan } from './rich-text.js';

/**
 * A text message's words: the bot's and agents' may hold links and images (knowledge
 * base answers), drawn by rich-text.js; a visitor's are only text. The same in the
 * workspace chat, the history transcript and a ticket's transcript.
 * @param {{sender_kind: string, body: string}} m
 */
export function textBody(m, className = 'text') {
  return m.sender_kind === 'visitor' ? el('span', { class: className, text: m.body }) : richSpan(m.body, className);
}

/**
 * A system event (handover, transfer, end, leave-a-message...) in the reader's words: its
 * body is the line the visitor was sent, in his language. The conversation list's preview
 * is the same line, written by the server (conversations.preview_text, same keys).
 */
export function eventText(m) {
  const p = m.payload || {};
  const ended = p.reason === 'inactivity' ? t('ws.ev.ended_inactivity', { n: p.minutes || '' })
    : t('ws.ev.ended', { by: p.by || '' });
  return p.event === 'ended' ? ended
    : p.event === 'transferred' ? t('ws.ev.transferred', { by: p.by || '', to: p.to || '' })
      : p.event === 'leave_message' ? t('ws.ev.leave_message')
        : p.event === 'handover' ? t('ws.ev.handover', { name: p.agent || '' })
          : p.event === 'requeued' ? t('ws.ev.requeued', { from: p.from || '' })
            : p.event === 'waiting_for_agent' ? t('ws.ev.waiting_for_agent')
              : (m.body || p.event || '');
}

/** The body of a non-text message, or null for a text message (the caller draws it). */
export function specialBody(m) {
  if (m.kind === 'image' || m.kind === 'file') {
    const url = `/api/v1/attachments/${encodeURIComponent((m.payload || {}).attachment || '')}`;
    return m.kind === 'image'
      ? el('a', { href: url, target: '_blank', rel: 'noopener' }, el('img', { src: url, alt: m.body, class: 'ws-img' }))
      : el('a', { href: url, class: 'ws-file', target: '_blank', rel: 'noopener', text: `📄 ${m.body}` });
  }
  if (m.kind === 'rating_invite') return el('em', { text: t('ws.rating_invited') });
  if (m.kind === 'event') return el('span', { text: eventText(m) });
  return null;
}

/** The questions a bot's "did you mean" offered the visitor (they are in its payload,
 * not its body), as a list; null for any other message, and for a channel's line that
 * has them written out in its body already (payload.written_out). */
export function offeredQuestions(m) {
  if ((m.payload || {}).written_out) return null;
  const candidates = (m.payload || {}).candidates || [];
  return candidates.length ? el('ul', { class: 'candidates' }, candidates.map((c) => el('li', { text: c.question }))) : null;
}
