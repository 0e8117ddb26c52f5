// The single page: login, navigation by URL hash, one live connection.

import { api, ApiError, setToken, token, whenUnauthorized } from './api.js';
import { clear, clearErrors, showErrors } from './dom.js';
import { startLive, stopLive } from './live.js';
import * as dashboard from './dashboard.js';
import * as providers from './providers.js';
import * as accounts from './accounts.js';
import * as sessions from './sessions.js';
import * as channels from './channels.js';
import * as users from './users.js';
import * as history from './history.js';

const main = document.getElementById('main');
let cleanup = null;

/** Hash routes: #/, #/providers, #/providers/3, #/sessions, #/channels, #/users, #/history */
function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const [page, id] = parts;
  if (!page) return { name: 'dashboard', mod: dashboard };
  if (page === 'providers' && id) return { name: 'providers', mod: accounts, id: Number(id) };
  const mods = { providers, sessions, channels, users, history };
  return mods[page] ? { name: page, mod: mods[page] } : { name: 'dashboard', mod: dashboard };
}

function show() {
  if (!token()) return showLogin();
  if (cleanup) { try { cleanup(); } catch (_) { /* page already gone */ } }
  cleanup = null;
  const r = route();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === r.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  const done = r.mod.render(main, r.id);
  if (typeof done === 'function') cleanup = done;
  main.focus({ preventScroll: true });
}

function showLogin(message) {
  stopLive();
  if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
  clear(main);
  document.getElementById('top').hidden = true;
  const login = document.getElementById('login');
  login.hidden = false;
  const form = document.getElementById('login-form');
  clearErrors(form);
  if (message) showErrors(form, new ApiError(401, message, [{ field: 'token', message }]));
  document.getElementById('token').focus();
}

function loggedIn() {
  document.getElementById('login').hidden = true;
  document.getElementById('top').hidden = false;
  startLive(() => logout('The admin token was not accepted any more; log in again.'));
  show();
}

function logout(message) {
  setToken('');
  showLogin(message);
}

whenUnauthorized(() => logout('The admin token was not accepted; log in again.'));

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const value = form.token.value.trim();
  if (!value) {
    showErrors(form, new ApiError(400, 'enter the admin token', [{ field: 'token', message: 'enter the admin token' }]));
    return;
  }
  setToken(value);
  try {
    await api('GET', '/groups', undefined, { quiet401: true });
    form.token.value = '';
    loggedIn();
  } catch (e) {
    setToken('');
    const message = e.status === 401 ? 'This is not the admin token.' : e.message;
    showErrors(form, new ApiError(e.status, message, [{ field: 'token', message }]));
  }
});

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', show);

if (token()) loggedIn();
else showLogin();
