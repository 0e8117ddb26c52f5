// Providers: add, edit, delete, sync now, last sync result.

import { api } from './api.js';
import { ago, clear, clearErrors, field, h, numOrNull, showErrors, toast } from './dom.js';

function syncLine(p) {
  const s = p.sync;
  if (!s.last_sync_at) return h('p', { class: 'sync pending', 'data-sync': 'pending' }, 'First sync running…');
  const counts = `${s.live} live · ${s.vod} movies · ${s.series} series`;
  const took = !s.duration_ms ? '' : s.duration_ms < 1000 ? ` in ${s.duration_ms} ms` : ` in ${(s.duration_ms / 1000).toFixed(1)} s`;
  if (s.ok) {
    return h('p', { class: 'sync ok', 'data-sync': 'ok' }, `✓ Synced ${ago(s.last_sync_at)}${took}: ${counts}`,
      s.skipped ? ` (${s.skipped} entries skipped)` : '');
  }
  return h('p', { class: 'sync bad', 'data-sync': 'failed' }, `✗ Sync failed ${ago(s.last_sync_at)}: ${s.error || 'unknown error'}`,
    h('br'), `Kept the previous catalog: ${counts}`);
}

/** The add/edit form. `p` is the provider to edit, or null to add one. */
function providerForm(p, done) {
  const creating = !p;
  const kind = h('select', { name: 'kind', disabled: !creating },
    ['xtream', 'm3u', 'agtv'].map((k) => h('option', { value: k, selected: p && p.kind === k }, {
      xtream: 'Xtream Codes panel', m3u: 'M3U playlist', agtv: 'AGTV (M3U with a fixed capacity)' }[k])));
  const name = h('input', { type: 'text', required: true, maxlength: 200, value: p ? p.name : '', autocomplete: 'off' });
  const url = h('input', { type: 'text', required: true, value: p ? p.url : '', placeholder: 'http://panel.example:8080', autocomplete: 'off' });
  const username = h('input', { type: 'text', autocomplete: 'off' });
  const password = h('input', { type: 'password', autocomplete: 'new-password' });
  const epg = h('input', { type: 'text', value: p && p.epg_url ? p.epg_url : '', placeholder: 'https://…/xmltv.xml', autocomplete: 'off' });
  const ua = h('input', { type: 'text', value: p && p.user_agent ? p.user_agent : '', autocomplete: 'off' });
  const max = h('input', { type: 'number', min: 0, step: 1, value: p && p.max_streams !== null ? p.max_streams : '' });
  const priority = h('input', { type: 'number', min: 0, step: 1, value: p ? p.priority : 0 });
  const enabled = h('input', { type: 'checkbox', checked: p ? p.enabled : true });
  const credentials = h('div', { class: 'row' },
    field('username', 'Username', username),
    field('password', 'Password', password, 'Stored, never shown again. This login becomes the primary account.'));
  const urlField = field('url', 'Server URL', url);
  const sync = () => {
    const xtream = kind.value === 'xtream';
    credentials.hidden = !creating || !xtream;
    urlField.querySelector('label').textContent = xtream ? 'Server URL' : 'Playlist URL (or file path)';
    url.placeholder = xtream ? 'http://panel.example:8080' : 'https://example.org/list.m3u';
  };
  kind.addEventListener('change', sync);
  const formError = h('p', { class: 'form-error error', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary' }, creating ? 'Add provider' : 'Save');
  const form = h('form', { class: 'card form', novalidate: true, 'data-form': 'provider' },
    h('h2', {}, creating ? 'Add a provider' : `Edit ${p.name}`),
    h('div', { class: 'row' }, field('name', 'Name', name), field('kind', 'Kind', kind)),
    urlField,
    credentials,
    h('details', {}, h('summary', {}, 'More options'),
      field('epg_url', 'Guide (XMLTV) URL', epg),
      field('user_agent', 'User-Agent for this provider', ua, 'Blank: the default user agent.'),
      h('div', { class: 'row' },
        field('max_streams', 'Provider max streams', max, 'A cap over all its accounts. Blank: no cap.'),
        field('priority', 'Priority', priority, 'Lower goes first.'))),
    field('enabled', 'Enabled', enabled),
    formError,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));
  sync();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      if (creating) {
        const body = { name: name.value.trim(), kind: kind.value, url: url.value.trim(), enabled: enabled.checked };
        if (kind.value === 'xtream') { body.username = username.value.trim(); body.password = password.value; }
        if (epg.value.trim()) body.epg_url = epg.value.trim();
        if (ua.value.trim()) body.user_agent = ua.value.trim();
        if (max.value.trim()) body.max_streams = numOrNull(max);
        if (priority.value.trim()) body.priority = numOrNull(priority);
        await api('POST', '/providers', body);
        password.value = '';
        toast(`Added ${body.name}; its first sync is running`, 'ok');
      } else {
        const body = { name: name.value.trim(), url: url.value.trim(), enabled: enabled.checked,
          epg_url: epg.value.trim() || null, user_agent: ua.value.trim() || null,
          max_streams: numOrNull(max), priority: numOrNull(priority) ?? 0 };
        if (body.url === p.url) delete body.url; // unchanged (and shown redacted)
        await api('PATCH', `/providers/${p.id}`, body);
        toast(`Saved ${body.name}`, 'ok');
      }
      done(true);
    } catch (e) {
      showErrors(form, e);
    } finally {
      save.disabled = false;
    }
  });
  setTimeout(() => name.focus(), 0);
  return form;
}

