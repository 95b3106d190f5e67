import type { Executor } from './database';
import { fromSqlTime, toSqlTime } from './time';
import type { VirtualMachineDB } from './vmdb';

/** The global switches: launch as usual, launch nothing new, drain (stop) everything, halt everything. */
export const FLEET_MODES = ['normal', 'no-launch', 'drain', 'halt'] as const;
export type FleetMode = (typeof FLEET_MODES)[number];

export interface EndpointHealth {
  endpoint: string;
  paused: boolean;
  pauseReason: string;
  /** Consecutive failed creations since the last success. */
  failures: number;
  lastReason: string;
  lastMessage: string;
  lastFailure: string | null;
  /** The Director launches nothing here before this time (ISO), or null. */
  backoffUntil: string | null;
  /** The waiting jobs the demand source gave at the Director's last pass (null: no source, or it failed). */
  demand: number | null;
  /** The number of instances the Director launched toward at that pass (null: no demand source: maxInstances). */
  target: number | null;
  /** Why there is no demand figure, when the source failed. */
  demandMessage: string;
  demandAt: string | null;
}

export interface ManualControl {
  instanceID: number;
  reason: string;
  since: string | null;
}

export interface Mark {
  value: string;
  at: Date | null;
}

const iso = (value: unknown): string | null => fromSqlTime(value)?.toISOString() ?? null;
const clip = (text: string, width: number) => (text.length > width ? text.slice(0, width) : text);

/** The exponential pause after `failures` consecutive failures: initial, 2x, 4x ... capped. */
export function backoffSeconds(failures: number, backoff: { initialSeconds: number; maxSeconds: number }): number {
  if (failures <= 0) return 0;
  return Math.min(backoff.maxSeconds, backoff.initialSeconds * 2 ** Math.min(failures - 1, 30));
}

/**
 * The fleet-safety state in its own tables (migration FleetSafety): it must survive restarts of
 * the worker, the API and Temporal, and be shared by all of their replicas.
 */
export class SafetyStore {
  constructor(private readonly ex: Executor) {}

  static of(db: VirtualMachineDB): SafetyStore {
    return new SafetyStore(db.executor);
  }

  /** The Running instances of the fleet, or of one endpoint, and how many of them were last heard before `cutoff` (the silence guard). */
  async runningSilence(cutoff: Date, endpoint?: string): Promise<{ total: number; silent: number }> {
    const [row] = await this.ex.select(
      `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN \`LastUpdate\` < ? THEN 1 ELSE 0 END), 0) AS silent FROM \`vm_Instances\` WHERE \`Status\` = ?${endpoint === undefined ? '' : ' AND `Endpoint` = ?'}`,
      endpoint === undefined ? [toSqlTime(cutoff), 'Running'] : [toSqlTime(cutoff), 'Running', endpoint],
    );
    return { total: Number(row?.total ?? 0), silent: Number(row?.silent ?? 0) };
  }

  /** How many instances of the endpoint were stalled after `since` (the halt cap). */
  async stallsSince(endpoint: string, since: Date): Promise<number> {
    const [row] = await this.ex.select(
      'SELECT COUNT(*) AS n FROM `vm_History` h JOIN `vm_Instances` i ON i.`InstanceID` = h.`InstanceID` WHERE i.`Endpoint` = ? AND h.`Status` = ? AND h.`Update` > ?',
      [endpoint, 'Stalled', toSqlTime(since)],
    );
    return Number(row?.n ?? 0);
  }

  /** INSERT or UPDATE by primary key, in each dialect's own words; `columns` are fixed names, values are bound. */
  private async upsert(table: string, key: string, values: Record<string, unknown>, update: string[] = Object.keys(values).filter((c) => c !== key)): Promise<void> {
    const columns = Object.keys(values);
    const names = columns.map((c) => `\`${c}\``).join(', ');
    const marks = columns.map(() => '?').join(', ');
    const sets =
      this.ex.dialect === 'mysql' ? update.map((c) => `\`${c}\` = VALUES(\`${c}\`)`).join(', ') : update.map((c) => `\`${c}\` = excluded.\`${c}\``).join(', ');
    const tail = this.ex.dialect === 'mysql' ? `ON DUPLICATE KEY UPDATE ${sets}` : `ON CONFLICT (\`${key}\`) DO UPDATE SET ${sets}`;
    await this.ex.write(`INSERT INTO \`${table}\` (${names}) VALUES (${marks}) ${tail}`, Object.values(values));
  }

