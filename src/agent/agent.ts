import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UINT32_MAX } from '../../entities/heartbeat';
import { DIRECTIVES, type Directive } from '../../entities/states';
import { type Fetch, certificateProblem, fetchTrusting } from '../net/ca-fetch';
import { type AgentConfig, describeAgentConfig } from './config';
import { ElasticStopPolicy, readLoad } from './stop-policy';

/**
 * The VM monitor agent, successor of DIRAC's VirtualMachineMonitorAgent. It runs on the VM, declares
 * it running, then every period reports its load, jobs, transfers and uptime to the service and obeys
 * the answer:
 *
 * - `ok`: carry on.
 * - `stop`: drain. Write the stop file (the job agent then takes no more work), keep heartbeating,
 *   and once no job is left declare halting and run the halt command.
 * - `halt`: declare halting and run the halt command at once.
 *
 * A refused transition (409) whose `state` is `stop` or `halt` counts as that answer. While the
 * service is unreachable, times out, or answers 5xx (or 408/425/429) a call is retried with
 * exponential backoff (capped, with jitter). Any other 4xx, a redirect or a malformed reply is logged
 * and the call is tried again at the next period. Nothing the service sends crashes the agent.
 */

export type { Directive };

export interface BackoffOptions {
  /** First delay (ms), default 1000. */
  initialMs: number;
  /** Largest delay (ms), default 60000. */
  maxMs: number;
  /** Growth per attempt, default 2. */
  factor?: number;
}

export interface VmAgentOptions {
  /** Where the one-line event log goes; default stdout. */
  log?: (line: string) => void;
  /** Timeout of one HTTP request (ms); default 30000. */
  requestTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Timeout of the jobs and transfer commands (ms); default the period, at most 60000. */
  commandTimeoutMs?: number;
  /** Timeout of the halt command (ms); default 120000. */
  haltTimeoutMs?: number;
  /**
   * How long to keep trying to declare halting while the service is unreachable (ms) before the halt
   * command runs anyway; default the period, at least 60000. A VM told to halt must not stay up
   * because the service is down.
   */
  haltingRetryMs?: number;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

/** How one run ended. */
export interface AgentOutcome {
  /** `halted`: the halt command ran (see haltCommand); `aborted`: the signal stopped the agent. */
  reason: 'halted' | 'aborted';
  haltCommand?: CommandResult;
}

export interface CommandResult {
  ok: boolean;
  /** Exit code, when the command exited. */
  code?: number;
  /** Terminating signal, when it was killed. */
  signal?: string;
  stdout: string;
  /** Why it did not succeed (not started, timed out, non-zero exit with its stderr). */
  problem?: string;
}

export interface Sample {
  load: number;
  /** null when the jobs command failed: the previous count is reported, and a draining VM does not halt. */
  jobs: number | null;
  transferredFiles: number;
  transferredBytes: number;
  uptime: number;
}

/** What one call to the service came to. */
export type Reply =
  | { kind: 'ok'; status: number; body: unknown }
  | { kind: 'conflict'; status: 409; state?: string; message: string }
  | { kind: 'refused'; status: number; message: string }
  | { kind: 'transient'; status?: number; message: string }
  | { kind: 'aborted' };

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 60_000, factor: 2 };
const MAX_BODY_BYTES = 64 * 1024;
const MAX_OUTPUT_BYTES = 64 * 1024;
const TRANSIENT_4XX = new Set([408, 425, 429]);

/**
 * Delay before retry number `attempt` (0 for the first retry): exponential, capped at `maxMs`, with
 * "equal jitter" (uniform in [d/2, d]) so a fleet that lost the service does not come back in step.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const factor = options.factor ?? 2;
  const ceiling = Math.min(options.maxMs, options.initialMs * factor ** Math.max(0, attempt));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling / 2 + (ceiling / 2) * r);
}

/** Text from outside (a server's message, a command's stderr) made safe for one log line. */
export function clean(text: unknown, max = 200): string {
  const s = typeof text === 'string' ? text : text === undefined ? '' : String(text);
  const flat = s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** The directive of a heartbeat reply body, or undefined when the body is not `{ directive: ok|stop|halt }`. */
export function parseDirective(body: unknown): Directive | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const directive = (body as Record<string, unknown>).directive;
  return typeof directive === 'string' && (DIRECTIVES as readonly string[]).includes(directive) ? (directive as Directive) : undefined;
}

