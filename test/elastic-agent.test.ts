import { strict as assert } from 'node:assert';
import { ElasticStopPolicy, inHaltMargin, validateStopPolicy } from '../src/agent/stop-policy';
import { vmTokenOf } from './support/vm-tokens';
import { userDataWithStopPolicy } from '../src/elastic/config';
import { HaltStore } from '../src/db/halt-store';
import { ok } from './support/backends';
import { AgentVms } from './support/agent-vms';

describe('stop policies: settings and decisions', function () {
  it('elastic takes DIRAC\'s defaults; bad or unknown settings are refused by name', function () {
    assert.deepEqual(validateStopPolicy('p', { policy: 'elastic' }), { policy: 'elastic', loadAverageTimespan: 60, haltPeriod: 600, haltBeforeMargin: 300, minWorkingLoad: 0.01 });
    assert.deepEqual(validateStopPolicy('p', { policy: 'never' }), { policy: 'never' });
    assert.throws(() => validateStopPolicy('p', { policy: 'sometimes' }), /p.policy must be "elastic" or "never"/);
    assert.throws(() => validateStopPolicy('p', { policy: 'elastic', haltPeriod: 0 }), /p.haltPeriod must be a whole number/);
    assert.throws(() => validateStopPolicy('p', { policy: 'elastic', haltPeriod: 60, haltBeforeMargin: 120 }), /must not exceed haltPeriod/);
    assert.throws(() => validateStopPolicy('p', { policy: 'elastic', minLoad: 1 }), /p.minLoad is not a stop policy setting/);
    assert.throws(() => validateStopPolicy('p', { policy: 'never', haltPeriod: 60 }), /"never" takes no settings/);
  });

  it('the halt margin is the last haltBeforeMargin seconds of each haltPeriod of uptime', function () {
    const margin = [...Array(1300).keys()].filter((uptime) => inHaltMargin(uptime, 600, 300));
    assert.deepEqual([margin[0], margin[299], margin[300], margin.at(-1), margin.length], [300, 599, 900, 1199, 600]);
  });

  it('decides only on a full window, in the margin, below the load, with no jobs; a failed job count is not none', async function () {
    let clock = 0;
    let load = 0;
    let jobs: number | null = 0;
    let uptime = 0;
    const policy = new ElasticStopPolicy(
      { policy: 'elastic', loadAverageTimespan: 60, haltPeriod: 600, haltBeforeMargin: 300, minWorkingLoad: 0.01 },
      { load: async () => load, uptime: () => uptime, jobs: async () => jobs },
      () => undefined,
      () => clock,
    );
    policy.start();
    policy.stop();
    const at = async (seconds: number, up: number) => {
      clock = seconds * 1000;
      uptime = up;
      await policy.tick();
    };
    await at(30, 330); // in the margin, idle, but the window is not full yet
    assert.equal(policy.decision, undefined);
    await at(70, 200); // full window, idle, outside the margin
    assert.equal(policy.decision, undefined);
    jobs = null;
    await at(80, 320); // in the margin, idle load, but the job count failed
    assert.equal(policy.decision, undefined);
    jobs = 2;
    await at(90, 330);
    assert.equal(policy.decision, undefined, 'jobs run');
    jobs = 0;
    load = 0.5;
    await at(100, 340);
    assert.equal(policy.decision, undefined, 'busy');
    load = 0;
    // The 0.5 sample at 100 s is still in the 60 s window: (0.5 + 0) / 2 is not idle yet.
    await at(110, 350);
    assert.equal(policy.decision, undefined);
    await at(161, 401);
    const decision = policy.decision as { load: number; uptime: number } | undefined;
    assert.ok(decision, 'idle for a whole window in the margin');
    assert.deepEqual([decision.load, decision.uptime], [0, 401]);
    assert.ok(policy.decided.aborted);
  });

  it('the Director puts the policy in the user data, and the cloud activity keeps it beside the credentials', function () {
    const stopPolicy = validateStopPolicy('p', { policy: 'elastic' });
    assert.deepEqual(JSON.parse(userDataWithStopPolicy('{"site":"x","vmdb":{"note":1}}', stopPolicy)!), { site: 'x', vmdb: { note: 1, stopPolicy } });
    assert.equal(userDataWithStopPolicy('#!/bin/sh', undefined), '#!/bin/sh');
  });
});

