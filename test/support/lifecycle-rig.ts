import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type History, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import type { HeartbeatFigures } from '../../entities/heartbeat';
import type { Directive } from '../../entities/states';
import { type ApiDeps, buildApi } from '../../src/api/server';
import type { OperatorToken } from '../../src/auth/tokens';
import { type CloudDriver } from '../../src/drivers/driver';
import { createDrivers } from '../../src/drivers/registry';
import { type FleetConfig, driverConfigs, validateFleet } from '../../src/config/fleet';
import { LifecycleClient } from '../../src/temporal/lifecycle-client';
import type { HeartbeatMark } from '../../src/db/instance-life';
import type { Result } from '../../src/db/result';
import { VirtualMachineDB } from '../../src/db/vmdb';
import { createVmdbWorker } from '../../src/temporal/worker';
import { type HeartbeatReply, type LifecycleInput, lifecycleWorkflowId, stateQuery } from '../../workflows/definitions';
import type { WorkflowHandle } from '@temporalio/client';
import { BACKENDS, ok } from './backends';
import { workflowBundle } from './temporal';

export const ENDPOINT = 'Local::testcloud';

/** The one endpoint of a rig: by default local VMs in the rig's own state directory. */
export interface RigEndpoint {
  endpoint: string;
  image: string;
  driver: { type: string; [option: string]: unknown };
}

/** A database, local VMs, a worker and a client around one Temporal test environment. */
export class LifecycleRig {
  db!: VirtualMachineDB;
  drivers!: Map<string, CloudDriver>;
  fleet!: FleetConfig;
  lifecycle!: LifecycleClient;
  worker!: Worker;
  private workerDone: Promise<void> | undefined;
  private readonly apps: FastifyInstance[] = [];
  readonly stateDir = mkdtempSync(join(tmpdir(), 'vmdb-vms-'));
  readonly taskQueue = `vmdb-test-${process.pid}-${Date.now()}`;

  constructor(
    readonly env: TestWorkflowEnvironment,
    private readonly options: {
      maxInstances?: number;
      sshPrivateKey?: string;
      tokenSecret?: string;
      /** The database's stallingInterval (default 2400). */
      stallingInterval?: number;
      /** The fleet file's `safety` block. */
      safety?: unknown;
      /**
       * The endpoint: another name, image or driver (an EC2 endpoint, say), and more of its options
       * (drainDeadlineSeconds, maxLifetimeSeconds, ...).
       */
      endpoint?: Partial<RigEndpoint> & Record<string, unknown>;
      /** More options of the default local driver. */
      driver?: Record<string, unknown>;
      /** A database url (default: a fresh MariaDB database). */
      url?: string;
      /** The API URL written into each VM's user data (default http://127.0.0.1:8080). */
      apiUrl?: string;
    } = {},
  ) {}

