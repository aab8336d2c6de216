// Shared helpers of the agent pages: the boot data, strings, the JSON API, DOM building.
// User text only ever enters the page through textContent (el() below), never innerHTML.

const bootNode = document.getElementById('boot');
export const boot = bootNode ? JSON.parse(bootNode.textContent) : { i18n: {}, agent: null };
export const me = boot.agent;
export const team = boot.team;

/** A UI string in the page's language, with {name} placeholders filled. */
export function t(key, values) {
  // English has a singular: "{n} pages" has "….one" for n = 1 ("1 page").
  const one = values && Number(values.n) === 1 ? boot.i18n[`${key}.one`] : undefined;
  let text = one ?? boot.i18n[key] ?? key;
  if (values) {
    text = text.replace(/\{(\w+)\}/g, (all, name) => (name in values ? String(values[name]) : all));
  }
  return text;
}

/** A visit's region as this page says it: private addresses are stored as "内网". */
export function regionText(region) {
  return region === '内网' ? t('visit.region_lan') : region || '';
}

/** A stored device as this page says it: "mobile (iPhone)" as "手机 (iPhone)", "pc / Linux /
 *  Chrome 120" (a history row) as "电脑 / Linux / Chrome 120": the kind translated
 *  (device.*, one table for the sidebar, the history and its exports), the rest as it is. */
export function deviceLabel(device) {
  const found = /^(pc|mobile|tablet|bot|other)\b(.*)$/s.exec(device || '');
  return found ? t(`device.${found[1]}`) + found[2] : (device || '');
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
  }
}

/** The header naming the page's language: the server's error messages come back in it. */
export const LANG_HEADER = 'X-Meiqia-Lang';

/** Call the JSON API (session cookie + CSRF header); throws ApiError with the server's message. */
export async function api(method, path, body, options = {}) {
  const headers = { 'X-CSRF-Token': boot.csrf, Accept: 'application/json', [LANG_HEADER]: boot.lang || 'en' };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, {
    method, headers, body: payload, credentials: 'same-origin', signal: options.signal,
  });
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json() : null;
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || { message: response.statusText });
  }
  return data;
}

/** Build an element: el('a', {href, class, text, onclick, dataset}, ...children). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** Show a short message at the bottom of the page. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toast');
  if (!box) return;
  const item = el('div', { class: `toast ${kind}`, text: message });
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** Put an API error on a form: beside its field when the error names one (the
 * field marked, the message right under it), else at the top of the form; either
 * way scrolled to the middle of the screen, never under the sticky top bar. There
 * is one message box per form (``.form-error``), moved to where the error is. */
export function formError(form, error) {
  form.querySelectorAll('[aria-invalid]').forEach((n) => {
    n.removeAttribute('aria-invalid');
    n.removeAttribute('aria-describedby');
  });
  let box = form.querySelector('.form-error');
  if (!box) {
    box = el('p', { class: 'form-error error', role: 'alert' });
    box.id = `form-error-${Math.random().toString(36).slice(2)}`;
    form.prepend(box);
  }
  if (!error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.textContent = error.message;
  let input = null;
  if (error.field) {
    const name = error.field.split('.').pop();
    input = form.querySelector(`[name="${CSS.escape(error.field)}"], [name="${CSS.escape(name)}"]`);
  }
  box.classList.toggle('field-error', Boolean(input));
  if (input) {
    (input.closest('label') || input).after(box);
    input.setAttribute('aria-invalid', 'true');
    if (box.id) input.setAttribute('aria-describedby', box.id);
    input.focus({ preventScroll: true });
  } else if (form.firstElementChild !== box) {
    form.prepend(box);
  }
  box.scrollIntoView({ block: 'center' });
}

/** An in-app yes/no question (instead of the browser's native dialog): resolves true
 * on the confirming button, false on cancel, Escape or ×. */
export function confirmDialog(message, { ok = t('ui.confirm'), danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = el('button', { type: 'button', class: danger ? 'primary danger confirm-ok' : 'primary confirm-ok', text: ok,
      onclick: () => { answer = true; box.close(); } });
    const box = dialog(t('ui.confirm_title'),
      el('p', { class: 'confirm-message', text: message }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', text: t('ui.cancel'), onclick: () => box.close() }), yes));
    box.classList.add('confirm-dialog');
    box.addEventListener('close', () => resolve(answer));
    yes.focus();
  });
}

/** The team's time zone (team setting, default Asia/Shanghai): every time on every page is
 * shown in it, whatever the browser's own zone, so the pages, the exports and the dashboard
 * agree (issue 17, "one clock"). */
export const teamZone = (team && team.timezone) || 'Asia/Shanghai';

/** Intl options with the team's zone; a zone this browser does not know falls back to UTC
 * rather than to the browser's own (a wrong time that looks right is worse). */
const zoneKnown = (() => {
  try {
    return Boolean(new Intl.DateTimeFormat('en', { timeZone: teamZone }));
  } catch {
    return false;
  }
})();

export function zoned(opts) {
  return zoneKnown ? { ...opts, timeZone: teamZone } : { ...opts, timeZone: 'UTC', timeZoneName: 'short' };
}

/** A time of an ISO string (or Date) in the team's zone; ``withDate`` adds the date. */
export function fmtTime(iso, withDate = false) {
  if (!iso) return '';
  const d = iso instanceof Date ? iso : new Date(iso);
  const opts = withDate
    ? { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
    : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  return d.toLocaleString(boot.lang || undefined, zoned(opts));
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  if (s < 60) return t('time.seconds', { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t('time.minutes', { m, s: s % 60 });
  return t('time.hours', { h: Math.floor(m / 60), m: m % 60 });
}

/** Form fields as an object; checkboxes as booleans, number inputs as numbers. */
export function formData(form) {
  const data = {};
  for (const input of form.elements) {
    if (!input.name || input.disabled) continue;
    if (input.type === 'checkbox') data[input.name] = input.checked;
    else if (input.type === 'number' || input.type === 'range') data[input.name] = input.value === '' ? null : Number(input.value);
    else if (input.tagName === 'SELECT' && input.multiple) data[input.name] = [...input.selectedOptions].map((o) => Number(o.value));
    else data[input.name] = input.value;
  }
  return data;
}

/** Open a <dialog> built from children; resolves when it closes. */
export function dialog(title, ...children) {
  const box = el('dialog', { class: 'dialog' },
    el('header', {}, el('h2', { text: title }),
      el('button', { type: 'button', class: 'link close', 'aria-label': t('ui.close'), text: '×', onclick: () => box.close() })),
    ...children);
  document.body.append(box);
  box.addEventListener('close', () => box.remove());
  box.showModal();
  return box;
}
