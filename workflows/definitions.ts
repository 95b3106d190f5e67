import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { HeartbeatFigures } from '../entities/heartbeat';
import type { Directive, InstanceStatus } from '../entities/states';

export type { Directive };

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
  /** The host keys the VM's sshd may present (OpenSSH `SHA256:` fingerprints); any other fails the contextualization. */
  hostKeys?: string[];
  /** Set instead of hostKeys: the image makes its host keys at first boot, and any is accepted. */
  anyHostKey?: boolean;
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
  /** Attempts at creating the VM before the instance goes to Error (default 8, about 20 minutes of backoff). */
  createAttempts?: number;
  /** State carried across continue-as-new. */
  carried?: LifecycleState;
}

export interface LifecycleState {
  instanceID: number;
  status: InstanceStatus;
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
  /** The record's version last adopted (v2): older reads of the record are not applied. */
  version?: number;
  /** A create was started: a VM may exist under the instance's name even without a UniqueID. */
  createStarted?: boolean;
  /** Why the VM is being taken down (v2); set, the next run resumes the ending. */
  ending?: string;
  /** The life cycle failed before the VM could run (create, contextualization): recorded as Error with this message. */
  failure?: string;
  /** The endpoint keeps refusing to stop the VM: retried with backoff, never given up. */
  haltPending?: { since: number; attempts: number; reason: string };
  /** The planned shutdown last stored in the database (ISO), or null when none is. */
  plannedShutdown?: string | null;
}

/**
 * A recorded heartbeat, as the API signals it to the instance's workflow after its commit: the
 * figures, and where the record stands (status, its version and LastUpdate).
 */
export interface HeartbeatNews {
  figures: HeartbeatFigures;
  /** A history row was written (false: refused by the table, e.g. while Stopping). */
  recorded: boolean;
  status: InstanceStatus;
  version: number;
  /** LastUpdate after the heartbeat, UTC ISO. */
  lastUpdate: string | null;
}

/** v1 only: the heartbeat recorded by the workflow (runs that began with v1; v2 takes heartbeatNewsSignal). */
export const heartbeatUpdate = defineUpdate<HeartbeatReply | Directive, [HeartbeatFigures]>('heartbeat');
/** v2: a heartbeat the API has recorded; the handler only moves the news time and adopts the status. */
export const heartbeatNewsSignal = defineSignal<[HeartbeatNews]>('heartbeatNews');
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
