// Conversation rules: grading thresholds (grade ≥ N messages) and the inactivity rule.
// Changing the grades regrades the ended conversations as a job; its progress is shown.
import { api, clear, el, formError, t, toast } from './lib.js';

const form = document.getElementById('rules-form');
const body = document.getElementById('grades-body');
const box = document.getElementById('regrade');
const bar = document.getElementById('regrade-bar');
const statusLine = document.getElementById('regrade-status');

function gradeRow(grade = { grade: '', min_messages: 0 }) {
  const row = el('tr', { class: 'grade-row' },
    el('td', {}, el('input', { name: 'grade', required: true, maxlength: 16, value: grade.grade, 'aria-label': t('rules.grade') })),
    el('td', {}, el('input', { name: 'min_messages', type: 'number', min: 0, max: 100000, step: 1,
      value: grade.min_messages, 'aria-label': t('rules.min_messages') })),
    el('td', {}, el('button', { type: 'button', class: 'link danger', text: t('ui.delete'), onclick: () => row.remove() })));
  return row;
}

function fill(rules) {
  clear(body).append(...(rules.grades || []).map(gradeRow));
  form.elements.inactivity_minutes.value = rules.inactivity_minutes ?? 0;
  form.elements.bot_inactivity_minutes.value = rules.bot_inactivity_minutes ?? 30;
}

function collect() {
  const grades = [...body.querySelectorAll('tr')].map((row) => ({
    grade: row.querySelector('[name=grade]').value.trim(),
    min_messages: Number(row.querySelector('[name=min_messages]').value || 0),
  }));
  grades.sort((a, b) => b.min_messages - a.min_messages);
  return { grades, inactivity_minutes: Number(form.elements.inactivity_minutes.value || 0),
    bot_inactivity_minutes: Number(form.elements.bot_inactivity_minutes.value || 0) };
}

const wait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Follow the regrade job until it ends, moving the bar. */
async function follow(jobId) {
  box.hidden = false;
  for (;;) {
    const job = await api('GET', `/jobs/${encodeURIComponent(jobId)}`);
    bar.value = job.progress || 0;
    statusLine.dataset.status = job.status;
    let text = `${Math.round((job.progress || 0) * 100)}% · ${t(`rules.job.${job.status}`)}`;
    if (job.status === 'finished' && job.result) {
      text = t('rules.regraded', { n: job.result.conversations ?? 0, changed: job.result.changed ?? 0 });
      bar.value = 1;
    }
    if (job.status === 'failed') text = `${t('rules.job.failed')}: ${job.error || ''}`;
    statusLine.textContent = text;
    if (job.status === 'finished' || job.status === 'failed') return job;
    await wait(500);
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const saved = await api('PUT', '/conversation-rules', collect());
    formError(form, null);
    fill(saved);
    toast(t('ui.saved'));
    if (saved.job_id) await follow(saved.job_id);
  } catch (error) {
    formError(form, error);
  }
});

document.getElementById('grade-add').addEventListener('click', () => {
  const row = gradeRow();
  body.append(row);
  row.querySelector('input').focus();
});

// Save and "add a grade" wait for the rules: a save before they were shown sent an empty
// form (the grades gone), and a row added before them was wiped by their arrival.
api('GET', '/conversation-rules').then((rules) => {
  fill(rules);
  document.getElementById('grade-add').disabled = false;
  form.querySelector('button[type=submit]').disabled = false;
}).catch((error) => toast(error.message, 'error'));
