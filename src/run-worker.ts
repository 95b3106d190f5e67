import type { Server } from 'node:http';
import type { Connection } from '@temporalio/client';
import { createDrivers } from './drivers/registry';
import { type Config, loadConfig } from './config/database';
import { redact } from './db/database';
import { type FleetConfig, driverConfigs, loadFleetConfig } from './config/fleet';
import { type Logger, exitOnFatal, processLogger } from './ops/log';
import { metricsBindAddress, serveMetrics } from './ops/metrics';
import { readiness } from './ops/readiness';
import { FleetGuard } from './safety/guard';
import { type Pulse, startPulse } from './safety/pulse';
import { ensureSchedules } from './temporal/schedules';
import { ensureSearchAttributes } from './temporal/search-attributes';
import { applyConfigFile, loadSettings, settingsFor } from './config/settings';
import { type TemporalSettings, connectClient, connectWorkerConnection, loadTemporalSettings } from './config/temporal';
import { VirtualMachineDB } from './db/vmdb';
import { createVmdbWorker, installRuntime } from './temporal/worker';
import { type WorkerHealthServer, serveWorkerHealth } from './ops/worker-health';

/** The settings the worker reads besides loadConfig's, loadTemporalSettings' and loadFleetConfig's. */
const WORKER_SETTINGS = ['VMDB_SSH_KEY_FILE', 'VMDB_PUBLIC_API_URL', 'VMDB_API_PORT', 'VMDB_TOKEN_SECRET', 'VMDB_WORKER_HEALTH_PORT', 'VMDB_WORKER_HEALTH_HOST', 'VMDB_WORKER_CACHED_WORKFLOWS', 'VMDB_METRICS_TOKEN'];

export interface WorkerRunOptions {
  config?: Config;
  temporal?: TemporalSettings;
  fleet?: FleetConfig;
  logger?: Logger;
  /** `host:port` of the worker's /metrics (vmdb_*), or null for none; default VMDB_WORKER_METRICS_PORT. */
  metricsBindAddress?: string | null;
  /** `host:port` of the Temporal SDK's worker metrics (temporal_*), or null for none; default VMDB_TEMPORAL_METRICS_PORT. */
  temporalMetricsBindAddress?: string | null;
}

export const DEFAULT_WORKER_METRICS_PORT = 9464;
export const DEFAULT_TEMPORAL_METRICS_PORT = 9465;

/**
 * The vmdb worker process: database, drivers, search attributes, the Director
 * and sweep Schedules, then the worker until SIGINT/SIGTERM (the SDK runtime
 * turns those into a graceful shutdown that lets running activities finish).
 */
