import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineSignal,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CloudActivities } from '../activities/cloud';
import type { CloudInstance } from '../src/drivers/driver';
import type { DatabaseActivities, InstanceSnapshot } from '../activities/database';
import type { SafetyActivities } from '../activities/safety';
import type { SshActivities } from '../activities/ssh';
import { type HeartbeatFigures, figureProblem, heartbeatProblems } from '../entities/heartbeat';
import {
  type Directive,
  type HeartbeatReply,
  type LifecycleInput,
  type LifecycleState,
  type SshContextualization,
  VmEndpoint,
  VmImage,
  VmRunningPod,
  VmStatus,
  haltSignal,
  haltingUpdate,
  runningUpdate,
  heartbeatUpdate,
  stateQuery,
  stopUpdate,
} from './definitions';

/** A heartbeat for the workflow to record: nothing sends it since v2; v1 runs still listen for it. */
const heartbeatSignal = defineSignal<[HeartbeatFigures]>('heartbeatSignal');

// The database is the record: keep retrying through an outage rather than lose a state change.
const db = proxyActivities<DatabaseActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: ['UnknownInstance', 'HeartbeatRefused'] },
});

// A heartbeat's write is one short transaction: as a local activity it runs inside the workflow task
// that accepted the update, which saves the activity task's round trips and about half the events.
// Past a few seconds of retrying (database down) the SDK backs off on a durable timer instead.
const dbLocal = proxyLocalActivities<DatabaseActivities>({
  startToCloseTimeout: '10 seconds',
  localRetryThreshold: '5 seconds',
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: ['UnknownInstance', 'HeartbeatRefused'] },
});

/** The patch id that switched heartbeat writes to a local activity; runs recorded before it replay as they were. */
export const HEARTBEAT_LOCAL_ACTIVITY_PATCH = 'heartbeat-local-activity';

// Failures no retry can fix: no driver for the endpoint, or a request the cloud refuses as invalid
// (a wrong AMI, oversized user data). The instance goes to Error instead of holding its slot.
const CREATE_REFUSED = ['UnknownEndpoint', 'InvalidRequestError'];

const cloud = proxyActivities<CloudActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', nonRetryableErrorTypes: CREATE_REFUSED },
});

// Safety verdicts read the database: wait through its outage like every other database call.
const safety = proxyActivities<SafetyActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** patched() id of the safety checks before automatic stall/halt/stop actions (older histories have none). */
export const SAFETY_PATCH = 'fleet-safety-verdict';

export const DEFAULT_HEARTBEATS_PER_RUN = 500;
const TERMINAL = new Set(['Halted', 'Error']);
// States in which the VM has not reached Running yet (the startup deadline applies).
const STARTING = new Set(['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing']);

type Deadline = { kind: 'stall' | 'startup' | 'lifetime' | 'drain'; at: number };

/**
 * The life cycle as it was before v2 (heartbeats as updates recorded by the workflow). Frozen:
 * runs whose history began here replay and finish with it; every new run takes v2
 * (instanceLifecycle.ts). Change nothing here but what keeps it compiling.
 */
