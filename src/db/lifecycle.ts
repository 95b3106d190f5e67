import { createHash, randomBytes } from 'node:crypto';
import type { HeartbeatFigures } from '../../entities/heartbeat';
import {
  type InstanceStatus,
  type ObjectKind,
  OCCUPYING_STATES,
  STALLABLE_STATES,
  allowedSources,
  checkTransition,
  isStopUnderWay,
  isValidState,
  lifecycleStopTarget,
  operatorStopTarget,
} from '../../entities/states';
import type { Executor, Row } from './database';
import { type HeartbeatMark, bumpVersion, insertLife, planShutdown } from './instance-life';
import { Refusal, type Result, S_ERROR, S_OK } from './result';
import { fromSqlTime, nowSql, secondsAgoSql } from './time';

/**
 * Every state change of images and instances. Each function runs inside one
 * transaction (`ex.inTransaction`) and reads the row with a locking read, so
 * check-then-write is atomic; the decision itself comes from entities/states.
 */

export interface HistoryFigures {
  load?: number;
  jobs?: number;
  transferredFiles?: number;
  transferredBytes?: number;
}

const TABLE = { Image: 'vm_Images', Instance: 'vm_Instances' } as const;
const KEY = { Image: 'VMImageID', Instance: 'InstanceID' } as const;
const ERROR_MESSAGE_LENGTH = 255;

function forUpdate(ex: Executor): string {
  // SQLite's BEGIN IMMEDIATE already excludes other writers.
  return ex.dialect === 'mysql' ? ' FOR UPDATE' : '';
}

export interface InstanceRow {
  InstanceID: number;
  VMImageID: number;
  /** As stored: the transition checks refuse (and flag) a value that is not a state. */
  Status: string;
  ErrorMessage: string;
}

/** The instance row, locked for the rest of the transaction; refuses unknown or ambiguous keys. */
export async function lockInstance(ex: Executor, by: 'InstanceID' | 'UniqueID', value: number | string): Promise<InstanceRow> {
  const rows = await ex.select(
    `SELECT \`InstanceID\`, \`VMImageID\`, \`Status\`, \`ErrorMessage\` FROM \`vm_Instances\` WHERE \`${by}\` = ?${forUpdate(ex)}`,
    [value],
  );
  if (rows.length === 0) throw new Refusal(S_ERROR(`Unknown ${by} = ${value}`, undefined, 'not_found'));
  if (rows.length > 1) throw new Refusal(S_ERROR(`${by} is not unique: ${value}`));
  const row = rows[0];
  return {
    InstanceID: Number(row.InstanceID),
    VMImageID: Number(row.VMImageID),
    Status: String(row.Status),
    ErrorMessage: String(row.ErrorMessage ?? ''),
  };
}

/** Told of each committed change of an image's or an instance's status (from the stored status, to the new one). */
export type TransitionObserver = (kind: ObjectKind, from: string, to: string) => void;

const observers: TransitionObserver[] = [];

/**
 * Calls `observer` after the commit of every status change made through this module (metrics).
 * Refreshes (a transition to the current state) are not changes. Returns the unsubscribe function.
 */
export function observeTransitions(observer: TransitionObserver): () => void {
  observers.push(observer);
  return () => {
    const at = observers.indexOf(observer);
    if (at >= 0) observers.splice(at, 1);
  };
}

/** Queues the observers' call for after the commit; nothing at all when nobody observes (the library's own use). */
function changed(ex: Executor, kind: ObjectKind, from: string, to: string): void {
  if (observers.length === 0 || from === to) return;
  const stored = isValidState(kind, from) || from === 'unknown' ? from : 'invalid'; // a corrupt Status must not become a label value
  ex.afterCommit(() => {
    for (const observer of observers) observer(kind, stored, to);
  });
}

/**
 * Appends a history row; the instance's version moves on with it (with the heartbeat's number when
 * the row is a heartbeat's), so every recorded change of an instance has a version of its own.
 */
export async function appendHistory(ex: Executor, instanceID: number, status: InstanceStatus, figures: HistoryFigures, now: string, mark?: HeartbeatMark): Promise<void> {
  await ex.write(
    'INSERT INTO `vm_History` (`InstanceID`, `Status`, `Load`, `Jobs`, `TransferredFiles`, `TransferredBytes`, `Update`) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [instanceID, status, figures.load ?? 0, figures.jobs ?? 0, figures.transferredFiles ?? 0, figures.transferredBytes ?? 0, now],
  );
  await bumpVersion(ex, instanceID, mark);
}

