import { type HeartbeatFigures, heartbeatProblems } from '../../entities/heartbeat';
import { ALLOWED_TRANSITIONS, type InstanceStatus, IMAGE_STATES, INSTANCE_STATES } from '../../entities/states';
import { TABLES_DESC, type TableName, columnOf } from '../../entities/tables';
import { type ConditionArgs, buildCondition as buildSqlCondition, type Condition } from './conditions';
import { Database, type Executor, redact, undoOnThrow } from './database';
import * as generic from './generic';
import { InstanceStore } from './instance-store';
import { getHistoryValues, getRunningHistory, type RunningGroup } from './history';
import { type RecordedHeartbeat, recordHeartbeat } from './heartbeat-record';
import * as lifeRecord from './instance-life';
import type { HeartbeatMark, LifeSnapshot } from './instance-life';
import * as life from './lifecycle';
import * as read from './queries';
import { DATABASE_ERROR_PREFIX, type Failure, InputError, Refusal, type Result, S_ERROR, S_OK } from './result';
import * as check from './validate';
import { nowSql } from './time';

export interface OpenOptions {
  /** `mysql://user:pass@host:port/db`, `sqlite:<file>` or `sqlite::memory:` */
  url: string;
  /** Seconds without news after which an instance is declared Stalled (default 2400). */
  stallingInterval?: number;
  /** Apply pending migrations on open (default true). When false, open fails on a schema that is behind. */
  migrate?: boolean;
}

const DEFAULT_STALLING_INTERVAL = 2400;
const NAME_LENGTH = 255;
/** The agent's boot id (vm_InstanceLife.BootID). */
const BOOT_ID_LENGTH = 64;

// Column widths come from the table description, so validation and schema cannot drift apart.
const width = (table: TableName, name: string): number => columnOf(table, name)!.length!;

/** Per-transaction bookkeeping of a facade handed to a `transaction()` callback. */
interface TxState {
  savepoints: number;
  failure?: unknown;
}

/**
 * The VirtualMachineDB of DIRAC, async and over MySQL/MariaDB or SQLite.
 * Every method returns `{ OK: true, Value }` or `{ OK: false, Message }` and
 * never throws for bad input, unknown ids or refused transitions.
 */
export class VirtualMachineDB {
  static readonly tablesDesc = TABLES_DESC;
  static readonly allowedTransitions = ALLOWED_TRANSITIONS;
  static readonly validImageStates: readonly string[] = IMAGE_STATES;
  static readonly validInstanceStates: readonly string[] = INSTANCE_STATES;
  static readonly defaultStallingInterval = DEFAULT_STALLING_INTERVAL;

  private constructor(
    private readonly db: Database,
    private readonly ex: Executor,
    /** Seconds without news after which an instance is declared Stalled. */
    readonly stallingInterval: number,
    private readonly tx: TxState | null = null,
  ) {}

  /** Connects, applies pending migrations and returns a ready facade. Throws when the database cannot be reached. */
  static async open(options: OpenOptions): Promise<VirtualMachineDB> {
    if (!options || typeof options !== 'object') throw new TypeError('VirtualMachineDB.open needs { url }');
    const interval = options.stallingInterval ?? DEFAULT_STALLING_INTERVAL;
    if (!Number.isInteger(interval) || interval <= 0) {
      throw new TypeError(`stallingInterval must be a positive integer of seconds, got ${String(interval)}`);
    }
    let db: Database;
    try {
      db = await Database.connect(options.url, { migrate: options.migrate ?? true });
    } catch (err) {
      throw new Error(`Cannot open ${typeof options.url === 'string' ? redact(options.url) : 'database'}: ${(err as Error).message}`);
    }
    return new VirtualMachineDB(db, db.pool, interval);
  }

  /** True when every migration of this build has been applied (for readiness checks). */
  async schemaIsCurrent(): Promise<boolean> {
    return this.db.schemaIsCurrent();
  }

  get dialect(): 'mysql' | 'sqlite' {
    return this.db.dialect;
  }

  async close(): Promise<void> {
    if (this.tx) throw new Error('close() is not available inside a transaction');
    await this.db.close();
  }

