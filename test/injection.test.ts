import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { VirtualMachineDB, type Result } from '../src';
import { onEveryBackend, ok, snapshot } from './support/backends';
import { HOSTILE_STRINGS, WRONG_TYPES } from './support/corpus';

/**
 * Bad input never throws and never changes anything.
 *
 * Every entry of CORPUS (hostile strings and wrong-typed values) is passed, in
 * turn, as one string or numeric argument of every public method, with the
 * other arguments valid and pointing at the fixture (so that, were the bad
 * value accepted, the call would really do something). For each call:
 *
 * - the promise resolves (no rejection, no throw);
 * - snapshot() of all tables is unchanged;
 * - a failure message is a validation message, never "Database error: ..."
 *   (bad input must be caught before it reaches the driver);
 * - write methods: OK is false and Message names the argument or field;
 * - read methods: a per-slot expectation (refused, nothing found, ignored, ...).
 *
 * Not covered: `_query`/`_update` (raw SQL for maintenance, by definition
 * executed as given, with values bound) and `transaction` (takes a function).
 *
 * Values a slot legitimately accepts (a Date for a time bound, `undefined` for
 * a defaulted parameter, an in-range integer, ...) are "legit" for that slot:
 * write slots skip them (accepting them rightly changes data), read slots only
 * get the no-throw / no-change checks.
 */

// ---- corpus (test/support/corpus.ts) -----------------------------------------

const CORPUS: [string, unknown][] = [...HOSTILE_STRINGS, ...WRONG_TYPES];

// ---- what each kind of argument legitimately accepts ------------------------------

type Legit = (v: unknown) => boolean;

const UINT32_MAX = 4294967295;
const FLOAT_MAX = 3.4028234663852886e38; // largest value a MySQL FLOAT column holds
const TOKEN_CHARS = /^[A-Za-z0-9_.:@/+=,~#-]+$/; // identifier-like text (names, unique ids, endpoints)
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SQL_TIME = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?$/;

const NOTHING: Legit = () => false;
const ABSENT: Legit = (v) => v === undefined || v === null;
const UNDEFINED: Legit = (v) => v === undefined;
const or = (...ps: Legit[]): Legit => (v) => ps.some((p) => p(v));
const listOf = (p: Legit): Legit => (v) => Array.isArray(v) && v.every(p);
const equals = (...values: unknown[]): Legit => (v) => values.includes(v);

const TOKEN: Legit = (v) => typeof v === 'string' && v.length <= 255 && TOKEN_CHARS.test(v);
const OPTIONAL_TOKEN: Legit = (v) => v === '' || TOKEN(v);
const ID: Legit = (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'string' && /^\d{1,16}$/.test(v));
const count = (max = Number.MAX_SAFE_INTEGER, min = 0): Legit => (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const FIGURE: Legit = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= FLOAT_MAX;
const FREE_TEXT: Legit = (v) => typeof v === 'string' && v.length <= 255 && !CONTROL.test(v) && !LONE_SURROGATE.test(v);
const IP: Legit = (v) => v === '' || (typeof v === 'string' && v.replace(/^::ffff:/, '').length <= 32 && isIP(v.replace(/^::ffff:/, '')) !== 0);
const DATETIME: Legit = (v) => (v instanceof Date && !Number.isNaN(v.getTime())) || (typeof v === 'string' && SQL_TIME.test(v));
const INSTANCE_STATUS: Legit = (v) => VirtualMachineDB.validInstanceStates.includes(v as string);
const TABLE: Legit = (v) => typeof v === 'string' && Object.hasOwn(VirtualMachineDB.tablesDesc, v);
const columnOf = (table: keyof typeof VirtualMachineDB.tablesDesc): Legit => (v) =>
  typeof v === 'string' && Object.hasOwn(VirtualMachineDB.tablesDesc[table].Fields, v);
const ANY_COLUMN: Legit = or(columnOf('vm_Images'), columnOf('vm_Instances'), columnOf('vm_History'));
/** A condDict value: one value, null/undefined (IS NULL), or a list of them (an empty list matches nothing). */
const condValue = (p: Legit): Legit => or(p, ABSENT, listOf(or(p, ABSENT)));
/** Absent, or a plain object literal whose keys are all columns (a Date or a Buffer is not a condition). */
const plainCondition = (columns: Legit): Legit => (v) =>
  ABSENT(v) ||
  (typeof v === 'object' && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v)) &&
    Object.keys(v as object).every(columns));
const HISTORY_FIELD: Legit = equals('Load', 'Jobs', 'TransferredFiles', 'TransferredBytes');
/** A bound on a nullable column: NULL is a legit value (`< NULL` matches nothing, as in the original). */
const NULLABLE_BOUND = (p: Legit): Legit => or(p, ABSENT);
/** limit/offset: absent, false or 0 mean "none"; otherwise a non-negative integer. */
const LIMIT: Legit = or(ABSENT, equals(false), count());

// ---- fixture ---------------------------------------------------------------------------

interface World {
  running: { id: number; uid: string }; // Running, with heartbeats
  submitted: { id: number; uid: string }; // Submitted
  fresh: { id: number }; // New, no UniqueID yet
}

