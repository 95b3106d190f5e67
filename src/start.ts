import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { loadConfig } from './config';
import { DEFAULT_FLEET, type FleetConfig, loadFleetConfig } from './fleet-config';
import { runWorker } from './run-worker';
import { loadTemporalSettings } from './temporal-config';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';

const ROOT = join(__dirname, '..', '..');

/** Starts `temporal server start-dev` from the project's venv, with its SQLite file and our search attributes. */
async function startEmbeddedTemporal(address: string): Promise<() => void> {
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'temporal-env.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const cli = /^TEMPORAL_CLI=(.*)$/m.exec(out)?.[1];
  if (!cli) throw new Error('scripts/temporal-env.sh did not report the Temporal CLI');
  const [ip, port] = address.split(':');
  const uiPort = process.env.VMDB_TEMPORAL_UI_PORT || '8233';
  const args = ['server', 'start-dev', '--ip', ip, '--port', port, '--ui-port', uiPort, '--db-filename', process.env.VMDB_TEMPORAL_DB || 'vmdb-temporal.db', '--log-level', 'warn'];
  for (const key of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=Keyword`);
  const server = spawn(cli, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.close();
      console.log(`Temporal dev server on ${address}, Web UI http://${ip}:${uiPort} (filter: VmStatus="Running")`);
      return () => server.kill('SIGTERM');
    } catch {
      if (server.exitCode !== null) throw new Error(`temporal server start-dev exited with ${server.exitCode}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
  server.kill('SIGTERM');
  throw new Error(`Temporal dev server did not answer on ${address}`);
}

/** The default fleet's local VMs run the demo agent, so instances really heartbeat. */
function demoFleet(): FleetConfig {
  if (process.env.VMDB_FLEET_FILE) return loadFleetConfig();
  return {
    ...DEFAULT_FLEET,
    endpoints: DEFAULT_FLEET.endpoints.map((e) => ({ ...e, driver: { ...e.driver, command: [process.execPath, require.resolve('./local-vm-agent')] } })),
  };
}

/**
 * `npm start`: the whole service on its embedded defaults: a Temporal dev
 * server (unless TEMPORAL_ADDRESS names a cluster), the SQLite database, the
 * worker with the Director and sweep Schedules, local VMs that heartbeat.
 */
async function main(): Promise<void> {
  const temporal = loadTemporalSettings();
  const stopServer = process.env.TEMPORAL_ADDRESS ? undefined : await startEmbeddedTemporal(temporal.address);
  try {
    await runWorker({ config: loadConfig(), temporal, fleet: demoFleet() });
  } finally {
    stopServer?.();
  }
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
