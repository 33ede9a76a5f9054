// End-to-end test of the dashboard against a running 3-node cluster (started with
// --tokens by the caller). Drives /usr/bin/chromium headless through playwright-core.
//
//   DCACHE_DASH_URL      page to open, e.g. http://127.0.0.1:18080/
//   DCACHE_URLS          the 3 nodes' base URLs, comma-separated (setup and checks)
//   DCACHE_ADMIN_TOKEN   an admin token;  DCACHE_READER_TOKEN  a reader token
//   DCACHE_SHOTS         directory for full-page screenshots (optional)
//   CHROMIUM             browser binary (default /usr/bin/chromium)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const DASH = process.env.DCACHE_DASH_URL ?? '';
const NODES = (process.env.DCACHE_URLS ?? '')
  .split(',')
  .map((s) => s.trim().replace(/\/+$/, ''))
  .filter(Boolean);
const ADMIN = process.env.DCACHE_ADMIN_TOKEN ?? '';
const READER = process.env.DCACHE_READER_TOKEN ?? '';
const SHOTS = process.env.DCACHE_SHOTS ?? '';
const BROWSER = process.env.CHROMIUM ?? '/usr/bin/chromium';
const missing = [
  !DASH && 'DCACHE_DASH_URL',
  NODES.length < 3 && 'DCACHE_URLS (3 nodes)',
  !ADMIN && 'DCACHE_ADMIN_TOKEN',
  !READER && 'DCACHE_READER_TOKEN',
].filter(Boolean);
const skip = missing.length ? `needs ${missing.join(', ')}` : false;

const RUN = `e2e${Date.now().toString(36)}`;
const pageUrl = (route) => `${DASH.replace(/#.*$/, '')}#/${route}`;

/** Poll `fn` until it returns a truthy value or the deadline passes. */
async function until(what, fn, ms = 20000, every = 200) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