/** Forces `Error` from any state (with history for instances); `from` is the stored status, when the caller read it. */
export async function forceError(ex: Executor, kind: ObjectKind, id: number, message: string, now = nowSql(), from = 'unknown'): Promise<void> {
  await ex.write(
    `UPDATE \`${TABLE[kind]}\` SET \`Status\` = 'Error', \`ErrorMessage\` = ?, \`LastUpdate\` = ? WHERE \`${KEY[kind]}\` = ?`,
    [message.slice(0, ERROR_MESSAGE_LENGTH), now, id],
  );
  if (kind === 'Instance') await appendHistory(ex, id, 'Error', {}, now);
  changed(ex, kind, from, 'Error');
}

/**
 * Moves a locked row to `target`. Throws Refusal (nothing written) when the
 * table forbids it; returns a Failure to be committed as is when the stored
 * status was invalid and the row has just been forced to Error.
 */
export async function applyTransition(
  ex: Executor,
  kind: ObjectKind,
  id: number,
  current: { Status: string; ErrorMessage: string },
  target: string,
  now: string,
): Promise<Result<string> | null> {
  if (!allowedSources(kind, target)) throw new Refusal(S_ERROR(`Transition to ${target} not possible`));
  if (current.Status === 'Error') throw new Refusal(S_ERROR(current.ErrorMessage || `${kind} ${id} is in Error`));
  if (!isValidState(kind, current.Status)) {
    const message = `Invalid Status: ${current.Status}`;
    await forceError(ex, kind, id, message, now, current.Status);
    return S_ERROR(message);
  }
  const verdict = checkTransition(kind, current.Status, target);
  if (!verdict.allowed) throw new Refusal(S_ERROR(verdict.message, verdict.state));
  if (verdict.refreshOnly) {
    await ex.write(`UPDATE \`${TABLE[kind]}\` SET \`LastUpdate\` = ? WHERE \`${KEY[kind]}\` = ?`, [now, id]);
  } else {
    await ex.write(`UPDATE \`${TABLE[kind]}\` SET \`Status\` = ?, \`LastUpdate\` = ? WHERE \`${KEY[kind]}\` = ?`, [target, now, id]);
    changed(ex, kind, current.Status, target);
  }
  return null;
}

/** Instance transition plus its history row: the body of every declare* call. */
export async function moveInstance(
  ex: Executor,
  instance: InstanceRow,
  target: InstanceStatus,
  figures: HistoryFigures = {},
  now = nowSql(),
): Promise<Result<string>> {
  const failure = await applyTransition(ex, 'Instance', instance.InstanceID, instance, target, now);
  if (failure) return failure;
  await appendHistory(ex, instance.InstanceID, target, figures, now);
  return S_OK(target);
}

function imageLockKey(name: string): string {
  // MySQL lock names are limited to 64 characters; a digest of the name fits any name.
  return `vmdb.image.${createHash('sha1').update(name).digest('hex')}`;
}

/** Finds or inserts the image, serialised per name so concurrent Directors create one row. */
export async function ensureImage(ex: Executor, imageName: string): Promise<Result<{ id: number; status: string }>> {
  await ex.lock(imageLockKey(imageName));
  const rows = await ex.select(
    `SELECT \`VMImageID\`, \`Status\`, \`ErrorMessage\` FROM \`vm_Images\` WHERE \`Name\` = ?${forUpdate(ex)}`,
    [imageName],
  );
  if (rows.length > 1) return S_ERROR(`Image name "${imageName}" is not unique`);
  if (rows.length === 0) {
    const inserted = await ex.write(
      "INSERT INTO `vm_Images` (`Name`, `Status`, `LastUpdate`, `ErrorMessage`) VALUES (?, 'New', ?, '')",
      [imageName, nowSql()],
    );
    return S_OK({ id: inserted.insertId, status: 'New' });
  }
  const image = rowToStatus(rows[0]);
  const id = Number(rows[0].VMImageID);
  if (image.Status === 'Error') return S_ERROR(image.ErrorMessage || `Image ${imageName} is in Error`);
  if (!isValidState('Image', image.Status)) {
    const message = `Invalid Status: ${image.Status}`;
    await forceError(ex, 'Image', id, message, undefined, image.Status);
    return S_ERROR(message);
  }
  return S_OK({ id, status: image.Status });
}

