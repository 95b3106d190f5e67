/**
 * Benchmark 1 of issue 6: heartbeat throughput.
 *
 * N instances (default 2,000) are brought to Running through their real workflows, on a fake
 * in-process cloud driver; then VMs' heartbeats are sent over HTTP (API -> workflow update -> MariaDB,
 * answer returned) with a fixed concurrency for a fixed duration (or count). Baseline in the same run:
 * the same number of heartbeats through the library facade (db.instanceIDHeartBeat), same concurrency.
 *
 *   npm run bench -- --vms 100 --duration 15
 *   node dist/bench/heartbeats.js [--vms N] [--concurrency C] [--duration S | --count K] [--warmup S] [--client fetch|http]
 *
 * Prints the figures as JSON, writes them to bench/results/heartbeats-<timestamp>.json, and ends
 * with one summary line against the targets (>= 500/s, p99 <= 100 ms, >= 0.5x direct).
 */
import {
  BenchDriver,
  cpuMeter,
  createBenchDatabase,
  databaseServerPid,
  latencySummary,
  machineInfo,
  numberOption,
  ok,
  pool,
  round,
  startPersistentDevServer,
  stringOption,
  workflowBundle,
  writeResult,
} from './support';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Worker } from '@temporalio/worker';
import { buildApi } from '../src/api/server';
import { makeVmToken, newSecret } from '../src/auth/tokens';
import type { CloudDriver } from '../src/drivers/driver';
import { validateFleet } from '../src/fleet-config';
import { LifecycleClient } from '../src/lifecycle-client';
import { VirtualMachineDB } from '../src/vmdb';
import { createVmdbWorker } from '../src/worker';
import { type LifecycleInput, lifecycleWorkflowId } from '../workflows/definitions';

const ENDPOINT = 'Bench::fake';
const IMAGE = 'bench-image';
const POD = 'benchvo';

const TARGETS = { heartbeatsPerSecond: 500, p99Ms: 100, ratioToDirect: 0.5 };

interface Options {
  vms: number;
  concurrency: number;
  durationSeconds: number;
  count: number | undefined;
  warmupSeconds: number;
  client: 'fetch' | 'http';
}

function parseOptions(argv: readonly string[]): Options {
  const known = new Set(['--vms', '--concurrency', '--duration', '--count', '--warmup', '--client']);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) throw new Error(`unknown option ${JSON.stringify(argv[i])} (known: ${[...known].join(', ')})`);
  }
  const client = stringOption(argv, 'client', 'fetch');
  if (client !== 'fetch' && client !== 'http') throw new Error('--client must be fetch or http');
  const count = numberOption(argv, 'count', undefined);
  return {
    vms: Math.floor(numberOption(argv, 'vms', 2000)!),
    concurrency: Math.floor(numberOption(argv, 'concurrency', 64)!),
    durationSeconds: numberOption(argv, 'duration', 30)!,
    count: count === undefined ? undefined : Math.floor(count),
    warmupSeconds: argv.includes('--warmup') ? Number(argv[argv.indexOf('--warmup') + 1]) : 2,
    client,
  };
}

interface Vm {
  instanceID: number;
  uniqueID: string;
  token: string;
}

interface RunFigures {
  sent: number;
  succeeded: number;
  errors: number;
  errorKinds: Record<string, number>;
  elapsedSeconds: number;
  latenciesMs: number[];
}

/**
 * Runs `one(seq)` from `concurrency` lanes until `count` calls have started or `durationMs` has
 * passed (calls in flight then finish and count). `one` resolves to null on success or an error kind.
 */
