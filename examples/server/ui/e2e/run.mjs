// End-to-end test of the admin dashboard in headless Debian Chromium,
// driven by playwright-core. It is run by TestDashboardBrowser
// (examples/server/ui_test.go), which starts a real server, seeds it and
// talks to this script over stdin/stdout:
//
//   stdout "TRIGGER <what>"   the Go test makes it happen (a decision),
//                             then writes one line to stdin
//   stdout "RESULT <k> <v>"   a value the Go test checks afterwards
//   exit status 0             every check passed
//
// Environment: TALOS_UI_URL (http://127.0.0.1:PORT/ui/), TALOS_UI_SESSION
// (an admin session token), TALOS_UI_ARTIFACTS (screenshots, bundle),
// TALOS_UI_AGENT (an agent DID that decisions name), TALOS_UI_TEAM (a team
// with a budget), CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('TALOS_UI_URL');
const token = env('TALOS_UI_SESSION');
const artifacts = env('TALOS_UI_ARTIFACTS');
const agentDID = env('TALOS_UI_AGENT');
const team = env('TALOS_UI_TEAM');
const chainToken = env('TALOS_UI_CHAIN');
const chainLeaf = env('TALOS_UI_CHAIN_LEAF');
const pasteSession = env('TALOS_UI_SESSION2');
const a2aSession = env('TALOS_UI_A2A_SESSION');
const secret = env('TALOS_UI_SECRET'); // a frame's plaintext: never on any page
const otherLogKey = env('TALOS_UI_OTHER_LOG_KEY'); // another key under this log's name

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function trigger(what) {
  process.stdout.write(`TRIGGER ${what}\n`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'ok') throw new Error(`trigger ${what}: the test answered ${JSON.stringify(value)}`);
}
const result = (k, v) => process.stdout.write(`RESULT ${k} ${v}\n`);
// the session tokens never reach the test's log, even inside an error
const redact = (t) => String(t).split(token).join('[session]').split(process.env.TALOS_UI_SESSION2 || token).join('[session]');
const log = (...a) => process.stderr.write(redact(a.join(' ')) + '\n');

class Check extends Error {}
function check(cond, msg) {
  if (!cond) throw new Check(msg);
}

const profile = mkdtempSync(join(tmpdir(), 'talos-ui-chromium-'));
// a fresh profile (user data dir) for every run
const ctx = await chromium.launchPersistentContext(profile, {
  viewport: { width: 1280, height: 800 },
  acceptDownloads: true,
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-sync',
    '--disable-quic',
  ],
});

