// Live sessions: channel, account, viewers, bitrate, uptime; stop one. In a
// cluster every instance's sessions, each naming its instance and which
// instance reads the provider; any of them can be stopped here (session ids
// are per instance: the request names the session's instance, and this
// instance forwards it there).

import { api } from './api.js';
import { subscribe } from './live.js';
import { clear, fmtBitrate, fmtDuration, h, toast } from './dom.js';

function stateText(s) {
  return { starting: 'starting', running: 'running', switching: 'switching upstream', lingering: 'no viewers, closing soon',
    closed: `closed${s.reason ? `: ${s.reason}` : ''}` }[s.state] || s.state;
}

export function render(main) {
  const list = h('div', { class: 'list', id: 'sessions' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Live sessions'), list);
  let sessions = [];
  // This instance's id in a cluster (from the pool status), null otherwise.
  let me = null;
  // Sessions being stopped, by `instance/id` (ids are per instance).
  const stopping = new Set();
  const key = (s) => (s.instance ? `${s.instance}/${s.id}` : String(s.id));
  const where = (s) => {
    if (!s.instance) return null;
    const reads = s.owner === s.instance ? 'reads the provider' : s.owner ? `relays ${s.owner}` : 'settling its owner';
    return h('span', { class: 'instance', 'data-instance': s.instance, title: `session ${s.id} of instance ${s.instance}` },
      `on ${s.instance}${s.instance === me ? ' (this one)' : ''}, ${reads}`);
  };

  const row = (s) => {
    const stop = h('button', { type: 'button', class: 'danger', 'data-action': 'stop', disabled: stopping.has(key(s)) }, 'Stop');
    stop.addEventListener('click', async () => {
      stopping.add(key(s));
      stop.disabled = true;
      try {
        await api('DELETE', s.instance ? `/sessions/${s.id}?instance=${encodeURIComponent(s.instance)}` : `/sessions/${s.id}`);
        toast(`Stopped ${s.channel}`, 'ok');
      } catch (e) {
        toast(e.status === 404 ? `${s.channel} had already ended` : e.message, e.status === 404 ? 'info' : 'error');
      }
    });
    return h('div', { class: 'item session', 'data-session-id': key(s) },
      h('div', { class: 'main' }, title(s), facts(s)),
      h('div', { class: 'actions' }, stop));
  };

  const title = (s) => h('div', { class: 'title' }, h('strong', {}, s.channel), h('span', { class: 'muted' }, ` #${s.channel_id}`),
    h('span', { class: `badge ${s.state}` }, stateText(s)));
  const facts = (s) => {
    const up = s.upstream;
    return h('div', { class: 'facts' },
      where(s),
      h('span', {}, up ? `${up.provider} / ${up.account}` : s.instance && s.owner && s.owner !== s.instance ? `from ${s.owner}` : 'no upstream yet'),
      h('span', { 'data-viewers': s.viewers.length, title: s.viewers.map((v) => v.user ? `${v.user} (${v.address})` : v.address).join('\n') },
        `${s.viewers.length} viewer${s.viewers.length === 1 ? '' : 's'}`),
      h('span', {}, fmtBitrate(s.bitrate_bps)),
      h('span', { class: 'uptime', 'data-started': s.started_at }, fmtDuration(Date.now() / 1000 - s.started_at)),
      s.failovers ? h('span', {}, `${s.failovers} failover${s.failovers === 1 ? '' : 's'}`) : null);
  };

  const draw = () => {
    clear(list);
    if (!sessions.length) {
      list.append(h('p', { class: 'empty' }, 'No live sessions. A player opening ',
        h('code', {}, `${location.origin}/stream/{channel}.ts`), ' starts one.'));
    }
    for (const s of sessions) list.append(row(s));
  };

  const off = subscribe('sessions', (list) => {
    sessions = list;
    for (const k of [...stopping]) if (!list.some((s) => key(s) === k)) stopping.delete(k);
    draw();
  });
  const offPool = subscribe('pool', (pool) => {
    const mine = (pool.instances || []).find((i) => i.this);
    const id = mine ? mine.id : null;
    if (id !== me) { me = id; draw(); }
  });
  // Uptimes tick between updates.
  const timer = setInterval(() => {
    for (const el of list.querySelectorAll('.uptime')) el.textContent = fmtDuration(Date.now() / 1000 - Number(el.dataset.started));
  }, 1000);
  return () => { off(); offPool(); clearInterval(timer); };
}
