import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { CloudDriver } from '../src/drivers/driver';
import type { EndpointConfig } from '../src/fleet-config';
import { activityLogger } from '../src/log';
import { directorFailures, directorLaunches } from '../src/metrics';
import type { VirtualMachineDB } from '../src/vmdb';
import { type LifecycleInput, VmEndpoint, VmImage, VmRunningPod, VmStatus, lifecycleWorkflowId } from '../workflows/definitions';

export interface DirectorDeps {
  db: VirtualMachineDB;
  client: Client;
  taskQueue: string;
  endpoints: readonly EndpointConfig[];
  drivers: ReadonlyMap<string, CloudDriver>;
}

export interface LaunchReport {
  endpoint: string;
  reserved: number[];
  started: number[];
}

function must<T>(what: string, result: { OK: true; Value: T } | { OK: false; Message: string }): T {
  if (!result.OK) throw new Error(`${what}: ${result.Message}`);
  return result.Value;
}

/** The Director's and the sweep's side effects: database, workflow starts, cloud. */
export function createDirectorActivities(deps: DirectorDeps) {
  const { db, client, taskQueue } = deps;

  async function startLifecycle(config: EndpointConfig, instanceID: number, instanceName: string): Promise<boolean> {
    const input: LifecycleInput = {
      instanceID,
      instanceName,
      imageName: config.image,
      endpoint: config.endpoint,
      runningPod: config.runningPod,
      userData: config.userData,
      contextualization: config.contextualization,
      stallingIntervalSeconds: db.stallingInterval,
      maxLifetimeSeconds: config.maxLifetimeSeconds,
      maxStartupSeconds: config.maxStartupSeconds,
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
      for (const config of deps.endpoints) {
        const { endpoint } = config;
        try {
          const reserved = must(`reserve ${endpoint}`, await db.reserveInstances(endpoint, config.image, config.runningPod, config.maxInstances));
          // New rows without a running workflow (reserved now, or left by a pass that died midway) get one.
          const waiting = must('list New instances', await db.getFields('vm_Instances', ['InstanceID', 'Name'], { Endpoint: endpoint, Status: 'New' }));
          const started: number[] = [];
          for (const [instanceID, name] of waiting as [number, string][]) {
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
          reports.push({ endpoint, reserved, started });
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
    async sweepStalled(): Promise<{ stalled: number[]; halted: number[] }> {
      const stalled = must('declareStalledInstances', await db.declareStalledInstances());
      const halted: number[] = [];
      for (const instanceID of stalled) {
        try {
          const description = await client.workflow.getHandle(lifecycleWorkflowId(instanceID)).describe();
          if (description.status.name === 'RUNNING') continue; // its own stall timer halts it
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        const [[endpoint, uniqueID]] = must('read instance', await db.getFields('vm_Instances', ['Endpoint', 'UniqueID'], { InstanceID: instanceID })) as [string, string][];
        const driver = deps.drivers.get(endpoint);
        if (driver && uniqueID) await driver.stopInstance(uniqueID);
        must('recordDBHalt', await db.recordDBHalt(instanceID, 0));
        activityLogger({ instanceID, uniqueID }).info({ endpoint }, 'stalled instance without a workflow stopped and recorded Halted');
        halted.push(instanceID);
      }
      return { stalled, halted };
    },
  };
}

export type DirectorActivities = ReturnType<typeof createDirectorActivities>;
