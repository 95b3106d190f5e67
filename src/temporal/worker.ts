import { CancelledFailure, type Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { IllegalStateError } from '@temporalio/common';
import {
  type ActivityExecuteInput,
  type ActivityInboundCallsInterceptor,
  type NativeConnection,
  type Next,
  Runtime,
  Worker,
  type WorkerOptions,
} from '@temporalio/worker';
import { type VmCredentials, createCloudActivities } from '../../activities/cloud';
import { createDatabaseActivities } from '../../activities/database';
import { createDirectorActivities } from '../../activities/director';
import { createSafetyActivities } from '../../activities/safety';
import { createSshActivities } from '../../activities/ssh';
import type { CloudDriver } from '../drivers/driver';
import type { FleetConfig } from '../config/fleet';
import { type Logger, PinoSdkLogger, processLogger, sdkLevelOf } from '../ops/log';
import { activityFailures } from '../ops/metrics';
import type { VirtualMachineDB } from '../db/vmdb';

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
  /** Concurrency and cache limits, passed to the SDK as they are. */
  tuning?: WorkerTuning;
}

/** The worker options that trade memory and CPU for throughput. */
export type WorkerTuning = Pick<
  WorkerOptions,
  'maxConcurrentWorkflowTaskPolls' | 'maxConcurrentWorkflowTaskExecutions' | 'maxConcurrentLocalActivityExecutions' | 'maxConcurrentActivityTaskExecutions' | 'maxCachedWorkflows' | 'workflowThreadPoolSize'
>;

/** Every activity the vmdb workflows call, bound to this process's database, drivers and client. */
export function vmdbActivities(deps: Omit<VmdbWorkerDeps, 'connection' | 'namespace' | 'workflowBundle'>) {
  return {
    ...createDatabaseActivities(deps.db),
    ...createCloudActivities(deps.drivers, deps.vmCredentials, { db: deps.db, backoff: deps.fleet.safety.backoff }),
    ...createSshActivities({ privateKeyPath: deps.sshPrivateKeyPath, privateKey: deps.sshPrivateKey }),
    ...createDirectorActivities({ db: deps.db, client: deps.client, taskQueue: deps.taskQueue, endpoints: deps.fleet.endpoints, drivers: deps.drivers, safety: deps.fleet.safety }),
    ...createSafetyActivities({ db: deps.db, client: deps.client, config: deps.fleet.safety, endpoints: deps.fleet.endpoints, drivers: deps.drivers }),
  };
}

export async function createVmdbWorker(deps: VmdbWorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../../workflows') }),
    activities: vmdbActivities(deps),
    interceptors: { activity: [(ctx) => ({ inbound: new ActivityFailureCounter(ctx) })] },
    ...deps.tuning,
  });
}

/** Counts every failed activity attempt in vmdb_activity_failures_total (a cancellation is not a failure). */
export class ActivityFailureCounter implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: Context) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      if (!(err instanceof CancelledFailure)) activityFailures.inc({ activity: this.ctx.info.activityType });
      throw err;
    }
  }
}

export interface RuntimeSetup {
  /** Where the SDK's, the workflows' and the activities' logs go; default the process logger. */
  logger?: Logger;
  /** `host:port` of the Prometheus endpoint of the SDK's own worker metrics; none when undefined. */
  temporalMetricsBindAddress?: string;
}

/**
 * Installs the Temporal SDK runtime: its logs (Core's included) through pino, and its worker
 * metrics (temporal_*) on their Prometheus port. It must run once, before any worker or native
 * connection exists; when a runtime is already there (tests install their own) it changes nothing
 * and returns false.
 */
export function installRuntime(setup: RuntimeSetup = {}): boolean {
  const logger = setup.logger ?? processLogger();
  const sdkLevel = sdkLevelOf(logger.level);
  try {
    Runtime.install({
      logger: new PinoSdkLogger(logger),
      telemetryOptions: {
        // Core is chatty below WARN; it speaks at INFO only when debugging.
        logging: { forward: {}, filter: { core: sdkLevel === 'TRACE' || sdkLevel === 'DEBUG' ? 'INFO' : 'WARN', other: 'ERROR' } },
        ...(setup.temporalMetricsBindAddress ? { metrics: { prometheus: { bindAddress: setup.temporalMetricsBindAddress } } } : {}),
      },
    });
    return true;
  } catch (err) {
    if (err instanceof IllegalStateError) {
      logger.warn({ reason: err.message }, 'Temporal runtime already installed: its logger and metrics settings are kept');
      return false;
    }
    // "Failed to start prometheus metrics exporter: Address already in use": say which setting.
    if (setup.temporalMetricsBindAddress && /prometheus|address/i.test((err as Error).message)) {
      throw new Error(`VMDB_TEMPORAL_METRICS_PORT: cannot serve the Temporal metrics on ${setup.temporalMetricsBindAddress}: ${(err as Error).message}`);
    }
    throw err;
  }
}
