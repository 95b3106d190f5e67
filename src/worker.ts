import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { type VmCredentials, createCloudActivities } from '../activities/cloud';
import { createDatabaseActivities } from '../activities/database';
import { createDirectorActivities } from '../activities/director';
import { createSshActivities } from '../activities/ssh';
import type { CloudDriver } from './drivers/driver';
import type { FleetConfig } from './fleet-config';
import type { VirtualMachineDB } from './vmdb';

export interface VmdbWorkerDeps {
  db: VirtualMachineDB;
  client: Client;
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  fleet: FleetConfig;
  drivers: ReadonlyMap<string, CloudDriver>;
  /** Private key the SSH contextualization logs in with (kept out of workflow histories). */
  sshPrivateKeyPath?: string;
  /** Or the key itself. */
  sshPrivateKey?: string;
  /** Where VMs reach the API and the secret their tokens are signed with. */
  vmCredentials?: VmCredentials;
  /** A prebuilt bundle (tests share one); by default the workflows are bundled from source. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

/** Every activity the vmdb workflows call, bound to this process's database, drivers and client. */
export function vmdbActivities(deps: Omit<VmdbWorkerDeps, 'connection' | 'namespace' | 'workflowBundle'>) {
  return {
    ...createDatabaseActivities(deps.db),
    ...createCloudActivities(deps.drivers, deps.vmCredentials),
    ...createSshActivities({ privateKeyPath: deps.sshPrivateKeyPath, privateKey: deps.sshPrivateKey }),
    ...createDirectorActivities({ db: deps.db, client: deps.client, taskQueue: deps.taskQueue, endpoints: deps.fleet.endpoints, drivers: deps.drivers }),
  };
}

export async function createVmdbWorker(deps: VmdbWorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: vmdbActivities(deps),
  });
}