async function buildWorld(db: VirtualMachineDB): Promise<World> {
  const running = ok(await db.insertInstance('uid-run', 'img-ok', 'vm-run', 'ep-1', 'pod-1'));
  ok(await db.declareInstanceRunning('uid-run', '10.0.0.1', '192.168.0.1'));
  ok(await db.instanceIDHeartBeat('uid-run', 0.5, 1, 2, 3, 60));
  const submitted = ok(await db.insertInstance('uid-sub', 'img-ok', 'vm-sub', 'ep-1', 'pod-1'));
  const fresh = ok(await db.insertInstance('', 'img-ok', 'vm-new', 'ep-2', 'pod-2'));
  ok(await db.checkImageStatus('img-other'));
  return { running: { id: running, uid: 'uid-run' }, submitted: { id: submitted, uid: 'uid-sub' }, fresh: { id: fresh } };
}

// ---- slots: one argument of one method --------------------------------------------------

type AnyResult = Result<unknown>;
type Call = (db: VirtualMachineDB, w: World, v: never) => Promise<AnyResult>;
/** Returns a problem description, or undefined when the result is as expected. */
type Check = (r: AnyResult, legit: boolean, baseline: AnyResult | undefined) => string | undefined;

interface Slot {
  title: string;
  write: boolean;
  legit: Legit;
  call: Call;
  /** writes: what a refusal must mention */
  names?: RegExp;
  /** reads: expectation beyond no-throw / no-change */
  check?: Check;
  /** reads with `ignored`: the same call without the bad part */
  baseline?: (db: VirtualMachineDB, w: World) => Promise<AnyResult>;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function write(title: string, arg: string, legit: Legit, call: Call, names = new RegExp(escape(arg), 'i')): Slot {
  return { title: `${title}: ${arg}`, write: true, legit, call, names };
}

function read(title: string, arg: string, legit: Legit, call: Call, check: Check = refused, baseline?: Slot['baseline']): Slot {
  return { title: `${title}: ${arg}`, write: false, legit, call, check, baseline };
}

// Read expectations.
const refused: Check = (r, legit) => (!legit && r.OK ? 'accepted a bad value' : undefined);
/** Lookups: the corpus holds no fixture key, so nothing may ever be found (no wildcard, no coercion). */
const neverFound: Check = (r) => (r.OK ? `found something: ${JSON.stringify(r.Value)}` : undefined);
/** Filters: a bad value is refused or matches nothing. */
const matchesNothing = (isEmpty: (value: any) => boolean): Check => (r, legit) =>
  !legit && r.OK && !isEmpty(r.Value) ? `matched rows: ${JSON.stringify(r.Value)}` : undefined;
/** Unknown fields or directions are ignored: the result is the one without them. */
const ignored: Check = (r, _legit, baseline) => {
  if (!r.OK) return `refused (${r.Message}) instead of ignoring`;
  return isDeepStrictEqual(r, baseline) ? undefined : 'result differs from the call without the bad value';
};

const SQL_WORDS = new Set(['WHERE', 'AND', 'OR', 'IS', 'NULL', 'LIKE', 'ORDER', 'BY', 'ASC', 'DESC', 'LIMIT', 'OFFSET', '=', '<', '>=', '?', '1', '0']);
/** buildCondition: refused unless legit, and an accepted condition is built from known columns, keywords and `?` only. */
const cleanCondition: Check = (r, legit) => {
  if (!r.OK) return undefined;
  if (!legit) return 'accepted a bad value';
  const { sql, params } = r.Value as { sql: string; params: unknown[] };
  for (const identifier of sql.match(/`[^`]*`/g) ?? []) {
    if (!ANY_COLUMN(identifier.slice(1, -1))) return `unknown identifier ${identifier} in ${sql}`;
  }
  const words = sql.replace(/`[^`]*`/g, ' ').split(/[\s,()]+/).filter(Boolean);
  const stray = words.filter((word) => !SQL_WORDS.has(word.toUpperCase()));
  if (stray.length) return `unexpected text ${JSON.stringify(stray)} in ${sql}`;
  if (/ORDER BY\s*(LIMIT|$)/.test(sql)) return `empty ORDER BY in ${sql}`;
  if (params.length !== (sql.match(/\?/g) ?? []).length) return `${params.length} params for ${sql}`;
  return undefined;
};

const none = (value: unknown[]) => value.length === 0;
const noContent = (value: { TotalRecords: number; Records: unknown[] }) => value.TotalRecords === 0 && value.Records.length === 0;

/** An object key from any corpus value (keys are strings; a throwing toString or a symbol gets a stand-in). */
function keyOf(v: unknown): string {
  try {
    return String(v);
  } catch {
    return '[unprintable]';
  }
}

const A_WHILE_AGO = '2000-01-01 00:00:00';
const FAR_FUTURE = '2999-01-01 00:00:00';

const SLOTS: Slot[] = [
  // ---- images ----
  // checkImageStatus inserts unknown images: a write.
  write('checkImageStatus', 'imageName', TOKEN, (db, _w, v) => db.checkImageStatus(v)),
  write('declareImageError', 'imageName', TOKEN, (db, _w, v) => db.declareImageError(v, 'bad requirements')),
  // ErrorMessage is free text: quotes and SQL words are legit (stored verbatim, see below); control characters, overlong text and non-strings are not.
  write('declareImageError', 'errorMessage', FREE_TEXT, (db, _w, v) => db.declareImageError('img-ok', v)),

  // ---- instance life cycle (all writes) ----
  // uniqueID and runningPodName may be empty: an empty uniqueID makes a New instance.
  write('insertInstance', 'uniqueID', OPTIONAL_TOKEN, (db, _w, v) => db.insertInstance(v, 'img-ok', 'vm-x', 'ep-1', 'pod-1')),
  write('insertInstance', 'imageName', TOKEN, (db, _w, v) => db.insertInstance('uid-x', v, 'vm-x', 'ep-1', 'pod-1')),
  write('insertInstance', 'instanceName', TOKEN, (db, _w, v) => db.insertInstance('uid-x', 'img-ok', v, 'ep-1', 'pod-1')),
  write('insertInstance', 'endpoint', TOKEN, (db, _w, v) => db.insertInstance('uid-x', 'img-ok', 'vm-x', v, 'pod-1')),
  write('insertInstance', 'runningPodName', OPTIONAL_TOKEN, (db, _w, v) => db.insertInstance('uid-x', 'img-ok', 'vm-x', 'ep-1', v)),
  write('setInstanceUniqueID', 'instanceID', ID, (db, _w, v) => db.setInstanceUniqueID(v, 'uid-x')),
  write('setInstanceUniqueID', 'uniqueID', TOKEN, (db, w, v) => db.setInstanceUniqueID(w.fresh.id, v)),
  write('declareInstanceSubmitted', 'uniqueID', TOKEN, (db, _w, v) => db.declareInstanceSubmitted(v)),
  write('declareInstanceRunning', 'uniqueID', TOKEN, (db, _w, v) => db.declareInstanceRunning(v, '10.0.0.2', '192.168.0.2')),
  // An empty publicIP is accepted (the VM may not know it); privateIP defaults to ''.
  write('declareInstanceRunning', 'publicIP', IP, (db, w, v) => db.declareInstanceRunning(w.submitted.uid, v, '192.168.0.2')),
  write('declareInstanceRunning', 'privateIP', or(IP, UNDEFINED), (db, w, v) => db.declareInstanceRunning(w.submitted.uid, '10.0.0.2', v)),
  write('instanceIDHeartBeat', 'uniqueID', TOKEN, (db, _w, v) => db.instanceIDHeartBeat(v, 0.5, 1, 2, 3, 60)),
  write('instanceIDHeartBeat', 'load', FIGURE, (db, w, v) => db.instanceIDHeartBeat(w.running.uid, v, 1, 2, 3, 60)),
  write('instanceIDHeartBeat', 'jobs', count(UINT32_MAX), (db, w, v) => db.instanceIDHeartBeat(w.running.uid, 0.5, v, 2, 3, 60)),
  write('instanceIDHeartBeat', 'transferredFiles', count(UINT32_MAX), (db, w, v) => db.instanceIDHeartBeat(w.running.uid, 0.5, 1, v, 3, 60)),
  write('instanceIDHeartBeat', 'transferredBytes', count(), (db, w, v) => db.instanceIDHeartBeat(w.running.uid, 0.5, 1, 2, v, 60)),
  write('instanceIDHeartBeat', 'uptime', count(UINT32_MAX), (db, w, v) => db.instanceIDHeartBeat(w.running.uid, 0.5, 1, 2, 3, v)),
  write('declareInstanceStopping', 'instanceID', ID, (db, _w, v) => db.declareInstanceStopping(v)),
  write('declareInstanceHalting', 'uniqueID', TOKEN, (db, _w, v) => db.declareInstanceHalting(v, 0.5)),
  write('declareInstanceHalting', 'load', FIGURE, (db, w, v) => db.declareInstanceHalting(w.running.uid, v)),
  write('recordDBHalt', 'instanceID', ID, (db, _w, v) => db.recordDBHalt(v, 0.5)),
  write('recordDBHalt', 'load', FIGURE, (db, w, v) => db.recordDBHalt(w.running.id, v)),
  write('declareInstanceError', 'instanceID', ID, (db, _w, v) => db.declareInstanceError(v, 'reports Running while Halted')),
  write('declareInstanceError', 'errorMessage', FREE_TEXT, (db, w, v) => db.declareInstanceError(w.running.id, v)),
  write('declareInstanceWaitSshContext', 'instanceID', ID, (db, _w, v) => db.declareInstanceWaitSshContext(v)),
  write('declareInstanceContextualizing', 'instanceID', ID, (db, _w, v) => db.declareInstanceContextualizing(v)),
  write('declareInstanceStalled', 'instanceID', ID, (db, _w, v) => db.declareInstanceStalled(v)),
  // With a lastSeenUpdate at or after the instance's LastUpdate, the running instance would be declared Stalled.
  write('declareInstanceStalled', 'lastSeenUpdate', or(UNDEFINED, DATETIME), (db, w, v) => db.declareInstanceStalled(w.running.id, v)),
  write('reserveInstances', 'endpoint', TOKEN, (db, _w, v) => db.reserveInstances(v, 'img-ok', 'pod-r', 2, 'vmr')),
  write('reserveInstances', 'imageName', TOKEN, (db, _w, v) => db.reserveInstances('ep-r', v, 'pod-r', 2, 'vmr')),
  write('reserveInstances', 'runningPod', OPTIONAL_TOKEN, (db, _w, v) => db.reserveInstances('ep-r', 'img-ok', v, 2, 'vmr')),
  write('reserveInstances', 'maxInstances', count(10000), (db, _w, v) => db.reserveInstances('ep-r', 'img-ok', 'pod-r', v, 'vmr')),
  // The prefix leaves room for the "-<12 hex>" suffix within Name's 255 characters; undefined means the default.
  write('reserveInstances', 'namePrefix', or(UNDEFINED, (v) => TOKEN(v) && (v as string).length <= 242), (db, _w, v) =>
    db.reserveInstances('ep-r', 'img-ok', 'pod-r', 2, v),
  ),
  write('declareInstancesStopping', 'instanceIDs', listOf(ID), (db, _w, v) => db.declareInstancesStopping(v)),
  // One bad id among good ones: the whole call is refused before any instance is touched.
  write('declareInstancesStopping', 'instanceIDs[]', ID, (db, w, v) => db.declareInstancesStopping([w.running.id, v]), /instanceIDs/i),

  // ---- instance reads ----
  // Lookups by text key: the corpus contains no fixture key, so every call must come back empty-handed.
  read('getInstanceID', 'uniqueID', TOKEN, (db, _w, v) => db.getInstanceID(v), neverFound),
  read('getUniqueIDByName', 'instanceName', TOKEN, (db, _w, v) => db.getUniqueIDByName(v), neverFound),
  read('getEndpointFromInstance', 'uniqueId', TOKEN, (db, _w, v) => db.getEndpointFromInstance(v), neverFound),
  read('getAllInfoForUniqueID', 'uniqueID', TOKEN, (db, _w, v) => db.getAllInfoForUniqueID(v), neverFound),
  read('getInstancesByStatus', 'status', INSTANCE_STATUS, (db, _w, v) => db.getInstancesByStatus(v), neverFound),
  // Lookups by row id: a small integer is a legit id (it may or may not exist).
  read('getUniqueID', 'instanceID', ID, (db, _w, v) => db.getUniqueID(v)),
  read('getInstanceParameter', 'pName', columnOf('vm_Instances'), (db, w, v) => db.getInstanceParameter(v, w.running.id)),
  read('getInstanceParameter', 'instanceID', ID, (db, _w, v) => db.getInstanceParameter('Status', v)),
  read('getInstanceStatus', 'instanceID', ID, (db, _w, v) => db.getInstanceStatus(v)),
  read('getHistoryForInstanceID', 'instanceId', ID, (db, _w, v) => db.getHistoryForInstanceID(v)),
  // getInstancesContent: unknown selDict fields and sort items are ignored (spec); known fields filter with checked values.
  read('getInstancesContent', 'selDict', plainCondition(() => true), (db, _w, v) => db.getInstancesContent(v)),
  read('getInstancesContent', 'selDict key', NOTHING, (db, _w, v) => db.getInstancesContent({ [keyOf(v)]: 'vm-run' }), ignored, (db) =>
    db.getInstancesContent({}),
  ),
  read('getInstancesContent', 'selDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.getInstancesContent({ Name: v }), matchesNothing(noContent)),
  read('getInstancesContent', 'selDict value in a list', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.getInstancesContent({ Name: ['vm-nope', v] }), matchesNothing(noContent)),
  read('getInstancesContent', 'sortList', NOTHING, (db, _w, v) => db.getInstancesContent({}, v), ignored, (db) => db.getInstancesContent({})),
  read('getInstancesContent', 'sortList field', NOTHING, (db, _w, v) => db.getInstancesContent({}, [[v, 'ASC']]), ignored, (db) =>
    db.getInstancesContent({}),
  ),
  read('getInstancesContent', 'sortList direction', NOTHING, (db, _w, v) => db.getInstancesContent({}, [['Name', v]]), ignored, (db) =>
    db.getInstancesContent({}),
  ),
  read('getInstancesContent', 'start', LIMIT, (db, _w, v) => db.getInstancesContent({}, [], v, 10)),
  read('getInstancesContent', 'limit', LIMIT, (db, _w, v) => db.getInstancesContent({}, [], 0, v)),
  read('getInstanceCounters', 'groupField', or(columnOf('vm_Instances'), UNDEFINED), (db, _w, v) => db.getInstanceCounters(v)),
  // getInstanceCounters: selDict keys must be vm_Instances columns (spec), so unknown keys are refused, not ignored.
  read('getInstanceCounters', 'selDict key', NOTHING, (db, _w, v) => db.getInstanceCounters('Status', { [keyOf(v)]: 'Running' })),
  read('getInstanceCounters', 'selDict value', condValue(INSTANCE_STATUS), (db, _w, v) => db.getInstanceCounters('Status', { Status: v }), matchesNothing((value) => Object.keys(value).length === 0)),

  // ---- history ----
  read('getHistoryValues', 'averageBucket', count(Number.MAX_SAFE_INTEGER, 1), (db, _w, v) => db.getHistoryValues(v)),
  read('getHistoryValues', 'selDict key', NOTHING, (db, _w, v) => db.getHistoryValues(60, { [keyOf(v)]: 'Running' })),
  read('getHistoryValues', 'selDict value', condValue(INSTANCE_STATUS), (db, _w, v) => db.getHistoryValues(60, { Status: v }), matchesNothing((value) => none(value.Records))),
  // fields2Get: anything falsy means "all fields" (as in the original, where an empty list is falsy too).
  read('getHistoryValues', 'fields2Get', or((v) => !v, equals(...['Load', 'Jobs', 'TransferredFiles', 'TransferredBytes']), listOf(HISTORY_FIELD)), (db, _w, v) =>
    db.getHistoryValues(60, {}, v),
  ),
  read('getHistoryValues', 'fields2Get[]', HISTORY_FIELD, (db, _w, v) => db.getHistoryValues(60, {}, ['Load', v as string])),
  read('getHistoryValues', 'timespan', or(count(), UNDEFINED), (db, _w, v) => db.getHistoryValues(60, {}, false, v)),
  ...(['getRunningInstancesHistory', 'getRunningInstancesBEPHistory', 'getRunningInstancesByRunningPodHistory', 'getRunningInstancesByImageHistory'] as const).flatMap(
    (method) => [
      read(method, 'timespan', or(count(), UNDEFINED), (db, _w, v) => db[method](v, 900)),
      read(method, 'bucketSize', or(count(), UNDEFINED), (db, _w, v) => db[method](0, v)),
    ],
  ),

  // ---- generic helpers: buildCondition (pure) ----
  read('buildCondition', 'condDict', plainCondition(ANY_COLUMN), (db, _w, v) => db.buildCondition(v), cleanCondition),
  read('buildCondition', 'condDict key', NOTHING, (db, _w, v) => db.buildCondition({ [keyOf(v)]: 'x' }), cleanCondition),
  read('buildCondition', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.buildCondition({ UniqueID: v }), cleanCondition),
  read('buildCondition', 'older', or(ABSENT, DATETIME), (db, _w, v) => db.buildCondition({}, v), cleanCondition),
  read('buildCondition', 'newer', or(ABSENT, DATETIME), (db, _w, v) => db.buildCondition({}, null, v), cleanCondition),
  read('buildCondition', 'timeStamp', or(ABSENT, equals('LastUpdate', 'Update')), (db, _w, v) => db.buildCondition({}, A_WHILE_AGO, null, v), cleanCondition),
  read('buildCondition', 'orderAttribute', or(ABSENT, equals(''), ANY_COLUMN, listOf(ANY_COLUMN)), (db, _w, v) => db.buildCondition({}, null, null, null, v), cleanCondition),
  read('buildCondition', 'orderAttribute direction', NOTHING, (db, _w, v) => db.buildCondition({}, null, null, null, `Name:${keyOf(v)}`), cleanCondition),
  read('buildCondition', 'limit', LIMIT, (db, _w, v) => db.buildCondition({}, null, null, null, null, v), cleanCondition),
  read('buildCondition', 'offset', LIMIT, (db, _w, v) => db.buildCondition({}, null, null, null, null, 5, null, null, v), cleanCondition),
  read('buildCondition', 'greater key', NOTHING, (db, _w, v) => db.buildCondition({}, null, null, null, null, false, { [keyOf(v)]: 1 }), cleanCondition),
  read('buildCondition', 'greater value', count(UINT32_MAX), (db, _w, v) => db.buildCondition({}, null, null, null, null, false, { Jobs: v }), cleanCondition),
  read('buildCondition', 'smaller value', NULLABLE_BOUND(DATETIME), (db, _w, v) => db.buildCondition({}, null, null, null, null, false, null, { LastUpdate: v }), cleanCondition),
  read('buildCondition', 'table', or(TABLE, UNDEFINED), (db, _w, v) => db.buildCondition({ Status: 'Running' }, null, null, null, null, false, null, null, null, false, v), cleanCondition),

  // ---- generic helpers: reads ----
  read('getFields', 'tableName', TABLE, (db, _w, v) => db.getFields(v)),
  read('getFields', 'outFields[]', columnOf('vm_Instances'), (db, _w, v) => db.getFields('vm_Instances', ['InstanceID', v as string])),
  read('getFields', 'condDict', plainCondition(columnOf('vm_Instances')), (db, _w, v) => db.getFields('vm_Instances', null, v)),
  read('getFields', 'condDict key', NOTHING, (db, _w, v) => db.getFields('vm_Instances', null, { [keyOf(v)]: 'uid-run' })),
  read('getFields', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.getFields('vm_Instances', null, { UniqueID: v }), matchesNothing(none)),
  read('getFields', 'condDict value (LIKE)', condValue((v) => typeof v === 'string' && /^[A-Za-z0-9_.:@/+=,~#%-]*$/.test(v) && v.length <= 255), (db, _w, v) =>
    db.getFields('vm_Instances', null, { UniqueID: v }, false, null, null, null, null, null, null, null, true), matchesNothing(none),
  ),
  read('getFields', 'limit', LIMIT, (db, _w, v) => db.getFields('vm_Instances', null, null, v)),
  read('getFields', 'older', or(ABSENT, DATETIME), (db, _w, v) => db.getFields('vm_Instances', null, null, false, null, v)),
  read('getFields', 'timeStamp', or(ABSENT, equals('LastUpdate')), (db, _w, v) => db.getFields('vm_Instances', null, null, false, null, A_WHILE_AGO, null, v)),
  read('getFields', 'orderAttribute', or(ABSENT, equals(''), columnOf('vm_Instances'), listOf(columnOf('vm_Instances'))), (db, _w, v) =>
    db.getFields('vm_Instances', null, null, false, null, null, null, null, v),
  ),
  read('getFields', 'greater value', count(UINT32_MAX), (db, _w, v) => db.getFields('vm_Instances', null, null, false, null, null, null, null, null, { Jobs: v })),
  read('getFields', 'smaller key', NOTHING, (db, _w, v) => db.getFields('vm_Instances', null, null, false, null, null, null, null, null, null, { [keyOf(v)]: 1 })),
  read('countEntries', 'table', TABLE, (db, _w, v) => db.countEntries(v, {})),
  read('countEntries', 'condDict key', NOTHING, (db, _w, v) => db.countEntries('vm_Instances', { [keyOf(v)]: 'uid-run' })),
  read('countEntries', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.countEntries('vm_Instances', { UniqueID: v }), matchesNothing((n) => n === 0)),
  read('countEntries', 'newer', or(ABSENT, DATETIME), (db, _w, v) => db.countEntries('vm_Instances', {}, null, v)),
  read('countEntries', 'greater key', NOTHING, (db, _w, v) => db.countEntries('vm_Instances', {}, null, null, null, null, { [keyOf(v)]: 1 })),
  read('getCounters', 'table', TABLE, (db, _w, v) => db.getCounters(v, ['Status'], {})),
  read('getCounters', 'attrList', listOf(columnOf('vm_Instances')), (db, _w, v) => db.getCounters('vm_Instances', v, {})),
  read('getCounters', 'attrList[]', columnOf('vm_Instances'), (db, _w, v) => db.getCounters('vm_Instances', ['Status', v as string], {})),
  read('getCounters', 'condDict value', condValue(INSTANCE_STATUS), (db, _w, v) => db.getCounters('vm_Instances', ['Status'], { Status: v }), matchesNothing(none)),
  read('getDistinctAttributeValues', 'table', TABLE, (db, _w, v) => db.getDistinctAttributeValues(v, 'Status')),
  read('getDistinctAttributeValues', 'attribute', columnOf('vm_Instances'), (db, _w, v) => db.getDistinctAttributeValues('vm_Instances', v)),
  read('getDistinctAttributeValues', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.getDistinctAttributeValues('vm_Instances', 'Status', { Endpoint: v }), matchesNothing(none)),
  read('getDistinctAttributeValues', 'smaller value', NULLABLE_BOUND(DATETIME), (db, _w, v) =>
    db.getDistinctAttributeValues('vm_Instances', 'Status', {}, null, null, null, null, null, { LastUpdate: v }),
  ),

  // ---- generic helpers: writes (each would change a fixture row if the bad value were accepted) ----
  write('insertFields', 'tableName', TABLE, (db, _w, v) => db.insertFields(v, ['Name', 'Status'], ['img-new', 'New']), /table/i),
  write('insertFields', 'inFields', NOTHING, (db, _w, v) => db.insertFields('vm_Images', v, ['img-new', 'New'])),
  write('insertFields', 'inFields[]', columnOf('vm_Images'), (db, _w, v) => db.insertFields('vm_Images', ['Name', 'Status', v as string], ['img-new', 'New', 'x']), /field/i),
  write('insertFields', 'inValues', NOTHING, (db, _w, v) => db.insertFields('vm_Images', ['Name', 'Status'], v)),
  write('insertFields', 'inValues (Name)', OPTIONAL_TOKEN, (db, _w, v) => db.insertFields('vm_Images', ['Name', 'Status'], [v, 'New']), /Name/),
  write('insertFields', 'inValues (Status)', equals('New', 'Validated', 'Error'), (db, _w, v) => db.insertFields('vm_Images', ['Name', 'Status'], ['img-new', v]), /Status/),
  write('insertFields', 'inDict key', NOTHING, (db, w, v) =>
    db.insertFields('vm_History', null, null, null, { InstanceID: w.running.id, Status: 'Running', Load: 0.5, [keyOf(v)]: 1 }), /field/i,
  ),
  // vm_History.InstanceID is INTEGER UNSIGNED with no foreign key: any in-range integer (or digit string) is accepted.
  write('insertFields', 'inDict value (InstanceID)', or(count(UINT32_MAX), ID), (db, _w, v) =>
    db.insertFields('vm_History', null, null, null, { InstanceID: v, Status: 'Running', Load: 0.5 }), /InstanceID/,
  ),
  write('insertFields', 'inDict value (Status)', INSTANCE_STATUS, (db, w, v) =>
    db.insertFields('vm_History', null, null, null, { InstanceID: w.running.id, Status: v, Load: 0.5 }), /Status/,
  ),
  write('insertFields', 'inDict value (Load)', FIGURE, (db, w, v) =>
    db.insertFields('vm_History', null, null, null, { InstanceID: w.running.id, Status: 'Running', Load: v }), /Load/,
  ),
  write('insertFields', 'inDict value (Update)', or(ABSENT, DATETIME), (db, w, v) =>
    db.insertFields('vm_History', null, null, null, { InstanceID: w.running.id, Status: 'Running', Load: 0.5, Update: v }), /Update/,
  ),
  write('updateFields', 'tableName', TABLE, (db, _w, v) => db.updateFields(v, ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }), /table/i),
  write('updateFields', 'updateFields[]', columnOf('vm_Instances'), (db, _w, v) => db.updateFields('vm_Instances', [v as string], ['ep-9'], { UniqueID: 'uid-run' }), /field/i),
  write('updateFields', 'updateValues (Endpoint)', OPTIONAL_TOKEN, (db, _w, v) => db.updateFields('vm_Instances', ['Endpoint'], [v], { UniqueID: 'uid-run' }), /Endpoint/),
  write('updateFields', 'updateValues (PublicIP)', IP, (db, _w, v) => db.updateFields('vm_Instances', ['PublicIP'], [v], { UniqueID: 'uid-run' }), /PublicIP/),
  write('updateFields', 'updateDict key', NOTHING, (db, _w, v) =>
    db.updateFields('vm_Instances', null, null, { UniqueID: 'uid-run' }, false, null, { Endpoint: 'ep-9', [keyOf(v)]: 1 }), /field/i,
  ),
  write('updateFields', 'updateDict value (Jobs)', count(UINT32_MAX), (db, _w, v) =>
    db.updateFields('vm_Instances', null, null, { UniqueID: 'uid-run' }, false, null, { Jobs: v }), /Jobs/,
  ),
  // A condDict that is not a plain object of columns (a Date, a Buffer, a string) must not silently become "every row".
  write('updateFields', 'condDict', plainCondition(columnOf('vm_Instances')), (db, _w, v) => db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], v), /condDict|field/i),
  write('updateFields', 'condDict key', NOTHING, (db, _w, v) => db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { [keyOf(v)]: 'uid-run' }), /field/i),
  write('updateFields', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: v }), /UniqueID/),
  write('updateFields', 'limit', LIMIT, (db, _w, v) => db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, v), /limit/),
  write('updateFields', 'older', or(ABSENT, DATETIME), (db, _w, v) =>
    db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, false, null, null, v), /older|LastUpdate/,
  ),
  write('updateFields', 'timeStamp', or(ABSENT, equals('LastUpdate')), (db, _w, v) =>
    db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, false, null, null, FAR_FUTURE, null, v), /timeStamp|field/i,
  ),
  write('updateFields', 'orderAttribute', or(ABSENT, equals(''), columnOf('vm_Instances'), listOf(columnOf('vm_Instances'))), (db, _w, v) =>
    db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, 1, null, null, null, null, null, v), /orderAttribute|field/i,
  ),
  write('updateFields', 'greater key', NOTHING, (db, _w, v) =>
    db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, false, null, null, null, null, null, null, { [keyOf(v)]: 0 }), /field/i,
  ),
  write('updateFields', 'smaller value', NULLABLE_BOUND(DATETIME), (db, _w, v) =>
    db.updateFields('vm_Instances', ['Endpoint'], ['ep-9'], { UniqueID: 'uid-run' }, false, null, null, null, null, null, null, null, { LastUpdate: v }), /LastUpdate/,
  ),
  write('deleteEntries', 'tableName', TABLE, (db, _w, v) => db.deleteEntries(v, { UniqueID: 'uid-run' }), /table/i),
  write('deleteEntries', 'condDict', plainCondition(columnOf('vm_Instances')), (db, _w, v) => db.deleteEntries('vm_Instances', v), /condDict|field/i),
  write('deleteEntries', 'condDict key', NOTHING, (db, _w, v) => db.deleteEntries('vm_Instances', { [keyOf(v)]: 'uid-run' }), /field/i),
  write('deleteEntries', 'condDict value', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.deleteEntries('vm_Instances', { UniqueID: v }), /UniqueID/),
  write('deleteEntries', 'condDict value in a list', condValue(OPTIONAL_TOKEN), (db, _w, v) => db.deleteEntries('vm_Instances', { UniqueID: ['uid-run', v] }), /UniqueID/),
  write('deleteEntries', 'limit', LIMIT, (db, _w, v) => db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, v), /limit/),
  write('deleteEntries', 'older', or(ABSENT, DATETIME), (db, _w, v) => db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, v), /older|LastUpdate/),
  write('deleteEntries', 'newer', or(ABSENT, DATETIME), (db, _w, v) => db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, null, v), /newer|LastUpdate/),
  write('deleteEntries', 'timeStamp', or(ABSENT, equals('LastUpdate')), (db, _w, v) =>
    db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, FAR_FUTURE, null, v), /timeStamp|field/i,
  ),
  write('deleteEntries', 'orderAttribute', or(ABSENT, equals(''), columnOf('vm_Instances'), listOf(columnOf('vm_Instances'))), (db, _w, v) =>
    db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, 1, null, null, null, null, v), /orderAttribute|field/i,
  ),
  write('deleteEntries', 'greater key', NOTHING, (db, _w, v) =>
    db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, null, null, null, null, { [keyOf(v)]: 0 }), /field/i,
  ),
  // InstanceID is BIGINT UNSIGNED: any safe non-negative integer (or digit string) is a legit bound.
  write('deleteEntries', 'greater value', ID, (db, _w, v) =>
    db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, null, null, null, null, { InstanceID: v }), /InstanceID/,
  ),
  write('deleteEntries', 'smaller value', NULLABLE_BOUND(DATETIME), (db, _w, v) =>
    db.deleteEntries('vm_Instances', { UniqueID: 'uid-run' }, false, null, null, null, null, null, null, { LastUpdate: v }), /LastUpdate/,
  ),
];

