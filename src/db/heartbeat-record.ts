import { type Directive, type InstanceStatus, checkTransition, recordedStatus, directiveForStatus } from '../../entities/states';
import type { HeartbeatFigures } from '../../entities/heartbeat';
import type { Executor } from './database';
import type { HeartbeatMark } from './instance-life';
import { type InstanceRow, heartbeatOfLocked } from './lifecycle';
import { Refusal, type Result, S_ERROR, S_OK } from './result';
import { fromSqlTime, nowSql } from './time';

/** A heartbeat as the record answers it: what the VM is told, and what its workflow is signalled. */
export interface RecordedHeartbeat {
  /** ok / stop / halt, from the recorded status or the refused transition's State. */
  directive: Directive;
  /** A new history row was written (false: refused, or a repeat answered from the record). */
  recorded: boolean;
  /** The same (boot id, sequence) was recorded before: nothing was written. */
  repeated: boolean;
  status: InstanceStatus;
  /** The instance's version after this heartbeat (orders the workflow's reads of the record). */
  version: number;
  /** LastUpdate after this heartbeat, UTC ISO. */
  lastUpdate: string | null;
  /** The planned shutdown the workflow stored, UTC ISO; null when none is planned. */
  shutdownAt: string | null;
}

const iso = (value: unknown): string | null => fromSqlTime(value)?.toISOString() ?? null;

function forUpdate(ex: Executor): string {
  return ex.dialect === 'mysql' ? ' FOR UPDATE' : '';
}

/**
 * The API's heartbeat, by InstanceID, in the caller's transaction: the seed's instanceIDHeartBeat
 * through the transition table, exactly once per (boot id, sequence). A repeat is answered from the
 * record and writes nothing. A refusal that tells the VM something (Stopping: stop; Halted or Error:
 * halt) is an answer too; any other refusal is a failure whose State is the current status.
 */
export async function recordHeartbeat(
  ex: Executor,
  instanceID: number,
  beat: HeartbeatFigures,
  mark?: HeartbeatMark,
): Promise<Result<RecordedHeartbeat>> {
  const [row] = await ex.select(
    `SELECT i.\`InstanceID\`, i.\`VMImageID\`, i.\`Status\`, i.\`ErrorMessage\`, i.\`UniqueID\`, i.\`LastUpdate\`, l.\`Version\`, l.\`BootID\`, l.\`Seq\`, l.\`ShutdownAt\`
     FROM \`vm_Instances\` i LEFT JOIN \`vm_InstanceLife\` l ON l.\`InstanceID\` = i.\`InstanceID\` WHERE i.\`InstanceID\` = ?${forUpdate(ex)}`,
    [instanceID],
  );
  if (!row) return S_ERROR(`Unknown InstanceID = ${instanceID}`, undefined, 'not_found');
  const status = recordedStatus(row.Status);
  if (!row.UniqueID) return S_ERROR(`Instance ${instanceID} has no VM yet (status ${status})`, status, 'not_ready');
  const fromRecord = (recorded: boolean, repeated: boolean, now: { status: InstanceStatus; version: number; lastUpdate: unknown }): RecordedHeartbeat => ({
    directive: directiveForStatus(now.status),
    recorded,
    repeated,
    status: now.status,
    version: now.version,
    lastUpdate: iso(now.lastUpdate),
    shutdownAt: iso(row.ShutdownAt),
  });
  const version = Number(row.Version ?? 0);
  const stored = { status, version, lastUpdate: row.LastUpdate };
  if (mark && String(row.BootID ?? '') === mark.bootId && mark.seq <= Number(row.Seq ?? 0)) return S_OK(fromRecord(false, true, stored));

  const instance: InstanceRow = { InstanceID: instanceID, VMImageID: Number(row.VMImageID), Status: status, ErrorMessage: String(row.ErrorMessage ?? '') };
  const now = nowSql();
  let result: Result<string>;
  try {
    result = await heartbeatOfLocked(ex, instance, beat, now, mark);
  } catch (err) {
    // Refused by the table before anything was written: Stopping, Halted and Error answer the VM.
    if (!(err instanceof Refusal)) throw err;
    const verdict = checkTransition('Instance', status, 'Running');
    if (directiveForStatus(status) !== 'ok') return S_OK(fromRecord(false, false, stored));
    const refused = err.result;
    return S_ERROR(refused.Message, refused.State ?? (verdict.allowed ? undefined : verdict.state), 'refused');
  }
  // Recorded (Running), or forced to Error (image in Error, or a corrupt status): one history row either way.
  const after = result.OK ? 'Running' : 'Error';
  return S_OK(fromRecord(true, false, { status: after, version: version + 1, lastUpdate: now }));
}
