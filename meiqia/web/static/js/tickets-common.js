// What the two tickets pages share: the team's agents and groups, and their names.
import { api, t } from './lib.js';

/** Where the list remembers its filter, so "back to the list" keeps it. */
export const LIST_KEY = 'meiqia.tickets.list';

export async function loadPeople() {
  const [agents, groups] = await Promise.all([api('GET', '/agents'), api('GET', '/groups')]);
  return { agents, groups };
}

export function agentName(people, id) {
  const agent = people.agents.find((a) => a.id === Number(id));
  return agent ? agent.display_name || agent.name : t('tk.unknown_agent', { id });
}

export function groupName(people, id) {
  const group = people.groups.find((g) => g.id === Number(id));
  return group ? group.name : t('tk.unknown_group', { id });
}
