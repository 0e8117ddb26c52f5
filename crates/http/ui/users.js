// Users (the people who watch): add/edit, and the URLs to give them.
// Backed by /api/v1/users.

import { api } from './api.js';
import { clear, clearErrors, copyText, field, fmtDate, h, numOrNull, showErrors, toast } from './dom.js';

/** The URLs a user puts in a player. The password is only known right after it was typed. */
function clientUrls(user, password) {
  const o = location.origin;
  const u = encodeURIComponent(user.username);
  const p = password ? encodeURIComponent(password) : 'PASSWORD';
  return [
    ['M3U playlist', `${o}/get.php?username=${u}&password=${p}&type=m3u_plus&output=ts`],
    ['Xtream server (log in with the same username and password)', o],
    ['HDHomeRun tuner (Plex, Jellyfin, Emby)', `${o}/hdhr/${u}/${p}`],
  ];
}

function urlBox(user, password) {
  return h('div', { class: 'urls' },
    clientUrls(user, password).map(([label, url]) => h('div', { class: 'url-row' },
      h('span', { class: 'muted' }, label),
      h('input', { class: 'url', type: 'text', readonly: true, value: url, 'aria-label': `${label} for ${user.username}`,
        onfocus: (ev) => ev.target.select() }),
      h('button', { type: 'button', 'data-action': 'copy', onclick: () => copyText(url) }, 'Copy'))),
    password ? null : h('p', { class: 'help' }, 'Passwords are never shown again after saving: replace PASSWORD with the user’s password.'));
}

function toUnix(dateValue) {
  return dateValue ? Math.floor(new Date(`${dateValue}T23:59:59`).getTime() / 1000) : null;
}

function toDateInput(unix) {
  if (!unix) return '';
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function userForm(u, groups, done) {
  const creating = !u;
  const username = h('input', { type: 'text', value: u ? u.username : '', autocomplete: 'off' });
  const password = h('input', { type: 'password', autocomplete: 'new-password', placeholder: creating ? '' : '(unchanged)' });
  const enabled = h('input', { type: 'checkbox', checked: u ? u.enabled : true });
  const expires = h('input', { type: 'date', value: u ? toDateInput(u.expires_at) : '' });
  const maxc = h('input', { type: 'number', min: 0, step: 1, value: u ? u.max_connections : 1 });
  const priority = h('input', { type: 'number', min: 0, max: 100, step: 1, value: u ? u.priority : 0 });
  const withIds = groups.filter((g) => g.id !== undefined);
  const allowed = new Set((u && u.allowed_groups) || []);
  const all = h('input', { type: 'checkbox', checked: !u || u.allowed_groups === null });
  const boxes = withIds.map((g) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', value: g.id, checked: allowed.has(g.id) }), ` ${g.name}`));
  const groupList = h('div', { class: 'group-list', hidden: all.checked }, boxes);
  all.addEventListener('change', () => { groupList.hidden = all.checked; });
  const formError = h('p', { class: 'form-error error', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary' }, creating ? 'Add user' : 'Save');
  const form = h('form', { class: 'card form', novalidate: true, 'data-form': 'user' },
    h('h2', {}, creating ? 'Add a user' : `Edit ${u.username}`),
    h('div', { class: 'row' }, field('username', 'Username', username),
      field('password', 'Password', password, creating ? 'Stored, never shown again.' : 'Leave blank to keep it.')),
    h('div', { class: 'row' },
      field('max_connections', 'Max connections', maxc, '0 = unlimited.'),
      field('expires_at', 'Expires', expires, 'Blank: never.')),
    h('div', { class: 'row' },
      field('priority', 'Priority', priority, '0 to 100. At or above the pool\'s reserved priority: may use the reserved connections.')),
    withIds.length ? h('div', { class: 'field', 'data-field': 'allowed_groups' },
      h('label', { class: 'check' }, all, ' All groups'), groupList, h('p', { class: 'error', hidden: true })) : null,
    field('enabled', 'Enabled', enabled),
    formError,
    h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const body = { username: username.value.trim(), enabled: enabled.checked, max_connections: numOrNull(maxc) ?? 0,
      priority: numOrNull(priority) ?? 0, expires_at: toUnix(expires.value) };
    if (password.value || creating) body.password = password.value;
    if (withIds.length) {
      body.allowed_groups = all.checked ? null
        : boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => Number(i.value));
    }
    save.disabled = true;
    try {
      const saved = creating ? await api('POST', '/users', body) : await api('PATCH', `/users/${u.id}`, body);
      toast(`Saved ${saved.username}`, 'ok');
      done(true, saved, password.value);
      password.value = '';
    } catch (e) {
      showErrors(form, e);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

export function render(main) {
  const add = h('button', { type: 'button', class: 'primary', 'data-action': 'add-user' }, 'Add user');
  const formSlot = h('div');
  const list = h('div', { class: 'list', id: 'users' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Users'), add), formSlot, list);
  let groups = [];
  let gone = false;
  const fresh = new Map(); // user id -> password typed in this page view, to fill the URLs once

  const openForm = (u) => {
    clear(formSlot).append(userForm(u, groups, (changed, saved, password) => {
      clear(formSlot);
      if (saved && password) fresh.set(saved.id, password);
      if (changed) load();
    }));
  };
  add.addEventListener('click', () => openForm(null));

  const row = (u) => {
    const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete the user ${u.username}?`)) return;
      try { await api('DELETE', `/users/${u.id}`); toast(`Deleted ${u.username}`, 'ok'); } catch (e) { toast(e.message, 'error'); }
      load();
    });
    const urls = h('details', {}, h('summary', {}, 'Playlist and Xtream URLs'), urlBox(u, fresh.get(u.id)));
    if (fresh.has(u.id)) urls.open = true;
    return h('div', { class: `item user${u.enabled ? '' : ' disabled'}`, 'data-user-id': u.id },
      h('div', { class: 'main' },
        h('div', { class: 'title' }, h('strong', {}, u.username), u.enabled ? null : h('span', { class: 'badge off' }, 'disabled')),
        h('div', { class: 'facts' },
          h('span', {}, `${u.active_connections}/${u.max_connections === 0 ? '∞' : u.max_connections} connections`),
          u.priority ? h('span', {}, `priority ${u.priority}`) : null,
          h('span', {}, u.expires_at ? `expires ${fmtDate(u.expires_at)}` : 'no expiry'),
          h('span', {}, u.allowed_groups === null ? 'all groups' : `${u.allowed_groups.length} group(s)`)),
        urls),
      h('div', { class: 'actions' }, h('button', { type: 'button', 'data-action': 'edit', onclick: () => openForm(u) }, 'Edit'), del));
  };

  async function load() {
    try {
      const users = await api('GET', '/users');
      if (gone) return;
      clear(list);
      if (!users.length) list.append(h('p', { class: 'empty' }, 'No users yet. Add one for each person or device that watches.'));
      for (const u of users) list.append(row(u));
    } catch (e) {
      if (gone) return;
      clear(list).append(h('p', { class: 'error' }, e.message));
    }
  }
  api('GET', '/groups').then((g) => { groups = g; }).catch(() => {});
  load();
  return () => { gone = true; };
}
