// My account: API tokens (create with a scope and an expiry, shown once; list; revoke),
// password change (current password required, optionally revoking the tokens) and
// "sign out everywhere". Tokens cannot do any of this: only a signed-in session may.
import { api, clear, el, fmtTime, formError, me, t, toast, confirmDialog } from './lib.js';

const form = document.getElementById('token-form');
const tbody = document.querySelector('#tokens-table tbody');
const passwordForm = document.getElementById('password-form');

async function load() {
  const tokens = await api('GET', '/tokens');
  clear(tbody);
  for (const token of tokens) {
    tbody.append(el('tr', { class: token.revoked ? 'inactive' : '' },
      el('td', { text: token.name }),
      el('td', {}, el('code', { text: `${token.prefix}…` })),
      el('td', { text: t(`tokens.scope_${token.scope}`) }),
      el('td', { text: token.expires_at ? fmtTime(token.expires_at, true) : t('tokens.never') }),
      el('td', { text: fmtTime(token.created_at, true) }),
      el('td', { text: token.last_used_at ? fmtTime(token.last_used_at, true) : '–' }),
      el('td', {}, token.revoked ? t('tokens.revoked') : el('button', {
        type: 'button', class: 'link danger', text: t('tokens.revoke'),
        onclick: async () => {
          if (!(await confirmDialog(t('tokens.confirm_revoke', { name: token.name })))) return;
          try { await api('DELETE', `/tokens/${token.id}`); await load(); } catch (e) { toast(e.message, 'error'); }
        },
      }))));
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { name: form.elements.name.value, scope: form.elements.scope.value };
  const days = form.elements.expires_in_days.value;
  if (days) body.expires_in_days = Number(days);
  try {
    const created = await api('POST', '/tokens', body);
    document.getElementById('new-token-value').textContent = created.token;
    document.getElementById('new-token').hidden = false;
    form.reset();
    formError(form, null);
    await load();
  } catch (error) {
    formError(form, error);
  }
});

passwordForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {
    current_password: passwordForm.elements.current_password.value,
    password: passwordForm.elements.password.value,
    revoke_tokens: passwordForm.elements.revoke_tokens.checked,
  };
  try {
    await api('PATCH', `/agents/${me.id}`, body);
    passwordForm.reset();
    formError(passwordForm, null);
    toast(t('account.password_changed'));
    await load();
  } catch (error) {
    formError(passwordForm, error);
  }
});

document.getElementById('end-all-sessions').addEventListener('click', async () => {
  if (!(await confirmDialog(t('account.confirm_end_all')))) return;
  try {
    await api('POST', '/auth/sessions/end-all');
    window.location.assign('/login');
  } catch (error) {
    toast(error.message, 'error');
  }
});

load().catch((error) => toast(error.message, 'error'));
