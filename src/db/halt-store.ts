import type { Executor } from './database';
import { fromSqlTime, toSqlTime } from './time';
import type { VirtualMachineDB } from './vmdb';

/** Why a VM halted itself; `idle` is the stop policy's verdict. */
export const HALT_REASONS = ['idle'] as const;
export type HaltReason = (typeof HALT_REASONS)[number];

export interface InstanceHalt {
  instanceID: number;
  reason: string;
  detail: string;
  /** The VM's uptime when it decided, in seconds. */
  uptime: number;
  at: string | null;
}

/** A VM halted idle soon after boot: what the Director backs an endpoint off for (vcycle's rule). */
export interface IdleHalt {
  instanceID: number;
  uptime: number;
  at: Date;
}

/** vm_InstanceHalts (migration ElasticFleet): the reason a VM gave for halting itself. */
export class HaltStore {
  constructor(private readonly ex: Executor) {}

  static of(db: VirtualMachineDB): HaltStore {
    return new HaltStore(db.executor);
  }

  /** One row per instance: a repeated report (a retried request) keeps the first. */
  async record(instanceID: number, reason: HaltReason, detail: string, uptime: number, now = new Date()): Promise<boolean> {
    const insert = this.ex.dialect === 'mysql' ? 'INSERT IGNORE INTO' : 'INSERT OR IGNORE INTO';
    const result = await this.ex.write(`${insert} \`vm_InstanceHalts\` (\`InstanceID\`, \`Reason\`, \`Detail\`, \`Uptime\`, \`At\`) VALUES (?, ?, ?, ?, ?)`, [
      instanceID,
      reason,
      detail.slice(0, 255),
      Math.max(0, Math.min(4_294_967_295, Math.floor(uptime))),
      toSqlTime(now),
    ]);
    return result.affected > 0;
  }

  async of(instanceID: number): Promise<InstanceHalt | null> {
    const [row] = await this.ex.select('SELECT `Reason`, `Detail`, `Uptime`, `At` FROM `vm_InstanceHalts` WHERE `InstanceID` = ?', [instanceID]);
    return row ? { instanceID, reason: String(row.Reason), detail: String(row.Detail), uptime: Number(row.Uptime), at: fromSqlTime(row.At)?.toISOString() ?? null } : null;
  }

  /** The latest idle halt at `endpoint` since `since` of a VM whose uptime was below `withinSeconds`. */
  async latestIdleHalt(endpoint: string, withinSeconds: number, since: Date): Promise<IdleHalt | undefined> {
    const [row] = await this.ex.select(
      'SELECT h.`InstanceID`, h.`Uptime`, h.`At` FROM `vm_InstanceHalts` h JOIN `vm_Instances` i ON i.`InstanceID` = h.`InstanceID` ' +
        'WHERE h.`Reason` = ? AND h.`At` >= ? AND h.`Uptime` < ? AND i.`Endpoint` = ? ORDER BY h.`At` DESC LIMIT 1',
      ['idle', toSqlTime(since), withinSeconds, endpoint],
    );
    const at = fromSqlTime(row?.At);
    return row && at ? { instanceID: Number(row.InstanceID), uptime: Number(row.Uptime), at } : undefined;
  }
}
