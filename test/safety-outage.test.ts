import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/server';
import { vmTokenOf } from './support/vm-tokens';
import { createDrivers } from '../src/drivers/registry';
import { driverConfigs, validateFleet } from '../src/config/fleet';
import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { createLogger } from '../src/ops/log';
import { registry } from '../src/ops/metrics';
import { FleetGuard } from '../src/safety/guard';
import { type Pulse, startPulse } from '../src/safety/pulse';
import { SafetyStore } from '../src/db/safety-store';
import { VirtualMachineDB } from '../src/db/vmdb';
import { createVmdbWorker } from '../src/temporal/worker';
import { type LifecycleInput, lifecycleWorkflowId } from '../workflows/definitions';
import { BACKENDS, ok } from './support/backends';
import { TcpProxy } from './support/tcp-proxy';
import { startDevServer, workflowBundle } from './support/temporal';

/*
 * Each component of vmdb goes down for longer than the stalling interval while four VMs are
 * Running. None of them may be stalled for the heartbeats it could not deliver. The database and
 * Temporal are cut off by proxies this test owns; the worker and the API are stopped as a crash
 * would stop them (their pulses stay behind, stale).
 */

const ENDPOINT = 'Local::outage';
const STALL = 3; // seconds, real time
const SECRET = 's'.repeat(32);
const quiet = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const fleet = (stateDir: string) =>
  validateFleet({
    endpoints: [{ endpoint: ENDPOINT, image: 'img', runningPod: 'pod', maxInstances: 10, driver: { type: 'local', stateDir } }],
    safety: {
      guard: { minSilentInstances: 3, maxSilentFraction: 0.5, recoveryGraceSeconds: 4, deferSeconds: 1 },
      pulse: { everySeconds: 1, outageAfterSeconds: 2 },
    },
  });

async function gauge(scope: string): Promise<number | undefined> {
  return (await registry.getSingleMetric('vmdb_safety_guard_tripped')!.get()).values.find((v) => v.labels.scope === scope)?.value;
}

