import type { Client } from '@temporalio/client';
import { type Ghost, createSafetyActivities } from '../../activities/safety';
import { createDrivers } from '../drivers/registry';
import { type FleetConfig, driverConfigs } from '../config/fleet';
import type { VirtualMachineDB } from '../db/vmdb';

/**
 * The fleet's local endpoints, whose VMs are processes of this host: `npm start` stops them with the
 * service (cloud VMs outlive it), and their rows must follow at once. What a Ctrl-C stopped, or a
 * crash killed, is recorded gone, so that a restart shows only live VMs and its first Director pass
 * fills the slots again.
 */
export class LocalVms {
  private readonly local: FleetConfig;

  constructor(fleet: FleetConfig) {
    this.local = { ...fleet, endpoints: fleet.endpoints.filter((e) => e.driver.type === 'local') };
  }

  /** Stops every running VM of the local endpoints; returns their UniqueIDs. */
  async stopAll(): Promise<string[]> {
    const stopped: string[] = [];
    for (const driver of createDrivers(driverConfigs(this.local)).values()) {
      for (const vm of await driver.listInstances()) {
        if (vm.status !== 'running') continue;
        await driver.stopInstance(vm.uniqueID);
        stopped.push(vm.uniqueID);
      }
    }
    return stopped;
  }

  /**
   * Instances of the local endpoints alive in the database whose VM does not run here: recorded
   * Halted (Error when they never ran), and their workflows told to halt. The local listing is this
   * host's own files, so one look is enough (the cloud reconciliation waits for a second miss).
   */
  async recordGone(db: VirtualMachineDB, client: Client): Promise<Ghost[]> {
    if (this.local.endpoints.length === 0) return [];
    const reconcile = createSafetyActivities({
      db,
      client,
      config: this.local.safety,
      endpoints: this.local.endpoints,
      drivers: createDrivers(driverConfigs(this.local)),
    });
    const reports = await reconcile.reconcileEndpoints({ listingIsCurrent: true });
    return reports.flatMap((r) => r.ghosts.filter((g) => g.now !== undefined));
  }
}
