// The web console in a real browser: Playwright drives the system's Chromium against a real
// `sluice serve` (temporary data dir, port 0) with real components from examples/.
//
// Env: SLUICE_BIN (the sluice binary), SLUICE_EXAMPLES (directory of the examples' .wasm
// files), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default ../../target/console).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const TOKEN = 'console-test-admin-token';
const bin = process.env.SLUICE_BIN;
const examples = process.env.SLUICE_EXAMPLES;
const shots = resolve(process.env.SCREENSHOT_DIR || join(here, '../../target/console'));

let server;
let dataDir;
let base;
let browser;
let page;
const problems = [];
const refusalsAsked = new Set();
// True only while the sign-in step offers a wrong token: the 401s it asks for.
let refusingSignIn = false;

function startServer() {
  return new Promise((resolveStart, rejectStart) => {
    const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--series-interval', '1s'], {
      env: { ...process.env, SLUICE_ADMIN_TOKEN: TOKEN, RUST_LOG: 'info', NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let seen = '';
    const timer = setTimeout(() => rejectStart(new Error(`sluice did not start:\n${seen}`)), 60_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const found = /addr=(\S+)/.exec(seen);
      if (found && !base) {
        clearTimeout(timer);
        base = `http://${found[1]}`;
        resolveStart(child);
      }
    });
    child.on('exit', (code) => rejectStart(new Error(`sluice exited with ${code}:\n${seen}`)));
  });
}

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${TOKEN}`, ...headers } };
  if (body instanceof Uint8Array) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(base + path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return data;
}

async function deploy(name, file, query = '') {
  const wasm = new Uint8Array(await readFile(join(examples, file)));
  return call('PUT', `/v1/functions/${name}${query}`, wasm, { 'Content-Type': 'application/wasm' });
}

// Polls `check` (an API read) until it holds: for server-side state the page does not show.
async function until(what, check, ms = 20_000) {
  const end = Date.now() + ms;
  for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

// Opens a page of the console; the same address again reloads it, as a hash alone would not.
async function open(hash) {
  const url = `${base}/ui#/${hash}`;
  if (page.url() === url) await page.reload();
  else await page.goto(url);
}

async function shoot(name) {
  await page.evaluate(() => { document.getElementById('toast').hidden = true; });
  await page.screenshot({ path: join(shots, `console-${name}.png`), fullPage: false });
}

before(async () => {
  assert.ok(bin, 'set SLUICE_BIN to the sluice binary');
  assert.ok(examples, 'set SLUICE_EXAMPLES to the directory of the built examples');
  await mkdir(shots, { recursive: true });
  dataDir = await mkdtemp(join(tmpdir(), 'sluice-console-'));
  server = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    // The refusals the test asks for are not problems: a wrong token at sign-in, and a request
    // to a path a step has put in `refusalsAsked` (the browser logs each refused request).
    if (message.type() !== 'error') return;
    if (refusingSignIn && message.text().includes('status of 401')) return;
    const url = message.location().url;
    if (/status of 4\d\d/.test(message.text()) && url && refusalsAsked.has(new URL(url).pathname)) return;
    problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(String(error)));
});

// Keeps a screenshot of the page as it was when a step failed.
function guarded(body) {
  return async (t) => {
    try {
      await body(t);
    } catch (error) {
      const name = t.name.slice(0, 24).replace(/\W+/g, '-');
      await page?.screenshot({ path: join(shots, `failed-${name}.png`) }).catch(() => {});
      throw error;
    }
  };
}

