// Ticket sinks: configure webhook / email (or any plugin's) sinks with a form generated from
// the sink type's schema; secrets are never shown back (sent as ******** to keep them).
// Below: recent deliveries, failures with their last error, and retry.
import { api, clear, dialog, el, fmtTime, formError, t, toast, confirmDialog } from './lib.js';

const MASK = '********';
const sinksBody = document.querySelector('#sinks-table tbody');
const deliveriesBody = document.querySelector('#deliveries-table tbody');
const typeSelect = document.getElementById('sink-type');
const statusSelect = document.getElementById('delivery-status');
let types = [];
let sinks = [];

const typeOf = (type) => types.find((x) => x.type === type);
const typeName = (type) => {
  const key = `sinks.type.${type}`;
  const text = t(key);
  return text === key ? (typeOf(type)?.name || type) : text;
};

function target(sink) {
  const c = sink.config || {};
  return c.url || c.to || c.host || '';
}

function renderSinks() {
  clear(sinksBody);
  if (!sinks.length) sinksBody.append(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: t('sinks.none') })));
  for (const sink of sinks) {
    sinksBody.append(el('tr', { dataset: { id: sink.id }, class: sink.enabled ? '' : 'inactive' },
      el('td', {}, el('strong', { class: 'sink-name', text: sink.name })),
      el('td', { text: typeName(sink.type) }),
      el('td', { class: 'ax-url' }, el('code', { text: target(sink) })),
      el('td', { text: sink.enabled ? t('sinks.on') : t('sinks.off') }),
      el('td', {}, sink.failed_deliveries ? el('span', { class: 'badge', text: sink.failed_deliveries }) : '0'),
      el('td', {}, el('span', { class: 'row-actions' },
        el('button', { type: 'button', class: 'link', text: t('ui.edit'), onclick: () => edit(sink.type, sink) }),
        el('button', { type: 'button', class: 'link danger', text: t('ui.delete'), onclick: () => remove(sink) })))));
  }
}

/** One input per property of the sink type's JSON schema; names are config.<key>. The
 * server gives each title in the page's language (a plugin's as its schema words it). */
function field(key, spec, required, secret, value) {
  const name = `config.${key}`;
  const label = spec.title || key;
  if (spec.type === 'boolean') {
    return el('label', { class: 'check' }, el('input', { type: 'checkbox', name, checked: Boolean(value) }), label);
  }
  const attrs = { name, required, value: value ?? spec.default ?? '' };
  if (spec.type === 'integer' || spec.type === 'number') {
    Object.assign(attrs, { type: 'number', min: spec.minimum, max: spec.maximum, step: spec.type === 'integer' ? 1 : 'any' });
  } else {
    Object.assign(attrs, { type: secret ? 'password' : (spec.format === 'email' ? 'email' : 'text'), maxlength: spec.maxLength,
      autocomplete: secret ? 'new-password' : 'off' });
  }
  if (attrs.value === '' || attrs.value === null) delete attrs.value;
  else attrs.value = String(attrs.value);
  return el('label', {}, label, required ? el('span', { class: 'ax-required', text: ' *' }) : null, el('input', attrs),
    secret && value === MASK ? el('span', { class: 'hint', text: t('sinks.secret_kept') }) : null);
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

function edit(type, sink) {
  const kind = typeOf(type);
  if (!kind) return;
  const isNew = !sink;
  const schema = kind.schema || {};
  const secrets = new Set(schema.secret || []);
  const required = new Set(schema.required || []);
  const config = sink ? sink.config : {};
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('label', {}, t('sinks.name'), el('input', { name: 'name', required: true, maxlength: 80, value: sink ? sink.name : typeName(type) })),
    Object.entries(schema.properties || {}).map(([key, spec]) => field(key, spec, required.has(key), secrets.has(key), config[key])),
    type === 'webhook' ? el('p', { class: 'hint', text: t('sinks.webhook_hint') }) : null,
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'enabled', checked: sink ? sink.enabled : true }), t('sinks.enabled_long')),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: isNew ? t('sinks.create') : t('ui.save') })));
  const box = dialog(isNew ? t('sinks.new_of', { type: typeName(type) }) : t('sinks.edit', { name: sink.name }), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: form.elements.name.value, enabled: form.elements.enabled.checked, config: readConfig(form, schema) };
    try {
      if (isNew) await api('POST', '/ticket-sinks', { type, ...body });
      else await api('PATCH', `/ticket-sinks/${sink.id}`, body);
      box.close();
      toast(isNew ? t('sinks.created', { name: body.name }) : t('ui.saved'));
      await load();
    } catch (error) {
      formError(form, error);
    }
  });
}

async function remove(sink) {
  if (!(await confirmDialog(t('sinks.confirm_delete', { name: sink.name })))) return;
  try {
    await api('DELETE', `/ticket-sinks/${sink.id}`);
    await load();
  } catch (error) { toast(error.message, 'error'); }
}

async function retry(delivery) {
  try {
    await api('POST', `/ticket-sinks/deliveries/${delivery.id}/retry`);
    toast(t('sinks.retrying', { id: delivery.id }));
    await load();
  } catch (error) { toast(error.message, 'error'); }
}

// The latest request: an older answer arriving late is dropped. A retry's reload (every
// status) could answer after the filter chosen meanwhile, and its rows replaced the filter's.
let deliveriesAsked = 0;

async function loadDeliveries() {
  const status = statusSelect.value;
  const mine = (deliveriesAsked += 1);
  const rows = await api('GET', `/ticket-sinks/deliveries${status ? `?status=${encodeURIComponent(status)}` : ''}`);
  if (mine !== deliveriesAsked) return;
  clear(deliveriesBody);
  deliveriesBody.dataset.status = status; // which filter the rows shown are of
  if (!rows.length) deliveriesBody.append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: t('sinks.no_deliveries') })));
  for (const d of rows.slice(0, 50)) {
    deliveriesBody.append(el('tr', { dataset: { id: d.id, status: d.status } },
      el('td', { text: fmtTime(d.updated_at || d.created_at, true) }),
      el('td', { text: d.sink }),
      el('td', {}, el('a', { href: `/tickets/${d.ticket_id}`, text: `#${d.ticket_id}` })),
      el('td', { text: t(`sinks.event.${d.event}`) }),
      el('td', {}, el('span', { class: `ax-status ax-${d.status}`, text: t(`sinks.status.${d.status}`) })),
      el('td', { text: d.attempts }),
      el('td', { class: 'ax-error', text: d.last_error || '' }),
      el('td', {}, d.status !== 'delivered'
        ? el('button', { type: 'button', class: 'link', text: t('sinks.retry'), onclick: () => retry(d) }) : null)));
  }
}

async function load() {
  sinks = await api('GET', '/ticket-sinks');
  renderSinks();
  await loadDeliveries();
}

async function start() {
  types = await api('GET', '/ticket-sinks/types');
  clear(typeSelect).append(...types.map((x) => el('option', { value: x.type, text: typeName(x.type) })));
  // Enabled once the types are here: the form is built from the chosen type's schema, and
  // before they came a click did nothing at all.
  document.getElementById('sink-new').disabled = false;
  await load();
}

document.getElementById('sink-new').addEventListener('click', () => edit(typeSelect.value, null));
document.getElementById('deliveries-refresh').addEventListener('click', () => loadDeliveries().catch((e) => toast(e.message, 'error')));
statusSelect.addEventListener('change', () => loadDeliveries().catch((e) => toast(e.message, 'error')));
start().catch((error) => toast(error.message, 'error'));
