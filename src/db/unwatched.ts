import { type InstanceStatus, mayHalt } from '../../entities/states';
import { type Result, S_OK } from './result';
import type { VirtualMachineDB } from './vmdb';

/**
 * Every change of an instance's state that no workflow makes: an operator's stop of an instance whose
 * workflow has ended or never started, the stalled sweep's stall and halt, and the reconciliation's
 * record of a VM that vanished from its endpoint. A workflow changes its own instance through its
 * activities (src/db/instance-store.ts); everything else goes through here, so the rules live in
 * one place.
 */
export class UnwatchedInstances {
  constructor(private readonly db: VirtualMachineDB) {}

  /** The seed's operator stop: Stalled and New are recorded Halted at once (no VM listens), the others Stopping. */
  async stop(instanceID: number): Promise<Result<string>> {
    const stopped = await this.db.declareInstancesStopping([instanceID]);
    if (stopped.OK) return stopped.Value[instanceID];
    return (stopped as { Value?: Record<string, Result<string>> }).Value?.[instanceID] ?? stopped;
  }

  /** Instances silent in a state that may stall since before `cutoff`, with their endpoints, by InstanceID. */
  silentSince(cutoff: Date): Promise<{ instanceID: number; endpoint: string }[]> {
    return this.db.instanceStore().silentSince(cutoff);
  }

  /** Stalled, if it still is silent for the stalling interval (a heartbeat meanwhile wins). */
  stall(instanceID: number): Promise<Result<string>> {
    return this.db.declareInstanceStalled(instanceID);
  }

  /** Halted: its VM was stopped at its endpoint (or is gone), and no workflow will record it. */
  recordHalted(instanceID: number): Promise<Result<string>> {
    return this.db.recordDBHalt(instanceID, 0);
  }

  /** The VM vanished from its endpoint: Halted when it had run, Error when it never did. */
  async recordVanished(instanceID: number, lastStatus: InstanceStatus): Promise<Result<'Halted' | 'Error'>> {
    if (mayHalt(lastStatus)) {
      const halted = await this.recordHalted(instanceID);
      return halted.OK ? S_OK('Halted') : halted;
    }
    const failed = await this.db.declareInstanceError(instanceID, 'The VM vanished from its endpoint before it ran');
    return failed.OK ? S_OK('Error') : failed;
  }
}
