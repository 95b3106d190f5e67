import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createDirectorActivities } from '../activities/director';
import { createSafetyActivities } from '../activities/safety';
import { vmTokenOf } from './support/vm-tokens';
import { SafetyStore } from '../src/db/safety-store';
import { stateQuery } from '../workflows/definitions';
import { forceStatus, ok } from './support/backends';
import { ENDPOINT, LifecycleRig, maybeRecordHistory } from './support/lifecycle-rig';
import { startTimeSkippingServer } from './support/temporal';

const STALL = 2400;
const BEAT = { load: 1, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 1 };

/** The status changes of an instance's history (each heartbeat adds a row of the same status). */
function changes(history: string[]): string[] {
  return history.filter((status, i) => i === 0 || history[i - 1] !== status);
}

/** The record keeps whole seconds: a planned shutdown is announced to the second (never later than planned). */
const toSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString();

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('fleet safety in the life cycle (time-skipping server) [mariadb]', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let failureFile: string;

  before(async function () {
    env = await startTimeSkippingServer();
    failureFile = join(require('node:os').tmpdir(), `vmdb-failure-${process.pid}-${Date.now()}`);
    rig = new LifecycleRig(env, { maxInstances: 1, driver: { failureFile }, safety: { backoff: { initialSeconds: 600, maxSeconds: 3600 } } });
    await rig.setUp();
  });
  after(async function () {
    rmSync(failureFile, { force: true });
    await rig?.tearDown();
    await env?.teardown();
  });

  const store = () => SafetyStore.of(rig.db);
  /** Earlier tests leave instances whose workflows were terminated: retire them so they hold no slot. */
  async function retireAll(): Promise<void> {
    ok(await rig.db._query("UPDATE `vm_Instances` SET `Status` = 'Halted' WHERE `Status` <> 'Halted'"));
  }
  const director = () =>
    createDirectorActivities({ db: rig.db, client: env.client, taskQueue: rig.taskQueue, endpoints: rig.fleet.endpoints, drivers: rig.drivers, safety: rig.fleet.safety });

  async function runningInstance(overrides: Parameters<LifecycleRig['launch']>[0] = {}) {
    const launched = await rig.launch({ stallingIntervalSeconds: STALL, ...overrides });
    await rig.waitForStatus(launched.instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(launched.instanceID);
    assert.equal(ok(await rig.heartbeat(uniqueID, BEAT)), 'ok');
    return { ...launched, uniqueID };
  }

  it('lifetime: the reply announces the shutdown, the instance is drained at its end and halted at the drain deadline', async function () {
    const { instanceID, handle, uniqueID } = await runningInstance({ maxLifetimeSeconds: 600, drainDeadlineSeconds: 300 });
    const { startedAt } = await handle.query(stateQuery);
    const first = ok(await rig.heartbeatWithNotice(uniqueID, BEAT));
    assert.deepEqual(first, { directive: 'ok', shutdownAt: toSecond(startedAt + 900_000) });

    await env.sleep('650s');
    assert.equal(await rig.status(instanceID), 'Stopping');
    const { stopRequestedAt } = await handle.query(stateQuery);
    assert.ok(stopRequestedAt! >= startedAt + 600_000);
    // Still reporting (draining long jobs): told to stop, with the drain deadline as the shutdown time.
    assert.deepEqual(ok(await rig.heartbeatWithNotice(uniqueID, BEAT)), { directive: 'stop', shutdownAt: toSecond(stopRequestedAt! + 300_000) });
    await env.sleep('200s');
    assert.equal(ok(await rig.heartbeat(uniqueID, BEAT)), 'stop');
    assert.equal(await rig.status(instanceID), 'Stopping');

    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    const { closeTime } = await handle.describe();
    assert.ok(closeTime!.getTime() >= stopRequestedAt! + 300_000, 'halted at the drain deadline, not before');
    assert.ok(closeTime!.getTime() < stopRequestedAt! + STALL * 1000, 'halted by the drain deadline, not by silence');
    await maybeRecordHistory(handle, 'v2-safety-drain-deadline');
    assert.deepEqual(changes(await rig.history(instanceID)), ['New', 'Submitted', 'Running', 'Stopping', 'Halted']);
  });

  it('the VM heartbeat route answers the planned shutdown time', async function () {
    const { instanceID, handle } = await runningInstance({ maxLifetimeSeconds: 3600, drainDeadlineSeconds: 600 });
    const { startedAt } = await handle.query(stateQuery);
    const app = await rig.api([], 's'.repeat(32));
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/vms/${instanceID}/heartbeat`,
      headers: { authorization: `Bearer ${await vmTokenOf(rig.db, 's'.repeat(32), instanceID)}` },
      payload: BEAT,
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { directive: 'ok', shutdownAt: toSecond(startedAt + 4200_000) });
    await rig.terminate(handle);
  });

  it('no lifetime, no notice: the reply is the bare directive; reported transfers reach the history plots', async function () {
    const { instanceID, handle, uniqueID } = await runningInstance();
    assert.deepEqual(ok(await rig.heartbeatWithNotice(uniqueID, BEAT)), { directive: 'ok' });
    await new Promise((r) => setTimeout(r, 1100)); // the next second: the next 1 s bucket
    ok(await rig.heartbeat(uniqueID, { ...BEAT, transferredFiles: 7, transferredBytes: 123_456 }));
    const plot = ok(await rig.db.getHistoryValues(1, { InstanceID: instanceID }, ['TransferredFiles', 'TransferredBytes']));
    const last = plot.Records.at(-1)!;
    const at = (name: string) => last[plot.ParameterNames.indexOf(name)];
    assert.deepEqual([at('TransferredFiles'), at('TransferredBytes')], [7, 123_456], 'increase since the first bucket');
    await rig.terminate(handle);
  });

  it('manual control: lifetime and stall wait while the flag is set and fire once it is cleared', async function () {
    const { instanceID, handle } = await runningInstance({ maxLifetimeSeconds: 600 });
    await store().setManual(instanceID, 'investigating');
    await env.sleep(`${STALL + 600}s`); // past the lifetime and the stall deadline
    assert.equal(await rig.status(instanceID), 'Running');
    const held = await handle.query(stateQuery);
    assert.match(held.heldBecause ?? '', /under manual control: investigating/);
    assert.ok(held.holdUntil! > Date.now() - 10 ** 9);

    await store().clearManual(instanceID);
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    await maybeRecordHistory(handle, 'v2-safety-manual-held');
    // Back under automatic control, silent for longer than the stalling interval: stalled and halted.
    assert.deepEqual(changes(await rig.history(instanceID)), ['New', 'Submitted', 'Running', 'Stalled', 'Halted']);
  });

  it('a failing endpoint is backed off with its reason in the Director status, and launches again once creation works', async function () {
    await retireAll();
    writeFileSync(failureFile, 'quota Instance limit reached\n');
    try {
      const [first] = await director().launchFreeSlots();
      assert.equal(first.held, undefined);
      assert.equal(first.reserved.length, 1);
      const [instanceID] = first.reserved;
      await waitUntil('a recorded failure', async () => (await store().endpoint(ENDPOINT)).failures >= 1);
      const health = await store().endpoint(ENDPOINT);
      assert.deepEqual([health.lastReason, health.lastMessage], ['quota', 'local driver (injected): Instance limit reached']);
      assert.ok(Date.parse(health.backoffUntil!) > Date.now() + 500_000);
      assert.equal(await rig.status(instanceID), 'New');

      const [second] = await director().launchFreeSlots();
      assert.deepEqual(second.reserved, []);
      assert.match(second.held!, /^backing off for \d+ s after \d+ failed creation\(s\), last quota: local driver \(injected\): Instance limit reached$/);

      const app = await rig.api([{ name: 'ops', role: 'admin', sha256: require('node:crypto').createHash('sha256').update('t'.repeat(32)).digest('hex') }], 's'.repeat(32));
      // GET /director shows the same beside the Schedules (which this test server lacks).
      const status = await app.inject({ method: 'GET', url: '/api/v1/safety', headers: { authorization: `Bearer ${'t'.repeat(32)}` } });
      assert.equal(status.statusCode, 200, status.body);
      const body = status.json();
      assert.equal(body.mode, 'normal');
      assert.deepEqual(
        body.endpoints.map((e: { endpoint: string; lastReason: string }) => [e.endpoint, e.lastReason]),
        [[ENDPOINT, 'quota']],
      );

      rmSync(failureFile);
      // The workflow's own retry of the creation succeeds: the endpoint is healthy again.
      await env.sleep('10m');
      await rig.waitForStatus(instanceID, 'Submitted');
      const healed = await store().endpoint(ENDPOINT);
      assert.deepEqual([healed.failures, healed.backoffUntil], [0, null]);
      const [third] = await director().launchFreeSlots();
      assert.equal(third.held, undefined);
      await env.client.workflow.getHandle(`vm-${instanceID}`).terminate('test done');
    } finally {
      rmSync(failureFile, { force: true });
    }
  });

  it('a manual pause holds launches until resumed; fleet modes: no-launch, drain (stop) and halt, sparing manual instances', async function () {
    await retireAll();
    await store().pauseEndpoint(ENDPOINT, 'maintenance window');
    const [paused] = await director().launchFreeSlots();
    assert.equal(paused.held, 'paused by an operator: maintenance window');
    await store().resumeEndpoint(ENDPOINT);

    await store().setMode('no-launch');
    assert.equal((await director().launchFreeSlots())[0].held, 'fleet mode is no-launch');

    const drained = await runningInstance();
    const kept = await runningInstance();
    await store().setManual(kept.instanceID, 'keep');
    await store().setMode('drain');
    const [drain] = await director().launchFreeSlots();
    assert.deepEqual(drain.stopped, [drained.instanceID]);
    assert.equal(await rig.status(drained.instanceID), 'Stopping');
    assert.equal(ok(await rig.heartbeat(drained.uniqueID, BEAT)), 'stop');
    assert.equal(await rig.status(kept.instanceID), 'Running');

    await store().setMode('halt');
    const [halt] = await director().launchFreeSlots();
    assert.deepEqual(halt.halted, [drained.instanceID]);
    assert.equal((await drained.handle.result()).status, 'Halted');
    assert.equal(await rig.status(kept.instanceID), 'Running');
    await store().setMode('normal');
    await store().clearManual(kept.instanceID);
    await rig.terminate(kept.handle);
  });

  it('the safety API: mode, endpoint pause and resume, manual control, with clear errors', async function () {
    const token = 'a'.repeat(32);
    const app = await rig.api([{ name: 'ops', role: 'admin', sha256: require('node:crypto').createHash('sha256').update(token).digest('hex') }], 's'.repeat(32));
    const call = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: object) => {
      const res = await app.inject({ method, url: `/api/v1${url}`, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
      return { status: res.statusCode, body: res.json() };
    };
    assert.equal((await call('PUT', '/safety/mode', { mode: 'panic' })).status, 400);
    assert.deepEqual(await call('PUT', '/safety/mode', { mode: 'no-launch' }), { status: 200, body: { mode: 'no-launch' } });
    assert.equal((await call('GET', '/safety')).body.mode, 'no-launch');
    assert.deepEqual(await call('PUT', '/safety/mode', { mode: 'normal' }), { status: 200, body: { mode: 'normal' } });

    const bad = await call('POST', '/safety/endpoints/no-site/pause', {});
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /must be "Site::CE"/);
    const paused = await call('POST', `/safety/endpoints/${encodeURIComponent(ENDPOINT)}/pause`, { reason: 'quota review' });
    assert.deepEqual([paused.status, paused.body.paused, paused.body.pauseReason], [200, true, 'quota review']);
    const resumed = await call('POST', `/safety/endpoints/${encodeURIComponent(ENDPOINT)}/resume`);
    assert.deepEqual([resumed.status, resumed.body.paused], [200, false]);

    assert.equal((await call('PUT', '/instances/987654/manual', {})).status, 404);
    const id = ok(await rig.db.insertInstance('', 'test-image', `api-${Date.now()}`, ENDPOINT, 'testvo'));
    const set = await call('PUT', `/instances/${id}/manual`, { reason: 'kernel debugging' });
    assert.deepEqual([set.status, set.body.instanceID, set.body.reason], [200, id, 'kernel debugging']);
    assert.deepEqual((await call('GET', '/safety')).body.manual.map((m: { instanceID: number }) => m.instanceID), [id]);
    assert.deepEqual(await call('DELETE', `/instances/${id}/manual`), { status: 200, body: { cleared: true } });
    assert.deepEqual(await call('DELETE', `/instances/${id}/manual`), { status: 200, body: { cleared: false } });

    // The same through the CLI, against the listening API.
    await app.listen({ host: '127.0.0.1', port: 0 });
    const env = { ...process.env, VMDB_API_URL: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, VMDB_TOKEN: token };
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [join(__dirname, '..', 'src', 'cli', 'main.js'), 'safety', ...args], { env }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    assert.deepEqual(await cli('pause', ENDPOINT, '--reason', 'quota review'), { code: 0, stdout: `${ENDPOINT}: paused (quota review)\n`, stderr: '' });
    assert.deepEqual(await cli('manual', String(id), '--reason', 'debug'), { code: 0, stdout: `instance ${id}: under manual control\n`, stderr: '' });
    assert.deepEqual(await cli('mode', 'drain'), { code: 0, stdout: 'fleet mode: drain\n', stderr: '' });
    const shown = await cli();
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^fleet mode: drain\nENDPOINT +PAUSED +FAILURES .*\nLocal::testcloud +yes +0 .*quota review\nINSTANCE +SINCE \(UTC\) +REASON\n +\d+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +debug\n$/);
    assert.equal((await cli('mode', 'stop-all')).code !== 0, true);
    assert.deepEqual(await cli('mode', 'normal'), { code: 0, stdout: 'fleet mode: normal\n', stderr: '' });
    assert.deepEqual(await cli('resume', ENDPOINT), { code: 0, stdout: `${ENDPOINT}: launching\n`, stderr: '' });
    assert.deepEqual(await cli('auto', String(id)), { code: 0, stdout: `instance ${id}: back under automatic control\n`, stderr: '' });
  });

  describe('reconciliation', function () {
    const reconcile = (over: { stopZombies?: boolean; zombieGraceSeconds?: number } = {}) =>
      createSafetyActivities({
        db: rig.db,
        client: env.client,
        config: { ...rig.fleet.safety, reconcile: { ...rig.fleet.safety.reconcile, ...over } },
        endpoints: rig.fleet.endpoints,
        drivers: rig.drivers,
      });

    it('a ghost (alive in the database, gone from the cloud) is Halted after two passes miss it, with a history row, and its workflow ends', async function () {
      const { instanceID, handle, uniqueID } = await runningInstance();
      const activities = reconcile();
      await rig.drivers.get(ENDPOINT)!.stopInstance(uniqueID); // the VM dies behind vmdb's back
      const [first] = await activities.reconcileEndpoints();
      assert.deepEqual(first.ghosts.map((g) => [g.instanceID, g.was, g.now]), [[instanceID, 'Running', undefined]]);
      assert.equal(await rig.status(instanceID), 'Running');
      const [second] = await activities.reconcileEndpoints();
      assert.deepEqual(second.ghosts.map((g) => [g.instanceID, g.was, g.now]), [[instanceID, 'Running', 'Halted']]);
      assert.equal((await handle.result()).status, 'Halted');
      assert.deepEqual(changes(await rig.history(instanceID)), ['New', 'Submitted', 'Running', 'Halted']);
    });

    it('with a listing that cannot lag (listingIsCurrent, the local endpoints at npm start), a ghost is Halted at its first miss', async function () {
      const { instanceID, handle, uniqueID } = await runningInstance();
      await rig.drivers.get(ENDPOINT)!.stopInstance(uniqueID);
      const [report] = await reconcile().reconcileEndpoints({ endpoints: [ENDPOINT], listingIsCurrent: true });
      assert.deepEqual(report.ghosts.map((g) => [g.instanceID, g.was, g.now]), [[instanceID, 'Running', 'Halted']]);
      assert.equal((await handle.result()).status, 'Halted');
      assert.deepEqual(await reconcile().reconcileEndpoints({ endpoints: ['Local::elsewhere'] }), [], 'only the endpoints asked for');
    });

    it('never acts on an endpoint whose listing failed', async function () {
      const { instanceID, handle, uniqueID } = await runningInstance();
      const activities = reconcile();
      await rig.drivers.get(ENDPOINT)!.stopInstance(uniqueID);
      writeFileSync(failureFile, 'unavailable API down\n');
      try {
        for (let pass = 0; pass < 3; pass++) {
          const [report] = await activities.reconcileEndpoints();
          assert.match(report.listingFailed!, /API down/);
          assert.deepEqual([report.ghosts, report.zombies], [[], []]);
        }
      } finally {
        rmSync(failureFile, { force: true });
      }
      assert.equal(await rig.status(instanceID), 'Running');
      await rig.terminate(handle);
    });

    it('zombies (in the cloud, unknown or Halted in the database) are reported, and stopped when configured', async function () {
      const driver = rig.drivers.get(ENDPOINT)!;
      const stray = await driver.createInstance({ instanceName: `stray-${Date.now()}`, imageName: 'x', runningPod: 'y' });
      const halted = await driver.createInstance({ instanceName: `halted-${Date.now()}`, imageName: 'x', runningPod: 'y' });
      const id = ok(await rig.db.insertInstance(halted.uniqueID, 'test-image', `row-${Date.now()}`, ENDPOINT, 'testvo'));
      await forceStatus(rig.db, id, 'Halted');

      const [reportOnly] = await reconcile().reconcileEndpoints();
      // Only these two: VMs of earlier tests (workflows terminated, rows retired) are zombies too.
      const mine = new Set([stray.uniqueID, halted.uniqueID]);
      const zombies = (r: typeof reportOnly) => Object.fromEntries(r.zombies.filter((z) => mine.has(z.uniqueID)).map((z) => [z.uniqueID, [z.stopped, z.kept ?? '']]));
      assert.deepEqual(zombies(reportOnly), {
        [stray.uniqueID]: [false, 'stopping zombies is off (safety.reconcile.stopZombies)'],
        [halted.uniqueID]: [false, 'stopping zombies is off (safety.reconcile.stopZombies)'],
      });

      const stopping = reconcile({ stopZombies: true, zombieGraceSeconds: 2 });
      const [first] = await stopping.reconcileEndpoints();
      // A VM the database halted is surely a zombie; an unknown one may be a creation not yet recorded.
      assert.deepEqual(zombies(first), { [stray.uniqueID]: [false, 'listed for less than zombieGraceSeconds'], [halted.uniqueID]: [true, ''] });
      assert.equal((await driver.getInstanceStatus(halted.uniqueID)).status, 'stopped');
      await new Promise((r) => setTimeout(r, 2100));
      const [second] = await stopping.reconcileEndpoints();
      assert.deepEqual(zombies(second), { [stray.uniqueID]: [true, ''] });
      assert.equal((await driver.getInstanceStatus(stray.uniqueID)).status, 'stopped');
      const [third] = await stopping.reconcileEndpoints();
      assert.deepEqual(zombies(third), {});
    });
  });
});
