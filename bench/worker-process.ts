/**
 * A vmdb worker in its own process, so that a benchmark can read its memory apart from the load it
 * drives: the real worker (createVmdbWorker, workflows bundled from source) over a fake cloud.
 *
 *   node dist/bench/worker-process.js '<json: { databaseUrl, address, namespace, taskQueue, endpoint, tuning? }>'
 *
 * Prints "ready" on stdout once polling; SIGTERM shuts it down.
 */
import { temporalBinaries } from '../test/support/temporal'; // first: quiets the SDK runtime's logs
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { validateFleet } from '../src/config/fleet';
import { VirtualMachineDB } from '../src/db/vmdb';
import { type WorkerTuning, createVmdbWorker } from '../src/temporal/worker';
import { BenchDriver } from './support';

void temporalBinaries; // imported for its side effect only

interface WorkerProcessConfig {
  databaseUrl: string;
  address: string;
  namespace: string;
  taskQueue: string;
  endpoint: string;
  tuning?: WorkerTuning;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as WorkerProcessConfig;
  const db = await VirtualMachineDB.open({ url: config.databaseUrl });
  const connection = await NativeConnection.connect({ address: config.address });
  const client = new Client({ connection: await Connection.connect({ address: config.address }), namespace: config.namespace });
  const worker = await createVmdbWorker({
    db,
    client,
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    fleet: validateFleet({ endpoints: [{ endpoint: config.endpoint, image: 'bench-image', runningPod: 'benchvo', maxInstances: 1, driver: { type: 'bench' } }] }),
    drivers: new Map([[config.endpoint, new BenchDriver(config.endpoint)]]),
    tuning: config.tuning,
  });
  const running = worker.run();
  console.log('ready');
  await running;
  await connection.close();
  await db.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench worker] failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
