/**
 * What the benchmarks share: a throw-away MariaDB database, a Temporal dev server with file
 * persistence under a temp dir, a worker with an in-process fake cloud driver, and small helpers
 * (options, percentiles, machine info, result files). Never part of `npm test`.
 */
// First: quiets the Temporal SDK runtime and vmdb's logger (warnings and errors still show).
import { temporalBinaries, workflowBundle } from '../test/support/temporal';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type WorkflowBundleWithSourceMap, bundleWorkflowCode } from '@temporalio/worker';
import type { CloudDriver, CloudInstance, CreateRequest } from '../src/drivers/driver';
import { MYSQL_SERVER_URL, withMysql } from '../test/support/backends';
import { freePort } from '../test/support/sshd';
import { devServerArgs } from '../src/temporal/dev-server-args';

export { workflowBundle };

/** Bundles a workflow file of the benchmarks' own, apart from vmdb's workflows; only errors are printed. */
export function benchWorkflowBundle(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  const quiet = () => undefined;
  return bundleWorkflowCode({
    workflowsPath,
    logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: (message, meta) => console.error(message, meta ?? '') },
  });
}

/** `--name value` options with defaults; a number option must parse as a positive number. */
export function numberOption(argv: readonly string[], name: string, fallback: number | undefined): number | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number, got ${JSON.stringify(argv[i + 1])}`);
  return value;
}

export function stringOption(argv: readonly string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

/** A fresh database on the MariaDB/MySQL server of VMDB_TEST_MYSQL_URL (default local root), dropped by `drop`. */
export async function createBenchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  // Generated from digits and hex only; identifiers cannot be bound.
  const name = `vmdb_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withMysql(MYSQL_SERVER_URL, (conn) => conn.query(`CREATE DATABASE \`${name}\``));
  return {
    url: `${MYSQL_SERVER_URL.replace(/\/$/, '')}/${name}`,
    drop: () => withMysql(MYSQL_SERVER_URL, (conn) => conn.query(`DROP DATABASE IF EXISTS \`${name}\``)).then(() => undefined),
  };
}

export interface BenchTemporal {
  client: Client;
  nativeConnection: NativeConnection;
  namespace: string;
  /** The temp dir holding the server's SQLite file. */
  dir: string;
  /** `host:port` the server listens on. */
  address: string;
  /** The server process, for its memory figures. */
  pid: number;
  teardown(): Promise<void>;
}

/**
 * A real `temporal server start-dev` (the project's venv binary) with file persistence under a temp
 * dir and vmdb's search attributes, its output kept off stdout (the benchmark's JSON goes there).
 * teardown closes the connections, stops the server and removes the dir.
 */
