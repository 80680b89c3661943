// The dashboard in a real browser: headless Debian chromium driven by playwright-core,
// against a real ckptd (with an auth file: an admin and a reader) whose job is worked by
// Python SDK workers (dashboard_fixture.py). Run by tools/test.sh (suite "web"):
//
//   CKPTD=bazel-bin/service/server/ckptd FIXTURE=bazel-bin/tests/web/dashboard_fixture \
//   CKPT_WEB_OUT=/tmp/shots node --test tests/web/dashboard.test.mjs
//
// Every wait is for a condition on the page or on ckptd (Playwright's waitFor and
// expect-style polling), never a fixed sleep. Screenshots go to $CKPT_WEB_OUT; with
// CKPT_WEB_DOCS_PNG=docs/dashboard-job.png the job page's is written there too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const CKPTD = process.env.CKPTD;
const FIXTURE = process.env.FIXTURE;
const OUT = process.env.CKPT_WEB_OUT || mkdtempSync(join(tmpdir(), 'ckpt-web-out-'));
const DOCS_PNG = process.env.CKPT_WEB_DOCS_PNG || '';
const JOB = 'curate-2026-02-14';
// Test tokens start with ckpt-test-secret-: the secrets suite of tools/test.sh looks for
// them in every log, this suite's included.
const ADMIN = 'ckpt-test-secret-dashboard-admin';
const READER = 'ckpt-test-secret-dashboard-reader';
const PATIENCE = 60_000; // bounds a broken build; conditions end every wait
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const count = (text) => Number(String(text).replace(/[^0-9.]/g, ''));

let ckptd;
let fixture;
let browser; // a persistent context: one fresh profile
let base;
let shots = 0;
const pageErrors = []; // uncaught errors of the dashboard's script: none expected

// A child process whose stderr lines are kept and can be waited for.
function start(command, args) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.lines = [];
  child.waiters = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    child.lines.push(line);
    for (const w of child.waiters.slice()) {
      const m = line.match(w.pattern);
      if (m) { child.waiters.splice(child.waiters.indexOf(w), 1); w.resolve(m); }
    }
  });
  child.awaitLine = (pattern) => new Promise((resolve, reject) => {
    for (const line of child.lines) { const m = line.match(pattern); if (m) return resolve(m); }
    child.waiters.push({ pattern, resolve });
    child.once('exit', (code) => reject(new Error(`${command} exited ${code}:\n${child.lines.join('\n')}`)));
  });
  return child;
}

// Sends one command to the fixture and returns its answer.
let answers;
function ask(cmd, fields = {}) {
  fixture.stdin.write(`${JSON.stringify({ cmd, ...fields })}\n`);
  return answers.next().then(({ value }) => {
    const answer = JSON.parse(value);
    if (!answer.ok) throw new Error(`fixture ${cmd}: ${answer.error}`);
    return answer;
  });
}

