import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { isStopUnderWay } from '../entities/states';
import type { CloudActivities } from '../activities/cloud';
import type { DatabaseActivities } from '../activities/database';
import type { SafetyActivities } from '../activities/safety';
import type { SshActivities } from '../activities/ssh';
import type { CloudInstance } from '../src/drivers/driver';
import { type LifecycleInput, type LifecycleState, type SshContextualization, VmEndpoint, VmImage, VmRunningPod, VmStatus } from './definitions';
import { type Deadline, InstanceLife } from './instance-life';
import { instanceLifecycleV1 } from './lifecycle-v1';

/** Runs begun before this patch replay with v1 to their end; every new run (and every continue-as-new) is v2. */
export const LIFECYCLE_V2_PATCH = 'lifecycle-v2-heartbeat-signals';
export { HEARTBEAT_LOCAL_ACTIVITY_PATCH, SAFETY_PATCH } from './lifecycle-v1';

export const DEFAULT_HEARTBEATS_PER_RUN = 500;
export const DEFAULT_CREATE_ATTEMPTS = 8;
/** Continue as new past this many events even without heartbeats (a long halt-pending loop). */
const MAX_EVENTS_PER_RUN = 3000;
/** The longest pause between two attempts at stopping a VM its endpoint keeps refusing to stop. */
const HALT_RETRY_CAP_MS = 30 * 60_000;
/** A deadline that fired and changed nothing is looked at again no sooner than this (no hot loop). */
const IDLE_DEADLINE_MS = 60_000;

// The database is the record: retried through an outage of any length (a retry adds no history event).
const db = proxyActivities<DatabaseActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: ['UnknownInstance'] },
});

// Safety verdicts read the database: wait through its outage like every other database call.
const safety = proxyActivities<SafetyActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// One round of attempts at stopping a VM; the workflow's own loop retries rounds for as long as it takes.
const cloudStop = proxyActivities<CloudActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 4 },
});

// Failures no retry can fix: no driver for the endpoint, or a request the cloud refuses as invalid.
const CREATE_REFUSED = ['UnknownEndpoint', 'InvalidRequestError'];

/**
 * The life of one VM instance: create it at its endpoint, record it, optionally contextualize it
 * over SSH, then watch it until it halts, is stopped, stalls or reaches a deadline; in every case
 * the VM is stopped at its endpoint and the instance ends Halted or Error. Heartbeats reach it as
 * signals from the API, which has recorded them; state changes are activities through the facade.
 */
export async function instanceLifecycle(input: LifecycleInput): Promise<LifecycleState> {
  if (!patched(LIFECYCLE_V2_PATCH)) return instanceLifecycleV1(input);
  const life = new InstanceLife(input, Date.now());
  life.listen(db);
  const { s } = life;
  if (!input.carried) {
    upsertSearchAttributes([
      { key: VmStatus, value: s.status },
      { key: VmImage, value: input.imageName },
      { key: VmEndpoint, value: input.endpoint },
      { key: VmRunningPod, value: input.runningPod },
    ]);
  }
  const heartbeatsPerRun = input.heartbeatsPerRun ?? DEFAULT_HEARTBEATS_PER_RUN;
  const shouldContinueAsNew = () =>
    life.heartbeatsThisRun >= heartbeatsPerRun || workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_EVENTS_PER_RUN;
  const carryOn = async (): Promise<never> => {
    await condition(allHandlersFinished);
    return continueAsNew<typeof instanceLifecycle>({ ...input, carried: s });
  };

  try {
    if (s.ending === undefined && !s.uniqueID && !life.terminal()) await create(life);
    if (s.ending === undefined && input.contextualization && s.status === 'Submitted' && !s.stopRequested) await contextualize(life, input.contextualization);
    if (s.ending === undefined && (await watch(life, shouldContinueAsNew)) === 'continue') return await carryOn();
    if ((await end(life, shouldContinueAsNew)) === 'continue') return await carryOn();
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (!isCancellation(err)) {
      // A bug or a lost record must not leave a VM running that nothing watches.
      log.error('Life cycle failed; taking the VM down', { instanceID: s.instanceID, error: String(err) });
      s.ending ??= `life cycle failed: ${String(err)}`.slice(0, 255);
    }
    // Cancelled from outside (UI, CLI) or failed: stop the VM, record the end, then let the cancel through.
    await CancellationScope.nonCancellable(async () => {
      s.ending ??= 'cancelled';
      if ((await end(life, () => false)) === 'continue') await carryOn();
    });
    if (isCancellation(err)) throw err;
  }
  await condition(allHandlersFinished);
  return s;
}

