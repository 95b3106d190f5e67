import { ApplicationFailure } from '@temporalio/common';
import type { HeartbeatFigures } from '../entities/heartbeat';
import { activityLogger } from '../src/ops/log';
import { type InstanceChange, UnknownInstanceError } from '../src/db/instance-store';
import type { LifeSnapshot } from '../src/db/instance-life';
import { DATABASE_ERROR_PREFIX } from '../src/db/result';
import type { VirtualMachineDB } from '../src/db/vmdb';
import { type Directive, type InstanceStatus, directiveOfRefusal } from '../entities/states';

/** Where an instance stands in the database after an activity. */
export interface InstanceSnapshot {
  status: InstanceStatus;
  /** LastUpdate as a UTC ISO string. */
  lastUpdate: string | null;
  errorMessage: string;
  /**
   * The record's version when this was read: a workflow adopts a snapshot only when it is not older
   * than the one it has (reads that finish out of order). Absent in histories recorded before it.
   */
  version?: number;
}

/** The outcome of a requested state change: accepted, or refused with the database's reason. */
export interface StateChange extends InstanceSnapshot {
  accepted: boolean;
  message?: string;
  /** `stop` / `halt` / current state, from a refused transition. */
  state?: string;
}

/** A failed database (not a refused request) is worth retrying; an instance that does not exist is not. */
async function landed<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof UnknownInstanceError) throw ApplicationFailure.nonRetryable(err.message, 'UnknownInstance');
    if (err instanceof ApplicationFailure) throw err;
    throw ApplicationFailure.retryable(`${DATABASE_ERROR_PREFIX}${(err as Error)?.message ?? String(err)}`, 'DatabaseError');
  }
}

function snapshotOf(row: LifeSnapshot): InstanceSnapshot {
  const { status, lastUpdate, errorMessage, version } = row;
  return { status, lastUpdate, errorMessage, version };
}

/**
 * Activities over the life cycle's store (src/db/instance-store.ts): every state change goes through
 * the transition table, and answers with the row it left, read in its own transaction. Each one is
 * safe to retry: a repeated transition to the current state only refreshes LastUpdate.
 */
export function createDatabaseActivities(db: VirtualMachineDB) {
  const store = db.instanceStore();

  /**
   * A state change, logged for the instance: `what` names the request. Heartbeats (`quiet`) log at
   * debug: they are the steady state, and many.
   */
  async function change(instanceID: number, request: () => Promise<InstanceChange>, what: string, uniqueID?: string, quiet = false): Promise<StateChange> {
    const outcome = await landed(request);
    const now = snapshotOf(outcome.row);
    const log = activityLogger({ instanceID, uniqueID });
    const inError = now.status === 'Error';
    const fields = { status: now.status, ...(inError ? { errorMessage: now.errorMessage } : {}) };
    if (outcome.accepted) {
      log[inError ? 'warn' : quiet ? 'debug' : 'info'](fields, `${what}: ${now.status}`);
      return { ...now, accepted: true };
    }
    log[inError ? 'warn' : 'info']({ ...fields, refusal: outcome.message, state: outcome.state }, `${what} refused`);
    return { ...now, accepted: false, message: outcome.message, state: outcome.state };
  }

  return {
    /** Records the cloud's id for the VM and moves New -> Submitted; a retry after success is accepted. */
    async recordSubmitted(instanceID: number, uniqueID: string): Promise<StateChange> {
      return change(instanceID, () => store.recordSubmitted(instanceID, uniqueID), 'submitted', uniqueID);
    },

    async declareWaitSshContext(instanceID: number): Promise<StateChange> {
      return change(instanceID, () => store.waitForSsh(instanceID), 'waiting for SSH');
    },

    async declareContextualizing(instanceID: number): Promise<StateChange> {
      return change(instanceID, () => store.contextualizing(instanceID), 'contextualizing');
    },

    /** v1 runs: the heartbeat's history row and figures are committed before the directive is returned. */
    async recordHeartbeat(instanceID: number, uniqueID: string, figures: HeartbeatFigures): Promise<StateChange & { directive: Directive }> {
      const outcome = await landed(() => store.heartbeat(instanceID, uniqueID, figures));
      const recorded = await change(instanceID, async () => outcome, 'heartbeat', uniqueID, outcome.accepted);
      if (outcome.accepted) return { ...recorded, directive: 'ok' };
      const told = directiveOfRefusal(outcome.state);
      if (told) return { ...recorded, directive: told };
      // Anything else (image in Error, instance in Error): the VM must not keep running.
      if (recorded.status === 'Error') return { ...recorded, directive: 'halt' };
      throw ApplicationFailure.nonRetryable(outcome.message, 'HeartbeatRefused');
    },

    /** declareInstanceRunning: Running with the VM's addresses (a refusal changes nothing). */
    async recordRunning(instanceID: number, uniqueID: string, publicIP: string, privateIP: string): Promise<StateChange> {
      return change(instanceID, () => store.running(instanceID, uniqueID, publicIP, privateIP), 'running', uniqueID);
    },

    async recordHalting(instanceID: number, uniqueID: string, load: number): Promise<StateChange> {
      return change(instanceID, () => store.halting(instanceID, uniqueID, load), 'halting', uniqueID);
    },

    /** Operator stop with the seed's per-state rules (Stalled/New -> Halted, else Stopping). */
    async requestStop(instanceID: number): Promise<StateChange> {
      return change(instanceID, () => store.operatorStop(instanceID), 'stop');
    },

    async declareStalled(instanceID: number, lastSeenUpdate: string | null): Promise<StateChange> {
      return change(instanceID, () => store.stalled(instanceID, lastSeenUpdate), 'stalled');
    },

    /** Halted after the VM was stopped at its endpoint (recordDBHalt; Halted -> Halted only refreshes). */
    async recordHalt(instanceID: number): Promise<StateChange> {
      return change(instanceID, () => store.halted(instanceID), 'halted');
    },

    async declareError(instanceID: number, message: string): Promise<StateChange> {
      return change(instanceID, () => store.error(instanceID, message), 'error');
    },

    async instanceSnapshot(instanceID: number): Promise<InstanceSnapshot> {
      return snapshotOf(await landed(() => store.row(instanceID)));
    },

    /**
     * The life cycle's stop (v2): Running -> Stopping with its planned shutdown, a starting instance
     * -> Stalled; Stopping and Stalled stay. Halted and Error are refused (accepted: false).
     */
    async stopRecord(instanceID: number, shutdownAt: string | null): Promise<StateChange> {
      return change(instanceID, () => store.lifecycleStop(instanceID, shutdownAt), 'stop');
    },

    /** Stores the planned shutdown the heartbeat answer carries (null: none planned). */
    async planShutdown(instanceID: number, shutdownAt: string | null): Promise<void> {
      await landed(() => store.planShutdown(instanceID, shutdownAt));
    },

    /** Shows (reason) or clears (null) a stop at the endpoint that keeps failing. */
    async markHaltPending(instanceID: number, reason: string | null): Promise<void> {
      await landed(() => store.markHaltPending(instanceID, reason));
      const log = activityLogger({ instanceID });
      if (reason === null) log.info('halt no longer pending: the endpoint stopped the VM');
      else log.warn({ reason }, 'halt pending: the endpoint keeps refusing to stop the VM');
    },
  };
}

export type DatabaseActivities = ReturnType<typeof createDatabaseActivities>;