export async function runWorker(options: WorkerRunOptions = {}): Promise<void> {
  // Every setting is checked at start (unknown VMDB_* variables, bad urls, the token secret the VMs'
  // tokens are signed with); a caller that passes its own config (npm start) has done this already.
  // VMDB_CONFIG_FILE's values join the environment first, so that every reader of it sees them.
  if (!options.config) applyConfigFile(process.env);
  const settings = options.config ? settingsFor(process.env, WORKER_SETTINGS) : loadSettings(process.env, { require: ['worker'] });
  const log = options.logger ?? processLogger();
  const metricsAt = options.metricsBindAddress !== undefined
    ? (options.metricsBindAddress ?? undefined)
    : metricsBindAddress('VMDB_WORKER_METRICS_PORT', process.env.VMDB_WORKER_METRICS_PORT, DEFAULT_WORKER_METRICS_PORT);
  const temporalMetricsAt = options.temporalMetricsBindAddress !== undefined
    ? (options.temporalMetricsBindAddress ?? undefined)
    : metricsBindAddress('VMDB_TEMPORAL_METRICS_PORT', process.env.VMDB_TEMPORAL_METRICS_PORT, DEFAULT_TEMPORAL_METRICS_PORT);
  const config = options.config ?? loadConfig();
  const temporal = options.temporal ?? loadTemporalSettings();
  const fleet = options.fleet ?? loadFleetConfig();
  const drivers = createDrivers(driverConfigs(fleet));
  // VMDB_AUTO_MIGRATE=false: refuse a schema that is behind instead of migrating it (`vmdb migrate` does that).
  const db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval, migrate: config.autoMigrate ?? true });
  let health: WorkerHealthServer | undefined;
  let metricsServer: Server | undefined;
  let pulse: Pulse | undefined;
  // After the checks above (a process that stops on a bad setting binds no port), and before anything
  // of the SDK's native side exists: the worker connection below creates it.
  if (installRuntime({ logger: log, temporalMetricsBindAddress: temporalMetricsAt }) && temporalMetricsAt) {
    log.info({ address: `http://${temporalMetricsAt}/metrics` }, 'Temporal worker metrics');
  }
  const client = await connectClient(temporal);
  const connection = await connectWorkerConnection(temporal);
  try {
    if (metricsAt) {
      try {
        metricsServer = await serveMetrics(metricsAt, { token: settings.api.metricsToken });
      } catch (err) {
        throw new Error(`VMDB_WORKER_METRICS_PORT: cannot listen on ${metricsAt}: ${(err as Error).message}`);
      }
      log.info({ address: `http://${metricsAt}/metrics` }, 'worker metrics');
    }
    try {
      const added = await ensureSearchAttributes(client.connection as Connection, temporal.namespace);
      if (added.length) log.info({ added }, 'registered search attributes');
    } catch (err) {
      // Temporal Cloud registers them in its own console; the workflows need them either way.
      log.warn({ reason: (err as Error).message }, 'could not check search attributes (register VmStatus, VmImage, VmEndpoint, VmRunningPod as Keyword)');
    }
    await ensureSchedules(client, fleet, temporal.taskQueue);
    // Recorded before the worker polls: a restart after downtime must hold stalls before the first overdue timer fires.
    const guard = new FleetGuard(db, fleet.safety, log);
    pulse = startPulse('worker', db, fleet.safety, {
      log,
      probe: () => client.workflowService.getSystemInfo({}),
      onBeat: () => guard.evaluateAll(fleet.endpoints.map((e) => e.endpoint)),
    });
    await pulse.beat();
    const worker = await createVmdbWorker({
      db,
      client,
      connection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      fleet,
      drivers,
      sshPrivateKeyPath: settings.sshKeyFile,
      vmCredentials: { apiUrl: settings.api.publicUrl, tokenSecret: settings.api.tokenSecret },
      tuning: settings.workerCachedWorkflows === undefined ? undefined : { maxCachedWorkflows: settings.workerCachedWorkflows },
    });
    if (settings.workerHealth) {
      const at = settings.workerHealth;
      try {
        health = await serveWorkerHealth({
          ...at,
          probe: () =>
            readiness({
              db,
              temporal: client,
              extra: { worker: { ok: () => worker.getState() === 'RUNNING', advice: 'the worker is not polling its task queue (starting or stopping)' } },
            }),
        });
      } catch (err) {
        throw new Error(`VMDB_WORKER_HEALTH_PORT: cannot listen on ${at.host}:${at.port}: ${(err as Error).message}`);
      }
      log.info({ address: health.url }, 'worker health (/healthz, /readyz)');
    }
    log.info(
      {
        temporal: temporal.address,
        namespace: temporal.namespace,
        taskQueue: temporal.taskQueue,
        database: redact(config.databaseUrl),
        endpoints: fleet.endpoints.map((e) => e.endpoint),
      },
      'vmdb worker running',
    );
    await worker.run();
    log.info('vmdb worker stopped');
  } finally {
    await pulse?.stop();
    await health?.close();
    if (metricsServer) await new Promise((resolve) => metricsServer!.close(resolve));
    await connection.close();
    await client.connection.close();
    await db.close();
  }
}

if (require.main === module) {
  runWorker().catch(exitOnFatal);
}
