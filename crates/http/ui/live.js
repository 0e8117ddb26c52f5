// Live updates from GET /api/v1/live (Server-Sent Events), read with fetch()
// so the admin token can go in a header. Pages subscribe to `pool` and
// `sessions` (and `problem`, when the pool cannot be read); the latest value
// of each is kept so a page shows it at once.

import { authHeaders } from './api.js';

const subscribers = { pool: new Set(), sessions: new Set(), problem: new Set() };
const latest = {};
let controller = null;
let retry = 1000;
let onUnauthorized = () => {};

function setState(state) {
  const el = document.getElementById('live-state');
  if (el) {
    el.dataset.state = state;
    el.title = { on: 'Live updates: connected', retry: 'Live updates: reconnecting…', off: 'Live updates: off' }[state];
  }
}

/** Calls fn with every new value of `event` (and the latest one now); returns an unsubscribe function. */
export function subscribe(event, fn) {
  subscribers[event].add(fn);
  if (latest[event] !== undefined) fn(latest[event]);
  return () => subscribers[event].delete(fn);
}

function dispatch(event, data) {
  if (!subscribers[event]) return;
  let value;
  try { value = JSON.parse(data); } catch (_) { return; }
  latest[event] = value;
  if (event === 'pool') delete latest.problem; // the pool can be read again
  for (const fn of subscribers[event]) fn(value);
}

/** Parses complete SSE messages off the front of `buf`; returns what is left. */
function parse(buf) {
  let end;
  while ((end = buf.indexOf('\n\n')) >= 0) {
    const block = buf.slice(0, end);
    buf = buf.slice(end + 2);
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // keep-alive comment
      const i = line.indexOf(':');
      const name = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (name === 'event') event = value;
      else if (name === 'data') data.push(value);
    }
    if (data.length) dispatch(event, data.join('\n'));
  }
  return buf;
}

async function run(ctrl) {
  while (!ctrl.signal.aborted) {
    try {
      const resp = await fetch('/api/v1/live', { headers: authHeaders(), signal: ctrl.signal, cache: 'no-store' });
      if (resp.status === 401) {
        setState('off');
        onUnauthorized();
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      setState('on');
      retry = 1000;
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = parse(buf + decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n'));
      }
    } catch (_) {
      if (ctrl.signal.aborted) return;
    }
    setState('retry');
    await new Promise((r) => setTimeout(r, retry));
    retry = Math.min(retry * 2, 10000);
  }
}

export function startLive(whenUnauthorized) {
  onUnauthorized = whenUnauthorized || onUnauthorized;
  if (controller) return;
  controller = new AbortController();
  run(controller);
}

export function stopLive() {
  if (controller) controller.abort();
  controller = null;
  for (const k of Object.keys(latest)) delete latest[k];
  setState('off');
}
