/**
 * The heartbeat benchmark (issue 13, item 5): each figure beside baselines measured in the same run.
 *
 * N instances (default 2,000) are brought to Running through their real workflows, on a fake
 * in-process cloud driver. Then, each path with the same concurrency for the same duration:
 *
 *   A. Temporal's floor: a bare workflow whose signal handler does nothing (bench/bare-signal-workflow.ts,
 *      bundled apart, its own worker and task queue, N workflows), signalled as the API signals a VM's.
 *   B. The direct facade path: db.recordHeartbeat(instanceID, figures, { bootId, seq }), no Temporal.
 *   C. The real path: heartbeats over HTTP (the API records each in one transaction, then signals
 *      vm-<InstanceID>), each with its VM's boot id and next sequence number. Afterwards the
 *      vm_History rows and the sent-signal counter must both have grown by the number acknowledged.
 *
 * Then the open-loop runs: heartbeats over HTTP (and bare signals) started at a fixed --rate
 * whatever the answers, for the p99 at that offered load. CPU is counted per process (this one:
 * API, both workers and the load; the Temporal server; MariaDB) and for the whole machine.
 *
 *   npm run bench:heartbeats -- --vms 2000 --concurrency 64 --duration 30 --rate 250
 *   node dist/bench/heartbeats.js [--vms N] [--concurrency C] [--duration S] [--warmup S]
 *     [--rate R] [--rate-duration S] [--client fetch|http] [--api-log info|off] [--profile DIR]
 *
 * Prints the figures as JSON, writes them to bench/results/heartbeats-<timestamp>.json, and ends
 * with one summary line against the targets.
 */
import {
  BenchDriver,
  benchWorkflowBundle,
  cpuMeter,
  createBenchDatabase,
  databaseServerPid,
  machineInfo,
  numberOption,
  ok,
  pool,
  round,
  settle,
  startPersistentDevServer,
  stringOption,
  workflowBundle,
  writeResult,
} from './support';
import { type Call, type RunFigures, closedLoop, openLoop, summarise } from './load';
import { bareSignal } from './bare-signal-workflow';
import { profiled, summariseProfile } from './profile';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { buildApi } from '../src/api/server';
import { makeVmToken, newSecret } from '../src/auth/tokens';
import type { CloudDriver } from '../src/drivers/driver';
import { validateFleet } from '../src/config/fleet';
import { DEFAULT_SIGNAL_TIMEOUT_MS } from '../src/temporal/heartbeat-path';
import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { createLogger } from '../src/ops/log';
import { heartbeatSignals } from '../src/ops/metrics';
import { VirtualMachineDB } from '../src/db/vmdb';
import { createVmdbWorker } from '../src/temporal/worker';
import { withMysql } from '../test/support/backends';
import { type HeartbeatNews, type LifecycleInput, lifecycleWorkflowId } from '../workflows/definitions';

const ENDPOINT = 'Bench::fake';
const IMAGE = 'bench-image';
const POD = 'benchvo';

/** Issue 13's targets on the 2-core machine. */
const TARGETS = { httpPerSecond: 450, ratioToBareSignal: 0.6, cpuMsPerHeartbeat: 4.5, p99AtRateMs: 100, atRate: 250 };

interface Options {
  vms: number;
  concurrency: number;
  durationSeconds: number;
  warmupSeconds: number;
  rate: number;
  rateDurationSeconds: number;
  client: 'fetch' | 'http';
  apiLog: 'info' | 'off';
  /** A folder: phase C runs under V8's profiler and its .cpuprofile is written there (the profiler costs CPU too). */
  profileDir: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const known = new Set(['--vms', '--concurrency', '--duration', '--warmup', '--rate', '--rate-duration', '--client', '--api-log', '--profile']);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) throw new Error(`unknown option ${JSON.stringify(argv[i])} (known: ${[...known].join(', ')})`);
  }
  const client = stringOption(argv, 'client', 'fetch');
  if (client !== 'fetch' && client !== 'http') throw new Error('--client must be fetch or http');
  const apiLog = stringOption(argv, 'api-log', 'info');
  if (apiLog !== 'info' && apiLog !== 'off') throw new Error('--api-log must be info or off');
  const durationSeconds = numberOption(argv, 'duration', 30)!;
  const options: Options = {
    vms: Math.floor(numberOption(argv, 'vms', 2000)!),
    concurrency: Math.floor(numberOption(argv, 'concurrency', 64)!),
    durationSeconds,
    warmupSeconds: argv.includes('--warmup') ? Number(argv[argv.indexOf('--warmup') + 1]) : 2,
    rate: numberOption(argv, 'rate', TARGETS.atRate)!,
    rateDurationSeconds: numberOption(argv, 'rate-duration', durationSeconds)!,
    client,
    apiLog,
    profileDir: argv.includes('--profile') ? stringOption(argv, 'profile', '') : undefined,
  };
  // Two calls of one VM in flight at once could commit out of order, and the later sequence number would make the earlier a repeat.
  if (options.concurrency >= options.vms) throw new Error('--concurrency must be below --vms (one heartbeat per VM in flight at a time)');
  return options;
}

