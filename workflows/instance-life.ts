import { ApplicationFailure, log, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { InstanceSnapshot, StateChange } from '../activities/database';
import { figureProblem, heartbeatProblems } from '../entities/heartbeat';
import { isStartingState, isTerminalState, isValidState, refusalState } from '../entities/states';
import {
  type HeartbeatNews,
  type LifecycleInput,
  type LifecycleState,
  VmStatus,
  haltSignal,
  haltingUpdate,
  heartbeatNewsSignal,
  runningUpdate,
  stateQuery,
  stopUpdate,
} from './definitions';

/** The next thing the workflow waits for; `at` is workflow time (ms). */
export interface Deadline {
  kind: 'stall' | 'startup' | 'lifetime' | 'drain';
  at: number;
}

/** What the handlers need from the workflow: the record's activities. */
export interface LifeRecord {
  recordRunning(instanceID: number, uniqueID: string, publicIP: string, privateIP: string): Promise<StateChange>;
  recordHalting(instanceID: number, uniqueID: string, load: number): Promise<StateChange>;
  stopRecord(instanceID: number, shutdownAt: string | null): Promise<StateChange>;
}

/**
 * One instance's life as its workflow sees it: the state, the message handlers and the decisions.
 * Handlers never do I/O for heartbeats (the API has recorded them) and never fail the workflow:
 * what goes wrong in an update is that update's failure, a malformed signal is logged and dropped.
 */
export class InstanceLife {
  readonly s: LifecycleState;
  /** Bumped by every change that may bring a deadline closer or end the watch: the main loop wakes on it. */
  wakes = 0;
  heartbeatsThisRun = 0;

  constructor(
    readonly input: LifecycleInput,
    now: number,
  ) {
    this.s = input.carried ?? {
      instanceID: input.instanceID,
      status: 'New',
      uniqueID: '',
      publicIP: '',
      privateIP: '',
      lastNewsAt: now,
      lastSeenUpdate: null,
      lastHeartbeat: null,
      heartbeats: 0,
      startedAt: now,
      stopRequested: false,
      errorMessage: '',
    };
  }

  get status(): string {
    return this.s.status;
  }

  terminal(): boolean {
    return isTerminalState(this.s.status);
  }

  starting(): boolean {
    return isStartingState(this.s.status);
  }

  /** Adopts the record's view, unless it is older than the one already adopted (reads finish out of order). */
  adopt(change: InstanceSnapshot): void {
    const known = this.s.version ?? -1;
    if (change.version !== undefined && change.version < known) return;
    if (change.version !== undefined) this.s.version = change.version;
    this.s.lastSeenUpdate = change.lastUpdate;
    if (change.errorMessage || change.status === 'Error') this.s.errorMessage = change.errorMessage;
    if (change.status === this.s.status) return;
    this.s.status = change.status;
    upsertSearchAttributes([{ key: VmStatus, value: this.s.status }]);
    // However it was told (operator, lifetime, fleet drain), the drain counts from here.
    if (this.s.status === 'Stopping') this.noteStop(Date.now());
    this.wakes++;
  }

  private noteStop(at: number): void {
    this.s.stopRequested = true;
    this.s.stopRequestedAt ??= at;
  }

  /** When the VM is planned to be shut down: the drain's end once stopping, else the end of its lifetime plus the drain. */
  shutdownAt(): string | null {
    const drain = (this.input.drainDeadlineSeconds ?? 0) * 1000;
    if (this.s.stopRequestedAt !== undefined) return drain ? new Date(this.s.stopRequestedAt + drain).toISOString() : null;
    if (this.input.maxLifetimeSeconds) return new Date(this.s.startedAt + this.input.maxLifetimeSeconds * 1000 + drain).toISOString();
    return null;
  }

  /** The shutdown a stop made at `now` plans: the drain's end (from the first stop), or none. */
  drainEndFrom(now: number): string | null {
    const drain = (this.input.drainDeadlineSeconds ?? 0) * 1000;
    return drain ? new Date((this.s.stopRequestedAt ?? now) + drain).toISOString() : null;
  }

  /** The earliest deadline; a safety hold pushes every deadline to its end. */
  nextDeadline(): Deadline {
    const { s, input } = this;
    const candidates: Deadline[] = [{ kind: 'stall', at: s.lastNewsAt + input.stallingIntervalSeconds * 1000 }];
    if (!s.stopRequested && input.maxStartupSeconds && this.starting()) candidates.push({ kind: 'startup', at: s.startedAt + input.maxStartupSeconds * 1000 });
    if (!s.stopRequested && input.maxLifetimeSeconds) candidates.push({ kind: 'lifetime', at: s.startedAt + input.maxLifetimeSeconds * 1000 });
    if (input.drainDeadlineSeconds && s.status === 'Stopping') candidates.push({ kind: 'drain', at: (s.stopRequestedAt ?? Date.now()) + input.drainDeadlineSeconds * 1000 });
    const held = s.holdUntil ?? 0;
    return candidates.map((c) => (c.at < held ? { ...c, at: held } : c)).reduce((a, b) => (b.at < a.at ? b : a));
  }

  /**
   * A stop asked at `requestedAt` was accepted by the record: the drain counts from then (the plan
   * stored with the stop says so), the deadlines change, and the watch must look again.
   */
  stopAccepted(change: StateChange, requestedAt: number): void {
    this.noteStop(requestedAt);
    this.adopt(change);
    if (change.status === 'Stopping') this.s.plannedShutdown = this.drainEndFrom(requestedAt);
    this.wakes++;
  }

  /** Stops through the record, as an operator would; false when the record refused. */
  async stop(record: LifeRecord): Promise<StateChange> {
    const at = Date.now();
    const outcome = await record.stopRecord(this.s.instanceID, this.drainEndFrom(at));
    if (outcome.accepted) this.stopAccepted(outcome, at);
    else this.adopt(outcome);
    return outcome;
  }

  /** The heartbeat news the API signals after its commit. */
  onHeartbeat(news: HeartbeatNews): void {
    const problem = newsProblem(news);
    if (problem) {
      log.warn('Heartbeat signal dropped', { instanceID: this.s.instanceID, reason: problem });
      return;
    }
    if (news.recorded) {
      this.s.lastNewsAt = Date.now();
      this.s.lastHeartbeat = { ...news.figures, at: this.s.lastNewsAt };
      this.s.heartbeats++;
      this.heartbeatsThisRun++;
    }
    this.adopt({ status: news.status, version: news.version, lastUpdate: news.lastUpdate, errorMessage: '' });
  }

  /** Registers the handlers; `record` runs the few updates that change the record. */
  listen(record: LifeRecord): void {
    const { s } = this;
    setHandler(heartbeatNewsSignal, (news) => {
      try {
        this.onHeartbeat(news);
      } catch (err) {
        log.error('Heartbeat signal could not be applied', { instanceID: s.instanceID, error: String(err) });
      }
    });
    setHandler(haltSignal, (reason) => {
      if (this.terminal() || s.haltRequested) return;
      s.haltRequested = typeof reason === 'string' && reason ? reason.slice(0, 255) : 'halt requested';
      this.wakes++;
    });
    setHandler(stateQuery, () => s);
    setHandler(
      runningUpdate,
      guarded('running', async ({ publicIP, privateIP }) => {
        const outcome = await record.recordRunning(s.instanceID, s.uniqueID, publicIP, privateIP);
        this.adopt(outcome);
        if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Running refused', 'RunningRefused', outcome.state);
        s.publicIP = publicIP;
        s.privateIP = privateIP;
        s.lastNewsAt = Date.now();
        return s.status;
      }),
      {
        validator: (body) => {
          if (typeof body?.publicIP !== 'string' || typeof body?.privateIP !== 'string') throw new Error('publicIP and privateIP must be strings');
          if (!s.uniqueID) throw new Error(`Instance ${s.instanceID} has no VM yet`);
        },
      },
    );
    setHandler(
      haltingUpdate,
      guarded('halting', async ({ load }) => {
        const outcome = await record.recordHalting(s.instanceID, s.uniqueID, load);
        this.adopt(outcome);
        if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Halting refused', 'HaltingRefused', outcome.state);
        this.wakes++;
        return s.status;
      }),
      {
        validator: (body) => {
          const problem = figureProblem('load', body?.load);
          if (problem) throw new Error(problem);
          if (!s.uniqueID) throw new Error(`Instance ${s.instanceID} has no VM yet`);
        },
      },
    );
    setHandler(
      stopUpdate,
      guarded('stop', async () => {
        if (this.terminal()) throw ApplicationFailure.nonRetryable(`Instance ${s.instanceID} is ${s.status}`, 'StopRefused', refusalState(s.status));
        const outcome = await this.stop(record);
        if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Stop refused', 'StopRefused', outcome.state);
        return s.status;
      }),
    );
  }
}

/** An update handler whose every failure is the update's, never the workflow's. */
function guarded<A extends unknown[], R>(name: string, handler: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await handler(...args);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw ApplicationFailure.nonRetryable(`${name} failed: ${(err as Error)?.message ?? String(err)}`, 'HandlerFailed');
    }
  };
}

/** Why a signalled heartbeat cannot be applied, or undefined. */
function newsProblem(news: unknown): string | undefined {
  if (news === null || typeof news !== 'object') return 'not an object';
  const n = news as Partial<HeartbeatNews>;
  const problems = heartbeatProblems(n.figures);
  if (problems.length) return problems.join('; ');
  if (typeof n.recorded !== 'boolean') return 'recorded must be a boolean';
  if (!isValidState('Instance', n.status)) return `unknown status ${String(n.status)}`;
  if (typeof n.version !== 'number' || !Number.isSafeInteger(n.version) || n.version < 0) return 'version must be a non-negative integer';
  if (n.lastUpdate !== null && typeof n.lastUpdate !== 'string') return 'lastUpdate must be a string or null';
  return undefined;
}
