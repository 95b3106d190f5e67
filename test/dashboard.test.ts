import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DASHBOARD_CSP, DASHBOARD_MISSING } from '../src/api/dashboard';
import { buildApi } from '../src/api/server';
import { SafetyStore } from '../src/db/safety-store';
import { ROLES, type Role, hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { ok, forceStatus } from './support/backends';
import { artifactPath, eventually, launchChromium } from './support/browser';
import { ENDPOINT, LifecycleRig } from './support/lifecycle-rig';
import { startDevServer } from './support/temporal';

// Globals of the page, for the functions that Playwright runs there (this file compiles without the DOM library).
declare const document: { querySelector(selector: string): { textContent: string | null } | null };
declare const window: Record<string, unknown>;
declare const location: { hash: string };

const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: 'dash-read-token-0123456789', operate: 'dash-operate-token-0123456789', admin: 'dash-admin-token-0123456789' };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-person`, role, sha256: hashToken(TOKENS[role]) }));
const TEMPORAL_UI = 'http://127.0.0.1:8233';

type Counters = Record<string, number>;
type Table = { ParameterNames: string[]; Records: unknown[][]; TotalRecords?: number };

/** The dashboard served by the real API (MariaDB, Temporal dev server, worker), driven in headless Chromium. */
describe('dashboard in headless Chromium [mariadb]', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  let base: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Console errors and page errors (a CSP violation shows up here): none is expected. */
  const problems: string[] = [];
  const live: number[] = [];

  const api = async <T>(path: string, init: { token?: string; method?: string; body?: unknown } = {}): Promise<T> => {
    const res = await fetch(`${base}/api/v1${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${init.token ?? TOKENS.read}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
      body: init.body ? JSON.stringify(init.body) : undefined,
    });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };

  /** Posts to a VM route of `instanceID` with its VM token. */
  const vmCall = async (instanceID: number, what: string, body: unknown) => {
    const res = await app.inject({ method: 'POST', url: `/api/v1/vms/${instanceID}/${what}`, headers: { authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, instanceID)}` }, payload: body as object });
    assert.equal(res.statusCode, 200, res.body);
  };

  /** A Running instance with a real workflow, a few heartbeats and IPs. */
  async function runningInstance(n: number): Promise<number> {
    const { instanceID } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    await vmCall(instanceID, 'running', { publicIP: `192.0.2.${n}`, privateIP: `10.0.0.${n}` });
    for (let i = 1; i <= 3; i++) await vmCall(instanceID, 'heartbeat', { load: 0.4 * i * n, jobs: i + n, transferredFiles: 10 * i, transferredBytes: 2_000_000 * i, uptime: 60 * i });
    await rig.waitForStatus(instanceID, 'Running');
    return instanceID;
  }

  /** Instance rows without workflows across endpoints and pods, with past Running history (the plot's data). */
  async function fleetRows(): Promise<void> {
    const endpoints = ['Cloud::cern.ch', 'Cloud::in2p3.fr', ENDPOINT];
    const statuses = ['Running', 'Running', 'Running', 'Halted', 'Stalled', 'New', 'Error', 'Running'];
    const now = Date.now();
    for (let i = 0; i < 32; i++) {
      const endpoint = endpoints[i % endpoints.length];
      const id = ok(await rig.db.insertInstance(`uid-${i}-${process.pid}`, 'test-image', `fleet-${i}`, endpoint, i % 4 === 0 ? 'lhcb' : 'testvo'));
      const status = statuses[i % statuses.length];
      if (status !== 'New') await forceStatus(rig.db, id, status);
      // Running rows every 15 minutes over some hours of the past day, a different stretch per instance,
      // all within the last 20 hours: none falls out of the 24-hour span while the test runs.
      const from = (i * 37) % 12;
      for (let h = from; h < from + 4 + (i % 5); h++) {
        for (const quarter of [0, 1, 2, 3]) {
          const at = new Date(now - (h * 3600 + quarter * 900) * 1000).toISOString().slice(0, 19).replace('T', ' ');
          ok(await rig.db._query('INSERT INTO `vm_History` (`InstanceID`, `Status`, `Load`, `Jobs`, `TransferredFiles`, `TransferredBytes`, `Update`) VALUES (?, ?, ?, ?, ?, ?, ?)', [id, 'Running', 1, 2, 3, 4, at]));
        }
      }
    }
  }

  async function signIn(token: string): Promise<void> {
    await page.goto(`${base}/`);
    await page.fill('input[name=token]', token);
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('body[data-page=overview][data-refreshed-at]');
  }

  /** Opens a page by its address (hash) and waits for its first data. */
  async function open(hash: string, pageName: string): Promise<void> {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.waitForSelector(`body[data-page=${pageName}][data-refreshed-at]`);
  }

  /** The instance page's operator actions, without their time: operator, action, outcome, detail. */
  const auditRows = async () => (await page.$$eval('[data-testid=audit-entries] tr', (rows) => rows.map((row) => [...row.querySelectorAll('td')].map((td) => (td.textContent ?? '').trim())))).map((cells) => cells.slice(1));
  const texts = (selector: string) => page.$$eval(selector, (els) => els.map((el) => (el.textContent ?? '').trim()));
  const shot = (name: string) => page.screenshot({ path: artifactPath('dashboard', `${name}.png`), fullPage: true });

  before(async function () {
    rmSync(artifactPath('dashboard'), { recursive: true, force: true }); // this run's screenshots only
    browser = await launchChromium(); // first: a missing Chromium fails fast, with how to get it
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET, { temporalUi: { url: TEMPORAL_UI, namespace: 'default' } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
    live.push(await runningInstance(1), await runningInstance(2));
    await fleetRows();
  });

  beforeEach(async function () {
    context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    page = await context.newPage();
    page.on('console', (message) => message.type() === 'error' && problems.push(`console: ${message.text()}`));
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') await shot(`failed-${this.currentTest.title.replace(/\W+/g, '-')}`).catch(() => undefined);
    await context?.close();
    const seen = problems.splice(0);
    assert.deepEqual(seen, [], 'no console errors, page errors or CSP violations');
  });

  after(async function () {
    await browser?.close();
    await rig?.tearDown();
    await env?.teardown();
  });

  it('serves the page shell to anyone, with a self-only Content-Security-Policy; the data needs a token', async function () {
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(res.headers.get('content-security-policy'), DASHBOARD_CSP);
    assert.match(DASHBOARD_CSP, /script-src 'self'(;|$)/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    const html = await res.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing loaded from elsewhere');
    const script = /<script[^>]*src="([^"]+)"/.exec(html)?.[1];
    assert.ok(script, 'the bundle');
    const asset = await fetch(`${base}${script}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    assert.equal((await fetch(`${base}/api/v1/me`)).status, 401);
  });

  it('GET /api/v1/me tells the role and whether it may stop instances', async function () {
    for (const role of ROLES) {
      const me = await api<{ name: string; role: string; mayOperate: boolean; temporalUi: boolean }>('/me', { token: TOKENS[role] });
      assert.deepEqual(me, { name: `${role}-person`, role, mayOperate: role !== 'read', temporalUi: true });
    }
    const vm = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, live[0])}` } });
    assert.equal(vm.status, 403);
  });

  it('refuses a wrong token, keeps the right one in the tab only, and forgets it on sign-out', async function () {
    await page.goto(`${base}/`);
    await page.fill('input[name=token]', 'not-a-token');
    await page.click('form.signin button[type=submit]');
    await page.waitForFunction(() => document.querySelector('[data-testid=signin-message]')?.textContent === 'This token was refused.');
    problems.splice(0); // the browser logs the refused call (401) as a console error: expected here
    await signIn(TOKENS.read);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vmdb.token')), TOKENS.read);
    assert.equal(await page.evaluate(() => localStorage.length === 0 || !Object.values(localStorage).includes(sessionStorage.getItem('vmdb.token')!)), true);
    assert.ok(!page.url().includes(TOKENS.read), 'never in the address');
    assert.equal((await texts('#who'))[0], 'read-person · read');
    await page.click('#sign-out');
    await page.waitForSelector('body[data-page=signin]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vmdb.token')), null);
  });

  it('overview: the counters by status, endpoint, image and pod are the API’s', async function () {
    await signIn(TOKENS.read);
    const byStatus = await api<Counters>('/instances/counters?groupBy=Status');
    for (const status of ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running', 'Stopping', 'Halted', 'Stalled', 'Error']) {
      assert.equal((await texts(`[data-testid=count-Status-${status}]`))[0], String(byStatus[status] ?? 0), status);
    }
    assert.equal((await texts('[data-testid=count-total]'))[0], String(Object.values(byStatus).reduce((a, b) => a + b, 0)));
    assert.ok(byStatus.Running >= 2 && byStatus.Halted >= 1, 'the data has several statuses');

    const images = await api<Table>('/images');
    const nameOf = new Map(images.Records.map((r) => [String(r[images.ParameterNames.indexOf('VMImageID')]), String(r[images.ParameterNames.indexOf('Name')])]));
    for (const [key, rename] of [['Endpoint', (v: string) => v], ['RunningPod', (v: string) => v], ['VMImageID', (v: string) => nameOf.get(v)!]] as const) {
      const expected = Object.entries(await api<Counters>(`/instances/counters?groupBy=${key}`))
        .map(([value, n]) => [rename(value), String(n)])
        .sort(([a], [b]) => a.localeCompare(b));
      const shown = await page.$$eval(`[data-testid=group-${key}] tr[data-value]`, (rows) => rows.map((r) => [r.getAttribute('data-value'), r.querySelector('.num')?.textContent]));
      assert.deepEqual(shown, expected, key);
    }
    assert.ok((await page.$$('.chart canvas')).length > 0, 'the plot is drawn');
    await shot('overview');
  });

  it('overview: the running-instances plot has the API’s buckets, per endpoint, for the span and bucket chosen', async function () {
    await signIn(TOKENS.read);
    const shownData = () =>
      page.$$eval('[data-testid=running-data] tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    const expectedData = async (timespan: number, bucketSize: number) => {
      const { Records } = await api<{ Records: [number, string, number][] }>(`/history/running?timespan=${timespan}&bucketSize=${bucketSize}&groupBy=endpoint`);
      return Records.map(([t, e, n]) => [new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'), e, String(n)]);
    };
    const day = await expectedData(86400, 900);
    assert.ok(day.length > 10 && new Set(day.map(([, e]) => e)).size >= 3, 'several buckets and endpoints');
    assert.deepEqual(await shownData(), day);
    await page.selectOption('select[name=span]', '0');
    await page.selectOption('select[name=bucket]', '3600');
    const all = await expectedData(0, 3600);
    assert.notDeepEqual(all, day);
    await eventually(async () => assert.deepEqual(await shownData(), all));
  });

  it('instances: the table, its filters, sort and paging are the API’s getInstancesContent', async function () {
    await signIn(TOKENS.read);
    await open('#/instances', 'instances');
    const ids = () => page.$$eval('[data-testid=instances-rows] tr[data-instance]', (rows) => rows.map((r) => Number(r.getAttribute('data-instance'))));
    const apiIds = async (query: string) => {
      const content = await api<Table>(`/instances?${query}`);
      return { ids: content.Records.map((r) => r[content.ParameterNames.indexOf('inst.InstanceID')] as number), total: content.TotalRecords! };
    };

    let expected = await apiIds('sort=inst.InstanceID:DESC&start=0&limit=50');
    assert.deepEqual(await ids(), expected.ids);
    assert.match((await texts('[data-testid=instances-range]'))[0], new RegExp(`of ${expected.total}$`));

    await page.selectOption('select[name="inst.Status"]', 'Running');
    expected = await apiIds('inst.Status=Running&sort=inst.InstanceID:DESC&start=0&limit=50');
    await eventually(async () => assert.deepEqual(await ids(), expected.ids));
    assert.ok(expected.ids.length >= 2);

    await page.fill('input[name="inst.Endpoint"]', 'Cloud::cern.ch');
    await page.press('input[name="inst.Endpoint"]', 'Enter');
    expected = await apiIds('inst.Status=Running&inst.Endpoint=Cloud::cern.ch&sort=inst.InstanceID:DESC&start=0&limit=50');
    await eventually(async () => assert.deepEqual(await ids(), expected.ids));
    assert.ok(expected.ids.length >= 1);
    assert.match(page.url(), /inst\.Endpoint=Cloud%3A%3Acern\.ch/, 'the filters are in the address, for a bookmark');

    await page.selectOption('select[name="inst.Status"]', '');
    await page.fill('input[name="inst.Endpoint"]', '');
    await page.press('input[name="inst.Endpoint"]', 'Enter');
    await page.click('button.sort[data-field="inst.Endpoint"]');
    expected = await apiIds('sort=inst.Endpoint:ASC&start=0&limit=50');
    await eventually(async () => assert.deepEqual(await ids(), expected.ids));

    await page.selectOption('select[name=size]', '25');
    const first = await api<Table & { Next: string | null; TotalExact: boolean }>('/instances?sort=inst.Endpoint:ASC&limit=25');
    const firstIds = first.Records.map((r) => r[first.ParameterNames.indexOf('inst.InstanceID')] as number);
    await eventually(async () => assert.deepEqual(await ids(), firstIds));
    assert.equal(first.TotalExact, true);
    assert.ok(first.Next, 'more than one page');
    // Next follows the API's cursor (not an offset), and the range counts from the pages walked.
    const asked: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/instances?')) asked.push(r.url());
    });
    await page.click('.pager button:has-text("Next")');
    expected = await apiIds(`sort=inst.Endpoint:ASC&after=${encodeURIComponent(first.Next!)}&limit=25`);
    assert.deepEqual(expected.ids, (await apiIds('sort=inst.Endpoint:ASC&start=25&limit=25')).ids, 'the cursor page is the offset page');
    await eventually(async () => assert.deepEqual(await ids(), expected.ids));
    assert.match((await texts('[data-testid=instances-range]'))[0], new RegExp(`^26–${25 + expected.ids.length} of ${expected.total}$`));
    assert.ok(asked.some((url) => new URL(url).searchParams.get('after') === first.Next), `the next page was asked by cursor: ${JSON.stringify(asked)}`);
    // Previous goes back through the cursors seen, to the first page.
    await page.click('.pager button:has-text("Previous")');
    await eventually(async () => assert.deepEqual(await ids(), firstIds));
    assert.match((await texts('[data-testid=instances-range]'))[0], new RegExp(`^1–25 of ${expected.total}$`));
    assert.equal(await page.isDisabled('.pager button:has-text("Previous")'), true);
    await shot('instances');
  });

  it('instance: its state, IPs, history plots and workflow link; no stop button for a read token', async function () {
    const id = live[0];
    // An action the read token may not take: refused, and on record for the instance.
    const refused = await fetch(`${base}/api/v1/instances/${id}/manual`, { method: 'PUT', headers: { authorization: `Bearer ${TOKENS.read}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 403);
    await signIn(TOKENS.read);
    await open(`#/instances/${id}`, 'instance');
    const detail = await api<{ Instance: Record<string, unknown>; Image: Record<string, unknown>; Workflow: { ID: string; UIUrl: string } }>(`/instances/${id}`);
    assert.equal((await texts('[data-testid=instance-status]'))[0], detail.Instance.Status);
    assert.equal((await texts('[data-testid=field-PublicIP]'))[0], detail.Instance.PublicIP);
    assert.equal((await texts('[data-testid=field-PrivateIP]'))[0], detail.Instance.PrivateIP);
    assert.equal((await texts('[data-testid=field-UniqueID]'))[0], detail.Instance.UniqueID);
    assert.equal((await texts('[data-testid=field-Jobs]'))[0], String(detail.Instance.Jobs));
    assert.equal((await texts('[data-testid=field-Image]'))[0], detail.Image.Name);
    assert.deepEqual(detail.Workflow, { ID: `vm-${id}`, UIUrl: `${TEMPORAL_UI}/namespaces/default/workflows/vm-${id}` });
    assert.equal(await page.getAttribute('[data-testid=workflow-link]', 'href'), detail.Workflow.UIUrl);

    const history = await api<Table>(`/instances/${id}/history`);
    const changes = history.Records.map((r) => r[0]).filter((s, i, all) => i === 0 || s !== all[i - 1]);
    assert.deepEqual(await texts('[data-testid=state-changes] tr td:nth-child(2)'), [...changes].reverse());
    assert.equal((await page.$$('.chart-grid .chart canvas')).length, 4, 'load, jobs, files and bytes');
    assert.equal(await page.isVisible('[data-testid=stop]'), false, 'read may not stop');
    const audit = await api<{ entries: { at: string; operator: string; action: string; message: string }[] }>(`/audit?instanceID=${id}`);
    assert.equal(audit.entries.length, 1);
    assert.deepEqual(await auditRows(), [['read-person', 'instance.manual.set', 'failed (403 forbidden)', audit.entries[0].message]]);
    assert.match(audit.entries[0].message, /needs operate/);
    await shot('instance-read');
  });

  it('stop: an operate token stops a Running instance through its workflow, after confirmation', async function () {
    await signIn(TOKENS.operate);
    const id = live[1];
    await open(`#/instances/${id}`, 'instance');
    assert.equal((await texts('[data-testid=instance-status]'))[0], 'Running');

    await page.click('[data-testid=stop]');
    await page.waitForSelector('dialog[open]');
    await shot('stop-confirm');
    await page.click('[data-testid=cancel-stop]');
    assert.equal(await rig.status(id), 'Running', 'cancel changes nothing');

    await page.click('[data-testid=stop]');
    await page.click('[data-testid=confirm-stop]');
    await page.waitForFunction(() => document.querySelector('[data-testid=instance-status]')?.textContent === 'Stopping');
    assert.equal((await texts('[data-testid=stop-note]'))[0], 'Stop requested: now Stopping');
    assert.equal(await rig.status(id), 'Stopping');
    assert.equal((await api<{ Instance: { Status: string } }>(`/instances/${id}`)).Instance.Status, 'Stopping');
    assert.equal(await page.isVisible('[data-testid=stop]'), false, 'nothing more to stop');
    // The stop is on the instance's record: who did it, and what it made of the instance.
    await eventually(async () => assert.deepEqual(await auditRows(), [['operate-person', 'instance.stop', 'succeeded', 'now Stopping']]));
    await shot('instance-stopped');
  });

  it('live refresh: a change made through the API shows without reloading the page', async function () {
    await signIn(TOKENS.read);
    await page.selectOption('#refresh-every', '1');
    await page.evaluate(() => (window.notReloaded = true));
    const before = await api<Counters>('/instances/counters?groupBy=Status');
    // A New instance without a workflow, stopped by an operator through the API: it is Halted at once.
    const target = ok(await rig.db.insertInstance('', 'test-image', 'to-halt', ENDPOINT, 'testvo'));
    await eventually(async () => assert.equal((await texts('[data-testid=count-Status-New]'))[0], String((before.New ?? 0) + 1)));
    const stop = await api<{ results: Record<string, { OK: boolean }> }>('/instances/stop', { method: 'POST', token: TOKENS.operate, body: { instanceIDs: [target] } });
    assert.equal(stop.results[target].OK, true);
    await eventually(async () => {
      assert.equal((await texts('[data-testid=count-Status-Halted]'))[0], String((before.Halted ?? 0) + 1));
      assert.equal((await texts('[data-testid=count-Status-New]'))[0], String(before.New ?? 0));
    });
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the same page, not a reload');
  });

  it('fleet control: mode, paused and backed-off endpoints with reasons, demand and target, held stalls, guards and VM-hours are the API’s', async function () {
    const store = SafetyStore.of(rig.db);
    await store.setMode('no-launch');
    await store.pauseEndpoint('Cloud::cern.ch', 'network maintenance');
    await store.recordIdleBackoff('Cloud::in2p3.fr', new Date(Date.now() - 60_000), new Date(Date.now() + 3_600_000), 'instance 7 halted idle 120 s after boot (under 600 s)');
    await store.recordDemand('Cloud::in2p3.fr', null, 0, 'demand URL answered HTTP 500');
    await store.recordDemand(ENDPOINT, 12, 3, '');
    await store.setMark('guard:endpoint:Cloud::cern.ch', 'tripped');
    await store.setMark('outage:worker', 'down since a while ago');
    try {
      await signIn(TOKENS.read);
      await open('#/fleet', 'fleet');
      const safety = await api<{ mode: string; stallsHeld: string | null; endpoints: { endpoint: string; demand: number | null; target: number | null; demandAt: string | null }[] }>('/safety');
      assert.equal((await texts('[data-testid=fleet-mode]'))[0], safety.mode);
      assert.equal(safety.mode, 'no-launch');
      const alerts = await texts('[data-testid=safety-alerts] li');
      assert.ok(safety.stallsHeld, 'the outage holds stalls');
      assert.ok(alerts.includes(`Stalls held: ${safety.stallsHeld}`), alerts.join('\n'));
      assert.ok(alerts.some((a) => /^Guard tripped for endpoint:Cloud::cern\.ch since .*: too many Running instances are silent/.test(a)));
      assert.ok(alerts.includes('Cloud::cern.ch paused: network maintenance'));
      assert.ok(alerts.some((a) => /^Cloud::in2p3\.fr backing off: until .*: instance 7 halted idle 120 s after boot \(under 600 s\)$/.test(a)));
      assert.ok(alerts.includes('Cloud::in2p3.fr: demand source failed: demand URL answered HTTP 500'));

      const rows = await page.$$eval('[data-testid=endpoint-state] tr[data-endpoint]', (trs) => trs.map((tr) => [tr.getAttribute('data-endpoint'), tr.getAttribute('data-state'), ...[...tr.querySelectorAll('td')].slice(3, 5).map((td) => td.textContent)]));
      assert.deepEqual(
        rows,
        safety.endpoints.map((e) => [e.endpoint, e.endpoint === 'Cloud::cern.ch' ? 'paused' : e.endpoint === 'Cloud::in2p3.fr' ? 'backing off' : 'launching', e.demand === null ? (e.demandAt ? 'unknown' : '—') : String(e.demand), e.target === null ? '—' : String(e.target)]),
      );
      assert.deepEqual(rows.find((r) => r[0] === ENDPOINT), [ENDPOINT, 'launching', '12', '3']);

      const usage = await api<{ totals: { endpoint: string; image: string; pod: string; vmHours: number }[] }>('/usage');
      assert.ok(usage.totals.length >= 3 && usage.totals.every((t) => t.vmHours > 0), 'the fleet rows give VM-hours');
      const shownUsage = await page.$$eval('[data-testid=usage-totals] tr[data-endpoint]', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent)));
      assert.deepEqual(shownUsage, usage.totals.map((t) => [t.endpoint, t.image, t.pod, t.vmHours.toFixed(2)]));
      assert.ok((await page.$$('.fleet .chart canvas')).length > 0, 'the VM-hours plot is drawn');
      await shot('fleet');
    } finally {
      await store.setMode('normal');
      for (const endpoint of ['Cloud::cern.ch', 'Cloud::in2p3.fr']) await store.resumeEndpoint(endpoint);
      await store.deleteMark('guard:endpoint:Cloud::cern.ch');
      await store.deleteMark('outage:worker');
    }
  });
});

describe('dashboard without a build', function () {
  it('answers / with 503 and says how to build it; the API still works', async function () {
    const empty = mkdtempSync(join(tmpdir(), 'vmdb-noweb-'));
    const app = await buildApi({ db: {} as never, lifecycle: {} as never, operators: [], tokenSecret: newSecret(), dashboardDir: empty });
    try {
      const res = await app.inject({ method: 'GET', url: '/' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.body.trim(), DASHBOARD_MISSING);
      assert.equal(res.headers['content-security-policy'], DASHBOARD_CSP);
      assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
