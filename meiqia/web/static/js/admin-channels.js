// Channels: one row per installed channel (e-mail, WeChat, any plugin's); its settings form
// is generated from the channel's configuration_schema(). Secrets are never shown back:
// they come as ******** and are sent back so to keep them. "Test connection" calls the
// channel with the form's settings (unsaved ones too).
import { api, boot, clear, dialog, el, fmtTime, formError, t, toast } from './lib.js';

const MASK = '********';
const body = document.querySelector('#channels-table tbody');
let channels = [];

const nameOf = (c) => (c.names && (c.names[boot.lang] || c.names.en)) || c.name || c.type;
const capability = (cap) => t(`chn.cap.${cap}`);

function render() {
  clear(body);
  if (!channels.length) body.append(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: t('chn.none') })));
  for (const c of channels) {
    body.append(el('tr', { dataset: { type: c.type }, class: c.enabled ? '' : 'inactive' },
      // The name in the reader's language only: the slug (email, wechat) is the API's, not his.
      el('td', {}, el('strong', { class: 'channel-name', text: nameOf(c) })),
      el('td', { text: c.capabilities.length ? c.capabilities.map(capability).join('、') : t('chn.cap.none') }),
      el('td', { class: 'channel-state' }, c.enabled ? t('chn.on') : (c.configured ? t('chn.off') : t('chn.not_configured')), reader(c.reader)),
      el('td', {}, c.failed_deliveries ? el('span', { class: 'badge', text: c.failed_deliveries }) : '0'),
      el('td', {}, el('span', { class: 'row-actions' },
        el('button', { type: 'button', class: 'link', text: t('chn.configure'), onclick: () => edit(c) })))));
  }
}

/** How the channel's background reader is doing (the e-mail channel's mailbox): the
 * server's line in the reader's language, and when it last read / last failed. */
function reader(r) {
  if (!r) return null;
  const times = [r.read_at ? t('chn.reader.read_at', { time: fmtTime(r.read_at, true) }) : '',
    r.state === 'failing' && r.error_at ? t('chn.reader.error_at', { time: fmtTime(r.error_at, true) }) : ''].filter(Boolean);
  return el('div', { class: `channel-reader ${r.state}`, dataset: { reader: r.state } },
    el('span', { class: r.state === 'ok' ? 'hint' : 'error', text: r.message }),
    times.length ? el('span', { class: 'hint', text: ` · ${times.join(' · ')}` }) : null);
}

/** One input per property of the schema; names are config.<key>. The server gives the
 * schema's title, description and option labels (enumNames) in the page's language. */
function field(key, spec, required, secret, value) {
  const name = `config.${key}`;
  const label = spec.title || key;
  if (spec.type === 'boolean') {
    return el('label', { class: 'check' }, el('input', { type: 'checkbox', name, checked: Boolean(value ?? spec.default) }), label);
  }
  if (Array.isArray(spec.enum)) {
    const current = value ?? spec.default ?? '';
    return el('label', {}, label, required ? el('span', { class: 'ax-required', text: ' *' }) : null,
      el('select', { name }, spec.enum.map((option, i) => el('option', {
        value: String(option), text: String((spec.enumNames || [])[i] ?? option), selected: String(option) === String(current) }))));
  }
  const attrs = { name, required, value: value ?? spec.default ?? '' };
  if (spec.type === 'integer' || spec.type === 'number') {
    Object.assign(attrs, { type: 'number', min: spec.minimum, max: spec.maximum, step: spec.type === 'integer' ? 1 : 'any' });
  } else {
    const type = secret ? 'password' : ({ email: 'email', uri: 'url' }[spec.format] || 'text');
    Object.assign(attrs, { type, maxlength: spec.maxLength, autocomplete: secret ? 'new-password' : 'off' });
  }
  if (attrs.value === '' || attrs.value === null) delete attrs.value;
  else attrs.value = String(attrs.value);
  return el('label', {}, label, required ? el('span', { class: 'ax-required', text: ' *' }) : null, el('input', attrs),
    spec.description ? el('span', { class: 'hint', text: spec.description }) : null,
    secret && value === MASK ? el('span', { class: 'hint', text: t('chn.secret_kept') }) : null);
}

function readConfig(form, schema) {
  const config = {};
  for (const [key, spec] of Object.entries(schema.properties || {})) {
    const input = form.elements[`config.${key}`];
    if (!input) continue;
    if (spec.type === 'boolean') config[key] = input.checked;
    else if (spec.type === 'integer' || spec.type === 'number') {
      if (input.value !== '') config[key] = Number(input.value);
    } else if (input.value !== '' || (schema.required || []).includes(key)) config[key] = input.value;
  }
  return config;
}

function edit(channel) {
  const schema = channel.schema || {};
  const secrets = new Set(channel.secret || []);
  const required = new Set(schema.required || []);
  const result = el('p', { class: 'channel-test hint', role: 'status' });
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('p', { class: 'hint', text: t('chn.capabilities_hint', { list: channel.capabilities.map(capability).join('、') || t('chn.cap.none') }) }),
    // A channel the provider calls (WeChat): the address to enter in its console.
    channel.callback_url ? el('p', { class: 'channel-callback' }, t('chn.callback_url'), ' ',
      el('code', { text: channel.callback_url })) : null,
    (channel.fields || Object.keys(schema.properties || {})).filter((key) => (schema.properties || {})[key])
      .map((key) => field(key, schema.properties[key], required.has(key), secrets.has(key), channel.config[key])),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'enabled', checked: channel.enabled }), t('chn.enabled_long')),
    result,
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'channel-test-button', text: t('chn.test'), onclick: () => test() }),
      el('button', { type: 'submit', class: 'primary', text: t('ui.save') })));
  const box = dialog(t('chn.edit', { name: nameOf(channel) }), form);

  async function test() {
    result.textContent = t('chn.testing');
    result.className = 'channel-test hint';
    try {
      const answer = await api('POST', `/channels/${encodeURIComponent(channel.type)}/test`, { config: readConfig(form, schema) });
      result.textContent = answer.ok ? t('chn.test_ok', { message: answer.message }) : t('chn.test_failed', { message: answer.message });
      result.className = `channel-test ${answer.ok ? 'ok' : 'error'}`;
    } catch (error) {
      result.textContent = '';
      formError(form, error);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('PUT', `/channels/${encodeURIComponent(channel.type)}`,
        { enabled: form.elements.enabled.checked, config: readConfig(form, schema) });
      box.close();
      toast(t('ui.saved'));
      await load();
    } catch (error) {
      formError(form, error);
    }
  });
}

async function load() {
  channels = await api('GET', '/channels');
  render();
}

load().catch((error) => toast(error.message, 'error'));
