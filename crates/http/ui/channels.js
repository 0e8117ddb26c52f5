// Channels: search by name, browse by group, copy a stream URL.

import { api } from './api.js';
import { clear, copyText, h } from './dom.js';

const PER_PAGE = 50;

export function render(main) {
  const q = h('input', { type: 'search', placeholder: 'Search channels', 'aria-label': 'Search channels', autocomplete: 'off' });
  const group = h('select', { 'aria-label': 'Group' }, h('option', { value: '' }, 'All groups'));
  const list = h('div', { class: 'list', id: 'channels' });
  const pager = h('div', { class: 'pager' });
  const summary = h('p', { class: 'muted' });
  main.append(h('h1', {}, 'Channels'), h('div', { class: 'toolbar' }, q, group), summary, list, pager);
  let page = 1;
  let gone = false;
  let seq = 0;

  api('GET', '/groups').then((groups) => {
    for (const g of groups) group.append(h('option', { value: g.name }, `${g.name} (${g.channels})`));
  }).catch(() => {});

  const row = (c) => {
    const url = `${location.origin}/stream/${c.id}.ts`;
    return h('div', { class: 'item channel', 'data-channel-id': c.id },
      c.logo ? h('img', { class: 'logo', src: c.logo, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' }) : h('span', { class: 'logo' }),
      h('div', { class: 'main' },
        h('div', { class: 'title' }, c.number ? h('span', { class: 'muted' }, `${c.number} `) : null, h('strong', {}, c.name),
          c.enabled ? null : h('span', { class: 'badge off' }, 'hidden')),
        h('div', { class: 'facts' }, h('span', {}, c.group || 'no group'), h('span', { class: 'muted' }, `#${c.id}`),
          c.sources.length > 1 ? h('span', {}, `${c.sources.length} sources`) : null)),
      h('div', { class: 'actions' },
        h('input', { class: 'url', type: 'text', readonly: true, value: url, 'aria-label': `Stream URL of ${c.name}`,
          onfocus: (ev) => ev.target.select() }),
        h('button', { type: 'button', 'data-action': 'copy', onclick: () => copyText(url) }, 'Copy URL')));
  };

  async function load() {
    const mine = ++seq;
    const params = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (q.value.trim()) params.set('q', q.value.trim());
    if (group.value) params.set('group', group.value);
    try {
      const res = await api('GET', `/channels?${params}`);
      if (gone || mine !== seq) return;
      clear(list);
      const pages = Math.max(1, Math.ceil(res.total / res.per_page));
      summary.textContent = `${res.total} channel${res.total === 1 ? '' : 's'}`;
      if (!res.items.length) list.append(h('p', { class: 'empty' }, 'No channels match.'));
      for (const c of res.items) list.append(row(c));
      clear(pager);
      if (pages > 1) {
        pager.append(
          h('button', { type: 'button', disabled: page <= 1, onclick: () => { page -= 1; load(); } }, '← Previous'),
          h('span', {}, `Page ${page} of ${pages}`),
          h('button', { type: 'button', disabled: page >= pages, onclick: () => { page += 1; load(); } }, 'Next →'));
      }
    } catch (e) {
      if (!gone) clear(list).append(h('p', { class: 'error' }, e.message));
    }
  }
  let debounce = null;
  q.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => { page = 1; load(); }, 250); });
  group.addEventListener('change', () => { page = 1; load(); });
  load();
  return () => { gone = true; clearTimeout(debounce); };
}
