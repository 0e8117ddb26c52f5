// The admin API client: every call carries the admin token as a bearer
// header; a 401 sends the user back to the login screen.

const KEY = 'tunerpool.adminToken';

export function token() {
  return localStorage.getItem(KEY) || '';
}

export function setToken(t) {
  if (t) localStorage.setItem(KEY, t);
  else localStorage.removeItem(KEY);
}

let onUnauthorized = () => {};

/** What the app does when the token stops working (back to the login screen). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/** An API error: HTTP status, message, and the fields it names. */
export class ApiError extends Error {
  constructor(status, message, fields) {
    super(message);
    this.status = status;
    this.fields = fields || [];
  }
}

export function authHeaders(extra) {
  return Object.assign({ Authorization: `Bearer ${token()}` }, extra || {});
}

/** Calls /api/v1{path}; resolves to the JSON answer (null for 204), rejects with an ApiError. */
export async function api(method, path, body, { quiet401 = false } = {}) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, 'tunerpool is not reachable (is it running?)', []);
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch (_) { json = null; }
  }
  if (resp.ok) return json;
  if (resp.status === 401 && !quiet401) onUnauthorized();
  const message = (json && json.error) || `${method} ${path}: HTTP ${resp.status}`;
  throw new ApiError(resp.status, message, json && json.fields);
}
