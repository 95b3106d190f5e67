import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { HeartbeatFigures } from '../entities/heartbeat';

/** What a VM's monitor is told after a heartbeat: carry on, drain, or power off. */
export type Directive = 'ok' | 'stop' | 'halt';

/** The answer to a heartbeat: the directive, and when the VM is planned to be shut down (ISO time), if it is. */
export interface HeartbeatReply {
  directive: Directive;
  shutdownAt?: string;
}

/** Workflows started before shutdown notices answered a bare directive. */
export function toHeartbeatReply(answer: HeartbeatReply | Directive): HeartbeatReply {
  return typeof answer === 'string' ? { directive: answer } : answer;
}

/** Workflow id of an instance's life cycle: routable from the InstanceID alone. */
export function lifecycleWorkflowId(instanceID: number): string {
  return `vm-${instanceID}`;
}

export const DEFAULT_TASK_QUEUE = 'vmdb';

/** SSH contextualization of a VM before it runs. Secrets never travel here: the worker holds the key. */
export interface SshContextualization {
  username: string;
  /** Defaults to the VM's public IP. */
  host?: string;
  port?: number;
  files: { path: string; content: string; mode?: number }[];
  command: string;
  /** Time allowed for the VM's SSH port to answer and for the command to finish, each. */
  timeoutSeconds: number;
}

export interface LifecycleInput {
  instanceID: number;
  instanceName: string;
  imageName: string;
  endpoint: string;
  runningPod: string;
  userData?: string;
  contextualization?: SshContextualization;
  /** Seconds without a heartbeat before the instance is Stalled (the database's stallingInterval). */
  stallingIntervalSeconds: number;
  /** Stop the instance (as an operator would) once it has lived this long. */
  maxLifetimeSeconds?: number;
  /** Stop the instance if it is not Running this long after the workflow started. */
  maxStartupSeconds?: number;
  /** Halt a Stopping instance this long after its stop, even if it still reports. */
  drainDeadlineSeconds?: number;
  /** Continue as new after this many heartbeats in one run (history stays short). */
  heartbeatsPerRun?: number;
  /** State carried across continue-as-new. */
  carried?: LifecycleState;
}

export interface LifecycleState {
  instanceID: number;
  status: string;
  uniqueID: string;
  publicIP: string;
  privateIP: string;
  /** Workflow time (ms) of the last accepted heartbeat, or of the start when none came yet. */
  lastNewsAt: number;
  /** The instance's LastUpdate in the database as last seen by this workflow (for the stall compare-and-set). */
  lastSeenUpdate: string | null;
  lastHeartbeat: (HeartbeatFigures & { at: number }) | null;
  heartbeats: number;
  startedAt: number;
  stopRequested: boolean;
  errorMessage: string;
  /** Workflow time (ms) the instance was told to stop (drain), for the drain deadline. */
  stopRequestedAt?: number;
  /** A safety rule held back an automatic action: no deadline fires before this workflow time (ms). */
  holdUntil?: number;
  /** Why the last automatic action was held back. */
  heldBecause?: string;
  /** A halt was requested (fleet halt switch, reconciliation); handled by the main loop. */
  haltRequested?: string;
}

export const heartbeatUpdate = defineUpdate<HeartbeatReply | Directive, [HeartbeatFigures]>('heartbeat');
/** Fire-and-forget heartbeat for senders that cannot wait for the answer. */
export const heartbeatSignal = defineSignal<[HeartbeatFigures]>('heartbeatSignal');
/** The VM reports it is up, with its addresses; answered with the recorded status. */
export const runningUpdate = defineUpdate<string, [{ publicIP: string; privateIP: string }]>('running');
/** The VM announces it is halting; answered once Halted is recorded. */
export const haltingUpdate = defineUpdate<string, [{ load: number }]>('halting');
/** Operator stop: the seed's per-state rules; answers the resulting status. */
export const stopUpdate = defineUpdate<string, []>('stop');
/** Halt now, whatever the VM says (fleet halt switch, or a VM the cloud no longer has); the reason is logged. */
export const haltSignal = defineSignal<[string]>('halt');
export const stateQuery = defineQuery<LifecycleState>('state');

export const VmStatus = defineSearchAttributeKey('VmStatus', SearchAttributeType.KEYWORD);
export const VmImage = defineSearchAttributeKey('VmImage', SearchAttributeType.KEYWORD);
export const VmEndpoint = defineSearchAttributeKey('VmEndpoint', SearchAttributeType.KEYWORD);
export const VmRunningPod = defineSearchAttributeKey('VmRunningPod', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [VmStatus, VmImage, VmEndpoint, VmRunningPod];