export function render(main) {
  const list = h('div', { class: 'cards', id: 'providers' });
  const formSlot = h('div');
  const add = h('button', { type: 'button', class: 'primary', 'data-action': 'add-provider' }, 'Add provider');
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Providers'), add), formSlot, list);
  let timer = null;
  let gone = false;

  const openForm = (p) => {
    clear(formSlot).append(providerForm(p, (changed) => { clear(formSlot); if (changed) load(); }));
    formSlot.scrollIntoView({ block: 'nearest' });
  };
  add.addEventListener('click', () => openForm(null));

  const card = (p) => {
    const syncBtn = h('button', { type: 'button', 'data-action': 'sync' }, 'Sync now');
    syncBtn.addEventListener('click', async () => {
      syncBtn.disabled = true;
      syncBtn.textContent = 'Syncing…';
      try {
        const r = await api('POST', `/providers/${p.id}/sync`);
        toast(`${p.name}: ${r.live} live, ${r.vod} movies, ${r.series} series (${r.new_channels} new, ${r.removed} removed)`, 'ok');
      } catch (e) {
        toast(`${p.name}: ${e.message}`, 'error');
      }
      load();
    });
    const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete ${p.name} with its ${p.accounts.length} account(s) and its catalog?`)) return;
      try {
        await api('DELETE', `/providers/${p.id}`);
        toast(`Deleted ${p.name}`, 'ok');
      } catch (e) {
        toast(e.message, 'error');
      }
      load();
    });
    return h('section', { class: `card provider${p.enabled ? '' : ' disabled'}`, 'data-provider-id': p.id },
      h('header', {}, h('h2', {}, p.name), h('span', { class: 'badge' }, p.kind),
        p.enabled ? null : h('span', { class: 'badge off' }, 'disabled')),
      h('p', { class: 'muted url' }, p.url),
      syncLine(p),
      h('p', { class: 'muted' }, `${p.accounts.length} account${p.accounts.length === 1 ? '' : 's'}`,
        p.max_streams !== null ? ` · capped at ${p.max_streams} streams` : ''),
      h('div', { class: 'actions' },
        h('a', { class: 'button primary', href: `#/providers/${p.id}`, 'data-action': 'accounts' }, 'Accounts'),
        syncBtn,
        h('button', { type: 'button', 'data-action': 'edit', onclick: () => openForm(p) }, 'Edit'),
        del));
  };

  async function load() {
    clearTimeout(timer);
    try {
      const providers = await api('GET', '/providers');
      if (gone) return;
      clear(list);
      if (!providers.length) list.append(h('p', { class: 'empty' }, 'No providers yet: add your IPTV provider to start.'));
      for (const p of providers) list.append(card(p));
      // A first sync runs in the background: look again until it is done.
      if (providers.some((p) => !p.sync.last_sync_at)) timer = setTimeout(load, 1500);
    } catch (e) {
      if (!gone) clear(list).append(h('p', { class: 'error' }, e.message));
    }
  }
  load();
  return () => { gone = true; clearTimeout(timer); };
}
