// The accounts of one provider: add/edit with a Test button (detected max
// connections, expiry and status before saving), reorder priorities, enable
// or disable, delete; usage live from the pool.

import { api } from './api.js';
import { subscribe } from './live.js';
import { clear, clearErrors, expiry, field, h, numOrNull, showErrors, toast } from './dom.js';

function testResult(r) {
  if (!r.ok) {
    return h('div', { class: 'test-result bad', 'data-test-result': 'failed' }, `✗ ${r.reason || 'the panel did not accept these credentials'}`);
  }
  const exp = expiry(r.exp_date, r.days_left, r.days_left !== null && r.days_left < 7);
  return h('div', { class: 'test-result ok', 'data-test-result': 'ok' },
    h('strong', {}, '✓ Works. '),
    h('span', { 'data-detected': 'max_connections' },
      `Max connections: ${r.max_connections === null ? 'not reported (1 is assumed)' : r.max_connections}`),
    ' · ', h('span', { class: exp.level }, exp.text),
    ' · ', `Status: ${r.status || 'unknown'}`,
    r.active_cons !== null ? ` · In use now: ${r.active_cons}` : '',
    r.is_trial ? ' · trial' : '',
    r.suggested_max_streams !== null ? h('p', { class: 'help' }, `Suggested max streams: ${r.suggested_max_streams}`) : null);
}