  // ---- endpoints --------------------------------------------------------------

  private toHealth(endpoint: string, row: Record<string, unknown> | undefined): EndpointHealth {
    return {
      endpoint,
      paused: Number(row?.Paused ?? 0) !== 0,
      pauseReason: String(row?.PauseReason ?? ''),
      failures: Number(row?.Failures ?? 0),
      lastReason: String(row?.LastReason ?? ''),
      lastMessage: String(row?.LastMessage ?? ''),
      lastFailure: iso(row?.LastFailure),
      backoffUntil: iso(row?.BackoffUntil),
      demand: row?.Demand === null || row?.Demand === undefined ? null : Number(row.Demand),
      target: row?.Target === null || row?.Target === undefined ? null : Number(row.Target),
      demandMessage: String(row?.DemandMessage ?? ''),
      demandAt: iso(row?.DemandAt),
    };
  }

  async endpoint(endpoint: string): Promise<EndpointHealth> {
    const [row] = await this.ex.select('SELECT * FROM `vm_EndpointControl` WHERE `Endpoint` = ?', [endpoint]);
    return this.toHealth(endpoint, row);
  }

  async endpoints(): Promise<EndpointHealth[]> {
    const rows = await this.ex.select('SELECT * FROM `vm_EndpointControl` ORDER BY `Endpoint`');
    return rows.map((row) => this.toHealth(String(row.Endpoint), row));
  }

  /** One more failed creation: the backoff doubles. Returns the endpoint's new health. */
  async recordCreateFailure(endpoint: string, reason: string, message: string, backoff: { initialSeconds: number; maxSeconds: number }, now = new Date()): Promise<EndpointHealth> {
    const current = await this.endpoint(endpoint);
    const failures = current.failures + 1;
    const until = new Date(now.getTime() + backoffSeconds(failures, backoff) * 1000);
    await this.upsert(
      'vm_EndpointControl',
      'Endpoint',
      {
        Endpoint: endpoint,
        Failures: failures,
        LastReason: clip(reason, 32),
        LastMessage: clip(message, 255),
        LastFailure: toSqlTime(now),
        BackoffUntil: toSqlTime(until),
        LastUpdate: toSqlTime(now),
      },
    );
    return this.endpoint(endpoint);
  }

  /** A creation worked: the failure count and its backoff are cleared (the last failure stays for the record). */
  async recordCreateSuccess(endpoint: string, now = new Date()): Promise<void> {
    // The common case writes nothing: most creations follow a success. An idle backoff (no failures) is not the cloud's to lift.
    const [row] = await this.ex.select('SELECT `Failures` FROM `vm_EndpointControl` WHERE `Endpoint` = ?', [endpoint]);
    if (!row || Number(row.Failures) === 0) return;
    await this.ex.write('UPDATE `vm_EndpointControl` SET `Failures` = 0, `BackoffUntil` = NULL, `LastUpdate` = ? WHERE `Endpoint` = ?', [toSqlTime(now), endpoint]);
  }

  /**
   * A VM of the endpoint halted idle soon after boot, at `haltAt` (vcycle's rule): launch nothing
   * before `until`. A halt no newer than the endpoint's last change is already applied, or an
   * operator resumed the endpoint since: it is not applied again. Never shortens a longer backoff;
   * the failure count is left alone.
   */
  async recordIdleBackoff(endpoint: string, haltAt: Date, until: Date, message: string, now = new Date()): Promise<EndpointHealth> {
    const current = await this.endpoint(endpoint);
    const [row] = await this.ex.select('SELECT `LastUpdate` FROM `vm_EndpointControl` WHERE `Endpoint` = ?', [endpoint]);
    const changed = fromSqlTime(row?.LastUpdate);
    if (changed && changed.getTime() >= haltAt.getTime()) return current;
    if (current.backoffUntil !== null && Date.parse(current.backoffUntil) >= until.getTime() - 999) return current;
    await this.upsert('vm_EndpointControl', 'Endpoint', { Endpoint: endpoint, LastReason: 'idle', LastMessage: clip(message, 255), BackoffUntil: toSqlTime(until), LastUpdate: toSqlTime(now) });
    return this.endpoint(endpoint);
  }

