// Team settings: bot thresholds, queue, leave-a-message form, widget colour and the
// sites that may frame it (one a line: data-list fields are lists) (PATCH /team).
import { api, formError, t, toast } from './lib.js';

const form = document.getElementById('settings-form');

function get(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function set(obj, path, value) {
  const keys = path.split('.');
  let node = obj;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys.at(-1)] = value;
}

function showRange(input) {
  const out = form.querySelector(`output[data-for="${input.name}"]`);
  if (out) out.textContent = Number(input.value).toFixed(2);
}

function fill(teamData) {
  for (const input of form.elements) {
    if (!input.name) continue;
    const value = get(teamData, input.name);
    if (value === undefined) continue;
    if ('multi' in input.dataset) input.checked = (value || []).includes(Number(input.value));
    else if (input.type === 'checkbox') input.checked = Boolean(value);
    else if ('list' in input.dataset) input.value = (value || []).join('\n');
    else input.value = value;
    if (input.type === 'range') showRange(input);
  }
}

form.addEventListener('input', (event) => {
  if (event.target.type === 'range') showRange(event.target);
});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {};
  for (const input of form.elements) {
    if (!input.name) continue;
    let value = input.value;
    if ('multi' in input.dataset) {
      // Checkboxes sharing a name (the working days): the list of the checked values.
      value = [...form.querySelectorAll(`[name="${CSS.escape(input.name)}"]:checked`)].map((n) => Number(n.value));
    } else if (input.type === 'checkbox') value = input.checked;
    else if (input.type === 'range' || input.type === 'number') value = Number(input.value);
    else if ('list' in input.dataset) value = input.value.split('\n').map((v) => v.trim()).filter(Boolean);
    set(body, input.name, value);
  }
  try {
    fill(await api('PATCH', '/team', body));
    formError(form, null);
    toast(t('ui.saved'));
  } catch (error) {
    formError(form, error);
  }
});

// Save waits for the team's settings: a save before they were shown sent the empty form
// (no name, no welcome message, no allowed sites).
api('GET', '/team').then((teamData) => {
  fill(teamData);
  form.querySelector('button[type=submit]').disabled = false;
}).catch((error) => formError(form, error));
