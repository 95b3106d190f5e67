import { createHash } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { isAliveState, isTerminalState } from '../entities/states';
import { UnwatchedInstances } from '../src/db/unwatched';
import type { CloudDriver, CloudInstance } from '../src/drivers/driver';
import type { EndpointConfig } from '../src/config/fleet';
import { activityLogger } from '../src/ops/log';
import { reconcileFindings } from '../src/ops/metrics';
import type { SafetyConfig } from '../src/safety/config';
import { FleetGuard, type GuardedAction, type Verdict } from '../src/safety/guard';
import type { VirtualMachineDB } from '../src/db/vmdb';
import { haltSignal, lifecycleWorkflowId } from '../workflows/definitions';

export interface SafetyDeps {
  db: VirtualMachineDB;
  client: Client;
  config: SafetyConfig;
  endpoints: readonly EndpointConfig[];
  drivers: ReadonlyMap<string, CloudDriver>;
  /** The clock (tests); default the wall clock. */
  now?: () => Date;
}

export interface Zombie {
  uniqueID: string;
  /** The database's InstanceID when it knows the VM (as Halted or Error), else absent. */
  instanceID?: number;
  status?: string;
  stopped: boolean;
  /** Why it was not stopped: stopping is off, it is too new to judge, or under manual control. */
  kept?: string;
}

export interface Ghost {
  instanceID: number;
  uniqueID: string;
  /** The status before reconciliation, and after (Halted; Error when it never ran). */
  was: string;
  now?: string;
  /** Why nothing was done yet: first pass that missed it, or manual control. */
  kept?: string;
}

export interface ReconcileOptions {
  /** Only these endpoints; default every endpoint of the fleet. */
  endpoints?: readonly string[];
  /**
   * The listing cannot lag a creation (the local driver writes a VM's record before its UniqueID
   * reaches the database): a ghost is recorded gone at its first miss, not its second.
   */
  listingIsCurrent?: boolean;
}

export interface ReconcileReport {
  endpoint: string;
  /** Set when the listing failed: nothing was done at this endpoint. */
  listingFailed?: string;
  zombies: Zombie[];
  ghosts: Ghost[];
}

const isUp = (vm: CloudInstance) => vm.status === 'running' || vm.status === 'pending';

