import { runCommand } from '../agent/agent';
import type { DemandSource, ElasticEndpointConfig } from './config';

/** What the demand source said: the number of waiting jobs, or why there is none. */
export type DemandReading = { waiting: number } | { error: string };

const MAX_REPLY_BYTES = 256 * 1024;
/** A count this large is a mistake, not a queue. */
const MAX_WAITING = 1e9;

function asCount(value: unknown, what: string): DemandReading {
  const n = typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > MAX_WAITING) return { error: `${what} is not a number of waiting jobs: ${JSON.stringify(value)?.slice(0, 60)}` };
  return { waiting: Math.floor(n) };
}

/** The value at a dotted path of a parsed JSON document, or undefined. */
export function atPath(document: unknown, field: string | undefined): unknown {
  if (!field) return document;
  let value: unknown = document;
  for (const key of field.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Asks the endpoint's demand source; never throws, a failure comes back as its reason. */
export async function readDemand(source: DemandSource): Promise<DemandReading> {
  if ('command' in source) {
    const result = await runCommand(source.command, source.timeoutSeconds * 1000);
    if (!result.ok) return { error: `demand command ${result.problem}` };
    return asCount(result.stdout.trim(), 'the demand command printed what');
  }
  try {
    const res = await fetch(source.url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(source.timeoutSeconds * 1000) });
    const text = await res.text();
    if (!res.ok) return { error: `demand URL answered HTTP ${res.status}` };
    if (text.length > MAX_REPLY_BYTES) return { error: `demand URL reply is larger than ${MAX_REPLY_BYTES} bytes` };
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch {
      return { error: 'demand URL reply is not JSON' };
    }
    const value = atPath(document, 'field' in source ? source.field : undefined);
    if (value === undefined) return { error: `demand URL reply has no field ${'field' in source ? source.field : ''}` };
    return asCount(value, `field ${('field' in source && source.field) || '(the reply)'}`);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { error: `demand URL unreachable: ${e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.message)}` };
  }
}

/**
 * How many instances the endpoint should have: one per `jobsPerInstance` waiting jobs, at least
 * `minInstances` and at most `maxInstances`. Without a reading (the source failed): `minInstances`,
 * so a broken source never grows the fleet; the running VMs carry on.
 */
export function demandTarget(reading: DemandReading, config: Pick<ElasticEndpointConfig, 'jobsPerInstance' | 'minInstances'> & { maxInstances: number }): number {
  const wanted = 'waiting' in reading ? Math.ceil(reading.waiting / config.jobsPerInstance) : 0;
  return Math.min(config.maxInstances, Math.max(config.minInstances, wanted));
}