// Polls ckptd (through the fixture) until `check` holds for GetJob's job.
async function awaitJob(check) {
  const deadline = Date.now() + PATIENCE;
  for (;;) {
    const job = (await ask('get_job', { job: JOB })).job;
    if (check(job)) return job;
    if (Date.now() > deadline) throw new Error(`job never got there: ${JSON.stringify(job.progress)}`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // between polls of ckptd
  }
}

async function shot(page, name) {
  const path = join(OUT, `${String(++shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

// A tab signed in with `token` through the page's own sign-in dialog. The token lives in
// the tab's sessionStorage, so tabs of one profile are signed in apart.
async function signedIn(token) {
  const page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(error));
  await page.goto(base);
  await page.locator('#login-token').fill(token);
  await page.locator('#login-submit').click();
  await page.getByTestId('role').waitFor();
  return { page };
}

before(async () => {
  assert.ok(CKPTD && FIXTURE, 'set CKPTD and FIXTURE (tools/test.sh does)');
  mkdirSync(OUT, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-web-'));
  const authFile = join(dir, 'auth');
  writeFileSync(authFile, `ops admin token_sha256=${sha256(ADMIN)}\nviewer reader token_sha256=${sha256(READER)}\n`, { mode: 0o600 });
  ckptd = start(CKPTD, ['--listen=127.0.0.1:0', '--http_listen=127.0.0.1:0', `--data_dir=${join(dir, 'data')}`,
    `--auth_file=${authFile}`, '--shutdown_grace=2s']);
  const grpcAddress = (await ckptd.awaitLine(/serving on (\S+), data in/))[1];
  base = (await ckptd.awaitLine(/dashboard on (http:\/\/\S+\/)/))[1];
  fixture = spawn(FIXTURE, ['--address', grpcAddress, '--token', ADMIN], { stdio: ['pipe', 'pipe', 'inherit'] });
  answers = createInterface({ input: fixture.stdout })[Symbol.asyncIterator]();
  await ask('start', {
    job: JOB, items: 20000, workers: 3, work_ms: 20,
    fail: { 13: 'corrupt header: bad magic 0x00000000', 17: 'timeout reading shard from s3://raw' },
  });
  // A fresh profile directory (Playwright's way of passing --user-data-dir).
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'ckpt-chromium-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1500, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  assert.deepEqual(pageErrors.map(String), []);
  if (browser) await browser.close();
  if (fixture) { fixture.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n'); await new Promise((r) => fixture.once('exit', r)); }
  if (ckptd) { ckptd.kill('SIGTERM'); await new Promise((r) => ckptd.once('exit', r)); }
  console.log(`# screenshots in ${OUT}`);
});

let admin;

test('the jobs list shows the job, running', async () => {
  admin = await signedIn(ADMIN);
  const row = admin.page.locator(`[data-testid="job-row"][data-job-id="${JOB}"]`);
  await row.waitFor();
  assert.equal(await row.getByTestId('status').innerText(), 'RUNNING');
  await admin.page.getByTestId('filter-PAUSED').click();
  await admin.page.getByText('No jobs match.').waitFor();
  await admin.page.getByTestId('filter-RUNNING').click();
  await row.waitFor();
  await shot(admin.page, 'jobs-list');
});

test('the job page follows the running job; pause from the page pauses it', async () => {
  const { page } = admin;
  await page.locator(`[data-testid="job-row"][data-job-id="${JOB}"]`).click();
  await page.getByTestId('job-status').getByText('RUNNING').waitFor();
  // Failures of both kinds and a throughput curve: what a team would look at.
  await page.locator('[data-testid="error-group"]').nth(1).waitFor({ timeout: PATIENCE });
  // A throughput curve of a dozen points before the picture is taken.
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid="throughput-chart"]').dataset.points) >= 12,
    null, { timeout: PATIENCE });
  await page.locator('[data-testid="workers"]').waitFor();
  const running = await shot(page, 'job-running');
  if (DOCS_PNG) copyFileSync(running, DOCS_PNG);

  await page.getByTestId('action-pause').click();
  await page.getByTestId('job-status').getByText('PAUSED').waitFor();
  const job = await awaitJob((j) => j.status === 'JOB_STATUS_PAUSED');
  assert.equal(job.statusReason, 'paused from the dashboard');
  await page.getByTestId('action-resume').waitFor();
});

test("the job page's numbers equal GetJob's", async () => {
  const { page } = admin;
  // Paused: workers finish the items in hand, then nothing moves.
  const job = await awaitJob((j) => Number(j.progress.leased || 0) === 0);
  const p = job.progress;
  await page.waitForFunction((leased) => document.querySelector('[data-testid="stat-leased"]').textContent === leased, '0');
  const shown = async (id) => count(await page.getByTestId(id).innerText());
  assert.equal(await shown('stat-total'), Number(p.total));
  assert.equal(await shown('stat-completed'), Number(p.completed || 0));
  assert.equal(await shown('stat-failed'), Number(p.failed || 0));
  assert.equal(await shown('stat-pending'), Number(p.pending || 0));
  assert.equal(await shown('stat-leased'), 0);
  assert.equal(await shown('stat-percent'), Number(Number(p.percent).toFixed(1)));
  assert.equal(await page.getByTestId('stat-workers').innerText(), String(p.activeWorkers || 0));
  await shot(page, 'job-paused');
});