/** A short stable name part for a long text (endpoint names and UniqueIDs may be 255 characters). */
function digest(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** Safety activities: the verdict the lifecycle workflow asks before automatic actions, and reconciliation. */
export function createSafetyActivities(deps: SafetyDeps) {
  const { db, client, config } = deps;
  const guard = new FleetGuard(db, config, undefined, deps.now);
  const unwatched = new UnwatchedInstances(db);
  const now = deps.now ?? (() => new Date());
  const store = guard.store;

  async function signalHalt(instanceID: number, reason: string): Promise<void> {
    try {
      await client.workflow.getHandle(lifecycleWorkflowId(instanceID)).signal(haltSignal, reason);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  async function reconcileOne(endpoint: string, driver: CloudDriver, listingIsCurrent: boolean): Promise<ReconcileReport> {
    const log = activityLogger();
    const report: ReconcileReport = { endpoint, zombies: [], ghosts: [] };
    let listing: CloudInstance[];
    try {
      listing = await driver.listInstances();
    } catch (err) {
      // A failed listing says nothing about the VMs: acting on it would halt the whole endpoint.
      report.listingFailed = (err as Error).message;
      reconcileFindings.inc({ endpoint, kind: 'listing_failed' });
      log.warn({ endpoint, err }, 'reconciliation skipped the endpoint: its listing failed');
      return report;
    }
    const rows = await db.instanceStore().instances({ endpoint });
    const byUnique = new Map(rows.filter((row) => row.uniqueID !== '').map((row) => [row.uniqueID, { id: row.instanceID, status: row.status }]));
    const manual = new Set((await store.manualInstances()).map((m) => m.instanceID));
    const t = now().getTime();
    // What earlier passes saw, kept in the database so that any worker's pass continues the last one:
    // a zombie must have been listed for a while, a ghost missed twice.
    const zombiePrefix = `zombie:${digest(endpoint, 16)}:`;
    const zombieMarks = await store.marksStartingWith(zombiePrefix);
    const ghostMarks = await store.marksStartingWith('ghost:');

    const up = listing.filter(isUp);
    for (const vm of up) {
      const known = byUnique.get(vm.uniqueID);
      if (known && !isTerminalState(known.status)) continue;
      const zombie: Zombie = { uniqueID: vm.uniqueID, stopped: false, ...(known ? { instanceID: known.id, status: known.status } : {}) };
      const key = `${zombiePrefix}${digest(vm.uniqueID, 24)}`;
      const since = zombieMarks.get(key)?.at?.getTime() ?? t;
      if (!zombieMarks.has(key)) await store.setMark(key, vm.uniqueID, now());
      if (known && manual.has(known.id)) zombie.kept = 'manual control';
      else if (!config.reconcile.stopZombies) zombie.kept = 'stopping zombies is off (safety.reconcile.stopZombies)';
      // Unknown IDs may belong to a creation not yet recorded; a VM the database halted is surely ours and dead.
      else if (!known && t - since < config.reconcile.zombieGraceSeconds * 1000) zombie.kept = 'listed for less than zombieGraceSeconds';
      else {
        await driver.stopInstance(vm.uniqueID);
        zombie.stopped = true;
        await store.deleteMark(key);
      }
      zombieMarks.delete(key);
      reconcileFindings.inc({ endpoint, kind: 'zombie' });
      log.warn({ endpoint, ...zombie }, zombie.stopped ? 'zombie VM stopped at its endpoint' : 'zombie VM found at its endpoint');
      report.zombies.push(zombie);
    }
    // Zombies no longer listed are forgotten.
    for (const key of zombieMarks.keys()) await store.deleteMark(key);
    const upIDs = new Set(up.map((vm) => vm.uniqueID));

    for (const { instanceID, uniqueID, status } of rows) {
      const ghostKey = `ghost:${instanceID}`;
      if (!isAliveState(status) || uniqueID === '' || upIDs.has(uniqueID)) {
        if (ghostMarks.has(ghostKey)) await store.deleteMark(ghostKey);
        continue;
      }
      const ghost: Ghost = { instanceID, uniqueID, was: status };
      reconcileFindings.inc({ endpoint, kind: 'ghost' });
      if (manual.has(instanceID)) ghost.kept = 'manual control';
      // A listing may lag a creation: act only when two passes in a row miss the VM.
      else if (!ghostMarks.has(ghostKey) && !listingIsCurrent) {
        await store.setMark(ghostKey, uniqueID, now());
        ghost.kept = 'missing for the first time; acted on if the next pass misses it too';
      } else {
        if (ghostMarks.has(ghostKey)) await store.deleteMark(ghostKey);
        const moved = await unwatched.recordVanished(instanceID, status);
        if (!moved.OK) ghost.kept = `not moved: ${moved.Message}`;
        else {
          ghost.now = moved.Value;
          await signalHalt(instanceID, 'the VM is gone from its endpoint (reconciliation)');
        }
      }
      activityLogger({ instanceID, uniqueID }).warn({ endpoint, ...ghost }, ghost.now ? 'ghost instance recorded as gone' : 'ghost instance found');
      report.ghosts.push(ghost);
    }
    return report;
  }

  return {
    /** May the workflow take `action` against the instance now? Held back: retry after `retryInSeconds`. */
    async safetyVerdict(instanceID: number, endpoint: string, action: GuardedAction): Promise<Verdict> {
      const verdict = action === 'stall' || action === 'halt' ? await guard.silenceVerdict(instanceID, endpoint, action) : await guard.manualVerdict(instanceID, action);
      if (!verdict.allow) activityLogger({ instanceID }).info({ endpoint, action, rule: verdict.rule, reason: verdict.reason }, 'automatic action held back');
      return verdict;
    },

    /** Compares each endpoint's listing with the database; zombies reported (and stopped if configured), ghosts recorded gone. */
    async reconcileEndpoints(options: ReconcileOptions = {}): Promise<ReconcileReport[]> {
      const reports: ReconcileReport[] = [];
      for (const endpoint of new Set(options.endpoints ?? deps.endpoints.map((e) => e.endpoint))) {
        const driver = deps.drivers.get(endpoint);
        if (driver) reports.push(await reconcileOne(endpoint, driver, options.listingIsCurrent ?? false));
      }
      return reports;
    },
  };
}

export type SafetyActivities = ReturnType<typeof createSafetyActivities>;
