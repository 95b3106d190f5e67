import { type InstanceStatus, recordedStatus } from '../../entities/states';
import type { Executor } from './database';
import { fromSqlTime } from './time';

/**
 * The life cycle's own row beside each instance (vm_InstanceLife): the version that orders reads of
 * the record, the last heartbeat's number, the planned shutdown and a pending halt. Every function
 * takes the executor of the caller's transaction.
 */

const REASON_LENGTH = 255;

/** Inserts the row of a new instance (a heartbeat then never locks a gap where its row should be). */
export async function insertLife(ex: Executor, instanceID: number): Promise<void> {
  await ex.write('INSERT INTO `vm_InstanceLife` (`InstanceID`) VALUES (?)', [instanceID]);
}

/** Sets columns of the row, creating it first for an instance inserted before the row existed. */
async function updateLife(ex: Executor, instanceID: number, set: string, params: readonly unknown[]): Promise<void> {
  const updated = await ex.write(`UPDATE \`vm_InstanceLife\` SET ${set} WHERE \`InstanceID\` = ?`, [...params, instanceID]);
  if (updated.affected > 0) return;
  const ignore = ex.dialect === 'mysql' ? 'INSERT IGNORE' : 'INSERT OR IGNORE';
  await ex.write(`${ignore} INTO \`vm_InstanceLife\` (\`InstanceID\`) VALUES (?)`, [instanceID]);
  await ex.write(`UPDATE \`vm_InstanceLife\` SET ${set} WHERE \`InstanceID\` = ?`, [...params, instanceID]);
}

/** A recorded change of the instance: its version moves on, with the number of the heartbeat that made it, if one did. */
export async function bumpVersion(ex: Executor, instanceID: number, mark?: HeartbeatMark): Promise<void> {
  if (mark) await updateLife(ex, instanceID, '`Version` = `Version` + 1, `BootID` = ?, `Seq` = ?', [mark.bootId, mark.seq]);
  else await updateLife(ex, instanceID, '`Version` = `Version` + 1', []);
}

/** The planned shutdown the heartbeat answer carries (null: none planned). */
export async function planShutdown(ex: Executor, instanceID: number, at: string | null): Promise<void> {
  await updateLife(ex, instanceID, '`ShutdownAt` = ?', [at]);
}

/** Marks (since, reason) or clears (null) an endpoint stop that keeps failing; the first failure's time is kept. */
export async function setHaltPending(ex: Executor, instanceID: number, since: string | null, reason = ''): Promise<void> {
  if (since === null) await updateLife(ex, instanceID, '`HaltPendingSince` = NULL, `HaltPendingReason` = ?', ['']);
  else await updateLife(ex, instanceID, '`HaltPendingSince` = COALESCE(`HaltPendingSince`, ?), `HaltPendingReason` = ?', [since, reason.slice(0, REASON_LENGTH)]);
}

/** A heartbeat's number: the agent's boot id and a sequence that a retry reuses. */
export interface HeartbeatMark {
  bootId: string;
  seq: number;
}

/** Where an instance stands, read in one statement so that status, version and time belong together. */
export interface LifeSnapshot {
  status: InstanceStatus;
  /** LastUpdate as a UTC ISO string. */
  lastUpdate: string | null;
  errorMessage: string;
  version: number;
  uniqueID: string;
  /** The planned shutdown, UTC ISO, or null. */
  shutdownAt: string | null;
  /** Since when the endpoint keeps refusing to stop the VM (UTC ISO), or null; and its last reason. */
  haltPendingSince: string | null;
  haltPendingReason: string;
}

export async function readLife(ex: Executor, instanceID: number): Promise<LifeSnapshot | undefined> {
  const [row] = await ex.select(
    'SELECT i.`Status`, i.`LastUpdate`, i.`ErrorMessage`, i.`UniqueID`, l.`Version`, l.`ShutdownAt`, l.`HaltPendingSince`, l.`HaltPendingReason` FROM `vm_Instances` i LEFT JOIN `vm_InstanceLife` l ON l.`InstanceID` = i.`InstanceID` WHERE i.`InstanceID` = ?',
    [instanceID],
  );
  if (!row) return undefined;
  return {
    status: recordedStatus(row.Status),
    lastUpdate: fromSqlTime(row.LastUpdate)?.toISOString() ?? null,
    errorMessage: String(row.ErrorMessage ?? ''),
    version: Number(row.Version ?? 0),
    uniqueID: String(row.UniqueID ?? ''),
    shutdownAt: fromSqlTime(row.ShutdownAt)?.toISOString() ?? null,
    haltPendingSince: fromSqlTime(row.HaltPendingSince)?.toISOString() ?? null,
    haltPendingReason: String(row.HaltPendingReason ?? ''),
  };
}

/** How many instances have a VM the endpoint keeps refusing to stop. */
export async function haltPendingCount(ex: Executor): Promise<number> {
  const [row] = await ex.select('SELECT COUNT(*) AS n FROM `vm_InstanceLife` WHERE `HaltPendingSince` IS NOT NULL');
  return Number(row?.n ?? 0);
}
