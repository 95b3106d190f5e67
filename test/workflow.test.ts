import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { fromFailure, isTemporalUnavailable } from '../src/api/errors';
import type { Failure } from '../src/db/result';
import { OCCUPYING_STATES } from '../entities/states';
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { heartbeatNewsSignal, stateQuery } from '../workflows/definitions';
import { heartbeatSignals } from '../src/ops/metrics';
import { Client, Connection } from '@temporalio/client';
import { waitFor } from './support/processes';
import { freePort } from './support/sshd';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { DIRECTOR_SCHEDULE_ID, RECONCILE_SCHEDULE_ID, SWEEP_SCHEDULE_ID, ensureSchedules } from '../src/temporal/schedules';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { tokenIsFor } from './support/vm-tokens';
import type { LocalDriver } from '../src/drivers/local';
import { ageInstance, ok } from './support/backends';
import { type TestSshd, startSshd } from './support/sshd';
import { ENDPOINT, LifecycleRig, maybeRecordHistory } from './support/lifecycle-rig';
import { startDevServer } from './support/temporal';

const beat = (n = 1) => ({ load: 0.25 * n, jobs: n, transferredFiles: 2 * n, transferredBytes: 1000 * n, uptime: 60 * n });

// The full life cycle on a real Temporal dev server and a real MariaDB, with local VMs as processes.
describe('instanceLifecycle on a dev server [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  it('creates the VM, runs on heartbeats, stops on the operator, halts when the VM says so', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const vm = await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID);
    assert.equal(vm.status, 'running', 'the local VM process is alive');

    assert.deepEqual(await rig.heartbeat(uniqueID, beat(1)), { OK: true, Value: 'ok' });
    assert.equal(await rig.status(instanceID), 'Running', 'committed before the answer');
    assert.equal(ok(await rig.db.checkImageStatus('test-image')), 'Validated');
    assert.deepEqual(await rig.heartbeat(uniqueID, beat(2)), { OK: true, Value: 'ok' });
    assert.equal(ok(await rig.db.getInstanceParameter('Jobs', instanceID)), 2);

    const state = await handle.query(stateQuery);
    assert.equal(state.status, 'Running');
    assert.equal(state.heartbeats, 2);
    assert.equal(state.lastHeartbeat?.jobs, 2);

    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    assert.deepEqual(await rig.heartbeat(uniqueID, beat(3)), { OK: true, Value: 'stop' });
    assert.deepEqual(await rig.lifecycle.halting(uniqueID, 0.1), { OK: true, Value: 'Halted' });
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running', 'Running', 'Stopping', 'Halted']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID)).status, 'stopped', 'the VM is gone');
    await maybeRecordHistory(handle, 'v2-run-stop-halt');
  });

  it('the VM declares itself running with its addresses; after a halt that is refused with State halt', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    assert.deepEqual(await rig.lifecycle.running(uniqueID, '::ffff:192.0.2.44', '10.1.2.3'), { OK: true, Value: 'Running' });
    assert.equal(ok(await rig.db.getInstanceParameter('PublicIP', instanceID)), '192.0.2.44');
    assert.equal((await handle.query(stateQuery)).privateIP, '10.1.2.3');
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    assert.deepEqual(await rig.lifecycle.halting(uniqueID, 0), { OK: true, Value: 'Halted' });
    await handle.result();
    const late = await rig.lifecycle.running(uniqueID, '192.0.2.44');
    assert.equal(late.OK, false, 'the workflow has finished');
  });

  it('a refused halting keeps its State for the VM', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const refused = await rig.lifecycle.halting(await rig.uniqueID(instanceID), 0);
    assert.deepEqual(refused, { OK: false, Message: 'Transition ( Submitted -> Halted ) not allowed', State: 'Submitted' });
    await handle.terminate('test done');
  });

  it('a silent instance is Stalled, stopped at its endpoint and recorded Halted', async function () {
    const { instanceID, handle } = await rig.launch({ stallingIntervalSeconds: 3 });
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Stalled', 'Halted']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(final.uniqueID)).status, 'stopped');
    await maybeRecordHistory(handle, 'v2-stalled');
  });

  it('heartbeats keep a VM alive past the stalling interval', async function () {
    const { instanceID, handle } = await rig.launch({ stallingIntervalSeconds: 3 });
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    for (let i = 1; i <= 5; i++) {
      assert.deepEqual(await rig.heartbeat(uniqueID, beat(i)), { OK: true, Value: 'ok' });
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(await rig.status(instanceID), 'Running', 'five seconds of beats every second: never stalled');
    await handle.terminate('test done');
  });

  it('rejects malformed figures before anything is recorded, and unknown VMs by name; a malformed signal changes nothing', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const before = await rig.history(instanceID);
    const viaClient = await rig.heartbeat(uniqueID, { ...beat(), load: Number.NaN });
    assert.equal(viaClient.OK, false);
    assert.match((viaClient as { Message: string }).Message, /load must be a finite number/);
    assert.deepEqual(await rig.history(instanceID), before, 'nothing recorded');
    assert.deepEqual(await rig.heartbeat('no-such-vm', beat()), { OK: false, Message: 'Unknown UniqueID = no-such-vm' });
    // A signal no API would send: dropped with a warning, the workflow carries on.
    await handle.signal(heartbeatNewsSignal, { figures: { ...beat(), jobs: -1 }, recorded: true, status: 'Running', version: 99, lastUpdate: null });
    await handle.signal(heartbeatNewsSignal, { figures: beat(), recorded: true, status: 'Nonsense', version: 99, lastUpdate: null } as never);
    const state = await handle.query(stateQuery);
    assert.equal(state.status, 'Submitted');
    assert.equal(state.heartbeats, 0);
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    await handle.terminate('test done');
  });

  it('a stop of a finished instance is a clear error and changes nothing', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    await rig.heartbeat(await rig.uniqueID(instanceID), beat());
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    await rig.lifecycle.halting(await rig.uniqueID(instanceID), 0);
    await handle.result();
    const again = await rig.lifecycle.stop(instanceID);
    assert.equal(again.OK, false);
    assert.match((again as { Message: string }).Message, /finished/);
    assert.equal(await rig.status(instanceID), 'Halted');
  });

  it('an operator stop of a Submitted instance stops its VM: Stalled, then Halted', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stalled' });
    assert.equal((await handle.result()).status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Stalled', 'Halted']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID)).status, 'stopped');
  });

  it('an operator stop of a New instance halts it (and its VM) at once', async function () {
    const { instanceID, handle } = await rig.launch();
    const stopped = await rig.lifecycle.stop(instanceID);
    assert.equal(stopped.OK, true);
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    if (final.uniqueID) assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(final.uniqueID)).status, 'stopped');
  });

  it('a create the endpoint refuses for good puts the instance in Error with the reason, and frees its slot', async function () {
    // The local driver refuses user data with a NUL (it travels in an environment variable).
    const { instanceID, handle } = await rig.launch({ userData: 'bad\0data' });
    const final = await handle.result();
    assert.equal(final.status, 'Error');
    assert.equal(final.uniqueID, '', 'no VM was created');
    assert.match(final.errorMessage, new RegExp(`^VM creation refused by ${ENDPOINT}: .*NUL`));
    assert.equal(await rig.status(instanceID), 'Error');
    assert.ok(!(OCCUPYING_STATES as readonly string[]).includes('Error'), 'an Error instance does not hold a Director slot');
  });

  it('continues as new after its heartbeat budget without losing a heartbeat; a retried heartbeat is recorded once', async function () {
    const { instanceID, handle } = await rig.launch({ heartbeatsPerRun: 3 });
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const firstRun = (await handle.describe()).runId;
    // A signal Temporal does not take within its deadline is counted, not retried (the record is the truth):
    // on a loaded machine one may be missed around a continue-as-new, and the workflow then counts one less.
    const missed = async () => (await heartbeatSignals.get()).values.find((v) => v.labels.outcome === 'missed')?.value ?? 0;
    const missedBefore = await missed();
    for (let i = 1; i <= 8; i++) {
      const mark = { bootId: 'boot-a', seq: i };
      assert.deepEqual(await rig.heartbeat(uniqueID, beat(i), mark), { OK: true, Value: 'ok' });
      assert.deepEqual(await rig.heartbeat(uniqueID, beat(i), mark), { OK: true, Value: 'ok' }, 'a retry is answered from the record');
    }
    const signalled = 8 - ((await missed()) - missedBefore);
    assert.ok(signalled >= 7, `at most one signal missed, ${8 - signalled} were`);
    await waitFor(`the workflow to count ${signalled} heartbeats`, async () => ((await handle.query(stateQuery)).heartbeats === signalled ? true : undefined), 20_000);
    assert.notEqual((await handle.describe()).runId, firstRun, 'a new run carries on');
    assert.equal((await rig.history(instanceID)).filter((s) => s === 'Running').length, 8, 'one history row per heartbeat');
    await handle.terminate('test done');
  });

  it('a heartbeat is recorded and answered while no worker runs; the workflow hears of it once a worker is back', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    await rig.stopWorker();
    try {
      assert.deepEqual(await rig.heartbeat(uniqueID, beat(1), { bootId: 'b', seq: 1 }), { OK: true, Value: 'ok' });
      assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running'], 'recorded without a worker');
    } finally {
      await rig.startWorker();
    }
    await waitFor('the signal to reach the workflow', async () => ((await handle.query(stateQuery)).heartbeats === 1 ? true : undefined), 20_000);
    assert.equal((await handle.query(stateQuery)).status, 'Running');
    await handle.terminate('test done');
  });

  it('a heartbeat is recorded and answered while Temporal cannot be reached; the missed signal is counted', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const nowhere = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await freePort()}` }) });
    const cut = new LifecycleClient(nowhere, rig.db, { signalTimeoutMs: 1500 });
    const missed = async () => (await heartbeatSignals.get()).values.find((v) => v.labels.outcome === 'missed')?.value ?? 0;
    const before = await missed();
    const started = Date.now();
    assert.deepEqual(await cut.heartbeatOf(instanceID, beat(1), { bootId: 'b', seq: 1 }), { OK: true, Value: { directive: 'ok' } });
    assert.ok(Date.now() - started < 10_000, 'answered within the signal deadline');
    assert.equal(await missed(), before + 1, 'the miss is counted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running'], 'MySQL is the record');
    await nowhere.connection.close();
    await handle.terminate('test done');
  });

  it("a VM's update that no worker answers in time is 'unavailable' (not a hang); its retry is answered once a worker is back", async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const impatient = new LifecycleClient(env.client, rig.db, { vmCallTimeoutMs: 1500 });
    await rig.stopWorker();
    try {
      const started = Date.now();
      const answer = await impatient.running(uniqueID, '192.0.2.1');
      assert.equal(answer.OK, false);
      assert.ok(isTemporalUnavailable(answer as Failure), `an outage, not the request's fault: ${(answer as Failure).Message}`);
      assert.equal(fromFailure(answer as Failure).statusCode, 503);
      assert.ok(Date.now() - started < 15_000, 'given up near its deadline');
    } finally {
      await rig.startWorker();
    }
    assert.deepEqual(await impatient.running(uniqueID, '192.0.2.1'), { OK: true, Value: 'Running' });
    assert.equal(await rig.status(instanceID), 'Running');
    await handle.terminate('test done');
  });

  it('cancelling the workflow (UI, CLI) stops the VM and records it Halted', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    await rig.heartbeat(uniqueID, beat());
    await handle.cancel();
    await assert.rejects(handle.result());
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running', 'Halted']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID)).status, 'stopped');
  });

  it('a VM that never reports is stopped at its startup deadline: Stalled, then Halted, with a short history', async function () {
    const { instanceID, handle } = await rig.launch({ maxStartupSeconds: 3 });
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Stalled', 'Halted']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID)).status, 'stopped', 'the VM is stopped at its endpoint');
    const events = (await handle.fetchHistory()).events?.length ?? 0;
    assert.ok(events < 80, `${events} history events: no loop on a deadline in the past`);
    await maybeRecordHistory(handle, 'v2-startup-deadline');
  });

  it('a Running VM that never drains is stopped at its drain deadline, not at the next stall', async function () {
    const { instanceID, handle } = await rig.launch({ drainDeadlineSeconds: 3 });
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const busy = { ...beat(1), jobs: 1 };
    assert.deepEqual(await rig.heartbeatWithNotice(uniqueID, busy), { OK: true, Value: { directive: 'ok' } });
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    const told = await rig.heartbeatWithNotice(uniqueID, busy);
    assert.ok(told.OK && told.Value.directive === 'stop' && told.Value.shutdownAt, `told to drain, with the deadline: ${JSON.stringify(told)}`);
    let answers = 0;
    while ((await handle.describe()).status.name === 'RUNNING') {
      await rig.heartbeat(uniqueID, busy); // still busy: jobs 1
      answers++;
      await new Promise((r) => setTimeout(r, 300));
    }
    const final = await handle.query(stateQuery);
    assert.equal(final.status, 'Halted');
    const stopAt = (await handle.fetchHistory()).events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'stopInstance')!;
    const stoppedMs = Number(stopAt.eventTime!.seconds) * 1000 + Math.floor((stopAt.eventTime!.nanos ?? 0) / 1e6);
    const late = stoppedMs - (final.stopRequestedAt! + 3000);
    assert.ok(late >= 0 && late <= 1000, `stopped at its endpoint ${late} ms after the drain deadline (workflow time)`);
    assert.ok(Date.parse(told.OK ? told.Value.shutdownAt! : '') <= final.stopRequestedAt! + 3000, 'the announced shutdown is not later than the deadline');
    assert.ok(answers > 0);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(uniqueID)).status, 'stopped');
    await maybeRecordHistory(handle, 'v2-drain-deadline');
  });

  it('the VmStatus search attribute follows the status', async function () {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    await rig.heartbeat(await rig.uniqueID(instanceID), beat());
    const query = `WorkflowId = "${handle.workflowId}" AND VmStatus = "Running" AND VmEndpoint = "${ENDPOINT}" AND VmImage = "test-image" AND VmRunningPod = "testvo"`;
    let found = 0;
    for (let i = 0; i < 50 && found === 0; i++) {
      for await (const _ of env.client.workflow.list({ query })) found++;
      if (!found) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(found, 1, 'visible in the UI filtered by VmStatus');
    await handle.terminate('test done');
  });
});