/** The number of jobs from the jobs command's stdout: one non-negative integer. */
export function parseJobs(stdout: string): number | undefined {
  const text = stdout.trim();
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= UINT32_MAX ? n : undefined;
}

/** Files and bytes from the transfer command's stdout: "<files> <bytes>". */
export function parseTransfers(stdout: string): { files: number; bytes: number } | undefined {
  const match = /^(\d{1,10})\s+(\d{1,16})$/.exec(stdout.trim());
  if (!match) return undefined;
  const files = Number(match[1]);
  const bytes = Number(match[2]);
  return files <= UINT32_MAX && Number.isSafeInteger(bytes) ? { files, bytes } : undefined;
}

/** The 1-minute load average, rounded to thousandths (0 where the platform has none). */
function currentLoad(): number {
  const raw = os.loadavg()[0];
  return Number.isFinite(raw) && raw > 0 ? Math.round(raw * 1000) / 1000 : 0;
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string } | null)?.name === 'AbortError';
}

/** Why fetch failed, without any header (the token) in it: "connection refused (ECONNREFUSED)" etc. */
function networkProblem(err: unknown, caFile: string | undefined): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } } | null;
  if (e?.name === 'TimeoutError') return 'request timed out';
  const certificate = certificateProblem(err);
  if (certificate) {
    const hint = caFile ? `is it signed by the CA of VMDB_AGENT_CA_FILE (${caFile})?` : 'set VMDB_AGENT_CA_FILE to the CA that signed it';
    return `${clean(certificate, 160)}; ${hint}`;
  }
  const code = e?.cause?.code;
  const detail = clean(e?.cause?.message ?? e?.message ?? String(err), 120);
  return code ? `${detail} (${code})` : detail;
}

