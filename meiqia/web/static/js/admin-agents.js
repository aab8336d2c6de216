// Agents: list, create, edit role / scope (incl. custom lists) / limit / status / groups.
import { api, confirmDialog, dialog, el, formData, formError, me, t, team, toast, clear } from './lib.js';

const tbody = document.querySelector('#agents-table tbody');
let agents = [];
let groups = [];

function groupNames(ids) {
  return groups.filter((g) => ids.includes(g.id)).map((g) => g.name).join('、') || '–';
}

function render() {
  clear(tbody);
  for (const agent of agents) {
    tbody.append(el('tr', { dataset: { id: agent.id }, class: agent.active ? '' : 'inactive' },
      el('td', {}, el('span', { class: 'agent-name', text: agent.name }),
        agent.nickname ? el('span', { class: 'muted', text: ` (${agent.nickname})` }) : null),
      el('td', { text: agent.email }),
      el('td', { text: t(`role.${agent.role}`) }),
      el('td', { text: t(`scope.${agent.scope}`) }),
      el('td', { text: agent.max_concurrent }),
      el('td', { text: groupNames(agent.groups || []) }),
      el('td', {}, el('span', { class: 'status-dot', dataset: { status: agent.status } }), ' ',
        agent.active ? t(`status.${agent.status}`) : t('agents.disabled')),
      el('td', { class: 'row-actions' },
        el('button', { type: 'button', class: 'link', text: t('ui.edit'), onclick: () => edit(agent) }),
        agent.active && agent.id !== me.id
          ? el('button', { type: 'button', class: 'link reset-password', text: t('reset.make'), onclick: () => resetLink(agent) })
          : null)));
  }
}

function options(list, selected, label) {
  return list.map((item) => el('option', { value: item.id, selected: selected.includes(item.id), text: label(item) }));
}

function agentForm(agent) {
  const isNew = !agent;
  agent = agent || { role: 'agent', scope: 'self', max_concurrent: 5, status: 'offline', groups: [], scope_agents: [], scope_groups: [], active: true };
  const select = (name, values, current, prefix) => el('select', { name },
    values.map((v) => el('option', { value: v, selected: v === current, text: t(`${prefix}.${v}`) })));
  const custom = el('fieldset', { class: 'custom-scope', hidden: agent.scope !== 'custom' },
    el('legend', { text: t('scope.custom_lists') }),
    el('label', {}, t('scope.agents'), el('select', { name: 'scope_agents', multiple: true, size: 4 },
      options(agents.filter((a) => a.id !== agent.id), agent.scope_agents || [], (a) => a.name))),
    el('label', {}, t('scope.groups'), el('select', { name: 'scope_groups', multiple: true, size: 4 },
      options(groups, agent.scope_groups || [], (g) => g.name))));
  const scope = select('scope', ['self', 'groups', 'all', 'custom'], agent.scope, 'scope');
  scope.addEventListener('change', () => { custom.hidden = scope.value !== 'custom'; });
  const form = el('form', { class: 'form-grid', novalidate: true },
    el('label', {}, t('agents.name'), el('input', { name: 'name', required: true, maxlength: 80, value: agent.name || '' })),
    el('label', {}, t('agents.nickname'), el('input', { name: 'nickname', maxlength: 80, value: agent.nickname || '' })),
    el('label', {}, t('login.email'), el('input', { name: 'email', type: 'email', required: true, value: agent.email || '' })),
    el('label', {}, isNew ? t('login.password') : t('agents.new_password'),
      el('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: isNew, minlength: 8 })),
    el('label', {}, t('agents.role'), select('role', ['agent', 'admin'], agent.role, 'role')),
    el('label', {}, t('agents.scope'), scope),
    custom,
    el('label', {}, t('agents.limit'), el('input', { name: 'max_concurrent', type: 'number', min: 0, max: 1000, value: agent.max_concurrent })),
    el('p', { class: 'hint', text: t('agents.limit_hint') }),
    el('label', {}, t('status.label'), select('status', ['online', 'invisible', 'offline'], agent.status, 'status')),
    el('label', {}, t('agents.groups'), el('select', { name: 'groups', multiple: true, size: Math.min(6, Math.max(2, groups.length)) },
      options(groups, agent.groups || [], (g) => g.name))),
    isNew ? null : el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'active', checked: agent.active }), t('agents.active')),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: isNew ? t('agents.create') : t('ui.save') })));
  return { form, isNew, agent };
}

function edit(existing) {
  const { form, isNew, agent } = agentForm(existing);
  const box = dialog(isNew ? t('agents.new') : t('agents.edit', { name: agent.name }), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = formData(form);
    if (!body.password) delete body.password;
    if (body.scope !== 'custom') {
      delete body.scope_agents;
      delete body.scope_groups;
    }
    if (!isNew && agent.id === me.id) delete body.active;
    try {
      const saved = isNew ? await api('POST', '/agents', body) : await api('PATCH', `/agents/${agent.id}`, body);
      box.close();
      toast(isNew ? t('agents.created', { name: saved.name }) : t('ui.saved'));
      await load();
    } catch (error) {
      formError(form, error);
    }
  });
}

// A one-time link for an agent who forgot his password: shown once, copied by the admin.
async function resetLink(agent) {
  if (!(await confirmDialog(t('reset.confirm', { name: agent.name }), { ok: t('reset.make'), danger: false }))) return;
  let link;
  try {
    link = await api('POST', `/agents/${agent.id}/password-reset`);
  } catch (error) {
    toast(error.message, 'error');
    return;
  }
  const field = el('input', { class: 'reset-url', readonly: true, value: link.url, onfocus: (e) => e.target.select() });
  const copy = el('button', { type: 'button', class: 'primary', text: t('reset.copy'), onclick: async () => {
    field.select();
    try { await navigator.clipboard.writeText(link.url); } catch { document.execCommand('copy'); }
    toast(t('reset.copied'));
  } });
  dialog(t('reset.link_title', { name: agent.name }),
    el('p', { text: t('reset.link_hint', { time: new Date(link.expires_at).toLocaleString(document.documentElement.lang, { timeZone: team.timezone }) }) }),
    el('div', { class: 'copy-row' }, field, copy),
    el('p', { class: 'hint', text: t('reset.shown_once') }));
}

// The new-agent button stays disabled until the lists are here: its form offers them (the
// agents a custom scope may see, the groups), and a form built before they arrived offered none.
async function load() {
  [agents, groups] = await Promise.all([api('GET', '/agents'), api('GET', '/groups')]);
  render();
  document.getElementById('new-agent').disabled = false;
}

document.getElementById('new-agent').addEventListener('click', () => edit(null));
load().catch((error) => toast(error.message, 'error'));
