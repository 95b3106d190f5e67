/**
 * The figures a VM reports with each heartbeat, and their checks. Pure code:
 * the facade validates arguments with it and the workflow's update validator
 * rejects malformed heartbeats with it before anything is recorded.
 */
export interface HeartbeatFigures {
  load: number;
  jobs: number;
  transferredFiles: number;
  transferredBytes: number;
  /** Seconds the VM has been up; 0 means unknown. */
  uptime: number;
}

export const UINT32_MAX = 4294967295;
/** Largest value a (single-precision) FLOAT column holds. */
export const FLOAT_MAX = 3.4028234663852886e38;

/** Why `value` is not a non-negative integer up to `max`, or null when it is. */
export function countProblem(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): string | null {
  if (typeof value !== 'number' || !Number.isInteger(value)) return `${name} must be an integer, got ${describeValue(value)}`;
  if (value < 0) return `${name} must not be negative, got ${value}`;
  if (value > max) return `${name} is too large (${value}, at most ${max})`;
  return null;
}

/** Why `value` is not a finite non-negative number, or null when it is. */
export function figureProblem(name: string, value: unknown): string | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${name} must be a finite number, got ${describeValue(value)}`;
  if (value < 0) return `${name} must not be negative, got ${value}`;
  if (value > FLOAT_MAX) return `${name} is too large for a FLOAT column (${value})`;
  return null;
}

/** Every problem of a heartbeat payload, empty when it is well-formed. */
export function heartbeatProblems(figures: unknown): string[] {
  if (figures === null || typeof figures !== 'object' || Array.isArray(figures)) return ['heartbeat must be an object of figures'];
  const f = figures as Record<string, unknown>;
  const known = new Set(['load', 'jobs', 'transferredFiles', 'transferredBytes', 'uptime']);
  return [
    figureProblem('load', f.load),
    countProblem('jobs', f.jobs, UINT32_MAX),
    countProblem('transferredFiles', f.transferredFiles, UINT32_MAX),
    countProblem('transferredBytes', f.transferredBytes),
    countProblem('uptime', f.uptime, UINT32_MAX),
    ...Object.keys(f).filter((k) => !known.has(k)).map((k) => `unknown heartbeat field ${JSON.stringify(k)}`),
  ].filter((p): p is string => p !== null);
}

/** A short, safe rendering of any value for an error message (never throws, never echoes long input). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'function') return 'a function';
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
