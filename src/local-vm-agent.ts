import { loadConfig } from './config';
import { LifecycleClient } from './lifecycle-client';
import { connectClient, loadTemporalSettings } from './temporal-config';
import { VirtualMachineDB } from './vmdb';

/**
 * What runs "inside" a VM of the local driver for the demo: it heartbeats
 * every VMDB_AGENT_PERIOD seconds through the instance's workflow and obeys
 * the answer (stop: drain, then declare halting; halt: exit at once).
 */
async function main(): Promise<void> {
  const uniqueID = process.env.VMDB_UNIQUE_ID;
  if (!uniqueID) throw new Error('VMDB_UNIQUE_ID is not set (this program runs inside a local-driver VM)');
  const period = Number(process.env.VMDB_AGENT_PERIOD ?? 30) * 1000;
  const config = loadConfig();
  const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval });
  const client = await connectClient(loadTemporalSettings());
  const lifecycle = new LifecycleClient(client, db);
  const started = Date.now();
  let jobs = 0;
  for (let sequence = 1; ; sequence++) {
    jobs += Math.random() < 0.3 ? 1 : 0;
    const uptime = Math.round((Date.now() - started) / 1000);
    const answer = await lifecycle.heartbeat(uniqueID, { load: Math.round(Math.random() * 100) / 100, jobs, transferredFiles: jobs * 3, transferredBytes: jobs * 4096, uptime }, `${uniqueID}-${sequence}`);
    if (answer.OK && answer.Value === 'stop') {
      await lifecycle.halting(uniqueID, 0);
      break;
    }
    if (answer.OK && answer.Value === 'halt') break;
    // Not recorded yet (UniqueID not stored, server restarting): try again next period.
    await new Promise((resolve) => setTimeout(resolve, period));
  }
  await client.connection.close();
  await db.close();
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