/** Forces an image to Error whatever its state (inserting it first when unknown). */
export async function forceImageError(ex: Executor, imageName: string, message: string): Promise<Result<string>> {
  await ex.lock(imageLockKey(imageName));
  const rows = await ex.select(`SELECT \`VMImageID\`, \`Status\` FROM \`vm_Images\` WHERE \`Name\` = ?${forUpdate(ex)}`, [imageName]);
  if (rows.length > 1) return S_ERROR(`Image name "${imageName}" is not unique`);
  const id = rows.length
    ? Number(rows[0].VMImageID)
    : (await ex.write("INSERT INTO `vm_Images` (`Name`, `Status`, `LastUpdate`, `ErrorMessage`) VALUES (?, 'New', ?, '')", [imageName, nowSql()])).insertId;
  await forceError(ex, 'Image', id, message, undefined, rows.length ? String(rows[0].Status) : 'New');
  return S_OK('Error');
}

function rowToStatus(row: Row): { Status: string; ErrorMessage: string } {
  return { Status: String(row.Status), ErrorMessage: String(row.ErrorMessage ?? '') };
}

export async function insertInstance(
  ex: Executor,
  uniqueID: string,
  imageName: string,
  instanceName: string,
  endpoint: string,
  runningPod: string,
): Promise<Result<number>> {
  const image = await ensureImage(ex, imageName);
  if (!image.OK) return image;
  if (uniqueID) await refuseTakenUniqueID(ex, uniqueID, null);
  const status = uniqueID ? 'Submitted' : 'New';
  const now = nowSql();
  const inserted = await ex.write(
    'INSERT INTO `vm_Instances` (`UniqueID`, `RunningPod`, `Name`, `Endpoint`, `VMImageID`, `Status`, `LastUpdate`) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [uniqueID, runningPod, instanceName, endpoint, image.Value.id, status, now],
  );
  await insertLife(ex, inserted.insertId);
  await appendHistory(ex, inserted.insertId, status, {}, now);
  return S_OK(inserted.insertId);
}

/** UniqueIDs identify a VM at its cloud: two instances may not share one. */
async function refuseTakenUniqueID(ex: Executor, uniqueID: string, instanceID: number | null): Promise<void> {
  await ex.lock(`vmdb.uniqueid.${createHash('sha1').update(uniqueID).digest('hex')}`);
  const rows = await ex.select(`SELECT \`InstanceID\` FROM \`vm_Instances\` WHERE \`UniqueID\` = ?${forUpdate(ex)}`, [uniqueID]);
  if (rows.some((row) => Number(row.InstanceID) !== instanceID)) throw new Refusal(S_ERROR(`UniqueID is not unique: ${uniqueID}`));
}

export async function setInstanceUniqueID(ex: Executor, instanceID: number, uniqueID: string): Promise<Result<number>> {
  const instance = await lockInstance(ex, 'InstanceID', instanceID);
  await refuseTakenUniqueID(ex, uniqueID, instance.InstanceID);
  await ex.write('UPDATE `vm_Instances` SET `UniqueID` = ? WHERE `InstanceID` = ?', [uniqueID, instanceID]);
  return S_OK(instanceID);
}

export type Heartbeat = HeartbeatFigures;

export async function heartbeat(ex: Executor, uniqueID: string, beat: Heartbeat): Promise<Result<string>> {
  return heartbeatOfLocked(ex, await lockInstance(ex, 'UniqueID', uniqueID), beat, nowSql());
}

/**
 * The seed's instanceIDHeartBeat on a locked instance: image in Error puts the instance in Error;
 * otherwise Running (Refusal, before anything is written, when the table forbids it), the image
 * Validated, a history row with the figures, and the instance's Load, Jobs and Uptime.
 */
