import type { Connection } from '@temporalio/client';
import { createDrivers } from './drivers/driver';
import { type Config, loadConfig } from './config';
import { redact } from './database';
import { type FleetConfig, driverConfigs, loadFleetConfig } from './fleet-config';
import { ensureSchedules } from './schedules';
import { ensureSearchAttributes } from './search-attributes';
import { type TemporalSettings, connectClient, connectWorkerConnection, loadTemporalSettings } from './temporal-config';
import { VirtualMachineDB } from './vmdb';
import { createVmdbWorker } from './worker';

export interface WorkerRunOptions {
  config?: Config;
  temporal?: TemporalSettings;
  fleet?: FleetConfig;
}

/**
 * The vmdb worker process: database, drivers, search attributes, the Director
 * and sweep Schedules, then the worker until SIGINT/SIGTERM (the SDK runtime
 * turns those into a graceful shutdown that lets running activities finish).
 */
export async function runWorker(options: WorkerRunOptions = {}): Promise<void> {
  const config = options.config ?? loadConfig();
  const temporal = options.temporal ?? loadTemporalSettings();
  const fleet = options.fleet ?? loadFleetConfig();
  const drivers = createDrivers(driverConfigs(fleet));
  const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval });
  const client = await connectClient(temporal);
  const connection = await connectWorkerConnection(temporal);
  try {
    try {
      const added = await ensureSearchAttributes(client.connection as Connection, temporal.namespace);
      if (added.length) console.log(`registered search attributes ${added.join(', ')}`);
    } catch (err) {
      // Temporal Cloud registers them in its own console; the workflows need them either way.
      console.warn(`could not check search attributes (register VmStatus, VmImage, VmEndpoint, VmRunningPod as Keyword): ${(err as Error).message}`);
    }
    await ensureSchedules(client, fleet, temporal.taskQueue);
    const worker = await createVmdbWorker({
      db,
      client,
      connection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      fleet,
      drivers,
      sshPrivateKeyPath: process.env.VMDB_SSH_KEY_FILE || undefined,
      vmCredentials: { apiUrl: process.env.VMDB_PUBLIC_API_URL || 'http://127.0.0.1:8080', tokenSecret: process.env.VMDB_TOKEN_SECRET || undefined },
    });
    console.log(
      `vmdb worker on ${temporal.address} namespace ${temporal.namespace} task queue ${temporal.taskQueue}; database ${redact(config.databaseUrl)}; endpoints ${fleet.endpoints.map((e) => e.endpoint).join(', ')}`,
    );
    await worker.run();
  } finally {
    await connection.close();
    await client.connection.close();
    await db.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
