import { ApplicationFailure } from '@temporalio/common';
import type { CloudDriver, CloudInstance, CreateRequest } from '../src/drivers/driver';

/** Activities that talk to cloud endpoints through their drivers. */
export function createCloudActivities(drivers: ReadonlyMap<string, CloudDriver>) {
  function driverFor(endpoint: string): CloudDriver {
    const driver = drivers.get(endpoint);
    // A missing driver is configuration, not weather: retrying will not help.
    if (!driver) throw ApplicationFailure.nonRetryable(`No driver configured for endpoint ${endpoint}`, 'UnknownEndpoint');
    return driver;
  }

  return {
    /** Idempotent by instanceName: a retried create returns the VM of the first attempt. */
    async createInstance(endpoint: string, request: CreateRequest): Promise<CloudInstance> {
      return driverFor(endpoint).createInstance(request);
    },

    /** Stopping a VM that is already gone is success. */
    async stopInstance(endpoint: string, uniqueID: string): Promise<void> {
      await driverFor(endpoint).stopInstance(uniqueID);
    },

    async cloudInstanceStatus(endpoint: string, uniqueID: string): Promise<CloudInstance> {
      return driverFor(endpoint).getInstanceStatus(uniqueID);
    },
  };
}

export type CloudActivities = ReturnType<typeof createCloudActivities>;