describe('SSH contextualization through the workflow [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let sshd: TestSshd;

  before(async function () {
    sshd = await startSshd();
    env = await startDevServer();
    rig = new LifecycleRig(env, { sshPrivateKey: sshd.privateKey });
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
    await sshd?.stop();
  });

  it('Submitted -> Wait_ssh_context -> Contextualizing -> Running; the command ran on the VM', async function () {
    const marker = join(sshd.dir, `ctx-${Date.now()}`, 'marker');
    const { instanceID, handle } = await rig.launch({
      contextualization: {
        username: sshd.username,
        host: sshd.host,
        port: sshd.port,
        files: [{ path: join(dirname(marker), 'vo.conf'), content: 'VO=testvo\n' }],
        command: `. ${join(dirname(marker), 'vo.conf')} && echo "contextualized for $VO" > ${marker}`,
        timeoutSeconds: 20,
        hostKeys: [sshd.hostKey],
      },
    });
    await rig.waitForStatus(instanceID, 'Contextualizing');
    const uniqueID = await rig.uniqueID(instanceID);
    for (let i = 0; i < 100 && !existsSync(marker); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(readFileSync(marker, 'utf8'), 'contextualized for testvo\n');
    assert.deepEqual(await rig.heartbeat(uniqueID, beat()), { OK: true, Value: 'ok' });
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running']);
    await rig.lifecycle.stop(instanceID);
    await rig.lifecycle.halting(uniqueID, 0);
    assert.equal((await handle.result()).status, 'Halted');
    await maybeRecordHistory(handle, 'v2-ssh-contextualized');
  });

  it('a contextualization that keeps failing puts the instance in Error with the reason, and stops the VM', async function () {
    const { instanceID, handle } = await rig.launch({
      contextualization: { username: sshd.username, host: sshd.host, port: sshd.port, files: [], command: 'echo broken image >&2; exit 7', timeoutSeconds: 10, hostKeys: [sshd.hostKey] },
    });
    const final = await handle.result();
    assert.equal(final.status, 'Error');
    assert.match(String(ok(await rig.db.getInstanceParameter('ErrorMessage', instanceID))), /Contextualization failed: .*7/);
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Error']);
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(final.uniqueID)).status, 'stopped');
    await maybeRecordHistory(handle, 'v2-ssh-failed');
  });

  it('a VM presenting a host key nobody pinned is never logged in to: Error naming the key, at the first attempt', async function () {
    const marker = join(sshd.dir, `never-${Date.now()}`);
    const wrong = `SHA256:${'B'.repeat(43)}`;
    const { instanceID, handle } = await rig.launch({
      contextualization: { username: sshd.username, host: sshd.host, port: sshd.port, files: [], command: `touch ${marker}`, timeoutSeconds: 10, hostKeys: [wrong] },
    });
    const final = await handle.result();
    assert.equal(final.status, 'Error');
    const reason = String(ok(await rig.db.getInstanceParameter('ErrorMessage', instanceID)));
    assert.match(reason, /^Contextualization failed: .*presented host key SHA256:/);
    assert.ok(reason.includes(sshd.hostKey.slice(0, 40)), reason);
    assert.ok(!existsSync(marker), 'the command never ran');
    const attempts = (await handle.fetchHistory()).events!.filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt && e.activityTaskStartedEventAttributes.attempt > 1);
    assert.deepEqual(attempts, [], 'no retry: a wrong key stays wrong');
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(final.uniqueID)).status, 'stopped');
    await maybeRecordHistory(handle, 'v2-ssh-host-key-mismatch');
  });
});