describe('outages of vmdb itself stall no VM (dev server, real time) [mariadb]', function () {
  this.timeout(300_000);
  const stateDir = mkdtempSync(join(tmpdir(), 'vmdb-outage-'));
  const config = fleet(stateDir);
  const drivers = createDrivers(driverConfigs(config));
  const taskQueue = `vmdb-outage-${process.pid}-${Date.now()}`;
  let env: TestWorkflowEnvironment;
  let dbProxy: TcpProxy;
  let temporalProxy: TcpProxy;
  let db: VirtualMachineDB;
  let client: Client;
  let connection: NativeConnection;
  let worker: Worker | undefined;
  let workerDone: Promise<void> | undefined;
  let workerPulse: Pulse | undefined;
  let apiPulse: Pulse | undefined;
  let app: FastifyInstance | undefined;
  let lifecycle: LifecycleClient;
  const instances: number[] = [];
  const beating = new Set<number>();
  /** Each instance's VM token, bound to its name as the worker makes it (read once, before outages). */
  const tokens = new Map<number, string>();
  const tokenOf = async (instanceID: number) => {
    if (!tokens.has(instanceID)) tokens.set(instanceID, await vmTokenOf(db, SECRET, instanceID));
  };
  let beater: NodeJS.Timeout | undefined;

  async function startWorker(): Promise<void> {
    worker = await createVmdbWorker({ db, client, connection, namespace: 'default', taskQueue, fleet: config, drivers, workflowBundle: await workflowBundle() });
    workerDone = worker.run();
    const guard = new FleetGuard(db, config.safety, quiet);
    workerPulse = startPulse('worker', db, config.safety, { log: quiet, probe: () => client.workflowService.getSystemInfo({}), onBeat: () => guard.evaluateAll([ENDPOINT]) });
    await workerPulse.beat();
  }

  /** A crash: no graceful goodbye, the pulse stays behind. */
  async function crashWorker(): Promise<void> {
    await workerPulse?.stop({ graceful: false });
    worker?.shutdown();
    await workerDone;
  }

  async function startApi(): Promise<void> {
    app = await buildApi({ db, lifecycle, temporal: client, operators: [], tokenSecret: SECRET });
    await app.ready();
    apiPulse = startPulse('api', db, config.safety, { log: quiet });
    await apiPulse.beat();
  }

  async function crashApi(): Promise<void> {
    await apiPulse?.stop({ graceful: false });
    await app?.close();
    app = undefined;
  }

  /** One heartbeat per beating VM through the API, not waited for: during an outage they hang or fail, as a VM's would. */
  function beatAll(): void {
    for (const instanceID of beating) {
      if (!app || !tokens.has(instanceID)) continue;
      app
        .inject({
          method: 'POST',
          url: `/api/v1/vms/${instanceID}/heartbeat`,
          headers: { authorization: `Bearer ${tokens.get(instanceID)}` },
          payload: { load: 0.5, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 10 },
        })
        .catch(() => undefined);
    }
  }

  async function launch(): Promise<number> {
    const name = `vm-${Math.random().toString(36).slice(2, 10)}`;
    const instanceID = ok(await db.insertInstance('', 'img', name, ENDPOINT, 'pod'));
    const input: LifecycleInput = { instanceID, instanceName: name, imageName: 'img', endpoint: ENDPOINT, runningPod: 'pod', stallingIntervalSeconds: STALL };
    await client.workflow.start('instanceLifecycle', { workflowId: lifecycleWorkflowId(instanceID), taskQueue, args: [input] });
    return instanceID;
  }

  async function statuses(): Promise<string[]> {
    return Promise.all(instances.map(async (id) => ok(await db.getInstanceParameter('Status', id)) as string));
  }

  async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }

  async function stalledAnyone(): Promise<string[]> {
    const found: string[] = [];
    for (const id of instances) {
      const history = ok(await db.getHistoryForInstanceID(id)).Records.map((r) => r[0] as string);
      if (history.includes('Stalled') || history.includes('Halted')) found.push(`${id}: ${history.join(' ')}`);
    }
    return found;
  }

  /**
   * Everyone Running and beating; the outage for twice the stalling interval, while the VMs' agents
   * back off; recovery, and the agents report again a moment later (their backoff ends): by then
   * every stall deadline has passed. Past the grace, nobody may have been stalled, and the safety
   * rules must have held stalls back (`rule` is the one expected to: a component outage is seen
   * by its pulse, but the mass-silence guard may see the same silence first).
   */
  async function survive(rule: 'outage' | 'guard', outage: () => Promise<void>, recover: () => Promise<void>): Promise<void> {
    await waitFor('all Running', async () => (await statuses()).every((s) => s === 'Running'));
    await sleep(1000);
    const held = await heldCount();
    const heldByRule = await heldCount(rule);
    beating.clear();
    await outage();
    await sleep(STALL * 2000 + 500);
    await recover();
    // The VMs stay silent until a stall has been asked for and held: heartbeats recorded first would
    // make the workflows' compare-and-set see fresh news, and no rule would be tried at all.
    await waitFor('a stall held back', async () => (await heldCount()) > held, STALL * 10_000);
    for (const id of instances) beating.add(id);
    await sleep((config.safety.guard.recoveryGraceSeconds + STALL) * 1000 + 1000);
    assert.deepEqual(await stalledAnyone(), [], 'no VM stalled for an outage of vmdb');
    assert.deepEqual(await statuses(), instances.map(() => 'Running'));
    assert.ok((await heldCount()) > held, 'stalls were held back by the safety rules');
    if ((await heldCount(rule)) === heldByRule) console.log(`      (held by another rule than ${rule})`);
  }

  /** vmdb_safety_held_total, for one rule or all. */
  async function heldCount(rule?: string): Promise<number> {
    const values = (await registry.getSingleMetric('vmdb_safety_held_total')!.get()).values;
    return values.filter((v) => rule === undefined || v.labels.rule === rule).reduce((sum, v) => sum + v.value, 0);
  }

  before(async function () {
    env = await startDevServer();
    const [host, port] = env.address.split(':');
    temporalProxy = await TcpProxy.start(host, Number(port));
    const url = new URL(await BACKENDS[0].createDatabase());
    dbProxy = await TcpProxy.start(url.hostname, Number(url.port || 3306));
    url.hostname = '127.0.0.1';
    url.port = String(dbProxy.port);
    db = await VirtualMachineDB.open({ url: url.toString(), stallingInterval: STALL });
    const address = `127.0.0.1:${temporalProxy.port}`;
    client = new Client({ connection: await Connection.connect({ address }), namespace: 'default' });
    connection = await NativeConnection.connect({ address });
    lifecycle = new LifecycleClient(client, db);
    await startWorker();
    await startApi();
    for (let i = 0; i < 4; i++) instances.push(await launch());
    for (const id of instances) {
      await waitFor(`instance ${id} Submitted`, async () => ok(await db.getInstanceParameter('Status', id)) === 'Submitted');
      await tokenOf(id);
      beating.add(id);
    }
    beater = setInterval(beatAll, 500);
  });

  after(async function () {
    clearInterval(beater);
    await temporalProxy?.up();
    await dbProxy?.up();
    for (const id of instances) await client?.workflow.getHandle(lifecycleWorkflowId(id)).terminate('test done').catch(() => undefined);
    await apiPulse?.stop();
    await app?.close();
    await workerPulse?.stop();
    worker?.shutdown();
    await workerDone;
    for (const vm of await drivers.get(ENDPOINT)!.listInstances()) await drivers.get(ENDPOINT)!.stopInstance(vm.uniqueID);
    await connection?.close();
    await client?.connection.close();
    await db?.close();
    await BACKENDS[0].dropAll();
    await temporalProxy?.close();
    await dbProxy?.close();
    await env?.teardown();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('the network (heartbeats stop arriving, vmdb up): the mass-silence guard trips, alerts, holds stalls and clears', async function () {
    await survive(
      'guard',
      async () => {
        await waitFor('the guard to trip', async () => (await gauge(`endpoint:${ENDPOINT}`)) === 1, STALL * 5000);
        assert.equal((await SafetyStore.of(db).mark(`guard:endpoint:${ENDPOINT}`)).value, 'tripped');
      },
      async () => {
        // The network is back: the VMs report at once.
        for (const id of instances) beating.add(id);
        await waitFor('the guard to clear', async () => (await gauge(`endpoint:${ENDPOINT}`)) === 0, STALL * 5000);
        assert.equal((await SafetyStore.of(db).mark(`guard:endpoint:${ENDPOINT}`)).value, 'clear');
      },
    );
  });

  it('the API crashes and comes back', async function () {
    await survive('outage', crashApi, startApi);
  });

  it('the worker crashes and comes back', async function () {
    await survive('outage', crashWorker, startWorker);
  });

  it('Temporal is unreachable and comes back', async function () {
    await survive('outage', () => temporalProxy.down(), () => temporalProxy.up());
  });

  it('the database is unreachable and comes back', async function () {
    await survive('outage', () => dbProxy.down(), () => dbProxy.up());
  });

  it('with vmdb healthy, one VM that goes silent is stalled and halted as usual', async function () {
    const [silent, ...others] = instances;
    beating.delete(silent);
    await waitFor('the silent VM Halted', async () => ok(await db.getInstanceParameter('Status', silent)) === 'Halted', 60_000);
    const history = ok(await db.getHistoryForInstanceID(silent)).Records.map((r) => r[0] as string);
    assert.deepEqual(history.slice(-2), ['Stalled', 'Halted']);
    for (const id of others) assert.equal(ok(await db.getInstanceParameter('Status', id)), 'Running');
  });
});
