import { redact } from './db/database';
import { loadConfig } from './config/database';
import { VirtualMachineDB } from './db/vmdb';

/**
 * `npm start` for now: a small tour of the library on the configured database
 * (SQLite file by default). A Director starts three VMs, they report, an
 * operator stops one, and the fleet is listed.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval });
  const must = <T>(step: string, result: { OK: true; Value: T } | { OK: false; Message: string }): T => {
    if (!result.OK) throw new Error(`${step}: ${result.Message}`);
    return result.Value;
  };
  try {
    console.log(`vmdb demo on ${redact(config.databaseUrl)} (stalling interval ${db.stallingInterval}s)`);
    const run = Date.now().toString(36);
    const ids: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const uniqueID = `demo-${run}-${i}`;
      const id = must('insertInstance', await db.insertInstance(uniqueID, 'CernVM4-demo', `demo-${run}-vm${i}`, 'DemoCloud::cloud.example.org', 'demo-pod'));
      must('declareInstanceRunning', await db.declareInstanceRunning(uniqueID, `::ffff:192.0.2.${i}`, `10.0.0.${i}`));
      must('instanceIDHeartBeat', await db.instanceIDHeartBeat(uniqueID, 0.5 * i, i, 10 * i, 1000 * i, 300));
      ids.push(id);
    }
    must('declareInstanceStopping', await db.declareInstanceStopping(ids[0]));
    const reply = await db.instanceIDHeartBeat(`demo-${run}-1`, 0.1, 0, 0, 0, 600);
    console.log(`heartbeat of a stopping VM -> ${reply.OK ? 'accepted' : `refused, State "${reply.State}"`}`);
    must('declareInstanceHalting', await db.declareInstanceHalting(`demo-${run}-1`, 0.0));
    console.log('image status:', must('checkImageStatus', await db.checkImageStatus('CernVM4-demo')));
    console.log('instances by status:', must('getInstanceCounters', await db.getInstanceCounters('Status', {})));
    const content = must('getInstancesContent', await db.getInstancesContent({ 'inst.InstanceID': ids }, [['inst.InstanceID', 'ASC']], 0, 10));
    const pick = ['inst.InstanceID', 'inst.Name', 'inst.Status', 'inst.PublicIP', 'inst.Load'].map((f) => content.ParameterNames.indexOf(f));
    console.table(content.Records.map((r) => Object.fromEntries(pick.map((i) => [content.ParameterNames[i], r[i]]))));
  } finally {
    await db.close();
  }
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
