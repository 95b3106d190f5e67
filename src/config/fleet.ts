import { readFileSync } from 'node:fs';
import type { SshContextualization } from '../../workflows/definitions';
import { parseEndpointName } from '../drivers/driver';
import { type EndpointDriverConfig } from '../drivers/registry';
import { type ElasticEndpointConfig, validateElastic } from '../elastic/config';
import { DEFAULT_SAFETY, type SafetyConfig, validateSafety } from '../safety/config';
import { settingsFor } from './settings';
import { isHostKeyFingerprint } from '../net/host-keys';

/** One endpoint the Director keeps filled (up to maxInstances, or toward its demand: src/elastic/config.ts). */
export interface EndpointConfig extends Partial<ElasticEndpointConfig> {
  /** DIRAC style "Site::CE". */
  endpoint: string;
  image: string;
  /** The VO or pod the VMs run for. */
  runningPod: string;
  maxInstances: number;
  /** The driver type and its own options, e.g. `{ "type": "local" }`. */
  driver: { type: string; [option: string]: unknown };
  contextualization?: SshContextualization;
  /** Drain (stop) the instance once it has lived this long; it is told the time in each heartbeat reply. */
  maxLifetimeSeconds?: number;
  maxStartupSeconds?: number;
  /** Halt a Stopping instance this long after it was told to drain, even if it still has work. */
  drainDeadlineSeconds?: number;
  userData?: string;
}

export interface FleetConfig {
  endpoints: EndpointConfig[];
  /** How often the Director schedule runs (seconds). */
  directorEverySeconds: number;
  /** How often the stalled-instance sweep runs (seconds; the original ran every 15 minutes). */
  sweepEverySeconds: number;
  /** Outage guard, halt cap, endpoint backoff, pulses, reconciliation (src/safety/config.ts). */
  safety: SafetyConfig;
}

/** The embedded default: one local endpoint whose VMs are processes on this machine. */
export const DEFAULT_FLEET: FleetConfig = {
  endpoints: [{ endpoint: 'Local::localhost', image: 'local-image', runningPod: 'demo', maxInstances: 2, driver: { type: 'local' } }],
  directorEverySeconds: 60,
  sweepEverySeconds: 900,
  safety: DEFAULT_SAFETY,
};

function positive(where: string, value: unknown, optional = false): number | undefined {
  if (optional && value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new Error(`${where} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function text(where: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${where} must be a non-empty string`);
  return value;
}

/** Checks a parsed fleet configuration; every mistake is reported with where it is. */
export function validateFleet(raw: unknown): FleetConfig {
  const config = (raw ?? {}) as Partial<FleetConfig>;
  if (!Array.isArray(config.endpoints) || config.endpoints.length === 0) throw new Error('Fleet configuration needs a non-empty "endpoints" array');
  const endpoints = config.endpoints.map((entry, i) => {
    const where = `endpoints[${i}]`;
    const endpoint = parseEndpointName(entry?.endpoint).name;
    if (!entry.driver || typeof entry.driver.type !== 'string') throw new Error(`${where}.driver.type must name a driver type`);
    const ctx = entry.contextualization;
    if (ctx) {
      text(`${where}.contextualization.username`, ctx.username);
      text(`${where}.contextualization.command`, ctx.command);
      positive(`${where}.contextualization.timeoutSeconds`, ctx.timeoutSeconds);
      if (!Array.isArray(ctx.files)) throw new Error(`${where}.contextualization.files must be an array`);
      hostKeysOf(`${where}.contextualization`, ctx);
    }
    const maxInstances = positive(`${where}.maxInstances`, entry.maxInstances)!;
    return {
      ...entry,
      endpoint,
      image: text(`${where}.image`, entry.image),
      runningPod: text(`${where}.runningPod`, entry.runningPod),
      maxInstances,
      ...validateElastic(where, entry as unknown as Record<string, unknown>, maxInstances),
      maxLifetimeSeconds: positive(`${where}.maxLifetimeSeconds`, entry.maxLifetimeSeconds, true),
      maxStartupSeconds: positive(`${where}.maxStartupSeconds`, entry.maxStartupSeconds, true),
      drainDeadlineSeconds: positive(`${where}.drainDeadlineSeconds`, entry.drainDeadlineSeconds, true),
    };
  });
  return {
    endpoints,
    directorEverySeconds: positive('directorEverySeconds', config.directorEverySeconds ?? DEFAULT_FLEET.directorEverySeconds)!,
    sweepEverySeconds: positive('sweepEverySeconds', config.sweepEverySeconds ?? DEFAULT_FLEET.sweepEverySeconds)!,
    safety: validateSafety(config.safety),
  };
}

/** VMDB_FLEET_FILE (JSON; from the environment or VMDB_CONFIG_FILE) or the embedded default. */
export function loadFleetConfig(env: NodeJS.ProcessEnv = process.env): FleetConfig {
  const file = settingsFor(env, ['VMDB_FLEET_FILE']).fleetFile;
  if (!file) return DEFAULT_FLEET;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`Cannot read fleet configuration ${file}: ${(err as Error).message}`);
  }
  return validateFleet(parsed);
}

/** The driver part of each endpoint, in the shape createDrivers takes. */
export function driverConfigs(fleet: FleetConfig): EndpointDriverConfig[] {
  return fleet.endpoints.map(({ endpoint, driver: { type, ...options } }) => ({ endpoint, driver: type, ...options }));
}

/** A contextualization logs in only to a VM whose host key it knows, unless the fleet file says any will do. */
function hostKeysOf(where: string, ctx: { hostKeys?: unknown; anyHostKey?: unknown }): void {
  if (ctx.anyHostKey !== undefined && typeof ctx.anyHostKey !== 'boolean') throw new Error(`${where}.anyHostKey must be true or false`);
  if (ctx.hostKeys === undefined) {
    if (ctx.anyHostKey === true) return;
    throw new Error(
      `${where} needs hostKeys: the SHA256 fingerprints the image's sshd may present (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), or "anyHostKey": true for an image whose keys are made at its first boot`,
    );
  }
  if (ctx.anyHostKey === true) throw new Error(`${where}: hostKeys and anyHostKey: true contradict each other`);
  if (!Array.isArray(ctx.hostKeys) || ctx.hostKeys.length === 0) throw new Error(`${where}.hostKeys must be a non-empty array of SHA256: fingerprints`);
  ctx.hostKeys.forEach((key, i) => {
    if (!isHostKeyFingerprint(key)) throw new Error(`${where}.hostKeys[${i}] must be an OpenSSH fingerprint such as SHA256:<43 base64 characters>, got ${JSON.stringify(key)}`);
  });
}
