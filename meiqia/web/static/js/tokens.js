// My API tokens: create (shown once), list, revoke.
import { api, clear, el, fmtTime, formError, t, toast } from './lib.js';

const form = document.getElementById('token-form');
const tbody = document.querySelector('#tokens-table tbody');

async function load() {
  const tokens = await api('GET', '/tokens');
  clear(tbody);
  for (const token of tokens) {
    tbody.append(el('tr', { class: token.revoked ? 'inactive' : '' },
      el('td', { text: token.name }),
      el('td', {}, el('code', { text: `${token.prefix}…` })),
      el('td', { text: fmtTime(token.created_at, true) }),
      el('td', { text: token.last_used_at ? fmtTime(token.last_used_at, true) : '–' }),
      el('td', {}, token.revoked ? t('tokens.revoked') : el('button', {
        type: 'button', class: 'link danger', text: t('tokens.revoke'),
        onclick: async () => {
          if (!window.confirm(t('tokens.confirm_revoke', { name: token.name }))) return;
          try { await api('DELETE', `/tokens/${token.id}`); await load(); } catch (e) { toast(e.message, 'error'); }
        },
      }))));
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const created = await api('POST', '/tokens', { name: form.elements.name.value });
    document.getElementById('new-token-value').textContent = created.token;
    document.getElementById('new-token').hidden = false;
    form.reset();
    formError(form, null);
    await load();
  } catch (error) {
    formError(form, error);
  }
});

load().catch((error) => toast(error.message, 'error'));
