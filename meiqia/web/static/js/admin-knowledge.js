// Knowledge base: searchable, paged entries; create / edit / delete; import with upload
// and reindex progress; export; "try the bot" with the score and the runner-up matches.
import { LANG_HEADER, api, boot, clear, el, t, toast } from './lib.js';
import { clearErrors, confirmDialog, openEditor, showError } from './kb-editor.js';
import { richText } from './rich-text.js';

const PER_PAGE = 20;
const tbody = document.querySelector('#kb-table tbody');
const searchForm = document.getElementById('kb-search');
const empty = document.getElementById('kb-empty');
const pageInfo = document.getElementById('kb-page-info');
const prev = document.getElementById('kb-prev');
const next = document.getElementById('kb-next');

const params = new URLSearchParams(window.location.search);
const state = {
  q: params.get('q') || '',
  category: params.get('category') || '',
  page: Math.max(1, Number(params.get('page')) || 1),
  total: 0,
  categories: [],
};
let settings = null;
let loading = null;

// ---------------------------------------------------------------- the list

function remember() {
  const query = new URLSearchParams();
  if (state.q) query.set('q', state.q);
  if (state.category) query.set('category', state.category);
  if (state.page > 1) query.set('page', state.page);
  const search = query.toString();
  window.history.replaceState(null, '', search ? `?${search}` : window.location.pathname);
}

function fillCategories() {
  const select = searchForm.elements.category;
  const current = state.category;
  while (select.options.length > 1) select.options[1].remove();
  for (const category of state.categories.filter(Boolean)) {
    select.append(el('option', { value: category, text: category }));
  }
  select.value = state.categories.includes(current) ? current : '';
}

function questionCell(entry) {
  const similar = entry.questions.slice(1);
  const shown = similar.slice(0, 3);
  return el('td', { class: 'kb-q' },
    el('div', { class: 'kb-standard', text: entry.questions[0] || '' }),
    shown.length ? el('ul', { class: 'kb-similar' }, shown.map((q) => el('li', { text: q }))) : null,
    similar.length > shown.length ? el('div', { class: 'muted small', text: t('kb.more_similar', { n: similar.length - shown.length }) }) : null,
    el('div', { class: 'muted small kb-key', text: entry.key }));
}

function enabledCell(entry) {
  const box = el('input', { type: 'checkbox', checked: entry.enabled, 'aria-label': t('kb.enabled_for', { q: entry.questions[0] || '' }) });
  box.addEventListener('change', async () => {
    try {
      const saved = await api('PATCH', `/knowledge/${entry.id}`, { enabled: box.checked });
      entry.enabled = saved.enabled;
      box.closest('tr').classList.toggle('inactive', !saved.enabled);
      toast(saved.enabled ? t('kb.enabled_on') : t('kb.enabled_off'));
    } catch (error) {
      box.checked = entry.enabled;
      toast(error.message, 'error');
    }
  });
  return el('td', { class: 'kb-enabled' }, box);
}

function render(items) {
  clear(tbody);
  for (const entry of items) {
    tbody.append(el('tr', { dataset: { id: entry.id, key: entry.key }, class: entry.enabled ? '' : 'inactive' },
      questionCell(entry),
      el('td', { class: 'kb-answer' }, el('div', { class: 'kb-answer-text', text: entry.answer })),
      el('td', { class: 'kb-category', text: entry.category || '–' }),
      enabledCell(entry),
      el('td', { class: 'kb-actions' },
        el('button', { type: 'button', class: 'link kb-edit', text: t('ui.edit'), onclick: () => edit(entry) }),
        el('button', { type: 'button', class: 'link danger kb-delete', text: t('kb.delete'), onclick: () => remove(entry) }))));
  }
  const pages = Math.max(1, Math.ceil(state.total / PER_PAGE));
  empty.hidden = items.length > 0;
  empty.textContent = items.length ? '' : state.q || state.category ? t('kb.no_match') : t('kb.empty');
  // "1 entry", not "1 entries" (the catalog has no plural rules: a key of its own).
  pageInfo.textContent = t(state.total === 1 ? 'kb.page_info_one' : 'kb.page_info', { page: state.page, pages, total: state.total });
  prev.disabled = state.page <= 1;
  next.disabled = state.page >= pages;
}

