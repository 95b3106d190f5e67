import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, promises as fs, mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { privatePathProblem } from '../config/private-path';
import { type CheckedCreateRequest, type CloudDriver, type CloudInstance, type CreateRequest, ENDPOINT_FAILURE_REASONS, EndpointError, type EndpointFailureReason, InvalidRequestError, checkCreateRequest, parseEndpointName } from './driver';

/**
 * The `local` driver: each VM is a real process on this host, so tests and the demo exercise the
 * whole life cycle (create, crash, stop) without a cloud. Its state lives in files, not in memory,
 * so another worker process or a restarted one sees the same VMs.
 */

export interface LocalDriverOptions {
  /** One JSON file per VM. Default: <tmpdir>/vmdb-local-<uid>/<Site::CE>. Must be on this host. */
  stateDir?: string;
  /** argv of the VM process (never run through a shell). Default: a Node process that sleeps until killed. */
  command?: string[];
  publicIP?: string;
  privateIP?: string;
  /** Time between SIGTERM and SIGKILL when stopping a VM. Default 5000. */
  stopGraceMs?: number;
  /**
   * Fault injection (tests, drills): while this file exists, creating a VM fails with an
   * EndpointError whose reason and message are the file's first line, "<reason> <message>"
   * (e.g. "quota Instance limit reached"); listing fails too when the reason is "unavailable".
   */
  failureFile?: string;
}

/** What a local VM may see of the worker's environment: the system basics and the agent's settings. */
const VM_ENV_NAMES = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'TERM']);
const VM_ENV_PREFIXES = ['LC_', 'VMDB_AGENT_'];

/**
 * A local VM is a process of the worker's machine, but its workload is not the service: it never
 * gets the service's secrets (token secret, admin token, database URL) or anything else not listed.
 */
export function vmEnvironment(source: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value !== undefined && (VM_ENV_NAMES.has(name) || VM_ENV_PREFIXES.some((prefix) => name.startsWith(prefix)))) env[name] = value;
  }
  return env;
}

/** What is kept about one VM in `<stateDir>/<uniqueID>.json`. */
export interface LocalVmRecord {
  version: 1;
  endpoint: string;
  uniqueID: string;
  instanceName: string;
  imageName: string;
  runningPod: string;
  pid: number;
  /**
   * Identity of the process beyond its pid, which the kernel reuses: the boot id and the start time
   * (clock ticks since boot) from /proc. Null where /proc is missing, or the process was gone before
   * it could be read.
   */
  bootId: string | null;
  startTime: string | null;
  argv: string[];
  publicIP: string;
  privateIP: string;
  createdAt: string;
  stoppedAt?: string;
}

/** Appears in the default VM's argv, so `ps` shows which processes are vmdb VMs. */
export const LOCAL_VM_MARKER = 'vmdb-local-vm';
const SLEEPER = 'setInterval(() => {}, 1 << 30);';

const OPTION_NAMES = ['stateDir', 'command', 'publicIP', 'privateIP', 'stopGraceMs', 'failureFile'];
const UNIQUE_ID = /^local-\d+-[0-9a-f]{12}$/;
const RECORD_FILE = /^(local-\d+-[0-9a-f]{12})\.json$/;
// Linux caps one environment string at 128 KiB; fail clearly before spawn does.
const MAX_USER_DATA = 100_000;
const LOCK_WAIT_MS = 30_000;
const KILL_WAIT_MS = 2_000;
const POLL_MS = 25;

const HAS_PROC = existsSync('/proc/self/stat');
const BOOT_ID = readText('/proc/sys/kernel/random/boot_id');

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** State, process group and start time of a pid from /proc/<pid>/stat, or null if there is no such process. */
function procStat(pid: number): { state: string; pgrp: number; startTime: string } | null {
  const text = readText(`/proc/${pid}/stat`);
  if (text === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], pgrp: Number(fields[2]), startTime: fields[19] };
}

const isZombie = (state: string) => state === 'Z' || state === 'X';

