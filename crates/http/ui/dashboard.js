// Dashboard: the pool per provider, live. "Total: 5/15 active | 10 available",
// each account usable or not, primary, active/max, expiry, last error.

import { subscribe } from './live.js';
import { clear, expiry, h } from './dom.js';

export function totalsText(t) {
  return `Total: ${t.active}/${t.capacity} active | ${t.available} available`;
}

function meter(active, max) {
  const pct = max > 0 ? Math.min(100, Math.round((active / max) * 100)) : 0;
  const bar = h('span');
  bar.style.width = `${pct}%`; // CSSOM, not a style attribute: the page's CSP forbids inline styles
  return h('span', { class: `meter${active >= max && max > 0 ? ' full' : ''}`, 'aria-hidden': 'true' }, bar);
}

function accountRow(a) {
  const exp = expiry(a.exp_date, a.days_left, a.expiring_soon);
  const problem = a.unusable_reason || a.last_error;
  return h('li', { class: `account${a.usable ? '' : ' unusable'}`, 'data-account-id': a.id },
    h('span', { class: `state ${a.usable ? 'ok' : 'bad'}`, title: a.usable ? 'usable' : `not usable: ${a.unusable_reason || ''}` },
      a.usable ? '✓' : '✗'),
    h('span', { class: 'who' },
      a.primary ? h('span', { class: 'star', title: 'primary account' }, '★') : null,
      h('span', { class: 'name' }, a.name || a.username || `#${a.id}`)),
    h('span', { class: 'usage', title: `limit: ${a.max_streams_origin}` },
      meter(a.active, a.max_streams), h('span', { class: 'count' }, `${a.active}/${a.max_streams}`)),
    h('span', { class: `expiry ${exp.level}` }, exp.text),
    problem ? h('span', { class: 'problem', title: problem }, problem) : null);
}

function providerCard(p) {
  return h('section', { class: `card provider${p.enabled ? '' : ' disabled'}`, 'data-provider-id': p.provider_id },
    h('header', {},
      h('h2', {}, h('a', { href: `#/providers/${p.provider_id}` }, p.provider)),
      h('span', { class: 'badge' }, p.kind),
      p.enabled ? null : h('span', { class: 'badge off' }, 'disabled')),
    h('p', { class: 'totals', 'data-total': 'provider' }, totalsText(p.totals)),
    p.accounts.length
      ? h('ul', { class: 'accounts' }, p.accounts.map(accountRow))
      : h('p', { class: 'empty' }, 'No accounts.'));
}

export function render(main) {
  const total = h('p', { class: 'totals big', id: 'pool-total' }, 'Loading…');
  const sessions = h('p', { class: 'sessions-summary' });
  const instances = h('ul', { class: 'instances', id: 'instances' });
  const cards = h('div', { class: 'cards' });
  main.append(h('h1', {}, 'Dashboard'), total, sessions, instances, cards);
  const offPool = subscribe('pool', (pool) => {
    total.textContent = totalsText(pool.totals);
    total.classList.remove('bad');
    // A cluster: each instance with what it reads from the provider, relays, and serves.
    clear(instances);
    for (const i of pool.instances || []) {
      instances.append(h('li', { 'data-instance': i.id },
        h('strong', {}, i.id), i.this ? ' (this one)' : '',
        ` — ${i.sessions_owned} owned, ${i.sessions_relayed} relayed, ${i.viewers} viewer${i.viewers === 1 ? '' : 's'}`));
    }
    clear(cards);
    if (!pool.providers.length) {
      cards.append(h('p', { class: 'empty' }, 'No providers yet. ', h('a', { href: '#/providers' }, 'Add one'), '.'));
    }
    for (const p of pool.providers) cards.append(providerCard(p));
  });
  const offProblem = subscribe('problem', (p) => {
    total.textContent = `Pool status unavailable: ${p.error}`;
    total.classList.add('bad');
  });
  const offSessions = subscribe('sessions', (list) => {
    const viewers = list.reduce((n, s) => n + s.viewers.length, 0);
    clear(sessions).append(h('a', { href: '#/sessions' },
      `${list.length} live session${list.length === 1 ? '' : 's'}, ${viewers} viewer${viewers === 1 ? '' : 's'}`));
  });
  return () => { offPool(); offProblem(); offSessions(); };
}
