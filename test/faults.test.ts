import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { makeVmToken, newSecret } from '../src/auth/tokens';
import { createDrivers } from '../src/drivers/registry';
import { driverConfigs, validateFleet } from '../src/config/fleet';
import { lifecycleWorkflowId } from '../workflows/definitions';
import { withMysql } from './support/backends';
import { HeartbeatLoad, type Sent, isAcknowledged } from './support/heartbeat-load';
import { OwnedProcess, PrivateMariaDB, sleep, waitFor } from './support/processes';
import { freePort } from './support/sshd';
import { FileTemporalServer, temporalBinaries } from './support/temporal';

const ROOT = join(__dirname, '..', '..');
const INSTANCES = 3;
/** How long a component stays down while the load goes on. */
const OUTAGE_MS = 4000;
/** Answers a VM may get while something is down; anything else is a bug. */
const OUTAGE_STATUSES = new Set([200, 503, 0]);
/** What a reply must never show a VM: driver and socket errors, SQL, stack frames. */
const INTERNALS = /ER_[A-Z_]+|ECONNREFUSED|ECONNRESET|PROTOCOL_CONNECTION_LOST|sqlMessage|\bSELECT\b|\bINSERT\b|\bUPDATE `|at .+\.js:\d+|127\.0\.0\.1:\d+/;
const TERMINAL = new Set(['Halted', 'Error']);

interface FaultReport {
  fault: string;
  sent: number;
  acknowledged: number;
  recorded: number;
  lost: number;
  duplicateRows: number;
  recordedUnacknowledged: number;
  statuses: Record<string, number>;
}

/**
 * Reliability under crashes: the whole stack as processes of this test (a
 * private MariaDB, the Temporal dev server with a database file, the worker,
 * the API), a steady heartbeat load over HTTP, and one component at a time
 * killed or stopped and brought back. Every heartbeat the API acknowledged
 * must have its vm_History row; every instance must still be followed by its
 * workflow.
 */
describe('fault injection under heartbeat load: kill -9 worker, kill -9 Temporal, MariaDB stop and kill -9', function () {
  this.timeout(240_000);
  const dir = mkdtempSync(join(tmpdir(), 'vmdb-faults-'));
  const secret = newSecret();
  const adminToken = newSecret();
  const reports: FaultReport[] = [];
  let mariadb: PrivateMariaDB;
  let temporal: FileTemporalServer;
  let worker: OwnedProcess;
  let api: OwnedProcess;
  let apiUrl: string;
  let load: HeartbeatLoad;
  let instanceIDs: number[] = [];
  const fleet = validateFleet({
    endpoints: [{ endpoint: 'Local::faults', image: 'faults-image', runningPod: 'faults', maxInstances: INSTANCES, driver: { type: 'local', stateDir: join(dir, 'vms') } }],
    // The test triggers the one Director pass it needs; neither schedule should fire on its own meanwhile.
    directorEverySeconds: 3600,
    sweepEverySeconds: 3600,
  });

  const operator = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const tails = () => [worker, api, temporal.process, mariadb.process].map((p) => p.tail(1500)).join('\n');

  before(async function () {
    temporalBinaries(); // installed outside the timed part
    const [dbPort, temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    apiUrl = `http://127.0.0.1:${apiPort}`;
    mariadb = new PrivateMariaDB(join(dir, 'mariadb'), dbPort);
    temporal = new FileTemporalServer(join(dir, 'temporal.db'), temporalPort, uiPort);
    await mariadb.create();
    await temporal.start();

    const fleetFile = join(dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(fleet));
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(VMDB_|TEMPORAL_)/.test(key)));
    Object.assign(env, {
      VMDB_DATABASE_URL: mariadb.url,
      TEMPORAL_ADDRESS: temporal.address,
      VMDB_TASK_QUEUE: 'vmdb-faults',
      VMDB_FLEET_FILE: fleetFile,
      VMDB_TOKEN_SECRET: secret,
      VMDB_ADMIN_TOKEN: adminToken,
      VMDB_PUBLIC_API_URL: apiUrl,
      VMDB_LOG_LEVEL: 'warn',
      VMDB_WORKER_METRICS_PORT: '0',
      VMDB_TEMPORAL_METRICS_PORT: '0',
    });
    worker = new OwnedProcess('worker', [process.execPath, join(ROOT, 'dist/src/run-worker.js')], env);
    api = new OwnedProcess('api', [process.execPath, join(ROOT, 'dist/src/cli/main.js'), 'server', '--port', String(apiPort), '--quiet'], env);
    worker.start();
    api.start();

    // The worker creates the Director's schedule at start; one pass launches the instances.
    await waitFor('a Director pass', async () => ((await operator('POST', '/api/v1/director/trigger')).status === 200 ? true : undefined), 90_000, 500);
    const submitted = await waitFor(`${INSTANCES} instances with a VM`, async () => {
      const { body } = await operator('GET', '/api/v1/instances?limit=100');
      const col = (name: string) => body.ParameterNames.indexOf(name);
      const rows = (body.Records as unknown[][]).filter((r) => r[col('inst.UniqueID')] && r[col('inst.Status')] === 'Submitted');
      return rows.length >= INSTANCES ? rows.map((r) => [r[col('inst.InstanceID')] as number, r[col('inst.Name')] as string] as const) : undefined;
    }, 90_000, 500);
    instanceIDs = submitted.slice(0, INSTANCES).map(([id]) => id);
    // Each VM's token is bound to its instance's name, as the worker puts it in the user data.
    const tokens = new Map(submitted.map(([id, name]) => [id, makeVmToken(secret, id, name)]));
    // Each VM declares itself Running, as vmdb-agent does at boot.
    for (const id of instanceIDs) {
      await waitFor(`instance ${id} Running`, async () => {
        const res = await fetch(`${apiUrl}/api/v1/vms/${id}/running`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens.get(id)}`, 'content-type': 'application/json' },
          body: JSON.stringify({ publicIP: '127.0.0.1' }),
        });
        return res.status === 200 ? true : undefined;
      });
    }
    load = new HeartbeatLoad(apiUrl, instanceIDs.map((instanceID) => ({ instanceID, token: tokens.get(instanceID)! })));
  });

  after(async function () {
    await load?.stop();
    if (reports.length) console.log(`fault report ${JSON.stringify({ faults: reports, total: total(reports) })}`);
    await api?.stop();
    await worker?.stop();
    // The local VMs are processes of this machine, outside the worker's group.
    for (const driver of createDrivers(driverConfigs(fleet)).values()) {
      for (const vm of await driver.listInstances().catch(() => [])) await driver.stopInstance(vm.uniqueID).catch(() => undefined);
    }
    await temporal?.process.kill9();
    await mariadb?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Load for a moment, the fault, the outage, the recovery, more load; then the checks. */
  async function underFault(fault: string, inject: () => Promise<void>, recover: () => Promise<void>): Promise<FaultReport> {
    load.phase = fault;
    load.start();
    await acknowledgedByAll(fault, 0, 'steady load before the fault');
    await inject();
    await sleep(OUTAGE_MS);
    await recover();
    const recoveredAt = load.sent.length;
    await acknowledgedByAll(fault, recoveredAt, `heartbeats acknowledged again after the ${fault} recovered`);
    await load.stop();

    const report = await tally(fault, load.sent.filter((s) => s.phase === fault));
    reports.push(report);
    console.log(`fault ${JSON.stringify(report)}`);
    const unexpected = load.sent.filter((s) => s.phase === fault && !OUTAGE_STATUSES.has(s.status));
    assert.deepEqual(unexpected, [], `answers other than 200/503 during ${fault}`);
    const leaks = load.sent.filter((s) => s.phase === fault && s.status !== 0 && INTERNALS.test(s.body ?? ''));
    assert.deepEqual(leaks, [], `internal error text sent to a VM during ${fault}`);
    assert.equal(report.lost, 0, `acknowledged heartbeats without a history row after ${fault}`);
    assert.equal(report.duplicateRows, 0, `heartbeats recorded twice after ${fault} (a retry reuses its number)`);
    assert.ok(report.acknowledged > 0);
    await assertLifecyclesHealthy();
    return report;
  }

  /** Waits until every instance has 3 acknowledged heartbeats among those sent after `from`. */
  async function acknowledgedByAll(fault: string, from: number, what: string): Promise<void> {
    try {
      await waitFor(what, async () => {
        const later = load.sent.slice(from).filter((s) => s.phase === fault && isAcknowledged(s));
        return instanceIDs.every((id) => later.filter((s) => s.instanceID === id).length >= 3) ? true : undefined;
      }, 120_000, 200);
    } catch (err) {
      const recent = load.sent.slice(-6).map((s) => `${s.instanceID}#${s.seq}: ${s.status} ${s.body ?? s.directive}`);
      throw new Error(`${(err as Error).message}\nlast answers:\n${recent.join('\n')}\n${tails()}`);
    }
  }

  /** Every acknowledged heartbeat of `sent` looked up in vm_History by its sequence number (Jobs). */
  async function tally(fault: string, sent: Sent[]): Promise<FaultReport> {
    const rows = await withMysql(mariadb.url, async (conn) => {
      const [result] = await conn.query(
        'SELECT `InstanceID`, `Jobs`, COUNT(*) AS n FROM `vm_History` WHERE `Status` = ? AND `Jobs` > 0 GROUP BY `InstanceID`, `Jobs`',
        ['Running'],
      );
      return result as { InstanceID: number; Jobs: number; n: number }[];
    });
    const copies = new Map(rows.map((r) => [`${r.InstanceID}:${r.Jobs}`, Number(r.n)]));
    const acked = sent.filter(isAcknowledged);
    const rowsOf = (s: Sent) => copies.get(`${s.instanceID}:${s.seq}`) ?? 0;
    const recorded = acked.filter((s) => rowsOf(s) > 0).length;
    const statuses: Record<string, number> = {};
    for (const s of sent) {
      const key = s.status === 0 ? 'no answer' : String(s.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    return {
      fault,
      sent: sent.length,
      acknowledged: acked.length,
      recorded,
      lost: acked.length - recorded,
      duplicateRows: acked.reduce((n, s) => n + Math.max(0, rowsOf(s) - 1), 0),
      recordedUnacknowledged: sent.filter((s) => !isAcknowledged(s) && rowsOf(s) > 0).length,
      statuses,
    };
  }

  /**
   * Each instance of the load is Running with a running workflow; every other
   * instance is either finished (Halted/Error, workflow closed) or has a
   * running workflow whose timers will move it on.
   */
  async function assertLifecyclesHealthy(): Promise<void> {
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const client = new Client({ connection });
      const instances = await withMysql(mariadb.url, async (conn) => {
        const [result] = await conn.query('SELECT `InstanceID`, `Status` FROM `vm_Instances`');
        return result as { InstanceID: number; Status: string }[];
      });
      for (const { InstanceID, Status } of instances) {
        const workflow = (await client.workflow.getHandle(lifecycleWorkflowId(InstanceID)).describe()).status.name;
        if (instanceIDs.includes(InstanceID)) assert.equal(Status, 'Running', `instance ${InstanceID} of the load`);
        if (TERMINAL.has(Status)) assert.equal(workflow, 'COMPLETED', `instance ${InstanceID} is ${Status}: its workflow should have completed`);
        else assert.equal(workflow, 'RUNNING', `instance ${InstanceID} is ${Status}: its workflow is ${workflow}, so nothing will move it on`);
      }
    } finally {
      await connection.close();
    }
  }

  it('kill -9 of the worker, then a new worker: nothing acknowledged is lost', async function () {
    await underFault('worker kill -9', () => worker.kill9(), async () => worker.start());
  });

  it('kill -9 of the Temporal server (file persistence), then a restart: nothing acknowledged is lost', async function () {
    await underFault('temporal kill -9', () => temporal.process.kill9(), () => temporal.start());
  });

  it('MariaDB stopped, then started again: nothing acknowledged is lost', async function () {
    await underFault('mariadb stop', () => mariadb.stop(), () => mariadb.start());
  });

  it('MariaDB killed (kill -9, crash recovery at the restart): nothing acknowledged is lost', async function () {
    await underFault('mariadb kill -9', () => mariadb.process.kill9(), () => mariadb.start());
  });

  it('over all faults: 0 lost, 0 server errors', function () {
    assert.equal(reports.length, 4, 'every fault ran');
    const sum = total(reports);
    assert.equal(sum.lost, 0);
    assert.equal(sum.statuses['500'] ?? 0, 0);
  });

  it('the count itself can see a loss: a history row removed on purpose is reported lost', async function () {
    const victim = load.acknowledged().at(-1)!;
    await withMysql(mariadb.url, (conn) =>
      conn.query('DELETE FROM `vm_History` WHERE `InstanceID` = ? AND `Status` = ? AND `Jobs` = ?', [victim.instanceID, 'Running', victim.seq]),
    );
    assert.equal((await tally('self-check', [victim])).lost, 1);
  });
});

function total(reports: FaultReport[]) {
  const statuses: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const sum = (key: 'sent' | 'acknowledged' | 'recorded' | 'lost' | 'duplicateRows' | 'recordedUnacknowledged') => reports.reduce((n, r) => n + r[key], 0);
  return {
    sent: sum('sent'),
    acknowledged: sum('acknowledged'),
    recorded: sum('recorded'),
    lost: sum('lost'),
    duplicateRows: sum('duplicateRows'),
    recordedUnacknowledged: sum('recordedUnacknowledged'),
    statuses,
  };
}