interface ProcessIdentity {
  pid: number;
  bootId: string | null;
  startTime: string | null;
}

interface VmProcess extends ProcessIdentity {
  uniqueID: string;
}

function identityOf(pid: number): ProcessIdentity {
  return { pid, bootId: BOOT_ID, startTime: HAS_PROC ? (procStat(pid)?.startTime ?? null) : null };
}

/** Whether this pid is still the recorded process (same boot, same start time), zombie or not. */
function isSameProcess(who: ProcessIdentity): boolean {
  if (!Number.isSafeInteger(who.pid) || who.pid <= 1) return false;
  if (!HAS_PROC) return isAlive(who);
  if (who.startTime === null || who.bootId !== BOOT_ID) return false;
  return procStat(who.pid)?.startTime === who.startTime;
}

/** True while the recorded process still runs: same pid, same boot, same start time, not a zombie. */
function isAlive(who: ProcessIdentity): boolean {
  if (!Number.isSafeInteger(who.pid) || who.pid <= 1) return false;
  if (HAS_PROC) {
    if (who.startTime === null || who.bootId !== BOOT_ID) return false;
    const stat = procStat(who.pid);
    return stat !== null && stat.startTime === who.startTime && !isZombie(stat.state);
  }
  // Without /proc the pid is all there is; EPERM means someone else's process, so not ours.
  try {
    process.kill(who.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The running processes of a VM: its leader and whatever it started. The leader heads its own process
 * group (detached spawn). While the leader exists, even as a zombie, its pid is that group's id and
 * no one else's, so the group is the VM. Once it is gone the number may be reused, so a process counts
 * only if it is in that group and carries our VMDB_UNIQUE_ID in its environment.
 */
function vmProcesses(vm: VmProcess): number[] {
  if (!HAS_PROC) return isAlive(vm) ? [vm.pid] : [];
  if (vm.startTime === null || vm.bootId !== BOOT_ID) return [];
  const leaderExists = isSameProcess(vm);
  const marker = `VMDB_UNIQUE_ID=${vm.uniqueID}`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat === null || stat.pgrp !== vm.pid || isZombie(stat.state)) continue;
    if (leaderExists || readText(`/proc/${entry}/environ`)?.split('\0').includes(marker)) found.push(Number(entry));
  }
  return found;
}

function signalVm(vm: VmProcess, signal: NodeJS.Signals): void {
  const targets = isSameProcess(vm) ? [-vm.pid] : vmProcesses(vm);
  for (const target of targets) {
    try {
      process.kill(target, signal);
    } catch {
      // ESRCH: already gone. EPERM: not ours to signal.
    }
  }
}

async function waitUntilGone(vm: VmProcess, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (vmProcesses(vm).length > 0) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  // Readers (other workers) must never see half a file: write aside, then rename over.
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(tmp, file);
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * `<tmp>/vmdb-local-<uid>/<endpoint>`. The tmp folder is shared, so its `vmdb-local-<uid>` is made
 * 0700 and used only if it is a real folder of this user's that nobody else can enter: anyone could
 * have made that predictable name first, and then read or plant VM records.
 */
function defaultStateDir(endpoint: string): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const base = path.join(os.tmpdir(), `vmdb-local-${uid ?? 'user'}`);
  try {
    mkdirSync(base, { mode: 0o700 });
  } catch (err) {
    if (errorCode(err) !== 'EEXIST') throw err;
  }
  const found = privatePathProblem(base, 'folder');
  const problem =
    found?.problem === 'kind'
      ? 'it is not a folder'
      : found?.problem === 'owner'
        ? `it belongs to uid ${found.owner}`
        : found?.problem === 'open'
          ? `others may use it (mode ${found.mode})`
          : undefined;
  if (problem) throw new Error(`local driver: refusing the default state folder ${base}: ${problem}. Remove it, or set driver.stateDir`);
  // Endpoint names hold only letters, digits, . _ - and one "::", so they are safe as a directory name.
  return path.join(base, endpoint);
}

function checkOptions(options: unknown): LocalDriverOptions & { publicIP: string; privateIP: string; stopGraceMs: number } {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error('local driver options must be an object');
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!OPTION_NAMES.includes(key)) throw new Error(`local driver: unknown option ${JSON.stringify(key)} (known: ${OPTION_NAMES.join(', ')})`);
  }
  const { stateDir, command, publicIP = '127.0.0.1', privateIP = '127.0.0.1', stopGraceMs = 5000, failureFile } = given;
  if (failureFile !== undefined && (typeof failureFile !== 'string' || failureFile === '')) throw new Error('local driver: failureFile must be a non-empty string');
  if (stateDir !== undefined && (typeof stateDir !== 'string' || stateDir === '')) throw new Error('local driver: stateDir must be a non-empty string');
  if (command !== undefined) {
    const ok = Array.isArray(command) && command.length > 0 && command.every((arg) => typeof arg === 'string' && !arg.includes('\0')) && command[0] !== '';
    if (!ok) throw new Error('local driver: command must be a non-empty array of strings (an argv, run without a shell)');
  }
  for (const [name, ip] of [['publicIP', publicIP], ['privateIP', privateIP]] as const) {
    if (typeof ip !== 'string' || (ip !== '' && isIP(ip) === 0)) throw new Error(`local driver: ${name} must be an IP address, got ${JSON.stringify(ip)}`);
  }
  if (typeof stopGraceMs !== 'number' || !Number.isSafeInteger(stopGraceMs) || stopGraceMs < 0) {
    throw new Error('local driver: stopGraceMs must be a non-negative integer (milliseconds)');
  }
  return {
    stateDir: stateDir as string | undefined,
    command: command as string[] | undefined,
    publicIP: publicIP as string,
    privateIP: privateIP as string,
    stopGraceMs,
    failureFile: failureFile as string | undefined,
  };
}

