// Groups: create, rename, delete.
import { api, clear, el, formError, t, toast, confirmDialog } from './lib.js';

const form = document.getElementById('group-form');
const list = document.getElementById('groups-list');

function row(group) {
  const name = el('span', { class: 'group-name', text: group.name });
  const rename = async () => {
    const input = el('input', { name: 'name', value: group.name, maxlength: 80, 'aria-label': t('groups.name') });
    const editor = el('form', { class: 'inline-form', novalidate: true }, input,
      el('button', { type: 'submit', class: 'primary', text: t('ui.save') }),
      el('button', { type: 'button', text: t('ui.cancel'), onclick: load }));
    editor.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api('PATCH', `/groups/${group.id}`, { name: input.value });
        await load();
      } catch (error) {
        formError(editor, error);
      }
    });
    item.replaceChildren(editor);
    input.focus();
  };
  const remove = async () => {
    if (!(await confirmDialog(t('groups.confirm_delete', { name: group.name })))) return;
    try {
      await api('DELETE', `/groups/${group.id}`);
      await load();
    } catch (error) {
      toast(error.message, 'error');
    }
  };
  const item = el('li', { dataset: { id: group.id } }, name,
    el('span', { class: 'row-actions' },
      el('button', { type: 'button', class: 'link', text: t('ui.rename'), onclick: rename }),
      el('button', { type: 'button', class: 'link danger', text: t('ui.delete'), onclick: remove })));
  return item;
}

async function load() {
  const groups = await api('GET', '/groups');
  clear(list);
  if (!groups.length) list.append(el('li', { class: 'muted', text: t('groups.none') }));
  groups.forEach((g) => list.append(row(g)));
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await api('POST', '/groups', { name: form.elements.name.value });
    form.reset();
    formError(form, null);
    await load();
  } catch (error) {
    formError(form, error);
  }
});

load().catch((error) => toast(error.message, 'error'));