after(async () => {
  await browser?.close();
  server?.kill();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('the page is served with a strict Content-Security-Policy and works signed in', { timeout: 180_000 }, guarded(async () => {
  const response = await page.goto(`${base}/ui`);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /style-src 'self'(;|$)/);
  // The sign-in page shows no nav (a `display: flex` once beat `hidden`).
  await page.waitForSelector('#token');
  assert.equal(await page.locator('#nav').isVisible(), false);
  assert.equal(await page.locator('#who').isVisible(), false);

  // Sign in: a wrong token is refused, the admin token is taken.
  refusingSignIn = true;
  await page.fill('#token', 'not-a-token');
  await page.click('button:text("Sign in")');
  await page.waitForSelector('.toast.error:text("not valid")');
  refusingSignIn = false;
  await page.fill('#token', TOKEN);
  await page.click('button:text("Sign in")');
  await page.waitForSelector('h1:text("Queues")');
  await page.waitForSelector('#nav a:text("Tokens")');
  await shoot('signed-in-empty');

  // Create a dead-letter queue, then a queue that uses it.
  const create = page.locator('[data-test="create-queue"]');
  await create.locator('input[name="name"]').fill('orders-dlq');
  await create.locator('button:text("Create queue")').click();
  await page.waitForSelector('[data-queue="orders-dlq"]');
  await create.locator('input[name="name"]').fill('orders');
  await create.locator('input[name="max_attempts"]').fill('2');
  await create.locator('select[name="dead_letter_queue"]').selectOption('orders-dlq');
  await create.locator('button:text("Create queue")').click();
  await page.waitForSelector('[data-queue="orders"]');
  const orders = await call('GET', '/v1/queues/orders');
  assert.equal(orders.settings.dead_letter_queue, 'orders-dlq');
  assert.equal(orders.settings.max_attempts, 2);

  // Send from the queue's page and watch its depth change.
  await page.click('a.queue-name:text-is("orders")');
  await page.waitForSelector('h1:has-text("orders")');
  await page.waitForSelector('[data-test="visible"]:text-is("0")');
  const send = page.locator('[data-test="send"]');
  await send.locator('textarea[name="body"]').fill('{"item": "book", "qty": 2}');
  await send.locator('button:text("Send")').click();
  await page.waitForSelector('[data-test="visible"]:text-is("1")');
  // The peeked body is shown as pretty JSON first, and as hex on demand.
  const message = page.locator('.message').first();
  await message.locator('[data-test="body"]:has-text("\\"qty\\": 2")').waitFor();
  await message.locator('button[data-view="hex"]').click();
  await message.locator('[data-test="body"]:has-text("7b 22 69 74")').waitFor();

  // A consumer: examples/flaky, bound to the queue from the function's page.
  await deploy('flaky', 'flaky.wasm');
  await open('functions/flaky');
  await page.waitForSelector('h2:text("Trigger")');
  await page.locator('select[name="queue"]').selectOption('orders');
  await page.locator('input[name="max_concurrency"]').fill('1');
  await page.click('button:text("Bind to queue")');
  await page.waitForSelector('[data-test="trigger-state"]:text-is("running")');
  // The waiting message is consumed; its invocation appears live in the log.
  await page.waitForSelector('[data-test="invocations"] [data-test="outcome"]:text-is("ok")');
  await until('orders to drain', async () => (await call('GET', '/v1/queues/orders')).stats.visible === 0);

  // Dead-letter one message through flaky, and find it with its reason, attempts and source.
  await open('queues/orders');
  await send.locator('textarea[name="body"]').fill('{"item": "broken"}');
  await send.locator('input[name="attributes"]').fill('fail=dead-letter, reason=customer 42 is unknown');
  await send.locator('button:text("Send")').click();
  await until('the dead letter', async () => (await call('GET', '/v1/queues/orders-dlq')).stats.visible === 1);
  await page.click('nav a:text("Dead letters")');
  // Each dead-letter queue starts collapsed, with how many it holds; opening it peeks.
  await page.waitForSelector('[data-dlq="orders-dlq"] [data-test="held"]:text-is("1 message")');
  assert.equal(await page.locator('[data-dlq="orders-dlq"] .message').count(), 0);
  await page.click('[data-dlq="orders-dlq"] summary');
  const dead = page.locator('[data-dlq="orders-dlq"] .message').first();
  await dead.locator('[data-test="reason"]:text-is("customer 42 is unknown")').waitFor();
  await dead.locator('dd a:text-is("orders")').waitFor();
  await dead.locator('dd:text-is("1")').waitFor();
  await shoot('dead-letter');

  // Pause the consumer, redrive the one message, and see it back in its source queue.
  await open('functions/flaky');
  await page.click('button:text("Pause")');
  await page.waitForSelector('[data-test="trigger-state"]:text-is("paused")');
  await page.click('nav a:text("Dead letters")');
  await dead.locator('button:text("Redrive")').click();
  await page.waitForSelector('.toast:text("Redrove 1 message")');
  await page.waitForSelector('[data-dlq="orders-dlq"] :text("No dead letters.")');
  const back = await call('GET', '/v1/queues/orders');
  assert.equal(back.stats.visible, 1, JSON.stringify(back.stats));

  // Some traffic for the charts: a second queue with a backlog, and flaky draining orders.
  await call('POST', '/v1/queues', { name: 'emails' });
  await open('functions/flaky');
  await page.click('button:text("Resume")');
  await page.waitForSelector('[data-test="trigger-state"]:text-is("running")');
  for (let round = 0; round < 8; round++) {
    const batch = Array.from({ length: 40 }, (_, i) => ({ body: JSON.stringify({ order: round * 40 + i }) }));
    await call('POST', '/v1/queues/orders/messages/batch', { messages: batch });
    await call('POST', '/v1/queues/emails/messages/batch', { messages: batch.slice(0, 15 + round * 3) });
    await new Promise((r) => setTimeout(r, 700));
  }
  await until('orders to drain again', async () => (await call('GET', '/v1/queues/orders')).stats.visible === 0);
  // The redriven message dead-letters again (it still asks to), so the DLQ rate shows too.
  await until('a second dead letter', async () => (await call('GET', '/v1/queues/orders-dlq')).stats.visible === 1);

  // Roll back: a second version (another config), then back to the first from the page.
  const v2 = await deploy('flaky', 'flaky.wasm', '?timeout_ms=5000');
  assert.equal(v2.active_version, 2);
  await open('functions/flaky');
  await page.waitForSelector('[data-test="versions"] tr.active td:has-text("v2")');
  await page.waitForSelector('[data-test="invocations"] details');
  // What it consumes and runs with; failure rate and duration percentiles over time.
  await page.waitForSelector('[data-test="consumes"] a:text-is("orders")');
  await page.waitForSelector('[data-test="env-names"]:has-text("none")');
  // The totals are the server's over the whole hour, not a sample: as many as the log holds.
  const logged = (await call('GET', '/v1/functions/flaky/invocations?limit=1000')).invocations.filter((i) => !i.dry_run).length;
  assert.ok(logged > 0);
  await page.locator('[data-test="function-stats"]').filter({ hasText: new RegExp(`: ${logged} invocations?, 0 failed \\(0%\\), duration p50 [\\d.,]+ ms, p95`) }).waitFor();
  await page.waitForSelector('.chart-title:text-is("Duration")');
  // The charts run over the hour, a minute a point, with a time axis ending now.
  const durations = page.locator('.chart-box:has(.chart-title:text-is("Duration"))');
  await durations.locator('[data-test="chart-axis"] span').last().filter({ hasText: /^\d\d:\d\d:\d\d$/ }).waitFor();
  const hour = await call('GET', '/v1/functions/flaky/invocations/stats?bucket_ms=60000');
  assert.equal(hour.buckets.length, 60);
  assert.equal(hour.buckets.reduce((sum, b) => sum + b.invocations, 0), logged);
  // An ok batch whose handler dead-lettered a message is marked so in the live log.
  await call('POST', '/v1/queues/orders/messages/batch', { messages: [{ body: '{"item": "broken again"}', attributes: { fail: 'dead-letter', reason: 'customer 42 is unknown' } }] });
  const marked = page.locator('[data-test="invocations"] .invocation.mixed').first();
  await marked.locator('[data-test="outcome"]:text-is("ok")').waitFor();
  await marked.locator('[data-test="dead-lettered"]:text-is("1 dead-lettered")').waitFor();
  await shoot('function');
  await page.getByRole('button', { name: 'Roll back to v1' }).click();
  await page.click('#confirm-ok');
  await page.waitForSelector('[data-test="versions"] tr.active td:has-text("v1")');
  assert.equal((await call('GET', '/v1/functions/flaky')).active_version, 1);

  // The outcome filter asks the server for failures only: there are none.
  await page.locator('select[name="outcome"]').selectOption('error');
  await page.waitForFunction(() => document.querySelector('[data-test="invocations"]').children.length === 0);
  await page.locator('select[name="outcome"]').selectOption('');
  await page.waitForSelector('[data-test="invocations"] details');

  // Upload a new version from the page, with an environment variable (its value never shown).
  const upload = page.locator('[data-test="upload"]');
  await upload.locator('input[name="component"]').setInputFiles(join(examples, 'flaky.wasm'));
  await upload.locator('input[name="timeout"]').fill('20s');
  await upload.locator('textarea[name="env"]').fill('GREETING=secret-hello');
  await upload.locator('button:text("Upload")').click();
  await page.waitForSelector('.toast:text("flaky now runs version 3")');
  await page.waitForSelector('[data-test="versions"] tr.active td:has-text("v3")');
  await page.waitForSelector('[data-test="env-names"] code:text-is("GREETING")');
  const v3 = (await call('GET', '/v1/functions/flaky')).versions.find((v) => v.version === 3);
  assert.equal(v3.config.timeout_ms, 20_000);
  assert.deepEqual(v3.config.env_names, ['GREETING']);
  assert.ok(!(await page.locator('main').innerText()).includes('secret-hello'));

  // The queue list: a table with the live rates (per second) and who consumes each queue.
  await page.click('nav a:text("Queues")');
  const ordersRow = page.locator('tr[data-queue="orders"]');
  await ordersRow.locator('[data-test="consumer"] a:text-is("flaky")').waitFor();
  await page.locator('tr[data-queue="emails"] [data-test="visible"]').filter({ hasText: /^[1-9]/ }).waitFor();
  await ordersRow.locator('[data-test="enqueued"]').filter({ hasText: /\/s$/ }).waitFor();
  // Sorted by visible, most first: emails, with its backlog, leads.
  await page.click('button[data-sort="visible"]');
  await page.waitForSelector('th[aria-sort="descending"] button[data-sort="visible"]');
  assert.equal(await page.locator('[data-test="queues"] tbody tr').first().getAttribute('data-queue'), 'emails');
  await page.click('button[data-sort="name"]');
  assert.equal(await page.locator('[data-test="queues"] tbody tr').first().getAttribute('data-queue'), 'emails');
  await shoot('queues');
  await page.click('a.queue-name:text-is("emails")');
  await page.waitForSelector('.message');
  // Charts have a time axis, and hovering one reads its values at that time.
  const depth = page.locator('.chart-box').first();
  await depth.locator('[data-test="chart-axis"] span').first().filter({ hasText: /^\d\d:\d\d:\d\d$/ }).waitFor();
  const box = await depth.locator('svg').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await depth.locator('[data-test="chart-at"]').filter({ hasText: /^\d\d:\d\d:\d\d$/ }).waitFor();
  await page.mouse.move(0, 0);
  await depth.locator('[data-test="chart-at"]:text-is("now")').waitFor();
  await shoot('queue');
  // A second dead letter, put there by hand, so it has no reason: the filter tells them apart.
  await call('POST', '/v1/queues/orders-dlq/messages/batch', { messages: [{ body: 'by hand' }] });
  await page.click('nav a:text("Dead letters")');
  const letters = page.locator('[data-dlq="orders-dlq"] .message');
  await page.waitForSelector('[data-dlq="orders-dlq"] [data-test="dlq-page"]:text-is("1–3 of 3, oldest first")');
  // The reasons and their counts are the server's, over the whole queue; choosing one asks the
  // server for its messages.
  const reason = page.locator('select[aria-label="Filter orders-dlq by reason"]');
  await reason.locator('option:text-is("customer 42 is unknown (2)")').waitFor({ state: 'attached' });
  await reason.selectOption({ label: 'customer 42 is unknown (2)' });
  await page.waitForSelector('[data-dlq="orders-dlq"] [data-test="dlq-page"]:text-is("1–2 of 2, oldest first")');
  await page.waitForFunction(() => document.querySelectorAll('[data-dlq="orders-dlq"] .message').length === 2);
  await letters.locator('[data-test="reason"]:text-is("customer 42 is unknown")').first().waitFor();
  await reason.selectOption({ label: '(no reason given) (1)' });
  await letters.locator('[data-test="body"]:text-is("by hand")').waitFor();
  assert.equal(await letters.count(), 1);
  await reason.selectOption({ label: 'every reason (3)' });
  await page.waitForFunction(() => document.querySelectorAll('[data-dlq="orders-dlq"] .message').length === 3);
  await shoot('dead-letters');

  // More dead letters than a page: 55 for one reason, then 5 for another (past the first
  // page). The filter lists both with their whole-queue counts and pages within a reason.
  await call('POST', '/v1/queues', { name: 'bulk-dlq' });
  await call('POST', '/v1/queues', { name: 'bulk', dead_letter_queue: 'bulk-dlq' });
  await call('POST', '/v1/queues/bulk/messages/batch', { messages: Array.from({ length: 60 }, (_, i) => ({ body: `bulk ${i}` })) });
  const received = (await call('POST', '/v1/queues/bulk/messages/receive', { max_messages: 60 })).messages;
  assert.equal(received.length, 60);
  const receipts = received.map((m) => m.receipt);
  await call('POST', '/v1/queues/bulk/messages/dead-letter', { receipts: receipts.slice(0, 55), reason: 'bulk reject' });
  await call('POST', '/v1/queues/bulk/messages/dead-letter', { receipts: receipts.slice(55), reason: 'rare reason' });
  await page.click('nav a:text("Queues")');
  await page.click('nav a:text("Dead letters")');
  await page.click('[data-dlq="bulk-dlq"] summary');
  const bulkReason = page.locator('select[aria-label="Filter bulk-dlq by reason"]');
  const bulkNote = '[data-dlq="bulk-dlq"] [data-test="dlq-page"]';
  const bulkLetters = page.locator('[data-dlq="bulk-dlq"] .message');
  await page.waitForSelector(`${bulkNote}:text-is("1–50 of 60, oldest first")`);
  await bulkReason.locator('option:text-is("bulk reject (55)")').waitFor({ state: 'attached' });
  await bulkReason.selectOption({ label: 'rare reason (5)' });
  await page.waitForSelector(`${bulkNote}:text-is("1–5 of 5, oldest first")`);
  assert.equal(await bulkLetters.count(), 5);
  assert.deepEqual(await bulkLetters.locator('[data-test="reason"]').allTextContents(), Array(5).fill('rare reason'));
  await bulkReason.selectOption({ label: 'bulk reject (55)' });
  await page.waitForSelector(`${bulkNote}:text-is("1–50 of 55, oldest first")`);
  await page.click('[data-dlq="bulk-dlq"] button:text("Next 50 →")');
  await page.waitForSelector(`${bulkNote}:text-is("51–55 of 55, oldest first")`);
  assert.equal(await bulkLetters.count(), 5);
  assert.deepEqual(await bulkLetters.locator('[data-test="reason"]').allTextContents(), Array(5).fill('bulk reject'));
  assert.equal(await bulkLetters.locator('[data-test="body"]').first().textContent(), 'bulk 50');

  // Purge, with confirmation: cancelling keeps the messages, confirming removes them.
  await page.click('a.queue-name:text-is("orders-dlq")');
  await page.click('button:text("Purge queue")');
  await page.click('#confirm button[value="cancel"]');
  assert.equal((await call('GET', '/v1/queues/orders-dlq')).stats.visible, 3);
  await page.click('button:text("Purge queue")');
  await page.click('#confirm-ok');
  await page.waitForSelector('.toast:text("Purged 3 messages")');
  assert.equal((await call('GET', '/v1/queues/orders-dlq')).stats.visible, 0);

  assert.deepEqual(problems, [], 'the page logged errors (a CSP violation shows here)');
}));

// Formats like the console: local time to the second.
function localTime(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

test('schedules are created from the page, fire into their queue and are deleted', { timeout: 90_000 }, guarded(async () => {
  await call('POST', '/v1/queues', { name: 'reports' });
  await page.click('nav a:text("Schedules")');
  await page.waitForSelector('h1:text("Schedules")');
  await page.waitForSelector('main :text("No schedules yet.")');
  const form = page.locator('[data-test="put-schedule"]');
  // The time zone defaults to the browser's.
  const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.equal(await form.locator('input[name="timezone"]').inputValue(), zone);

  // A bad cron expression is refused with the server's reason, and nothing is created.
  refusalsAsked.add('/v1/schedules/heartbeat');
  await form.locator('input[name="name"]').fill('heartbeat');
  await form.locator('input[name="cron"]').fill('every second');
  await form.locator('select[name="queue"]').selectOption('reports');
  await form.locator('button:text("Save schedule")').click();
  await page.waitForSelector('.toast.error:has-text("invalid cron expression `every second`")');
  assert.deepEqual((await call('GET', '/v1/schedules')).schedules, []);

  // Every second (6 fields, seconds first) into reports, with a body and an attribute.
  await form.locator('input[name="cron"]').fill('* * * * * *');
  await form.locator('textarea[name="body"]').fill('{"ping": true}');
  await form.locator('textarea[name="attributes"]').fill('kind=heartbeat');
  await form.locator('button:text("Save schedule")').click();
  await page.waitForSelector('.toast:has-text("Saved schedule heartbeat")');
  const heartbeat = page.locator('tr[data-schedule="heartbeat"]');
  await heartbeat.locator('td a:text-is("reports")').waitFor();
  await heartbeat.locator('td:text-is("* * * * * *")').waitFor();
  await heartbeat.locator('[data-test="next-tick"]').filter({ hasText: /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/ }).waitFor();
  await until('a scheduled message in reports', async () => (await call('GET', '/v1/queues/reports/messages?limit=10'))
    .messages.some((m) => m.attributes['sluice-schedule'] === 'heartbeat'));
  const fired = (await call('GET', '/v1/queues/reports/messages?limit=1')).messages[0];
  assert.equal(fired.body, '{"ping": true}');
  assert.equal(fired.attributes.kind, 'heartbeat');

  // A nightly one in another zone; its next tick is shown in local time.
  await form.locator('input[name="name"]').fill('nightly-report');
  await form.locator('input[name="cron"]').fill('0 2 * * *');
  await form.locator('input[name="timezone"]').fill('Europe/Berlin');
  await form.locator('textarea[name="body"]').fill('{"report": "daily"}');
  await form.locator('textarea[name="attributes"]').fill('kind=report\nformat=pdf');
  await form.locator('button:text("Save schedule")').click();
  await page.waitForSelector('.toast:has-text("Saved schedule nightly-report")');
  const nightly = await call('GET', '/v1/schedules/nightly-report');
  const nightlyRow = page.locator('tr[data-schedule="nightly-report"]');
  await nightlyRow.locator(`[data-test="next-tick"]:has-text("${localTime(nightly.next_tick_ms)}")`).waitFor();
  await nightlyRow.locator('.attr:text-is("format=pdf")').waitFor();
  await shoot('schedules');

  // Edit loads a schedule into the form; saving it again replaces it.
  await nightlyRow.locator('button:text("Edit")').click();
  assert.equal(await form.locator('input[name="name"]').inputValue(), 'nightly-report');
  assert.equal(await form.locator('textarea[name="attributes"]').inputValue(), 'format=pdf\nkind=report');
  await form.locator('input[name="cron"]').fill('30 2 * * *');
  await form.locator('button:text("Save schedule")').click();
  await nightlyRow.locator('td:text-is("30 2 * * *")').waitFor();
  assert.equal((await call('GET', '/v1/schedules/nightly-report')).cron, '30 2 * * *');

  // Delete, with confirmation: cancelling keeps the schedule, confirming removes it.
  await heartbeat.locator('button:text("Delete")').click();
  await page.click('#confirm button[value="cancel"]');
  assert.equal((await call('GET', '/v1/schedules')).schedules.length, 2);
  await heartbeat.locator('button:text("Delete")').click();
  await page.click('#confirm-ok');
  await page.waitForSelector('.toast:text("Deleted schedule heartbeat")');
  await heartbeat.waitFor({ state: 'detached' });
  assert.deepEqual((await call('GET', '/v1/schedules')).schedules.map((s) => s.name), ['nightly-report']);

  assert.deepEqual(problems, []);
}));

test('topics are created, subscribed to with a filter, published to and replayed', { timeout: 90_000 }, guarded(async () => {
  for (const name of ['eu-orders', 'audit']) await call('POST', '/v1/queues', { name });
  await page.click('nav a:text("Topics")');
  await page.waitForSelector('h1:text("Topics")');
  await page.waitForSelector('main :text("No topics yet.")');
  const create = page.locator('[data-test="create-topic"]');
  await create.locator('input[name="name"]').fill('events');
  await create.locator('button:text("Create topic")').click();
  await page.waitForSelector('.toast:has-text("Created topic events")');
  const topic = page.locator('section[data-topic="events"]');
  await topic.waitFor();

  // A bad filter is refused with the server's reason; a good one subscribes.
  refusalsAsked.add('/v1/topics/events/subscriptions/eu-orders');
  const form = page.locator('[data-test="subscribe"]');
  await form.locator('select[name="topic"] option[value="events"]').waitFor({ state: 'attached' });
  await form.locator('select[name="queue"]').selectOption('eu-orders');
  await form.locator('textarea[name="filter"]').fill('{"region": {"suffix": "x"}}');
  await form.locator('button:text("Subscribe")').click();
  await page.waitForSelector('.toast.error:has-text("filter")');
  await form.locator('textarea[name="filter"]').fill('{"kind": "order", "region": {"prefix": "eu-"}}');
  await form.locator('button:text("Subscribe")').click();
  await page.waitForSelector('.toast:has-text("eu-orders subscribes to events")');
  await topic.locator('tr[data-subscription="eu-orders"] [data-test="state"]:text("live")').waitFor();

  // Publishing from the page copies into the matching queue only.
  const publish = topic.locator('[data-test="publish-events"]');
  await publish.locator('textarea[name="body"]').fill('{"order": 1}');
  await publish.locator('input[name="attributes"]').fill('kind=order, region=eu-west');
  await publish.locator('button:text("Publish")').click();
  await page.waitForSelector('.toast:has-text("Published #1 into 1 queue")');
  await publish.locator('textarea[name="body"]').fill('{"order": 2}');
  await publish.locator('input[name="attributes"]').fill('kind=order, region=us-east');
  await publish.locator('button:text("Publish")').click();
  await page.waitForSelector('.toast:has-text("Published #2 into 0 queues")');
  const copies = (await call('GET', '/v1/queues/eu-orders/messages?limit=10')).messages;
  assert.deepEqual(copies.map((m) => m.body), ['{"order": 1}']);
  assert.equal(copies[0].attributes['sluice-topic-seq'], '1');

  // A queue subscribed from the start gets the history replayed.
  await form.locator('select[name="queue"]').selectOption('audit');
  await form.locator('textarea[name="filter"]').fill('');
  await form.locator('select[name="from"]').selectOption('earliest');
  await form.locator('button:text("Subscribe")').click();
  await until('the replay into audit', async () => (await call('GET', '/v1/queues/audit')).stats.visible === 2);
  await topic.locator('tr[data-subscription="audit"] [data-test="state"]:text("live")').waitFor();
  await topic.locator('[data-test="published"]:has-text("2 published")').waitFor();
  await shoot('topics');

  // Unsubscribing asks first.
  await topic.locator('tr[data-subscription="audit"] button:text("Unsubscribe")').click();
  await page.click('#confirm-ok');
  await page.waitForSelector('.toast:has-text("audit no longer subscribes to events")');
  await topic.locator('tr[data-subscription="audit"]').waitFor({ state: 'detached' });
  assert.deepEqual(problems, []);
}));

test('the queue list is searched, sorted and paged', { timeout: 90_000 }, guarded(async () => {
  const bulk = Array.from({ length: 24 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
  for (const name of bulk) await call('POST', '/v1/queues', { name });
  await call('POST', '/v1/queues/bulk-17/messages/batch', { messages: [{ body: 'a' }, { body: 'b' }] });
  await open('queues');
  const rows = page.locator('[data-test="queues"] tbody tr');
  const total = (await call('GET', '/v1/queues')).queues.length;
  await page.waitForSelector(`[data-test="page"]:text-is("1–20 of ${total}")`);
  assert.equal(await rows.count(), 20);
  await page.click('button:text("Next →")');
  await page.waitForSelector(`[data-test="page"]:text-is("21–${total} of ${total}")`);
  await page.click('button:text("← Previous")');
  await page.waitForSelector(`[data-test="page"]:text-is("1–20 of ${total}")`);
  // Search by name narrows the list and starts it over at its first page.
  await page.fill('input[name="search"]', 'bulk-1');
  await page.waitForSelector('[data-test="queue-count"]:text-is("10 queues of ' + total + ' match")');
  assert.equal(await rows.count(), 10);
  // Sorted by visible, most first, then by name.
  await page.click('button[data-sort="visible"]');
  assert.equal(await rows.first().getAttribute('data-queue'), 'bulk-17');
  await page.click('button[data-sort="visible"]');
  assert.equal(await rows.last().getAttribute('data-queue'), 'bulk-17');
  await page.fill('input[name="search"]', 'no-such-queue');
  await page.waitForSelector('[data-test="page"]:text-is("no queue matches")');
  // Only the list's one series request per refresh, never one per queue.
  const asked = [];
  const seen = (request) => { if (/\/v1\/(series|queues\/[^/]+\/series)/.test(request.url())) asked.push(new URL(request.url()).pathname); };
  page.on('request', seen);
  await open('queues');
  await page.waitForSelector('tr[data-queue="bulk-00"]');
  await until('a refresh', async () => asked.length >= 2, 10_000);
  page.off('request', seen);
  assert.deepEqual([...new Set(asked)], ['/v1/series']);
  for (const name of bulk) {
    await call('POST', `/v1/queues/${name}/purge`);
    await call('DELETE', `/v1/queues/${name}`);
  }
  assert.deepEqual(problems, []);
}));

test('a peek pages through a queue, shows priority and group, and deletes one message', { timeout: 90_000 }, guarded(async () => {
  await call('POST', '/v1/queues', { name: 'peeked' });
  const batch = Array.from({ length: 60 }, (_, i) => ({ body: `m${i}` }));
  batch[0] = { body: 'first', priority: 7, group: 'customer-42' };
  await call('POST', '/v1/queues/peeked/messages/batch', { messages: batch });
  await open('queues/peeked');
  await page.waitForSelector('[data-test="peek-page"]:text-is("1–50, oldest first")');
  const first = page.locator('.message').first();
  await first.locator('[data-test="priority"]:text-is("priority 7")').waitFor();
  await first.locator('[data-test="group"]:text-is("group customer-42")').waitFor();
  assert.equal(await page.locator('.message').count(), 50);
  await page.click('button:text("Next 50 →")');
  await page.waitForSelector('[data-test="peek-page"]:text-is("51–60, oldest first")');
  assert.equal(await page.locator('.message').count(), 10);
  assert.ok(await page.locator('button:text("Next 50 →")').isDisabled());
  await page.click('button:text("← Previous")');
  await page.waitForSelector('[data-test="peek-page"]:text-is("1–50, oldest first")');

  // Delete one message, with confirmation.
  const id = await first.getAttribute('data-id');
  await first.locator('button:text("Delete")').click();
  await page.click('#confirm-ok');
  await page.waitForSelector(`.toast:text("Deleted message ${id}")`);
  await page.locator(`.message[data-id="${id}"]`).waitFor({ state: 'detached' });
  assert.equal((await call('GET', '/v1/queues/peeked')).stats.visible, 59);

  // Settings read and are typed in human units, with the raw value on hover.
  const settings = page.locator('[data-test="settings"]');
  const visibility = settings.locator('input[name="visibility_timeout_ms"]');
  const raw = (await call('GET', '/v1/queues/peeked')).settings;
  assert.equal(await visibility.getAttribute('title'), `${raw.visibility_timeout_ms.toLocaleString('en-US')} ms`);
  assert.match(await visibility.inputValue(), /^\d+[smhd]( \d+[smhd])*$/);
  assert.match(await settings.locator('input[name="max_message_bytes"]').inputValue(), /^\d+ (B|KiB|MiB)$/);
  await visibility.fill('soon');
  await settings.locator('button:text("Save settings")').click();
  await page.locator('.toast.error').filter({ hasText: 'Visibility timeout: "soon" is not understood' }).waitFor();
  await visibility.fill('1m 30s');
  await settings.locator('input[name="retention_ms"]').fill('2d');
  await settings.locator('input[name="max_message_bytes"]').fill('64 KiB');
  await settings.locator('button:text("Save settings")').click();
  await page.waitForSelector('.toast:text("Settings saved")');
  const saved = (await call('GET', '/v1/queues/peeked')).settings;
  assert.equal(saved.visibility_timeout_ms, 90_000);
  assert.equal(saved.retention_ms, 2 * 86_400_000);
  assert.equal(saved.max_message_bytes, 65_536);
  assert.equal(await visibility.getAttribute('title'), '90,000 ms');
  await shoot('queue-peek');
  await call('POST', '/v1/queues/peeked/purge');
  await call('DELETE', '/v1/queues/peeked');
  assert.deepEqual(problems, []);
}));

test('an admin creates a token (its secret shown once) and revokes it', { timeout: 60_000 }, guarded(async () => {
  await page.click('nav a:text("Tokens")');
  await page.waitForSelector('h1:text("Tokens")');
  const form = page.locator('[data-test="create-token"]');
  // No scope: refused before asking the server.
  await form.locator('input[name="name"]').fill('billing');
  await form.locator('button:text("Create token")').click();
  await page.waitForSelector('.toast.error:has-text("Choose at least one scope")');
  await form.locator('input[value="read"]').check();
  await form.locator('input[name="narrow"]').fill('produce:orders');
  await form.locator('button:text("Create token")').click();
  const secret = await page.locator('[data-test="new-token"] [data-test="secret"]').inputValue();
  assert.ok(secret.length > 16, secret);
  const row = page.locator('tr[data-token="billing"]');
  await row.locator('[data-test="scopes"]:has-text("read")').waitFor();
  await row.locator('[data-test="scopes"]:has-text("produce:orders")').waitFor();
  // The secret works, and is not on the page once dismissed nor in the list.
  const works = await fetch(`${base}/v1/tokens/self`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(works.status, 200);
  await shoot('tokens');
  await page.click('[data-test="new-token"] button:text("Done")');
  assert.equal(await page.locator(`input[value="${secret}"]`).count(), 0);
  assert.ok(!(await page.locator('main').innerText()).includes(secret));

  await row.locator('button:text("Revoke")').click();
  await page.click('#confirm-ok');
  await page.waitForSelector('.toast:text("Revoked token billing")');
  await row.waitFor({ state: 'detached' });
  const refused = await fetch(`${base}/v1/tokens/self`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal(refused.status, 401);
  assert.deepEqual(problems, []);
}));

// True when the page is no wider than the window (nothing scrolls sideways).
async function fitsSideways() {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

test('pages fit a 1,400 px window and a 390 px phone', { timeout: 90_000 }, guarded(async () => {
  await page.setViewportSize({ width: 1400, height: 900 });
  await open('schedules');
  await page.waitForSelector('tr[data-schedule="nightly-report"]');
  const fits = await page.evaluate(() => {
    const table = document.querySelector('[data-test="schedules"]');
    return table.getBoundingClientRect().right <= table.parentElement.getBoundingClientRect().right + 0.5;
  });
  assert.ok(fits, 'the schedules table overflows its card at 1,400 px');
  assert.ok(await fitsSideways());
  for (const [hash, ready] of [['schedules', '[data-test="schedules"]'], ['functions/flaky', '[data-test="versions"]'], ['tokens', '[data-test="create-token"]']]) {
    await open(hash);
    await page.waitForSelector(ready);
    const overflowing = await page.evaluate(() => [...document.querySelectorAll('.card')]
      .filter((card) => card.scrollWidth > card.clientWidth + 1).map((card) => card.dataset.test || card.className));
    assert.deepEqual(overflowing, [], `#/${hash}: cards whose content overflows at 1,400 px`);
  }

  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, ready] of [
    ['queues', '[data-test="queues"]'],
    ['queues/orders', '.chart'],
    ['dead-letters', '[data-dlq="orders-dlq"]'],
    ['functions/flaky', '[data-test="versions"]'],
    ['schedules', '[data-test="schedules"]'],
    ['topics', 'section[data-topic="events"]'],
    ['tokens', '[data-test="create-token"]'],
    ['state', 'h1:text("State")'],
  ]) {
    await open(hash);
    await page.waitForSelector(ready);
    assert.ok(await fitsSideways(), `#/${hash} scrolls sideways at 390 px`);
    assert.ok(await page.locator('nav a:text("Topics")').isVisible());
  }
  await open('queues');
  await page.waitForSelector('[data-test="queues"]');
  await shoot('phone-queues');
  await page.setViewportSize({ width: 1440, height: 900 });
  assert.deepEqual(problems, []);
}));

test('state buckets are created, browsed by prefix a page at a time, and keys edited and deleted', { timeout: 60_000 }, guarded(async () => {
  await open('state');
  await page.waitForSelector('h1:text("State")');
  await page.waitForSelector('main :text("No buckets yet.")');
  const create = page.locator('[data-test="create-bucket"]');
  await create.locator('input[name="bucket"]').fill('counts');
  await create.locator('input[name="ttl"]').fill('soon');
  await create.locator('button:text("Create bucket")').click();
  await page.waitForSelector('.toast.error:has-text("not a duration")');
  await create.locator('input[name="ttl"]').fill('1h');
  await create.locator('button:text("Create bucket")').click();
  await page.waitForSelector('.toast:has-text("Created bucket counts")');
  await page.locator('tr[data-bucket="counts"] td:text("after 1h")').waitFor();

  // Keys as a handler would leave them: 60 counters and one other key.
  const put = (key, value) => call('PUT', `/v1/kv/counts/keys/${encodeURIComponent(key)}`, new TextEncoder().encode(value));
  for (let i = 0; i < 60; i++) await put(`count:c${String(i).padStart(2, '0')}`, String(i));
  await put('last:acme', '{"id": "42"}');
  await page.click('tr[data-bucket="counts"] a:text("counts")');
  await page.waitForSelector('h1:has-text("counts")');
  await page.waitForSelector('[data-key="count:c00"]');
  assert.equal(await page.locator('[data-key]').count(), 50, 'a page of 50 keys');
  await page.click('button:text("Next")');
  await page.waitForSelector('[data-key="last:acme"]');
  assert.equal(await page.locator('[data-key]').count(), 11);
  await page.click('button:text("Previous")');
  await page.waitForSelector('[data-key="count:c00"]');

  // By prefix; a key's value is shown, edited and deleted.
  await page.fill('input[name="prefix"]', 'last:');
  await page.click('[data-test="key-prefix"] button:text("Find")');
  await page.waitForSelector('[data-key="last:acme"]');
  assert.equal(await page.locator('[data-key]').count(), 1);
  await page.click('[data-key="last:acme"]');
  const view = page.locator('[data-test="key-view"]');
  await view.locator('textarea[name="value"]').waitFor();
  assert.equal(await view.locator('textarea[name="value"]').inputValue(), '{"id": "42"}');
  await shoot('state');
  await view.locator('textarea[name="value"]').fill('{"id": "43"}');
  await view.locator('button:text("Save")').click();
  await page.waitForSelector('.toast:has-text("Saved last:acme")');
  const saved = await fetch(`${base}/v1/kv/counts/keys/last:acme`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(await saved.text(), '{"id": "43"}');
  await view.locator('button:text("Delete")').click();
  await page.click('#confirm-ok');
  await page.waitForSelector('.toast:has-text("Deleted last:acme")');
  await page.waitForSelector('main :text(\'No keys start with "last:".\')');
  const gone = await fetch(`${base}/v1/kv/counts/keys/last:acme`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(gone.status, 404);
  assert.deepEqual(problems, []);
}));

test('a read-only token is offered nothing it may not do', { timeout: 60_000 }, guarded(async () => {
  const read = await call('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] });
  await page.click('#sign-out');
  await page.fill('#token', read.token);
  await page.click('button:text("Sign in")');
  await page.waitForSelector('#who-name:has-text("viewer")');
  await open('queues');
  await page.waitForSelector('[data-queue="orders"]');
  assert.equal(await page.locator('[data-test="create-queue"]').count(), 0);
  await page.click('a.queue-name:text-is("orders")');
  await page.waitForSelector('[data-test="settings"]');
  assert.equal(await page.locator('button:text("Purge queue")').count(), 0);
  assert.equal(await page.locator('button:text("Save settings")').count(), 0);
  assert.equal(await page.locator('[data-test="send"]').count(), 0);
  await open('functions/flaky');
  await page.waitForSelector('[data-test="versions"]');
  assert.equal(await page.locator('main button:has-text("Roll back")').count(), 0);
  assert.equal(await page.locator('main button:text("Pause")').count(), 0);
  // Schedules are listed (nightly-report, left by the schedules test), with no form or buttons.
  await page.click('nav a:text("Schedules")');
  await page.waitForSelector('tr[data-schedule="nightly-report"]');
  assert.equal(await page.locator('[data-test="put-schedule"]').count(), 0);
  assert.equal(await page.locator('main button').count(), 0);
  // Topics too (events, left by the topics test).
  await page.click('nav a:text("Topics")');
  await page.waitForSelector('section[data-topic="events"]');
  assert.equal(await page.locator('[data-test="create-topic"]').count(), 0);
  assert.equal(await page.locator('[data-test="subscribe"]').count(), 0);
  assert.equal(await page.locator('main button').count(), 0);
  // Buckets are browsed and values read (counts, left by the state test), never changed.
  await page.click('nav a:text("State")');
  await page.waitForSelector('tr[data-bucket="counts"]');
  assert.equal(await page.locator('[data-test="create-bucket"]').count(), 0);
  await page.click('tr[data-bucket="counts"] a:text("counts")');
  await page.click('[data-key="count:c07"]');
  await page.waitForSelector('[data-test="key-view"] pre.body:text("7")');
  assert.equal(await page.locator('main button:text("Save")').count(), 0);
  assert.equal(await page.locator('main button:text("Delete")').count(), 0);
  assert.deepEqual(problems, []);
}));