  /**
   * The life cycle's typed store over the same database (src/db/instance-store.ts). It opens its own
   * transactions, also when this facade is bound to one.
   */
  instanceStore(): InstanceStore {
    return new InstanceStore(this.db, this.stallingInterval);
  }

  /** This facade's executor (its transaction, or the pool), for the companion stores of src/db/ (safety-store.ts, halt-store.ts, usage.ts). */
  get executor(): Executor {
    return this.ex;
  }

  // ---- plumbing -------------------------------------------------------------

  /** Runs a method body: bad input and refusals become results, and so do unexpected errors. */
  private async call<T>(body: () => Promise<Result<T>>): Promise<Result<T>> {
    try {
      return await body();
    } catch (err) {
      if (err instanceof InputError) return S_ERROR(err.message);
      if (err instanceof Refusal) return err.result as Failure;
      if (this.tx) this.tx.failure ??= err;
      return S_ERROR(`${DATABASE_ERROR_PREFIX}${(err as Error)?.message ?? String(err)}`, undefined, 'database_unavailable');
    }
  }

  /** Runs `fn` atomically: its own transaction, or a savepoint inside the caller's. A Refusal undoes it. */
  private async atomic<T>(fn: (ex: Executor) => Promise<Result<T>>): Promise<Result<T>> {
    try {
      return await (this.tx ? this.withSavepoint(fn) : this.db.transaction(fn));
    } catch (err) {
      if (err instanceof Refusal) return err.result as Failure;
      throw err;
    }
  }

  /** Inside a transaction: runs `fn` so that a throw undoes only its own work. */
  private async withSavepoint<T>(fn: (ex: Executor) => Promise<T>): Promise<T> {
    return undoOnThrow(this.ex, `vmdb_sp${++this.tx!.savepoints}`, () => fn(this.ex));
  }

  private uniqueID(value: unknown): string {
    return check.token('uniqueID', value, width('vm_Instances', 'UniqueID'));
  }

  private instanceID(value: unknown): number {
    return check.id('instanceID', value);
  }

  // ---- images ---------------------------------------------------------------

  /** Status of an image, inserting it as New when unknown; an image in Error returns its ErrorMessage. */
  checkImageStatus(imageName: string): Promise<Result<string>> {
    return this.call(async () => {
      const name = check.token('imageName', imageName, width('vm_Images', 'Name'));
      return this.atomic((ex) => read.checkImageStatus(ex, name));
    });
  }

  /** Forces an image to Error (for example: its instances report wrong requirements). */
  declareImageError(imageName: string, errorMessage: string): Promise<Result<string>> {
    return this.call(async () => {
      const name = check.token('imageName', imageName, width('vm_Images', 'Name'));
      const message = check.freeText('errorMessage', errorMessage, NAME_LENGTH);
      return this.atomic((ex) => life.forceImageError(ex, name, message));
    });
  }

  // ---- instances: life cycle -------------------------------------------------

  /** New instance (Submitted when uniqueID is given, else New) of an image that is not in Error. */
  insertInstance(uniqueID: string, imageName: string, instanceName: string, endpoint: string, runningPodName: string): Promise<Result<number>> {
    return this.call(async () => {
      const args = [
        check.token('uniqueID', uniqueID, width('vm_Instances', 'UniqueID'), { allowEmpty: true }),
        check.token('imageName', imageName, width('vm_Images', 'Name')),
        check.token('instanceName', instanceName, width('vm_Instances', 'Name')),
        check.token('endpoint', endpoint, width('vm_Instances', 'Endpoint')),
        check.token('runningPodName', runningPodName, width('vm_Instances', 'RunningPod'), { allowEmpty: true }),
      ] as const;
      return this.atomic((ex) => life.insertInstance(ex, ...args));
    });
  }