  /** A VM's heartbeat by its UniqueID, as the API records it (the API knows the InstanceID from the VM's token). */
  async heartbeatWithNotice(uniqueID: string, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<HeartbeatReply>> {
    const id = await this.db.getInstanceID(uniqueID);
    return id.OK ? this.lifecycle.heartbeatOf(id.Value, figures, mark) : id;
  }

  /** `heartbeatWithNotice`'s directive alone. */
  async heartbeat(uniqueID: string, figures: HeartbeatFigures, mark?: HeartbeatMark): Promise<Result<Directive>> {
    const reply = await this.heartbeatWithNotice(uniqueID, figures, mark);
    return reply.OK ? { OK: true, Value: reply.Value.directive } : reply;
  }

  get endpoint(): string {
    return this.options.endpoint?.endpoint ?? ENDPOINT;
  }

  get image(): string {
    return this.options.endpoint?.image ?? 'test-image';
  }

  async setUp(): Promise<void> {
    this.db = await VirtualMachineDB.open({ url: this.options.url ?? (await BACKENDS[0].createDatabase()), stallingInterval: this.options.stallingInterval });
    const driver = this.options.endpoint?.driver ?? { type: 'local', stateDir: this.stateDir, ...this.options.driver };
    this.fleet = validateFleet({
      endpoints: [{ runningPod: 'testvo', maxInstances: this.options.maxInstances ?? 2, ...this.options.endpoint, endpoint: this.endpoint, image: this.image, driver }],
      safety: this.options.safety,
    });
    this.drivers = createDrivers(driverConfigs(this.fleet));
    this.lifecycle = new LifecycleClient(this.env.client, this.db);
    await this.startWorker();
  }

  async startWorker(): Promise<void> {
    this.worker = await createVmdbWorker({
      db: this.db,
      client: this.env.client,
      connection: this.env.nativeConnection,
      namespace: this.env.namespace ?? 'default',
      taskQueue: this.taskQueue,
      fleet: this.fleet,
      drivers: this.drivers,
      sshPrivateKey: this.options.sshPrivateKey,
      vmCredentials: { apiUrl: this.options.apiUrl ?? 'http://127.0.0.1:8080', tokenSecret: this.options.tokenSecret },
      workflowBundle: await workflowBundle(),
    });
    this.workerDone = this.worker.run();
  }

  async stopWorker(): Promise<void> {
    if (this.worker.getState() === 'RUNNING') this.worker.shutdown();
    await this.workerDone;
  }

  /** The HTTP API over this rig's database, lifecycle client and Temporal client; closed by tearDown. */
  async api(operators: OperatorToken[], tokenSecret: string, more: Partial<ApiDeps> = {}): Promise<FastifyInstance> {
    const app = await buildApi({ db: this.db, lifecycle: this.lifecycle, temporal: this.env.client, operators, tokenSecret, ...more });
    this.apps.push(app);
    await app.ready();
    return app;
  }

  async tearDown(): Promise<void> {
    for (const app of this.apps.splice(0)) await app.close();
    await this.stopWorker();
    const driver = this.drivers.get(this.endpoint)!;
    for (const vm of await driver.listInstances()) await driver.stopInstance(vm.uniqueID);
    await this.db.close();
    await BACKENDS[0].dropAll();
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** Inserts a New instance and starts its workflow, as the Director does. */
  async launch(overrides: Partial<LifecycleInput> = {}): Promise<{ instanceID: number; handle: ReturnType<TestWorkflowEnvironment['client']['workflow']['getHandle']> }> {
    const name = `vm-${Math.random().toString(36).slice(2, 10)}`;
    const instanceID = ok(await this.db.insertInstance('', this.image, name, this.endpoint, 'testvo'));
    const input: LifecycleInput = {
      instanceID,
      instanceName: name,
      imageName: this.image,
      endpoint: this.endpoint,
      runningPod: 'testvo',
      stallingIntervalSeconds: 2400,
      ...overrides,
    };
    const handle = await this.env.client.workflow.start('instanceLifecycle', {
      workflowId: lifecycleWorkflowId(instanceID),
      taskQueue: this.taskQueue,
      args: [input],
    });
    return { instanceID, handle };
  }

  /**
   * Terminates a workflow once it has taken its signals: a query is answered after the workflow
   * task in flight, and the time-skipping server stops skipping time for good when a workflow is
   * terminated under a task it has handed out.
   */
  async terminate(handle: { query: WorkflowHandle['query']; terminate: WorkflowHandle['terminate'] }): Promise<void> {
    await handle.query(stateQuery);
    await handle.terminate('test done');
  }

  async status(instanceID: number): Promise<string> {
    return ok(await this.db.getInstanceParameter('Status', instanceID)) as string;
  }

  /** Polls until the instance reaches `status` in the database. */
  async waitForStatus(instanceID: number, status: string, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const now = await this.status(instanceID);
      if (now === status) return;
      if (Date.now() > until) throw new Error(`instance ${instanceID} is ${now}, expected ${status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async uniqueID(instanceID: number): Promise<string> {
    return ok(await this.db.getUniqueID(instanceID));
  }

  async history(instanceID: number): Promise<string[]> {
    return ok(await this.db.getHistoryForInstanceID(instanceID)).Records.map((r) => r[0] as string);
  }
}

/** Saves a workflow's history under test/histories when VMDB_RECORD_HISTORIES is set (for the replay test). */
export async function maybeRecordHistory(handle: { fetchHistory(): Promise<History> }, name: string): Promise<void> {
  if (!process.env.VMDB_RECORD_HISTORIES) return;
  const file = join(HISTORIES_DIR, `${name}.json`);
  writeFileSync(file, `${historyToJSON(await handle.fetchHistory())}\n`);
}

export const HISTORIES_DIR = join(__dirname, '..', '..', '..', 'test', 'histories');
