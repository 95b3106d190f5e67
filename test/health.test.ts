import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/server';
import { hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { createDrivers } from '../src/drivers/registry';
import { driverConfigs, validateFleet } from '../src/config/fleet';
import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { VirtualMachineDB } from '../src/db/vmdb';
import { serveWorkerHealth } from '../src/ops/worker-health';
import { BACKENDS, MYSQL_SERVER_URL, ok, withMysql } from './support/backends';
import { LifecycleRig } from './support/lifecycle-rig';
import { freePort } from './support/sshd';
import { startDevServer } from './support/temporal';

const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');
const PROBE = join(__dirname, '..', 'src', 'healthcheck.js');
const SECRET = newSecret();
const ADMIN = newSecret();
const OPERATORS = [{ name: 'admin', role: 'admin' as const, sha256: hashToken(ADMIN) }];
const BEAT = { load: 0.5, jobs: 3, transferredFiles: 1, transferredBytes: 100, uptime: 60 };

async function getJson(app: FastifyInstance, url: string): Promise<{ status: number; body: any }> {
  const res = await app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: JSON.parse(res.body) };
}

/** A process of the built CLI; its output is kept for failure messages. */
function startCli(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, output: () => string, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n--- output ---\n${output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

describe('health: /healthz and /readyz [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  const extra: { db: VirtualMachineDB; app: FastifyInstance }[] = [];

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET);
  });
  after(async function () {
    for (const { db, app: other } of extra) {
      await other.close();
      await db.close().catch(() => undefined);
    }
    await rig?.tearDown(); // drops every database this file created on MariaDB
    await env?.teardown();
  });

  /** Another API on a database of its own, prepared by `prepare`. */
  async function apiOn(prepare: (db: VirtualMachineDB, url: string) => Promise<void>, temporal = true): Promise<FastifyInstance> {
    const url = await BACKENDS[0].createDatabase();
    const db = await VirtualMachineDB.open({ url });
    await prepare(db, url);
    const other = await buildApi({ db, lifecycle: new LifecycleClient(env.client, db), temporal: temporal ? env.client : undefined, operators: OPERATORS, tokenSecret: SECRET });
    extra.push({ db, app: other });
    return other;
  }

  it('/healthz: the process is up, 200 whatever the dependencies', async function () {
    assert.deepEqual(await getJson(app, '/healthz'), { status: 200, body: { status: 'ok' } });
    const noTemporal = await apiOn(async () => undefined, false);
    assert.deepEqual(await getJson(noTemporal, '/healthz'), { status: 200, body: { status: 'ok' } });
  });

  it('/readyz: 200 when the database answers, its schema is current and Temporal answers', async function () {
    assert.deepEqual(await getJson(app, '/readyz'), { status: 200, body: { status: 'ready', database: 'ok', schema: 'current', temporal: 'ok', failed: [] } });
  });

  it('/readyz: 503 naming Temporal when it does not answer', async function () {
    const noTemporal = await apiOn(async () => undefined, false);
    const res = await getJson(noTemporal, '/readyz');
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { status: 'not ready', database: 'ok', schema: 'current', temporal: 'down', failed: ['temporal'], message: 'Temporal does not answer' });
    // /health keeps its contract: 200, degraded.
    assert.deepEqual(await getJson(noTemporal, '/health'), { status: 200, body: { status: 'degraded', database: 'ok', temporal: 'down' } });
  });

  it('/readyz: 503 naming the schema when a migration is pending (and open({ migrate: false }) refuses it)', async function () {
    let url = '';
    const behind = await apiOn(async (db, dbUrl) => {
      url = dbUrl;
      // The last migration "not applied yet": what a database looks like before `vmdb migrate` of a newer build.
      const [last] = ok(await db._query('SELECT MAX(id) AS id FROM `vm_Migrations`')) as { id: number }[];
      ok(await db._update('DELETE FROM `vm_Migrations` WHERE id = ?', [last.id]));
      assert.equal(await db.schemaIsCurrent(), false);
    });
    const res = await getJson(behind, '/readyz');
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, {
      status: 'not ready',
      database: 'ok',
      schema: 'behind',
      temporal: 'ok',
      failed: ['schema'],
      message: 'the database schema is behind this build: run `vmdb migrate`',
    });
    await assert.rejects(VirtualMachineDB.open({ url, migrate: false }), /The database schema is not current \(pending migrations\); run `vmdb migrate`/);
  });

  it('/readyz: 503 naming the database when it is gone (and the schema is not blamed)', async function () {
    const gone = await apiOn(async (_db, url) => {
      await withMysql(MYSQL_SERVER_URL, (conn) => conn.query(`DROP DATABASE \`${databaseName(url)}\``));
    });
    const res = await getJson(gone, '/readyz');
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { status: 'not ready', database: 'down', schema: 'unknown', temporal: 'ok', failed: ['database'], message: 'the database does not answer' });
  });

  it('/health is unchanged', async function () {
    assert.deepEqual(await getJson(app, '/health'), { status: 200, body: { status: 'ok', database: 'ok', temporal: 'ok' } });
  });

  describe('vmdb server on SIGTERM', function () {
    it('stops listening, answers the VM call in flight once it is committed, then exits 0', async function () {
      const launched = await rig.launch();
      await rig.waitForStatus(launched.instanceID, 'Submitted');
      const [{ name }] = ok(await rig.db._query('SELECT DATABASE() AS name')) as { name: string }[];
      const port = await freePort();
      const server = startCli(['server', '--quiet', '--port', String(port)], {
        VMDB_DATABASE_URL: `${MYSQL_SERVER_URL.replace(/\/$/, '')}/${name}`,
        VMDB_AUTO_MIGRATE: 'false', // the schema is current: the server starts without migrating
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        VMDB_TASK_QUEUE: rig.taskQueue,
        VMDB_TOKEN_SECRET: SECRET,
        VMDB_ADMIN_TOKEN: ADMIN,
      });
      const base = `http://127.0.0.1:${port}`;
      try {
        await waitFor('vmdb server /readyz', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined), server.output);
        const vm = { 'content-type': 'application/json', authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, launched.instanceID)}` };
        const beat = await fetch(`${base}/api/v1/vms/${launched.instanceID}/heartbeat`, { method: 'POST', headers: vm, body: JSON.stringify(BEAT) });
        assert.deepEqual([beat.status, await beat.json()], [200, { directive: 'ok' }], 'a heartbeat is recorded by the API itself');

        // With the worker away, `running` waits for its workflow to take it: a request in flight.
        await rig.stopWorker();
        const inFlight = fetch(`${base}/api/v1/vms/${launched.instanceID}/running`, { method: 'POST', headers: vm, body: '{}' });
        await new Promise((r) => setTimeout(r, 1000));
        server.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(server.child.exitCode, null, `the server waits for the request in flight\n${server.output()}`);
        await assert.rejects(fetch(`${base}/healthz`), 'no new connection is accepted while it stops');

        await rig.startWorker();
        const answer = await inFlight;
        assert.deepEqual([answer.status, await answer.json()], [200, { status: 'Running' }], 'the accepted call is answered');
        assert.equal(await server.exited, 0, server.output());
        assert.equal(ok(await rig.db.getInstanceParameter('Jobs', launched.instanceID)), BEAT.jobs, 'and recorded');
      } finally {
        if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
        if (rig.worker.getState() !== 'RUNNING') await rig.startWorker();
      }
    });
  });

  describe('vmdb worker', function () {
    it('serves /healthz and /readyz on VMDB_WORKER_HEALTH_PORT, and exits 0 on SIGTERM', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'vmdb-worker-health-'));
      const fleetFile = join(dir, 'fleet.json');
      // The Director and the sweep once a day: nothing is launched while the test runs.
      const fleet = { directorEverySeconds: 86_400, sweepEverySeconds: 86_400, endpoints: [{ endpoint: 'Local::health', image: 'img', runningPod: 'vo', maxInstances: 1, driver: { type: 'local', stateDir: join(dir, 'vms') } }] };
      writeFileSync(fleetFile, JSON.stringify(fleet));
      const port = await freePort();
      const worker = startCli(['worker'], {
        VMDB_DATABASE_URL: await BACKENDS[0].createDatabase(),
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        VMDB_TASK_QUEUE: `health-${process.pid}-${Date.now()}`,
        VMDB_TOKEN_SECRET: SECRET,
        VMDB_FLEET_FILE: fleetFile,
        VMDB_WORKER_HEALTH_PORT: String(port),
        VMDB_WORKER_METRICS_PORT: '0',
        VMDB_TEMPORAL_METRICS_PORT: '0',
      });
      const base = `http://127.0.0.1:${port}`;
      try {
        const ready = await waitFor(
          'the worker to be ready',
          async () => {
            const res = await fetch(`${base}/readyz`);
            return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
          },
          worker.output,
          90_000,
        );
        assert.deepEqual(ready, { status: 'ready', database: 'ok', schema: 'current', temporal: 'ok', worker: 'ok', failed: [] });
        assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
        assert.equal((await fetch(`${base}/nothing`)).status, 404);

        worker.child.kill('SIGTERM');
        assert.equal(await worker.exited, 0, worker.output());
        await assert.rejects(fetch(`${base}/healthz`), 'the health port closes with the worker');
      } finally {
        if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
        for (const driver of createDrivers(driverConfigs(validateFleet(fleet))).values()) {
          for (const vm of await driver.listInstances()) if (vm.status === 'running') await driver.stopInstance(vm.uniqueID);
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('worker health server (src/ops/worker-health.ts)', function () {
  it('/healthz always; /readyz 200 or 503 with the report; other paths 404', async function () {
    let report: { status: 'ready' | 'not ready'; failed: string[] } = { status: 'ready', failed: [] };
    let fail = false;
    const health = await serveWorkerHealth({
      host: '127.0.0.1',
      port: 0,
      probe: async () => {
        if (fail) throw new Error('probe broke');
        return report;
      },
    });
    try {
      const get = async (path: string, method = 'GET') => {
        const res = await fetch(`${health.url}${path}`, { method });
        return [res.status, method === 'HEAD' ? null : await res.json()];
      };
      assert.deepEqual(await get('/healthz'), [200, { status: 'ok' }]);
      assert.deepEqual(await get('/readyz'), [200, { status: 'ready', failed: [] }]);
      report = { status: 'not ready', failed: ['worker'] };
      assert.deepEqual(await get('/readyz?verbose=1'), [503, { status: 'not ready', failed: ['worker'] }]);
      fail = true;
      assert.deepEqual(await get('/readyz'), [503, { status: 'not ready', failed: ['probe'], message: 'probe broke' }]);
      assert.equal((await get('/metrics'))[0], 404);
      assert.equal((await get('/healthz', 'POST'))[0], 405);
    } finally {
      await health.close();
    }
    await assert.rejects(fetch(`${health.url}/healthz`));
  });

  it('a port in use is an error', async function () {
    const first = await serveWorkerHealth({ host: '127.0.0.1', port: 0, probe: async () => ({ status: 'ready' }) });
    try {
      await assert.rejects(serveWorkerHealth({ host: '127.0.0.1', port: Number(new URL(first.url).port), probe: async () => ({ status: 'ready' }) }), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

describe('healthcheck probe script (dist/src/healthcheck.js)', function () {
  this.timeout(30_000);
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.on('close', (code) => resolve({ code, stdout }));
    });

  it('exits 0 on a 2xx answer, 1 on another answer, on no answer or on none in time, 2 on bad arguments', async function () {
    let status = 200;
    let hang = false;
    const health = await serveWorkerHealth({
      host: '127.0.0.1',
      port: 0,
      probe: async () => {
        if (hang) await new Promise((r) => setTimeout(r, 3000));
        return { status: status === 200 ? 'ready' : 'not ready' };
      },
    });
    try {
      const readyz = `${health.url}/readyz`;
      assert.deepEqual(await run([readyz]), { code: 0, stdout: '200 {"status":"ready"}\n' });
      status = 503;
      assert.deepEqual(await run([readyz]), { code: 1, stdout: '503 {"status":"not ready"}\n' });
      hang = true;
      assert.deepEqual(await run([readyz, '500']), { code: 1, stdout: 'unreachable no answer within 500 ms\n' });
    } finally {
      await health.close();
    }
    const port = await freePort();
    const refused = await run([`http://127.0.0.1:${port}/readyz`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /^unreachable ECONNREFUSED/);
    assert.equal((await run([])).code, 2);
    assert.equal((await run(['http://x', 'soon'])).code, 2);
  });
});
