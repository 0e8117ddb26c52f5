// Channels: the lineup. Search by name, browse by group, copy a channel's
// URL for a user; see each channel's sources (provider, stream, state, the
// provider's connections in use) and curate: rename and renumber a channel,
// merge the selected channels, split a source off, hide or show or move the
// selected ones, create a group and number a group from a given number.
// Every change goes through the admin API, which names a bad field; the
// players' outputs show it at once.
//
// Streams need a login, so the URLs handed out are a downstream user's:
// /live/USER/PASSWORD/{id}.ts, what its M3U playlist lists. The server keeps
// only an argon2 hash of each password, so the page cannot fill it in: the
// admin picks the user and types its password, which stays in this page's
// memory only (never stored, never sent anywhere); left empty, the URLs keep
// a PASSWORD placeholder to replace by hand.

import { api, ApiError } from './api.js';
import { clear, copyText, fmtDateTime, h } from './dom.js';

const PER_PAGE = 50;

export function render(main) {
  const q = h('input', { type: 'search', placeholder: 'Search channels', 'aria-label': 'Search channels', autocomplete: 'off' });
  const group = h('select', { id: 'group-filter', 'aria-label': 'Group' }, h('option', { value: '' }, 'All groups'));
  const moveTo = h('select', { id: 'move-group', 'aria-label': 'Move the selected channels to group' },
    h('option', { value: '' }, 'Move selected to…'));
  const start = h('input', { id: 'renumber-start', type: 'number', min: '1', placeholder: '101',
    'aria-label': 'First number of the group' });
  const newGroup = h('input', { id: 'new-group', type: 'text', placeholder: 'New group name', 'aria-label': 'New group name' });
  const status = h('p', { class: 'help', id: 'lineup-status', role: 'status' });
  const user = h('select', { id: 'url-user', 'aria-label': 'Stream URLs for user' });
  const password = h('input', { id: 'url-password', type: 'password', autocomplete: 'off',
    placeholder: 'Their password (fills the URLs)', 'aria-label': 'The user’s password, to fill the URLs' });
  const hint = h('p', { class: 'help', id: 'url-hint' });
  const list = h('div', { class: 'list', id: 'channels' });
  const pager = h('div', { class: 'pager' });
  const summary = h('p', { class: 'muted' });
  const picked = () => [...list.querySelectorAll('input.pick:checked')].map((el) => Number(el.dataset.channelId));
  /** Runs one change; says what happened or what was wrong (the field the API names). */
  const change = async (what, fn) => {
    try {
      const msg = await fn();
      status.className = 'help';
      status.textContent = msg || `${what}: done.`;
      loadGroups();
      load();
    } catch (e) {
      status.className = 'error';
      const field = e instanceof ApiError && e.fields.length ? ` (${e.fields.map((f) => f.field).join(', ')})` : '';
      status.textContent = `${what}: ${e.message}${field}`;
    }
  };
  const selection = h('div', { class: 'toolbar', id: 'selection' },
    h('button', { type: 'button', 'data-action': 'merge', onclick: () => change('Merge', async () => {
      const [into, ...rest] = picked();
      if (!rest.length) throw new ApiError(400, 'pick two channels or more: the others merge into the first', []);
      await api('POST', `/channels/${into}/merge`, { channels: rest });
      return `Merged ${rest.length} channel(s) into #${into}.`;
    }) }, 'Merge selected'),
    h('button', { type: 'button', 'data-action': 'hide', onclick: () => change('Hide', async () => {
      const r = await api('POST', '/channels/bulk', { ids: picked(), hidden: true });
      return `${r.changed} hidden.`;
    }) }, 'Hide'),
    h('button', { type: 'button', 'data-action': 'show', onclick: () => change('Show', async () => {
      const r = await api('POST', '/channels/bulk', { ids: picked(), hidden: false });
      return `${r.changed} shown.`;
    }) }, 'Show'),
    moveTo,
    h('button', { type: 'button', 'data-action': 'move', onclick: () => change('Move', async () => {
      const r = await api('POST', '/channels/bulk', { ids: picked(), group_id: moveTo.value ? Number(moveTo.value) : null });
      return `${r.changed} moved.`;
    }) }, 'Move'));
  const groupTools = h('div', { class: 'toolbar', id: 'group-tools' },
    h('label', { for: 'renumber-start' }, 'Number this group from'), start,
    h('button', { type: 'button', 'data-action': 'renumber', onclick: () => change('Renumber', async () => {
      if (!group.value) throw new ApiError(400, 'pick a group first', []);
      const r = await api('POST', `/groups/${group.value}/renumber`, { start: Number(start.value) });
      return `Numbered ${r.length} channel(s) from ${start.value}.`;
    }) }, 'Renumber'),
    newGroup,
    h('button', { type: 'button', 'data-action': 'probe-group', onclick: () => change('Probe', async () => {
      if (!group.value) throw new ApiError(400, 'pick a group first', []);
      const r = await api('POST', '/probes', { group_id: Number(group.value) });
      return probed(r);
    }) }, 'Probe this group'),
    h('button', { type: 'button', 'data-action': 'add-group', onclick: () => change('New group', async () => {
      const g = await api('POST', '/groups', { name: newGroup.value });
      newGroup.value = '';
      return `Group ${g.name} created.`;
    }) }, 'Add group'));
  main.append(h('h1', {}, 'Channels'), h('div', { class: 'toolbar' }, q, group),
    h('div', { class: 'toolbar' }, user, password), hint, groupTools, selection, status, summary, list, pager);
  let page = 1;
  let gone = false;
  let seq = 0;
  let usage = new Map();

  function loadGroups() {
    api('GET', '/groups').then((groups) => {
      if (gone) return;
      const keep = group.value;
      const keepMove = moveTo.value;
      clear(group).append(h('option', { value: '' }, 'All groups'));
      clear(moveTo).append(h('option', { value: '' }, 'Move selected to…'));
      for (const g of groups) {
        group.append(h('option', { value: String(g.id) }, `${g.name} (${g.channels})${g.hidden ? ' — hidden' : ''}`));
        moveTo.append(h('option', { value: String(g.id) }, g.name));
      }
      group.value = keep;
      moveTo.value = keepMove;
    }).catch(() => {});
  }
  loadGroups();

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

  /** A channel's sources: provider (with its connections in use), stream, state; split one off. */
  const sourcesOf = (c) => {
    const items = c.sources.map((s, i) => {
      const u = usage.get(s.provider_id);
      return h('li', { class: 'source', 'data-source-id': s.id },
        h('span', {}, `${i + 1}. ${s.provider}`),
        h('span', { class: 'muted' }, ` ${s.name}${s.tvg_id ? ` (${s.tvg_id})` : ''} `),
        h('span', { class: 'badge' }, u ? `${u.active}/${u.capacity} in use` : 'provider disabled'),
        c.sources.length > 1 ? h('button', { type: 'button', 'data-action': 'split',
          onclick: () => change('Split', async () => {
            const n = await api('POST', `/channels/${c.id}/split`, { source_id: s.id });
            return `Split off as #${n.id} (number ${n.number}).`;
          }) }, 'Split off') : null);
    });
    for (const s of c.lost_sources) {
      items.push(h('li', { class: 'source lost', 'data-source-id': s.id },
        h('span', {}, `${s.provider || 'removed provider'}`), h('span', { class: 'badge off' }, 'gone: waits for the stream to come back')));
    }
    const box = h('details', { class: 'sources' },
      h('summary', {}, `${c.sources.length} source${c.sources.length === 1 ? '' : 's'}${c.auto_order ? '' : ' (your order)'}`),
      h('ol', {}, ...items));
    // Opened: what each source is (the relay's latest measurement) and the
    // order a viewer starting now would get them in.
    box.addEventListener('toggle', () => {
      if (box.open) showQuality(box, c.id).catch(() => {});
    });
    return box;
  };
  /** What a probe request queued, in words. */
  const probed = (r) => `Probe: ${r.queued} of ${r.sources.length} source${r.sources.length === 1 ? '' : 's'} queued `
    + '(one per provider at a time, only with spare connections); open the sources again to see what they are.';
  const POLICY = { by_hand: 'your order', availability_first: 'provider ranking, then quality',
    quality_first: 'quality, then provider ranking' };
  const showQuality = async (box, id) => {
    const d = await api('GET', `/channels/${id}`);
    if (gone) return;
    for (const s of d.sources) {
      const li = box.querySelector(`li[data-source-id="${s.id}"]`);
      if (!li) continue;
      for (const old of li.querySelectorAll('.quality, .measured')) old.remove();
      const dead = s.badge.startsWith('dead');
      const q = s.quality;
      const how = q ? `${q.probe ? 'probed' : 'played'} ${fmtDateTime(q.measured_at)}` : 'never measured';
      li.append(h('span', { class: `badge quality${dead ? ' off' : ''}`, 'data-score': String(Math.round(s.score)),
        title: `${how}; score ${s.score.toFixed(0)} of 100` }, `${s.badge} · ${s.score.toFixed(0)}`),
      h('span', { class: 'measured muted' }, ` ${how}${dead && q?.report?.reason ? ` — ${q.report.reason}` : ''}`));
    }
    if (!box.querySelector('[data-action="probe"]')) {
      box.append(h('button', { type: 'button', 'data-action': 'probe',
        onclick: () => change('Probe', async () => probed(await api('POST', '/probes', { channel_id: id }))) },
      'Probe now'));
    }
    box.querySelector('.try-order')?.remove();
    const pos = new Map(d.sources.map((s, i) => [s.id, i + 1]));
    box.append(h('p', { class: 'try-order muted' },
      `Tried now in this order: ${d.try_order.map((sid) => pos.get(sid)).join(', ')} (${POLICY[d.order_policy] || d.order_policy}).`));
  };
  /** Rename, renumber and set the guide id (picked from a search over the providers' guides) in place. */
  const editor = (c) => {
    const name = h('input', { type: 'text', value: c.name, 'aria-label': `Name of ${c.name}`, 'data-edit': 'name' });
    const number = h('input', { type: 'number', min: '1', value: c.number || '', 'aria-label': `Number of ${c.name}`, 'data-edit': 'number' });
    const choices = h('datalist', { id: `guide-${c.id}` });
    const tvg = h('input', { type: 'text', value: c.tvg_id || '', list: `guide-${c.id}`, 'data-edit': 'tvg_id',
      placeholder: 'Guide id: type to search the guides', 'aria-label': `Guide id of ${c.name}` });
    let wait = null;
    tvg.addEventListener('input', () => {
      clearTimeout(wait);
      wait = setTimeout(async () => {
        const q = tvg.value.trim();
        if (q.length < 2) return;
        try {
          const found = await api('GET', `/guide/channels?${new URLSearchParams({ q, limit: '20' })}`);
          clear(choices);
          for (const g of found) choices.append(h('option', { value: g.id }, `${g.name} (${g.provider})`));
        } catch (_) { /* the search is a help; typing an id works without it */ }
      }, 250);
    });
    // Always on: the session keeps running (and holding a slot) with nobody watching; applied at once.
    const alwaysOn = h('input', { type: 'checkbox', checked: !!c.always_on, 'data-edit': 'always_on',
      onchange: () => change('Always on', async () => {
        await api('PATCH', `/channels/${c.id}`, { always_on: alwaysOn.checked });
        return alwaysOn.checked ? `#${c.id} is always on: it holds a connection.` : `#${c.id} is no longer always on.`;
      }) });
    return h('div', { class: 'edit' }, number, name, tvg, choices,
      h('button', { type: 'button', 'data-action': 'save', onclick: () => change('Save', async () => {
        await api('PATCH', `/channels/${c.id}`,
          { name: name.value, number: Number(number.value), tvg_id: tvg.value.trim() || null });
        return `Saved #${c.id}.`;
      }) }, 'Save'),
      h('label', { class: 'check', title: 'Keep this channel running with no viewers (it holds a connection)' },
        alwaysOn, ' Always on'));
  };

  const row = (c) => {
    const url = urlFor(c.id);
    return h('div', { class: 'item channel', 'data-channel-id': c.id },
      h('input', { type: 'checkbox', class: 'pick', 'data-channel-id': c.id, 'aria-label': `Select ${c.name}` }),
      c.logo ? h('img', { class: 'logo', src: c.logo, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer' }) : h('span', { class: 'logo' }),
      h('div', { class: 'main' },
        h('div', { class: 'title' }, c.number ? h('span', { class: 'muted' }, `${c.number} `) : null, h('strong', {}, c.name),
          c.enabled ? null : h('span', { class: 'badge off' }, 'hidden'),
          c.always_on ? h('span', { class: 'badge' }, 'always on') : null,
          c.available ? null : h('span', { class: 'badge off' }, 'unavailable')),
        h('div', { class: 'facts' }, h('span', {}, c.group || 'no group'), h('span', { class: 'muted' }, `#${c.id}`),
          c.sources.length > 1 ? h('span', {}, `${c.sources.length} sources`) : null),
        sourcesOf(c), editor(c)),
      h('div', { class: 'actions' },
        h('input', { class: 'url', type: 'text', readonly: true, value: url, 'aria-label': `Stream URL of ${c.name}`,
          onfocus: (ev) => ev.target.select() }),
        h('button', { type: 'button', 'data-action': 'copy', onclick: () => copyText(urlFor(c.id)) }, 'Copy URL')));
  };

  async function load() {
    const mine = ++seq;
    const params = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (q.value.trim()) params.set('q', q.value.trim());
    if (group.value) params.set('group_id', group.value);
    try {
      const [res, pool] = await Promise.all([api('GET', `/channels?${params}`), api('GET', '/pool').catch(() => null)]);
      usage = new Map((pool ? pool.providers : []).filter((p) => p.enabled).map((p) => [p.provider_id, p.totals]));
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
