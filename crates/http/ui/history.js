// History: the pool's use over time (slots in use against the limit, viewers,
// refusals) per provider, accounts' connections and expiry, the most watched
// channels, and the alerts. Charts are uPlot (vendored: /ui/uPlot.iife.min.js,
// MIT, its licence in /ui/uPlot.LICENSE), loaded by index.html as a global.

import { api } from './api.js';
import { clear, fmtDateTime, h } from './dom.js';

const RANGES = { '6h': 6 * 3600, '24h': 24 * 3600, '7d': 7 * 86400, '30d': 30 * 86400 };

/** Rows of the pool history → one uPlot data set per provider: [times, used, max, viewers, refusals]. */
export function poolSeries(rows) {
  const by = new Map();
  for (const r of rows) {
    if (!by.has(r.provider_id)) by.set(r.provider_id, []);
    by.get(r.provider_id).push(r);
  }
  const out = [];
  for (const [provider, list] of by) {
    list.sort((a, b) => a.at - b.at);
    out.push({
      provider,
      data: [list.map((r) => r.at), list.map((r) => r.slots_used), list.map((r) => r.slots_max),
        list.map((r) => r.viewers), list.map((r) => r.refusals)],
    });
  }
  return out;
}

function chart(title, data, series, width) {
  const box = h('div', { class: 'chart', 'data-chart': title });
  const Plot = globalThis.uPlot;
  if (!Plot) {
    box.append(h('p', { class: 'empty' }, 'Charts unavailable (uPlot did not load).'));
    return box;
  }
  // eslint-disable-next-line no-new
  new Plot({
    title, width, height: 220,
    scales: { x: { time: true } },
    series: [{}, ...series],
    axes: [{}, { label: 'count' }],
  }, data, box);
  return box;
}

const COLORS = ['#2b6cb0', '#a0aec0', '#38a169', '#e53e3e'];

export function render(main) {
  let gone = false;
  const range = h('select', { 'aria-label': 'Period' },
    ...Object.keys(RANGES).map((k) => h('option', { value: k }, `last ${k}`)));
  range.value = '24h';
  const charts = h('div', { class: 'charts' });
  const accounts = h('div', { class: 'accounts-history' });
  const views = h('ol', { class: 'views' });
  const alerts = h('ul', { class: 'alerts', id: 'alerts' });
  const alertState = h('select', { 'aria-label': 'Alerts shown' },
    h('option', { value: 'open' }, 'open'), h('option', { value: 'all' }, 'all'), h('option', { value: 'resolved' }, 'resolved'));
  main.append(h('h1', {}, 'History'),
    h('div', { class: 'toolbar' }, range),
    h('h2', {}, 'Alerts'), h('div', { class: 'toolbar' }, alertState), alerts,
    h('h2', {}, 'Pool use per provider'), charts,
    h('h2', {}, 'Accounts'), accounts,
    h('h2', {}, 'Most watched channels'), views);

  const loadAlerts = async () => {
    const list = await api('GET', `/alerts?state=${alertState.value}&limit=100`);
    if (gone) return;
    clear(alerts);
    if (!list.length) alerts.append(h('li', { class: 'empty' }, alertState.value === 'open' ? 'No open alerts.' : 'No alerts.'));
    for (const a of list) {
      alerts.append(h('li', { class: `alert ${a.severity}${a.resolved_at ? ' resolved' : ''}`, 'data-alert-kind': a.kind },
        h('strong', {}, a.title), ' ', h('span', {}, a.message), ' ',
        h('span', { class: 'muted' }, a.resolved_at ? `resolved ${fmtDateTime(a.resolved_at)}` : `since ${fmtDateTime(a.opened_at)}`)));
    }
  };

  const load = async () => {
    const to = Math.floor(Date.now() / 1000);
    const from = to - RANGES[range.value];
    const q = `from=${from}&to=${to}&limit=10000`;
    const [pool, providers, accountRows, channels] = await Promise.all([
      api('GET', `/history/pool?${q}`), api('GET', '/providers'),
      api('GET', `/history/accounts?${q}`), api('GET', `/history/channels?${q}`)]);
    if (gone) return;
    const names = new Map(providers.map((p) => [p.id, p.name]));
    const width = Math.max(320, Math.min(900, main.clientWidth - 40));
    clear(charts);
    const sets = poolSeries(pool);
    if (!sets.length) charts.append(h('p', { class: 'empty' }, 'No samples yet: the pool is sampled every minute.'));
    for (const s of sets) {
      charts.append(chart(names.get(s.provider) || `provider ${s.provider}`, s.data, [
        { label: 'slots in use', stroke: COLORS[0], width: 2 },
        { label: 'slots', stroke: COLORS[1], dash: [4, 4] },
        { label: 'viewers', stroke: COLORS[2] },
        { label: 'refusals', stroke: COLORS[3] }], width));
    }
    clear(accounts);
    const byAccount = new Map();
    for (const r of accountRows) {
      if (!byAccount.has(r.account_id)) byAccount.set(r.account_id, []);
      byAccount.get(r.account_id).push(r);
    }
    if (!byAccount.size) accounts.append(h('p', { class: 'empty' }, 'No account details recorded yet.'));
    for (const [id, list] of byAccount) {
      list.sort((a, b) => a.at - b.at);
      const last = list[list.length - 1];
      accounts.append(h('p', { class: 'account-line', 'data-account-id': id },
        h('strong', {}, `${names.get(last.provider_id) || 'provider'} · account #${id}`), ' ',
        `${list.length} samples; last: ${last.status || 'unknown'}, ${last.active_cons ?? '?'}/${last.max_connections ?? '?'} connections`,
        last.exp_date ? `, expires ${fmtDateTime(last.exp_date)}` : ''));
      accounts.append(chart(`account #${id}`, [list.map((r) => r.at), list.map((r) => r.active_cons), list.map((r) => r.max_connections)], [
        { label: 'connections', stroke: COLORS[0], width: 2 },
        { label: 'allowed', stroke: COLORS[1], dash: [4, 4] }], width));
    }
    clear(views);
    if (!channels.length) views.append(h('li', { class: 'empty' }, 'Nothing watched in this period.'));
    for (const c of channels.slice(0, 20)) {
      views.append(h('li', {}, `${c.name || `channel #${c.channel_id}`}: ${c.views} view${c.views === 1 ? '' : 's'}`));
    }
  };
  const reload = () => Promise.all([load(), loadAlerts()]).catch((e) => {
    if (!gone) charts.replaceChildren(h('p', { class: 'error' }, `History unavailable: ${e.message}`));
  });
  range.addEventListener('change', reload);
  alertState.addEventListener('change', () => loadAlerts().catch(() => {}));
  reload();
  const timer = setInterval(reload, 60_000);
  return () => { gone = true; clearInterval(timer); };
}