// ---- the probe ------------------------------------------------------------------------------

/** Runs every corpus entry through one slot; returns the problems found (empty when all is well). */
async function probe(db: VirtualMachineDB, world: World, slot: Slot): Promise<string[]> {
  const problems: string[] = [];
  const baseline = slot.baseline ? await slot.baseline(db, world) : undefined;
  let before = await snapshot(db);
  for (const [label, value] of CORPUS) {
    const legit = slot.legit(value);
    if (slot.write && legit) continue; // accepting it rightly changes data
    let result: AnyResult;
    try {
      result = await slot.call(db, world, value as never);
    } catch (err) {
      problems.push(`${label}: rejected with ${String(err)}`);
      continue;
    }
    const after = await snapshot(db);
    if (!isDeepStrictEqual(after, before)) {
      problems.push(`${label}: changed the tables`);
      before = after;
    }
    if (!result || typeof result.OK !== 'boolean') {
      problems.push(`${label}: not a result: ${String(result)}`);
      continue;
    }
    if (!result.OK) {
      if (typeof result.Message !== 'string' || !result.Message) problems.push(`${label}: failure without a Message`);
      else if (/^Database error/.test(result.Message)) problems.push(`${label}: reported as a database error, not as bad input: ${result.Message}`);
    }
    if (slot.write) {
      if (result.OK) problems.push(`${label}: accepted (${JSON.stringify(result.Value)})`);
      else if (!slot.names!.test(result.Message)) problems.push(`${label}: Message does not name ${slot.names}: ${result.Message}`);
    } else {
      const problem = slot.check?.(result, legit, baseline);
      if (problem) problems.push(`${label}: ${problem}`);
    }
  }
  return problems;
}

