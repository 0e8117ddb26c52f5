// Small DOM helpers: build elements without innerHTML (every text from the
// API goes through textContent), format numbers and dates, show field errors.

/** h('div', {class: 'x', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

export function fmtDate(unix) {
  if (!unix) return '';
  return new Date(unix * 1000).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export function fmtDateTime(unix) {
  if (!unix) return '';
  return new Date(unix * 1000).toLocaleString();
}

/** "3 min ago" */
export function ago(unix) {
  if (!unix) return 'never';
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** 3725 -> "1:02:05" */
export function fmtDuration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const hh = Math.floor(secs / 3600), mm = Math.floor((secs % 3600) / 60), ss = secs % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

export function fmtBitrate(bps) {
  if (!bps) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

/** How an expiry reads, and whether it needs attention. */
export function expiry(exp, daysLeft, soon) {
  if (!exp) return { text: 'no expiry', level: '' };
  if (daysLeft !== null && daysLeft !== undefined && daysLeft < 0) return { text: `expired ${fmtDate(exp)}`, level: 'bad' };
  const d = daysLeft === null || daysLeft === undefined ? '' : ` (${daysLeft} day${daysLeft === 1 ? '' : 's'})`;
  return { text: `expires ${fmtDate(exp)}${d}`, level: soon ? 'warn' : '' };
}

/**
 * A labelled form field: label, control, help, and a slot for its error.
 * `name` is the API field name, so errors from the API land next to it.
 */
export function field(name, label, control, help) {
  if (!control.id) control.id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  if (!control.name) control.name = name;
  const isCheck = control.type === 'checkbox';
  return h('div', { class: `field${isCheck ? ' check' : ''}`, 'data-field': name },
    isCheck ? null : h('label', { for: control.id }, label),
    control,
    isCheck ? h('label', { for: control.id }, label) : null,
    help ? h('p', { class: 'help' }, help) : null,
    h('p', { class: 'error', hidden: true }));
}

export function clearErrors(form) {
  for (const e of form.querySelectorAll('.error')) { e.hidden = true; e.textContent = ''; }
  for (const f of form.querySelectorAll('.field.invalid')) f.classList.remove('invalid');
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
}

/** Puts each field error next to its field; the rest in the form's general error line. */
export function showErrors(form, err) {
  clearErrors(form);
  const general = [];
  const fields = (err && err.fields) || [];
  for (const f of fields) {
    const slot = form.querySelector(`.field[data-field="${CSS.escape(f.field)}"]`);
    if (slot) {
      slot.classList.add('invalid');
      const msg = slot.querySelector('.error');
      msg.textContent = msg.textContent ? `${msg.textContent}; ${f.message}` : f.message;
      msg.hidden = false;
      const input = slot.querySelector('input, select, textarea');
      if (input) input.setAttribute('aria-invalid', 'true');
    } else {
      general.push(`${f.field}: ${f.message}`);
    }
  }
  if (!fields.length) general.push(err && err.message ? err.message : String(err));
  const line = form.querySelector('.form-error');
  if (line) {
    line.textContent = general.join('; ');
    line.hidden = general.length === 0;
  }
  const first = form.querySelector('[aria-invalid]');
  if (first) first.focus();
}

/** Copies text; falls back to selecting it where the clipboard API is not allowed (plain http). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast('Copied to the clipboard', 'ok');
    return true;
  } catch (_) {
    const ta = h('textarea', { class: 'offscreen', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    ta.remove();
    toast(ok ? 'Copied to the clipboard' : `Copy this: ${text}`, ok ? 'ok' : 'info');
    return ok;
  }
}

/** Number input value, or null when blank (a non-number is sent as typed, so the API names the field). */
export function numOrNull(input) {
  const v = input.value.trim();
  if (v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}