async function drive(concurrency: number, limit: { count?: number; durationMs?: number }, one: (seq: number) => Promise<string | null>): Promise<RunFigures> {
  const figures: RunFigures = { sent: 0, succeeded: 0, errors: 0, errorKinds: {}, elapsedSeconds: 0, latenciesMs: [] };
  const started = performance.now();
  const deadline = limit.durationMs === undefined ? Infinity : started + limit.durationMs;
  let seq = 0;
  const lane = async () => {
    for (;;) {
      if (limit.count !== undefined && seq >= limit.count) return;
      if (performance.now() >= deadline) return;
      const mine = seq++;
      figures.sent++;
      const t0 = performance.now();
      let kind: string | null;
      try {
        kind = await one(mine);
      } catch (err) {
        kind = `exception: ${(err as Error).message.slice(0, 80)}`;
      }
      figures.latenciesMs.push(performance.now() - t0);
      if (kind === null) figures.succeeded++;
      else {
        figures.errors++;
        figures.errorKinds[kind] = (figures.errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  figures.elapsedSeconds = (performance.now() - started) / 1000;
  return figures;
}

const beat = (seq: number) => ({ load: (seq % 400) / 100, jobs: seq % 8, transferredFiles: seq % 100, transferredBytes: seq * 1000, uptime: 60 + (seq % 3600) });

/** A heartbeat sender over HTTP with keep-alive: global fetch (undici) or node:http with a keep-alive agent. */
function heartbeatSender(kind: Options['client'], baseUrl: string, concurrency: number): { send(vm: Vm, seq: number): Promise<string | null>; close(): void } {
  if (kind === 'fetch') {
    return {
      async send(vm, seq) {
        const res = await fetch(`${baseUrl}/api/v1/vms/${vm.instanceID}/heartbeat`, {
          method: 'POST',
          headers: { authorization: `Bearer ${vm.token}`, 'content-type': 'application/json', connection: 'keep-alive' },
          body: JSON.stringify(beat(seq)),
        });
        const text = await res.text();
        if (res.status !== 200) return `HTTP ${res.status}`;
        const directive = (JSON.parse(text) as { directive?: string }).directive;
        return directive === 'ok' ? null : `directive ${directive}`;
      },
      close() {},
    };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(baseUrl);
  return {
    send(vm, seq) {
      const body = JSON.stringify(beat(seq));
      return new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            agent,
            host: url.hostname,
            port: url.port,
            method: 'POST',
            path: `/api/v1/vms/${vm.instanceID}/heartbeat`,
            headers: { authorization: `Bearer ${vm.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              if (res.statusCode !== 200) return resolve(`HTTP ${res.statusCode}`);
              const directive = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { directive?: string }).directive;
              resolve(directive === 'ok' ? null : `directive ${directive}`);
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    },
    close() {
      agent.destroy();
    },
  };
}

async function waitForCount(db: VirtualMachineDB, status: string, expected: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const counters = await db.getInstanceCounters('Status');
    if (!counters.OK) throw new Error(`getInstanceCounters: ${counters.Message}`);
    const now = counters.Value[status] ?? 0;
    if (now >= expected) return;
    if (Date.now() > until) throw new Error(`only ${now} of ${expected} instances reached ${status} in ${timeoutMs / 1000} s (counters: ${JSON.stringify(counters.Value)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function summarise(name: string, run: RunFigures) {
  return {
    path: name,
    sent: run.sent,
    succeeded: run.succeeded,
    errors: run.errors,
    errorKinds: run.errorKinds,
    elapsedSeconds: round(run.elapsedSeconds, 3),
    heartbeatsPerSecond: round(run.succeeded / run.elapsedSeconds, 1),
    latencyMs: latencySummary(run.latenciesMs),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => console.error(`[bench] ${line}`); // progress on stderr; stdout carries the JSON and the summary
  const cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const { what, fn } of cleanups.reverse()) {
        try {
          await fn();
        } catch (err) {
          console.error(`[bench] cleanup of ${what} failed: ${(err as Error).message}`);
        }
      }
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`[bench] ${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const setupStarted = performance.now();
    log(`options ${JSON.stringify(options)}`);

    const database = await createBenchDatabase();
    cleanups.push({ what: 'database', fn: () => database.drop() });
    const db = await VirtualMachineDB.open({ url: database.url });
    cleanups.push({ what: 'database connection', fn: () => db.close() });
    log(`database ${new URL(database.url).pathname.slice(1)}`);

    const temporal = await startPersistentDevServer();
    cleanups.push({ what: 'Temporal dev server', fn: () => temporal.teardown() });
    const env = temporal;
    log(`Temporal dev server up (file persistence in ${temporal.dir})`);

    const tokenSecret = newSecret();
    const lifecycle = new LifecycleClient(env.client, db);
    const app = await buildApi({ db, lifecycle, temporal: env.client, operators: [], tokenSecret, logger: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push({ what: 'API', fn: () => app.close() });
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    log(`API on ${baseUrl}`);

    const taskQueue = `vmdb-bench-${process.pid}-${Date.now()}`;
    const fleet = validateFleet({
      endpoints: [{ endpoint: ENDPOINT, image: IMAGE, runningPod: POD, maxInstances: options.vms, driver: { type: 'bench' } }],
    });
    const drivers = new Map<string, CloudDriver>([[ENDPOINT, new BenchDriver(ENDPOINT)]]);
    const worker: Worker = await createVmdbWorker({
      db,
      client: env.client,
      connection: env.nativeConnection,
      namespace: env.namespace,
      taskQueue,
      fleet,
      drivers,
      vmCredentials: { apiUrl: baseUrl, tokenSecret },
      workflowBundle: await workflowBundle(),
      tuning: process.env.BENCH_WORKER_TUNING ? JSON.parse(process.env.BENCH_WORKER_TUNING) : undefined,
    });
    const workerDone = worker.run();
    cleanups.push({
      what: 'worker',
      fn: async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerDone;
      },
    });
    log('worker running');

    // N instances: inserted through the facade, their workflows started as the Director would, Submitted, then Running.
    const phase = performance.now();
    const ids: number[] = new Array(options.vms);
    await pool(ids, 16, async (_, i) => {
      ids[i] = ok(await db.insertInstance('', IMAGE, `bench-${i}`, ENDPOINT, POD), 'insertInstance');
    });
    const insertSeconds = (performance.now() - phase) / 1000;
    log(`${options.vms} instances inserted in ${insertSeconds.toFixed(1)} s`);
    const startPhase = performance.now();
    await pool(ids, 32, async (instanceID, i) => {
      const input: LifecycleInput = { instanceID, instanceName: `bench-${i}`, imageName: IMAGE, endpoint: ENDPOINT, runningPod: POD, stallingIntervalSeconds: 2400 };
      await env.client.workflow.start('instanceLifecycle', { workflowId: lifecycleWorkflowId(instanceID), taskQueue, args: [input] });
    });
    await waitForCount(db, 'Submitted', options.vms, 60_000 + options.vms * 100);
    const submitSeconds = (performance.now() - startPhase) / 1000;
    log(`${options.vms} workflows started and Submitted in ${submitSeconds.toFixed(1)} s`);
    const runningPhase = performance.now();
    const vms: Vm[] = new Array(options.vms);
    await pool(ids, 32, async (instanceID, i) => {
      const uniqueID = ok(await db.getUniqueID(instanceID), 'getUniqueID');
      const status = ok(await lifecycle.running(uniqueID, '10.0.0.1', ''), `running ${instanceID}`);
      if (status !== 'Running') throw new Error(`instance ${instanceID} is ${status} after its running update`);
      vms[i] = { instanceID, uniqueID, token: makeVmToken(tokenSecret, instanceID) };
    });
    await waitForCount(db, 'Running', options.vms, 30_000);
    const runningSeconds = (performance.now() - runningPhase) / 1000;
    log(`${options.vms} instances Running in ${runningSeconds.toFixed(1)} s`);
    const setupSeconds = (performance.now() - setupStarted) / 1000;

    // Over HTTP: API -> workflow update -> activity -> MariaDB, the directive returned.
    const sender = heartbeatSender(options.client, baseUrl, options.concurrency);
    cleanups.push({ what: 'HTTP client', fn: () => sender.close() });
    if (options.warmupSeconds > 0) {
      const warm = await drive(options.concurrency, { durationMs: options.warmupSeconds * 1000 }, (seq) => sender.send(vms[seq % vms.length], seq));
      log(`warm-up: ${warm.sent} heartbeats over HTTP in ${warm.elapsedSeconds.toFixed(1)} s, ${warm.errors} errors (not counted)`);
    }
    const offset = 1_000_000; // distinct figures from the warm-up's
    log(`HTTP: ${options.count !== undefined ? `${options.count} heartbeats` : `${options.durationSeconds} s`} at concurrency ${options.concurrency}`);
    // CPU per heartbeat, by process: the profile that says where a heartbeat's cost goes.
    const meter = cpuMeter({ 'bench process (API, worker, load)': process.pid, 'Temporal server': temporal.pid, MariaDB: databaseServerPid() });
    meter.start();
    const http = await drive(
      options.concurrency,
      options.count !== undefined ? { count: options.count } : { durationMs: options.durationSeconds * 1000 },
      (seq) => sender.send(vms[seq % vms.length], offset + seq),
    );
    log(`HTTP: ${http.succeeded}/${http.sent} ok in ${http.elapsedSeconds.toFixed(1)} s`);
    const httpCpu = meter.perOperationMs(http.succeeded);
    meter.start();

    // Baseline: the same number of heartbeats straight through the facade, same concurrency, same VMs in the same order.
    const direct = await drive(options.concurrency, { count: http.sent }, async (seq) => {
      const vm = vms[seq % vms.length];
      const f = beat(2 * offset + seq);
      const result = await db.instanceIDHeartBeat(vm.uniqueID, f.load, f.jobs, f.transferredFiles, f.transferredBytes, f.uptime);
      if (!result.OK) return `facade: ${result.Message.slice(0, 80)}`;
      return null;
    });
    log(`direct: ${direct.succeeded}/${direct.sent} ok in ${direct.elapsedSeconds.toFixed(1)} s`);
    const directCpu = meter.perOperationMs(direct.succeeded);
    const cpuTotal = (byProcess: Record<string, number | null>) => round(Object.values(byProcess).reduce<number>((a, b) => a + (b ?? 0), 0), 2);

    const httpFigures = summarise('http -> workflow -> MariaDB', http);
    const directFigures = summarise('facade db.instanceIDHeartBeat -> MariaDB', direct);
    const ratio = directFigures.heartbeatsPerSecond ? round((httpFigures.heartbeatsPerSecond ?? 0) / directFigures.heartbeatsPerSecond, 3) : null;
    const verdicts = {
      throughput: (httpFigures.heartbeatsPerSecond ?? 0) >= TARGETS.heartbeatsPerSecond,
      p99: httpFigures.latencyMs.p99 !== null && httpFigures.latencyMs.p99 <= TARGETS.p99Ms,
      ratio: ratio !== null && ratio >= TARGETS.ratioToDirect,
    };
    const figures = {
      benchmark: 'heartbeat-throughput',
      issue: 6,
      at: new Date().toISOString(),
      options: { ...options, vms: options.vms, mode: options.count !== undefined ? 'count' : 'duration' },
      setup: { seconds: round(setupSeconds, 1), insertSeconds: round(insertSeconds, 1), startToSubmittedSeconds: round(submitSeconds, 1), toRunningSeconds: round(runningSeconds, 1) },
      http: httpFigures,
      direct: directFigures,
      ratioToDirect: ratio,
      cpuMsPerHeartbeat: {
        http: { ...httpCpu, total: cpuTotal(httpCpu) },
        direct: { ...directCpu, total: cpuTotal(directCpu) },
        // The most this machine's cores could carry if the HTTP path had them to itself.
        cpuBoundCeilingPerSecond: round((machineInfo().cpuCount * 1000) / Math.max(cpuTotal(httpCpu) ?? 0, 0.001), 0),
        note: 'CPU time each process used during the run, divided by the heartbeats recorded; MariaDB is shared with anything else running',
      },
      targets: TARGETS,
      met: { ...verdicts, all: verdicts.throughput && verdicts.p99 && verdicts.ratio && http.errors === 0 },
      process: { rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20), note: 'one process holds the API, the worker, the HTTP client and the direct baseline' },
      machine: machineInfo(),
    };
    const file = writeResult('heartbeats', figures);
    console.log(JSON.stringify(figures, null, 2));
    const mark = (okay: boolean) => (okay ? 'MET' : 'NOT MET');
    console.log(
      `heartbeats: N=${options.vms} c=${options.concurrency} ${httpFigures.heartbeatsPerSecond}/s over HTTP (target >= ${TARGETS.heartbeatsPerSecond}: ${mark(verdicts.throughput)}), ` +
        `p99 ${httpFigures.latencyMs.p99} ms (target <= ${TARGETS.p99Ms}: ${mark(verdicts.p99)}), ` +
        `${ratio}x direct ${directFigures.heartbeatsPerSecond}/s (target >= ${TARGETS.ratioToDirect}: ${mark(verdicts.ratio)}), ` +
        `${http.errors} errors; CPU ${figures.cpuMsPerHeartbeat.http.total} ms per heartbeat over HTTP vs ${figures.cpuMsPerHeartbeat.direct.total} direct; overall ${mark(figures.met.all)} [${file}]`,
    );
  } finally {
    await cleanUp();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench] failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