async function tableNames(db: VirtualMachineDB): Promise<string[]> {
  const sql =
    db.dialect === 'mysql'
      ? 'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()'
      : "SELECT name FROM sqlite_master WHERE type = 'table'";
  const rows = ok(await db._query(sql)) as { name: string }[];
  return rows.map((row) => row.name);
}

onEveryBackend('bad input never throws and never changes anything', (fx) => {
  let world: World;

  beforeEach(async function () {
    world = await buildWorld(fx.db);
  });

  for (const slot of SLOTS) {
    it(slot.title, async function () {
      this.timeout(120_000);
      const problems = await probe(fx.db, world, slot);
      assert.ok(problems.length === 0, `${problems.length} problem(s):\n      ${problems.join('\n      ')}`);
    });
  }

  it('ErrorMessage is free text: quotes, comments and SQL are stored verbatim, nothing else changes', async function () {
    // Printable text is a legitimate error message; what matters is that it round-trips byte for byte.
    const messages = HOSTILE_STRINGS.map(([, text]) => text).filter(FREE_TEXT);
    assert.ok(messages.length > 30);
    for (const [i, message] of messages.entries()) {
      const image = `img-e${i}`;
      ok(await fx.db.checkImageStatus(image));
      const images = ok(await fx.db.countEntries('vm_Images', {}));
      const instances = ok(await fx.db.countEntries('vm_Instances', {}));
      assert.deepEqual(await fx.db.declareInstanceError(world.running.id, message), { OK: true, Value: 'Error' }, JSON.stringify(message));
      assert.equal(ok(await fx.db.getInstanceParameter('ErrorMessage', world.running.id)), message);
      assert.deepEqual(await fx.db.declareImageError(image, message), { OK: true, Value: 'Error' }, JSON.stringify(message));
      assert.deepEqual(ok(await fx.db.getFields('vm_Images', ['ErrorMessage'], { Name: image })), [[message]]);
      assert.equal(ok(await fx.db.countEntries('vm_Images', {})), images);
      assert.equal(ok(await fx.db.countEntries('vm_Instances', {})), instances);
      // The other rows are untouched.
      assert.equal(ok(await fx.db.getInstanceStatus(world.submitted.id)), 'Submitted');
      assert.equal(ok(await fx.db.checkImageStatus('img-ok')), 'Validated');
    }
  });

  it('lookup keys match exactly: no wildcard, case or accent folding', async function () {
    // Every key below is a valid token, and differs from the fixture's uid-run / vm-run only by a
    // wildcard or by letter case; both backends must treat them as unknown, as SQLite does.
    for (const key of ['uid_run', 'UID-RUN', 'Uid-Run']) {
      assert.equal((await fx.db.getInstanceID(key)).OK, false, `getInstanceID(${key})`);
      assert.equal((await fx.db.getAllInfoForUniqueID(key)).OK, false, `getAllInfoForUniqueID(${key})`);
      assert.equal((await fx.db.getEndpointFromInstance(key)).OK, false, `getEndpointFromInstance(${key})`);
    }
    for (const name of ['vm_run', 'VM-RUN']) assert.equal((await fx.db.getUniqueIDByName(name)).OK, false, `getUniqueIDByName(${name})`);
    // ... and a case variant is a new key, not a clash: a new image, a free uniqueID.
    assert.equal(ok(await fx.db.checkImageStatus('IMG-OK')), 'New');
    assert.equal(ok(await fx.db.countEntries('vm_Images', { Name: 'IMG-OK' })), 1);
    assert.equal(ok(await fx.db.setInstanceUniqueID(world.fresh.id, 'UID-RUN')), world.fresh.id);
  });

  it('the tables still exist and still work after the whole corpus', async function () {
    const names = await tableNames(fx.db);
    for (const table of Object.keys(VirtualMachineDB.tablesDesc)) assert.ok(names.includes(table), `${table} is missing: ${names}`);
    const snap = await snapshot(fx.db);
    assert.equal(snap.vm_Instances.length, 3);
    assert.equal(ok(await fx.db.getInstanceStatus(world.running.id)), 'Running');
    assert.equal(ok(await fx.db.instanceIDHeartBeat('uid-run', 0.1, 0, 0, 0, 1)), 'Running');
  });
});