export class LocalDriver implements CloudDriver {
  readonly endpoint: string;
  readonly stateDir: string;
  private readonly command: string[] | undefined;
  private readonly publicIP: string;
  private readonly privateIP: string;
  private readonly stopGraceMs: number;
  private readonly failureFile: string | undefined;

  constructor(endpoint: string, options: LocalDriverOptions = {}) {
    this.endpoint = parseEndpointName(endpoint).name;
    const checked = checkOptions(options);
    this.stateDir = path.resolve(checked.stateDir ?? defaultStateDir(this.endpoint));
    this.command = checked.command ? [...checked.command] : undefined;
    this.publicIP = checked.publicIP;
    this.privateIP = checked.privateIP;
    this.stopGraceMs = checked.stopGraceMs;
    this.failureFile = checked.failureFile;
  }

  /** The injected failure, when the failure file exists: "<reason> <message>". */
  private async injectedFailure(): Promise<EndpointError | undefined> {
    if (!this.failureFile) return undefined;
    const text = await fs.readFile(this.failureFile, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const line = text.split('\n')[0].trim();
    const [word, ...rest] = line.split(/\s+/);
    const reason = (ENDPOINT_FAILURE_REASONS as readonly string[]).includes(word) ? (word as EndpointFailureReason) : 'unavailable';
    return new EndpointError(reason, `local driver (injected): ${rest.join(' ') || line || 'failure'}`);
  }

  async createInstance(req: CreateRequest): Promise<CloudInstance> {
    // The user data travels in an environment variable: no NUL, and within the kernel's limit.
    const request = checkCreateRequest(req, { driver: 'local', maxUserDataBytes: MAX_USER_DATA, allowNul: false });
    const failure = await this.injectedFailure();
    if (failure) throw failure;
    await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    // The lock makes "find a live VM of that name, else start one" atomic across workers.
    return this.withNameLock(request.instanceName, async () => {
      const alive = (await this.records()).filter((r) => r.instanceName === request.instanceName && isAlive(r));
      if (alive.length > 0) return this.toInstance(alive[0]);
      return this.toInstance(await this.spawnVm(request));
    });
  }

  async stopInstance(uniqueID: string): Promise<void> {
    const record = await this.record(uniqueID);
    if (!record) return;
    // The whole VM gets the grace period, not just its leader; after it, or straight away for what a
    // crashed VM left behind, SIGKILL.
    let gone = vmProcesses(record).length === 0;
    if (!gone && isAlive(record)) {
      signalVm(record, 'SIGTERM');
      gone = await waitUntilGone(record, this.stopGraceMs);
    }
    if (!gone) {
      signalVm(record, 'SIGKILL');
      if (!(await waitUntilGone(record, KILL_WAIT_MS))) {
        throw new Error(`local VM ${uniqueID} (pid ${record.pid}) still has processes after SIGKILL: ${vmProcesses(record).join(' ')}`);
      }
    }
    if (!record.stoppedAt) await writeJsonAtomic(this.recordPath(uniqueID), { ...record, stoppedAt: new Date().toISOString() });
  }

  async getInstanceStatus(uniqueID: string): Promise<CloudInstance> {
    const record = await this.record(uniqueID);
    if (!record) return { uniqueID, status: 'unknown', publicIP: '', privateIP: '' };
    return this.toInstance(record);
  }

  async listInstances(): Promise<CloudInstance[]> {
    const failure = await this.injectedFailure();
    if (failure?.reason === 'unavailable') throw failure;
    return (await this.records()).map((r) => this.toInstance(r));
  }

  /** The stored record of a VM of this endpoint (pid, identity, argv), or undefined. */
  async record(uniqueID: string): Promise<LocalVmRecord | undefined> {
    // The ID becomes a file name: anything not shaped like ours is simply unknown.
    if (typeof uniqueID !== 'string' || !UNIQUE_ID.test(uniqueID)) return undefined;
    const file = this.recordPath(uniqueID);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    let record: LocalVmRecord;
    try {
      record = JSON.parse(text) as LocalVmRecord;
    } catch (err) {
      // Records are written by rename, so this is damage from outside; calling the VM unknown could
      // make the caller start a second one.
      throw new Error(`local driver: unreadable VM record ${file}: ${(err as Error).message}`);
    }
    return record.endpoint === this.endpoint && record.uniqueID === uniqueID ? record : undefined;
  }

  /** Every VM record of this endpoint, oldest first. */
  async records(): Promise<LocalVmRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.stateDir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw err;
    }
    const found: LocalVmRecord[] = [];
    for (const name of names) {
      const id = RECORD_FILE.exec(name)?.[1];
      const record = id ? await this.record(id) : undefined;
      if (record) found.push(record);
    }
    return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.uniqueID.localeCompare(b.uniqueID));
  }

  private recordPath(uniqueID: string): string {
    return path.join(this.stateDir, `${uniqueID}.json`);
  }

  private toInstance(record: LocalVmRecord): CloudInstance {
    return {
      uniqueID: record.uniqueID,
      status: isAlive(record) ? 'running' : 'stopped',
      publicIP: record.publicIP,
      privateIP: record.privateIP,
    };
  }

  private async spawnVm(req: CheckedCreateRequest): Promise<LocalVmRecord> {
    // Fixed before the spawn because the VM receives it in its environment.
    const uniqueID = `local-${process.pid}-${randomBytes(6).toString('hex')}`;
    const argv = this.command ?? [process.execPath, '-e', SLEEPER, '--', LOCAL_VM_MARKER, req.instanceName, uniqueID];
    const env = {
      ...vmEnvironment(process.env),
      VMDB_INSTANCE_NAME: req.instanceName,
      VMDB_UNIQUE_ID: uniqueID,
      VMDB_IMAGE_NAME: req.imageName,
      VMDB_RUNNING_POD: req.runningPod,
      VMDB_USER_DATA: req.userData,
    };
    const log = openSync(path.join(this.stateDir, `${uniqueID}.log`), 'a', 0o600);
    let child: ChildProcess;
    let identity: ProcessIdentity | undefined;
    try {
      // detached: the VM leads its own process group (stop kills the group) and outlives this worker.
      child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', log, log], env });
      // Read the start time now, before the event loop can reap a VM that exits at once.
      if (child.pid !== undefined) identity = identityOf(child.pid);
    } finally {
      closeSync(log);
    }
    child.on('error', () => undefined);
    if (identity === undefined) {
      const [err] = (await once(child, 'error')) as [Error];
      throw new Error(`local driver: cannot start ${JSON.stringify(argv[0])} for instance ${JSON.stringify(req.instanceName)}: ${err.message}`);
    }
    child.unref();
    const record: LocalVmRecord = {
      version: 1,
      endpoint: this.endpoint,
      uniqueID,
      instanceName: req.instanceName,
      imageName: req.imageName,
      runningPod: req.runningPod,
      pid: identity.pid,
      bootId: identity.bootId,
      startTime: identity.startTime,
      argv,
      publicIP: this.publicIP,
      privateIP: this.privateIP,
      createdAt: new Date().toISOString(),
    };
    try {
      await writeJsonAtomic(this.recordPath(uniqueID), record);
    } catch (err) {
      // A VM nobody knows about would run forever: take it down with the failed create.
      signalVm({ ...identity, uniqueID }, 'SIGKILL');
      throw err;
    }
    return record;
  }

  /**
   * Runs `fn` holding an exclusive lock file for one instance name. A lock whose holder process died
   * (a worker killed mid-create) is taken over.
   */
  private async withNameLock<T>(instanceName: string, fn: () => Promise<T>): Promise<T> {
    const hash = createHash('sha256').update(instanceName).digest('hex').slice(0, 32);
    const lockPath = path.join(this.stateDir, `create-${hash}.lock`);
    const mine = JSON.stringify({ ...identityOf(process.pid), token: randomBytes(8).toString('hex') });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await fs.writeFile(lockPath, mine, { flag: 'wx', mode: 0o600 });
        break;
      } catch (err) {
        if (errorCode(err) !== 'EEXIST') throw err;
      }
      const seen = await fs.readFile(lockPath, 'utf8').catch(() => null);
      if (seen !== null && (await this.lockIsStale(lockPath, seen))) await this.takeOver(lockPath, seen);
      else if (Date.now() >= deadline) {
        throw new Error(`local driver: timed out after ${LOCK_WAIT_MS / 1000} s waiting for another create of instance ${JSON.stringify(instanceName)} (lock ${lockPath})`);
      } else await sleep(POLL_MS);
    }
    try {
      return await fn();
    } finally {
      // Remove only our own lock, never one somebody took over meanwhile.
      if ((await fs.readFile(lockPath, 'utf8').catch(() => null)) === mine) await fs.rm(lockPath, { force: true });
    }
  }

  private async lockIsStale(lockPath: string, content: string): Promise<boolean> {
    try {
      return !isAlive(JSON.parse(content) as ProcessIdentity);
    } catch {
      // Empty or partial: its writer is between create and write, or died there. Give it a moment.
      const stat = await fs.stat(lockPath).catch(() => null);
      return stat !== null && Date.now() - stat.mtimeMs > 10_000;
    }
  }

  private async takeOver(lockPath: string, stale: string): Promise<void> {
    // Rename is atomic, so two waiters cannot both delete the stale lock; if what we moved turns out
    // to be a fresh lock taken in between, put it back.
    const aside = `${lockPath}.stale-${randomBytes(4).toString('hex')}`;
    try {
      await fs.rename(lockPath, aside);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw err;
    }
    const moved = await fs.readFile(aside, 'utf8').catch(() => null);
    if (moved !== stale) await fs.link(aside, lockPath).catch(() => undefined);
    await fs.rm(aside, { force: true });
  }
}

/** The registry's factory: options come straight from the endpoint configuration. */
export function localDriverFromConfig(endpoint: string, options: Record<string, unknown>): LocalDriver {
  return new LocalDriver(endpoint, options as LocalDriverOptions);
}
