/**
 * The state machine of images and instances: the single source of truth.
 * Pure data and functions, no I/O, so the database facade and the Temporal
 * workflows can both import it.
 */

export const IMAGE_STATES = ['New', 'Validated', 'Error'] as const;
export type ImageStatus = (typeof IMAGE_STATES)[number];

// The seed's validInstanceStates omits Wait_ssh_context and Contextualizing,
// yet its own life-cycle text uses them; the spec makes both valid.
export const INSTANCE_STATES = [
  'New',
  'Submitted',
  'Wait_ssh_context',
  'Contextualizing',
  'Running',
  'Stopping',
  'Halted',
  'Stalled',
  'Error',
] as const;
export type InstanceStatus = (typeof INSTANCE_STATES)[number];

export type ObjectKind = 'Image' | 'Instance';

/** Allowed source states for each target state. `Error` is reachable from anywhere (see forceError). */
export const ALLOWED_TRANSITIONS: {
  readonly Image: Readonly<Partial<Record<ImageStatus, readonly ImageStatus[]>>>;
  readonly Instance: Readonly<Partial<Record<InstanceStatus, readonly InstanceStatus[]>>>;
} = {
  Image: {
    Validated: ['New', 'Validated'],
  },
  Instance: {
    Submitted: ['New'],
    Wait_ssh_context: ['Submitted'],
    Contextualizing: ['Wait_ssh_context'],
    Running: ['New', 'Submitted', 'Contextualizing', 'Running', 'Stalled'],
    Stopping: ['Running', 'Stalled'],
    Halted: ['New', 'Running', 'Stopping', 'Stalled', 'Halted'],
    Stalled: ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running'],
  },
};

export function validStates(kind: ObjectKind): readonly string[] {
  return kind === 'Image' ? IMAGE_STATES : INSTANCE_STATES;
}

export function isValidState(kind: ObjectKind, status: unknown): boolean {
  return typeof status === 'string' && validStates(kind).includes(status);
}

/** Source states from which `target` may be reached, or undefined when `target` is not a transition target. */
export function allowedSources(kind: ObjectKind, target: string): readonly string[] | undefined {
  const table = ALLOWED_TRANSITIONS[kind] as Record<string, readonly string[] | undefined>;
  return Object.prototype.hasOwnProperty.call(table, target) ? table[target] : undefined;
}

/** Targets reachable from `current` (Error excluded: it is always reachable by force). */
export function allowedTargets(kind: ObjectKind, current: string): string[] {
  const table = ALLOWED_TRANSITIONS[kind] as Record<string, readonly string[]>;
  return Object.keys(table).filter((target) => table[target].includes(current));
}

/** The `State` field of a refusal: `halt` / `stop` tell the VM what to do, otherwise the current state. */
export function refusalState(current: string): string {
  if (current === 'Halted') return 'halt';
  if (current === 'Stopping') return 'stop';
  return current;
}

export type TransitionVerdict =
  | { allowed: true; refreshOnly: boolean }
  | { allowed: false; message: string; state?: string };

/** Decide a transition from `current` to `target` without touching anything. */
export function checkTransition(kind: ObjectKind, current: string, target: string): TransitionVerdict {
  const sources = allowedSources(kind, target);
  if (!sources) return { allowed: false, message: `Transition to ${target} not possible` };
  if (!sources.includes(current)) {
    return {
      allowed: false,
      message: `Transition ( ${current} -> ${target} ) not allowed`,
      state: refusalState(current),
    };
  }
  return { allowed: true, refreshOnly: current === target };
}

/** States whose instances are swept to Stalled when silent for longer than the stalling interval. */
export const STALLABLE_STATES: readonly InstanceStatus[] = (allowedSources('Instance', 'Stalled') ?? []) as readonly InstanceStatus[];

/** States in which an instance occupies a slot at its endpoint (the Director counts these). */
export const OCCUPYING_STATES: readonly InstanceStatus[] = ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running'];