async function load() {
  const query = new URLSearchParams({ page: state.page, per_page: PER_PAGE });
  if (state.q) query.set('q', state.q);
  if (state.category) query.set('category', state.category);
  loading?.abort();
  loading = new AbortController();
  const data = await api('GET', `/knowledge?${query}`, undefined, { signal: loading.signal });
  state.total = data.total;
  state.categories = data.categories;
  const pages = Math.max(1, Math.ceil(data.total / PER_PAGE));
  if (state.page > pages) {
    state.page = pages;
    return load();
  }
  fillCategories();
  render(data.items);
  remember();
  // Enabled once the categories are here: the editor offers them.
  document.getElementById('kb-new').disabled = false;
  document.body.dataset.kbLoaded = String(Date.now());
  return data;
}

function reload() {
  return load().catch((error) => {
    if (error.name !== 'AbortError') toast(error.message, 'error');
  });
}

let typing = null;
searchForm.elements.q.value = state.q;
searchForm.elements.q.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    state.q = searchForm.elements.q.value.trim();
    state.page = 1;
    reload();
  }, 250);
});
searchForm.elements.category.addEventListener('change', () => {
  state.category = searchForm.elements.category.value;
  state.page = 1;
  reload();
});
searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  clearTimeout(typing);
  state.q = searchForm.elements.q.value.trim();
  state.page = 1;
  reload();
});
prev.addEventListener('click', () => { state.page -= 1; reload(); });
next.addEventListener('click', () => { state.page += 1; reload(); });

// ---------------------------------------------------------------- edit

function edit(entry) {
  openEditor({
    entry,
    isNew: !entry,
    categories: state.categories,
    save: async (body) => {
      const saved = entry
        ? await api('PATCH', `/knowledge/${entry.id}`, body)
        : await api('POST', '/knowledge', body);
      toast(entry ? t('ui.saved') : t('kb.created', { q: saved.questions[0] }));
      if (!entry) {
        // Show the new entry wherever it sorts: search for its id.
        state.q = saved.key;
        state.category = '';
        state.page = 1;
        searchForm.elements.q.value = saved.key;
      }
      await reload();
      loadCalibration();
    },
  });
}

async function remove(entry) {
  const ok = await confirmDialog(t('kb.delete_title'), t('kb.delete_confirm', { q: entry.questions[0] || entry.key }), t('kb.delete'));
  if (!ok) return;
  try {
    await api('DELETE', `/knowledge/${entry.id}`);
    toast(t('kb.deleted'));
    await reload();
    loadCalibration();
  } catch (error) {
    toast(error.message, 'error');
  }
}

document.getElementById('kb-new').addEventListener('click', () => edit(null));

// ---------------------------------------------------------------- try the bot

const tryForm = document.getElementById('kb-try-form');
const tryResult = document.getElementById('kb-try-result');
const thresholdsNote = document.getElementById('kb-thresholds');

function showThresholds() {
  clear(thresholdsNote);
  if (!settings) return;
  thresholdsNote.append(
    t('kb.thresholds', {
      answer: settings.answer_threshold.toFixed(2),
      suggest: settings.suggest_threshold.toFixed(2),
    }), ' ',
    el('a', { href: '/admin/settings', text: t('kb.thresholds_link') }));
  if (!settings.bot_enabled) thresholdsNote.append(el('span', { class: 'kb-bot-off', text: ` ${t('kb.bot_off')}` }));
}

