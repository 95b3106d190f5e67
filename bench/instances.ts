/**
 * Benchmark 2 of issue 6: the scale of live instances.
 *
 * Opens N instance workflows (default 10,000; --instances 100000 for the full target), each waiting
 * on its stall timer with no heartbeats, on a worker in its own process. Reports the time to start
 * them all, the worker's and the Temporal server's memory while they wait, and the time for the
 * stalled wave (every instance silent past its interval) to be detected and halted.
 *
 *   npm run bench:instances -- --instances 2000 --stall 120
 *   node dist/bench/instances.js [--instances N] [--stall S] [--concurrency C]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  createBenchDatabase,
  machineInfo,
  numberOption,
  ok,
  pool,
  processMemory,
  round,
  startPersistentDevServer,
  writeResult,
} from './support';
import { VirtualMachineDB } from '../src/db/vmdb';
import { type LifecycleInput, lifecycleWorkflowId } from '../workflows/definitions';

const ENDPOINT = 'Bench::fake';
const TARGETS = { openWorkflows: 100_000, workerRssMiB: 2048 };

interface Options {
  instances: number;
  stallSeconds: number;
  concurrency: number;
}

function parseOptions(argv: readonly string[]): Options {
  const known = new Set(['--instances', '--stall', '--concurrency']);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) throw new Error(`unknown option ${JSON.stringify(argv[i])} (known: ${[...known].join(', ')})`);
  }
  const int = (name: string, fallback: number) => Math.floor(numberOption(argv, name, fallback)!);
  return { instances: int('instances', 10_000), stallSeconds: int('stall', 300), concurrency: int('concurrency', 32) };
}

async function counters(db: VirtualMachineDB): Promise<Record<string, number>> {
  return ok(await db.getInstanceCounters('Status'), 'getInstanceCounters');
}

async function waitUntil(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > until) throw new Error(`${what}: not reached in ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => console.error(`[bench:instances] ${line}`);
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (err) {
        console.error(`[bench:instances] cleanup failed: ${(err as Error).message}`);
      }
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  try {
    log(`options ${JSON.stringify(options)}`);
    const database = await createBenchDatabase();
    cleanups.push(() => database.drop());
    const db = await VirtualMachineDB.open({ url: database.url });
    cleanups.push(() => db.close());
    const temporal = await startPersistentDevServer();
    cleanups.push(() => temporal.teardown());
    const taskQueue = `vmdb-bench-instances-${process.pid}`;

    const worker = spawn(process.execPath, [join(__dirname, 'worker-process.js'), JSON.stringify({ databaseUrl: database.url, address: temporal.address, namespace: temporal.namespace, taskQueue, endpoint: ENDPOINT })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const workerExit = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    cleanups.push(async () => {
      if (worker.exitCode === null) worker.kill('SIGTERM');
      await workerExit;
    });
    await new Promise<void>((resolve, reject) => {
      worker.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      worker.once('exit', (code) => reject(new Error(`the worker process exited with ${code} before it was ready`)));
    });
    log(`worker process ${worker.pid} ready`);

    // Memory, sampled through the whole run: the peak is what a host must have.
    const samples: { at: number; worker: number | null; server: number | null }[] = [];
    const began = performance.now();
    const sample = () => samples.push({ at: (performance.now() - began) / 1000, worker: processMemory(worker.pid!)?.rssMiB ?? null, server: processMemory(temporal.pid)?.rssMiB ?? null });
    const sampler = setInterval(sample, 2000);
    cleanups.push(() => clearInterval(sampler));
    const idle = { worker: processMemory(worker.pid!), server: processMemory(temporal.pid) };

    const ids: number[] = new Array(options.instances);
    let t = performance.now();
    await pool(ids, 16, async (_, i) => {
      ids[i] = ok(await db.insertInstance('', 'bench-image', `bench-${i}`, ENDPOINT, 'benchvo'), 'insertInstance');
    });
    log(`${options.instances} instances inserted in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    t = performance.now();
    const firstStart = Date.now();
    await pool(ids, options.concurrency, async (instanceID, i) => {
      const input: LifecycleInput = { instanceID, instanceName: `bench-${i}`, imageName: 'bench-image', endpoint: ENDPOINT, runningPod: 'benchvo', stallingIntervalSeconds: options.stallSeconds };
      await temporal.client.workflow.start('instanceLifecycle', { workflowId: lifecycleWorkflowId(instanceID), taskQueue, args: [input] });
    });
    const startSeconds = (performance.now() - t) / 1000;
    log(`${options.instances} workflows started in ${startSeconds.toFixed(1)} s`);
    // Created at the cloud: nothing left New (the first may stall before the last is created on a slow host).
    await waitUntil('every instance created', 600_000 + options.instances * 50, async () => ((await counters(db)).New ?? 0) === 0);
    const allSubmitted = Date.now();
    const submittedSeconds = (performance.now() - t) / 1000;
    log(`all created (Submitted) ${submittedSeconds.toFixed(1)} s after the first start`);
    const open = await temporal.client.workflow.count(`TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`);
    log(`${open.count} workflows open, each waiting on its stall timer`);
    sample();
    const waiting = { worker: processMemory(worker.pid!), server: processMemory(temporal.pid) };

    // The wave: each instance's deadline is its Submitted time + the interval; the first falls near firstStart + stall.
    const lastDeadline = allSubmitted + options.stallSeconds * 1000;
    let firstHalt: number | undefined;
    await waitUntil('every instance Halted', options.stallSeconds * 1000 + 1_800_000, async () => {
      const now = await counters(db);
      if (firstHalt === undefined && (now.Halted ?? 0) > 0) firstHalt = Date.now();
      return now.Halted === options.instances;
    });
    const allHalted = Date.now();
    clearInterval(sampler);
    const finalCounters = await counters(db);
    log(`all Halted ${((allHalted - lastDeadline) / 1000).toFixed(1)} s after the last deadline`);

    const peak = (key: 'worker' | 'server') => Math.max(...samples.map((s) => s[key] ?? 0));
    const figures = {
      benchmark: 'live-instances',
      issue: 6,
      at: new Date().toISOString(),
      options,
      openWorkflows: open.count,
      startSeconds: round(startSeconds, 1),
      startsPerSecond: round(options.instances / startSeconds, 1),
      allSubmittedSeconds: round(submittedSeconds, 1),
      stalledWave: {
        firstDeadlineToFirstHaltSeconds: firstHalt === undefined ? null : round((firstHalt - (firstStart + options.stallSeconds * 1000)) / 1000, 1),
        lastDeadlineToAllHaltedSeconds: round((allHalted - lastDeadline) / 1000, 1),
        haltsPerSecond: firstHalt === undefined ? null : round(options.instances / Math.max((allHalted - firstHalt) / 1000, 0.001), 1),
      },
      memoryMiB: {
        workerIdle: idle.worker?.rssMiB ?? null,
        workerWaiting: waiting.worker?.rssMiB ?? null,
        workerPeak: Math.max(peak('worker'), processMemory(worker.pid!)?.peakRssMiB ?? 0),
        serverIdle: idle.server?.rssMiB ?? null,
        serverWaiting: waiting.server?.rssMiB ?? null,
        serverPeak: Math.max(peak('server'), processMemory(temporal.pid)?.peakRssMiB ?? 0),
      },
      finalCounters,
      targets: TARGETS,
      machine: machineInfo(),
    };
    const workerOk = figures.memoryMiB.workerPeak <= TARGETS.workerRssMiB;
    const scaleOk = open.count >= TARGETS.openWorkflows;
    const file = writeResult('instances', figures);
    console.log(JSON.stringify(figures, null, 2));
    const mark = (met: boolean) => (met ? 'MET' : 'NOT MET');
    console.log(
      `instances: ${open.count} open workflows (target ${TARGETS.openWorkflows}: ${mark(scaleOk)}), started in ${figures.startSeconds} s (${figures.startsPerSecond}/s), ` +
        `worker RSS peak ${figures.memoryMiB.workerPeak} MiB (target <= ${TARGETS.workerRssMiB}: ${mark(workerOk)}), server RSS peak ${figures.memoryMiB.serverPeak} MiB, ` +
        `stalled wave halted ${figures.stalledWave.lastDeadlineToAllHaltedSeconds} s after the last deadline [${file}]`,
    );
  } finally {
    await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench:instances] failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
