// Sidebar iframe plugins: add / edit / enable / delete panels; the secret that signs each
// panel's token is shown once (after adding or rotating it), with an example of checking it.
import { api, clear, dialog, el, formData, formError, t, toast, confirmDialog } from './lib.js';

const tbody = document.querySelector('#ifp-table tbody');
const page = document.querySelector('main.page');
const secretBox = document.getElementById('ifp-secret-box');
let plugins = [];

/** A Python (Flask) example for the panel's server, with this panel's secret filled in. */
function example(secret) {
  const ttl = Number(page.dataset.tokenTtl) || 600;
  return [
    'import time',
    '',
    'from flask import Flask, abort, request',
    'from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer',
    'from markupsafe import escape',
    '',
    `SECRET = ${JSON.stringify(secret)}`,
    `tokens = URLSafeTimedSerializer(SECRET, salt=${JSON.stringify(page.dataset.tokenSalt)})`,
    'app = Flask(__name__)',
    '',
    '',
    '@app.get("/panel")',
    'def panel():',
    '    try:',
    `        data = tokens.loads(request.args.get("token", ""), max_age=${ttl})`,
    '    except SignatureExpired:',
    '        abort(401, "expired: reopen the conversation")',
    '    except BadSignature:',
    '        abort(403)',
    '    if data["exp"] < time.time():',
    '        abort(401, "expired: reopen the conversation")',
    '    customer = data["customer"]  # name, phone, email, company, address, note, tags, attributes',
    '    # data["team_id"], data["conversation_id"], data["visitor_id"], data["agent_id"]',
    '    return f"<p>{escape(customer[\'name\'])} · {escape(customer[\'phone\'])}</p>"',
    '',
  ].join('\n');
}

function showSecret(plugin) {
  secretBox.hidden = false;
  document.getElementById('ifp-secret-title').textContent = t('ifp.secret_for', { name: plugin.name });
  document.getElementById('ifp-secret').textContent = plugin.secret;
  document.getElementById('ifp-example').textContent = example(plugin.secret);
  secretBox.scrollIntoView({ block: 'nearest' });
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t('ifp.copied'));
  } catch {
    toast(t('ifp.copy_failed'), 'error');
  }
}

function render() {
  clear(tbody);
  if (!plugins.length) tbody.append(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: t('ifp.none') })));
  for (const plugin of plugins) {
    const toggle = el('input', { type: 'checkbox', checked: plugin.enabled, 'aria-label': t('ifp.enabled'),
      onchange: async () => {
        try {
          await api('PATCH', `/iframe-plugins/${plugin.id}`, { enabled: toggle.checked });
          toast(toggle.checked ? t('ifp.turned_on', { name: plugin.name }) : t('ifp.turned_off', { name: plugin.name }));
          await load();
        } catch (error) { toast(error.message, 'error'); }
      } });
    tbody.append(el('tr', { dataset: { id: plugin.id }, class: plugin.enabled ? '' : 'inactive' },
      el('td', {}, el('strong', { class: 'ifp-name', text: plugin.name })),
      el('td', { class: 'ax-url' }, el('code', { text: plugin.url })),
      el('td', { text: `${plugin.height}px` }),
      el('td', { text: plugin.position }),
      el('td', {}, toggle),
      el('td', {}, el('span', { class: 'row-actions' },
        el('button', { type: 'button', class: 'link', text: t('ui.edit'), onclick: () => edit(plugin) }),
        el('button', { type: 'button', class: 'link', text: t('ifp.rotate'), onclick: () => rotate(plugin) }),
        el('button', { type: 'button', class: 'link danger', text: t('ui.delete'), onclick: () => remove(plugin) })))));
  }
}

function edit(plugin) {
  const isNew = !plugin;
  plugin = plugin || { name: '', url: 'https://', height: 300, position: plugins.length, enabled: true };
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('label', {}, t('ifp.name'), el('input', { name: 'name', required: true, maxlength: 80, value: plugin.name })),
    el('label', {}, t('ifp.url'), el('input', { name: 'url', type: 'url', required: true, maxlength: 500, value: plugin.url })),
    el('p', { class: 'hint', text: t('ifp.url_hint') }),
    el('label', {}, t('ifp.height'), el('input', { name: 'height', type: 'number', min: 80, max: 2000, value: plugin.height })),
    el('label', {}, t('ifp.position'), el('input', { name: 'position', type: 'number', min: 0, max: 10000, value: plugin.position })),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'enabled', checked: plugin.enabled }), t('ifp.enabled_long')),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: isNew ? t('ifp.create') : t('ui.save') })));
  const box = dialog(isNew ? t('ifp.new') : t('ifp.edit', { name: plugin.name }), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const saved = isNew ? await api('POST', '/iframe-plugins', formData(form))
        : await api('PATCH', `/iframe-plugins/${plugin.id}`, formData(form));
      box.close();
      if (saved.secret) showSecret(saved);
      toast(isNew ? t('ifp.created', { name: saved.name }) : t('ui.saved'));
      await load();
    } catch (error) {
      formError(form, error);
    }
  });
}

async function rotate(plugin) {
  if (!(await confirmDialog(t('ifp.confirm_rotate', { name: plugin.name })))) return;
  try {
    showSecret(await api('POST', `/iframe-plugins/${plugin.id}/rotate-secret`));
  } catch (error) { toast(error.message, 'error'); }
}

async function remove(plugin) {
  if (!(await confirmDialog(t('ifp.confirm_delete', { name: plugin.name })))) return;
  try {
    await api('DELETE', `/iframe-plugins/${plugin.id}`);
    await load();
  } catch (error) { toast(error.message, 'error'); }
}

// Enabled once the list is here: a new plugin's position defaults to the end of it.
async function load() {
  plugins = await api('GET', '/iframe-plugins');
  render();
  document.getElementById('ifp-new').disabled = false;
}

document.getElementById('ifp-new').addEventListener('click', () => edit(null));
document.getElementById('ifp-copy-secret').addEventListener('click', () => copy(document.getElementById('ifp-secret').textContent));
document.getElementById('ifp-copy-example').addEventListener('click', () => copy(document.getElementById('ifp-example').textContent));
document.getElementById('ifp-secret-done').addEventListener('click', () => {
  // Shown once: forget it on the page too.
  document.getElementById('ifp-secret').textContent = '';
  document.getElementById('ifp-example').textContent = '';
  secretBox.hidden = true;
});
load().catch((error) => toast(error.message, 'error'));