/** States an instance never leaves: its VM is stopped (or was never created) and its workflow ends. */
export const TERMINAL_STATES: readonly InstanceStatus[] = ['Halted', 'Error'];
/** States in which the VM has not reached Running yet (the startup deadline applies). */
export const STARTING_STATES: readonly InstanceStatus[] = ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing'];
/** States in which the VM should exist at its endpoint: it was created and has not been stopped. */
export const ALIVE_STATES: readonly InstanceStatus[] = ['Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running', 'Stopping', 'Stalled'];
/** States from which a VM that has gone is recorded Halted (it ran); from the others it never ran, and is an Error. */
export const HALTABLE_STATES: readonly InstanceStatus[] = ['Running', 'Stopping', 'Stalled'];
/** Every state but Halted and Error: the instance still has something to end. */
export const LIVE_STATES: readonly InstanceStatus[] = INSTANCE_STATES.filter((status) => !TERMINAL_STATES.includes(status));
/** What the fleet's drain mode acts on: a Running VM is told to stop, a New one (no VM yet) is stopped before it starts. */
export const DRAINED_STATES: readonly InstanceStatus[] = ['New', 'Running'];
/** States of a VM that reports to vmdb (the dashboard's halt reasons are read for these). */
export const REPORTING_STATES: readonly InstanceStatus[] = ['Running', 'Stopping'];

/**
 * A Status column's value as the record's type. The facade writes only valid states; a row changed
 * by hand is flagged by the status reads (src/db/queries.ts), not here.
 */
export function recordedStatus(raw: unknown): InstanceStatus {
  return String(raw) as InstanceStatus;
}

const member = (states: readonly InstanceStatus[]) => (status: string): status is InstanceStatus => (states as readonly string[]).includes(status);

export const isInstanceStatus = (status: unknown): status is InstanceStatus => typeof status === 'string' && (INSTANCE_STATES as readonly string[]).includes(status);
/** Halted or Error: nothing more happens to the instance. */
export const isTerminalState = member(TERMINAL_STATES);
/** Not Running yet: the startup deadline applies, and a stop makes it Stalled. */
export const isStartingState = member(STARTING_STATES);
/** The VM should exist at its endpoint. */
export const isAliveState = member(ALIVE_STATES);
/** A VM that reports to vmdb: it may say why it is about to halt. */
export const isReportingState = member(REPORTING_STATES);
/** A gone VM in this state is recorded Halted, not Error. */
export const mayHalt = member(HALTABLE_STATES);
/** Stopping and Stalled: a stop is already under way, so another changes nothing. */
export const isStopUnderWay = member(['Stopping', 'Stalled']);
/**
 * The seed's operator stop of an instance no workflow watches: Stalled and New are recorded Halted
 * at once (no VM listens for a directive), anything else goes to Stopping.
 */
export function operatorStopTarget(status: string): 'Halted' | 'Stopping' {
  return status === 'Stalled' || status === 'New' ? 'Halted' : 'Stopping';
}
/** The life cycle's stop: a starting instance is Stalled (its workflow stops the VM), a running one drains. */
export function lifecycleStopTarget(status: string): 'Stalled' | 'Stopping' {
  return isStartingState(status) ? 'Stalled' : 'Stopping';
}

/** What a VM's monitor is told after a heartbeat: carry on, drain, or power off. */
export const DIRECTIVES = ['ok', 'stop', 'halt'] as const;
export type Directive = (typeof DIRECTIVES)[number];

/** The answer the record gives a VM in `status`: Stopping drains, Halted and Error power off. */
export function directiveForStatus(status: string): Directive {
  if (status === 'Stopping') return 'stop';
  if (status === 'Halted' || status === 'Error') return 'halt';
  return 'ok';
}

/** A refusal's State (`stop`, `halt` or a status) as a directive, when it is one. */
export function directiveOfRefusal(state: string | undefined): Exclude<Directive, 'ok'> | undefined {
  return state === 'stop' || state === 'halt' ? state : undefined;
}
