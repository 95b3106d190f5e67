import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { createDirectorActivities } from '../activities/director';
import { createSshActivities } from '../activities/ssh';
import { ROLES, type Role, hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { listeningPort, metricsBindAddress, serveMetrics } from '../src/ops/metrics';
import { BACKENDS, ok } from './support/backends';
import { ENDPOINT, LifecycleRig } from './support/lifecycle-rig';
import { type TestSshd, freePort, startSshd } from './support/sshd';
import { startDevServer } from './support/temporal';

const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: 'read-token-0123456789', operate: 'operate-token-0123456789', admin: 'admin-token-0123456789' };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-person`, role, sha256: hashToken(TOKENS[role]) }));
const beat = (n = 1) => ({ load: 0.5 * n, jobs: n, transferredFiles: n, transferredBytes: 1000 * n, uptime: 60 * n });
const ROOT = join(__dirname, '..', '..');

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** A scrape: the value of one series (0 when absent, as Prometheus' increase() treats a new series). */
class Scrape {
  constructor(readonly samples: Sample[]) {}
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    return found.reduce((sum, s) => sum + s.value, 0);
  }
  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }
}

describe('metrics [mariadb]', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let sshd: TestSshd;
  let app: FastifyInstance;

  before(async function () {
    sshd = await startSshd();
    env = await startDevServer();
    // Room for the Director test's slots beside the instances the tests before it leave occupying some.
    rig = new LifecycleRig(env, { sshPrivateKey: sshd.privateKey, tokenSecret: SECRET, maxInstances: 6 });
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET);
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
    await sshd?.stop();
  });

  async function request(method: InjectOptions['method'], url: string, token?: string, body?: object) {
    const res = await app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body ? { payload: body } : {}) });
    return { status: res.statusCode, body: /json/.test(String(res.headers['content-type'])) ? res.json() : res.body, headers: res.headers };
  }

  async function scrape(): Promise<Scrape> {
    const res = await request('GET', '/metrics');
    assert.equal(res.status, 200, String(res.body));
    return new Scrape(parseExposition(res.body as string));
  }

  /** Scrapes until `check` holds (metrics of activities move when the worker gets to them). */
  async function scrapeUntil(what: string, check: (s: Scrape) => boolean, timeoutMs = 30_000): Promise<Scrape> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const now = await scrape();
      if (check(now)) return now;
      if (Date.now() > until) throw new Error(`metrics never showed ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('/metrics (no metrics token: open to this machine) speaks the Prometheus text format: the vmdb metrics and the Node process ones', async function () {
    const res = await request('GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = res.body as string;
    for (const [name, type] of [
      ['vmdb_heartbeats_total', 'counter'],
      ['vmdb_transitions_total', 'counter'],
      ['vmdb_instances', 'gauge'],
      ['vmdb_director_launches_total', 'counter'],
      ['vmdb_director_failures_total', 'counter'],
      ['vmdb_activity_failures_total', 'counter'],
      ['vmdb_ssh_contextualization_seconds', 'histogram'],
      ['process_cpu_seconds_total', 'counter'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    }
    const now = new Scrape(parseExposition(text));
    for (const directive of ['ok', 'stop', 'halt', 'none']) assert.ok(now.samples.some((s) => s.name === 'vmdb_heartbeats_total' && s.labels.directive === directive), directive);
    // Every state has its series, 0 or not, so that dashboards need no absent().
    for (const status of ['New', 'Submitted', 'Running', 'Stopping', 'Halted', 'Stalled', 'Error']) {
      assert.ok(now.samples.some((s) => s.name === 'vmdb_instances' && s.labels.status === status), status);
    }
  });

  it('counts heartbeats by directive, transitions by from/to, and instances by state, through the API', async function () {
    const before = await scrape();
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const token = await vmTokenOf(rig.db, SECRET, instanceID);
    const vm = (route: string, body: object) => request('POST', `/api/v1/vms/${instanceID}/${route}`, token, body);

    assert.deepEqual((await vm('running', { privateIP: '10.0.0.9' })).body, { status: 'Running' });
    for (const n of [1, 2]) assert.deepEqual((await vm('heartbeat', beat(n))).body, { directive: 'ok' });
    const stop = await request('POST', '/api/v1/instances/stop', TOKENS.operate, { instanceIDs: [instanceID] });
    assert.deepEqual(stop.body, { results: { [instanceID]: { OK: true, Value: 'Stopping' } } });
    assert.deepEqual((await vm('heartbeat', beat(3))).body, { directive: 'stop' });
    assert.deepEqual((await vm('halting', { load: 0 })).body, { status: 'Halted' });
    await handle.result();
    // Halted: the instance's token is refused, and the VM told to halt before any heartbeat is counted.
    const ended = await vm('heartbeat', beat(4));
    assert.deepEqual([ended.status, ended.body.error, ended.body.state], [409, 'ended', 'halt']);
    // An instance without a VM gets no directive: counted as none.
    const bare = ok(await rig.db.insertInstance('', 'test-image', `bare-${Date.now()}`, ENDPOINT, 'testvo'));
    assert.equal((await request('POST', `/api/v1/vms/${bare}/heartbeat`, await vmTokenOf(rig.db, SECRET, bare), beat())).status, 409);

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    assert.deepEqual(
      Object.fromEntries(['ok', 'stop', 'halt', 'none'].map((directive) => [directive, delta('vmdb_heartbeats_total', { directive })])),
      { ok: 2, stop: 1, halt: 0, none: 1 },
    );
    const moves = [
      ['New', 'Submitted'],
      ['Submitted', 'Running'],
      ['Running', 'Stopping'],
      ['Stopping', 'Halted'],
    ];
    for (const [from, to] of moves) assert.equal(delta('vmdb_transitions_total', { kind: 'Instance', from, to }), 1, `${from} -> ${to}`);
    assert.equal(delta('vmdb_transitions_total', { kind: 'Instance', from: 'Running', to: 'Running' }), 0, 'a heartbeat refreshes, it does not change the state');
    // The image's first heartbeat validated it (in this fresh database, this test has the first one).
    assert.equal(delta('vmdb_transitions_total', { kind: 'Image', from: 'New', to: 'Validated' }), 1);

    const counters = ok(await rig.db.getInstanceCounters('Status'));
    for (const status of ['New', 'Submitted', 'Running', 'Stopping', 'Halted', 'Error']) {
      assert.equal(after.value('vmdb_instances', { status }), counters[status] ?? 0, status);
    }
    assert.ok(after.value('vmdb_instances', { status: 'Halted' }) >= 1);
    assert.equal(after.value('vmdb_instances', { status: 'New' }) - before.value('vmdb_instances', { status: 'New' }), 1, 'the bare instance');
  });

  it('a transition undone by a rollback is not counted', async function () {
    const before = await scrape();
    const id = ok(await rig.db.insertInstance(`unique-${Date.now()}`, 'test-image', `rolled-${Date.now()}`, ENDPOINT, 'testvo'));
    const rolledBack = await rig.db.transaction(async (tx) => {
      ok(await tx.declareInstanceRunning(ok(await tx.getUniqueID(id)), '10.0.0.1'));
      throw new Error('changed my mind');
    });
    assert.equal(rolledBack.OK, false);
    // A savepoint undone inside a transaction that commits: only what survived counts.
    ok(
      await rig.db.transaction(async (tx) => {
        const inner = await tx.transaction(async (inner) => {
          ok(await inner.declareInstanceRunning(ok(await inner.getUniqueID(id)), '10.0.0.1'));
          throw new Error('not this one');
        });
        assert.equal(inner.OK, false);
        ok(await tx.declareInstanceError(id, 'test: forced'));
      }),
    );
    const after = await scrape();
    const delta = (labels: Record<string, string>) => after.value('vmdb_transitions_total', labels) - before.value('vmdb_transitions_total', labels);
    assert.equal(delta({ kind: 'Instance', from: 'Submitted', to: 'Running' }), 0);
    assert.equal(delta({ kind: 'Instance', from: 'Submitted', to: 'Error' }), 1);
  });

  it('observes SSH contextualizations by outcome, and counts failed activity attempts', async function () {
    const before = await scrape();
    const { instanceID, handle } = await rig.launch({
      contextualization: { username: sshd.username, host: sshd.host, port: sshd.port, files: [{ path: join(sshd.dir, `m-${Date.now()}`, 'vo.conf'), content: 'VO=testvo\n' }], command: 'true', timeoutSeconds: 20, hostKeys: [sshd.hostKey] },
    });
    const after = await scrapeUntil('a successful contextualization', (s) => s.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'success' }) > before.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'success' }));
    assert.equal(after.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'success' }) - before.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'success' }), 1);
    const seconds = after.value('vmdb_ssh_contextualization_seconds_sum', { outcome: 'success' }) - before.value('vmdb_ssh_contextualization_seconds_sum', { outcome: 'success' });
    assert.ok(seconds > 0 && seconds < 20, `took ${seconds} s`);
    assert.equal(after.value('vmdb_ssh_contextualization_seconds_bucket', { outcome: 'success', le: '+Inf' }), after.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'success' }));
    await rig.waitForStatus(instanceID, 'Contextualizing');
    for (const [from, to] of [['Submitted', 'Wait_ssh_context'], ['Wait_ssh_context', 'Contextualizing']]) {
      assert.equal(after.value('vmdb_transitions_total', { kind: 'Instance', from, to }) - before.value('vmdb_transitions_total', { kind: 'Instance', from, to }), 1, `${from} -> ${to}`);
    }
    await handle.terminate('test done');

    // A VM whose sshd never answers: three failed waitForSsh attempts, then Error.
    const closed = await freePort();
    const unreachable = await rig.launch({ contextualization: { username: sshd.username, host: '127.0.0.1', port: closed, files: [], command: 'true', timeoutSeconds: 1 } });
    assert.equal((await unreachable.handle.result()).status, 'Error');
    const failed = await scrapeUntil('the failed attempts', (s) => s.value('vmdb_activity_failures_total', { activity: 'waitForSsh' }) - before.value('vmdb_activity_failures_total', { activity: 'waitForSsh' }) >= 3);
    assert.equal(failed.value('vmdb_activity_failures_total', { activity: 'waitForSsh' }) - before.value('vmdb_activity_failures_total', { activity: 'waitForSsh' }), 3, 'maximumAttempts 3');
    assert.equal(failed.value('vmdb_transitions_total', { kind: 'Instance', from: 'Wait_ssh_context', to: 'Error' }) - before.value('vmdb_transitions_total', { kind: 'Instance', from: 'Wait_ssh_context', to: 'Error' }), 1);

    // The contextualization itself failing, straight from the activity: its outcome is the failure type.
    const ssh = createSshActivities({ privateKey: sshd.privateKey });
    await assert.rejects(
      new MockActivityEnvironment().run(ssh.contextualize, { host: '127.0.0.1', port: closed, username: sshd.username, files: [], command: 'true', timeoutSeconds: 1 }),
      (err: Error & { type?: string }) => err.type === 'SshUnreachable',
    );
    const last = await scrape();
    assert.equal(last.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'SshUnreachable' }) - before.value('vmdb_ssh_contextualization_seconds_count', { outcome: 'SshUnreachable' }), 1);
  });

  it('counts a failed cloud activity (an endpoint without a driver)', async function () {
    const before = await scrape();
    const { handle } = await rig.launch({ endpoint: 'Nowhere::none' });
    const final = await handle.result();
    assert.equal(final.status, 'Error', 'no driver: the instance is in Error, not retried');
    const after = await scrapeUntil('the failed createInstance', (s) => s.value('vmdb_activity_failures_total', { activity: 'createInstance' }) > before.value('vmdb_activity_failures_total', { activity: 'createInstance' }));
    assert.equal(after.value('vmdb_activity_failures_total', { activity: 'createInstance' }) - before.value('vmdb_activity_failures_total', { activity: 'createInstance' }), 1, 'UnknownEndpoint is not retried');
  });

  it('counts Director launches per endpoint after a directorPass, and its failures', async function () {
    const before = await scrape();
    const reports = (await env.client.workflow.execute('directorPass', { workflowId: `director-metrics-${Date.now()}`, taskQueue: rig.taskQueue, args: [] })) as { endpoint: string; reserved: number[] }[];
    const reserved = reports.flatMap((r) => r.reserved);
    assert.ok(reserved.length >= 1, 'the pass had free slots to fill');
    const after = await scrape();
    assert.equal(after.value('vmdb_director_launches_total', { endpoint: ENDPOINT }) - before.value('vmdb_director_launches_total', { endpoint: ENDPOINT }), reserved.length);
    assert.equal(after.value('vmdb_director_failures_total', { endpoint: ENDPOINT }) - before.value('vmdb_director_failures_total', { endpoint: ENDPOINT }), 0);
    for (const id of reserved) await rig.waitForStatus(id, 'Submitted');
    for (const id of reserved) await env.client.workflow.getHandle(`vm-${id}`).terminate('test done');

    // An endpoint whose image is in Error cannot be filled: a failure for that endpoint.
    ok(await rig.db.declareImageError('broken-image', 'test: broken'));
    const broken = { ...rig.fleet.endpoints[0], endpoint: 'Local::broken', image: 'broken-image' };
    const director = createDirectorActivities({ db: rig.db, client: env.client, taskQueue: rig.taskQueue, endpoints: [broken], drivers: rig.drivers });
    await assert.rejects(director.launchFreeSlots(), /reserve Local::broken/);
    const failed = await scrape();
    assert.equal(failed.value('vmdb_director_failures_total', { endpoint: 'Local::broken' }) - before.value('vmdb_director_failures_total', { endpoint: 'Local::broken' }), 1);
    assert.equal(failed.value('vmdb_director_launches_total', { endpoint: 'Local::broken' }) - before.value('vmdb_director_launches_total', { endpoint: 'Local::broken' }), 0);
    assert.equal(failed.value('vmdb_transitions_total', { kind: 'Image', from: 'New', to: 'Error' }) - before.value('vmdb_transitions_total', { kind: 'Image', from: 'New', to: 'Error' }), 1);
  });

  it('the worker process serves /metrics and the Temporal SDK metrics on their own ports, and logs JSON', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'vmdb-worker-metrics-'));
    const fleetFile = join(dir, 'fleet.json');
    // A Director that will not fire during the test, and VMs that end by themselves if it does.
    writeFileSync(
      fleetFile,
      JSON.stringify({
        directorEverySeconds: 86_400,
        sweepEverySeconds: 86_400,
        endpoints: [{ endpoint: 'Local::metrics', image: 'metrics-image', runningPod: 'testvo', maxInstances: 1, driver: { type: 'local', stateDir: join(dir, 'vms'), command: ['sleep', '30'] } }],
      }),
    );
    const [vmdbPort, temporalPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'run-worker.js')], {
      env: {
        ...process.env,
        VMDB_DATABASE_URL: await BACKENDS[0].createDatabase(),
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        VMDB_TASK_QUEUE: `${rig.taskQueue}-process`,
        VMDB_FLEET_FILE: fleetFile,
        VMDB_WORKER_METRICS_PORT: String(vmdbPort),
        VMDB_TEMPORAL_METRICS_PORT: `127.0.0.1:${temporalPort}`,
        VMDB_TOKEN_SECRET: SECRET,
        VMDB_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    try {
      const get = async (port: number) => {
        const until = Date.now() + 30_000;
        for (;;) {
          try {
            const res = await fetch(`http://127.0.0.1:${port}/metrics`);
            const text = await res.text();
            if (res.ok && text.length > 0) return text;
          } catch {
            // not listening yet
          }
          if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}:\n${output}`);
          if (Date.now() > until) throw new Error(`nothing on port ${port}:\n${output}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      const vmdb = await get(vmdbPort);
      assert.match(vmdb, /^# TYPE vmdb_activity_failures_total counter$/m);
      assert.match(vmdb, /^# TYPE process_cpu_seconds_total counter$/m);
      let temporal = await get(temporalPort);
      for (let i = 0; i < 50 && !/temporal_/.test(temporal); i++) {
        await new Promise((r) => setTimeout(r, 200));
        temporal = await get(temporalPort);
      }
      assert.match(temporal, /^temporal_\w+/m, 'the SDK runtime exports its worker metrics');
      const jsonLines = () => output.split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).map((l) => JSON.parse(l));
      for (let i = 0; i < 150 && !jsonLines().some((l) => l.msg === 'vmdb worker running'); i++) await new Promise((r) => setTimeout(r, 200));
      const running = jsonLines().find((l) => l.msg === 'vmdb worker running');
      assert.ok(running, output);
      assert.equal(running.level, 'info');
      assert.equal(running.taskQueue, `${rig.taskQueue}-process`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics settings', function () {
  it('the metrics ports: a port, host:port, 0 for none; a bad value names its variable', function () {
    assert.equal(metricsBindAddress('VMDB_WORKER_METRICS_PORT', undefined, 9464), '127.0.0.1:9464');
    assert.equal(metricsBindAddress('VMDB_WORKER_METRICS_PORT', '', 9464), '127.0.0.1:9464');
    assert.equal(metricsBindAddress('VMDB_WORKER_METRICS_PORT', '9999', 9464), '127.0.0.1:9999');
    assert.equal(metricsBindAddress('VMDB_TEMPORAL_METRICS_PORT', '0.0.0.0:9465', 9465), '0.0.0.0:9465');
    assert.equal(metricsBindAddress('VMDB_TEMPORAL_METRICS_PORT', '0', 9465), undefined);
    assert.throws(() => metricsBindAddress('VMDB_WORKER_METRICS_PORT', 'http://x:1', 9464), /VMDB_WORKER_METRICS_PORT: "http:\/\/x:1"/);
    assert.throws(() => metricsBindAddress('VMDB_WORKER_METRICS_PORT', '70000', 9464), /VMDB_WORKER_METRICS_PORT/);
  });

  it("serveMetrics answers GET /metrics with the registry, anything else 404", async function () {
    const server = await serveMetrics('127.0.0.1:0');
    try {
      const base = `http://127.0.0.1:${listeningPort(server)}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      assert.match(await res.text(), /^# HELP vmdb_heartbeats_total /m);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
