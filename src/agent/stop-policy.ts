import { promises as fs } from 'node:fs';
import os from 'node:os';

/**
 * When a VM with nothing to do halts itself: DIRAC's VirtualMachineMonitorAgent stop policies.
 *
 * - `never`: the VM runs until the service tells it to stop or halt.
 * - `elastic`: in the `haltBeforeMargin` seconds before the end of each `haltPeriod` of uptime (a
 *   cloud that bills by the hour would use 3600 / 300), the VM halts if its load averaged over the
 *   last `loadAverageTimespan` seconds is below `minWorkingLoad` and it runs no job.
 *
 * The fleet file sets the policy per endpoint and the Director puts it in the user data (`vmdb.stopPolicy`).
 */
export type StopPolicy =
  | { policy: 'never' }
  | { policy: 'elastic'; loadAverageTimespan: number; haltPeriod: number; haltBeforeMargin: number; minWorkingLoad: number };

/** DIRAC's defaults. */
export const ELASTIC_DEFAULTS = { loadAverageTimespan: 60, haltPeriod: 600, haltBeforeMargin: 300, minWorkingLoad: 0.01 } as const;

const ELASTIC_KEYS = Object.keys(ELASTIC_DEFAULTS) as (keyof typeof ELASTIC_DEFAULTS)[];
/** A week: any longer and a "period" of uptime means nothing. */
const MAX_SECONDS = 604_800;

/** Checks a stop policy from the fleet file or the user data; throws naming `where` and the key. */
export function validateStopPolicy(where: string, raw: unknown): StopPolicy {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where} must be an object such as { "policy": "elastic" }`);
  const given = raw as Record<string, unknown>;
  if (given.policy === 'never') {
    const extra = Object.keys(given).filter((key) => key !== 'policy');
    if (extra.length) throw new Error(`${where}: "never" takes no settings, got ${extra.join(', ')}`);
    return { policy: 'never' };
  }
  if (given.policy !== 'elastic') throw new Error(`${where}.policy must be "elastic" or "never", got ${JSON.stringify(given.policy)}`);
  for (const key of Object.keys(given)) {
    if (key !== 'policy' && !(ELASTIC_KEYS as string[]).includes(key)) throw new Error(`${where}.${key} is not a stop policy setting (${ELASTIC_KEYS.join(', ')})`);
  }
  const value = (key: keyof typeof ELASTIC_DEFAULTS): number => {
    const v = given[key] ?? ELASTIC_DEFAULTS[key];
    const isLoad = key === 'minWorkingLoad';
    const good = typeof v === 'number' && Number.isFinite(v) && (isLoad ? v >= 0 && v <= 1000 : Number.isInteger(v) && v > 0 && v <= MAX_SECONDS);
    if (!good) throw new Error(`${where}.${key} must be ${isLoad ? 'a number from 0 to 1000' : `a whole number of seconds from 1 to ${MAX_SECONDS}`}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const policy = { policy: 'elastic' as const, loadAverageTimespan: value('loadAverageTimespan'), haltPeriod: value('haltPeriod'), haltBeforeMargin: value('haltBeforeMargin'), minWorkingLoad: value('minWorkingLoad') };
  if (policy.haltBeforeMargin > policy.haltPeriod) throw new Error(`${where}.haltBeforeMargin (${policy.haltBeforeMargin}) must not exceed haltPeriod (${policy.haltPeriod})`);
  return policy;
}

/** Whether `uptime` lies in the margin before the end of a halt period. */
export function inHaltMargin(uptime: number, haltPeriod: number, haltBeforeMargin: number): boolean {
  return uptime % haltPeriod >= haltPeriod - haltBeforeMargin;
}

/** Why the VM halts itself, as the agent records it. */
export interface IdleDecision {
  /** The load averaged over the timespan: the Halted history row carries it. */
  load: number;
  uptime: number;
  /** One line for the log and the recorded reason. */
  detail: string;
}

export interface StopPolicyProbes {
  /** The 1-minute load now. */
  load(): Promise<number>;
  /** Seconds since the VM booted. */
  uptime(): number;
  /** Jobs running now; null when unknown (never counted as none). */
  jobs(): Promise<number | null>;
}

/**
 * The 1-minute load from `file` (its first number, as in /proc/loadavg), or the system's. A file that
 * cannot be read counts as unknown (NaN): a VM whose load is unknown is never judged idle.
 */
export async function readLoad(file: string | undefined): Promise<number> {
  if (file === undefined) return os.loadavg()[0] ?? 0;
  try {
    const first = (await fs.readFile(file, 'utf8')).trim().split(/\s+/)[0];
    return /^\d+(\.\d+)?$/.test(first) ? Number(first) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * Runs the `elastic` policy beside the agent's loop: samples the load every `sampleSeconds`, keeps the
 * last `loadAverageTimespan` seconds of samples, and decides once the window is full. `decided` aborts
 * when the VM should halt, which wakes the agent's loop; `decision` says why.
 */
export class ElasticStopPolicy {
  private readonly samples: { at: number; load: number }[] = [];
  private readonly controller = new AbortController();
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  decision: IdleDecision | undefined;

  constructor(
    readonly policy: Extract<StopPolicy, { policy: 'elastic' }>,
    private readonly probes: StopPolicyProbes,
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get decided(): AbortSignal {
    return this.controller.signal;
  }

  /** A tenth of the timespan, between 1 and 10 s: enough samples for a fair average. */
  get sampleMs(): number {
    return Math.min(10, Math.max(1, this.policy.loadAverageTimespan / 10)) * 1000;
  }

  start(): void {
    this.startedAt = this.now();
    this.log(`stop policy elastic: halt when the load over ${this.policy.loadAverageTimespan} s is below ${this.policy.minWorkingLoad} with no jobs, in the last ${this.policy.haltBeforeMargin} s of each ${this.policy.haltPeriod} s of uptime`);
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.sampleMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample, then a decision if the VM is in a halt margin; never throws. */
  async tick(): Promise<void> {
    if (this.busy || this.decision) return;
    this.busy = true;
    try {
      const at = this.now();
      this.samples.push({ at, load: await this.probes.load() });
      const horizon = at - this.policy.loadAverageTimespan * 1000;
      while (this.samples.length > 1 && this.samples[0].at < horizon) this.samples.shift();
      // Judge only a full window, as DIRAC waits for its required samples.
      if (at - this.startedAt < this.policy.loadAverageTimespan * 1000) return;
      const uptime = Math.floor(this.probes.uptime());
      if (!inHaltMargin(uptime, this.policy.haltPeriod, this.policy.haltBeforeMargin)) return;
      const average = this.samples.reduce((sum, s) => sum + s.load, 0) / this.samples.length;
      if (!Number.isFinite(average) || average >= this.policy.minWorkingLoad) return;
      const jobs = await this.probes.jobs();
      if (jobs !== 0) return;
      const load = Math.round(average * 1000) / 1000;
      this.decision = {
        load,
        uptime,
        detail: `idle: load ${load} over ${this.policy.loadAverageTimespan} s below ${this.policy.minWorkingLoad}, no jobs, uptime ${uptime} s (period ${this.policy.haltPeriod} s)`,
      };
      this.stop();
      this.controller.abort();
    } catch (err) {
      this.log(`stop policy: sample failed (${(err as Error)?.message ?? err}); trying again`);
    } finally {
      this.busy = false;
    }
  }
}