  setInstanceUniqueID(instanceID: number, uniqueID: string): Promise<Result<number>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const unique = this.uniqueID(uniqueID);
      return this.atomic((ex) => life.setInstanceUniqueID(ex, id, unique));
    });
  }

  private moveByUniqueID(uniqueID: unknown, target: InstanceStatus, figures: life.HistoryFigures = {}): Promise<Result<string>> {
    return this.call(async () => {
      const unique = this.uniqueID(uniqueID);
      return this.atomic(async (ex) => life.moveInstance(ex, await life.lockInstance(ex, 'UniqueID', unique), target, figures));
    });
  }

  private moveByInstanceID(instanceID: unknown, target: InstanceStatus, figures: life.HistoryFigures = {}): Promise<Result<string>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      return this.atomic(async (ex) => life.moveInstance(ex, await life.lockInstance(ex, 'InstanceID', id), target, figures));
    });
  }

  declareInstanceSubmitted(uniqueID: string): Promise<Result<string>> {
    return this.moveByUniqueID(uniqueID, 'Submitted');
  }

  /** Submitted -> Wait_ssh_context: the VM needs contextualizing over SSH before it runs. */
  declareInstanceWaitSshContext(instanceID: number): Promise<Result<string>> {
    return this.moveByInstanceID(instanceID, 'Wait_ssh_context');
  }

  /** Wait_ssh_context -> Contextualizing. */
  declareInstanceContextualizing(instanceID: number): Promise<Result<string>> {
    return this.moveByInstanceID(instanceID, 'Contextualizing');
  }

  /** Running with its IPs (an IPv4-mapped `::ffff:` prefix is stripped); returns getAllInfoForUniqueID. A refusal changes nothing. */
  declareInstanceRunning(
    uniqueID: string,
    publicIP: string,
    privateIP = '',
  ): Promise<Result<{ Image: Record<string, unknown>; Instance: Record<string, unknown> }>> {
    return this.call(async () => {
      const unique = this.uniqueID(uniqueID);
      const stripped = typeof publicIP === 'string' && publicIP.startsWith('::ffff:') ? publicIP.slice(7) : publicIP;
      const pub = check.ipAddress('publicIP', stripped, width('vm_Instances', 'PublicIP'));
      const priv = check.ipAddress('privateIP', privateIP, width('vm_Instances', 'PrivateIP'));
      return this.atomic(async (ex) => {
        const moved = await life.declareRunning(ex, unique, pub, priv);
        return moved.OK ? read.getAllInfoForUniqueID(ex, unique) : moved;
      });
    });
  }

  /** A heartbeat: instance Running, image Validated, one history row, Load/Jobs/Uptime set. Refused from Stopping/Halted with State stop/halt. */
  instanceIDHeartBeat(
    uniqueID: string,
    load: number,
    jobs: number,
    transferredFiles: number,
    transferredBytes: number,
    uptime: number,
  ): Promise<Result<string>> {
    return this.call(async () => {
      const unique = this.uniqueID(uniqueID);
      const beat = { load, jobs, transferredFiles, transferredBytes, uptime };
      const problems = heartbeatProblems(beat);
      if (problems.length) check.fail(problems.join('; '));
      return this.atomic((ex) => life.heartbeat(ex, unique, beat));
    });
  }

  /** Running|Stalled -> Stopping; the VM is told `stop` at its next heartbeat. */
  declareInstanceStopping(instanceID: number): Promise<Result<string>> {
    return this.moveByInstanceID(instanceID, 'Stopping');
  }

  /** The VM reports it is halting: Halted, with its last load in history. */
  declareInstanceHalting(uniqueID: string, load: number): Promise<Result<string>> {
    return this.call(async () => this.moveByUniqueID(uniqueID, 'Halted', { load: check.figure('load', load) }));
  }

  /** An operator or service records the instance Halted. */
  recordDBHalt(instanceID: number, load: number): Promise<Result<string>> {
    return this.call(async () => this.moveByInstanceID(instanceID, 'Halted', { load: check.figure('load', load) }));
  }

  /** Forces an instance to Error with a message (for example: it reports Running while Halted). */
  declareInstanceError(instanceID: number, errorMessage: string): Promise<Result<string>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const message = check.freeText('errorMessage', errorMessage, NAME_LENGTH);
      return this.atomic((ex) => life.declareError(ex, id, message));
    });
  }

  /**
   * The operator's "stop these instances": Stalled and New are recorded Halted
   * at once (no VM is listening), anything else goes to Stopping. Each instance
   * is its own transaction; Value maps every id to its outcome.
   */
  declareInstancesStopping(instanceIDs: number[]): Promise<Result<Record<string, Result<string>>>> {
    return this.call(async () => {
      const ids = check.list('instanceIDs', instanceIDs).map((value) => check.id('instanceIDs[]', value));
      const outcome: Record<string, Result<string>> = {};
      for (const id of ids) {
        outcome[id] = await this.call(() => this.atomic((ex) => life.operatorStop(ex, id)));
      }
      const failed = Object.entries(outcome).filter(([, r]) => !r.OK) as [string, Failure][];
      if (failed.length === 0) return S_OK(outcome);
      return { ...S_ERROR(`Could not stop ${failed.map(([id, r]) => `${id} (${r.Message})`).join(', ')}`), Value: outcome } as Failure;
    });
  }

  /**
   * The Director's launch step: inserts New instances for the free slots of an
   * endpoint (at most `maxInstances` in New..Running) and returns their ids.
   * Serialised per endpoint, so concurrent Directors never fill one slot twice.
   */
  reserveInstances(endpoint: string, imageName: string, runningPod: string, maxInstances: number, namePrefix = 'vmdb'): Promise<Result<number[]>> {
    return this.call(async () => {
      const args = [
        check.token('endpoint', endpoint, width('vm_Instances', 'Endpoint')),
        check.token('imageName', imageName, width('vm_Images', 'Name')),
        check.token('runningPod', runningPod, width('vm_Instances', 'RunningPod'), { allowEmpty: true }),
        check.count('maxInstances', maxInstances, 10000),
        // Room for the "-<12 hex>" suffix within the Name column.
        check.token('namePrefix', namePrefix, width('vm_Instances', 'Name') - 13),
      ] as const;
      return this.atomic((ex) => life.reserveSlots(ex, ...args));
    });
  }

  /** Every instance silent for longer than stallingInterval becomes Stalled; returns their InstanceIDs. */
  declareStalledInstances(): Promise<Result<number[]>> {
    return this.call(() => this.atomic((ex) => life.declareStalled(ex, this.stallingInterval)));
  }

  /**
   * One instance to Stalled if, and only if, it is silent: LastUpdate older
   * than stallingInterval, or (with `lastSeenUpdate`) not newer than the
   * LastUpdate the caller saw last: a compare-and-set for timers that keep their own clock.
   */
  declareInstanceStalled(instanceID: number, lastSeenUpdate?: Date | string): Promise<Result<string>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const lastSeen = lastSeenUpdate === undefined ? undefined : check.datetime('lastSeenUpdate', lastSeenUpdate);
      return this.atomic((ex) => life.declareOneStalled(ex, id, this.stallingInterval, lastSeen));
    });
  }

  // ---- instances: the life cycle's own record (beyond the seed) ---------------------

  /**
   * A VM's heartbeat by InstanceID, as the API records it: the seed's instanceIDHeartBeat in one
   * transaction, once per (bootId, seq); a repeat is answered from the record and writes nothing.
   */
  recordHeartbeat(instanceID: number, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<RecordedHeartbeat>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const problems = heartbeatProblems(figures);
      if (problems.length) check.fail(problems.join('; '));
      const checked = mark === undefined ? undefined : { bootId: check.token('bootId', mark.bootId, BOOT_ID_LENGTH), seq: check.count('seq', mark.seq) };
      return this.atomic((ex) => recordHeartbeat(ex, id, figures, checked));
    });
  }

  /**
   * The life cycle's stop: Running goes to Stopping (planned to shut down at `shutdownAt`, or not
   * at all when null), a starting instance to Stalled (its workflow then stops the VM and records
   * Halted); Stopping and Stalled stay; Halted and Error are refused with their State.
   */
  requestInstanceStop(instanceID: number, shutdownAt: string | null = null): Promise<Result<string>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const at = shutdownAt === null ? null : check.datetime('shutdownAt', shutdownAt);
      return this.atomic((ex) => life.lifecycleStop(ex, id, at));
    });
  }

  /** Stores when the instance's VM is planned to be shut down (null: none), for the heartbeat answer. */
  planInstanceShutdown(instanceID: number, shutdownAt: string | null): Promise<Result<null>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const at = shutdownAt === null ? null : check.datetime('shutdownAt', shutdownAt);
      return this.atomic(async (ex) => {
        await lifeRecord.planShutdown(ex, id, at);
        return S_OK(null);
      });
    });
  }

  /** Marks (with the endpoint's reason) or clears (null) a stop at the endpoint that keeps failing. */
  setInstanceHaltPending(instanceID: number, reason: string | null): Promise<Result<null>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      return this.atomic(async (ex) => {
        await lifeRecord.setHaltPending(ex, id, reason === null ? null : nowSql(), reason ?? '');
        return S_OK(null);
      });
    });
  }

  /** Status, LastUpdate, ErrorMessage, UniqueID and version of an instance, read together. */
  getInstanceLife(instanceID: number): Promise<Result<LifeSnapshot>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      const snapshot = await lifeRecord.readLife(this.ex, id);
      return snapshot ? S_OK(snapshot) : S_ERROR(`Unknown InstanceID = ${id}`, undefined, 'not_found');
    });
  }

  /** How many instances have a VM their endpoint keeps refusing to stop. */
  countHaltPending(): Promise<Result<number>> {
    return this.call(async () => S_OK(await lifeRecord.haltPendingCount(this.ex)));
  }

  // ---- instances: reads -------------------------------------------------------

  getInstanceID(uniqueID: string): Promise<Result<number>> {
    return this.call(async () => read.getInstanceID(this.ex, this.uniqueID(uniqueID)));
  }

  getUniqueID(instanceID: number): Promise<Result<string>> {
    return this.call(async () => read.getUniqueID(this.ex, this.instanceID(instanceID)));
  }

  getUniqueIDByName(instanceName: string): Promise<Result<string>> {
    return this.call(async () =>
      read.getUniqueIDByName(this.ex, check.token('instanceName', instanceName, width('vm_Instances', 'Name'))),
    );
  }

  getEndpointFromInstance(uniqueId: string): Promise<Result<string>> {
    return this.call(async () => read.getEndpoint(this.ex, this.uniqueID(uniqueId)));
  }

  /** One column of vm_Instances; any other name is refused. */
  getInstanceParameter(pName: string, instanceID: number): Promise<Result<unknown>> {
    return this.call(async () => {
      const spec = columnOf('vm_Instances', pName) ?? check.fail(`Invalid Instance parameter ${typeof pName === 'string' ? pName : check.show(pName)}`);
      return read.getInstanceParameter(this.ex, spec.name, this.instanceID(instanceID));
    });
  }

  getInstanceStatus(instanceID: number): Promise<Result<string>> {
    return this.call(async () => {
      const id = this.instanceID(instanceID);
      return this.atomic((ex) => read.getInstanceStatus(ex, id));
    });
  }

  getAllInfoForUniqueID(uniqueID: string): Promise<Result<{ Image: Record<string, unknown>; Instance: Record<string, unknown> }>> {
    return this.call(async () => read.getAllInfoForUniqueID(this.ex, this.uniqueID(uniqueID)));
  }

  /** `{ imageName: [uniqueID, ...] }` of the instances in `status`. */
  getInstancesByStatus(status: string): Promise<Result<Record<string, string[]>>> {
    return this.call(async () => read.getInstancesByStatus(this.ex, check.state('Instance', status)));
  }

  getInstancesContent(
    selDict: Record<string, unknown> = {},
    sortList: [string, string][] = [],
    start = 0,
    limit = 0,
  ): Promise<Result<{ ParameterNames: string[]; Records: unknown[][]; TotalRecords: number }>> {
    return this.call(async () => read.getInstancesContent(this.ex, selDict, sortList, start, limit));
  }

  /**
   * getInstancesContent's rows a page at a time, for callers other than DIRAC's: by keyset
   * (`after`: the previous page's `Next`, for the same sort) or by offset (`start`). The total is
   * exact when counting is cheap and an estimate otherwise (`TotalExact` says which).
   */
  getInstancesPage(options: read.InstancesPageOptions): Promise<Result<read.InstancesPage>> {
    return this.call(async () => read.getInstancesPage(this.ex, options));
  }

  getHistoryForInstanceID(instanceId: number): Promise<Result<{ ParameterNames: string[]; Records: unknown[][] }>> {
    return this.call(async () => read.getHistoryForInstanceID(this.ex, check.id('instanceId', instanceId)));
  }

  getInstanceCounters(groupField = 'Status', selDict: Record<string, unknown> = {}): Promise<Result<Record<string, number>>> {
    return this.call(async () => read.getInstanceCounters(this.ex, groupField, selDict));
  }

  // ---- history ------------------------------------------------------------------

  getHistoryValues(
    averageBucket: number,
    selDict: Record<string, unknown> = {},
    fields2Get: string[] | false = false,
    timespan = 0,
  ): Promise<Result<{ ParameterNames: string[]; Records: unknown[][] }>> {
    return this.call(async () => {
      const bucket = check.count('averageBucket', averageBucket);
      if (bucket === 0) check.fail('averageBucket must be at least 1 second');
      return getHistoryValues(this.ex, bucket, selDict, fields2Get, check.count('timespan', timespan));
    });
  }

  private runningHistory(timespan: unknown, bucketSize: unknown, group: RunningGroup): Promise<Result<unknown[][]>> {
    return this.call(async () =>
      getRunningHistory(this.ex, check.count('timespan', timespan), check.count('bucketSize', bucketSize), group),
    );
  }

  /** `[[bucketStart, instances], ...]`: distinct instances with a Running row per bucket (at least 300 s). */
  getRunningInstancesHistory(timespan = 0, bucketSize = 900): Promise<Result<unknown[][]>> {
    return this.runningHistory(timespan, bucketSize, null);
  }

  /** `[[bucketStart, endpoint, instances], ...]` */
  getRunningInstancesBEPHistory(timespan = 0, bucketSize = 900): Promise<Result<unknown[][]>> {
    return this.runningHistory(timespan, bucketSize, 'Endpoint');
  }

  /** `[[bucketStart, runningPod, instances], ...]` */
  getRunningInstancesByRunningPodHistory(timespan = 0, bucketSize = 900): Promise<Result<unknown[][]>> {
    return this.runningHistory(timespan, bucketSize, 'RunningPod');
  }

  /** `[[bucketStart, imageName, instances], ...]` */
  getRunningInstancesByImageHistory(timespan = 0, bucketSize = 900): Promise<Result<unknown[][]>> {
    return this.runningHistory(timespan, bucketSize, 'Image');
  }

  // ---- generic helpers of DIRAC's DB class ---------------------------------------------

  /**
   * A parameterised condition `{ sql, params }` (WHERE, ORDER BY, LIMIT); never a string with values in it.
   * `table` (an addition) restricts identifiers to one table's columns; otherwise any vmdb column is accepted.
   */
  buildCondition(
    condDict?: Record<string, unknown> | null,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    orderAttribute?: string | string[] | null,
    limit: number | false = false,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
    offset?: number | null,
    useLikeQuery = false,
    table?: string,
  ): Promise<Result<Condition>> {
    return this.call(async () =>
      S_OK(
        buildSqlCondition(table === undefined ? undefined : generic.table(table), {
          condDict, older, newer, timeStamp, orderAttribute, limit, greater, smaller, offset, useLikeQuery,
        }),
      ),
    );
  }

  /** Rows as arrays of `outFields` (all columns when omitted). `conn` is accepted for compatibility and ignored. */
  getFields(
    tableName: string,
    outFields?: string[] | null,
    condDict?: Record<string, unknown> | null,
    limit: number | false = false,
    conn?: unknown,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    orderAttribute?: string | string[] | null,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
    useLikeQuery = false,
  ): Promise<Result<unknown[][]>> {
    return this.call(async () =>
      generic.getFields(this.ex, generic.table(tableName), outFields, {
        condDict, limit, older, newer, timeStamp, orderAttribute, greater, smaller, useLikeQuery,
      }),
    );
  }

  /** Inserts one row; Value is the number of rows inserted and `lastRowId` the new id. */
  insertFields(
    tableName: string,
    inFields?: string[] | null,
    inValues?: unknown[] | null,
    conn?: unknown,
    inDict?: Record<string, unknown> | null,
  ): Promise<Result<number> & { lastRowId?: number }> {
    return this.call(async () => generic.insertFields(this.ex, generic.table(tableName), inFields, inValues, inDict));
  }

  /** Value is the number of rows matched. Status columns are refused: they change through the state methods. */
  updateFields(
    tableName: string,
    updateFields?: string[] | null,
    updateValues?: unknown[] | null,
    condDict?: Record<string, unknown> | null,
    limit: number | false = false,
    conn?: unknown,
    updateDict?: Record<string, unknown> | null,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    orderAttribute?: string | string[] | null,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
  ): Promise<Result<number>> {
    return this.call(async () =>
      generic.updateFields(this.ex, generic.table(tableName), updateFields, updateValues, updateDict, {
        condDict, limit, older, newer, timeStamp, orderAttribute, greater, smaller,
      }),
    );
  }

  deleteEntries(
    tableName: string,
    condDict?: Record<string, unknown> | null,
    limit: number | false = false,
    conn?: unknown,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    orderAttribute?: string | string[] | null,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
  ): Promise<Result<number>> {
    return this.call(async () =>
      generic.deleteEntries(this.ex, generic.table(tableName), {
        condDict, limit, older, newer, timeStamp, orderAttribute, greater, smaller,
      }),
    );
  }

  countEntries(
    table: string,
    condDict?: Record<string, unknown> | null,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    connection?: unknown,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
  ): Promise<Result<number>> {
    return this.call(async () =>
      generic.countEntries(this.ex, generic.table(table), { condDict, older, newer, timeStamp, greater, smaller }),
    );
  }

  /** `[[{ attr: value, ... }, count], ...]` for each distinct combination of attrList. */
  getCounters(
    table: string,
    attrList: string[],
    condDict?: Record<string, unknown> | null,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    connection?: unknown,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
  ): Promise<Result<[Record<string, unknown>, number][]>> {
    return this.call(async () =>
      generic.getCounters(this.ex, generic.table(table), attrList, { condDict, older, newer, timeStamp, greater, smaller }),
    );
  }

  getDistinctAttributeValues(
    table: string,
    attribute: string,
    condDict?: Record<string, unknown> | null,
    older?: unknown,
    newer?: unknown,
    timeStamp?: string | null,
    connection?: unknown,
    greater?: Record<string, unknown> | null,
    smaller?: Record<string, unknown> | null,
  ): Promise<Result<unknown[]>> {
    return this.call(async () =>
      generic.getDistinctAttributeValues(this.ex, generic.table(table), attribute, {
        condDict, older, newer, timeStamp, greater, smaller,
      }),
    );
  }

  /**
   * Runs `fn` with a facade bound to one transaction: everything commits
   * together when `fn` returns, nothing when it throws or when a database error
   * happened inside. `fn` may run again if the server picks it as a deadlock victim.
   */
  transaction<T>(fn: (tx: VirtualMachineDB) => Promise<T>): Promise<Result<T>> {
    if (this.tx) {
      // Nested: a savepoint, so a throw undoes the inner work and leaves the outer transaction usable.
      return this.call(async () => {
        try {
          return S_OK(await this.withSavepoint(() => fn(this)));
        } catch (err) {
          return S_ERROR(`Transaction rolled back: ${(err as Error)?.message ?? String(err)}`);
        }
      });
    }
    return this.call(async () => {
      try {
        return S_OK(
          await this.db.transaction(async (ex) => {
            const state: TxState = { savepoints: 0 };
            const value = await fn(new VirtualMachineDB(this.db, ex, this.stallingInterval, state));
            if (state.failure) throw state.failure;
            return value;
          }),
        );
      } catch (err) {
        return S_ERROR(`Transaction rolled back: ${(err as Error)?.message ?? String(err)}`);
      }
    });
  }

  /**
   * Raw SQL for maintenance and tests (DIRAC's `_query`). Values must still be
   * passed in `params`, never pasted into `sql`. Value: rows for a SELECT, else the driver's write summary.
   */
  _query(sql: string, params: unknown[] = []): Promise<Result<unknown>> {
    return this.call(async () => {
      if (typeof sql !== 'string' || !sql.trim()) check.fail('sql must be a non-empty string');
      return S_OK(this.tx ? await (this.ex as Executor & { raw: Database['raw'] }).raw(sql, params) : await this.db.raw(sql, params));
    });
  }

  /** Alias of `_query` for statements that change rows (DIRAC's `_update`). */
  _update(sql: string, params: unknown[] = []): Promise<Result<unknown>> {
    return this._query(sql, params);
  }
}
