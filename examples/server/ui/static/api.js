// The dashboard's client of the admin API: every request carries the admin
// session as "Authorization: Bearer talos_session_..." (never a cookie),
// and every failure is an ApiError with the contract error code.

const KEY = 'talos.session';
const TOKEN_RE = /^talos_session_[A-Za-z0-9_-]{16,200}$/;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get() {
    return sessionStorage.getItem(KEY) || '';
  },
  set(tok) {
    tok = String(tok || '').trim();
    if (!TOKEN_RE.test(tok)) {
      throw new ApiError(0, 'TALOS_INVALID_INPUT', 'not an admin session token (talos_session_…)');
    }
    sessionStorage.setItem(KEY, tok);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
  // takes a token from the URL fragment (#session=...) and removes it from
  // the URL and the history entry.
  fromFragment() {
    const m = /(?:^#|&)session=([^&]*)/.exec(location.hash);
    if (!m) return false;
    history.replaceState(null, '', location.pathname + location.search + '#/overview');
    try {
      this.set(decodeURIComponent(m[1]));
      return true;
    } catch {
      return false;
    }
  },
};

function headers(extra) {
  const h = new Headers(extra || {});
  const tok = session.get();
  if (tok) h.set('Authorization', 'Bearer ' + tok);
  return h;
}

async function failure(resp) {
  let code = 'HTTP_' + resp.status;
  let message = resp.statusText || 'request failed';
  try {
    const body = await resp.json();
    if (body && typeof body.code === 'string') code = body.code;
    if (body && typeof body.message === 'string') message = body.message;
  } catch {
    // not a contract error body
  }
  return new ApiError(resp.status, code, message);
}

/** sends a request; returns the Response, throwing ApiError on non-2xx. */
export async function raw(method, path, { body, signal, accept } = {}) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}), signal, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers.set('Content-Type', 'application/json');
  }
  const resp = await fetch(path, init);
  if (!resp.ok) {
    const err = await failure(resp);
    // the session expired or was revoked: the app signs out
    if (resp.status === 401 && session.get()) window.dispatchEvent(new CustomEvent('talos-unauthorized'));
    throw err;
  }
  return resp;
}

export async function json(method, path, opts) {
  const resp = await raw(method, path, opts);
  return resp.json();
}

export const get = (path, opts) => json('GET', path, opts);

/** GETs every page of a contract list (items/next_cursor), up to max items. */
export async function list(path, max = 1000) {
  const items = [];
  let cursor = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(path + sep + 'limit=500' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    items.push(...(page.items || []));
    if (!page.next_cursor || items.length >= max) return items;
    cursor = page.next_cursor;
  }
}

/**
 * reads a Server-Sent Events response (fetch, so the bearer header can be
 * sent) and calls onEvent({id, event, data}) for each event. Returns when
 * the stream ends or signal aborts.
 */
export async function sse(path, { signal, lastEventId, onEvent, onOpen }) {
  const h = headers({ Accept: 'text/event-stream' });
  if (lastEventId) h.set('Last-Event-ID', lastEventId);
  const resp = await fetch(path, { headers: h, signal, cache: 'no-store', credentials: 'omit' });
  if (!resp.ok) {
    const err = await failure(resp);
    if (resp.status === 401 && session.get()) window.dispatchEvent(new CustomEvent('talos-unauthorized'));
    throw err;
  }
  if (onOpen) onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { id: '', event: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (ev.data.length) onEvent({ id: ev.id, event: ev.event, data: ev.data.join('\n') });
        ev = { id: ev.id, event: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') ev.data.push(val);
      else if (field === 'id') ev.id = val;
      else if (field === 'event') ev.event = val;
    }
    if (buf.length > 1 << 20) throw new ApiError(0, 'TALOS_INVALID_INPUT', 'stream line too long');
  }
}
