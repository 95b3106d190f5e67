import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Client, Connection } from '@temporalio/client';
import { loadApiConfig } from './api/config';
import { buildApi } from './api/server';
import { readTlsFiles, reloadOnSighup } from './api/tls';
import { loadConfig } from './config/database';
import { createDrivers } from './drivers/registry';
import { DEFAULT_FLEET, type FleetConfig, driverConfigs, loadFleetConfig } from './config/fleet';
import { usagePrices } from './db/usage';
import { LifecycleClient } from './temporal/lifecycle-client';
import { LocalVms } from './ops/local-vms';
import { type Logger, exitOnFatal, processLogger } from './ops/log';
import { closeApi } from './ops/graceful';
import { runWorker } from './run-worker';
import { applyConfigFile, loadSettings } from './config/settings';
import { loadOrCreateSecrets } from './config/secrets-file';
import { connectClient, loadTemporalSettings } from './config/temporal';
import { VirtualMachineDB } from './db/vmdb';
import { devServerArgs } from './temporal/dev-server-args';

const ROOT = join(__dirname, '..', '..');
const SERVER_STOP_GRACE_MS = 15_000;

/** The data folder: databases, the Temporal store, the local VMs' state and the generated secrets. */
function prepareDataDir(): string {
  const dir = resolve(process.env.VMDB_DATA_DIR || 'data');
  // The secrets, databases and VM states are nobody else's business.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Starts `temporal server start-dev` from the project's venv, with its SQLite file and our search attributes; returns its stop. */
async function startEmbeddedTemporal(address: string, dbFile: string): Promise<() => Promise<void>> {
  const out = execFileSync('bash', [join(ROOT, 'scripts', 'temporal-env.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const cli = /^TEMPORAL_CLI=(.*)$/m.exec(out)?.[1];
  if (!cli) throw new Error('scripts/temporal-env.sh did not report the Temporal CLI');
  const [ip, port] = address.split(':');
  const uiPort = process.env.VMDB_TEMPORAL_UI_PORT || '8233';
  const args = devServerArgs({ ip, port, uiPort, dbFile });
  // Its own process group: Ctrl-C reaches it through us, after the worker has drained.
  const server = spawn(cli, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  for (let i = 0; i < 100; i++) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.close();
      console.log(`Temporal UI    http://${ip}:${uiPort}   (filter: VmStatus="Running")`);
      // Waits for the exit, so that a start right after this one finds the ports free.
      return async () => {
        if (server.exitCode !== null || server.signalCode !== null) return;
        const exited = once(server, 'exit');
        server.kill('SIGTERM');
        const killer = setTimeout(() => server.kill('SIGKILL'), SERVER_STOP_GRACE_MS);
        await exited;
        clearTimeout(killer);
      };
    } catch {
      if (server.exitCode !== null) throw new Error(`temporal server start-dev exited with ${server.exitCode}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  server.kill('SIGTERM');
  throw new Error(`Temporal dev server did not answer on ${address}`);
}

/** The default fleet's local VMs run the real vmdb-agent, with a short period. */
function demoFleet(dataDir: string): FleetConfig {
  if (process.env.VMDB_FLEET_FILE) return loadFleetConfig();
  return {
    ...DEFAULT_FLEET,
    directorEverySeconds: 30,
    endpoints: DEFAULT_FLEET.endpoints.map((e) => ({
      ...e,
      driver: { ...e.driver, stateDir: join(dataDir, 'vms'), command: [process.execPath, require.resolve('./agent/main')] },
    })),
  };
}

/** Records the local VMs that no longer run; a failure is only logged: the reconciliation Schedule catches up. */
async function recordGone(localVms: LocalVms, db: VirtualMachineDB, client: Client, log: Logger, what: string): Promise<void> {
  try {
    const gone = await localVms.recordGone(db, client);
    if (gone.length) console.log(`demo VMs       ${gone.map((g) => g.instanceID).join(', ')} ${what}: recorded ${[...new Set(gone.map((g) => g.now))].join('/')}`);
  } catch (err) {
    log.warn({ err }, `could not record the demo VMs ${what}`);
  }
}

/**
 * `npm start`: the whole service on its embedded defaults: a Temporal dev
 * server persisting under the data folder (unless TEMPORAL_ADDRESS names a
 * cluster), the SQLite database, the API, the worker with the Director and
 * sweep Schedules, and local demo VMs running vmdb-agent.
 */
async function main(): Promise<void> {
  // VMDB_CONFIG_FILE's values join the environment (a variable that is set wins), so that what
  // follows, and the local VMs this process starts, see one set of settings.
  applyConfigFile(process.env);
  const dataDir = prepareDataDir();
  const generated = loadOrCreateSecrets(dataDir);
  const env = process.env;
  env.VMDB_DATABASE_URL ||= `sqlite:${join(dataDir, 'vmdb.sqlite')}`;
  if (!env.VMDB_TOKEN_SECRET && !env.VMDB_TOKEN_SECRETS) env.VMDB_TOKEN_SECRET = generated.tokenSecret;
  if (!env.VMDB_OPERATOR_TOKENS_FILE) env.VMDB_ADMIN_TOKEN ||= generated.adminToken;
  const api = loadApiConfig(env);
  const apiUrl = `${api.tls ? 'https' : 'http'}://${api.host}:${api.port}`;
  env.VMDB_PUBLIC_API_URL ||= apiUrl;
  // Inherited by the local VMs (vmdb-agent): a short period, a stop file in the data folder, and "powering off" is exiting.
  env.VMDB_AGENT_PERIOD ||= '10';
  env.VMDB_AGENT_STOP_FILE ||= join(dataDir, 'agent-stop');
  env.VMDB_AGENT_HALT_COMMAND ||= '["true"]';
  // Every setting, checked before anything starts: unknown VMDB_* variables, bad urls, ports, files.
  loadSettings(env, { require: ['api', 'worker'] });
  const certificate = api.tls ? readTlsFiles(api.tls) : undefined;

  const embedded = !env.TEMPORAL_ADDRESS;
  const temporal = loadTemporalSettings(embedded ? { ...env, TEMPORAL_ADDRESS: `127.0.0.1:${env.VMDB_TEMPORAL_PORT || 7233}` } : env);
  const stopServer = embedded ? await startEmbeddedTemporal(temporal.address, join(dataDir, 'temporal.db')) : undefined;
  const config = loadConfig(env);
  const fleet = demoFleet(dataDir);
  const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval, migrate: config.autoMigrate ?? true });
  const client = await connectClient(temporal);
  const log = processLogger();
  const localVms = new LocalVms(fleet);
  // Before the worker's first Director pass: the demo VMs the last run left behind are dead.
  await recordGone(localVms, db, client, log, 'found stopped since the last run');
  // The dashboard links each instance to its workflow: in the embedded UI unless one is named.
  const temporalUi = api.temporalUiUrl ?? (embedded ? `http://${temporal.address.split(':')[0]}:${env.VMDB_TEMPORAL_UI_PORT || 8233}` : undefined);
  const app = await buildApi({
    db,
    lifecycle: new LifecycleClient(client, db),
    temporal: client,
    operators: api.operators,
    tokenSecret: api.tokenSecret,
    previousTokenSecrets: api.previousTokenSecrets,
    metricsToken: api.metricsToken,
    rateLimits: api.rateLimits,
    tls: certificate,
    trustProxy: api.trustProxy,
    logger: log.child({ component: 'api' }),
    temporalUi: temporalUi ? { url: temporalUi, namespace: temporal.namespace } : undefined,
    safety: fleet.safety,
    prices: usagePrices(fleet),
  });
  // Only with TLS: otherwise SIGHUP keeps its default (the terminal closed: stop).
  const stopReloads = api.tls ? reloadOnSighup(app.server as unknown as Parameters<typeof reloadOnSighup>[0], api.tls, log.child({ component: 'api' })) : undefined;
  try {
    await app.listen({ host: api.host, port: api.port });
    // The banner is for the person at the terminal: plain lines, whatever the log format.
    console.log(`API            ${apiUrl}/api/v1   docs ${apiUrl}/docs   metrics ${apiUrl}/metrics`);
    console.log(`Dashboard      ${apiUrl}/   (sign in with the operator token)`);
    if (env.VMDB_ADMIN_TOKEN === generated.adminToken) console.log(`operator token ${generated.adminToken}   (export VMDB_TOKEN=... for the vmdb CLI)`);
    await runWorker({ config, temporal, fleet, logger: log.child({ component: 'worker' }) });
  } finally {
    stopReloads?.();
    await closeApi(app); // the requests in flight are answered, then their connections closed
    try {
      // Local demo VMs are processes of this machine: stopped with the service, and recorded so.
      await localVms.stopAll();
      await recordGone(localVms, db, client, log, 'stopped with the service');
    } finally {
      await client.connection.close();
      await db.close();
      await stopServer?.();
    }
  }
}

main().catch(exitOnFatal);
