/**
 * Fleet-safety settings: the `safety` block of the fleet file. Every field is optional; the
 * defaults below are what README's "Fleet safety" section documents.
 */
export interface SafetyConfig {
  guard: {
    /** More than this fraction of a scope's live instances silent at once trips the guard for it. */
    maxSilentFraction: number;
    /** ... but only with at least this many silent (a lone dead VM is not an outage). */
    minSilentInstances: number;
    /**
     * An instance counts as silent once it has not reported for this fraction of the stalling
     * interval: when the first deadline of a mass silence fires, the others are nearly as late.
     */
    silentAfterFraction: number;
    /** No stall after vmdb's own outage (or after the guard clears) for this long; 0: the stalling interval, at most 900 s. */
    recoveryGraceSeconds: number;
    /** A stall or halt that was held back is asked for again after this long; 0: a quarter of the stalling interval, at most 300 s. */
    deferSeconds: number;
  };
  halts: {
    /** At most this many automatic stalls per endpoint per window. */
    maxPerEndpoint: number;
    windowSeconds: number;
  };
  backoff: {
    /** Pause after the first failed creation; doubles with each further failure. */
    initialSeconds: number;
    maxSeconds: number;
  };
  pulse: {
    /** How often the worker and the API record that they are up (and can reach their dependencies). */
    everySeconds: number;
    /** A pulse older than this means the component was down: an outage. */
    outageAfterSeconds: number;
  };
  reconcile: {
    /** How often the reconciliation Schedule compares each endpoint's listing with the database. */
    everySeconds: number;
    /** Stop zombies at their endpoint (false: only report them). */
    stopZombies: boolean;
    /** A VM unknown to the database is a zombie only once listed this long (its creation may be in flight). */
    zombieGraceSeconds: number;
  };
}

export const DEFAULT_SAFETY: SafetyConfig = {
  guard: { maxSilentFraction: 0.5, minSilentInstances: 3, silentAfterFraction: 0.5, recoveryGraceSeconds: 0, deferSeconds: 0 },
  halts: { maxPerEndpoint: 20, windowSeconds: 3600 },
  backoff: { initialSeconds: 60, maxSeconds: 3600 },
  pulse: { everySeconds: 60, outageAfterSeconds: 300 },
  reconcile: { everySeconds: 600, stopZombies: false, zombieGraceSeconds: 900 },
};

type Section = keyof SafetyConfig;

// Settings where 0 means "derived from the stalling interval".
const AUTO = new Set(['recoveryGraceSeconds', 'deferSeconds']);

/** The recovery grace in force: as configured, or (0) the stalling interval, at most 900 s. */
export function recoveryGraceSeconds(config: SafetyConfig, stallingInterval: number): number {
  return config.guard.recoveryGraceSeconds || Math.min(900, stallingInterval);
}

/** The wait before a held action is asked for again: as configured, or (0) a quarter of the stalling interval, at most 300 s. */
export function deferSeconds(config: SafetyConfig, stallingInterval: number): number {
  return config.guard.deferSeconds || Math.min(300, Math.max(1, Math.ceil(stallingInterval / 4)));
}

function checkNumber(where: string, value: unknown, kind: 'integer' | 'fraction' | 'auto'): number {
  if (kind === 'auto') {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error(`${where} must be a whole number of seconds (0: automatic), got ${JSON.stringify(value)}`);
    return value;
  }
  if (kind === 'fraction') {
    if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new Error(`${where} must be a number in (0, 1], got ${JSON.stringify(value)}`);
    return value;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new Error(`${where} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/** The `safety` block with defaults filled in; an unknown key or a bad value is an error that says where. */
export function validateSafety(raw: unknown): SafetyConfig {
  if (raw === undefined) return structuredClone(DEFAULT_SAFETY);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('safety must be an object');
  const out = structuredClone(DEFAULT_SAFETY) as unknown as Record<string, Record<string, unknown>>;
  for (const [section, body] of Object.entries(raw as Record<string, unknown>)) {
    if (!Object.hasOwn(DEFAULT_SAFETY, section)) throw new Error(`safety.${section} is not a safety setting (known: ${Object.keys(DEFAULT_SAFETY).join(', ')})`);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error(`safety.${section} must be an object`);
    const defaults = DEFAULT_SAFETY[section as Section] as Record<string, unknown>;
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const where = `safety.${section}.${key}`;
      if (!Object.hasOwn(defaults, key)) throw new Error(`${where} is not a safety setting (known: ${Object.keys(defaults).join(', ')})`);
      if (typeof defaults[key] === 'boolean') {
        if (typeof value !== 'boolean') throw new Error(`${where} must be true or false`);
        out[section][key] = value;
      } else {
        out[section][key] = checkNumber(where, value, key === 'maxSilentFraction' || key === 'silentAfterFraction' ? 'fraction' : AUTO.has(key) ? 'auto' : 'integer');
      }
    }
  }
  return out as unknown as SafetyConfig;
}
