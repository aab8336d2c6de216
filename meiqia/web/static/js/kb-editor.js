// The knowledge-base entry editor, shared by the entries page and the unrecognised
// questions page: one dialog, errors shown under the field they are about.
import { dialog, el, t } from './lib.js';

export const MAX_QUESTION = 500;
// An answer is sent as one chat message: at most what a message may hold (messages.MAX_BODY).
export const MAX_ANSWER = 5000;
const KEY_RE = /^[\w.-]+$/u;

/** The lines of a textarea, trimmed, blanks dropped. */
export function lines(text) {
  return text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
}

/** Which field of the editor an API error's field (``questions[3]``, ``answer``…) is about. */
export function fieldFor(apiField) {
  if (!apiField) return null;
  const match = /^questions(?:\[(\d+)\])?$/.exec(apiField);
  if (match) return match[1] && Number(match[1]) > 0 ? 'similar' : 'question';
  if (['key', 'answer', 'category'].includes(apiField)) return apiField;
  return null;
}

/** A textarea holding ``value`` (a value attribute would not show in a textarea). */
function area(attrs, value) {
  const node = el('textarea', attrs);
  node.value = value || '';
  return node;
}

function errorBox(name) {
  return el('p', { class: 'field-error', role: 'alert', hidden: true, dataset: { errorFor: name } });
}

/** Show ``message`` under field ``name`` of ``form`` (or above the form when no such field). */
export function showError(form, name, message) {
  let box = name ? form.querySelector(`[data-error-for="${name}"]`) : null;
  if (!box) box = form.querySelector('[data-error-for="_form"]');
  box.textContent = message;
  box.hidden = false;
  const input = name ? form.elements.namedItem(name) : null;
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

export function clearErrors(form) {
  form.querySelectorAll('[data-error-for]').forEach((box) => { box.hidden = true; box.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((node) => node.removeAttribute('aria-invalid'));
}

/** Checks the server would make, said in the page's language; returns [field, message] or null. */
function localCheck(form, withKey) {
  const question = form.elements.question.value.trim();
  if (withKey) {
    const key = form.elements.key.value.trim();
    if (key && !KEY_RE.test(key)) return ['key', t('kb.err.key_format')];
  }
  if (!question) return ['question', t('kb.err.question_required')];
  if (question.length > MAX_QUESTION) return ['question', t('kb.err.too_long', { max: MAX_QUESTION })];
  const similar = lines(form.elements.similar.value);
  if (similar.some((line) => line.length > MAX_QUESTION)) return ['similar', t('kb.err.too_long', { max: MAX_QUESTION })];
  if (similar.length + 1 > 100) return ['similar', t('kb.err.too_many', { max: 99 })];
  const answer = form.elements.answer.value.trim();
  if (!answer) return ['answer', t('kb.err.answer_required')];
  if (answer.length > MAX_ANSWER) return ['answer', t('kb.err.answer_too_long', { max: MAX_ANSWER })];
  return null;
}

/**
 * Open the editor. ``entry`` is an existing entry (edit) or a prefill ({questions, answer,
 * category}); ``save(body)`` sends it and may throw an ApiError, shown next to its field.
 * Options: ``isNew`` (shows the optional id field), ``withEnabled``, ``categories`` (for the
 * datalist), ``replies`` (texts offered as the answer), ``title``.
 */
export function openEditor({ entry = {}, isNew = true, withEnabled = true, categories = [], replies = [], title, save }) {
  entry = entry || {};
  const questions = entry.questions || [];
  const listId = `kb-categories-${Date.now()}`;
  // No maxlength: a browser would cut a longer paste without a word; the check above says why.
  const answer = area({ name: 'answer', rows: 5, required: true }, entry.answer);
  const form = el('form', { class: 'kb-editor', novalidate: true },
    errorBox('_form'),
    isNew ? el('label', {}, t('kb.key'), el('input', { name: 'key', maxlength: 80, value: entry.key || '', placeholder: 'return-shipping-fee' })) : null,
    isNew ? el('p', { class: 'hint', text: t('kb.key_hint') }) : null,
    isNew ? errorBox('key') : null,
    !isNew && entry.key ? el('p', { class: 'hint kb-editor-key' }, t('kb.key_fixed'), ' ', el('code', { text: entry.key })) : null,
    el('label', {}, t('kb.standard_question'),
      el('input', { name: 'question', maxlength: MAX_QUESTION, required: true, value: questions[0] || '' })),
    errorBox('question'),
    el('label', {}, t('kb.similar_questions'),
      area({ name: 'similar', rows: 5 }, questions.slice(1).join('\n'))),
    el('p', { class: 'hint', text: t('kb.similar_hint') }),
    errorBox('similar'),
    el('label', {}, t('kb.answer'), answer),
    errorBox('answer'),
    replies.length ? el('div', { class: 'kb-replies' },
      el('p', { class: 'hint', text: t('kb.agent_replies') }),
      el('ul', {}, replies.map((reply) => el('li', {},
        el('span', { class: 'kb-reply-text', text: reply }),
        el('button', { type: 'button', class: 'link small', text: t('kb.use_reply'), onclick: () => { answer.value = reply; } }))))) : null,
    el('label', {}, t('kb.category'),
      el('input', { name: 'category', maxlength: 80, value: entry.category || '', list: listId })),
    el('datalist', { id: listId }, categories.filter(Boolean).map((c) => el('option', { value: c }))),
    errorBox('category'),
    withEnabled ? el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'enabled', checked: entry.enabled !== false }), t('kb.enabled_long')) : null,
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: isNew ? t('kb.create') : t('ui.save') })));
  const box = dialog(title || (isNew ? t('kb.new') : t('kb.edit')), form);
  box.classList.add('kb-dialog');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const problem = localCheck(form, isNew);
    if (problem) {
      showError(form, ...problem);
      return;
    }
    const body = {
      questions: [form.elements.question.value.trim(), ...lines(form.elements.similar.value)],
      answer: form.elements.answer.value.trim(),
      category: form.elements.category.value.trim(),
    };
    if (withEnabled) body.enabled = form.elements.enabled.checked;
    if (isNew && form.elements.key.value.trim()) body.key = form.elements.key.value.trim();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await save(body);
      box.close();
    } catch (error) {
      showError(form, fieldFor(error.field), error.message);
    } finally {
      button.disabled = false;
    }
  });
  return box;
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmDialog(title, message, confirmLabel) {
  return new Promise((resolve) => {
    let confirmed = false;
    const box = dialog(title,
      el('p', { class: 'kb-confirm-text', text: message }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', text: t('kb.cancel'), onclick: () => box.close() }),
        el('button', { type: 'button', class: 'primary danger-fill', text: confirmLabel, onclick: () => { confirmed = true; box.close(); } })));
    box.addEventListener('close', () => resolve(confirmed));
  });
}
