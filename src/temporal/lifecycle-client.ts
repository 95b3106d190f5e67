import { ApplicationFailure, type Client, WorkflowUpdateFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { heartbeatProblems, type HeartbeatFigures } from '../../entities/heartbeat';
import { type Directive, type HeartbeatReply, haltingUpdate, runningUpdate, lifecycleWorkflowId, stateQuery, stopUpdate, type LifecycleState } from '../../workflows/definitions';
import { HeartbeatPath } from './heartbeat-path';
import type { HeartbeatRefusalCode } from '../db/heartbeat-record';
import type { HeartbeatMark } from '../db/instance-life';
import { type Result, S_ERROR, S_OK } from '../db/result';
import type { VirtualMachineDB } from '../db/vmdb';

/**
 * How the API, the agent's endpoint and the CLI talk to instance workflows:
 * UniqueID -> InstanceID (database) -> workflow id `vm-<InstanceID>`. Answers
 * use the library's result convention, so a caller never handles raw Temporal errors.
 */
/** Figures no workflow would accept, refused before any call. */
function malformedHeartbeat(figures: HeartbeatFigures) {
  const problems = heartbeatProblems(figures);
  return problems.length ? S_ERROR(`Malformed heartbeat: ${problems.join('; ')}`) : undefined;
}

/** Below vmdb-agent's own request timeout (30 s), so that the agent hears why. */
export const DEFAULT_VM_CALL_TIMEOUT_MS = 20_000;

export class LifecycleClient {
  /** How long a VM's call (heartbeat, running, halting) waits for its workflow's answer. */
  readonly vmCallTimeoutMs: number;

  /** The heartbeat path: recorded in the database, then signalled to the workflow. */
  readonly heartbeats: HeartbeatPath;

  constructor(
    private readonly client: Client,
    private readonly db: VirtualMachineDB,
    options: { vmCallTimeoutMs?: number; signalTimeoutMs?: number } = {},
  ) {
    this.vmCallTimeoutMs = options.vmCallTimeoutMs ?? DEFAULT_VM_CALL_TIMEOUT_MS;
    this.heartbeats = new HeartbeatPath(db, client, options.signalTimeoutMs);
  }

  /**
   * A VM's update, given up after vmCallTimeoutMs (no worker, an overloaded one): the caller gets
   * "unavailable" while its VM's own request has not timed out yet, and retries. An update Temporal
   * had already admitted may still be recorded when a worker takes it: at least once, never lost.
   */
  private async vmCall<T>(call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.vmCallTimeoutMs;
    try {
      return await this.client.withDeadline(deadline, call);
    } catch (err) {
      // Past the deadline gRPC says DEADLINE_EXCEEDED, or "Call cancelled" for an update poll it cut short.
      if (Date.now() >= deadline && !(err instanceof WorkflowUpdateFailedError) && !(err instanceof WorkflowNotFoundError)) {
        throw new Error(`Deadline exceeded: no answer from the workflow within ${this.vmCallTimeoutMs} ms`);
      }
      throw err;
    }
  }

  private async handleFor(uniqueID: string) {
    const id = await this.db.getInstanceID(uniqueID);
    if (!id.OK) return id;
    return S_OK({ instanceID: id.Value, handle: this.client.workflow.getHandle(lifecycleWorkflowId(id.Value)) });
  }

  /**
   * Records a heartbeat (v2: in the database, then signalled to the workflow) and returns the VM's
   * directive. `mark` (the agent's boot id and sequence) makes a retried heartbeat count once.
   */
  async heartbeat(uniqueID: string, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<Directive>> {
    const reply = await this.heartbeatWithNotice(uniqueID, figures, mark);
    return reply.OK ? S_OK(reply.Value.directive) : reply;
  }

  /** `heartbeat`, answered with the planned shutdown time too (when the instance has one). */
  async heartbeatWithNotice(uniqueID: string, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<HeartbeatReply>> {
    const malformed = malformedHeartbeat(figures);
    if (malformed) return malformed;
    const id = await this.db.getInstanceID(uniqueID);
    if (!id.OK) return id;
    return this.heartbeatOf(id.Value, figures, mark);
  }

  /** `heartbeatWithNotice` by InstanceID, for callers that already know it (the API, from the VM's token). */
  async heartbeatOf(instanceID: number, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<HeartbeatReply> & { code?: HeartbeatRefusalCode }> {
    const malformed = malformedHeartbeat(figures);
    if (malformed) return malformed;
    const answer = await this.heartbeats.beat(instanceID, figures, mark);
    if (!answer.OK) return answer;
    const { recorded: _recorded, ...reply } = answer.Value;
    return S_OK(reply);
  }

  /** The VM reports it is up (declareInstanceRunning through its workflow); answers the recorded status. */
  async running(uniqueID: string, publicIP: string, privateIP = ''): Promise<Result<string>> {
    const target = await this.handleFor(uniqueID);
    if (!target.OK) return target;
    const stripped = publicIP.startsWith('::ffff:') ? publicIP.slice('::ffff:'.length) : publicIP;
    return this.attempt(uniqueID, () => this.vmCall(() => target.Value.handle.executeUpdate(runningUpdate, { args: [{ publicIP: stripped, privateIP }] })));
  }

  /** The VM announces it is halting; answers the recorded status. */
  async halting(uniqueID: string, load: number): Promise<Result<string>> {
    const target = await this.handleFor(uniqueID);
    if (!target.OK) return target;
    return this.attempt(uniqueID, () => this.vmCall(() => target.Value.handle.executeUpdate(haltingUpdate, { args: [{ load }] })));
  }

  /** Operator stop by InstanceID; answers the resulting status (Stopping or Halted). */
  async stop(instanceID: number): Promise<Result<string>> {
    return this.attempt(`InstanceID ${instanceID}`, () =>
      this.client.workflow.getHandle(lifecycleWorkflowId(instanceID)).executeUpdate(stopUpdate),
    );
  }

  async state(instanceID: number): Promise<Result<LifecycleState>> {
    return this.attempt(`InstanceID ${instanceID}`, () => this.client.workflow.getHandle(lifecycleWorkflowId(instanceID)).query(stateQuery));
  }

  private async attempt<T>(who: string, call: () => Promise<T>): Promise<Result<T>> {
    try {
      return S_OK(await call());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return S_ERROR(`No running life cycle for ${who}: the instance has finished or never started`);
      if (err instanceof WorkflowUpdateFailedError) {
        // A refused transition carries its State (stop/halt/current) as the failure's first detail.
        const state = err.cause instanceof ApplicationFailure ? err.cause.details?.[0] : undefined;
        return S_ERROR(err.cause?.message ?? err.message, typeof state === 'string' ? state : undefined);
      }
      const message = (err as Error).message ?? String(err);
      if (/already completed|workflow execution already completed/i.test(message)) {
        return S_ERROR(`No running life cycle for ${who}: the instance has finished`);
      }
      return S_ERROR(message);
    }
  }
}
