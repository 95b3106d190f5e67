import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { HeartbeatFigures } from '../../entities/heartbeat';
import { type HeartbeatNews, type HeartbeatReply, heartbeatNewsSignal, lifecycleWorkflowId } from '../../workflows/definitions';
import type { RecordedHeartbeat } from '../db/heartbeat-record';
import type { HeartbeatMark } from '../db/instance-life';
import { instanceFields, processLogger } from '../ops/log';
import { heartbeatSignals } from '../ops/metrics';
import { type Result, S_OK } from '../db/result';
import type { VirtualMachineDB } from '../db/vmdb';

/** How long a heartbeat waits for Temporal to take its signal before it is answered anyway. */
export const DEFAULT_SIGNAL_TIMEOUT_MS = 2_000;
/** A missed signal is logged at most this often (with the count since), so an outage does not flood the log. */
const MISSED_LOG_INTERVAL_MS = 10_000;
const ENDED_NOTE_INTERVAL_MS = 60_000;
const ENDED_NOTES_KEPT = 10_000;
/** The figures of news that records no heartbeat (the workflow keeps figures only of recorded ones). */
const NO_FIGURES: HeartbeatFigures = { load: 0, jobs: 0, transferredFiles: 0, transferredBytes: 0, uptime: 0 };

export type HeartbeatAnswer = Result<HeartbeatReply & { recorded: RecordedHeartbeat }>;

/**
 * A heartbeat end to end (v2): recorded by the facade in one transaction (MySQL is the record),
 * answered from the record, then signalled to the instance's workflow, which only moves its news
 * time. A signal Temporal does not take in time is counted and logged, never a failure: the
 * workflow's stall compare-and-set on LastUpdate makes the miss harmless.
 */
export class HeartbeatPath {
  private missedSinceLog = 0;
  /** When each ended instance's workflow was last told (oldest first). */
  private readonly endedNoted = new Map<number, number>();
  private lastMissedLog = 0;

  constructor(
    private readonly db: VirtualMachineDB,
    private readonly client: Client,
    private readonly signalTimeoutMs = DEFAULT_SIGNAL_TIMEOUT_MS,
  ) {}

  async beat(instanceID: number, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<HeartbeatAnswer> {
    const recorded = await this.db.recordHeartbeat(instanceID, figures, mark);
    if (!recorded.OK) return recorded;
    const r = recorded.Value;
    // A repeat wrote nothing: its news reached the workflow the first time (or the miss was counted then).
    if (!r.repeated) await this.signal(instanceID, { figures, recorded: r.recorded, status: r.status, version: r.version, lastUpdate: r.lastUpdate });
    return S_OK({ directive: r.directive, ...(r.shutdownAt ? { shutdownAt: r.shutdownAt } : {}), recorded: r });
  }

  /**
   * The VM of an ended instance (Halted or Error) called, and was told to halt without a heartbeat
   * being recorded: its workflow still hears where the record stands, as a heartbeat would have told
   * it (an Error set from outside ends the workflow's watch at once, not at the stall deadline).
   */
  async noteEnded(instanceID: number): Promise<void> {
    // Once a minute per instance is plenty: a VM told to halt stops calling, and a retrying one need not echo.
    const now = Date.now();
    if (now - (this.endedNoted.get(instanceID) ?? -Infinity) < ENDED_NOTE_INTERVAL_MS) return;
    this.endedNoted.delete(instanceID);
    this.endedNoted.set(instanceID, now);
    if (this.endedNoted.size > ENDED_NOTES_KEPT) this.endedNoted.delete(this.endedNoted.keys().next().value!);
    const life = await this.db.getInstanceLife(instanceID);
    if (!life.OK) return;
    const { status, version, lastUpdate } = life.Value;
    await this.signal(instanceID, { figures: NO_FIGURES, recorded: false, status, version, lastUpdate });
  }

  private async signal(instanceID: number, news: HeartbeatNews): Promise<void> {
    const handle = this.client.workflow.getHandle(lifecycleWorkflowId(instanceID));
    try {
      await this.client.withDeadline(Date.now() + this.signalTimeoutMs, () => handle.signal(heartbeatNewsSignal, news));
      heartbeatSignals.inc({ outcome: 'sent' });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        heartbeatSignals.inc({ outcome: 'closed' });
        return;
      }
      heartbeatSignals.inc({ outcome: 'missed' });
      this.logMissed(instanceID, err);
    }
  }

  private logMissed(instanceID: number, err: unknown): void {
    this.missedSinceLog++;
    const now = Date.now();
    if (now - this.lastMissedLog < MISSED_LOG_INTERVAL_MS) return;
    processLogger().warn(
      { ...instanceFields({ instanceID }), missed: this.missedSinceLog, err: (err as Error)?.message ?? String(err), cause: ((err as { cause?: Error })?.cause)?.message },
      'heartbeat recorded but its workflow was not signalled (Temporal unreachable or slow); the stall check reads the record',
    );
    this.missedSinceLog = 0;
    this.lastMissedLog = now;
  }
}