function scoreBar(score) {
  const level = !settings ? '' : score >= settings.answer_threshold ? 'answer' : score >= settings.suggest_threshold ? 'suggest' : 'low';
  return el('span', { class: 'kb-score', dataset: { level } },
    el('meter', { min: 0, max: 1, value: score, low: settings?.suggest_threshold, high: settings?.answer_threshold, optimum: 1 }),
    el('span', { class: 'kb-score-num', text: score.toFixed(3) }));
}

function findEntry(key) {
  state.q = key;
  state.category = '';
  state.page = 1;
  searchForm.elements.q.value = key;
  reload();
}

function showAnswer(result) {
  clear(tryResult);
  const decision = result.wants_human ? 'human' : result.decision;
  const top = result.candidates[0];
  tryResult.append(el('p', { class: 'kb-decision', dataset: { decision } }, t(`kb.decision.${decision}`)));
  if (result.truncated) tryResult.append(el('p', { class: 'hint', text: t('kb.truncated') }));
  if (decision === 'small_talk') {
    // A greeting or thanks: the bot's own line, nothing looked up.
    tryResult.append(el('div', { class: 'kb-bot-answer' }, el('div', { class: 'kb-bot-answer-text', text: result.reply })));
    return;
  }
  if (top && decision === 'answer') {
    tryResult.append(el('div', { class: 'kb-bot-answer' },
      scoreBar(top.score),
      // As the visitor will see it: links and images built as nodes, the rest text.
      el('div', { class: 'kb-bot-answer-text' }, richText(top.answer)),
      el('div', { class: 'muted small' }, t('kb.matched'), ' ',
        el('button', { type: 'button', class: 'link', text: top.question || top.entry_id, onclick: () => findEntry(top.entry_id) }))));
  }
  if (!result.candidates.length) {
    tryResult.append(el('p', { class: 'muted', text: t('kb.no_candidates') }));
    return;
  }
  const rest = decision === 'answer' ? result.candidates.slice(1) : result.candidates;
  if (!rest.length) return;
  tryResult.append(
    el('p', { class: 'hint', text: decision === 'answer' ? t('kb.runner_up') : t('kb.candidates') }),
    el('ol', { class: 'kb-candidates' }, rest.map((cand) => el('li', { dataset: { entry: cand.entry_id } },
      scoreBar(cand.score),
      el('button', { type: 'button', class: 'link kb-cand-q', text: cand.question || cand.entry_id, title: cand.answer, onclick: () => findEntry(cand.entry_id) }),
      cand.source !== 'knowledge_base' ? el('span', { class: 'badge soft', text: cand.source }) : null))));
}

tryForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const question = tryForm.elements.question.value.trim();
  if (!question) return;
  const button = tryForm.querySelector('button');
  button.disabled = true;
  try {
    showAnswer(await api('POST', '/bot/ask', { question }));
  } catch (error) {
    clear(tryResult).append(el('p', { class: 'error', text: error.message }));
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------- import, reindex

const importForm = document.getElementById('kb-import-form');
const progressBox = document.getElementById('kb-import-progress');
const uploadBar = document.getElementById('kb-upload-bar');
const uploadText = document.getElementById('kb-upload-text');
const reportText = document.getElementById('kb-import-report');
const reindexBar = document.getElementById('kb-reindex-bar');
const reindexText = document.getElementById('kb-reindex-text');

function percent(fraction) {
  return `${Math.round(fraction * 100)}%`;
}

/** POST the file with XMLHttpRequest, which reports upload progress (fetch does not). */
function upload(form) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/knowledge/import');
    xhr.setRequestHeader('X-CSRF-Token', boot.csrf);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader(LANG_HEADER, boot.lang || 'en');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      uploadBar.value = event.loaded / event.total;
      uploadText.textContent = percent(uploadBar.value);
    });
    xhr.addEventListener('load', () => {
      const data = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(Object.assign(new Error(data.error?.message || xhr.statusText), { field: data.error?.field }));
    });
    xhr.addEventListener('error', () => reject(new Error(t('kb.upload_failed'))));
    const body = new FormData();
    body.append('file', form.elements.file.files[0]);
    body.append('replace', form.elements.replace.checked ? 'true' : 'false');
    xhr.send(body);
  });
}

