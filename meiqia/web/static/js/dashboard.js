// The home dashboard: now (live), today's key figures, and charts over a range of team days.
// Figures come from GET /api/v1/dashboard (already narrowed to my scope by the server).
import { api, boot, clear, el, fmtDuration, formError, t, toast, zoned } from './lib.js';
import { barChart, donutChart, hbarChart, lineChart, PALETTE } from './charts.js';

const REFRESH_MS = 30_000;
const page = document.getElementById('dashboard');
const form = document.getElementById('dash-range');
const state = { from: null, to: null, today: null, loading: null };

const params = new URLSearchParams(window.location.search);
state.from = params.get('from');
state.to = params.get('to');

function addDays(iso, n) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

const pct = (x) => (x === null || x === undefined ? '–' : `${Math.round(x * 1000) / 10}%`);
const num = (x) => (x === null || x === undefined ? '–' : String(x));
const secs = (x) => fmtDuration(x);

function stat(key, label, value, hint) {
  return el('div', { class: 'stat', dataset: { stat: key } },
    el('span', { class: 'stat-label', text: label }),
    el('strong', { class: 'stat-value', text: value }),
    hint ? el('span', { class: 'stat-hint', text: hint }) : null);
}

function satisfaction(r) {
  const rated = r.ratings.good + r.ratings.neutral + r.ratings.bad;
  return { share: rated ? r.ratings.good / rated : null, rated };
}

/** The key figures of a period (today or the range) as cards. */
function figureCards(r) {
  const sat = satisfaction(r);
  const bot = r.bot_resolved_share === null ? null : Math.round(r.bot_resolved_share * r.ended);
  const s = r.suggestions;
  return [
    stat('ended', t('dash.ended'), num(r.ended)),
    stat('bot', t('dash.bot_share'), pct(r.bot_resolved_share),
      bot === null ? null : t('dash.bot_hint', { n: bot })),
    stat('missed', t('dash.missed'), num(r.missed)),
    stat('invalid', t('dash.invalid'), num(r.invalid)),
    stat('leads', t('dash.leads'), num(r.leads)),
    stat('first-response', t('dash.first_response'), secs(r.first_response_s.avg),
      r.first_response_s.p90 === null ? null : t('dash.p90', { v: secs(r.first_response_s.p90) })),
    stat('duration', t('dash.duration'), secs(r.duration_s.avg),
      r.duration_s.p90 === null ? null : t('dash.p90', { v: secs(r.duration_s.p90) })),
    stat('satisfaction', t('dash.satisfaction'), pct(sat.share), t('dash.rated', { n: sat.rated })),
    stat('suggestions', t('dash.acceptance'), pct(s.acceptance),
      t('dash.acceptance_hint', { used: s.accepted + s.edited, shown: s.shown })),
  ];
}

function renderNow(now, agents) {
  // True presence: online with a workspace open (an agent only set online gets no chats).
  const online = agents.filter((a) => (a.presence || a.status) === 'online');
  const box = clear(document.getElementById('dash-now'));
  box.append(
    stat('online', t('dash.online'), String(online.length),
      online.length ? online.map((a) => a.display_name || a.name).join('、') : t('dash.nobody_online')),
    stat('active', t('dash.active'), String(now.active)),
    stat('queued', t('dash.queued'), String(now.queued)));
  document.getElementById('dash-updated').textContent = t('dash.updated', {
    time: new Date().toLocaleTimeString(document.documentElement.lang || undefined, zoned({ hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })),
  });
}

function renderToday(today) {
  clear(document.getElementById('dash-today')).append(...figureCards(today));
}

function renderCharts(r) {
  const charts = clear(document.getElementById('dash-charts'));
  const ended = r.ended;
  const bot = r.bot_resolved_share === null ? 0 : Math.round(r.bot_resolved_share * ended);
  charts.append(
    lineChart({
      id: 'chart-by-day', title: t('dash.chart.by_day'),
      summary: t('dash.chart.total', { n: ended }),
      data: r.by_day.map((d) => ({ label: d.day, value: d.ended })),
      labelFormat: (day) => day.slice(5), columns: [t('dash.day'), t('dash.ended')],
    }),
    barChart({
      id: 'chart-by-hour', title: t('dash.chart.by_hour'),
      summary: t('dash.chart.by_hour_desc'),
      data: r.by_hour.map((h) => ({ label: h.hour, value: h.ended })),
      labelFormat: (h) => `${h}`, columns: [t('dash.hour'), t('dash.ended')], color: PALETTE[6],
    }),
    hbarChart({
      id: 'chart-ratings', title: t('dash.chart.ratings'),
      summary: t('dash.chart.total', { n: ended }),
      data: ['good', 'neutral', 'bad', 'none'].map((k, i) => ({
        label: t(`dash.rating.${k}`), value: r.ratings[k], color: ['#2da44e', '#d4a72c', '#cf222e', '#8c959f'][i],
      })),
      columns: [t('dash.rating'), t('dash.ended')],
    }),
    donutChart({
      id: 'chart-bot', title: t('dash.chart.bot'),
      summary: t('dash.bot_hint', { n: bot }),
      data: [
        { label: t('dash.bot_resolved'), value: bot, color: PALETTE[4] },
        { label: t('dash.to_humans'), value: ended - bot, color: PALETTE[0] },
      ],
      columns: [t('dash.handled_by'), t('dash.ended')],
    }),
    hbarChart({
      id: 'chart-response', title: t('dash.chart.response'),
      summary: t('dash.chart.response_desc'),
      data: [
        { label: t('dash.first_response_avg'), value: r.first_response_s.avg, color: PALETTE[0] },
        { label: t('dash.first_response_p90'), value: r.first_response_s.p90, color: '#74a9f5' },
        { label: t('dash.duration_avg'), value: r.duration_s.avg, color: PALETTE[1] },
        { label: t('dash.duration_p90'), value: r.duration_s.p90, color: '#7fd19b' },
      ],
      format: secs, columns: [t('dash.measure'), t('dash.value')],
    }),
    hbarChart({
      id: 'chart-channels', title: t('dash.chart.channels'),
      summary: t('dash.chart.channels_desc'),
      data: (r.by_channel || []).map((c, i) => ({
        label: (c.names && (c.names[boot.lang] || c.names.en)) || c.channel, value: c.ended, color: PALETTE[i % PALETTE.length],
      })),
      columns: [t('dash.channel'), t('dash.ended')],
    }),
    hbarChart({
      id: 'chart-agents', title: t('dash.chart.agents'),
      summary: t('dash.chart.agents_desc'),
      data: r.per_agent.map((a) => ({ label: a.agent, value: a.ended })),
      columns: [t('dash.agent'), t('dash.ended')], color: PALETTE[2],
    }),
  );
}

