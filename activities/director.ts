import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { CloudDriver } from '../src/drivers/driver';
import { userDataWithStopPolicy } from '../src/elastic/config';
import type { EndpointConfig } from '../src/config/fleet';
import { activityLogger } from '../src/ops/log';
import { readDemand, demandTarget } from '../src/elastic/demand';
import { HaltStore } from '../src/db/halt-store';
import { directorDemand, directorFailures, directorLaunches, directorTarget, endpointBackoff } from '../src/ops/metrics';
import { DEFAULT_SAFETY, type SafetyConfig } from '../src/safety/config';
import { FleetGuard } from '../src/safety/guard';
import { type FleetMode, SafetyStore } from '../src/db/safety-store';
import type { VirtualMachineDB } from '../src/db/vmdb';
import { DRAINED_STATES, type InstanceStatus, LIVE_STATES } from '../entities/states';
import { UnwatchedInstances } from '../src/db/unwatched';
import { type LifecycleInput, VmEndpoint, VmImage, VmRunningPod, VmStatus, haltSignal, lifecycleWorkflowId, stopUpdate } from '../workflows/definitions';

export interface DirectorDeps {
  db: VirtualMachineDB;
  client: Client;
  taskQueue: string;
  endpoints: readonly EndpointConfig[];
  drivers: ReadonlyMap<string, CloudDriver>;
  /** Fleet-safety settings (default DEFAULT_SAFETY). */
  safety?: SafetyConfig;
  now?: () => Date;
}

export interface LaunchReport {
  endpoint: string;
  reserved: number[];
  started: number[];
  /** Why nothing was launched here this pass: the fleet mode, a manual pause or a backoff. */
  held?: string;
  /** With a demand source: the waiting jobs it gave (null: it failed, see demandMessage) and the target launched toward. */
  demand?: number | null;
  target?: number;
  demandMessage?: string;
  /** Instances told to stop (drain mode) or to halt (halt mode) by this pass. */
  stopped?: number[];
  halted?: number[];
}

export interface SweepReport {
  stalled: number[];
  halted: number[];
  /** Silent instances a safety rule kept from being stalled, with the reason. */
  held?: { instanceID: number; reason: string }[];
}

function must<T>(what: string, result: { OK: true; Value: T } | { OK: false; Message: string }): T {
  if (!result.OK) throw new Error(`${what}: ${result.Message}`);
  return result.Value;
}