/** The add/edit form; `a` is the account to edit, or null to add one. */
function accountForm(provider, a, done) {
  const creating = !a;
  const xtream = provider.kind === 'xtream';
  const name = h('input', { type: 'text', maxlength: 200, value: a ? a.name : '', autocomplete: 'off' });
  const server = h('input', { type: 'text', value: a && a.server_url ? a.server_url : '', placeholder: provider.url, autocomplete: 'off' });
  const username = h('input', { type: 'text', value: a && a.username ? a.username : '', autocomplete: 'off' });
  const password = h('input', { type: 'password', autocomplete: 'new-password', placeholder: creating ? '' : '(unchanged)' });
  const max = h('input', { type: 'number', min: 0, step: 1, value: a && a.max_streams !== null ? a.max_streams : '', placeholder: 'auto' });
  const priority = h('input', { type: 'number', min: 0, step: 1, value: a ? a.priority : provider.accounts.length });
  const enabled = h('input', { type: 'checkbox', checked: a ? a.enabled : true });
  const search = h('input', { type: 'text', value: a && a.search_pattern ? a.search_pattern : '', autocomplete: 'off' });
  const replace = h('input', { type: 'text', value: a && a.replace_pattern ? a.replace_pattern : '', autocomplete: 'off' });
  const detected = a && a.details.max_connections !== null ? ` (detected: ${a.details.max_connections})` : '';
  const result = h('div', { class: 'test-slot', 'aria-live': 'polite' });
  const formError = h('p', { class: 'form-error error', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary', 'data-action': 'save' }, creating ? 'Add account' : 'Save');
  const test = h('button', { type: 'button', 'data-action': 'test' }, 'Test');
  const form = h('form', { class: 'card form', novalidate: true, 'data-form': 'account' },
    h('h2', {}, creating ? `Add an account to ${provider.name}` : `Edit ${a.name}`),
    field('name', 'Name', name, 'Blank: the username.'),
    xtream ? field('server_url', 'Server URL', server, "Leave blank to use the provider's URL.") : null,
    h('div', { class: 'row' },
      field('username', 'Username', username),
      field('password', 'Password', password, creating ? 'Stored, never shown again.' : 'Leave blank to keep the stored password.')),
    h('div', { class: 'row' },
      field('max_streams', 'Max streams', max, `Blank = auto: the limit the panel reports${detected}.`),
      field('priority', 'Priority', priority, 'Lower is used first.')),
    xtream ? null : h('details', { open: !!(a && a.search_pattern) }, h('summary', {}, 'URL rewriting'),
      field('search_pattern', 'Search pattern (regex)', search),
      field('replace_pattern', 'Replace with', replace, 'Use $1 or ${name} for groups. Both or neither.')),
    field('enabled', 'Enabled', enabled),
    result,
    formError,
    h('div', { class: 'actions' }, save, xtream ? test : null, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));

  test.addEventListener('click', async () => {
    clearErrors(form);
    test.disabled = true;
    clear(result).append(h('p', { class: 'muted' }, 'Asking the panel…'));
    try {
      let r;
      if (!creating && !password.value) {
        r = await api('POST', `/accounts/${a.id}/test`);
        result.dataset.note = 'saved';
      } else {
        const body = { username: username.value.trim(), password: password.value };
        if (server.value.trim()) body.server_url = server.value.trim();
        else body.provider_id = provider.id;
        r = await api('POST', '/accounts/test', body);
      }
      clear(result).append(testResult(r));
      if (!creating && !password.value) result.append(h('p', { class: 'help' }, 'Tested the saved credentials.'));
    } catch (e) {
      clear(result);
      showErrors(form, e);
    } finally {
      test.disabled = false;
    }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    save.disabled = true;
    const body = { enabled: enabled.checked };
    if (name.value.trim() || !creating) body.name = name.value.trim() || username.value.trim();
    if (xtream) {
      if (server.value.trim()) body.server_url = server.value.trim();
      else if (!creating) body.server_url = null;
    } else {
      body.search_pattern = search.value.trim() || null;
      body.replace_pattern = replace.value.trim() || null;
    }
    const user = username.value.trim();
    if (creating ? user || xtream : user !== (a.username || '')) body.username = user;
    if (password.value || creating) body.password = password.value;
    if (!xtream && creating && !password.value) delete body.password;
    body.max_streams = numOrNull(max);
    if (priority.value.trim()) body.priority = numOrNull(priority);
    if (body.server_url === (a && a.server_url)) delete body.server_url; // unchanged (and shown redacted)
    try {
      const saved = creating
        ? await api('POST', `/providers/${provider.id}/accounts`, body)
        : await api('PATCH', `/accounts/${a.id}`, body);
      password.value = '';
      toast(`Saved ${saved.name}`, 'ok');
      done(true);
    } catch (e) {
      showErrors(form, e);
    } finally {
      save.disabled = false;
    }
  });
  setTimeout(() => (creating ? username : name).focus(), 0);
  return form;
}

export function render(main, providerId) {
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Accounts'));
  const formSlot = h('div');
  const list = h('div', { class: 'list', id: 'accounts' });
  main.append(h('p', {}, h('a', { href: '#/providers' }, '← Providers')), head, formSlot, list);
  let provider = null;
  let pool = null;
  let gone = false;

  const usage = (id) => (pool ? pool.accounts.find((x) => x.id === id) : null);

  const move = async (ordered, i, delta) => {
    const j = i + delta;
    if (j < 0 || j >= ordered.length) return;
    const next = ordered.slice();
    [next[i], next[j]] = [next[j], next[i]];
    try {
      for (const [k, acc] of next.entries()) {
        if (acc.priority !== k) await api('PATCH', `/accounts/${acc.id}`, { priority: k });
      }
    } catch (e) {
      toast(e.message, 'error');
    }
    load();
  };

  const row = (a, i, ordered) => {
    const u = usage(a.id);
    const exp = expiry(a.details.exp_date, u ? u.days_left : null, u ? u.expiring_soon : false);
    const toggle = h('input', { type: 'checkbox', checked: a.enabled, 'data-action': 'toggle', 'aria-label': `${a.name} enabled` });
    toggle.addEventListener('change', async () => {
      toggle.disabled = true;
      try {
        await api('PATCH', `/accounts/${a.id}`, { enabled: toggle.checked });
        toast(`${a.name} ${toggle.checked ? 'enabled' : 'disabled'}`, 'ok');
      } catch (e) {
        toast(e.message, 'error');
      }
      load();
    });
    const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete', disabled: a.is_primary,
      title: a.is_primary ? 'The primary account cannot be deleted' : null }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete the account ${a.name}?`)) return;
      try {
        await api('DELETE', `/accounts/${a.id}`);
        toast(`Deleted ${a.name}`, 'ok');
      } catch (e) {
        toast(e.message, 'error');
      }
      load();
    });
    const usable = u ? u.usable : a.enabled;
    const problem = (u && u.unusable_reason) || a.details.last_error;
    return h('div', { class: `item account${a.enabled ? '' : ' disabled'}`, 'data-account-id': a.id },
      h('div', { class: 'order' },
        h('button', { type: 'button', class: 'icon', 'data-action': 'up', 'aria-label': `Move ${a.name} up`, disabled: i === 0,
          onclick: () => move(ordered, i, -1) }, '↑'),
        h('button', { type: 'button', class: 'icon', 'data-action': 'down', 'aria-label': `Move ${a.name} down`,
          disabled: i === ordered.length - 1, onclick: () => move(ordered, i, 1) }, '↓')),
      h('div', { class: 'main' },
        h('div', { class: 'title' },
          h('span', { class: `state ${usable ? 'ok' : 'bad'}` }, usable ? '✓' : '✗'),
          a.is_primary ? h('span', { class: 'star', title: 'primary account' }, '★') : null,
          h('strong', {}, a.name), a.username && a.username !== a.name ? h('span', { class: 'muted' }, ` ${a.username}`) : null),
        h('div', { class: 'facts' },
          h('span', { class: 'usage', 'data-usage': a.id }, u ? `${u.active}/${u.max_streams} active` : ''),
          h('span', {}, a.max_streams === null ? `max: auto${a.details.max_connections !== null ? ` (${a.details.max_connections} detected)` : ''}`
            : `max: ${a.max_streams}`),
          h('span', { class: `expiry ${exp.level}` }, exp.text),
          a.details.status ? h('span', {}, a.details.status) : null,
          provider.kind === 'xtream' ? h('span', { class: 'muted' }, a.server_url || "provider's URL") : null),
        problem ? h('p', { class: 'problem' }, problem) : null),
      h('div', { class: 'actions' },
        h('label', { class: 'switch' }, toggle, h('span', {}, 'enabled')),
        h('button', { type: 'button', 'data-action': 'edit', onclick: () => openForm(a) }, 'Edit'),
        del));
  };

  const draw = () => {
    if (!provider) return;
    clear(list);
    const ordered = provider.accounts.slice().sort((x, y) => x.priority - y.priority || x.id - y.id);
    if (!ordered.length) list.append(h('p', { class: 'empty' }, 'No accounts.'));
    ordered.forEach((a, i) => list.append(row(a, i, ordered)));
  };

  const openForm = (a) => {
    clear(formSlot).append(accountForm(provider, a, (changed) => { clear(formSlot); if (changed) load(); }));
    formSlot.scrollIntoView({ block: 'nearest' });
  };

  async function load() {
    try {
      provider = await api('GET', `/providers/${providerId}`);
      if (gone) return;
      clear(head).append(h('h1', {}, `Accounts of ${provider.name}`),
        h('button', { type: 'button', class: 'primary', 'data-action': 'add-account', onclick: () => openForm(null) }, 'Add account'));
      draw();
    } catch (e) {
      if (!gone) clear(list).append(h('p', { class: 'error' }, e.message));
    }
  }
  const off = subscribe('pool', (p) => {
    pool = p.providers.find((x) => x.provider_id === providerId) || null;
    draw();
  });
  load();
  return () => { gone = true; off(); };
}