function renderAgents(rows) {
  const tbody = clear(document.querySelector('#dash-agents tbody'));
  if (!rows.length) {
    tbody.append(el('tr', {}, el('td', { colspan: 10, class: 'muted', text: t('chart.no_data') })));
    return;
  }
  for (const a of rows) {
    tbody.append(el('tr', { dataset: { agent: a.agent_id } },
      el('th', { scope: 'row', text: a.agent }), el('td', { text: a.ended }), el('td', { text: a.missed }),
      el('td', { text: a.invalid }), el('td', { text: a.leads }), el('td', { text: a.good }),
      el('td', { text: a.neutral }), el('td', { text: a.bad }),
      el('td', { text: secs(a.avg_first_response_s) }), el('td', { text: secs(a.avg_duration_s) })));
  }
}

function renderRange(r) {
  document.getElementById('dash-range-label').textContent = r.from === r.to ? r.from : `${r.from} – ${r.to}`;
  clear(document.getElementById('dash-range-stats')).append(...figureCards(r));
  renderCharts(r);
  renderAgents(r.per_agent);
}

function query(from, to) {
  const q = new URLSearchParams();
  if (from) q.set('from', from);
  if (to) q.set('to', to);
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** Everything: now, today and the chosen range. */
async function load() {
  if (state.loading) state.loading.abort();
  const controller = new AbortController();
  state.loading = controller;
  page.setAttribute('aria-busy', 'true');
  try {
    const [data, agents] = await Promise.all([
      api('GET', `/dashboard${query(state.from, state.to)}`, undefined, { signal: controller.signal }),
      api('GET', '/agents', undefined, { signal: controller.signal }),
    ]);
    formError(form, null);
    state.today = data.today.from;
    state.from = data.range.from;
    state.to = data.range.to;
    form.elements.from.value = state.from;
    form.elements.to.value = state.to;
    form.elements.from.max = state.today;
    form.elements.to.max = state.today;
    history.replaceState(null, '', query(state.from, state.to));
    renderNow(data.now, agents);
    renderToday(data.today);
    renderRange(data.range);
    page.setAttribute('aria-busy', 'false');
    page.dataset.loaded = `${state.from}/${state.to}`;
  } catch (error) {
    if (error.name === 'AbortError') return;
    page.setAttribute('aria-busy', 'false');
    if (error.field) {
      // A refused range: keep what was typed beside the error, and show now and
      // today all the same (they do not depend on the range).
      form.elements.from.value = state.from || '';
      form.elements.to.value = state.to || '';
      formError(form, error);
      await refreshNow(true);
    } else toast(error.message, 'error');
  } finally {
    if (state.loading === controller) state.loading = null;
  }
}

/** The live part only (now and today), on a timer while the page is visible. */
async function refreshNow(first = false) {
  if (!first && (document.hidden || state.loading || !state.today)) return;
  try {
    const [data, agents] = await Promise.all([
      api('GET', `/dashboard${state.today ? query(state.today, state.today) : ''}`), api('GET', '/agents')]);
    state.today = data.today.from;
    form.elements.from.max = state.today;
    form.elements.to.max = state.today;
    renderNow(data.now, agents);
    renderToday(data.today);
  } catch (error) {
    // A failed refresh keeps the last figures; the next tick tries again.
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  state.from = form.elements.from.value;
  state.to = form.elements.to.value;
  load();
});

form.querySelectorAll('[data-days]').forEach((button) => {
  button.addEventListener('click', () => {
    if (!state.today) return;
    const days = Number(button.dataset.days);
    state.to = state.today;
    state.from = addDays(state.today, 1 - days);
    load();
  });
});

document.addEventListener('meiqia:status', refreshNow);
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshNow(); });
setInterval(refreshNow, REFRESH_MS);
load();
