// Quick replies (team-wide, admin-managed): keyword, title, content, category; filter by
// keyword or category. Agents use them in the composer by typing #keyword.
import { api, clear, dialog, el, formData, formError, t, toast, confirmDialog } from './lib.js';

const tbody = document.querySelector('#qr-table tbody');
const filter = document.getElementById('qr-filter');
const categorySelect = document.getElementById('qr-category');
const datalist = document.getElementById('qr-categories');
let replies = [];

function categories() {
  return [...new Set(replies.map((r) => r.category).filter(Boolean))].sort((a, b) => a.localeCompare(b, 'zh-CN'));
}

function fillCategories() {
  const current = categorySelect.value;
  clear(categorySelect).append(el('option', { value: '', text: t('qra.all_categories') }),
    ...categories().map((c) => el('option', { value: c, text: c, selected: c === current })));
  clear(datalist).append(...categories().map((c) => el('option', { value: c })));
}

function render() {
  const needle = filter.value.trim().replace(/^[#＃]/, '').toLowerCase();
  const category = categorySelect.value;
  const shown = replies.filter((r) => (!category || r.category === category)
    && (!needle || r.keyword.toLowerCase().includes(needle) || (r.title || '').toLowerCase().includes(needle)
      || r.body.toLowerCase().includes(needle)));
  clear(tbody);
  if (!shown.length) {
    tbody.append(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: replies.length ? t('qra.no_match') : t('qra.none') })));
  }
  for (const reply of shown) {
    tbody.append(el('tr', { dataset: { id: reply.id } },
      el('td', {}, el('strong', { class: 'qr-keyword', text: `#${reply.keyword}` })),
      el('td', { text: reply.title || '' }),
      el('td', { class: 'ax-body', text: reply.body }),
      el('td', {}, reply.category ? el('span', { class: 'tag', text: reply.category }) : null),
      el('td', {}, el('span', { class: 'row-actions' },
        el('button', { type: 'button', class: 'link', text: t('ui.edit'), onclick: () => edit(reply) }),
        el('button', { type: 'button', class: 'link danger', text: t('ui.delete'), onclick: () => remove(reply) })))));
  }
}

function edit(reply) {
  const isNew = !reply;
  reply = reply || { keyword: '', title: '', body: '', category: categorySelect.value || '' };
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('label', {}, t('qra.keyword'), el('input', { name: 'keyword', required: true, maxlength: 41, value: reply.keyword,
      placeholder: t('qra.keyword_placeholder') })),
    el('p', { class: 'hint', text: t('qra.keyword_hint') }),
    el('label', {}, t('qra.title_field'), el('input', { name: 'title', maxlength: 120, value: reply.title || '' })),
    el('label', {}, t('qra.category'), el('input', { name: 'category', maxlength: 40, list: 'qr-categories', value: reply.category || '' })),
    el('label', {}, t('qra.content'), el('textarea', { name: 'body', required: true, rows: 5, maxlength: 5000, text: reply.body })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: isNew ? t('qra.create') : t('ui.save') })));
  const box = dialog(isNew ? t('qra.new') : t('qra.edit', { keyword: reply.keyword }), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = formData(form);
    try {
      if (isNew) await api('POST', '/quick-replies', { ...body, team: true });
      else await api('PATCH', `/quick-replies/${reply.id}`, body);
      box.close();
      toast(isNew ? t('qra.created', { keyword: body.keyword.replace(/^[#＃]/, '') }) : t('ui.saved'));
      await load();
    } catch (error) {
      formError(form, error);
    }
  });
}

async function remove(reply) {
  if (!(await confirmDialog(t('qra.confirm_delete', { keyword: reply.keyword })))) return;
  try {
    await api('DELETE', `/quick-replies/${reply.id}`);
    await load();
  } catch (error) {
    toast(error.message, 'error');
  }
}

async function load() {
  replies = (await api('GET', '/quick-replies')).filter((r) => r.team);
  fillCategories();
  render();
}

document.getElementById('qr-new').addEventListener('click', () => edit(null));
filter.addEventListener('input', render);
categorySelect.addEventListener('change', render);
load().catch((error) => toast(error.message, 'error'));