describe('VM credentials [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  const secret = 'test-secret-for-vm-tokens';

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env, { tokenSecret: secret });
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  it('each VM gets its own token in its user data, and the token stays out of the workflow history', async function () {
    const { instanceID, handle } = await rig.launch({ userData: JSON.stringify({ site: 'test' }) });
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    const pid = (await (rig.drivers.get(ENDPOINT) as LocalDriver).record(uniqueID))!.pid;
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const userData = JSON.parse(environ.find((v) => v.startsWith('VMDB_USER_DATA='))!.slice('VMDB_USER_DATA='.length));
    assert.equal(userData.site, 'test', 'the configured user data is kept');
    assert.equal(userData.vmdb.instanceID, instanceID);
    assert.equal(userData.vmdb.apiUrl, 'http://127.0.0.1:8080');
    assert.ok(await tokenIsFor(rig.db, secret, userData.vmdb.token, instanceID), 'a token bound to the instance and its name');
    const history = historyToJSON(await handle.fetchHistory());
    assert.ok(!history.includes(userData.vmdb.token), 'no token in the history');
    await handle.terminate('test done');
  });
});

describe('Director [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env, { maxInstances: 3 });
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  it('fills the free slots once, even when passes race', async function () {
    const passes = await Promise.all(
      [1, 2, 3].map((i) => env.client.workflow.execute('directorPass', { workflowId: `director-race-${i}`, taskQueue: rig.taskQueue, args: [] })),
    );
    const reserved = (passes as { reserved: number[] }[][]).flatMap((reports) => reports.flatMap((r) => r.reserved));
    assert.equal(reserved.length, 3, 'three slots, three instances, whatever the interleaving');
    assert.equal(ok(await rig.db.countEntries('vm_Instances', { Endpoint: ENDPOINT })), 3);
    for (const id of reserved) {
      await rig.waitForStatus(id, 'Submitted');
      assert.equal((await env.client.workflow.getHandle(`vm-${id}`).describe()).status.name, 'RUNNING');
    }
    const again = (await env.client.workflow.execute('directorPass', { workflowId: 'director-again', taskQueue: rig.taskQueue, args: [] })) as { reserved: number[] }[];
    assert.deepEqual(again.flatMap((r) => r.reserved), [], 'no free slot left');
    for (const id of reserved) await env.client.workflow.getHandle(`vm-${id}`).terminate('test done');
  });

  it('creates the Director and sweep Schedules once, with overlap SKIP, and updates them in place', async function () {
    await ensureSchedules(env.client, rig.fleet, rig.taskQueue);
    await ensureSchedules(env.client, { ...rig.fleet, directorEverySeconds: 30 }, rig.taskQueue);
    const director = await env.client.schedule.getHandle(DIRECTOR_SCHEDULE_ID).describe();
    const sweep = await env.client.schedule.getHandle(SWEEP_SCHEDULE_ID).describe();
    assert.equal(director.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(sweep.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.deepEqual(director.spec.intervals?.map((i) => i.every), [30_000]);
    assert.deepEqual(sweep.spec.intervals?.map((i) => i.every), [rig.fleet.sweepEverySeconds * 1000]);
    assert.equal(director.action.type === 'startWorkflow' && director.action.workflowType, 'directorPass');
    const reconcile = await env.client.schedule.getHandle(RECONCILE_SCHEDULE_ID).describe();
    assert.equal(reconcile.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(reconcile.action.type === 'startWorkflow' && reconcile.action.workflowType, 'reconcilePass');
    assert.deepEqual(reconcile.spec.intervals?.map((i) => i.every), [rig.fleet.safety.reconcile.everySeconds * 1000]);
    for (const id of [DIRECTOR_SCHEDULE_ID, SWEEP_SCHEDULE_ID, RECONCILE_SCHEDULE_ID]) await env.client.schedule.getHandle(id).delete();
  });

  it('the sweep stalls silent instances and halts those whose workflow is gone', async function () {
    const id = ok(await rig.db.insertInstance('orphan-1', 'test-image', 'orphan', ENDPOINT, 'testvo'));
    await ageInstance(rig.db, id, rig.db.stallingInterval + 60);
    const result = (await env.client.workflow.execute('stalledSweep', { workflowId: 'sweep-1', taskQueue: rig.taskQueue, args: [] })) as { stalled: number[]; halted: number[] };
    assert.deepEqual(result, { stalled: [id], halted: [id] });
    assert.deepEqual(await rig.history(id), ['Submitted', 'Stalled', 'Halted']);
  });
});
