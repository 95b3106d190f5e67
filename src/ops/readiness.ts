import type { Client } from '@temporalio/client';
import type { VirtualMachineDB } from '../db/vmdb';

/** How long one check may take before its part counts as down. */
export const CHECK_TIMEOUT_MS = 3000;

export type Check = 'ok' | 'down';

/** Resolves 'ok' when `probe` resolves true in time, 'down' otherwise; never throws. */
export async function check(probe: () => Promise<boolean>, timeoutMs = CHECK_TIMEOUT_MS): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return (await Promise.race([probe().catch(() => false), late])) ? 'ok' : 'down';
  } finally {
    clearTimeout(timer);
  }
}

/** A real query on a small table: cheap, and it needs the connection and the schema's tables. */
export async function databaseAnswers(db: VirtualMachineDB): Promise<boolean> {
  return (await db.countEntries('vm_Images')).OK;
}

/** Temporal's frontend answers getSystemInfo within the deadline. */
export async function temporalAnswers(temporal: Client | undefined, timeoutMs = CHECK_TIMEOUT_MS): Promise<boolean> {
  if (!temporal) return false;
  await temporal.withDeadline(Date.now() + timeoutMs, () => temporal.workflowService.getSystemInfo({}));
  return true;
}

export interface Readiness {
  status: 'ready' | 'not ready';
  database: Check;
  /** `unknown` when the database does not answer. */
  schema: 'current' | 'behind' | 'unknown';
  temporal: Check;
  /** The parts that are not ready (database, schema, temporal, and what `extra` adds); empty when ready. A database that does not answer is not also counted as its schema. */
  failed: string[];
  /** What to do about it, for a person reading the probe's answer. */
  message?: string;
}

const ADVICE: Record<string, string> = {
  database: 'the database does not answer',
  schema: 'the database schema is behind this build: run `vmdb migrate`',
  temporal: 'Temporal does not answer',
};

/**
 * Whether this process can do its work: the database answers, its schema has
 * every migration of this build, and Temporal answers. `extra` adds checks of
 * the caller's own (the worker: that it is polling).
 */
export async function readiness(deps: {
  db: VirtualMachineDB;
  temporal?: Client;
  extra?: Record<string, { ok: () => boolean | Promise<boolean>; advice: string }>;
  timeoutMs?: number;
}): Promise<Readiness & Record<string, unknown>> {
  const timeoutMs = deps.timeoutMs ?? CHECK_TIMEOUT_MS;
  const schemaCheck = async (): Promise<Readiness['schema']> => {
    let current: boolean | undefined;
    const answered = await check(async () => {
      current = await deps.db.schemaIsCurrent();
      return true;
    }, timeoutMs);
    return answered === 'ok' ? (current ? 'current' : 'behind') : 'unknown';
  };
  const [database, temporal] = await Promise.all([check(() => databaseAnswers(deps.db), timeoutMs), check(() => temporalAnswers(deps.temporal, timeoutMs), timeoutMs)]);
  const schema = database === 'ok' ? await schemaCheck() : 'unknown';
  const failed: string[] = [];
  if (database !== 'ok') failed.push('database');
  if (database === 'ok' && schema !== 'current') failed.push('schema'); // behind, or it could not be read
  if (temporal !== 'ok') failed.push('temporal');
  const extras: Record<string, Check> = {};
  const advice: string[] = [];
  for (const [name, { ok, advice: text }] of Object.entries(deps.extra ?? {})) {
    extras[name] = (await Promise.resolve().then(ok).catch(() => false)) ? 'ok' : 'down';
    if (extras[name] !== 'ok') {
      failed.push(name);
      advice.push(text);
    }
  }
  const reasons = failed.filter((part) => part in ADVICE).map((part) => (part === 'schema' && schema === 'unknown' ? 'the schema version could not be read' : ADVICE[part]));
  const message = [...reasons, ...advice].join('; ');
  return { status: failed.length ? 'not ready' : 'ready', database, schema, temporal, ...extras, failed, ...(message ? { message } : {}) };
}
