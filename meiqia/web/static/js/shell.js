// The page shell: my status switch (online / invisible / offline).
import { api, me, t, toast } from './lib.js';

const select = document.getElementById('my-status');
if (select && me) {
  select.addEventListener('change', async () => {
    const previous = select.dataset.current || me.status;
    try {
      const agent = await api('PATCH', `/agents/${me.id}`, { status: select.value });
      select.dataset.current = agent.status;
      select.parentElement.querySelector('.status-dot').dataset.status = agent.status;
      me.status = agent.status;
      document.dispatchEvent(new CustomEvent('meiqia:status', { detail: agent.status }));
      toast(t('status.changed', { status: t(`status.${agent.status}`) }));
    } catch (error) {
      select.value = previous;
      toast(error.message, 'error');
    }
  });
}
