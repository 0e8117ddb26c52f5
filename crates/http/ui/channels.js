// Channels: search by name, browse by group, copy a channel's URL for a user.
//
// Streams need a login, so the URLs handed out are a downstream user's:
// /live/USER/PASSWORD/{id}.ts, what its M3U playlist lists. The server keeps
// only an argon2 hash of each password, so the page cannot fill it in: the
// admin picks the user and types its password, which stays in this page's
// memory only (never stored, never sent anywhere); left empty, the URLs keep
// a PASSWORD placeholder to replace by hand.

import { api } from './api.js';
import { clear, copyText, h } from './dom.js';

const PER_PAGE = 50;

export function render(main) {
  const q = h('input', { type: 'search', placeholder: 'Search channels', 'aria-label': 'Search channels', autocomplete: 'off' });
  const group = h('select', { 'aria-label': 'Group' }, h('option', { value: '' }, 'All groups'));
  const user = h('select', { id: 'url-user', 'aria-label': 'Stream URLs for user' });
  const password = h('input', { id: 'url-password', type: 'password', autocomplete: 'off',
    placeholder: 'Their password (fills the URLs)', 'aria-label': 'The user’s password, to fill the URLs' });
  const hint = h('p', { class: 'help', id: 'url-hint' });
  const list = h('div', { class: 'list', id: 'channels' });
  const pager = h('div', { class: 'pager' });
  const summary = h('p', { class: 'muted' });
  main.append(h('h1', {}, 'Channels'), h('div', { class: 'toolbar' }, q, group),
    h('div', { class: 'toolbar' }, user, password), hint, summary, list, pager);
  let page = 1;
  let gone = false;
  let seq = 0;

  api('GET', '/groups').then((groups) => {
    for (const g of groups) group.append(h('option', { value: g.name }, `${g.name} (${g.channels})`));
  }).catch(() => {});

  /** The chosen user's URL of channel `id`, with placeholders for what is not known. */
  const urlFor = (id) => {
    const u = user.value ? encodeURIComponent(user.value) : 'USER';
    const p = password.value ? encodeURIComponent(password.value) : 'PASSWORD';
    return `${location.origin}/live/${u}/${p}/${id}.ts`;
  };
  const explain = () => {
    if (!user.options.length || !user.value) {
      hint.textContent = 'Stream URLs need a user: add one on the Users page, then pick it here.';
    } else if (!password.value) {
      hint.textContent = `URLs for ${user.value}: type its password to fill them in (it is not stored), or replace PASSWORD by hand.`;
    } else {
      hint.textContent = `URLs for ${user.value}, with the password typed (not checked, not stored).`;
    }
  };
  const refreshUrls = () => {
    for (const el of list.querySelectorAll('[data-channel-id]')) {
      el.querySelector('input.url').value = urlFor(el.dataset.channelId);
    }
    explain();
  };
  user.addEventListener('change', () => { password.value = ''; refreshUrls(); });
  password.addEventListener('input', refreshUrls);
  api('GET', '/users').then((users) => {
    if (gone) return;
    if (!users.length) user.append(h('option', { value: '' }, 'No users yet'));
    for (const u of users) user.append(h('option', { value: u.username }, u.username));
    refreshUrls();
  }).catch(() => { user.append(h('option', { value: '' }, 'Users unavailable')); explain(); });

  const row = (c) => {
    const url = urlFor(c.id);
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
        h('button', { type: 'button', 'data-action': 'copy', onclick: () => copyText(urlFor(c.id)) }, 'Copy URL')));
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