interface Vm {
  instanceID: number;
  uniqueID: string;
  token: string;
  bootId: string;
  /** The last sequence number sent; every heartbeat of the run, whatever its path, takes the next. */
  seq: number;
}

const beat = (n: number) => ({ load: (n % 400) / 100, jobs: n % 8, transferredFiles: n % 100, transferredBytes: n * 1000, uptime: 60 + (n % 3600) });

/** A heartbeat sender over HTTP with keep-alive: global fetch (undici) or node:http with a keep-alive agent. */
function heartbeatSender(kind: Options['client'], baseUrl: string, concurrency: number): { send(vm: Vm, body: string): Promise<string | null>; close(): void } {
  const answer = (status: number | undefined, text: string) => {
    if (status !== 200) return `HTTP ${status}`;
    const directive = (JSON.parse(text) as { directive?: string }).directive;
    return directive === 'ok' ? null : `directive ${directive}`;
  };
  if (kind === 'fetch') {
    return {
      async send(vm, body) {
        const res = await fetch(`${baseUrl}/api/v1/vms/${vm.instanceID}/heartbeat`, {
          method: 'POST',
          headers: { authorization: `Bearer ${vm.token}`, 'content-type': 'application/json', connection: 'keep-alive' },
          body,
          signal: AbortSignal.timeout(60_000),
        });
        return answer(res.status, await res.text());
      },
      close() {},
    };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(baseUrl);
  return {
    send(vm, body) {
      return new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            agent,
            host: url.hostname,
            port: url.port,
            method: 'POST',
            path: `/api/v1/vms/${vm.instanceID}/heartbeat`,
            headers: { authorization: `Bearer ${vm.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            timeout: 60_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(answer(res.statusCode, Buffer.concat(chunks).toString('utf8'))));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('timed out')));
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

/** What the record and the API's counter say happened: rows in vm_History, signals sent. */
async function tally(databaseUrl: string): Promise<{ historyRows: number; signalsSent: number }> {
  const [rows] = await withMysql(databaseUrl, (conn) => conn.query('SELECT COUNT(*) AS n FROM `vm_History`'));
  const sent = (await heartbeatSignals.get()).values.find((v) => v.labels.outcome === 'sent')?.value ?? 0;
  return { historyRows: Number((rows as { n: number }[])[0].n), signalsSent: sent };
}

/** Each heartbeat acknowledged must have been recorded once and signalled once. */
function verification(before: { historyRows: number; signalsSent: number }, after: { historyRows: number; signalsSent: number }, acknowledged: number) {
  const historyRowsAdded = after.historyRows - before.historyRows;
  const signalsSent = after.signalsSent - before.signalsSent;
  return { acknowledged, historyRowsAdded, signalsSent, consistent: historyRowsAdded === acknowledged && signalsSent === acknowledged };
}

type Meter = ReturnType<typeof cpuMeter>;

/** CPU per operation of a phase, by process and in total, and how busy the whole machine was meanwhile. */
function cpuFigures(meter: Meter, operations: number, elapsedSeconds: number) {
  const machineCores = meter.machineCores();
  const byProcess = meter.perOperationMs(operations);
  const total = round(Object.values(byProcess).reduce<number>((a, b) => a + (b ?? 0), 0), 2);
  const ours = total === null ? null : (total * operations) / 1000 / elapsedSeconds;
  return {
    msPerOperation: { ...byProcess, total },
    machineBusyCores: machineCores,
    // Whatever else ran meanwhile (other work on a shared machine; also the kernel's own time outside these processes).
    otherBusyCores: machineCores === null || ours === null ? null : round(Math.max(0, machineCores - ours), 2),
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
  const loadAverages: Record<string, (number | null)[]> = { start: loadavg().map((v) => round(v)) };

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
    // As in production: a logger at info, where a heartbeat answered ok writes no line (lines go to stderr).
    const logger = options.apiLog === 'off' ? false : createLogger({ level: 'info', destination: pino.destination({ dest: 2, sync: false }) });
    const app = await buildApi({ db, lifecycle, temporal: env.client, operators: [], tokenSecret, logger });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push({ what: 'API', fn: () => app.close() });
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    log(`API on ${baseUrl}`);

    const runTag = `${process.pid}-${Date.now()}`;
    const taskQueue = `vmdb-bench-${runTag}`;
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
    /** Runs a worker until clean-up, which shuts it down and waits for it. */
    const run = (what: string, w: Worker) => {
      const done = w.run();
      cleanups.push({
        what,
        fn: async () => {
          if (w.getState() === 'RUNNING') w.shutdown();
          await done;
        },
      });
    };
    run('worker', worker);
    log('worker running');

    // Baseline A's workflows: their own bundle, worker and task queue.
    const bareQueue = `vmdb-bench-bare-${runTag}`;
    const bareWorker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace,
      taskQueue: bareQueue,
      workflowBundle: await benchWorkflowBundle(require.resolve('./bare-signal-workflow')),
    });
    run('bare-signal worker', bareWorker);

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
      vms[i] = { instanceID, uniqueID, token: makeVmToken(tokenSecret, instanceID, `bench-${i}`), bootId: `bench-${runTag}-${i}`, seq: 0 };
    });
    await waitForCount(db, 'Running', options.vms, 30_000);
    const runningSeconds = (performance.now() - runningPhase) / 1000;
    log(`${options.vms} instances Running in ${runningSeconds.toFixed(1)} s`);

    const bareStart = performance.now();
    const bareIds = Array.from({ length: options.vms }, (_, i) => `bench-bare-${runTag}-${i}`);
    await pool(bareIds, 32, async (workflowId) => {
      await env.client.workflow.start('bareSignalTarget', { workflowId, taskQueue: bareQueue, args: [] });
    });
    log(`${options.vms} bare-signal workflows started in ${((performance.now() - bareStart) / 1000).toFixed(1)} s`);
    const setupSeconds = (performance.now() - setupStarted) / 1000;

    const meter = cpuMeter({ 'this process (API, workers, load)': process.pid, 'Temporal server': temporal.pid, MariaDB: databaseServerPid() });
    // Temporal answers a signal once it is stored; the workflow task behind it runs later. Each phase
    // starts quiet and is measured until quiet again, so that its queued work counts in it and in no other.
    const quiet = () => settle([process.pid, temporal.pid], { maxMs: 60_000 });
    const finish = async (name: string, run: RunFigures) => {
      const settled = await quiet();
      const cpu = cpuFigures(meter, run.succeeded, run.elapsedSeconds + settled.seconds);
      loadAverages[`after ${name}`] = loadavg().map((v) => round(v));
      log(`${name}: ${run.succeeded}/${run.sent} ok in ${run.elapsedSeconds.toFixed(1)} s (+${settled.seconds} s to settle), ${cpu.msPerOperation.total} ms CPU each`);
      return { run, cpu, settled };
    };
    const closed = { durationMs: options.durationSeconds * 1000 };
    /** A closed-loop phase after its warm-up, with its CPU. */
    const measured = async (name: string, call: Call, afterWarmup?: () => Promise<void>, profileFile?: string) => {
      if (options.warmupSeconds > 0) await closedLoop(options.concurrency, { durationMs: options.warmupSeconds * 1000 }, call);
      await quiet();
      await afterWarmup?.();
      meter.start();
      const loop = () => closedLoop(options.concurrency, closed, call);
      return finish(name, await (profileFile ? profiled(profileFile, loop) : loop()));
    };
    const atRate = async (name: string, call: Call) => {
      await quiet();
      meter.start();
      return finish(name, await openLoop(options.rate, options.rateDurationSeconds * 1000, Math.max(1, options.vms - 1), call));
    };

    // A. The floor: a signal as HeartbeatPath sends it (same client, deadline and news size), to a workflow that ignores it.
    const bareCall: Call = async (n) => {
      const news: HeartbeatNews = { figures: beat(n), recorded: true, status: 'Running', version: n, lastUpdate: new Date().toISOString() };
      const handle = env.client.workflow.getHandle(bareIds[n % bareIds.length]);
      await (env.client as Client).withDeadline(Date.now() + DEFAULT_SIGNAL_TIMEOUT_MS, () => handle.signal(bareSignal, news));
      return null;
    };
    const bare = await measured('A: bare signals', bareCall);

    // B. The facade alone: the API's transaction, no HTTP and no signal.
    const directCall: Call = async (n) => {
      const vm = vms[n % vms.length];
      const result = await db.recordHeartbeat(vm.instanceID, beat(n), { bootId: vm.bootId, seq: ++vm.seq });
      if (!result.OK) return `facade: ${result.Message.slice(0, 80)}`;
      return result.Value.recorded ? null : `not recorded (${result.Value.repeated ? 'repeat' : result.Value.status})`;
    };
    let directBefore = await tally(database.url);
    const direct = await measured('B: facade recordHeartbeat', directCall, async () => {
      directBefore = await tally(database.url);
    });
    const directCheck = verification(directBefore, await tally(database.url), direct.run.succeeded);
    // No signal here: a grown counter would mean the facade signals, which it must not.
    directCheck.consistent = directCheck.historyRowsAdded === direct.run.succeeded && directCheck.signalsSent === 0;

    // C. The real path over HTTP.
    const sender = heartbeatSender(options.client, baseUrl, Math.max(options.concurrency, options.vms));
    cleanups.push({ what: 'HTTP client', fn: () => sender.close() });
    const httpCall: Call = (n) => {
      const vm = vms[n % vms.length];
      return sender.send(vm, JSON.stringify({ ...beat(n), bootId: vm.bootId, seq: ++vm.seq }));
    };
    let httpBefore = await tally(database.url);
    const profileFile = options.profileDir === undefined ? undefined : join(options.profileDir, `heartbeats-http-${runTag}.cpuprofile`);
    const http = await measured(
      'C: heartbeats over HTTP',
      httpCall,
      async () => {
        httpBefore = await tally(database.url); // after the warm-up, whose heartbeats are not counted
      },
      profileFile,
    );
    const httpCheck = verification(httpBefore, await tally(database.url), http.run.succeeded);

    // Open loop at --rate: the bare signals, then the heartbeats over HTTP.
    log(`open loop at ${options.rate}/s for ${options.rateDurationSeconds} s`);
    const bareRate = await atRate('A at rate: bare signals', bareCall);
    const rateBefore = await tally(database.url);
    const httpRate = await atRate('C at rate: heartbeats over HTTP', httpCall);
    const rateCheck = verification(rateBefore, await tally(database.url), httpRate.run.succeeded);

    const report = (path: string, m: Awaited<ReturnType<typeof finish>>) => ({
      ...summarise(path, m.run),
      // Over the load and the time its queued work took to finish: what the path can keep up.
      sustainedPerSecond: round(m.run.succeeded / (m.run.elapsedSeconds + m.settled.seconds), 1),
      settle: m.settled,
      cpu: m.cpu,
    });
    const bareFigures = report('bare signal to a no-op workflow (Temporal floor)', bare);
    const directFigures = report('facade db.recordHeartbeat -> MariaDB', direct);
    const httpFigures = report('HTTP -> API: record (MariaDB) + signal vm-<InstanceID>', http);
    const bareRateFigures = report(`bare signals at ${options.rate}/s (open loop)`, bareRate);
    const httpRateFigures = report(`HTTP heartbeats at ${options.rate}/s (open loop)`, httpRate);
    const ratio = bareFigures.sustainedPerSecond ? round((httpFigures.sustainedPerSecond ?? 0) / bareFigures.sustainedPerSecond, 3) : null;
    const httpCpu = httpFigures.cpu.msPerOperation.total;
    const rateP99 = httpRateFigures.latencyMs.p99;
    const verified = httpCheck.consistent && rateCheck.consistent && http.run.errors === 0 && httpRate.run.errors === 0;
    const verdicts = {
      throughput: (httpFigures.sustainedPerSecond ?? 0) >= TARGETS.httpPerSecond,
      ratioToBareSignal: ratio !== null && ratio >= TARGETS.ratioToBareSignal,
      cpuPerHeartbeat: httpCpu !== null && httpCpu <= TARGETS.cpuMsPerHeartbeat,
      // Only a run at the target's rate can meet it.
      p99AtRate: options.rate === TARGETS.atRate && rateP99 !== null && rateP99 <= TARGETS.p99AtRateMs,
      everyHeartbeatRecordedAndSignalled: verified,
    };
    const figures = {
      benchmark: 'heartbeats',
      issue: 13,
      at: new Date().toISOString(),
      options,
      setup: {
        seconds: round(setupSeconds, 1),
        insertSeconds: round(insertSeconds, 1),
        startToSubmittedSeconds: round(submitSeconds, 1),
        toRunningSeconds: round(runningSeconds, 1),
      },
      bareSignal: bareFigures,
      direct: { ...directFigures, verification: directCheck },
      http: { ...httpFigures, verification: httpCheck, ...(profileFile ? { profile: { file: profileFile, ...summariseProfile(JSON.parse(readFileSync(profileFile, 'utf8')), 15) } } : {}) },
      ratioToBareSignal: ratio,
      ratioToDirect: directFigures.sustainedPerSecond ? round((httpFigures.sustainedPerSecond ?? 0) / directFigures.sustainedPerSecond, 3) : null,
      atRate: { rate: options.rate, bareSignal: bareRateFigures, http: { ...httpRateFigures, verification: rateCheck } },
      cpuNote:
        'msPerOperation: CPU each process used during the phase divided by the operations that succeeded. MariaDB is the machine-wide server, shared with anything else using it. ' +
        'machineBusyCores: the whole machine busy meanwhile (of cpuCount); otherBusyCores: the part not used by the measured processes (other work, the kernel). ' +
        'Each phase starts with the processes quiet and is measured until they are quiet again (settle); sustainedPerSecond divides by that whole time, and the targets use it. ' +
        'Open-loop latency counts from each call\'s scheduled start (latencyFromSendMs: from when it was sent).',
      targets: TARGETS,
      met: { ...verdicts, all: Object.values(verdicts).every(Boolean) },
      loadAverages,
      process: { rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20), note: 'one process holds the API, both workers, the HTTP client and the facade baseline' },
      machine: machineInfo(),
    };
    const file = writeResult('heartbeats', figures);
    console.log(JSON.stringify(figures, null, 2));
    const mark = (okay: boolean) => (okay ? 'MET' : 'NOT MET');
    console.log(
      `heartbeats N=${options.vms} c=${options.concurrency}: ` +
        `HTTP ${httpFigures.sustainedPerSecond}/s sustained (${httpFigures.perSecond}/s answered; >= ${TARGETS.httpPerSecond}: ${mark(verdicts.throughput)}), ` +
        `${ratio}x the bare-signal floor ${bareFigures.sustainedPerSecond}/s sustained (${bareFigures.perSecond}/s answered) (>= ${TARGETS.ratioToBareSignal}: ${mark(verdicts.ratioToBareSignal)}), ` +
        `CPU ${httpCpu} ms per heartbeat (<= ${TARGETS.cpuMsPerHeartbeat}: ${mark(verdicts.cpuPerHeartbeat)}; bare signal ${bareFigures.cpu.msPerOperation.total}, facade ${directFigures.cpu.msPerOperation.total}), ` +
        `p99 ${rateP99} ms at ${options.rate}/s (<= ${TARGETS.p99AtRateMs} at ${TARGETS.atRate}/s: ${mark(verdicts.p99AtRate)}); ` +
        `p50/p99 at saturation: HTTP ${httpFigures.latencyMs.p50}/${httpFigures.latencyMs.p99}, bare ${bareFigures.latencyMs.p50}/${bareFigures.latencyMs.p99}, facade ${directFigures.latencyMs.p50}/${directFigures.latencyMs.p99} ms; ` +
        `recorded and signalled: ${mark(verdicts.everyHeartbeatRecordedAndSignalled)}; ` +
        `load average ${loadAverages.start.join(' ')} at start; overall ${mark(figures.met.all)} [${file}]`,
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