test('a completion made through gRPC shows on the open page within a second', async () => {
  const { page } = admin;
  const before = count(await page.getByTestId('stat-completed').innerText());
  const { index } = await ask('pending', { job: JOB });
  const { outcomes } = await ask('complete', { job: JOB, index });
  assert.deepEqual(outcomes, ['COMPLETION_OUTCOME_COMPLETED']);
  const answered = Date.now();
  // No reload: the event stream brings it.
  await page.waitForFunction(
    (want) => Number(document.querySelector('[data-testid="stat-completed"]').textContent.replace(/,/g, '')) === want,
    before + 1, { timeout: 1000 });
  console.log(`# the completion showed ${Date.now() - answered} ms after CompleteItems returned`);
  await page.locator('[data-testid="recent-completions"]').getByText(`#${index}`, { exact: true }).first().waitFor({ timeout: 1000 });
});

test('the retry button of an error group resets exactly that group', async () => {
  const { page } = admin;
  const failed = (await ask('failed', { job: JOB })).items;
  const timeout = 'timeout reading shard from s3://raw';
  const ofGroup = failed.filter((f) => f.message === timeout);
  const others = failed.filter((f) => f.message !== timeout);
  assert.ok(ofGroup.length > 0 && others.length > 0, JSON.stringify(failed.slice(0, 5)));
  const group = page.locator(`[data-testid="error-group"][data-message="${timeout}"]`);
  assert.equal(count(await group.getByTestId('error-count').innerText()), ofGroup.length);
  await group.getByTestId('retry-group').click();
  await group.waitFor({ state: 'detached' });
  const after = (await ask('failed', { job: JOB })).items;
  assert.deepEqual(after, others); // ListItems: that group gone, every other failed item as it was
  const job = (await ask('get_job', { job: JOB })).job;
  assert.equal(Number(job.progress.failed), others.length);
  await shot(page, 'job-after-retry');
});

test('a search finds a job by id and an item by output path', async () => {
  const { page } = admin;
  await page.locator('#search-input').fill('s3://curated/part-00001.parquet');
  await page.locator('#search-input').press('Enter');
  await page.getByTestId('item-outputs').getByText('s3://curated/part-00001.parquet').waitFor();
  assert.equal(await page.getByTestId('item-state').innerText(), 'COMPLETED');
  await shot(page, 'item');
  await page.locator('#search-input').fill(JOB);
  await page.locator('#search-input').press('Enter');
  await page.getByTestId('job-id').getByText(JOB).waitFor();
});

test("a reader's page has no action buttons, and its direct POST is refused 403", async () => {
  const reader = await signedIn(READER);
  const { page } = reader;
  assert.equal(await page.getByTestId('role').innerText(), 'reader');
  await page.goto(`${base}#/jobs/${JOB}`);
  await page.getByTestId('job-status').getByText('PAUSED').waitFor();
  await page.locator('[data-testid="error-group"]').first().waitFor();
  await page.locator('[data-testid="workers"]').waitFor();
  assert.equal(await page.locator('[data-testid^="action-"]').count(), 0);
  assert.equal(await page.locator('[data-testid="retry-group"]').count(), 0);
  const status = await page.evaluate(async ([job, token]) => {
    const res = await fetch(`/api/v1/jobs/${job}/resume`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    return res.status;
  }, [JOB, READER]);
  assert.equal(status, 403);
  assert.equal((await ask('get_job', { job: JOB })).job.status, 'JOB_STATUS_PAUSED');
  await shot(page, 'reader');
  await page.close();
});
