import { ApplicationFailure } from '@temporalio/common';
import { makeVmToken } from '../src/auth/tokens';
import { type CloudDriver, type CloudInstance, type CreateRequest, EndpointError, InvalidRequestError } from '../src/drivers/driver';
import { activityLogger } from '../src/ops/log';
import { endpointStopFailures } from '../src/ops/metrics';
import type { SafetyConfig } from '../src/safety/config';
import { SafetyStore } from '../src/db/safety-store';
import type { VirtualMachineDB } from '../src/db/vmdb';

/** How a new VM finds the API: its address and the secret its token is signed with. */
export interface VmCredentials {
  /** URL the VMs reach the vmdb API on. */
  apiUrl: string;
  /** VMDB_TOKEN_SECRET; without it VMs get no token. */
  tokenSecret?: string;
}

/**
 * The VM's user data with a `vmdb` block (API URL, InstanceID, VM token)
 * added. Made here, in the activity, so the token never enters the workflow
 * history. User data that is not a JSON object is passed on untouched.
 */
export function withVmCredentials(userData: string | undefined, instanceID: number, instanceName: string, credentials: VmCredentials | undefined): string | undefined {
  if (!credentials?.tokenSecret) return userData;
  let document: Record<string, unknown> = {};
  if (userData) {
    try {
      const parsed: unknown = JSON.parse(userData);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return userData;
      document = parsed as Record<string, unknown>;
    } catch {
      return userData;
    }
  }
  // Keep what the Director put in the block (the stop policy); the credentials are ours to set.
  const given = document.vmdb !== null && typeof document.vmdb === 'object' && !Array.isArray(document.vmdb) ? document.vmdb : {};
  const vmdb = { ...given, apiUrl: credentials.apiUrl, instanceID, token: makeVmToken(credentials.tokenSecret, instanceID, instanceName) };
  return JSON.stringify({ ...document, vmdb });
}

/** What an EndpointError's failure carries in its details: the reason the Director backs off by. */
export interface EndpointFailureDetails {
  endpoint: string;
  reason: EndpointError['reason'];
}

/**
 * A driver's EndpointError as an ApplicationFailure of the same type (still retried) whose details
 * keep the reason, which a plain Error would lose on its way through Temporal. Other errors pass as they are.
 */
export function endpointFailure(endpoint: string, err: unknown): unknown {
  if (!(err instanceof EndpointError)) return err;
  const details: EndpointFailureDetails = { endpoint, reason: err.reason };
  return ApplicationFailure.create({ type: 'EndpointError', message: err.message, details: [details] });
}

/** Where failed creations are recorded so that the Director backs off the endpoint. */
export interface EndpointHealthRecorder {
  db: VirtualMachineDB;
  backoff: SafetyConfig['backoff'];
}

/** Activities that talk to cloud endpoints through their drivers. */
export function createCloudActivities(drivers: ReadonlyMap<string, CloudDriver>, credentials?: VmCredentials, health?: EndpointHealthRecorder) {
  const store = health ? SafetyStore.of(health.db) : undefined;

  /**
   * The Director learns of an endpoint's trouble from here: creations run in the lifecycle
   * workflows, each attempt of which is recorded. Bookkeeping never hides the cloud's own error.
   */
  async function recordOutcome(endpoint: string, err?: unknown): Promise<void> {
    if (!store || !health) return;
    // A request no retry can fix is the request's fault, not the endpoint's.
    if (err instanceof InvalidRequestError || (err instanceof ApplicationFailure && err.type === 'UnknownEndpoint')) return;
    try {
      if (err === undefined) await store.recordCreateSuccess(endpoint);
      else {
        const reason = err instanceof EndpointError ? err.reason : 'error';
        const now = await store.recordCreateFailure(endpoint, reason, (err as Error)?.message ?? String(err), health.backoff);
        activityLogger().warn({ endpoint, reason, failures: now.failures, backoffUntil: now.backoffUntil }, 'VM creation failed: the Director backs off the endpoint');
      }
    } catch (recordErr) {
      activityLogger().warn({ endpoint, err: recordErr }, 'cannot record the endpoint health');
    }
  }

  function driverFor(endpoint: string): CloudDriver {
    const driver = drivers.get(endpoint);
    // A missing driver is configuration, not weather: retrying will not help.
    if (!driver) throw ApplicationFailure.nonRetryable(`No driver configured for endpoint ${endpoint}`, 'UnknownEndpoint');
    return driver;
  }

  async function withDriver<T>(endpoint: string, call: (driver: CloudDriver) => Promise<T>): Promise<T> {
    const driver = driverFor(endpoint);
    try {
      return await call(driver);
    } catch (err) {
      throw endpointFailure(endpoint, err);
    }
  }

  return {
    /** Idempotent by instanceName: a retried create returns the VM of the first attempt. */
    async createInstance(endpoint: string, request: CreateRequest, instanceID?: number): Promise<CloudInstance> {
      const userData = instanceID === undefined ? request.userData : withVmCredentials(request.userData, instanceID, request.instanceName, credentials);
      let vm: CloudInstance;
      try {
        vm = await driverFor(endpoint).createInstance({ ...request, userData, ...(instanceID === undefined ? {} : { instanceID }) });
      } catch (err) {
        await recordOutcome(endpoint, err);
        throw endpointFailure(endpoint, err);
      }
      await recordOutcome(endpoint);
      activityLogger({ instanceID, uniqueID: vm.uniqueID }).info({ endpoint, name: request.instanceName, status: vm.status }, 'VM created at its endpoint');
      return vm;
    },

    /** Stopping a VM that is already gone is success. */
    async stopInstance(endpoint: string, uniqueID: string): Promise<void> {
      try {
        await withDriver(endpoint, (driver) => driver.stopInstance(uniqueID));
      } catch (err) {
        endpointStopFailures.inc({ endpoint });
        throw err;
      }
      activityLogger({ uniqueID }).info({ endpoint }, 'VM stopped at its endpoint');
    },

    /**
     * Stops every VM of this endpoint created under `instanceName`: the cleanup after a create that
     * was cancelled, timed out or gave up, whose VM (if one was made) the workflow never heard of.
     * Returns the UniqueIDs it stopped.
     */
    async stopInstanceByName(endpoint: string, instanceName: string): Promise<string[]> {
      const found = await withDriver(endpoint, async (driver) => (await driver.listInstances()).filter((vm) => vm.instanceName === instanceName));
      const stopped: string[] = [];
      for (const vm of found) {
        if (vm.status === 'stopped') continue;
        await withDriver(endpoint, (driver) => driver.stopInstance(vm.uniqueID));
        stopped.push(vm.uniqueID);
      }
      if (stopped.length) activityLogger().info({ endpoint, name: instanceName, stopped }, 'VM found by its name and stopped at its endpoint');
      return stopped;
    },

    async cloudInstanceStatus(endpoint: string, uniqueID: string): Promise<CloudInstance> {
      return withDriver(endpoint, (driver) => driver.getInstanceStatus(uniqueID));
    },
  };
}

export type CloudActivities = ReturnType<typeof createCloudActivities>;