async function call(node, path, { method = 'GET', token = ADMIN, body, type } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (type) headers['Content-Type'] = type;
  const res = await fetch(`${node}${path}`, { method, headers, body, signal: AbortSignal.timeout(10000) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* a value */
  }
  return { status: res.status, text, json, headers: res.headers };
}

async function put(node, key, value, type = 'application/json') {
  const r = await call(node, `/api/cache/${encodeURIComponent(key)}?ttl=600`, { method: 'PUT', body: value, type });
  assert.ok(r.status === 200 || r.status === 201, `PUT ${key} through ${node}: ${r.status} ${r.text}`);
}

describe('dashboard', { skip }, () => {
  let browser;
  let ctx;
  let page;
  const problems = []; // console errors, page errors, CSP violations

  before(async () => {
    browser = await chromium.launch({
      executablePath: BROWSER,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    });
    ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    // Report CSP violations from inside the page too (the console message can be terse).
    await ctx.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
      });
    });
    page = await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      // A refused request (the reader scenario's 403, a 404 of a key) is logged by
      // Chromium as a resource error: expected answers, not faults of the page.
      if (/^Failed to load resource: the server responded with a status of (401|403|404|409|429|503)/.test(text)) return;
      problems.push(`console: ${text}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
  });

  /** Set the token in Settings; wait until the page shows the role whoami gives it. */
  async function setToken(token, role) {
    await page.goto(pageUrl('settings'));
    const input = page.getByTestId('token-input');
    await input.fill(token);
    await input.press('Enter');
    await page.getByTestId('token-saved').waitFor();
    const re = new RegExp(`Signed in as \\S+ \\(${role}\\)`);
    await until(`Settings to say the token's role is ${role}`, async () => re.test(await text('whoami')), 10000);
  }

  async function text(testId) {
    return (await page.getByTestId(testId).textContent()) ?? '';
  }

  it('settings: the role of each token, from whoami', async () => {
    const who = await call(NODES[0], '/api/whoami', { token: READER });
    assert.equal(who.status, 200);
    assert.equal(who.json.role, 'reader');
    await setToken(READER, 'reader');
    assert.ok((await text('whoami')).includes(`Signed in as ${who.json.name} (reader)`));
    await setToken(ADMIN, 'admin');
  });

  it('overview: 3 members, numbers that move under load', async () => {
    await page.goto(pageUrl('overview'));
    await until('3 alive members on the overview', async () => (await text('members-count')).includes('3 alive'));
    await until('the event stream to be live', async () => (await text('stream-status')).includes('Live'));
    await until('3 nodes reporting metrics', async () => (await page.getByTestId('cluster').textContent()).includes('3 nodes reporting'));
    // readiness, L2 and audit of the whole cluster, from the metrics events
    await until('the cluster ready', async () => (await text('cluster-state')) === '3 ok');
    assert.match(await text('cluster-l2'), /^3 (ok|disabled)$/);
    assert.match(await text('cluster-audit'), /^3 (ok|disabled)$/);
    const entriesBefore = await text('cluster-entries');

    // A bounded load through the API of every node while the page is watched.
    let stop = false;
    let sent = 0;
    const load = Promise.all(
      NODES.map(async (node, n) => {
        for (let i = 0; i < 400 && !stop; i++) {
          const key = `${RUN}:load:${n}:${i % 50}`;
          if (i < 50) await put(node, key, JSON.stringify({ i }));
          else await call(node, `/api/cache/${encodeURIComponent(key)}`);
          sent++;
        }
      }),
    );
    try {
      const seen = await until(
        'the cluster requests/s to rise above 0 and the entries to change',
        async () => {
          const rps = await text('cluster-rps');
          const entries = await text('cluster-entries');
          const v = parseFloat(rps);
          return v > 0 && entries !== entriesBefore ? { rps, entries } : false;
        },
        30000,
      );
      assert.ok(parseFloat(seen.rps) > 0);
      // and the hit rate shows the GETs (hits of the keys just written)
      await until('a cluster hit rate', async () => /%/.test(await text('cluster-hitrate')));
    } finally {
      stop = true;
      await load;
    }
    assert.ok(sent > 0);
  });

  it('key explorer: finds a key PUT through another node and opens its value', async () => {
    const key = `${RUN}:explorer:user`;
    await put(NODES[2], key, JSON.stringify({ id: 42, name: 'Ada', roles: ['admin'] }));
    await page.goto(pageUrl('keys'));
    const pattern = page.getByLabel(/Pattern/);
    await pattern.fill(`${RUN}:explorer:*`);
    await pattern.press('Enter');
    const link = page.getByRole('button', { name: key, exact: true });
    await link.waitFor({ timeout: 20000 });
    await link.click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await until('the value, pretty-printed', async () => (await dialog.getByTestId('value').textContent()).includes('"name": "Ada"'));
    assert.equal(await dialog.getByTestId('value-kind').textContent(), 'JSON, pretty-printed');
    const headers = await dialog.getByTestId('value-headers').textContent();
    assert.match(headers, /x-cache-version/);
    assert.match(headers, /etag/);
    await until('the owners', async () => /primary/.test(await dialog.getByTestId('value-owners').textContent()));
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('invalidation console: preview, confirm, and the keys are gone on every node', async () => {
    const keys = Array.from({ length: 6 }, (_, i) => `${RUN}:inv:${i}`);
    await Promise.all(keys.map((k, i) => put(NODES[i % NODES.length], k, `"v${i}"`)));
    await page.goto(pageUrl('invalidate'));
    const input = page.getByTestId('pattern-input');
    await input.fill(`${RUN}:inv:*`);
    await until('the preview to count 6 keys', async () => (await page.getByTestId('preview-count').textContent().catch(() => '')) === '6');
    // nothing deleted by the preview
    const still = await call(NODES[1], `/api/cache/${encodeURIComponent(keys[0])}`);
    assert.equal(still.status, 200);
    await input.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match(await dialog.getByTestId('confirm-count').textContent(), /matches 6 keys/);
    await dialog.getByRole('button', { name: 'Invalidate', exact: true }).click();
    await until('the result', async () => (await page.getByTestId('invalidated-count').textContent().catch(() => '')) !== '');
    assert.match(await page.getByTestId('invalidate-result').textContent(), /on 3 nodes/);
    // each member's part: 3 rows that answered, their counts adding up to the total
    const rows = await page.locator('[data-testid="per-node"] tbody tr').allTextContents();
    assert.equal(rows.length, 3, `one row per member: ${rows}`);
    assert.ok(rows.every((r) => r.includes('yes')), `every member answered: ${rows}`);
    const cells = await page.locator('[data-testid="per-node"] tbody td.num:last-child').allTextContents();
    assert.equal(cells.reduce((a, c) => a + Number(c), 0), 6, `per-node invalidated adds up to 6: ${cells}`);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'invalidate-result.png'), fullPage: true });
    for (const node of NODES) {
      for (const k of keys) {
        await until(`${k} to answer 404 on ${node}`, async () => (await call(node, `/api/cache/${encodeURIComponent(k)}`)).status === 404, 10000);
      }
    }
  });

  it('warming: a job of keys is created, triggered, and its run appears', async () => {
    const name = `${RUN}-warm`;
    await put(NODES[0], `${RUN}:warm:1`, '"w1"');
    await page.goto(pageUrl('warming'));
    await page.getByRole('button', { name: 'New job' }).click();
    const form = page.getByTestId('job-form');
    await form.waitFor();
    await form.getByLabel(/^Name/).fill(name);
    await form.getByLabel(/Keys, one a line/).fill(`${RUN}:warm:1\n${RUN}:warm:2`);
    await form.getByLabel(/^Schedule/).fill('@every 1h');
    await form.getByRole('button', { name: 'Create' }).click();
    const row = page.locator(`tr[data-job="${name}"]`);
    await row.waitFor({ timeout: 20000 });
    await row.getByRole('button', { name: 'Run now' }).click();
    const run = page.locator('[data-testid="warm-history"] tr', { hasText: name });
    await run.first().waitFor({ timeout: 20000 });
    await until('the run to end as done', async () => /done/.test(await run.first().textContent()));
    // the node agrees
    const h = await call(DASH.replace(/\/?(#.*)?$/, ''), '/api/warming/history?limit=50');
    if (h.status === 200) assert.ok(h.json.runs.some((r) => r.job === name), 'the run is in the node’s history');
    await call(DASH.replace(/\/?(#.*)?$/, ''), `/api/warming/jobs/${encodeURIComponent(name)}`, { method: 'DELETE' });
  });

  it('with the reader token, what it may not do is disabled with the reason, and a refusal shows the 403', async () => {
    const direct = await call(NODES[0], '/api/invalidate/pattern', {
      method: 'POST',
      token: READER,
      type: 'application/json',
      body: JSON.stringify({ pattern: `${RUN}:nothing:*`, dry_run: false }),
    });
    assert.equal(direct.status, 403);
    const audit = await call(NODES[0], '/api/audit?limit=1', { token: READER });
    assert.equal(audit.status, 403);
    await put(NODES[0], `${RUN}:ro:1`, '"keep"');
    await setToken(READER, 'reader');
    try {
      await page.goto(pageUrl('invalidate'));
      const input = page.getByTestId('pattern-input');
      await input.fill(`${RUN}:ro:*`);
      await until('the preview (a reader may preview)', async () => (await page.getByTestId('preview-count').textContent().catch(() => '')) === '1');
      const button = page.getByTestId('pattern-invalidate');
      await until('the pattern-invalidate button disabled', async () => button.isDisabled());
      assert.match((await button.getAttribute('title')) ?? '', /needs the admin role/);
      const note = page.locator('#pattern-role');
      assert.match(await note.textContent(), /Pattern invalidation .*needs the admin role .*is a reader/);
      await input.press('Enter');
      assert.equal(await page.getByRole('dialog').count(), 0, 'Enter does not open the confirmation either');
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'invalidate-reader.png'), fullPage: true });
      assert.equal((await call(NODES[1], `/api/cache/${encodeURIComponent(`${RUN}:ro:1`)}`)).status, 200, 'nothing was deleted');

      // The audit trail is admin's: its page asks anyway and shows the node's 403.
      await page.goto(pageUrl('audit'));
      const alert = page.locator('.alert-auth', { hasText: 'Audit trail' });
      await alert.waitFor({ timeout: 10000 });
      const shown = await alert.textContent();
      assert.ok(shown.includes(audit.json.error), `the page shows the API's message "${audit.json.error}": ${shown}`);
      assert.match(shown, /403/);
      assert.match(await page.getByTestId('role-note').first().textContent(), /needs the admin role/);
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'audit-reader-403.png'), fullPage: true });
    } finally {
      await setToken(ADMIN, 'admin');
    }
  });

  it('screenshots of every page (light), and the overview dark and narrow', { skip: !SHOTS && 'DCACHE_SHOTS not set' }, async () => {
    // A token change (the previous test) starts the live figures afresh:
    // wait until every node reported again, so the pictures show them.
    await page.goto(pageUrl('overview'));
    await until('3 nodes reporting metrics', async () => (await page.getByTestId('cluster').textContent()).includes('3 nodes reporting'));
    for (const route of ['overview', 'cluster', 'keys', 'invalidate', 'warming', 'audit', 'settings']) {
      await page.goto(pageUrl(route));
      await page.locator('h1').first().waitFor();
      if (route === 'overview') await until('charts', async () => (await page.locator('.chart canvas').count()) >= 4);
      if (route === 'cluster') await page.getByTestId('members-table').waitFor();
      if (route === 'keys') {
        const p = page.getByLabel(/Pattern/);
        await p.fill(`${RUN}:*`);
        await p.press('Enter');
        await page.getByTestId('keys-count').waitFor();
      }
      if (route === 'warming') await page.getByTestId('warm-history').waitFor();
      if (route === 'audit') await page.getByTestId('audit-table').waitFor();
      await page.screenshot({ path: join(SHOTS, `${route}.png`), fullPage: true });
    }
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(pageUrl('overview'));
    await until('the dark theme', async () => (await page.evaluate(() => document.documentElement.dataset.theme)) === 'dark');
    await until('charts', async () => (await page.locator('.chart canvas').count()) >= 4);
    await page.screenshot({ path: join(SHOTS, 'overview-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(pageUrl('overview'));
    await until('the light theme', async () => (await page.evaluate(() => document.documentElement.dataset.theme)) === 'light');
    await page.screenshot({ path: join(SHOTS, 'overview-narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('no CSP violation, console error or page error was logged', () => {
    assert.deepEqual(problems, []);
  });
});
