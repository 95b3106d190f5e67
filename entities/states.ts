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

/** What the VM-side monitor is told when its transition is refused. */
export type Directive = 'halt' | 'stop';

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
export const STALLABLE_STATES: readonly string[] = allowedSources('Instance', 'Stalled') ?? [];

/** States in which an instance occupies a slot at its endpoint (the Director counts these). */
export const OCCUPYING_STATES: readonly InstanceStatus[] = ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running'];

/** States an instance never leaves: its VM is stopped (or was never created) and its workflow ends. */
export const TERMINAL_STATES: readonly InstanceStatus[] = ['Halted', 'Error'];
/** States in which the VM has not reached Running yet (the startup deadline applies). */
export const STARTING_STATES: readonly InstanceStatus[] = ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing'];

export function isTerminalState(status: string): boolean {
  return (TERMINAL_STATES as readonly string[]).includes(status);
}

export function isStartingState(status: string): boolean {
  return (STARTING_STATES as readonly string[]).includes(status);
}

/** What a VM's monitor is told after a heartbeat: carry on, drain, or power off. */
export type VmDirective = 'ok' | 'stop' | 'halt';

/** The answer the record gives a VM in `status`: Stopping drains, Halted and Error power off. */
export function directiveForStatus(status: string): VmDirective {
  if (status === 'Stopping') return 'stop';
  if (status === 'Halted' || status === 'Error') return 'halt';
  return 'ok';
}