export async function heartbeatOfLocked(ex: Executor, instance: InstanceRow, beat: Heartbeat, now: string, mark?: HeartbeatMark): Promise<Result<string>> {
  const image = await imageOfHeartbeat(ex, instance.VMImageID, now);
  if (image && image.Status === 'Error') {
    const message = `Image ${image.Name} is in Error: ${image.ErrorMessage}`;
    await forceError(ex, 'Instance', instance.InstanceID, message, now, instance.Status);
    return S_ERROR(message);
  }
  // The steady state (Running -> Running) is a refresh: its LastUpdate goes with the figures below.
  const refresh = instance.Status === 'Running';
  if (!refresh) {
    const failure = await applyTransition(ex, 'Instance', instance.InstanceID, instance, 'Running', now);
    if (failure) return failure;
  }
  if (image?.locked) {
    const imageFailure = await applyTransition(ex, 'Image', image.VMImageID, image, 'Validated', now);
    if (imageFailure) return imageFailure;
  }
  await appendHistory(ex, instance.InstanceID, 'Running', beat, now, mark);
  let uptime = beat.uptime;
  if (uptime === 0) {
    // 0 means "unknown": use the span of this instance's history, as the original did.
    const [span] = await ex.select(
      'SELECT MIN(`Update`) AS first, MAX(`Update`) AS last FROM `vm_History` WHERE `InstanceID` = ?',
      [instance.InstanceID],
    );
    uptime = spanSeconds(span?.first, span?.last);
  }
  await ex.write(`UPDATE \`vm_Instances\` SET ${refresh ? '`LastUpdate` = ?, ' : ''}\`Uptime\` = ?, \`Jobs\` = ?, \`Load\` = ? WHERE \`InstanceID\` = ?`, [
    ...(refresh ? [now] : []),
    uptime,
    beat.jobs,
    beat.load,
    instance.InstanceID,
  ]);
  return S_OK('Running');
}

/**
 * The image of a heartbeat's instance. All the VMs of an image share its row, so the row is locked
 * (for its New -> Validated move or its LastUpdate refresh) only when that would change something:
 * a Validated image refreshed within this second already says what the refresh would write.
 */
async function imageOfHeartbeat(
  ex: Executor,
  imageID: number,
  now: string,
): Promise<{ VMImageID: number; Name: string; Status: string; ErrorMessage: string; locked: boolean } | undefined> {
  const read = async (lock: boolean) => {
    const [row] = await ex.select(
      `SELECT \`VMImageID\`, \`Name\`, \`Status\`, \`ErrorMessage\`, \`LastUpdate\` FROM \`vm_Images\` WHERE \`VMImageID\` = ?${lock ? forUpdate(ex) : ''}`,
      [imageID],
    );
    return row && { VMImageID: Number(row.VMImageID), Name: String(row.Name), ...rowToStatus(row), LastUpdate: row.LastUpdate, locked: lock };
  };
  const seen = await read(false);
  if (!seen || seen.Status === 'Error') return seen;
  const refreshed = seen.Status === 'Validated' && fromSqlTime(seen.LastUpdate)?.getTime() === fromSqlTime(now)?.getTime();
  return refreshed ? seen : read(true);
}

function spanSeconds(first: unknown, last: unknown): number {
  if (!first || !last) return 0;
  const toMs = (v: unknown) => (v instanceof Date ? v.getTime() : Date.parse(`${String(v).replace(' ', 'T')}Z`));
  const span = Math.round((toMs(last) - toMs(first)) / 1000);
  return Number.isFinite(span) && span > 0 ? span : 0;
}

export async function declareRunning(ex: Executor, uniqueID: string, publicIP: string, privateIP: string): Promise<Result<string>> {
  const instance = await lockInstance(ex, 'UniqueID', uniqueID);
  const now = nowSql();
  const moved = await moveInstance(ex, instance, 'Running', {}, now);
  if (!moved.OK) return moved;
  await ex.write('UPDATE `vm_Instances` SET `PublicIP` = ?, `PrivateIP` = ? WHERE `InstanceID` = ?', [
    publicIP,
    privateIP,
    instance.InstanceID,
  ]);
  return moved;
}

/** The seed's operator stop of one instance (Stalled and New: Halted at once, else Stopping). */
export async function operatorStop(ex: Executor, instanceID: number): Promise<Result<string>> {
  const instance = await lockInstance(ex, 'InstanceID', instanceID);
  return moveInstance(ex, instance, operatorStopTarget(instance.Status));
}

/**
 * The life cycle's stop: Running goes to Stopping, planned to shut down at `shutdownAt` (null: not
 * planned), a starting instance to Stalled; Stopping and Stalled stay; Halted and Error are refused.
 */
