// Unrecognised questions: the groups the bot could not answer, largest first; turn one into
// a knowledge-base entry (the editor prefilled with its questions) or dismiss it.
import { api, clear, el, fmtTime, t, toast } from './lib.js';
import { confirmDialog, openEditor } from './kb-editor.js';

const list = document.getElementById('unrec-list');
const empty = document.getElementById('unrec-empty');
const days = document.getElementById('unrec-days');
const SHOWN = 6;
let categories = [];

function examples(group) {
  const questions = group.questions;
  const shown = questions.slice(0, SHOWN);
  const more = questions.slice(SHOWN);
  return el('div', { class: 'unrec-examples' },
    el('ul', {}, shown.map((q) => el('li', { text: q }))),
    more.length ? el('details', {},
      el('summary', { text: t('kb.more_examples', { n: more.length }) }),
      el('ul', {}, more.map((q) => el('li', { text: q })))) : null);
}

function replies(group) {
  if (!group.closing_replies.length) return null;
  return el('div', { class: 'unrec-replies' },
    el('p', { class: 'hint', text: t('kb.agent_replies') }),
    el('ul', {}, group.closing_replies.map((reply) => el('li', { text: reply }))));
}

/** Prefill: the group's representative question first, the others as similar questions. */
function prefill(group) {
  const questions = [group.question, ...group.questions.filter((q) => q !== group.question)];
  return { questions, answer: group.closing_replies[0] || '', category: '' };
}

function resolve(group) {
  openEditor({
    entry: prefill(group),
    isNew: true,
    withEnabled: false,
    categories,
    replies: group.closing_replies,
    title: t('kb.resolve_title'),
    save: async (body) => {
      const entry = await api('POST', '/bot/unrecognised/resolve', { ...body, question_ids: group.question_ids });
      toast(t('kb.resolved', { q: entry.questions[0] }));
      await load();
    },
  });
}

async function dismiss(group) {
  const ok = await confirmDialog(t('kb.dismiss_title'), t('kb.dismiss_confirm', { q: group.question, n: group.count }), t('kb.dismiss'));
  if (!ok) return;
  try {
    await api('POST', '/bot/unrecognised/dismiss', { question_ids: group.question_ids });
    toast(t('kb.dismissed'));
    await load();
  } catch (error) {
    toast(error.message, 'error');
  }
}

function render(groups) {
  clear(list);
  empty.hidden = groups.length > 0;
  empty.textContent = groups.length ? '' : t('kb.unrecognised_empty', { n: days.value });
  for (const group of groups) {
    list.append(el('li', { class: 'card unrec-group', dataset: { count: group.count } },
      el('div', { class: 'unrec-head' },
        el('span', { class: 'badge unrec-count', title: t('kb.times_asked'), text: `×${group.count}` }),
        el('strong', { class: 'unrec-question', text: group.question }),
        el('span', { class: 'muted small', text: t('kb.last_asked', { time: fmtTime(group.last_asked_at, true) }) })),
      examples(group),
      replies(group),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'link danger unrec-dismiss', text: t('kb.dismiss'), onclick: () => dismiss(group) }),
        el('button', { type: 'button', class: 'primary unrec-resolve', text: t('kb.resolve'), onclick: () => resolve(group) }))));
  }
  document.body.dataset.unrecLoaded = String(Date.now());
}

async function load() {
  const data = await api('GET', `/bot/unrecognised?days=${encodeURIComponent(days.value)}`);
  // Largest first; the API already orders so, this keeps it true whatever it does.
  render([...data.groups].sort((a, b) => b.count - a.count));
}

days.addEventListener('change', () => load().catch((error) => toast(error.message, 'error')));
load().catch((error) => toast(error.message, 'error'));
api('GET', '/knowledge?per_page=1').then((data) => { categories = data.categories; }).catch(() => {});
