import { type CloudDriver, parseEndpointName } from './driver';
import { localDriverFromConfig } from './local';

/** One endpoint in the configuration: its name, its driver type, and that driver's own options. */
export interface EndpointDriverConfig {
  endpoint: string;
  driver: string;
  [option: string]: unknown;
}

/** Builds a driver from the options of its config (endpoint and driver keys removed); throws on bad options. */
export type DriverFactory = (endpoint: string, options: Record<string, unknown>) => CloudDriver;

// Adding a driver type is one line here plus its own file (docs/drivers.md). The
// cloud drivers are loaded only when an endpoint uses them, so processes without one (the API, the
// CLI) never load the AWS SDK.
const FACTORIES: Readonly<Record<string, DriverFactory>> = {
  local: (endpoint, options) => localDriverFromConfig(endpoint, options),
  ec2: (endpoint, options) => (require('./ec2') as typeof import('./ec2')).ec2DriverFromConfig(endpoint, options),
  openstack: (endpoint, options) => (require('./openstack') as typeof import('./openstack')).openstackDriverFromConfig(endpoint, options),
};

export const DRIVER_TYPES: readonly string[] = Object.keys(FACTORIES);

/** One driver per endpoint, keyed by "Site::CE". Any configuration mistake throws before a driver is built. */
export function createDrivers(configs: readonly EndpointDriverConfig[]): Map<string, CloudDriver> {
  if (!Array.isArray(configs)) throw new Error('Endpoint driver configuration must be an array');
  const plans: { endpoint: string; factory: DriverFactory; options: Record<string, unknown> }[] = [];
  const seen = new Set<string>();
  configs.forEach((config, index) => {
    const where = `Endpoint driver configuration #${index + 1}`;
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${where} must be an object`);
    const { endpoint, driver, ...options } = config;
    let name: string;
    try {
      name = parseEndpointName(endpoint).name;
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    if (seen.has(name)) throw new Error(`${where}: endpoint ${name} is configured more than once`);
    seen.add(name);
    if (typeof driver !== 'string' || driver === '') {
      throw new Error(`${where} (${name}): "driver" must name a driver type (known: ${DRIVER_TYPES.join(', ')})`);
    }
    // Own keys only: a config parsed from JSON must not reach Object.prototype through "driver".
    const factory = Object.hasOwn(FACTORIES, driver) ? FACTORIES[driver] : undefined;
    if (!factory) {
      throw new Error(`${where} (${name}): unknown driver type ${JSON.stringify(driver)} (known: ${DRIVER_TYPES.join(', ')})`);
    }
    plans.push({ endpoint: name, factory, options });
  });
  const drivers = new Map<string, CloudDriver>();
  for (const { endpoint, factory, options } of plans) {
    try {
      drivers.set(endpoint, factory(endpoint, options));
    } catch (err) {
      throw new Error(`Endpoint ${endpoint}: ${(err as Error).message}`);
    }
  }
  return drivers;
}