export async function lifecycleStop(ex: Executor, instanceID: number, shutdownAt: string | null): Promise<Result<string>> {
  const instance = await lockInstance(ex, 'InstanceID', instanceID);
  if (isStopUnderWay(instance.Status)) return S_OK(instance.Status);
  const target = lifecycleStopTarget(instance.Status);
  const moved = await moveInstance(ex, instance, target);
  if (moved.OK && target === 'Stopping') await planShutdown(ex, instanceID, shutdownAt);
  return moved;
}

/** An instance forced to Error with a message, whatever its state. */
export async function declareError(ex: Executor, instanceID: number, message: string): Promise<Result<'Error'>> {
  const instance = await lockInstance(ex, 'InstanceID', instanceID);
  await forceError(ex, 'Instance', instanceID, message, undefined, instance.Status);
  return S_OK('Error');
}

/** Every instance silent for longer than the interval in a state that may stall, now Stalled. */
export async function declareStalled(ex: Executor, stallingInterval: number): Promise<Result<number[]>> {
  const placeholders = STALLABLE_STATES.map(() => '?').join(', ');
  const rows = await ex.select(
    `SELECT \`InstanceID\`, \`VMImageID\`, \`Status\`, \`ErrorMessage\` FROM \`vm_Instances\` WHERE \`Status\` IN (${placeholders}) AND \`LastUpdate\` < ? ORDER BY \`InstanceID\`${forUpdate(ex)}`,
    [...STALLABLE_STATES, secondsAgoSql(stallingInterval)],
  );
  const stalled: number[] = [];
  const now = nowSql();
  for (const row of rows) {
    const instance = { InstanceID: Number(row.InstanceID), VMImageID: Number(row.VMImageID), ...rowToStatus(row) };
    if ((await moveInstance(ex, instance, 'Stalled', {}, now)).OK) stalled.push(instance.InstanceID);
  }
  return S_OK(stalled);
}

/**
 * One instance to Stalled, only if it really is silent: its LastUpdate is
 * older than the interval or, when `lastSeen` is given, no newer than the
 * LastUpdate the caller last saw (a racing heartbeat wins either way).
 */
export async function declareOneStalled(
  ex: Executor,
  instanceID: number,
  stallingInterval: number,
  lastSeen?: string,
): Promise<Result<string>> {
  const instance = await lockInstance(ex, 'InstanceID', instanceID);
  const [fresh] = await ex.select('SELECT `LastUpdate` FROM `vm_Instances` WHERE `InstanceID` = ? AND `LastUpdate` > ?', [
    instanceID,
    lastSeen ?? secondsAgoSql(stallingInterval),
  ]);
  if (fresh) {
    const since = lastSeen ? `since ${lastSeen}` : `less than ${stallingInterval}s ago`;
    return S_ERROR(`Instance ${instanceID} is not stalled: it was updated ${since}`, instance.Status);
  }
  return moveInstance(ex, instance, 'Stalled');
}

/**
 * Fills the free slots of an endpoint with New instances, up to `maxInstances`
 * occupying ones. Serialised per endpoint, so two Directors cannot fill one slot twice.
 */
export async function reserveSlots(
  ex: Executor,
  endpoint: string,
  imageName: string,
  runningPod: string,
  maxInstances: number,
  namePrefix: string,
): Promise<Result<number[]>> {
  await ex.lock(`vmdb.endpoint.${createHash('sha1').update(endpoint).digest('hex')}`);
  const [row] = await ex.select(
    `SELECT COUNT(*) AS n FROM \`vm_Instances\` WHERE \`Endpoint\` = ? AND \`Status\` IN (${OCCUPYING_STATES.map(() => '?').join(', ')})`,
    [endpoint, ...OCCUPYING_STATES],
  );
  const reserved: number[] = [];
  for (let slot = Number(row.n); slot < maxInstances; slot++) {
    const name = `${namePrefix}-${randomBytes(6).toString('hex')}`;
    const inserted = await insertInstance(ex, '', imageName, name, endpoint, runningPod);
    if (!inserted.OK) {
      if (reserved.length === 0) return inserted;
      break;
    }
    reserved.push(inserted.Value);
  }
  return S_OK(reserved);
}