  /** The Director's demand reading and target for the endpoint at this pass. */
  async recordDemand(endpoint: string, demand: number | null, target: number, message: string, now = new Date()): Promise<void> {
    await this.upsert('vm_EndpointControl', 'Endpoint', { Endpoint: endpoint, Demand: demand, Target: target, DemandMessage: clip(message, 255), DemandAt: toSqlTime(now) });
  }

  async pauseEndpoint(endpoint: string, reason: string, now = new Date()): Promise<EndpointHealth> {
    await this.upsert('vm_EndpointControl', 'Endpoint', { Endpoint: endpoint, Paused: 1, PauseReason: clip(reason, 255), LastUpdate: toSqlTime(now) });
    return this.endpoint(endpoint);
  }

  /** Lifts a manual pause and any backoff: the operator says the endpoint is fine again. */
  async resumeEndpoint(endpoint: string, now = new Date()): Promise<EndpointHealth> {
    await this.ex.write('UPDATE `vm_EndpointControl` SET `Paused` = 0, `PauseReason` = ?, `Failures` = 0, `BackoffUntil` = NULL, `LastUpdate` = ? WHERE `Endpoint` = ?', [
      '',
      toSqlTime(now),
      endpoint,
    ]);
    return this.endpoint(endpoint);
  }

  // ---- manual control -----------------------------------------------------------

  async setManual(instanceID: number, reason: string, now = new Date()): Promise<ManualControl> {
    await this.upsert('vm_InstanceControl', 'InstanceID', { InstanceID: instanceID, Reason: clip(reason, 255), Since: toSqlTime(now) });
    return (await this.manual(instanceID))!;
  }

  /** True when there was a flag to clear. */
  async clearManual(instanceID: number): Promise<boolean> {
    return (await this.ex.write('DELETE FROM `vm_InstanceControl` WHERE `InstanceID` = ?', [instanceID])).affected > 0;
  }

  async manual(instanceID: number): Promise<ManualControl | null> {
    const [row] = await this.ex.select('SELECT `Reason`, `Since` FROM `vm_InstanceControl` WHERE `InstanceID` = ?', [instanceID]);
    return row ? { instanceID, reason: String(row.Reason), since: iso(row.Since) } : null;
  }

  async manualInstances(): Promise<ManualControl[]> {
    const rows = await this.ex.select('SELECT `InstanceID`, `Reason`, `Since` FROM `vm_InstanceControl` ORDER BY `InstanceID`');
    return rows.map((row) => ({ instanceID: Number(row.InstanceID), reason: String(row.Reason), since: iso(row.Since) }));
  }

  // ---- fleet switches and marks ---------------------------------------------------

  async mode(): Promise<FleetMode> {
    const { value } = await this.mark('mode');
    return (FLEET_MODES as readonly string[]).includes(value) ? (value as FleetMode) : 'normal';
  }

  async setMode(mode: FleetMode, now = new Date()): Promise<void> {
    await this.setMark('mode', mode, now);
  }

  async mark(name: string): Promise<Mark> {
    const [row] = await this.ex.select('SELECT `Value`, `LastUpdate` FROM `vm_FleetControl` WHERE `Name` = ?', [name]);
    return { value: row ? String(row.Value) : '', at: fromSqlTime(row?.LastUpdate) };
  }

  async setMark(name: string, value: string, now = new Date()): Promise<void> {
    await this.upsert('vm_FleetControl', 'Name', { Name: clip(name, 255), Value: clip(value, 255), LastUpdate: toSqlTime(now) });
  }

  /** Every mark whose name starts with `prefix`, by name. */
  async marksStartingWith(prefix: string): Promise<Map<string, Mark>> {
    const pattern = `${prefix.replace(/[!%_]/g, (c) => `!${c}`)}%`;
    const rows = await this.ex.select("SELECT `Name`, `Value`, `LastUpdate` FROM `vm_FleetControl` WHERE `Name` LIKE ? ESCAPE '!'", [pattern]);
    return new Map(rows.map((row) => [String(row.Name), { value: String(row.Value), at: fromSqlTime(row.LastUpdate) }]));
  }

  async deleteMark(name: string): Promise<void> {
    await this.ex.write('DELETE FROM `vm_FleetControl` WHERE `Name` = ?', [name]);
  }
}
