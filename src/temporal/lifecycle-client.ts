import { status as GrpcStatus } from '@grpc/grpc-js';
import { ApplicationFailure, type Client, WorkflowUpdateFailedError, WorkflowNotFoundError, isGrpcServiceError } from '@temporalio/client';
import { heartbeatProblems, type HeartbeatFigures } from '../../entities/heartbeat';
import { type HeartbeatReply, haltingUpdate, runningUpdate, lifecycleWorkflowId, stateQuery, stopUpdate, type LifecycleState } from '../../workflows/definitions';
import { HeartbeatPath } from './heartbeat-path';
import type { HeartbeatMark } from '../db/instance-life';
import { type Failure, type Result, S_ERROR, S_OK } from '../db/result';
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
   * Records a heartbeat by InstanceID (the API knows it from the VM's token): in the database, then
   * signalled to the workflow; answers the directive and the planned shutdown. `mark` (the agent's
   * boot id and sequence) makes a retried heartbeat count once.
   */
  async heartbeatOf(instanceID: number, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<HeartbeatReply>> {
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
      if (err instanceof WorkflowNotFoundError || grpcCode(err) === GrpcStatus.NOT_FOUND) {
        return S_ERROR(`No running life cycle for ${who}: the instance has finished or never started`, undefined, 'no_lifecycle');
      }
      if (err instanceof WorkflowUpdateFailedError) return refusalOf(err);
      // Every call here is well formed: what fails besides the workflow's own answer is Temporal.
      return S_ERROR((err as Error)?.message ?? String(err), undefined, 'temporal_unavailable');
    }
  }
}

/** The workflow's failure types that refuse a request (workflows/instance-life.ts); their first detail is the State. */
const REFUSAL_TYPES = new Set(['RunningRefused', 'HaltingRefused', 'StopRefused']);

/** An update the workflow refused, as the facade would word it: a refusal with its State, or bad input. */
function refusalOf(err: WorkflowUpdateFailedError): Failure {
  const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
  const state = cause?.details?.[0];
  const message = err.cause?.message ?? err.message;
  if (cause && REFUSAL_TYPES.has(cause.type ?? '') && typeof state === 'string') return S_ERROR(message, state, 'refused');
  return S_ERROR(message);
}

/** The gRPC status of a Temporal call that failed, wherever in the chain of causes it is. */
function grpcCode(err: unknown): number | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isGrpcServiceError(e)) return e.code;
  }
  return undefined;
}
