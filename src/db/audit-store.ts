import type { Executor } from './database';
import { fromSqlTime, toSqlTime, EARLIEST_DATETIME } from './time';
import type { VirtualMachineDB } from './vmdb';

/** The operator actions the trail records. */
export const AUDIT_ACTIONS = ['instance.stop', 'instance.manual.set', 'instance.manual.clear', 'endpoint.pause', 'endpoint.resume', 'fleet.mode', 'director.trigger'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AUDIT_OUTCOMES = ['succeeded', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** The largest page of the trail one read returns. */
export const MAX_AUDIT_PAGE = 1000;

/** One action to record. */
export interface AuditRecord {
  operator: string;
  role: string;
  action: AuditAction;
  target: string;
  instanceID: number | null;
  detail: string;
  outcome: AuditOutcome;
  /** The HTTP status the caller got. */
  httpStatus: number;
  /** For a failure: the API's error code and message ('' for a success). */
  error: string;
  message: string;
}

/** One recorded action, as the trail answers it. */
export interface AuditEntry extends AuditRecord {
  id: number;
  /** When it was recorded (ISO, UTC, to the second). */
  at: string;
}

export interface AuditQuery {
  instanceID?: number;
  operator?: string;
  action?: string;
  /** Only entries recorded at or after this time. */
  since?: Date;
  /** Keyset cursor: only entries older than this id. */
  before?: number;
  /** 1 to MAX_AUDIT_PAGE. */
  limit: number;
}

const COLUMNS = ['At', 'Operator', 'Role', 'Action', 'Target', 'InstanceID', 'Detail', 'Outcome', 'HttpStatus', 'ErrorCode', 'Message'] as const;
// Rows per INSERT: a stop of 1000 instances stays far below either dialect's limit on bound values.
const ROWS_PER_INSERT = 100;

const clip = (text: string, width: number) => (text.length > width ? text.slice(0, width) : text);

/** vm_AuditLog (migration AuditTrail): the operator actions, append only. */
export class AuditStore {
  constructor(private readonly ex: Executor) {}

  static of(db: VirtualMachineDB): AuditStore {
    return new AuditStore(db.executor);
  }

  /** Appends the records, all with the same time. */
  async record(records: readonly AuditRecord[], now = new Date()): Promise<void> {
    const at = toSqlTime(now);
    const row = `(${COLUMNS.map(() => '?').join(', ')})`;
    const names = COLUMNS.map((c) => `\`${c}\``).join(', ');
    for (let i = 0; i < records.length; i += ROWS_PER_INSERT) {
      const chunk = records.slice(i, i + ROWS_PER_INSERT);
      const params = chunk.flatMap((r) => [
        at,
        clip(r.operator, 255),
        clip(r.role, 16),
        r.action,
        clip(r.target, 255),
        r.instanceID,
        clip(r.detail, 255),
        r.outcome,
        r.httpStatus,
        clip(r.error, 64),
        clip(r.message, 255),
      ]);
      await this.ex.write(`INSERT INTO \`vm_AuditLog\` (${names}) VALUES ${chunk.map(() => row).join(', ')}`, params);
    }
  }

  /** A page of the trail, newest first; the filters are ANDed. */
  async list(query: AuditQuery): Promise<AuditEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      where.push(sql);
      params.push(value);
    };
    if (query.instanceID !== undefined) add('`InstanceID` = ?', query.instanceID);
    if (query.operator !== undefined) add('`Operator` = ?', query.operator);
    if (query.action !== undefined) add('`Action` = ?', query.action);
    // A bound before the earliest DATETIME the databases hold means "all of it".
    if (query.since !== undefined) add('`At` >= ?', toSqlTime(new Date(Math.max(query.since.getTime(), EARLIEST_DATETIME))));
    if (query.before !== undefined) add('`ID` < ?', query.before);
    const limit = Math.max(1, Math.min(MAX_AUDIT_PAGE, Math.floor(query.limit)));
    const rows = await this.ex.select(
      `SELECT \`ID\`, ${COLUMNS.map((c) => `\`${c}\``).join(', ')} FROM \`vm_AuditLog\`${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY \`ID\` DESC LIMIT ?`,
      [...params, limit],
    );
    return rows.map((row) => ({
      id: Number(row.ID),
      at: fromSqlTime(row.At)?.toISOString() ?? '',
      operator: String(row.Operator),
      role: String(row.Role),
      action: String(row.Action) as AuditAction,
      target: String(row.Target),
      instanceID: row.InstanceID === null || row.InstanceID === undefined ? null : Number(row.InstanceID),
      detail: String(row.Detail),
      outcome: String(row.Outcome) as AuditOutcome,
      httpStatus: Number(row.HttpStatus),
      error: String(row.ErrorCode),
      message: String(row.Message),
    }));
  }
}