async function readLimited(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`reply body larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs an argv (no shell) with a timeout; never throws. */
export function runCommand(argv: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<CommandResult> {
  return new Promise((resolve) => {
    try {
      execFile(
        argv[0],
        argv.slice(1),
        { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8', windowsHide: true, signal },
        (error, stdout, stderr) => {
          if (!error) return resolve({ ok: true, code: 0, stdout });
          const err = error as NodeJS.ErrnoException & { code?: string | number; signal?: string | null; killed?: boolean };
          const why = clean(stderr, 160);
          let problem: string;
          if (isAbort(err)) problem = 'aborted';
          else if (err.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') problem = `output larger than ${MAX_OUTPUT_BYTES} bytes`;
          else if (typeof err.code === 'string') problem = `cannot run ${JSON.stringify(argv[0])}: ${clean(err.message, 160)}`;
          else if (err.killed) problem = `timed out after ${timeoutMs} ms`;
          else if (err.signal) problem = `killed by ${err.signal}`;
          else problem = `exited with code ${err.code}${why ? `: ${why}` : ''}`;
          resolve({
            ok: false,
            code: typeof err.code === 'number' ? err.code : undefined,
            signal: err.signal ?? undefined,
            stdout: typeof stdout === 'string' ? stdout : '',
            problem,
          });
        },
      );
    } catch (err) {
      resolve({ ok: false, stdout: '', problem: `cannot run ${JSON.stringify(argv[0])}: ${clean((err as Error).message, 160)}` });
    }
  });
}

export class VmAgent {
  private readonly log: (line: string) => void;
  private readonly periodMs: number;
  private readonly requestTimeoutMs: number;
  private readonly backoff: BackoffOptions;
  private readonly commandTimeoutMs: number;
  private readonly haltTimeoutMs: number;
  private readonly haltingRetryMs: number;
  private readonly random: () => number;
  /** Global fetch, or one that trusts VMDB_AGENT_CA_FILE's CA. */
  private readonly fetch: Fetch;
  private signal: AbortSignal | undefined;
  private runningDeclared = false;
  /** Numbers every heartbeat of this run of the agent: a retry reuses its number, so the API records it once. */
  private readonly bootId = randomBytes(8).toString('hex');
  private seq = 0;
  private draining = false;
  /** The planned shutdown time last written to the shutdown file (undefined: none, or not written yet). */
  private shutdownNoted: string | undefined;
  private stopFileWritten = false;
  private lastJobs = 0;
  private lastTransfers = { files: 0, bytes: 0 };

  constructor(
    readonly config: AgentConfig,
    options: VmAgentOptions = {},
  ) {
    this.periodMs = Math.round(config.periodSeconds * 1000);
    const write = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
    this.log = (event: string) => write(`${new Date().toISOString()} vmdb-agent[${config.instanceID}] ${event}`);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.commandTimeoutMs = options.commandTimeoutMs ?? Math.min(60_000, Math.max(1000, this.periodMs));
    this.haltTimeoutMs = options.haltTimeoutMs ?? 120_000;
    this.haltingRetryMs = options.haltingRetryMs ?? Math.max(60_000, this.periodMs);
    this.random = options.random ?? Math.random;
    this.fetch = fetchTrusting(config.ca);
  }

  /** Whether a `stop` has been received (the VM is draining). */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Runs until the VM halts (the halt command ran) or `signal` aborts. Never rejects on what the service says. */
  async run(signal?: AbortSignal): Promise<AgentOutcome> {
    this.signal = signal;
    this.log(`starting: ${describeAgentConfig(this.config)}`);
    const policy = this.startStopPolicy();
    try {
      return await this.loop(policy);
    } finally {
      policy?.stop();
    }
  }

  /** The `elastic` stop policy, sampling beside the loop; undefined for `never`. */
  private startStopPolicy(): ElasticStopPolicy | undefined {
    const settings = this.config.stopPolicy;
    if (settings?.policy !== 'elastic') return undefined;
    const agentStart = Date.now();
    const policy = new ElasticStopPolicy(
      settings,
      {
        load: () => readLoad(this.config.loadFile),
        uptime: () => (this.config.uptimeFrom === 'agent' ? (Date.now() - agentStart) / 1000 : os.uptime()),
        jobs: () => this.countJobs(),
      },
      this.log,
    );
    policy.start();
    return policy;
  }

  /** Jobs running now for the stop policy: 0 without a jobs command, null when the command fails. */
  private async countJobs(): Promise<number | null> {
    if (!this.config.jobsCommand) return 0;
    const result = await runCommand(this.config.jobsCommand, this.commandTimeoutMs, this.signal);
    return (result.ok ? parseJobs(result.stdout) : undefined) ?? null;
  }

  private async loop(policy: ElasticStopPolicy | undefined): Promise<AgentOutcome> {
    while (!this.aborted) {
      if (policy?.decision) return this.haltIdle(policy.decision);
      let next: 'continue' | 'halt';
      try {
        next = await this.cycle();
      } catch (err) {
        // Belt and braces: whatever went wrong, log it and try again next period.
        this.log(`unexpected error (${clean((err as Error)?.message ?? err)}); trying again in ${this.config.periodSeconds} s`);
        next = 'continue';
      }
      if (this.aborted) break;
      if (next === 'halt') return this.halt();
      if (!(await this.pause(this.periodMs, policy?.decided))) break;
    }
    this.log('stopped by signal');
    return { reason: 'aborted' };
  }

  private get aborted(): boolean {
    return this.signal?.aborted ?? false;
  }

  /** One period: declare running if that is still to do, then one heartbeat (or halting once drained). */
  private async cycle(): Promise<'continue' | 'halt'> {
    if (!this.runningDeclared) {
      const outcome = await this.declareRunning();
      if (outcome === 'halt') return 'halt';
      if (outcome === 'stop') await this.startDraining('running refused with state stop');
      if (this.aborted) return 'continue';
    }
    if (this.draining && !this.stopFileWritten) await this.writeStopFile();
    return this.heartbeat();
  }

  private async declareRunning(): Promise<Directive | undefined> {
    const reply = await this.withRetry('running', () => this.post('running', {}));
    switch (reply.kind) {
      case 'ok': {
        this.runningDeclared = true;
        const status = (reply.body as { status?: unknown } | null)?.status;
        if (typeof status === 'string') this.log(`declared running: status ${clean(status, 40)}`);
        else this.log(`declared running (HTTP ${reply.status}, reply without a status: ${this.describeBody(reply.body)})`);
        return undefined;
      }
      case 'conflict':
        if (reply.state === 'stop' || reply.state === 'halt') {
          this.runningDeclared = true;
          this.log(`running refused (409 ${reply.message}); state ${reply.state}`);
          return reply.state;
        }
        this.log(`running refused (409 ${reply.message}${reply.state ? `; state ${clean(reply.state, 40)}` : ''}); trying again next period`);
        return undefined;
      case 'refused':
        this.log(`running rejected (HTTP ${reply.status}: ${reply.message}); trying again next period`);
        return undefined;
      default:
        return undefined;
    }
  }

  private async heartbeat(): Promise<'continue' | 'halt'> {
    let sample: Sample | undefined;
    let drained = false;
    const number = { bootId: this.bootId, seq: ++this.seq };
    const reply = await this.withRetry('heartbeat', async () => {
      sample = await this.sample();
      if (this.draining && sample.jobs === 0) {
        // Nothing left to run: no heartbeat, go and halt (the reply kind only ends the retry loop).
        drained = true;
        return { kind: 'aborted' } as const;
      }
      return this.post('heartbeat', { ...this.figures(sample), ...number });
    });
    if (drained) {
      this.log('drained: no jobs left');
      return 'halt';
    }
    const figures = sample ? this.describeSample(sample) : '';
    switch (reply.kind) {
      case 'ok': {
        const directive = parseDirective(reply.body);
        if (directive === undefined) {
          this.log(`heartbeat (${figures}): malformed reply (HTTP ${reply.status}: ${this.describeBody(reply.body)}); trying again next period`);
          return 'continue';
        }
        this.log(`heartbeat (${figures}): ${directive}${directive === 'ok' && this.draining ? ' (still draining)' : ''}`);
        await this.noteShutdown((reply.body as { shutdownAt?: unknown }).shutdownAt);
        return this.obey(directive, sample);
      }
      case 'conflict':
        if (reply.state === 'stop' || reply.state === 'halt') {
          this.log(`heartbeat (${figures}): refused (409 ${reply.message}); state ${reply.state}`);
          return this.obey(reply.state, sample);
        }
        this.log(`heartbeat (${figures}): refused (409 ${reply.message}${reply.state ? `; state ${clean(reply.state, 40)}` : ''}); trying again next period`);
        return 'continue';
      case 'refused':
        this.log(`heartbeat (${figures}): rejected (HTTP ${reply.status}: ${reply.message}); trying again next period`);
        return 'continue';
      case 'transient':
        // Only reached when retries gave up (they do not for heartbeats); try again next period.
        this.log(`heartbeat (${figures}): ${reply.message}; trying again next period`);
        return 'continue';
      case 'aborted':
        return 'continue';
    }
  }

  private async obey(directive: Directive, sample: Sample | undefined): Promise<'continue' | 'halt'> {
    if (directive === 'halt') return 'halt';
    if (directive === 'stop') {
      if (!this.draining) await this.startDraining('the service answered stop');
      if (sample?.jobs === 0) {
        this.log('drained: no jobs left');
        return 'halt';
      }
      this.log(`draining: waiting for ${sample?.jobs ?? 'an unknown number of'} job(s) to finish`);
    }
    return 'continue';
  }

  /**
   * Keeps the shutdown file in step with the planned shutdown time of the reply: written (atomically)
   * when it changes, removed when no shutdown is planned any more. A failure is retried next period.
   */
  private async noteShutdown(value: unknown): Promise<void> {
    const at = typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? new Date(value).toISOString() : undefined;
    const file = this.config.shutdownFile;
    if (at === this.shutdownNoted || file === undefined) return;
    try {
      if (at === undefined) {
        await fs.rm(file, { force: true });
        this.log(`no shutdown planned any more: removed ${file}`);
      } else {
        await fs.mkdir(path.dirname(file), { recursive: true });
        const tmp = `${file}.tmp-${process.pid}`;
        await fs.writeFile(tmp, `${at}\n`);
        await fs.rename(tmp, file);
        this.log(`planned shutdown at ${at}: wrote ${file}`);
      }
      this.shutdownNoted = at;
    } catch (err) {
      this.log(`cannot update shutdown file ${file}: ${clean((err as Error).message)}; trying again next period`);
    }
  }

  private async startDraining(why: string): Promise<void> {
    this.draining = true;
    this.log(`stop: ${why}; draining`);
    await this.writeStopFile();
  }

  /** Writes the stop file (atomically, creating its directory); on failure it is tried again next period. */
  private async writeStopFile(): Promise<void> {
    const file = this.config.stopFile;
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      await fs.writeFile(tmp, `vmdb: stop requested for instance ${this.config.instanceID} at ${new Date().toISOString()}\n`);
      await fs.rename(tmp, file);
      this.stopFileWritten = true;
      this.log(`wrote stop file ${file}`);
    } catch (err) {
      this.log(`cannot write stop file ${file}: ${clean((err as Error).message)}; trying again next period`);
    }
  }

  /**
   * The stop policy found the VM idle: records why (best effort, the halt does not wait on it), then
   * declares halting with the load it judged, so the Halted history row carries that load.
   */
  private async haltIdle(decision: { load: number; uptime: number; detail: string }): Promise<AgentOutcome> {
    this.log(`stop policy: ${decision.detail}; halting`);
    const reply = await this.withRetry('halt-reason', () => this.post('halt-reason', { reason: 'idle', load: decision.load, uptime: decision.uptime, detail: decision.detail }), Date.now() + this.haltingRetryMs / 2);
    if (reply.kind === 'aborted') this.log('halt reason not recorded (stopped by signal)');
    else if (reply.kind !== 'ok') this.log(`halt reason not recorded (${reply.status ? `HTTP ${reply.status}: ` : ''}${reply.message}); halting anyway`);
    return this.halt(decision.load);
  }

  /** Declares halting (retrying a while if the service is unreachable), then runs the halt command. */
  private async halt(load = currentLoad()): Promise<AgentOutcome> {
    const deadline = Date.now() + this.haltingRetryMs;
    const reply = await this.withRetry('halting', () => this.post('halting', { load }), deadline);
    switch (reply.kind) {
      case 'ok': {
        const status = (reply.body as { status?: unknown } | null)?.status;
        this.log(`declared halting (load ${load}): status ${typeof status === 'string' ? clean(status, 40) : `unknown (${this.describeBody(reply.body)})`}`);
        break;
      }
      case 'conflict':
        this.log(`halting refused (409 ${reply.message}${reply.state ? `; state ${clean(reply.state, 40)}` : ''}); halting anyway`);
        break;
      case 'refused':
        this.log(`halting rejected (HTTP ${reply.status}: ${reply.message}); halting anyway`);
        break;
      case 'transient':
        this.log(`halting not declared (${reply.message}) after ${Math.round(this.haltingRetryMs / 100) / 10} s of retries; halting anyway`);
        break;
      case 'aborted':
        this.log('stopped by signal before halting');
        return { reason: 'aborted' };
    }
    this.log(`running halt command ${JSON.stringify(this.config.haltCommand)}`);
    const result = await runCommand(this.config.haltCommand, this.haltTimeoutMs);
    if (result.ok) this.log('halt command done; exiting');
    else this.log(`halt command failed: ${result.problem}; exiting`);
    return { reason: 'halted', haltCommand: result };
  }

  /** Load, jobs, transfers and uptime now. Command problems are logged and never fatal. */
  async sample(): Promise<Sample> {
    const load = currentLoad();
    const rawUptime = os.uptime();
    const uptime = Number.isFinite(rawUptime) && rawUptime > 0 ? Math.min(UINT32_MAX, Math.floor(rawUptime)) : 0;

    let jobs: number | null = 0;
    if (this.config.jobsCommand) {
      const result = await runCommand(this.config.jobsCommand, this.commandTimeoutMs, this.signal);
      const parsed = result.ok ? parseJobs(result.stdout) : undefined;
      if (parsed !== undefined) jobs = this.lastJobs = parsed;
      else {
        jobs = null;
        if (!this.aborted) {
          const why = result.ok ? `printed ${JSON.stringify(clean(result.stdout, 40))}, not a number of jobs` : result.problem;
          this.log(`jobs command failed (${why}); reporting the last count, ${this.lastJobs}`);
        }
      }
    }

    let transfers = this.lastTransfers;
    if (this.config.transferCommand) {
      const result = await runCommand(this.config.transferCommand, this.commandTimeoutMs, this.signal);
      const parsed = result.ok ? parseTransfers(result.stdout) : undefined;
      if (parsed) transfers = this.lastTransfers = parsed;
      else if (!this.aborted) {
        const why = result.ok ? `printed ${JSON.stringify(clean(result.stdout, 40))}, not "<files> <bytes>"` : result.problem;
        this.log(`transfer command failed (${why}); reporting the last figures`);
      }
    } else if (this.config.transferFile) {
      const text = await fs.readFile(this.config.transferFile, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? '0 0' : err));
      const parsed = typeof text === 'string' ? parseTransfers(text) : undefined;
      if (parsed) transfers = this.lastTransfers = parsed;
      else {
        const why = typeof text === 'string' ? `holds ${JSON.stringify(clean(text, 40))}, not "<files> <bytes>"` : clean(text.message);
        this.log(`transfer file ${this.config.transferFile} unusable (${why}); reporting the last figures`);
      }
    }
    return { load, jobs, transferredFiles: transfers.files, transferredBytes: transfers.bytes, uptime };
  }

  private figures(sample: Sample) {
    return {
      load: sample.load,
      jobs: sample.jobs ?? this.lastJobs,
      transferredFiles: sample.transferredFiles,
      transferredBytes: sample.transferredBytes,
      uptime: sample.uptime,
    };
  }

  private describeSample(s: Sample): string {
    return `load=${s.load} jobs=${s.jobs ?? `${this.lastJobs}?`} files=${s.transferredFiles} bytes=${s.transferredBytes} uptime=${s.uptime}`;
  }

  private describeBody(body: unknown): string {
    if (typeof body === 'string') return body === '' ? 'empty body' : `not JSON: ${JSON.stringify(clean(body, 60))}`;
    try {
      return clean(JSON.stringify(body), 80);
    } catch {
      return 'unprintable body';
    }
  }

  /**
   * Calls until the reply is not transient, waiting with backoff in between (one log line per retry).
   * Gives up with the last transient reply when `deadline` (epoch ms) would pass.
   */
  private async withRetry(what: string, call: () => Promise<Reply>, deadline?: number): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      const reply = await call();
      if (reply.kind !== 'transient') return reply;
      if (this.aborted) return { kind: 'aborted' };
      const delay = backoffDelay(attempt, this.backoff, this.random);
      if (deadline !== undefined && Date.now() + delay > deadline) return reply;
      this.log(`${what}: ${reply.message}; retry ${attempt + 1} in ${(delay / 1000).toFixed(1)} s`);
      if (!(await this.pause(delay))) return { kind: 'aborted' };
    }
  }

  /** Sleeps `ms`, or until `wake` aborts; false when the agent's signal aborted it. */
  private async pause(ms: number, wake?: AbortSignal): Promise<boolean> {
    if (this.aborted) return false;
    if (wake?.aborted) return true;
    const signals = [this.signal, wake].filter((s): s is AbortSignal => s !== undefined);
    try {
      await sleep(ms, undefined, { signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0] });
      return true;
    } catch (err) {
      if (isAbort(err)) return !this.aborted;
      throw err;
    }
  }

  /** POSTs to one of this instance's VM routes and classifies the outcome; never throws. */
  async post(route: 'running' | 'heartbeat' | 'halting' | 'halt-reason', body: unknown): Promise<Reply> {
    if (this.aborted) return { kind: 'aborted' };
    const url = `${this.config.apiUrl}/api/v1/vms/${this.config.instanceID}/${route}`;
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    const signal = this.signal ? AbortSignal.any([timeout, this.signal]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.config.token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal,
      });
      text = await readLimited(res);
    } catch (err) {
      if (this.aborted) return { kind: 'aborted' };
      // Unreachable, reset, timed out, or a reply too large to be ours: all worth a retry.
      return { kind: 'transient', message: networkProblem(err, this.config.caFile) };
    }
    let parsed: unknown = text;
    try {
      if (text !== '') parsed = JSON.parse(text);
    } catch {
      // Kept as text: the callers report it as malformed.
    }
    const detail = () => {
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const { error, message } = parsed as Record<string, unknown>;
        const text = [error, message].filter((part) => typeof part === 'string' && part !== '').map((part) => clean(part, 160)).join(': ');
        if (text) return text;
      }
      return this.describeBody(parsed);
    };
    const status = res.status;
    if (status >= 200 && status < 300) return { kind: 'ok', status, body: parsed };
    if (status >= 500 || TRANSIENT_4XX.has(status)) return { kind: 'transient', status, message: `HTTP ${status} (${detail()})` };
    if (status === 409) {
      const state = (parsed as { state?: unknown } | null)?.state;
      return { kind: 'conflict', status, state: typeof state === 'string' ? state : undefined, message: detail() };
    }
    if (status >= 300 && status < 400) {
      return { kind: 'refused', status, message: `redirected to ${clean(res.headers.get('location') ?? 'an unknown place', 120)}; set the API URL to the final address` };
    }
    return { kind: 'refused', status, message: detail() };
  }
}
