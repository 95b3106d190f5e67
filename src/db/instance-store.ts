import { type HeartbeatFigures, heartbeatProblems } from '../../entities/heartbeat';
import { type InstanceStatus, STALLABLE_STATES, recordedStatus } from '../../entities/states';
import { columnOf } from '../../entities/tables';
import { type Database, type Executor, undoOnThrow } from './database';
import { type LifeSnapshot, planShutdown, readLife, setHaltPending } from './instance-life';
import * as life from './lifecycle';
import { type FailureCode, InputError, Refusal, type Result, S_ERROR } from './result';
import { nowSql, toSqlTime } from './time';
import * as check from './validate';

/** Where an instance stands after a requested change: accepted or refused, and its row as the change left it. */
export type InstanceChange =
  | { accepted: true; row: LifeSnapshot }
  | { accepted: false; row: LifeSnapshot; message: string; state?: string; code?: FailureCode };

/** One instance as the Director and the reconciliation list them. */
export interface InstanceListing {
  instanceID: number;
  name: string;
  /** The cloud's id for the VM; empty while it has none. */
  uniqueID: string;
  endpoint: string;
  status: InstanceStatus;
}

/** The instance a change or a read names does not exist. */
export class UnknownInstanceError extends Error {
  constructor(readonly instanceID: number) {
    super(`Unknown InstanceID = ${instanceID}`);
    this.name = 'UnknownInstanceError';
  }
}

const width = (name: string): number => columnOf('vm_Instances', name)!.length!;
const MESSAGE_LENGTH = 255;

/**
 * The life cycle's own door to the record, beside the DIRAC facade: typed arguments, and each change
 * answers with the row it left, read inside its own transaction, so nothing can come between the
 * change and what the caller is told. A refusal is an answer (accepted: false); a database that
 * fails throws, for the caller to retry. The transition rules are the facade's (src/db/lifecycle.ts).
 */
export class InstanceStore {
  constructor(
    private readonly database: Database,
    /** Seconds without news after which an instance is declared Stalled. */
    private readonly stallingInterval: number,
  ) {}

  /** The instance's row as it stands. */
  async row(instanceID: number): Promise<LifeSnapshot> {
    const id = check.id('instanceID', instanceID);
    const row = await readLife(this.database.pool, id);
    if (!row) throw new UnknownInstanceError(id);
    return row;
  }

  /** The cloud's id for the VM, then New -> Submitted; a retry after success is accepted as it stands. */
  async recordSubmitted(instanceID: number, uniqueID: string): Promise<InstanceChange> {
    return this.change(instanceID, async (ex, id) => {
      const unique = check.token('uniqueID', uniqueID, width('UniqueID'));
      const instance = await life.lockInstance(ex, 'InstanceID', id);
      const [row] = await ex.select('SELECT `UniqueID` FROM `vm_Instances` WHERE `InstanceID` = ?', [id]);
      if (String(row?.UniqueID ?? '') === unique && instance.Status !== 'New') {
        return instance.Status === 'Submitted' ? { OK: true, Value: instance.Status } : S_ERROR(`Instance ${id} is ${instance.Status}`);
      }
      const set = await life.setInstanceUniqueID(ex, id, unique);
      if (!set.OK) return set;
      return life.moveInstance(ex, await life.lockInstance(ex, 'InstanceID', id), 'Submitted');
    });
  }

  /** Submitted -> Wait_ssh_context. */
  async waitForSsh(instanceID: number): Promise<InstanceChange> {
    return this.move(instanceID, 'Wait_ssh_context');
  }

  /** Wait_ssh_context -> Contextualizing. */
  async contextualizing(instanceID: number): Promise<InstanceChange> {
    return this.move(instanceID, 'Contextualizing');
  }

  /** The VM is up: Running with its addresses (an IPv4-mapped `::ffff:` prefix is stripped). */
  async running(instanceID: number, uniqueID: string, publicIP: string, privateIP: string): Promise<InstanceChange> {
    return this.change(instanceID, async (ex) => {
      const unique = check.token('uniqueID', uniqueID, width('UniqueID'));
      const stripped = publicIP.startsWith('::ffff:') ? publicIP.slice('::ffff:'.length) : publicIP;
      const pub = check.ipAddress('publicIP', stripped, width('PublicIP'));
      const priv = check.ipAddress('privateIP', privateIP, width('PrivateIP'));
      return life.declareRunning(ex, unique, pub, priv);
    });
  }

  /** The seed's heartbeat by UniqueID (workflows that began with v1 record their own heartbeats). */
  async heartbeat(instanceID: number, uniqueID: string, figures: HeartbeatFigures): Promise<InstanceChange> {
    return this.change(instanceID, async (ex) => {
      const unique = check.token('uniqueID', uniqueID, width('UniqueID'));
      const problems = heartbeatProblems(figures);
      if (problems.length) check.fail(problems.join('; '));
      return life.heartbeat(ex, unique, figures);
    });
  }

  /** The VM announces it is halting: Halted, with its last load. */
  async halting(instanceID: number, uniqueID: string, load: number): Promise<InstanceChange> {
    return this.change(instanceID, async (ex) => {
      const unique = check.token('uniqueID', uniqueID, width('UniqueID'));
      const figures = { load: check.figure('load', load) };
      return life.moveInstance(ex, await life.lockInstance(ex, 'UniqueID', unique), 'Halted', figures);
    });
  }

  /** The seed's operator stop (Stalled and New: Halted at once, else Stopping). */
  async operatorStop(instanceID: number): Promise<InstanceChange> {
    return this.change(instanceID, (ex, id) => life.operatorStop(ex, id));
  }