/** The Director's and the sweep's side effects: database, workflow starts, cloud. */
export function createDirectorActivities(deps: DirectorDeps) {
  const { db, client, taskQueue } = deps;
  const safety = deps.safety ?? DEFAULT_SAFETY;
  const store = SafetyStore.of(db);
  const halts = HaltStore.of(db);
  const guard = new FleetGuard(db, safety, undefined, deps.now);
  const unwatched = new UnwatchedInstances(db);
  const instances = db.instanceStore();
  const now = deps.now ?? (() => new Date());

  /** Why the Director launches nothing at this endpoint now, or undefined. */
  async function launchHold(mode: FleetMode, endpoint: string): Promise<string | undefined> {
    const health = await store.endpoint(endpoint);
    const left = health.backoffUntil ? Math.max(0, Math.ceil((Date.parse(health.backoffUntil) - now().getTime()) / 1000)) : 0;
    endpointBackoff.set({ endpoint }, left);
    if (mode !== 'normal') return `fleet mode is ${mode}`;
    if (health.paused) return `paused by an operator${health.pauseReason ? `: ${health.pauseReason}` : ''}`;
    if (left > 0 && health.lastReason === 'idle' && health.failures === 0) return `backing off for ${left} s: ${health.lastMessage}`;
    if (left > 0) return `backing off for ${left} s after ${health.failures} failed creation(s), last ${health.lastReason}: ${health.lastMessage}`;
    return undefined;
  }

  /**
   * vcycle's rule: a VM of the endpoint that halted idle within `withinSeconds` of boot means there is
   * no work for more of them; launch nothing for `backoffSeconds` after that halt.
   */
  async function noteIdleHalts(config: EndpointConfig): Promise<void> {
    const rule = config.idleBackoff;
    if (!rule || rule.backoffSeconds === 0) return;
    const halt = await halts.latestIdleHalt(config.endpoint, rule.withinSeconds, new Date(now().getTime() - rule.backoffSeconds * 1000));
    if (!halt) return;
    const until = new Date(halt.at.getTime() + rule.backoffSeconds * 1000);
    const message = `instance ${halt.instanceID} halted idle ${halt.uptime} s after boot (under ${rule.withinSeconds} s)`;
    const before = await store.endpoint(config.endpoint);
    const after = await store.recordIdleBackoff(config.endpoint, halt.at, until, message, now());
    if (after.backoffUntil !== before.backoffUntil) activityLogger().warn({ endpoint: config.endpoint, instanceID: halt.instanceID, backoffUntil: after.backoffUntil }, 'VMs halt idle soon after boot: the Director backs off the endpoint');
  }

  /** The endpoint's demand and the target it gives, recorded for the status; undefined without a source. */
  async function demandOf(config: EndpointConfig): Promise<{ demand: number | null; target: number; demandMessage?: string } | undefined> {
    if (!config.demand) return undefined;
    const reading = await readDemand(config.demand);
    const target = demandTarget(reading, { jobsPerInstance: config.jobsPerInstance ?? 1, minInstances: config.minInstances ?? 0, maxInstances: config.maxInstances });
    const demand = 'waiting' in reading ? reading.waiting : null;
    const message = 'error' in reading ? reading.error : '';
    await store.recordDemand(config.endpoint, demand, target, message, now());
    directorDemand.set({ endpoint: config.endpoint }, demand ?? -1);
    directorTarget.set({ endpoint: config.endpoint }, target);
    if (message) activityLogger().warn({ endpoint: config.endpoint, problem: message, target }, 'demand source failed: launching toward minInstances');
    return message ? { demand, target, demandMessage: message } : { demand, target };
  }

  /** Drain or halt mode: every live instance of the endpoint not under manual control is told to stop, or halted. */
  async function applyMode(mode: 'drain' | 'halt', endpoint: string): Promise<number[]> {
    const states: readonly InstanceStatus[] = mode === 'drain' ? DRAINED_STATES : LIVE_STATES;
    const manual = new Set((await store.manualInstances()).map((m) => m.instanceID));
    const acted: number[] = [];
    for (const status of states) {
      for (const { instanceID } of await instances.instances({ endpoint, statuses: [status] })) {
        if (manual.has(instanceID)) continue;
        const handle = client.workflow.getHandle(lifecycleWorkflowId(instanceID));
        try {
          if (mode === 'drain') await handle.executeUpdate(stopUpdate);
          else await handle.signal(haltSignal, 'fleet mode halt');
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) {
            activityLogger({ instanceID }).warn({ endpoint, mode, err }, 'cannot reach the instance workflow; recording in the database');
          }
          // No workflow (or it refused): the database alone records it.
          const result = mode === 'drain' ? await unwatched.stop(instanceID) : await unwatched.recordHalted(instanceID);
          if (!result.OK) continue;
        }
        acted.push(instanceID);
      }
    }
    if (acted.length) activityLogger().warn({ endpoint, mode, instances: acted }, mode === 'drain' ? 'fleet drain: instances told to stop' : 'fleet halt: instances halted');
    return acted;
  }

  async function startLifecycle(config: EndpointConfig, instanceID: number, instanceName: string): Promise<boolean> {
    const input: LifecycleInput = {
      instanceID,
      instanceName,
      imageName: config.image,
      endpoint: config.endpoint,
      runningPod: config.runningPod,
      userData: userDataWithStopPolicy(config.userData, config.stopPolicy),
      contextualization: config.contextualization,
      stallingIntervalSeconds: db.stallingInterval,
      maxLifetimeSeconds: config.maxLifetimeSeconds,
      maxStartupSeconds: config.maxStartupSeconds,
      drainDeadlineSeconds: config.drainDeadlineSeconds,
    };
    const handle = await client.workflow.start('instanceLifecycle', {
      workflowId: lifecycleWorkflowId(instanceID),
      taskQueue,
      args: [input],
      // One workflow per instance, ever: a second start of a live one is a no-op, of a closed one an error.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: VmStatus, value: 'New' },
        { key: VmImage, value: config.image },
        { key: VmEndpoint, value: config.endpoint },
        { key: VmRunningPod, value: config.runningPod },
      ],
    });
    return handle.firstExecutionRunId !== undefined;
  }

  return {
    /** Fills every endpoint's free slots and makes sure each New instance has its workflow. */
    async launchFreeSlots(): Promise<LaunchReport[]> {
      const log = activityLogger();
      const reports: LaunchReport[] = [];
      const mode = await store.mode();
      for (const config of deps.endpoints) {
        const { endpoint } = config;
        try {
          const demand = await demandOf(config);
          await noteIdleHalts(config);
          const held = await launchHold(mode, endpoint);
          if (held) {
            const report: LaunchReport = { endpoint, reserved: [], started: [], held, ...demand };
            if (mode === 'drain') report.stopped = await applyMode('drain', endpoint);
            if (mode === 'halt') report.halted = await applyMode('halt', endpoint);
            log.info({ endpoint, held }, 'Director launches nothing at the endpoint');
            reports.push(report);
            continue;
          }
          // Toward the demand's target when there is a source; never below the live count: nothing is stopped to shrink.
          const reserved = must(`reserve ${endpoint}`, await db.reserveInstances(endpoint, config.image, config.runningPod, demand?.target ?? config.maxInstances));
          // New rows without a running workflow (reserved now, or left by a pass that died midway) get one.
          const waiting = await instances.instances({ endpoint, statuses: ['New'] });
          const started: number[] = [];
          for (const { instanceID, name } of waiting) {
            try {
              await startLifecycle(config, instanceID, name);
              started.push(instanceID);
              // A launch is a slot reserved by this pass; a start for an older New row may find its workflow running.
              if (reserved.includes(instanceID)) {
                directorLaunches.inc({ endpoint });
                activityLogger({ instanceID }).info({ endpoint, name }, 'instance launched');
              }
            } catch (err) {
              if ((err as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw err;
            }
          }
          reports.push({ endpoint, reserved, started, ...demand });
        } catch (err) {
          directorFailures.inc({ endpoint });
          log.error({ endpoint, err }, 'Director pass failed for the endpoint');
          throw err;
        }
      }
      return reports;
    },

    /**
     * The safety net of the original VirtualMachineManager: declares silent instances Stalled; those
     * whose workflow is gone are stopped at their endpoint and recorded Halted here.
     */
    async sweepStalled(): Promise<SweepReport> {
      // One by one, each through the safety rules: a mass silence after an outage must not stall the fleet.
      const cutoff = new Date(now().getTime() - db.stallingInterval * 1000);
      const silent = await unwatched.silentSince(cutoff);
      const stalled: number[] = [];
      const held: { instanceID: number; reason: string }[] = [];
      for (const { instanceID, endpoint } of silent) {
        const verdict = await guard.silenceVerdict(instanceID, endpoint, 'stall');
        if (!verdict.allow) {
          held.push({ instanceID, reason: verdict.reason ?? verdict.rule ?? 'held' });
          continue;
        }
        if ((await unwatched.stall(instanceID)).OK) stalled.push(instanceID);
      }
      if (held.length) activityLogger().warn({ held: held.length, first: held[0] }, 'stalled sweep: silent instances held back by the safety rules');
      const halted: number[] = [];
      for (const instanceID of stalled) {
        try {
          const description = await client.workflow.getHandle(lifecycleWorkflowId(instanceID)).describe();
          if (description.status.name === 'RUNNING') continue; // its own stall timer halts it
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        const [{ endpoint, uniqueID }] = await instances.instances({ instanceID });
        const driver = deps.drivers.get(endpoint);
        if (driver && uniqueID) await driver.stopInstance(uniqueID);
        must('record Halted', await unwatched.recordHalted(instanceID));
        activityLogger({ instanceID, uniqueID }).info({ endpoint }, 'stalled instance without a workflow stopped and recorded Halted');
        halted.push(instanceID);
      }
      return held.length ? { stalled, halted, held } : { stalled, halted };
    },
  };
}

export type DirectorActivities = ReturnType<typeof createDirectorActivities>;