const consoleErrors = [];
let failed = false;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(60000); // generous: CI runs every package's tests at once on 2 cores
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location()?.url || page.url()})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: uncaught ${e.message}`));
  page.on('requestfailed', (r) => {
    // a request the page aborts itself (the stream, when it leaves the
    // overview) is not a failure
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });

  // ---- keyboard helpers: every action below is reached with Tab and
  // done with Enter (or Space, or typing), as a keyboard user would.
  async function tabTo(selector, max = 600) {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((sel) => !!document.activeElement && document.activeElement.matches(sel), selector)) return;
    }
    throw new Check(`no keyboard path (Tab) reaches ${selector}`);
  }
  async function tabType(selector, text) {
    await tabTo(selector);
    await page.keyboard.press('Control+A');
    await page.keyboard.type(text);
  }
  async function tabEnter(selector) {
    await tabTo(selector);
    await page.keyboard.press('Enter');
  }
  // starts a Tab walk from the top of the page.
  // starts a Tab walk at the top of the page (the skip link, the first
  // stop of a keyboard user on a fresh page).
  async function fromTop() {
    await page.evaluate(() => document.querySelector('a.skip').focus());
  }
  async function goPage(name) {
    await fromTop();
    await tabEnter(`nav a[data-page="${name}"]`);
    await page.waitForFunction((n) => document.querySelector(`nav a[aria-current="page"]`)?.dataset.page === n, name);
    await page.waitForLoadState('networkidle').catch(() => {});
  }

  // Every control has an accessible name, every focusable control can take
  // keyboard focus (no positive tabindex games, nothing focusable hidden
  // from the tab order), and the page does not scroll sideways.
  async function audit11y(name) {
    const problems = await page.evaluate(() => {
      const out = [];
      const named = (el) => {
        if (el.getAttribute('aria-label')?.trim()) return true;
        const lb = el.getAttribute('aria-labelledby');
        if (lb && lb.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
        if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
        if ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim()) return true;
        if (el.getAttribute('title')?.trim()) return true;
        return false;
      };
      for (const el of document.querySelectorAll('input, select, textarea, button, a[href], [role="button"], [tabindex]')) {
        if (el.closest('[hidden]') || el.type === 'hidden') continue;
        const cs = getComputedStyle(el);
        if (cs.display === 'none' || cs.visibility === 'hidden') continue;
        if (el.matches('input, select, textarea, button, a[href]') && !named(el)) out.push(`unlabelled ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 120)}`);
        const ti = el.getAttribute('tabindex');
        if (ti !== null && Number(ti) > 0) out.push(`positive tabindex on ${el.outerHTML.slice(0, 80)}`);
        if (el.matches('input, select, textarea, button, a[href]') && ti === '-1') out.push(`control out of the tab order: ${el.outerHTML.slice(0, 80)}`);
      }
      for (const svg of document.querySelectorAll('svg')) {
        if (!svg.getAttribute('aria-label') && !svg.getAttribute('aria-hidden')) out.push('chart without a text alternative');
      }
      if (!document.querySelector('h1')) out.push('no h1');
      if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push(`scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
      return out;
    });
    check(problems.length === 0, `${name} at ${page.viewportSize().width}px: ${problems.join('; ')}`);
  }

  async function shoot(name) {
    await audit11y(name);
    check(!(await page.content()).includes(secret), `${name}: an A2A frame's plaintext is on the page`);
    await page.screenshot({ path: join(artifacts, `${name}-${page.viewportSize().width}x${page.viewportSize().height}.png`), fullPage: true });
  }

  // ---- the headers of the dashboard itself
  const first = await page.goto(base);
  const h = first.headers();
  check(/default-src 'none'/.test(h['content-security-policy'] || ''), 'no strict CSP on /ui/');
  check(h['x-content-type-options'] === 'nosniff', 'no nosniff');
  check(h['referrer-policy'] === 'no-referrer', 'no Referrer-Policy');

  // ---- a pasted token that is not a session is refused (keyboard only)
  await page.waitForSelector('form[aria-labelledby="login-title"]');
  await shoot('login');
  await fromTop();
  await tabType('input[name="session"]', 'talos_session_' + 'A'.repeat(43));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /not valid|AUTH/.test(document.querySelector('.login .status')?.textContent || ''));
  // the refused 401 is expected: it is the only console error allowed
  const refused = consoleErrors.splice(0).filter((e) => !/status of 401/.test(e));
  check(refused.length === 0, 'console errors at the refused sign-in: ' + refused.join('; '));

  // ---- sign in with the session in the URL fragment; it leaves the URL
  await page.goto(base + '#session=' + encodeURIComponent(token));
  await page.waitForSelector('nav:not([hidden])');
  check(!page.url().includes('session='), 'the session token stayed in the URL: ' + page.url());
  check((await page.evaluate(() => sessionStorage.getItem('talos.session'))) === token, 'the session is not in sessionStorage');
  check((await ctx.cookies()).length === 0, 'the dashboard set a cookie');
  check(!(await page.evaluate(() => history.length > 0 && location.href.includes('talos_session_'))), 'token in history entry');

  // ---- Overview: stats and a decision appearing live
  await page.waitForSelector('#ov-stats');
  await page.waitForFunction(() => document.querySelector('#ov-live')?.parentElement.querySelector('.status')?.textContent === 'Live');
  const before = await page.locator('#live-decisions li.decision').count();
  await trigger('decision');
  await page.waitForFunction(
    ([did, n]) => {
      const items = [...document.querySelectorAll('#live-decisions li.decision')];
      return items.length > n && items.some((li) => li.textContent.includes(did));
    },
    [agentDID, before],
  );
  result('live_decision', 'seen');
  await page.waitForFunction(() => document.querySelector('.kpis dd') && document.querySelector('#ov-min')?.parentElement.querySelector('.chart'));
  result('stats', 'shown');
  await page.waitForFunction(() => /Ready/.test(document.querySelector('#ov-health')?.parentElement.textContent || ''));
  await shoot('overview');

  // ---- Agents: issue a capability (token shown once), then revoke it
  await goPage('agents');
  await page.waitForSelector('#issue-form');
  await page.waitForFunction(() => document.querySelector('#ag-caps')?.parentElement.querySelector('.status.info'));
  await fromTop();
  await tabType('#issue-form input[list="principal-dids"]', agentDID);
  await tabType('#issue-form input[placeholder="files"]', 'search');
  await tabType('#issue-form input[placeholder="read, write"]', 'read');
  await tabTo('#issue-ro');
  await page.keyboard.press('Space');
  check(await page.isChecked('#issue-ro'), 'Space did not check read-only');
  await tabEnter('#issue-form button[type="submit"]');
  await page.waitForSelector('#token-value');
  const issued = await page.inputValue('#token-value');
  check(issued.length > 40, 'no token shown');
  const hash = await page.evaluate(() => {
    const t = document.querySelector('#ag-issue')?.parentElement.querySelector('.status.ok')?.textContent || '';
    return t;
  });
  check(/Issued capability/.test(hash), 'no issue confirmation: ' + hash);
  await page.waitForFunction(() => document.querySelector('button[data-hash]'));
  await shoot('agents');
  // the issued capability is the one whose subject is the agent and whose
  // grant is search: read (read-only)
  const capHash = await page.evaluate((did) => {
    for (const b of document.querySelectorAll('button[data-hash]')) {
      const tr = b.closest('tr');
      if (tr.textContent.includes('search: read (read-only)') && b.getAttribute('aria-label').includes(did)) return b.dataset.hash;
    }
    return '';
  }, agentDID);
  check(/^[0-9a-f]{64}$/.test(capHash), 'issued capability not listed');
  result('issued_hash', capHash);
  // a reload must not show the token again
  await fromTop();
  await tabEnter(`button[data-hash="${capHash}"]`);
  await page.waitForSelector('#revoke-dialog[open]');
  await shoot('agents-revoke-dialog');
  // the dialog opens on Cancel; Tab to the confirm button and press Enter
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.id === 'confirm-revoke'), 'Tab from Cancel does not reach Revoke now');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => !document.querySelector('#revoke-dialog').open);
  await page.waitForFunction((h) => !document.querySelector(`button[data-hash="${h}"]`) && /^Revoked/.test(document.querySelector('#revoke-status')?.textContent || ''), capHash);
  result('revoked_hash', capHash);

  // a delegation chain (pasted) shown as a tree from the root capability
  await fromTop();
  await tabTo('#chain-input');
  await page.keyboard.insertText(chainToken);
  await tabEnter('#verify-chain');
  await page.waitForFunction(() => /^(Valid|The chain|TALOS|[A-Z_]+:)/.test(document.querySelector('#chain-status')?.textContent || ''));
  const chainSt = await page.textContent('#chain-status');
  check(chainSt.startsWith('Valid chain of depth 2'), 'delegation chain: ' + chainSt);
  check((await page.textContent('[aria-label="Delegation chain"] .chain-leaf')).includes(chainLeaf), 'the chain tree does not end at its leaf');
  check((await page.locator('[aria-label="Delegation chain"] [role="treeitem"]').count()) === 3, 'the chain tree is not root → delegation → leaf');
  await shoot('agents-chain');
  result('chain', 'shown');

  // ---- Budgets: edit the team's budget with the keyboard
  await goPage('budgets');
  await page.waitForSelector(`[data-scope="${team}"] button.edit`);
  await shoot('budgets');
  await fromTop();
  await tabEnter(`[data-scope="${team}"] button.edit`);
  await page.waitForSelector(`[data-scope="${team}"] form.budget-edit`);
  // focus is in the limit field already
  check(await page.evaluate((t) => document.activeElement?.closest('form.budget-edit')?.parentElement.dataset.scope === t, team), 'Edit did not move focus to the form');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('75.5');
  await page.keyboard.press('Enter');
  await page.waitForFunction((t) => /limit 75\.50?/.test(document.querySelector(`[data-scope="${t}"]`)?.textContent || ''), team);
  result('budget_limit', '75.5');

  // ---- Audit: verify an inclusion proof in the browser, see a tampered
  // entry fail, check consistency, export a bundle
  await goPage('audit');
  await page.waitForSelector('button[data-index]');
  await shoot('audit');
  // filter by surface with the keyboard (Enter submits the filter form)
  await fromTop();
  await tabType('input[placeholder="kernel.authorize"]', 'kernel.authorize');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('main table tbody tr')];
    return rows.length > 0 && rows.every((r) => r.children[2].textContent === 'kernel.authorize');
  });
  // a denied decision, not the newest entry: a leaf inside the tree
  await fromTop();
  await tabTo('select:has(option[value="denied"])');
  await page.keyboard.press('End');
  await page.waitForFunction(() => document.querySelector('select:has(option[value="denied"])').value === 'failure');
  await page.keyboard.press('ArrowUp'); // the outcome filter applies at once
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('main table tbody tr')];
    return rows.length > 0 && rows.every((r) => r.children[3].textContent === 'denied');
  });
  const index = await page.evaluate(() => document.querySelector('button[data-index]').dataset.index);
  await fromTop();
  await tabEnter(`button[data-index="${index}"]`);
  await page.waitForSelector('#verify-proof');
  await tabEnter('#verify-proof');
  await page.waitForFunction(() => /^(Verified|Verification FAILED)/.test(document.querySelector('#proof-status')?.textContent || ''));
  const ok = await page.textContent('#proof-status');
  check(ok.startsWith('Verified:'), 'inclusion proof did not verify: ' + ok);
  result('verified_index', index);
  await shoot('audit-verified');

  // a pinned key of another log: the same proof is refused
  const realKey = await page.evaluate(async () => (await (await fetch('/v1/identity')).json()).audit_verifier_key);
  check(realKey.split('+')[0] === otherLogKey.split('+')[0] && realKey !== otherLogKey, 'the impostor key is not under the log name');
  await fromTop();
  await tabType('#pin-key', otherLogKey);
  await page.keyboard.press('Tab'); // change fires on leaving the field
  await fromTop();
  await tabEnter('#verify-proof');
  await page.waitForFunction(() => /^(Verified|Verification FAILED)/.test(document.querySelector('#proof-status')?.textContent || ''));
  const wrong = await page.textContent('#proof-status');
  check(wrong.startsWith('Verification FAILED') && /no valid signature/.test(wrong), 'a proof verified under another log key: ' + wrong);
  await fromTop();
  await tabType('#pin-key', realKey);
  await page.keyboard.press('Tab');
  await fromTop();
  await tabEnter('#verify-proof');
  await page.waitForFunction(() => /^(Verified|Verification FAILED)/.test(document.querySelector('#proof-status')?.textContent || ''));
  check((await page.textContent('#proof-status')).startsWith('Verified:'), 'the proof did not verify under the pinned key');
  result('pinned_key', 'checked');

  // tamper: flip one byte of the entry inside a JSON string
  await page.route('**/v1/audit/entries/*', async (route) => {
    const resp = await route.fetch();
    const body = Buffer.from(await resp.body());
    const at = body.indexOf('"event_id":"') + '"event_id":"'.length + 2;
    check(at > 20, 'no event_id in the entry');
    body[at] = body[at] === 0x61 ? 0x62 : 0x61;
    await route.fulfill({ response: resp, body });
  });
  await fromTop();
  await tabEnter('#verify-proof');
  await page.waitForFunction(() => /^(Verified|Verification FAILED)/.test(document.querySelector('#proof-status')?.textContent || ''));
  const bad = await page.textContent('#proof-status');
  check(bad.startsWith('Verification FAILED'), 'a tampered entry was not refused: ' + bad);
  check(await page.evaluate(() => document.querySelector('#proof-status').classList.contains('bad')), 'failure not shown as a failure');
  await shoot('audit-tampered');
  await page.unroute('**/v1/audit/entries/*');
  result('tampered', 'refused');

  // consistency: two recorded checkpoints with a decision between them
  await fromTop();
  await tabEnter('#record-cp');
  await page.waitForFunction(() => /verified checkpoint/.test(document.querySelector('#cp-status')?.textContent || ''));
  await trigger('decision');
  await fromTop();
  await tabEnter('#record-cp');
  await page.waitForFunction(() => document.querySelector('#cp-older').options.length >= 2);
  await fromTop();
  await tabEnter('#verify-consistency');
  await page.waitForFunction(() => /^(Consistent|Consistency FAILED)/.test(document.querySelector('#consistency-status')?.textContent || ''));
  const cons = await page.textContent('#consistency-status');
  check(cons.startsWith('Consistent: the tree of size'), 'consistency did not verify: ' + cons);
  result('consistency', 'verified');

  // bundle export of the entries [0, index+1)
  await fromTop();
  const dl = page.waitForEvent('download');
  await tabEnter('#export-bundle');
  const download = await dl;
  const bundlePath = join(artifacts, 'bundle.json');
  await download.saveAs(bundlePath);
  result('bundle', bundlePath);
  await shoot('audit-consistency');

  // ---- A2A and Config
  await goPage('a2a');
  await page.waitForFunction(() => document.querySelectorAll('main .status.info, main .status.bad').length >= 2);
  check((await page.locator('main .status.bad').count()) === 0, 'A2A page: ' + (await page.locator('main .status.bad').allTextContents()).join('; '));
  await fromTop();
  await tabEnter(`main button[aria-label="Show session ${a2aSession}"]`);
  await page.waitForSelector('#a2a-detail');
  const detail = await page.textContent('#a2a-detail >> xpath=..');
  check(/chain verified/.test(detail) && !/NOT verified/.test(detail), 'A2A session chain not verified: ' + detail.slice(0, 300));
  check(/frames: [1-9]/.test(detail), 'A2A session frame count missing: ' + detail.slice(0, 300));
  result('a2a_session', 'shown');
  await shoot('a2a');

  await goPage('config');
  await page.waitForFunction(() => document.querySelector('main .status.info, main .status.bad'));
  check((await page.locator('main .status.bad').count()) === 0, 'Config page: ' + (await page.locator('main .status.bad').allTextContents()).join('; '));
  {
    // the listed document's versions; then the same document opened by name
    await fromTop();
    await tabEnter('main button[aria-label="Versions of budget/team-a"]');
    await page.waitForSelector('#config-diff span');
    await fromTop();
    await tabTo('#open-kind');
    await tabType('#open-name', 'team-a');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#config-diff span');
    await page.waitForFunction(() => /digest/.test(document.querySelector('#cf-v')?.parentElement.querySelector('.status')?.textContent || ''));
    const ds = await page.textContent('#cf-v >> xpath=..');
    check(!/DOES NOT match/.test(ds), 'a config digest does not match its document');
    check(await page.locator('#config-diff .add, #config-diff .del').count(), 'no difference shown between two versions');
    result('config_diff', 'shown');
  }
  await shoot('config');

  // ---- every page at 390×844
  await page.setViewportSize({ width: 390, height: 844 });
  for (const name of ['overview', 'audit', 'agents', 'budgets', 'a2a', 'config']) {
    await goPage(name);
    await page.waitForFunction(() => !document.querySelector('main .status.busy'));
    await shoot(name);
  }

  // ---- sign out revokes the session
  await fromTop();
  await tabEnter('#signout');
  await page.waitForSelector('form[aria-labelledby="login-title"]');
  check((await page.evaluate(() => sessionStorage.getItem('talos.session'))) === null, 'sign-out kept the session');
  result('signed_out', 'yes');

  // a pasted session signs in too (keyboard only)
  await fromTop();
  await tabType('input[name="session"]', pasteSession);
  await page.keyboard.press('Enter');
  await page.waitForSelector('nav:not([hidden])');
  check((await page.textContent('#who')).includes('owner'), 'the pasted session did not sign in');
  result('pasted_sign_in', 'yes');

  // the session revoked elsewhere: the next API answer (401) signs out
  await trigger('revoke-pasted');
  await goPage('budgets');
  await page.waitForFunction(() => /expired or was revoked/.test(document.querySelector('.login .status')?.textContent || ''));
  check((await page.evaluate(() => sessionStorage.getItem('talos.session'))) === null, 'a revoked session stayed in sessionStorage');
  for (const e of consoleErrors.splice(0)) if (!/status of 401/.test(e)) consoleErrors.push(e);
  result('revoked_session', 'signed out');

  check(consoleErrors.length === 0, 'console errors: ' + consoleErrors.join(' | '));
  log('dashboard e2e: every check passed; screenshots in', artifacts);
} catch (err) {
  failed = true;
  log('dashboard e2e FAILED:', err instanceof Check ? err.message : err.stack || err);
  if (consoleErrors.length) log('console errors:', consoleErrors.join(' | '));
  try {
    const pages = ctx.pages();
    if (pages[0]) await pages[0].screenshot({ path: join(artifacts, 'failure.png'), fullPage: true });
  } catch {
    // no screenshot
  }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
  stdin.close();
}
writeFileSync(join(artifacts, 'result.txt'), failed ? 'failed\n' : 'passed\n');
process.exit(failed ? 1 : 0);
