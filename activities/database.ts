import { ApplicationFailure } from '@temporalio/common';
import type { HeartbeatFigures } from '../entities/heartbeat';
import { activityLogger } from '../src/ops/log';
import { type Failure, type Result, isDatabaseError } from '../src/db/result';
import type { VirtualMachineDB } from '../src/db/vmdb';
import type { Directive } from '../workflows/definitions';

/** Where an instance stands in the database after an activity. */
export interface InstanceSnapshot {
  status: string;
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

/** A failed database (not a refused request) is worth retrying; everything else is a final answer. */
function retryIfDatabaseDown<T extends Result<unknown>>(result: T): T {
  if (isDatabaseError(result)) throw ApplicationFailure.retryable((result as Failure).Message, 'DatabaseError');
  return result;
}

/**
 * Activities over the VirtualMachineDB facade: every state change goes
 * through it, so the transition table is enforced in one place. Each one is
 * safe to retry: a repeated transition to the current state only refreshes LastUpdate.
 */
export function createDatabaseActivities(db: VirtualMachineDB) {
  async function snapshot(instanceID: number): Promise<InstanceSnapshot> {
    const read = retryIfDatabaseDown(await db.getInstanceLife(instanceID));
    if (!read.OK) throw ApplicationFailure.nonRetryable(read.Message, 'UnknownInstance');
    const { status, lastUpdate, errorMessage, version } = read.Value;
    return { status, lastUpdate, errorMessage, version };
  }

  /** A bookkeeping write that must land: retried through an outage like every other. */
  function landed(result: Result<unknown>): void {
    retryIfDatabaseDown(result);
    if (!result.OK) throw ApplicationFailure.nonRetryable(result.Message, 'UnknownInstance');
  }

  /**
   * The outcome of a state change, logged for the instance: `what` names the request. Heartbeats
   * (`quiet`) log at debug: they are the steady state, and many.
   */
  async function change(instanceID: number, result: Result<unknown>, what: string, uniqueID?: string, quiet = false): Promise<StateChange> {
    retryIfDatabaseDown(result);
    const now = await snapshot(instanceID);
    const log = activityLogger({ instanceID, uniqueID });
    const inError = now.status === 'Error';
    const fields = { status: now.status, ...(inError ? { errorMessage: now.errorMessage } : {}) };
    if (result.OK) {
      log[inError ? 'warn' : quiet ? 'debug' : 'info'](fields, `${what}: ${now.status}`);
      return { ...now, accepted: true };
    }
    log[inError ? 'warn' : 'info']({ ...fields, refusal: result.Message, state: result.State }, `${what} refused`);
    return { ...now, accepted: false, message: result.Message, state: result.State };
  }

  return {
    /** Records the cloud's id for the VM and moves New -> Submitted; a retry after success is accepted. */
    async recordSubmitted(instanceID: number, uniqueID: string): Promise<StateChange> {
      const current = await snapshot(instanceID);
      const known = retryIfDatabaseDown(await db.getUniqueID(instanceID));
      if (known.OK && known.Value === uniqueID && current.status !== 'New') {
        return { ...current, accepted: current.status === 'Submitted' };
      }
      const set = retryIfDatabaseDown(await db.setInstanceUniqueID(instanceID, uniqueID));
      if (!set.OK) return { ...current, accepted: false, message: set.Message };
      return change(instanceID, await db.declareInstanceSubmitted(uniqueID), 'submitted', uniqueID);
    },

    async declareWaitSshContext(instanceID: number): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceWaitSshContext(instanceID), 'waiting for SSH');
    },

    async declareContextualizing(instanceID: number): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceContextualizing(instanceID), 'contextualizing');
    },

    /** The heartbeat's history row and figures are committed before the directive is returned. */
    async recordHeartbeat(instanceID: number, uniqueID: string, figures: HeartbeatFigures): Promise<StateChange & { directive: Directive }> {
      const result = retryIfDatabaseDown(
        await db.instanceIDHeartBeat(uniqueID, figures.load, figures.jobs, figures.transferredFiles, figures.transferredBytes, figures.uptime),
      );
      const outcome = await change(instanceID, result, 'heartbeat', uniqueID, result.OK);
      if (result.OK) return { ...outcome, directive: 'ok' };
      if (result.State === 'stop' || result.State === 'halt') return { ...outcome, directive: result.State };
      // Anything else (image in Error, instance in Error): the VM must not keep running.
      if (outcome.status === 'Error') return { ...outcome, directive: 'halt' };
      throw ApplicationFailure.nonRetryable(result.Message, 'HeartbeatRefused');
    },

    /** declareInstanceRunning: Running with the VM's addresses (a refusal changes nothing). */
    async recordRunning(instanceID: number, uniqueID: string, publicIP: string, privateIP: string): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceRunning(uniqueID, publicIP, privateIP), 'running', uniqueID);
    },

    async recordHalting(instanceID: number, uniqueID: string, load: number): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceHalting(uniqueID, load), 'halting', uniqueID);
    },

    /** Operator stop with the seed's per-state rules (Stalled/New -> Halted, else Stopping). */
    async requestStop(instanceID: number): Promise<StateChange> {
      const result = await db.declareInstancesStopping([instanceID]);
      const own = result.OK ? result.Value[instanceID] : ((result as { Value?: Record<string, Result<string>> }).Value?.[instanceID] ?? result);
      return change(instanceID, own, 'stop');
    },

    async declareStalled(instanceID: number, lastSeenUpdate: string | null): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceStalled(instanceID, lastSeenUpdate ?? undefined), 'stalled');
    },

    /** Halted after the VM was stopped at its endpoint (recordDBHalt; Halted -> Halted only refreshes). */
    async recordHalt(instanceID: number): Promise<StateChange> {
      return change(instanceID, await db.recordDBHalt(instanceID, 0), 'halted');
    },

    async declareError(instanceID: number, message: string): Promise<StateChange> {
      return change(instanceID, await db.declareInstanceError(instanceID, message.slice(0, 255)), 'error');
    },

    async instanceSnapshot(instanceID: number): Promise<InstanceSnapshot> {
      return snapshot(instanceID);
    },

    /**
     * The life cycle's stop (v2): Running -> Stopping with its planned shutdown, a starting instance
     * -> Stalled; Stopping and Stalled stay. Halted and Error are refused (accepted: false).
     */
    async stopRecord(instanceID: number, shutdownAt: string | null): Promise<StateChange> {
      return change(instanceID, await db.requestInstanceStop(instanceID, shutdownAt), 'stop');
    },

    /** Stores the planned shutdown the heartbeat answer carries (null: none planned). */
    async planShutdown(instanceID: number, shutdownAt: string | null): Promise<void> {
      landed(await db.planInstanceShutdown(instanceID, shutdownAt));
    },

    /** Shows (reason) or clears (null) a stop at the endpoint that keeps failing. */
    async markHaltPending(instanceID: number, reason: string | null): Promise<void> {
      landed(await db.setInstanceHaltPending(instanceID, reason));
      const log = activityLogger({ instanceID });
      if (reason === null) log.info('halt no longer pending: the endpoint stopped the VM');
      else log.warn({ reason }, 'halt pending: the endpoint keeps refusing to stop the VM');
    },
  };
}

export type DatabaseActivities = ReturnType<typeof createDatabaseActivities>;
