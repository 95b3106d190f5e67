import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type AuditAction, type AuditRecord, AuditStore } from '../db/audit-store';
import type { VirtualMachineDB } from '../db/vmdb';
import { auditWriteFailures } from '../ops/metrics';

/** What a request was aimed at, as far as it can be told (a request refused early has raw params and no body). */
export interface AuditTarget {
  target: string;
  instanceID?: number | null;
  detail?: string;
}

/** A route's audit: its action, and how to name its target from the request. */
export interface AuditSpec {
  action: AuditAction;
  target: (request: FastifyRequest) => AuditTarget;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    audit?: AuditSpec;
  }
}

// Requests whose route recorded its own rows (the stop, one per instance): the hook leaves them alone.
const recorded = new WeakSet<FastifyRequest>();

/** A path or body value as an InstanceID, or null. */
export function instanceIDOf(raw: unknown): number | null {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

/** The operator behind a request, or undefined for VM tokens and strangers (who are not operators). */
function operatorOf(request: FastifyRequest): { name: string; role: string } | undefined {
  const principal = request.principal;
  return principal?.kind === 'operator' ? { name: principal.name, role: principal.role } : undefined;
}

/**
 * Writes audit rows. A failed write does not change the action's answer (the action has happened,
 * or been refused, already): it is logged at error level with the rows, and counted.
 */
export async function writeAudit(db: VirtualMachineDB, log: FastifyBaseLogger, records: readonly AuditRecord[]): Promise<void> {
  if (!records.length) return;
  try {
    await AuditStore.of(db).record(records);
  } catch (err) {
    for (const r of records) auditWriteFailures.inc({ action: r.action });
    log.error({ err, audit: records }, 'audit trail: operator action not recorded');
  }
}

/** The route records its own rows (one per instance of a stop); `build` gets the operator. */
export async function recordOwn(
  db: VirtualMachineDB,
  request: FastifyRequest,
  build: (operator: { name: string; role: string }) => AuditRecord[],
): Promise<void> {
  const operator = operatorOf(request);
  recorded.add(request);
  if (operator) await writeAudit(db, request.log, build(operator));
}

/** `{ error, message }` of an error reply, as far as the payload tells. */
function errorOf(payload: unknown): { error: string; message: string } {
  try {
    const body = JSON.parse(typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '') as Record<string, unknown>;
    return { error: typeof body.error === 'string' ? body.error : '', message: typeof body.message === 'string' ? body.message : '' };
  } catch {
    return { error: '', message: '' };
  }
}

/**
 * Records every request of an operator to a route with an `audit` config, once its answer is
 * known: succeeded (2xx) or failed (the status, the error code and message the caller got),
 * refusals of its role included. Written before the answer leaves, so that an answered action is
 * on record unless the write itself failed (then writeAudit logs and counts it).
 */
export function installAudit(app: FastifyInstance, db: VirtualMachineDB): void {
  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const spec = request.routeOptions.config?.audit;
    const operator = operatorOf(request);
    if (!spec || !operator || recorded.has(request)) return payload;
    recorded.add(request);
    let target: AuditTarget;
    try {
      target = spec.target(request);
    } catch {
      target = { target: '' };
    }
    const failed = reply.statusCode >= 400;
    const { error, message } = failed ? errorOf(payload) : { error: '', message: '' };
    await writeAudit(db, request.log, [
      {
        operator: operator.name,
        role: operator.role,
        action: spec.action,
        target: target.target,
        instanceID: target.instanceID ?? null,
        detail: target.detail ?? '',
        outcome: failed ? 'failed' : 'succeeded',
        httpStatus: reply.statusCode,
        error,
        message,
      },
    ]);
    return payload;
  });
}