/** Creates the VM, bounded, and records it; a stop, halt or cancel meanwhile cleans up by the instance's name. */
async function create(life: InstanceLife): Promise<void> {
  const { s, input } = life;
  const cloud = proxyActivities<CloudActivities>({
    startToCloseTimeout: '5 minutes',
    // A cancelled create is waited for, so that the cleanup by name cannot miss the VM it makes.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '5 seconds',
      backoffCoefficient: 2,
      maximumInterval: '5 minutes',
      maximumAttempts: input.createAttempts ?? DEFAULT_CREATE_ATTEMPTS,
      nonRetryableErrorTypes: CREATE_REFUSED,
    },
  });
  const request = { instanceName: input.instanceName, imageName: input.imageName, runningPod: input.runningPod, userData: input.userData };
  s.createStarted = true;
  const scope = new CancellationScope();
  const creating = scope.run(() => cloud.createInstance(input.endpoint, request, s.instanceID));
  const told = new CancellationScope();
  void told.run(() => condition(() => s.stopRequested || s.haltRequested !== undefined || life.terminal())).then(
    () => scope.cancel(),
    () => undefined,
  );
  let vm: CloudInstance;
  try {
    vm = await creating;
  } catch (err) {
    told.cancel();
    if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
      s.ending = s.haltRequested ?? 'stopped while its VM was being created';
      return;
    }
    if (isCancellation(err)) throw err;
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    const refused = cause instanceof ApplicationFailure && CREATE_REFUSED.includes(cause.type ?? '');
    const why = refused ? `VM creation refused by ${input.endpoint}: ${cause.message}` : `VM creation failed at ${input.endpoint}: ${cause?.message ?? String(err)}`;
    // Refused: nothing was made. Given up: an attempt may have made a VM the workflow never heard of.
    s.ending = why.slice(0, 255);
    s.failure = s.ending;
    if (refused) s.createStarted = false;
    return;
  }
  told.cancel();
  s.uniqueID = vm.uniqueID;
  s.publicIP = vm.publicIP;
  s.privateIP = vm.privateIP;
  const submitted = await db.recordSubmitted(s.instanceID, vm.uniqueID);
  life.adopt(submitted);
  s.lastNewsAt = Date.now();
}

async function contextualize(life: InstanceLife, ctx: SshContextualization): Promise<void> {
  const { s } = life;
  const ssh = proxyActivities<SshActivities>({
    startToCloseTimeout: `${ctx.timeoutSeconds + 30} seconds`,
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['SshAuthFailed'] },
  });
  const target = { host: ctx.host ?? s.publicIP, port: ctx.port ?? 22, timeoutSeconds: ctx.timeoutSeconds };
  life.adopt(await db.declareWaitSshContext(s.instanceID));
  if (s.status !== 'Wait_ssh_context') return;
  try {
    await ssh.waitForSsh(target);
    life.adopt(await db.declareContextualizing(s.instanceID));
    if (life.status !== 'Contextualizing') return;
    await ssh.contextualize({ ...target, username: ctx.username, files: ctx.files, command: ctx.command, hostKeys: ctx.hostKeys, anyHostKey: ctx.anyHostKey });
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    // Retries are spent: the VM cannot be prepared, so it is not worth keeping.
    s.ending = `Contextualization failed: ${err.cause?.message ?? err.message}`.slice(0, 255);
    s.failure = s.ending;
  }
}