  /** The life cycle's stop: Stopping planned to shut down at `shutdownAt`, or Stalled while starting. */
  async lifecycleStop(instanceID: number, shutdownAt: string | null): Promise<InstanceChange> {
    return this.change(instanceID, async (ex, id) => {
      const at = shutdownAt === null ? null : check.datetime('shutdownAt', shutdownAt);
      return life.lifecycleStop(ex, id, at);
    });
  }

  /** Stalled, only if nothing was heard since `lastSeenUpdate` (or for the stalling interval). */
  async stalled(instanceID: number, lastSeenUpdate: string | null): Promise<InstanceChange> {
    return this.change(instanceID, async (ex, id) => {
      const lastSeen = lastSeenUpdate === null ? undefined : check.datetime('lastSeenUpdate', lastSeenUpdate);
      return life.declareOneStalled(ex, id, this.stallingInterval, lastSeen);
    });
  }

  /** Halted after the VM was stopped at its endpoint (Halted -> Halted only refreshes). */
  async halted(instanceID: number): Promise<InstanceChange> {
    return this.move(instanceID, 'Halted', { load: 0 });
  }

  /** Error with a message, whatever the state. */
  async error(instanceID: number, message: string): Promise<InstanceChange> {
    return this.change(instanceID, async (ex, id) => {
      const text = check.freeText('errorMessage', message.slice(0, MESSAGE_LENGTH), MESSAGE_LENGTH);
      return life.declareError(ex, id, text);
    });
  }

  /** Stores the planned shutdown the heartbeat answer carries (null: none planned). */
  async planShutdown(instanceID: number, shutdownAt: string | null): Promise<void> {
    const at = shutdownAt === null ? null : check.datetime('shutdownAt', shutdownAt);
    await this.write(instanceID, (ex, id) => planShutdown(ex, id, at));
  }

  /** Marks (with the endpoint's reason) or clears (null) a stop at the endpoint that keeps failing. */
  async markHaltPending(instanceID: number, reason: string | null): Promise<void> {
    await this.write(instanceID, (ex, id) => setHaltPending(ex, id, reason === null ? null : nowSql(), reason ?? ''));
  }

  /** Instances by endpoint, states or id (every filter given must hold), by InstanceID. */
  async instances(filter: { endpoint?: string; statuses?: readonly InstanceStatus[]; instanceID?: number }): Promise<InstanceListing[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.endpoint !== undefined) {
      where.push('`Endpoint` = ?');
      params.push(check.token('endpoint', filter.endpoint, width('Endpoint')));
    }
    if (filter.statuses !== undefined) {
      if (filter.statuses.length === 0) return [];
      where.push(`\`Status\` IN (${filter.statuses.map(() => '?').join(', ')})`);
      params.push(...filter.statuses);
    }
    if (filter.instanceID !== undefined) {
      where.push('`InstanceID` = ?');
      params.push(check.id('instanceID', filter.instanceID));
    }
    const rows = await this.database.pool.select(
      `SELECT \`InstanceID\`, \`Name\`, \`UniqueID\`, \`Endpoint\`, \`Status\` FROM \`vm_Instances\`${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY \`InstanceID\``,
      params,
    );
    return rows.map((row) => ({
      instanceID: Number(row.InstanceID),
      name: String(row.Name),
      uniqueID: String(row.UniqueID ?? ''),
      endpoint: String(row.Endpoint),
      status: recordedStatus(row.Status),
    }));
  }

  /** Instances in a state that may stall and silent since before `cutoff`, with their endpoints (the stalled sweep). */
  async silentSince(cutoff: Date): Promise<{ instanceID: number; endpoint: string }[]> {
    const marks = STALLABLE_STATES.map(() => '?').join(', ');
    const rows = await this.database.pool.select(
      `SELECT \`InstanceID\`, \`Endpoint\` FROM \`vm_Instances\` WHERE \`Status\` IN (${marks}) AND \`LastUpdate\` < ? ORDER BY \`InstanceID\``,
      [...STALLABLE_STATES, toSqlTime(cutoff)],
    );
    return rows.map((row) => ({ instanceID: Number(row.InstanceID), endpoint: String(row.Endpoint) }));
  }

  private move(instanceID: number, target: 'Wait_ssh_context' | 'Contextualizing' | 'Halted', figures: life.HistoryFigures = {}): Promise<InstanceChange> {
    return this.change(instanceID, async (ex, id) => life.moveInstance(ex, await life.lockInstance(ex, 'InstanceID', id), target, figures));
  }

  /** One change and the row it left, in one transaction; a refusal undoes only the change's own work. */
  private async change(instanceID: number, fn: (ex: Executor, id: number) => Promise<Result<unknown>>): Promise<InstanceChange> {
    const id = check.id('instanceID', instanceID);
    return this.database.transaction(async (ex) => {
      let result: Result<unknown>;
      try {
        result = await undoOnThrow(ex, 'vmdb_store', () => fn(ex, id));
      } catch (err) {
        if (err instanceof Refusal) result = err.result;
        else if (err instanceof InputError) result = S_ERROR(err.message);
        else throw err;
      }
      const row = await readLife(ex, id);
      if (!row) throw new UnknownInstanceError(id);
      if (result.OK) return { accepted: true, row };
      const { Message: message, State: state, code } = result;
      return { accepted: false, row, message, ...(state === undefined ? {} : { state }), ...(code === undefined ? {} : { code }) };
    });
  }

  /** A write of the life cycle's own record (no state change) that must land. */
  private async write(instanceID: number, fn: (ex: Executor, id: number) => Promise<void>): Promise<void> {
    const id = check.id('instanceID', instanceID);
    await this.database.transaction(async (ex) => {
      if (!(await readLife(ex, id))) throw new UnknownInstanceError(id);
      await fn(ex, id);
    });
  }
}

