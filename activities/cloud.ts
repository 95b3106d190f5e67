import { ApplicationFailure } from '@temporalio/common';
import { makeVmToken } from '../src/auth/tokens';
import { type CloudDriver, type CloudInstance, type CreateRequest, EndpointError } from '../src/drivers/driver';
import { activityLogger } from '../src/log';

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
export function withVmCredentials(userData: string | undefined, instanceID: number, credentials: VmCredentials | undefined): string | undefined {
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
  const vmdb = { apiUrl: credentials.apiUrl, instanceID, token: makeVmToken(credentials.tokenSecret, instanceID) };
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

/** Activities that talk to cloud endpoints through their drivers. */
export function createCloudActivities(drivers: ReadonlyMap<string, CloudDriver>, credentials?: VmCredentials) {
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
      const userData = instanceID === undefined ? request.userData : withVmCredentials(request.userData, instanceID, credentials);
      const vm = await withDriver(endpoint, (driver) => driver.createInstance({ ...request, userData, ...(instanceID === undefined ? {} : { instanceID }) }));
      activityLogger({ instanceID, uniqueID: vm.uniqueID }).info({ endpoint, name: request.instanceName, status: vm.status }, 'VM created at its endpoint');
      return vm;
    },

    /** Stopping a VM that is already gone is success. */
    async stopInstance(endpoint: string, uniqueID: string): Promise<void> {
      await withDriver(endpoint, (driver) => driver.stopInstance(uniqueID));
      activityLogger({ uniqueID }).info({ endpoint }, 'VM stopped at its endpoint');
    },

    async cloudInstanceStatus(endpoint: string, uniqueID: string): Promise<CloudInstance> {
      return withDriver(endpoint, (driver) => driver.getInstanceStatus(uniqueID));
    },
  };
}

export type CloudActivities = ReturnType<typeof createCloudActivities>;