export async function instanceLifecycleV1(input: LifecycleInput): Promise<LifecycleState> {
  const startedAt = Date.now();
  const s: LifecycleState = input.carried ?? {
    instanceID: input.instanceID,
    status: 'New',
    uniqueID: '',
    publicIP: '',
    privateIP: '',
    lastNewsAt: startedAt,
    lastSeenUpdate: null,
    lastHeartbeat: null,
    heartbeats: 0,
    startedAt,
    stopRequested: false,
    errorMessage: '',
  };
  const heartbeatsPerRun = input.heartbeatsPerRun ?? DEFAULT_HEARTBEATS_PER_RUN;
  let heartbeatsThisRun = 0;

  // A function, not a property read: TypeScript would otherwise keep narrowing s.status across awaits.
  const status = (): string => s.status;
  const terminal = () => TERMINAL.has(status());
  const shouldContinueAsNew = () => heartbeatsThisRun >= heartbeatsPerRun || workflowInfo().continueAsNewSuggested;

  /** Adopts the database's view after an activity; search attributes change only with the status. */
  function track(change: InstanceSnapshot): void {
    s.lastSeenUpdate = change.lastUpdate;
    s.errorMessage = change.errorMessage;
    if (change.status !== s.status) {
      s.status = change.status;
      upsertSearchAttributes([{ key: VmStatus, value: s.status }]);
    }
    // However it was told (operator, lifetime, Director drain), the drain deadline counts from here.
    if (s.status === 'Stopping') s.stopRequestedAt ??= Date.now();
  }

  /** When the VM is planned to be shut down: the drain deadline once stopping, else the end of its lifetime (plus the drain). */
  function shutdownAt(): string | undefined {
    const drain = (input.drainDeadlineSeconds ?? 0) * 1000;
    if (s.stopRequestedAt !== undefined) return drain ? new Date(s.stopRequestedAt + drain).toISOString() : undefined;
    if (input.maxLifetimeSeconds) return new Date(s.startedAt + input.maxLifetimeSeconds * 1000 + drain).toISOString();
    return undefined;
  }

  function reply(directive: Directive): HeartbeatReply {
    const at = shutdownAt();
    return at ? { directive, shutdownAt: at } : { directive };
  }

  async function recordHeartbeat(figures: HeartbeatFigures): Promise<Directive> {
    const record = patched(HEARTBEAT_LOCAL_ACTIVITY_PATCH) ? dbLocal.recordHeartbeat : db.recordHeartbeat;
    const outcome = await record(s.instanceID, s.uniqueID, figures);
    track(outcome);
    if (outcome.directive === 'ok') {
      s.lastNewsAt = Date.now();
      s.lastHeartbeat = { ...figures, at: s.lastNewsAt };
      s.heartbeats++;
      heartbeatsThisRun++;
    }
    return outcome.directive;
  }

  function refuseMalformed(figures: HeartbeatFigures): void {
    const problems = heartbeatProblems(figures);
    if (problems.length) throw new Error(`Malformed heartbeat: ${problems.join('; ')}`);
    if (!s.uniqueID) throw new Error(`Instance ${s.instanceID} has no VM yet`);
  }

  setHandler(heartbeatUpdate, async (figures) => reply(await recordHeartbeat(figures)), { validator: refuseMalformed });
  setHandler(heartbeatSignal, async (figures) => {
    try {
      refuseMalformed(figures);
    } catch (err) {
      log.warn('Heartbeat signal dropped', { instanceID: s.instanceID, reason: (err as Error).message });
      return;
    }
    await recordHeartbeat(figures);
  });
  setHandler(
    runningUpdate,
    async ({ publicIP, privateIP }) => {
      const outcome = await db.recordRunning(s.instanceID, s.uniqueID, publicIP, privateIP);
      track(outcome);
      if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Running refused', 'RunningRefused', outcome.state);
      s.publicIP = publicIP;
      s.privateIP = privateIP;
      s.lastNewsAt = Date.now();
      return s.status;
    },
    {
      validator: (body) => {
        if (typeof body?.publicIP !== 'string' || typeof body?.privateIP !== 'string') throw new Error('publicIP and privateIP must be strings');
        if (!s.uniqueID) throw new Error(`Instance ${s.instanceID} has no VM yet`);
      },
    },
  );
  setHandler(
    haltingUpdate,
    async ({ load }) => {
      const outcome = await db.recordHalting(s.instanceID, s.uniqueID, load);
      track(outcome);
      if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Halting refused', 'HaltingRefused', outcome.state);
      return s.status;
    },
    {
      validator: (body) => {
        const problem = figureProblem('load', body?.load);
        if (problem) throw new Error(problem);
        if (!s.uniqueID) throw new Error(`Instance ${s.instanceID} has no VM yet`);
      },
    },
  );
  setHandler(stopUpdate, async () => {
    s.stopRequested = true;
    s.stopRequestedAt ??= Date.now();
    const outcome = await db.requestStop(s.instanceID);
    track(outcome);
    if (!outcome.accepted) throw ApplicationFailure.nonRetryable(outcome.message ?? 'Stop refused', 'StopRefused', outcome.state);
    return s.status;
  });
  setHandler(haltSignal, (reason) => {
    if (!terminal()) s.haltRequested = reason || 'halt requested';
  });
  setHandler(stateQuery, () => s);

  if (!input.carried) {
    upsertSearchAttributes([
      { key: VmStatus, value: s.status },
      { key: VmImage, value: input.imageName },
      { key: VmEndpoint, value: input.endpoint },
      { key: VmRunningPod, value: input.runningPod },
    ]);
  }

  /** Stops the VM at its endpoint and records Halted (unless it ended in Error, which stays). */
  async function haltAtCloud(): Promise<void> {
    if (s.uniqueID) await cloud.stopInstance(input.endpoint, s.uniqueID);
    if (s.status !== 'Halted' && s.status !== 'Error') track(await db.recordHalt(s.instanceID));
  }

  async function contextualize(ctx: SshContextualization): Promise<void> {
    const ssh = proxyActivities<SshActivities>({
      startToCloseTimeout: `${ctx.timeoutSeconds + 30} seconds`,
      heartbeatTimeout: '30 seconds',
      retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['SshAuthFailed'] },
    });
    const target = { host: ctx.host ?? s.publicIP, port: ctx.port ?? 22, timeoutSeconds: ctx.timeoutSeconds };
    track(await db.declareWaitSshContext(s.instanceID));
    if (status() !== 'Wait_ssh_context') return;
    try {
      await ssh.waitForSsh(target);
      track(await db.declareContextualizing(s.instanceID));
      if (status() !== 'Contextualizing') return;
      await ssh.contextualize({ ...target, username: ctx.username, files: ctx.files, command: ctx.command });
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      // Retries are spent: the VM cannot be prepared, so it is not worth keeping.
      track(await db.declareError(s.instanceID, `Contextualization failed: ${err.cause?.message ?? err.message}`));
    }
  }

  /**
   * The VM, created at its endpoint; undefined when the endpoint refused the request for good: the
   * instance is then in Error with the reason (nothing was created, so nothing is left to stop).
   */
  async function createAtEndpoint(): Promise<CloudInstance | undefined> {
    const request = { instanceName: input.instanceName, imageName: input.imageName, runningPod: input.runningPod, userData: input.userData };
    try {
      return await cloud.createInstance(input.endpoint, request, s.instanceID);
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (!(cause instanceof ApplicationFailure) || !CREATE_REFUSED.includes(cause.type ?? '')) throw err;
      track(await db.declareError(s.instanceID, `VM creation refused by ${input.endpoint}: ${cause.message}`));
      return undefined;
    }
  }

  function nextDeadline(): Deadline {
    const candidates: Deadline[] = [{ kind: 'stall', at: s.lastNewsAt + input.stallingIntervalSeconds * 1000 }];
    if (input.maxStartupSeconds && STARTING.has(s.status)) candidates.push({ kind: 'startup', at: s.startedAt + input.maxStartupSeconds * 1000 });
    if (input.maxLifetimeSeconds && !s.stopRequested) candidates.push({ kind: 'lifetime', at: s.startedAt + input.maxLifetimeSeconds * 1000 });
    if (input.drainDeadlineSeconds && s.status === 'Stopping' && s.stopRequestedAt !== undefined) {
      candidates.push({ kind: 'drain', at: s.stopRequestedAt + input.drainDeadlineSeconds * 1000 });
    }
    const held = s.holdUntil ?? 0;
    return candidates.map((c) => (c.at < held ? { ...c, at: held } : c)).reduce((a, b) => (b.at < a.at ? b : a));
  }

  /** Asks the safety rules (manual control, outage, mass silence, halt cap) before an automatic action; false: held back for now. */
  async function allowedBySafety(deadline: Deadline): Promise<boolean> {
    if (!patched(SAFETY_PATCH)) return true;
    const silent = s.status === 'Stopping' || s.status === 'Stalled' ? 'halt' : 'stall';
    const action = deadline.kind === 'stall' ? silent : deadline.kind === 'drain' ? 'drain' : 'lifetime';
    const verdict = await safety.safetyVerdict(s.instanceID, input.endpoint, action);
    if (verdict.allow) {
      s.holdUntil = undefined;
      s.heldBecause = undefined;
      return true;
    }
    s.holdUntil = Date.now() + verdict.retryInSeconds * 1000;
    s.heldBecause = verdict.reason;
    log.warn('Automatic action held back by a safety rule', { instanceID: s.instanceID, action, rule: verdict.rule, reason: verdict.reason, retryInSeconds: verdict.retryInSeconds });
    return false;
  }

  /** A requested halt: adopt what was recorded meanwhile, stop the VM, record Halted (Error when it never ran). */
  async function haltNow(): Promise<void> {
    const reason = s.haltRequested;
    s.haltRequested = undefined;
    track(await db.instanceSnapshot(s.instanceID));
    if (terminal()) return;
    log.warn('Halting on request', { instanceID: s.instanceID, reason });
    if (s.uniqueID) await cloud.stopInstance(input.endpoint, s.uniqueID);
    // Halted is reachable from New, Running, Stopping and Stalled; a VM still starting ends in Error.
    if (STARTING.has(s.status) && s.status !== 'New') track(await db.declareError(s.instanceID, `Halted before it ran: ${reason}`));
    else track(await db.recordHalt(s.instanceID));
  }

  async function onDeadline(deadline: Deadline): Promise<void> {
    if (!(await allowedBySafety(deadline))) return;
    if (deadline.kind === 'drain') {
      // Told to drain long enough ago: the work it still has would not be finished anyway.
      await haltAtCloud();
      return;
    }
    if (deadline.kind !== 'stall') {
      // Too long to start, or lived long enough: stop it the way an operator would.
      s.stopRequested = true;
      s.stopRequestedAt ??= Date.now();
      track(await db.requestStop(s.instanceID));
      return;
    }
    if (s.status === 'Stopping' || s.status === 'Stalled') {
      // Told to stop (or already Stalled) and silent since: take it down at the endpoint.
      await haltAtCloud();
      return;
    }
    const outcome = await db.declareStalled(s.instanceID, s.lastSeenUpdate);
    track(outcome);
    if (outcome.accepted) await haltAtCloud();
    else if (outcome.lastUpdate !== null) s.lastNewsAt = Date.now(); // the database heard from it meanwhile
  }

  try {
    if (!s.uniqueID && !terminal()) {
      const vm = await createAtEndpoint();
      if (vm) {
        s.uniqueID = vm.uniqueID;
        s.publicIP = vm.publicIP;
        s.privateIP = vm.privateIP;
        const submitted = await db.recordSubmitted(s.instanceID, vm.uniqueID);
        track(submitted);
        // Refused: stopped by an operator while the VM was being created.
        if (!submitted.accepted && !terminal()) track(await db.requestStop(s.instanceID));
        s.lastNewsAt = Date.now();
      }
    }
    if (input.contextualization && s.status === 'Submitted') await contextualize(input.contextualization);

    while (!terminal()) {
      if (shouldContinueAsNew()) {
        await condition(allHandlersFinished);
        return await continueAsNew<typeof instanceLifecycleV1>({ ...input, carried: s });
      }
      if (s.haltRequested) {
        await haltNow();
        continue;
      }
      const deadline = nextDeadline();
      // Heartbeats only move lastNewsAt; the timer re-arms lazily for the remainder (one timer per interval, not per beat).
      const woken = await condition(() => terminal() || shouldContinueAsNew() || s.haltRequested !== undefined, Math.max(deadline.at - Date.now(), 1));
      if (woken) continue;
      const current = nextDeadline();
      if (current.kind === deadline.kind && current.at <= Date.now()) await onDeadline(current);
    }
    await haltAtCloud();
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled from outside (UI, CLI): do not leave a VM running that nothing watches.
      await CancellationScope.nonCancellable(async () => {
        if (!terminal()) track(await db.requestStop(s.instanceID));
        await haltAtCloud();
      });
    }
    throw err;
  }
  await condition(allHandlersFinished);
  return s;
}