function wait(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

/** Follow a job until it ends, moving the bar; resolves with the finished job. */
async function follow(jobId) {
  for (;;) {
    const job = await api('GET', `/jobs/${encodeURIComponent(jobId)}`);
    reindexBar.value = job.progress;
    reindexText.textContent = `${percent(job.progress)} · ${t(`kb.job.${job.status}`)}`;
    if (job.status === 'finished') return job;
    if (job.status === 'failed') throw new Error(job.error || t('kb.job.failed'));
    await wait(400);
  }
}

importForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(importForm);
  if (!importForm.elements.file.files.length) {
    showError(importForm, 'file', t('kb.err.file_required'));
    return;
  }
  const button = importForm.querySelector('button[type=submit]');
  button.disabled = true;
  progressBox.hidden = false;
  progressBox.dataset.state = 'uploading';
  uploadBar.value = 0;
  reindexBar.value = 0;
  uploadText.textContent = '0%';
  reindexText.textContent = '';
  reportText.textContent = '';
  let held = false;
  try {
    const report = await upload(importForm);
    uploadBar.value = 1;
    uploadText.textContent = percent(1);
    reportText.textContent = t('kb.import_report', report);
    progressBox.dataset.state = 'reindexing';
    // The import rebuilds (and recalibrates) the index: the card follows it.
    held = holdCalibration();
    const { job_id: jobId } = await api('POST', '/knowledge/reindex');
    const job = await follow(jobId);
    progressBox.dataset.state = 'done';
    const done = job.result || { entries: '?', variants: '?' };
    reindexText.textContent = `${percent(1)} · ${t(done.entries === 1 ? 'kb.reindex_done_one' : 'kb.reindex_done', done)}`;
    importForm.reset();
    toast(t('kb.import_done'));
    state.page = 1;
    await reload();
  } catch (error) {
    progressBox.dataset.state = 'failed';
    showError(importForm, 'file', error.message);
  } finally {
    button.disabled = false;
    if (held) releaseCalibration();
  }
});

// ---------------------------------------------------------------- export

const exportFormat = document.getElementById('kb-export-format');
const exportLink = document.getElementById('kb-export-link');
exportFormat.addEventListener('change', () => {
  exportLink.href = `/api/v1/knowledge/export?format=${encodeURIComponent(exportFormat.value)}`;
});

// ---------------------------------------------------------------- start

// ---------------------------------------------------------------- calibration, words

const figures = document.getElementById('kb-calibration-figures');
const competing = document.getElementById('kb-competing');
const wordsForm = document.getElementById('kb-words-form');

function ratio(value) {
  return value === null || value === undefined ? '–' : value.toFixed(3);
}

/** ``waiting``: a change made on this page (an import, the words) is still on its way
 * to the server's index, so the report may not say ``running`` yet. */