/** Stores the planned shutdown when it differs from the one stored (the heartbeat answer reads it). */
async function planShutdown(life: InstanceLife): Promise<void> {
  const wanted = life.shutdownAt();
  if ((life.s.plannedShutdown ?? null) === wanted) return;
  await db.planShutdown(life.s.instanceID, wanted);
  life.s.plannedShutdown = wanted;
}

/**
 * Waits for news and deadlines until the VM must go (`end`) or the run is long enough (`continue`).
 * Heartbeats only move the news time; the stall timer re-arms lazily for the remainder.
 */
async function watch(life: InstanceLife, shouldContinueAsNew: () => boolean): Promise<'end' | 'continue'> {
  const { s } = life;
  const timers = new DeadlineTimers();
  for (;;) {
    if (life.terminal() || s.ending !== undefined) return 'end';
    if (s.haltRequested) {
      s.ending = s.haltRequested;
      return 'end';
    }
    if (s.stopRequested && s.status === 'Stalled') {
      s.ending = 'stopped (Stalled)';
      return 'end';
    }
    if (s.stopRequested && s.status === 'Running') {
      // Stopped while starting, then reported running: the stop still stands.
      await life.stop(db);
      continue;
    }
    await planShutdown(life);
    if (shouldContinueAsNew()) return 'continue';
    const deadline = life.nextDeadline();
    const seen = life.wakes;
    // The wait for news is dropped when the timer wins (no command: it has no timer of its own).
    const waiting = new CancellationScope();
    const woken = await Promise.race([
      waiting.run(() => condition(() => life.wakes !== seen || shouldContinueAsNew())).then(() => true),
      timers.until(deadline.at).then(() => false),
    ]);
    waiting.cancel();
    if (woken) continue;
    const current = life.nextDeadline();
    if (current.kind !== deadline.kind || current.at > Date.now()) continue;
    const before = progressMark(life);
    await onDeadline(life, current);
    if (progressMark(life) === before) {
      // Nothing moved (a refused request): look again later rather than spin on a deadline in the past.
      log.warn('Deadline changed nothing; looking again later', { instanceID: s.instanceID, deadline: current.kind, status: s.status });
      s.holdUntil = Date.now() + IDLE_DEADLINE_MS;
    }
  }
}

/**
 * The watch's timers, never cancelled: a wake that moves the deadline later lets the pending timer
 * fire, and the watch then waits for the remainder. A cancel would add two events to every wake, and
 * a cancel that races the timer's firing strands the run on the time-skipping test server.
 */
class DeadlineTimers {
  private readonly pending = new Map<number, Promise<void>>();

  /** Resolves at `at`, or earlier when an earlier timer is already pending (the caller looks again). */
  until(at: number): Promise<void> {
    const earliest = Math.min(...this.pending.keys());
    if (earliest <= at) return this.pending.get(earliest)!;
    const timer = CancellationScope.nonCancellable(() => sleep(Math.max(at - Date.now(), 1))).then(() => {
      this.pending.delete(at);
    });
    this.pending.set(at, timer);
    return timer;
  }
}

function progressMark(life: InstanceLife): string {
  const { s } = life;
  return `${s.status}|${s.version}|${s.lastNewsAt}|${s.holdUntil}|${s.stopRequested}|${s.ending}`;
}

/** Asks the safety rules before an automatic action; false: held back, every deadline waits for the hold. */
async function allowedBySafety(life: InstanceLife, deadline: Deadline): Promise<boolean> {
  const { s, input } = life;
  const silent = isStopUnderWay(s.status) ? 'halt' : 'stall';
  const action = deadline.kind === 'stall' ? silent : deadline.kind === 'drain' ? 'drain' : 'lifetime';
  const verdict = await safety.safetyVerdict(s.instanceID, input.endpoint, action);
  if (verdict.allow) {
    s.holdUntil = undefined;
    s.heldBecause = undefined;
    return true;
  }
  s.holdUntil = Date.now() + Math.max(verdict.retryInSeconds, 1) * 1000;
  s.heldBecause = verdict.reason;
  log.warn('Automatic action held back by a safety rule', { instanceID: s.instanceID, action, rule: verdict.rule, reason: verdict.reason });
  return false;
}