// The real vmdb-agent process as a local-driver VM: API -> Temporal dev server -> worker -> MariaDB.
describe('stop policies with the real agent under the local driver [mariadb]', function () {
  this.timeout(180_000);
  const vms = new AgentVms();
  const ELASTIC = { policy: 'elastic', loadAverageTimespan: 2, haltPeriod: 4, haltBeforeMargin: 2, minWorkingLoad: 0.5 } as const;

  before(async function () {
    await vms.setUp({ maxInstances: 3 });
  });
  after(async function () {
    await vms.tearDown();
  });

  it('elastic halts an idle VM with no jobs in its margin and records why; a busy or working VM and a "never" VM run on', async function () {
    const { rig } = vms;
    const elastic = userDataWithStopPolicy(undefined, ELASTIC);
    const idle = await rig.launch({ userData: elastic });
    const working = await rig.launch({ userData: elastic });
    const never = await rig.launch({ userData: JSON.stringify({ vmdb: { stopPolicy: { policy: 'never' } } }) });
    for (const vm of [idle, working, never]) await rig.waitForStatus(vm.instanceID, 'Running', 60_000);
    await vms.setJobs(working.instanceID, 1);

    // Load 2.0 over two halt periods: nobody halts.
    await vms.heartbeatsPass([idle.instanceID, working.instanceID, never.instanceID], 9);
    for (const vm of [idle, working, never]) assert.equal(await rig.status(vm.instanceID), 'Running', `instance ${vm.instanceID} is busy`);

    // The load drops: the idle VM halts itself at its next margin; the one with a job and the "never" one do not.
    vms.setLoad(0);
    await rig.waitForStatus(idle.instanceID, 'Halted', 60_000);
    await vms.heartbeatsPass([working.instanceID, never.instanceID], 9);
    assert.equal(await rig.status(working.instanceID), 'Running', 'a VM running a job is not idle');
    assert.equal(await rig.status(never.instanceID), 'Running', 'the never policy waits for a stop');

    // Its job ends: it halts too. The "never" VM halts only when told to stop.
    await vms.setJobs(working.instanceID, 0);
    await rig.waitForStatus(working.instanceID, 'Halted', 60_000);
    assert.deepEqual(await rig.lifecycle.stop(never.instanceID), { OK: true, Value: 'Stopping' });
    await rig.waitForStatus(never.instanceID, 'Halted', 60_000);

    // The history shows why: straight from Running to Halted with the judged load, and the reason on record.
    const halts = HaltStore.of(rig.db);
    for (const vm of [idle, working]) {
      const history = ok(await rig.db.getHistoryForInstanceID(vm.instanceID));
      const load = history.ParameterNames.indexOf('Load');
      const [before, last] = history.Records.slice(-2);
      assert.deepEqual([before[0], last[0]], ['Running', 'Halted']);
      assert.ok(Number(last[load]) < ELASTIC.minWorkingLoad, `the Halted row carries the idle load, got ${last[load]}`);
      const reason = await halts.of(vm.instanceID);
      assert.equal(reason?.reason, 'idle');
      assert.match(reason!.detail, /^idle: load 0 over 2 s below 0\.5, no jobs, uptime \d+ s \(period 4 s\)$/);
      assert.ok(inHaltMargin(reason!.uptime, ELASTIC.haltPeriod, ELASTIC.haltBeforeMargin), `decided in a margin (uptime ${reason!.uptime})`);
      assert.equal((await vm.handle.result()).status, 'Halted', 'the workflow ends');
    }
    // Only a live VM records why it halts, and the first report stays.
    // A halted instance's token is refused: the VM is told to halt (409, state halt).
    const vmTokens = new Map([[idle.instanceID, await vmTokenOf(vms.rig.db, vms.secret, idle.instanceID)]]);
    const reasonOf = (id: number, body: object) => vms.app.inject({ method: 'POST', url: `/api/v1/vms/${id}/halt-reason`, headers: { authorization: `Bearer ${vmTokens.get(id)}` }, payload: body });
    const late = await reasonOf(idle.instanceID, { reason: 'idle', load: 0, uptime: 5 });
    assert.deepEqual([late.statusCode, late.json().error, late.json().state], [409, 'ended', 'halt']);
    const first = await halts.of(idle.instanceID);
    assert.equal(await halts.record(idle.instanceID, 'idle', 'again', 1), false, 'the first report wins');
    assert.deepEqual(await halts.of(idle.instanceID), first);
    assert.equal((await never.handle.result()).status, 'Halted');
    assert.deepEqual((await rig.history(never.instanceID)).slice(-2), ['Stopping', 'Halted']);
    assert.equal(await halts.of(never.instanceID), null, 'a drained VM gives no idle reason');
    const driver = rig.drivers.get(rig.endpoint)!;
    for (const vm of [idle, working, never]) assert.equal((await driver.getInstanceStatus(await rig.uniqueID(vm.instanceID))).status, 'stopped');
  });
});
