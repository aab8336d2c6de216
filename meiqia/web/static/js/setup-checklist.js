// The dashboard's first-run checklist (admins; GET /api/v1/setup). Every tick comes
// from the team's data on the server, so the list is re-read when the admin comes
// back to this tab (say from the settings page he opened from it).
import { api, clear, el, t, toast } from './lib.js';

const box = document.getElementById('setup');

const LINKS = {
  agent: '/admin/agents',
  kb: '/admin/knowledge',
  welcome: '/admin/settings#settings.welcome_message',
  hours: '/admin/settings#settings.working_hours.mode',
};

async function copy(text, field) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    field.select();
    document.execCommand('copy');
  }
  toast(t('setup.copied'));
}

function widgetExtra(data) {
  const code = el('textarea', { class: 'setup-snippet', readonly: true, rows: 2, text: data.snippet,
    'aria-label': t('setup.widget'), onfocus: (e) => e.target.select() });
  return el('div', { class: 'setup-widget' }, code,
    el('div', { class: 'setup-widget-actions' },
      el('button', { type: 'button', class: 'setup-copy', text: t('setup.copy'), onclick: () => copy(data.snippet, code) }),
      el('a', { href: data.demo_url, target: '_blank', rel: 'noopener', class: 'setup-test', text: t('setup.test') })));
}

function render(data) {
  clear(box);
  box.hidden = data.dismissed;
  if (data.dismissed) return;
  box.append(el('div', { class: 'setup-head' },
    el('h2', { id: 'setup-title', text: t('setup.title') }),
    el('span', { class: 'muted', id: 'setup-progress', text: t('setup.progress', { done: data.done, total: data.total }) }),
    data.all_done ? el('button', { type: 'button', id: 'setup-dismiss', text: t('setup.dismiss'), onclick: dismiss }) : null));
  box.append(el('ol', { class: 'setup-steps' }, data.steps.map((step) => el('li', {
    class: `setup-step${step.done ? ' done' : ''}`, dataset: { step: step.key, done: String(step.done) } },
  el('span', { class: 'setup-tick', 'aria-hidden': 'true', text: step.done ? '✓' : '' }),
  el('div', { class: 'setup-body' },
    el('strong', { text: t(`setup.${step.key}`) }),
    step.done ? el('span', { class: 'sr-only', text: ` (${t('setup.done')})` }) : null,
    el('p', { class: 'hint', text: t(`setup.${step.key}_hint`) }),
    step.key === 'widget' && !step.done ? widgetExtra(data) : null),
  LINKS[step.key] && !step.done ? el('a', { href: LINKS[step.key], class: 'setup-go', text: t('setup.go') }) : null))));
}

async function load() {
  try {
    render(await api('GET', '/setup'));
  } catch (error) {
    toast(error.message, 'error');
  }
}

async function dismiss() {
  try {
    render(await api('POST', '/setup/dismiss'));
  } catch (error) {
    toast(error.message, 'error');
  }
}

document.addEventListener('visibilitychange', () => { if (!document.hidden) load(); });
load();