async function onDeadline(life: InstanceLife, deadline: Deadline): Promise<void> {
  const { s } = life;
  if (!(await allowedBySafety(life, deadline))) return;
  if (deadline.kind === 'drain') {
    // Told to drain long enough ago: the work it still has would not be finished anyway.
    s.ending = 'drain deadline';
    return;
  }
  if (deadline.kind === 'startup' || deadline.kind === 'lifetime') {
    // Too long to start, or lived long enough: stop it the way an operator would.
    await life.stop(db);
    log.info(`${deadline.kind} deadline: stopping`, { instanceID: s.instanceID, status: s.status });
    return;
  }
  if (isStopUnderWay(s.status)) {
    // Told to stop (or already Stalled) and silent since: take it down at the endpoint.
    s.ending = `silent for ${life.input.stallingIntervalSeconds} s while ${s.status}`;
    return;
  }
  const outcome = await db.declareStalled(s.instanceID, s.lastSeenUpdate);
  life.adopt(outcome);
  if (outcome.accepted) s.ending = `silent for ${life.input.stallingIntervalSeconds} s (Stalled)`;
  else if (outcome.lastUpdate !== null) s.lastNewsAt = Date.now(); // the record heard from it meanwhile (a missed signal)
}

/**
 * Takes the VM down at its endpoint (retried for as long as it takes, shown as halt pending) and
 * records the end: Halted, or Error when the life cycle failed before the VM could run.
 */
async function end(life: InstanceLife, shouldContinueAsNew: () => boolean): Promise<'done' | 'continue'> {
  const { s, input } = life;
  s.ending ??= life.terminal() ? s.status : 'ended';
  let round = s.haltPending?.attempts ?? 0;
  for (;;) {
    try {
      if (s.uniqueID) await cloudStop.stopInstance(input.endpoint, s.uniqueID);
      else if (s.createStarted) await cloudStop.stopInstanceByName(input.endpoint, input.instanceName);
      break;
    } catch (err) {
      if (isCancellation(err)) throw err;
      round++;
      const reason = (err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err)).slice(0, 255);
      const first = s.haltPending === undefined;
      s.haltPending = { since: s.haltPending?.since ?? Date.now(), attempts: round, reason };
      if (first) await db.markHaltPending(s.instanceID, reason);
      log.warn('Halt pending: the endpoint did not stop the VM; trying again', { instanceID: s.instanceID, attempts: round, reason });
      await sleep(Math.min(HALT_RETRY_CAP_MS, 60_000 * 2 ** Math.min(round - 1, 10)));
      if (shouldContinueAsNew()) return 'continue';
    }
  }
  try {
    if (s.haltPending) {
      await db.markHaltPending(s.instanceID, null);
      s.haltPending = undefined;
    }
    await record(life);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // The VM is stopped; a record that cannot be written (its row is gone) must not fail the workflow.
    log.error('The end of the instance could not be recorded', { instanceID: s.instanceID, error: String(err) });
  }
  return 'done';
}

/** Records the end of an instance whose VM is stopped (or was never made), within the transition table. */
async function record(life: InstanceLife): Promise<void> {
  const { s } = life;
  life.adopt(await db.instanceSnapshot(s.instanceID));
  if (life.terminal()) return;
  if (s.failure) {
    life.adopt(await db.declareError(s.instanceID, s.failure));
    return;
  }
  // Halted is reachable from New, Running, Stopping and Stalled; a VM still starting passes through Stalled.
  if (life.starting() && s.status !== 'New') life.adopt(await db.stopRecord(s.instanceID, null));
  life.adopt(await db.recordHalt(s.instanceID));
}