function showCalibration(report, waiting = false) {
  clear(figures);
  clear(competing);
  const running = report.running || waiting;
  figures.dataset.running = String(running);
  if (running) {
    // Rebuilding: how far is unknown (the bar moves without a value); then the self-test.
    const rebuilding = !report.running || report.progress_message === 'rebuilding the index';
    figures.append(el('label', { class: 'hint' }, t(rebuilding ? 'kb.rebuilding' : 'kb.calibrating'), ' ',
      el('progress', { max: 1, value: rebuilding ? undefined : report.progress })));
  }
  if (report.calibrated) {
    figures.append(el('p', { class: 'kb-calibrated', text: t('kb.calibrated', {
      target: report.target, answer: report.answer_score.toFixed(3),
      margin: report.answer_margin.toFixed(3), suggest: report.suggest_score.toFixed(3) }) }),
    el('p', { class: 'hint', text: t('kb.calibration_figures', {
      precision: ratio(report.precision), coverage: ratio(report.coverage),
      suggest: ratio(report.suggest_precision), oos: ratio(report.oos_recall),
      in_scope: report.in_scope, out_of_scope: report.out_of_scope }) }));
    if (!report.target_reached) figures.append(el('p', { class: 'error', text: t('kb.target_not_reached') }));
  } else if (!report.running) {
    figures.append(el('p', { class: 'hint', text: t('kb.not_calibrated', { in_scope: report.in_scope, out_of_scope: report.out_of_scope }) }));
  }
  // While running, the pairs are the old index's (maybe of entries just deleted).
  if (running || !report.competing.length) return;
  competing.append(el('h3', { text: t('kb.competing') }),
    el('ul', { class: 'kb-competing' }, report.competing.slice(0, 10).map((pair) => el('li', { dataset: { entries: pair.entries.join(' ') } },
      el('button', { type: 'button', class: 'link', text: pair.standard_questions[0] || pair.entries[0], onclick: () => findEntry(pair.entries[0]) }),
      ' ⇄ ',
      el('button', { type: 'button', class: 'link', text: pair.standard_questions[1] || pair.entries[1], onclick: () => findEntry(pair.entries[1]) }),
      el('div', { class: 'muted small', text: `${t('kb.competing_questions')} ${pair.questions.join(' / ')}` })))));
}

let calibrationTimer = null;
let calibrationAsked = 0; // numbers the requests: an older answer never replaces a newer one
let calibrationHolds = 0; // changes made on this page still on their way to the index

/** Show the calibration, and again every 2 s while it runs or a change is on its way. */
async function loadCalibration() {
  clearTimeout(calibrationTimer);
  calibrationTimer = null;
  const asked = ++calibrationAsked;
  try {
    const report = await api('GET', '/knowledge/calibration');
    if (asked !== calibrationAsked) return;
    const waiting = calibrationHolds > 0;
    showCalibration(report, waiting);
    if (report.running || waiting) calibrationTimer = setTimeout(loadCalibration, waiting ? 1000 : 2000);
  } catch (error) {
    if (asked !== calibrationAsked) return;
    clear(figures).append(el('p', { class: 'error', text: error.message }));
  }
}

/** A change that rebuilds the index has started: the card shows progress until it is
 * released, then follows the server's report until the new figures are in. */
function holdCalibration() {
  calibrationHolds += 1;
  loadCalibration();
  return true;
}

function releaseCalibration() {
  calibrationHolds = Math.max(0, calibrationHolds - 1);
  loadCalibration();
}

function fillWords(current) {
  wordsForm.elements.bot_target_precision.value = current.bot_target_precision;
  wordsForm.elements.bot_synonyms.value = (current.bot_synonyms || []).map((group) => group.join(' = ')).join('\n');
  wordsForm.elements.bot_user_words.value = (current.bot_user_words || []).join(' ');
}

wordsForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(wordsForm);
  const synonyms = wordsForm.elements.bot_synonyms.value.split('\n')
    .map((line) => line.split(/[=,，、]/).map((word) => word.trim()).filter(Boolean))
    .filter((group) => group.length);
  const body = { settings: {
    bot_target_precision: Number(wordsForm.elements.bot_target_precision.value),
    bot_synonyms: synonyms,
    bot_user_words: wordsForm.elements.bot_user_words.value.split(/[\s,，、]+/).filter(Boolean),
  } };
  // Saving the words or the target rebuilds and recalibrates the index.
  holdCalibration();
  try {
    const team = await api('PATCH', '/team', body);
    settings = team.settings;
    fillWords(settings);
    toast(t('ui.saved'));
  } catch (error) {
    if (error.field) showError(wordsForm, error.field, error.message);
    else toast(error.message, 'error');
  } finally {
    releaseCalibration();
  }
});

// Save waits for the team's words: a save before they were shown sent the empty form.
api('GET', '/team').then((team) => {
  settings = team.settings;
  showThresholds();
  fillWords(settings);
  wordsForm.querySelector('button[type=submit]').disabled = false;
}).catch(() => {});
loadCalibration();
reload();