export async function startPersistentDevServer(extraArgs: readonly string[] = []): Promise<BenchTemporal> {
  const dir = mkdtempSync(join(tmpdir(), 'vmdb-bench-temporal-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const args = [...devServerArgs({ ip: '127.0.0.1', port, dbFile: join(dir, 'temporal.db') }), ...extraArgs];
  const server = spawn(temporalBinaries().cli, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let connection: Connection | undefined;
    for (let i = 0; !connection; i++) {
      try {
        connection = await Connection.connect({ address, connectTimeout: 1000 });
      } catch (err) {
        if (server.exitCode !== null) throw new Error(`temporal server start-dev exited with ${server.exitCode}`);
        if (i >= 100) throw new Error(`Temporal dev server did not answer on ${address}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    const nativeConnection = await NativeConnection.connect({ address });
    const namespace = 'default';
    const client = new Client({ connection, namespace });
    return {
      client,
      nativeConnection,
      namespace,
      dir,
      address,
      pid: server.pid!,
      async teardown() {
        try {
          await connection.close();
          await nativeConnection.close();
        } finally {
          await stop();
        }
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A cloud endpoint that only pretends: createInstance answers a made-up UniqueID at once (idempotent
 * by instanceName), nothing is spawned. Passed straight into the worker's drivers map, never registered.
 */
export class BenchDriver implements CloudDriver {
  private readonly vms = new Map<string, CloudInstance>();
  private readonly byName = new Map<string, string>();
  private next = 0;

  constructor(readonly endpoint: string) {}

  async createInstance(req: CreateRequest): Promise<CloudInstance> {
    const known = this.byName.get(req.instanceName);
    if (known) return { ...this.vms.get(known)! };
    const vm: CloudInstance = { uniqueID: `bench-${process.pid}-${++this.next}`, status: 'running', publicIP: '10.0.0.1', privateIP: '' };
    this.vms.set(vm.uniqueID, vm);
    this.byName.set(req.instanceName, vm.uniqueID);
    return { ...vm };
  }

  async stopInstance(uniqueID: string): Promise<void> {
    const vm = this.vms.get(uniqueID);
    if (vm) vm.status = 'stopped';
  }

  async getInstanceStatus(uniqueID: string): Promise<CloudInstance> {
    return { ...(this.vms.get(uniqueID) ?? { uniqueID, status: 'unknown', publicIP: '', privateIP: '' }) };
  }

  async listInstances(): Promise<CloudInstance[]> {
    return [...this.vms.values()].map((vm) => ({ ...vm }));
  }
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; the first error rejects. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

/** Nearest-rank percentile of sorted values (ms). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export const round = (value: number | null, digits = 2): number | null => (value === null ? null : Number(value.toFixed(digits)));

/** Latency figures of a run, in milliseconds. */
export function latencySummary(latenciesMs: number[]) {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length ? sorted[sorted.length - 1] : null),
    mean: round(mean),
  };
}

export function machineInfo() {
  const cores = cpus();
  return {
    node: process.version,
    platform: `${platform()} ${release()}`,
    cpuModel: cores[0]?.model ?? 'unknown',
    cpuCount: cores.length,
    totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
    loadAverage: loadavg().map((v) => round(v)),
  };
}

/** Writes `bench/results/<name>-<timestamp>.json` (relative to the project root) and returns its path. */
export function writeResult(name: string, figures: unknown): string {
  const dir = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
  return file;
}

/** Resident and peak resident memory of a process, in MiB, from /proc (Linux). */
export function processMemory(pid: number): { rssMiB: number; peakRssMiB: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: Math.round(kib('VmRSS') / 1024), peakRssMiB: Math.round(kib('VmHWM') / 1024) };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * The pid of the MariaDB/MySQL server listening on `port` on this host, if it runs here (its CPU
 * counts in a run). Found by its listening socket: other servers (tests start their own) may run too.
 */
export function databaseServerPid(port = Number(new URL(MYSQL_SERVER_URL).port || 3306)): number | null {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/); // sl local_address rem_address st ... inode (10th)
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':').pop() ?? '', 16) === port) inodes.add(f[9]);
    }
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const name = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (name !== 'mariadbd' && name !== 'mysqld') continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        const target = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${entry}/fd/${fd}`))?.[1];
        if (target && inodes.has(target)) return Number(entry);
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return null;
}

/** CPU seconds the whole machine has spent busy (every state but idle and iowait), from /proc/stat (Linux). */
export function machineBusySeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]; // "cpu  user nice system idle iowait irq softirq steal ..."
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = ticks.reduce((a, b) => a + b, 0) - ticks[3] - (ticks[4] ?? 0);
    return busy / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * CPU used by each named process between `start()` and the reading, in milliseconds per operation;
 * `machine` also gives what the whole machine spent, so that other work on a shared machine shows.
 */
export function cpuMeter(pids: Record<string, number | null>) {
  const read = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid === null ? null : cpuSeconds(pid)]));
  let before = read();
  let machineBefore = machineBusySeconds();
  let startedAt = Date.now();
  return {
    start() {
      before = read();
      machineBefore = machineBusySeconds();
      startedAt = Date.now();
    },
    /** Busy CPU of the whole machine since start, in cores (1.0 = one core busy all along). */
    machineCores(): number | null {
      const now = machineBusySeconds();
      const seconds = (Date.now() - startedAt) / 1000;
      return now === null || machineBefore === null || seconds <= 0 ? null : round((now - machineBefore) / seconds, 2);
    },
    perOperationMs(operations: number): Record<string, number | null> {
      const after = read();
      const out: Record<string, number | null> = {};
      for (const name of Object.keys(pids)) {
        const a = after[name];
        const b = before[name];
        out[name] = a === null || b === null || operations === 0 ? null : round(((a - b) * 1000) / operations, 2);
      }
      return out;
    },
  };
}

/**
 * Waits until the named processes are quiet: under `idleCores` of CPU together over each of two
 * consecutive `windowMs` windows (work a phase queued, such as workflow tasks behind accepted
 * signals, runs after its last answer). Gives up after `maxMs`; returns the seconds until the quiet began.
 */
export async function settle(pids: readonly number[], options: { idleCores?: number; windowMs?: number; maxMs?: number } = {}): Promise<{ seconds: number; settled: boolean }> {
  const { idleCores = 0.2, windowMs = 1000, maxMs = 120_000 } = options;
  const used = () => pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
  const started = Date.now();
  let quietWindows = 0;
  while (Date.now() - started < maxMs) {
    const before = used();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const cores = (used() - before) / ((Date.now() - t0) / 1000);
    quietWindows = cores < idleCores ? quietWindows + 1 : 0;
    // The work ended when the quiet windows began.
    if (quietWindows >= 2) return { seconds: round(Math.max(0, Date.now() - started - 2 * windowMs) / 1000, 1)!, settled: true };
  }
  return { seconds: round((Date.now() - started) / 1000, 1)!, settled: false };
}

/** The Value of a facade result; a failure throws, naming what was asked. */
export function ok<T>(result: { OK: true; Value: T } | { OK: false; Message: string }, what: string): T {
  if (!result.OK) throw new Error(`${what}: ${result.Message}`);
  return result.Value;
}
