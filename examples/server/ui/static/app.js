// The Talos admin dashboard: signs in with an admin session token (from the
// URL fragment #session=… or pasted), keeps it in sessionStorage only, and
// routes between the pages on the URL fragment (#/overview, …).

import { ApiError, get, raw, session } from './api.js';
import { errorText, field, fill, h, setStatus, statusLine } from './dom.js';
import * as overview from './pages/overview.js';
import * as audit from './pages/audit.js';
import * as agents from './pages/agents.js';
import * as budgets from './pages/budgets.js';
import * as a2a from './pages/a2a.js';
import * as config from './pages/config.js';

const pages = { overview, audit, agents, budgets, a2a, config };
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signout = document.getElementById('signout');

let cleanup = null;
let me = null;

function stopPage() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a page's cleanup must not stop navigation
    }
    cleanup = null;
  }
}

function loginView(message) {
  stopPage();
  nav.hidden = true;
  signout.hidden = true;
  who.textContent = '';
  const input = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, name: 'session' });
  const st = statusLine();
  if (message) setStatus(st, 'bad', message);
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'login-title',
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          session.set(input.value);
          input.value = '';
          await start();
        } catch (err) {
          session.clear();
          setStatus(st, 'bad', errorText(err));
        }
      },
    },
    h('h1', { id: 'login-title', text: 'Sign in' }),
    h('p', {}, 'Paste an admin session token minted by ', h('code', { text: 'talos admin session' }), ', or open the link it prints (the token travels in the URL fragment, which is never sent to the server).'),
    field('Admin session token', input, 'talos_session_… — kept in this tab only (sessionStorage), sent as a bearer token'),
    h('button', { type: 'submit', text: 'Sign in' }),
    st,
  );
  fill(main, h('section', { class: 'login' }, form));
  input.focus();
}

async function start() {
  try {
    me = await get('/v1/admin/whoami');
  } catch (err) {
    session.clear();
    loginView(err instanceof ApiError && err.status === 401 ? 'The session is not valid (expired or revoked). Sign in again.' : errorText(err));
    return;
  }
  who.textContent = `${me.role} · ${me.did} · ${me.auth_mode}`;
  nav.hidden = false;
  signout.hidden = false;
  if (!/^#\/[a-z0-9]+/.test(location.hash)) history.replaceState(null, '', location.pathname + '#/overview');
  route();
}

function can(tool, action) {
  return !!(me && (me.permissions || []).some((p) => p.tool === tool && (p.actions || []).includes(action)));
}

function route() {
  if (!me) return;
  stopPage();
  const name = (/^#\/([a-z0-9]+)/.exec(location.hash) || [])[1] || 'overview';
  const page = pages[name] || pages.overview;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  fill(main);
  document.title = `${page.title} · Talos admin`;
  const ctx = { me, can, signedOut: () => loginView('The session ended. Sign in again.') };
  try {
    cleanup = page.render(main, ctx) || null;
  } catch (err) {
    fill(main, h('p', { class: 'status bad', text: errorText(err) }));
  }
}

window.addEventListener('hashchange', () => {
  if (session.fromFragment()) {
    start();
    return;
  }
  route();
  main.focus();
});

// An API answer of 401 anywhere (session expired or revoked) signs out.
window.addEventListener('talos-unauthorized', () => {
  if (!me) return;
  session.clear();
  me = null;
  loginView('The session expired or was revoked. Sign in again.');
});

signout.addEventListener('click', async () => {
  me = null; // a 401 of the revocation itself is no news
  try {
    await raw('DELETE', '/v1/admin/sessions/current');
  } catch {
    // signed out locally either way
  }
  session.clear();
  loginView('Signed out; the session is revoked.');
});

session.fromFragment();
if (session.get()) start();
else loginView();
