import type { CreatePlan } from './fake-endpoint';

/** A small seeded PRNG (mulberry32): the same seed gives the same schedule on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Step =
  /** A heartbeat with a new sequence number; `jobs` 1 keeps a draining VM busy. */
  | { kind: 'beat'; jobs: number }
  /** The agent retries its last heartbeat (same boot id and sequence). */
  | { kind: 'retry' }
  | { kind: 'stop' }
  | { kind: 'halt' }
  | { kind: 'cancel' }
  | { kind: 'dbDown' }
  | { kind: 'dbUp' }
  /** The next `count` stops at the endpoint fail. */
  | { kind: 'stopFailures'; count: number };

export interface Schedule {
  seed: number;
  stallingIntervalSeconds: number;
  maxStartupSeconds?: number;
  maxLifetimeSeconds?: number;
  drainDeadlineSeconds?: number;
  heartbeatsPerRun: number;
  createAttempts: number;
  create: CreatePlan;
  /** Seconds of simulated time before each step, and the step. */
  steps: { after: number; step: Step }[];
}

/** The schedule of one seed: the instance's settings, how its creates go, and what happens to it when. */
export function scheduleFor(seed: number): Schedule {
  const rnd = prng(seed);
  const pick = <T>(...options: T[]): T => options[Math.floor(rnd() * options.length)];
  const chance = (p: number) => rnd() < p;
  const createRoll = rnd();
  const create: CreatePlan =
    createRoll < 0.55
      ? { failures: 0 }
      : createRoll < 0.7
        ? { failures: 1 + Math.floor(rnd() * 2) }
        : createRoll < 0.8
          ? { failures: 0, loseAnswer: true }
          : createRoll < 0.87
            ? { failures: 0, loseAnswer: true, downAfterLoss: true }
            : createRoll < 0.93
              ? { failures: 0, refused: true }
              : { failures: Infinity };
  const reports = chance(0.85);
  const steps: Schedule['steps'] = [];
  let dbDown = false;
  const count = 4 + Math.floor(rnd() * 14);
  for (let i = 0; i < count; i++) {
    const after = pick(1, 5, 30, 120, 299, 600, 1500, 3000);
    const roll = rnd();
    let step: Step;
    if (dbDown && roll < 0.5) step = { kind: 'dbUp' };
    else if (roll < 0.5) step = reports ? { kind: 'beat', jobs: pick(0, 1, 1, 2) } : { kind: 'retry' };
    else if (roll < 0.58) step = { kind: 'retry' };
    else if (roll < 0.7) step = { kind: 'stop' };
    else if (roll < 0.75) step = { kind: 'halt' };
    else if (roll < 0.79) step = { kind: 'cancel' };
    else if (roll < 0.88) step = dbDown ? { kind: 'dbUp' } : { kind: 'dbDown' };
    else step = { kind: 'stopFailures', count: pick(1, 3, 6) };
    if (step.kind === 'dbDown') dbDown = true;
    if (step.kind === 'dbUp') dbDown = false;
    steps.push({ after, step });
  }
  if (dbDown) steps.push({ after: pick(60, 3600, 4 * 3600), step: { kind: 'dbUp' } });
  return {
    seed,
    stallingIntervalSeconds: pick(600, 2400),
    maxStartupSeconds: pick(undefined, 300, 900),
    maxLifetimeSeconds: pick(undefined, undefined, 3600, 7200),
    drainDeadlineSeconds: pick(undefined, 15, 600),
    heartbeatsPerRun: pick(3, 500),
    createAttempts: 3,
    create,
    steps,
  };
}
