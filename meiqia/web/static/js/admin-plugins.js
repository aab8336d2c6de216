// The Plugins page: every plugin with its state, recent errors and call latency;
// turn a plugin off or on for this team, or reset the circuit breaker (docs/plugins.md).
import { api, clear, el, fmtTime, t, toast } from './lib.js';

const tbody = document.querySelector('#plg-table tbody');

function latency(figures) {
  const parts = [];
  for (const [hook, f] of Object.entries(figures || {})) {
    if (!f.calls && !f.skipped && !f.dropped) continue;
    parts.push(t('plg.figure', { hook, calls: f.calls, p95: f.p95_ms ?? '–', errors: f.errors,
      timeouts: f.timeouts, skipped: f.skipped, dropped: f.dropped ?? 0 }));
  }
  return parts.length ? parts.join('\n') : t('plg.no_calls');
}

function stateText(plugin) {
  const text = t(`plg.state.${plugin.state}`);
  return plugin.suspended_until ? `${text} · ${t('plg.until', { time: fmtTime(plugin.suspended_until, true) })}` : text;
}

async function act(method, path, body, done) {
  try {
    await api(method, path, body);
    toast(done);
    await load();
  } catch (error) { toast(error.message, 'error'); }
}

function render(plugins) {
  clear(tbody);
  for (const plugin of plugins) {
    const path = `/plugins/${encodeURIComponent(plugin.name)}`;
    const errors = el('ul', { class: 'plg-errors' }, ...plugin.recent_errors.slice(-3).reverse().map(
      (e) => el('li', {}, `${e.at ? fmtTime(e.at, true) : ''} `, el('code', { text: e.hook }), `: ${e.error}`)));
    const actions = el('span', { class: 'row-actions' });
    if (plugin.state !== 'failed') {
      actions.append(plugin.enabled_for_team
        ? el('button', { type: 'button', class: 'link danger', text: t('plg.disable'),
          onclick: () => act('PATCH', path, { enabled: false }, t('plg.disabled', { name: plugin.name })) })
        : el('button', { type: 'button', class: 'link', text: t('plg.enable'),
          onclick: () => act('PATCH', path, { enabled: true }, t('plg.enabled', { name: plugin.name })) }));
      if (plugin.state === 'suspended' || plugin.recent_errors.length) {
        actions.append(el('button', { type: 'button', class: 'link', text: t('plg.reset'),
          onclick: () => act('POST', `${path}/reset`, undefined, t('plg.was_reset', { name: plugin.name })) }));
      }
    }
    tbody.append(el('tr', { dataset: { name: plugin.name, state: plugin.state },
      class: plugin.state === 'active' ? '' : 'inactive' },
      el('td', {}, el('strong', {}, el('code', { class: 'plg-name', text: plugin.name }))), // identifiers: the same in every language
      el('td', { text: plugin.version || '–' }),
      el('td', { text: t(`plg.origin.${plugin.origin}`) }),
      el('td', { class: 'plg-hooks' }, el('code', { text: plugin.hooks.join(', ') })),
      el('td', { class: 'plg-state', text: stateText(plugin) }),
      el('td', { class: 'plg-latency', text: latency(plugin.figures) }),
      el('td', {}, plugin.recent_errors.length ? errors : el('span', { class: 'muted', text: t('plg.no_errors') })),
      el('td', {}, actions)));
  }
}

async function load() {
  try {
    render(await api('GET', '/plugins'));
  } catch (error) { toast(error.message, 'error'); }
}

document.getElementById('plg-refresh').addEventListener('click', load);
load();
