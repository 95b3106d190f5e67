import { type StopPolicy, validateStopPolicy } from '../agent/stop-policy';

/** Where the Director reads how many jobs wait for an endpoint. */
export type DemandSource =
  | { command: string[]; timeoutSeconds: number }
  /** `field`: a dotted path into the JSON reply (`queues.lhcb.waiting`); none: the reply is the number. */
  | { url: string; field?: string; timeoutSeconds: number };

/** vcycle's rule: a VM that halts idle within `withinSeconds` of boot holds launches for `backoffSeconds`. */
export interface IdleBackoff {
  withinSeconds: number;
  backoffSeconds: number;
}

/** The elastic keys of one fleet-file endpoint entry. */
export interface ElasticEndpointConfig {
  /** Delivered to each VM in its user data (`vmdb.stopPolicy`); none: `never`. */
  stopPolicy?: StopPolicy;
  /** None: the Director keeps `maxInstances` as before. */
  demand?: DemandSource;
  jobsPerInstance: number;
  minInstances: number;
  idleBackoff: IdleBackoff;
  /** Price of one VM-hour, for the usage figures; none: no cost shown. */
  pricePerHour?: number;
}

export const DEFAULT_IDLE_BACKOFF: IdleBackoff = { withinSeconds: 600, backoffSeconds: 600 };
const MAX_TIMEOUT_SECONDS = 120;

/** Loopback hosts, the only ones a demand URL may reach without TLS (a sidecar on the worker's machine). */
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

function wholeNumber(where: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new Error(`${where} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return value;
}

function validateDemand(where: string, raw: unknown): DemandSource {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where} must be an object with "command" or "url"`);
  const given = raw as Record<string, unknown>;
  const unknown = Object.keys(given).filter((key) => !['command', 'url', 'field', 'timeoutSeconds'].includes(key));
  if (unknown.length) throw new Error(`${where}.${unknown[0]} is not a demand setting (command, url, field, timeoutSeconds)`);
  const timeoutSeconds = given.timeoutSeconds === undefined ? 10 : wholeNumber(`${where}.timeoutSeconds`, given.timeoutSeconds, 1, MAX_TIMEOUT_SECONDS);
  if ((given.command === undefined) === (given.url === undefined)) throw new Error(`${where} needs exactly one of "command" (an argv) and "url"`);
  if (given.command !== undefined) {
    const argv = given.command;
    const good = Array.isArray(argv) && argv.length > 0 && argv[0] !== '' && argv.every((arg) => typeof arg === 'string' && !arg.includes('\0'));
    if (!good) throw new Error(`${where}.command must be a non-empty array of strings (an argv, run without a shell)`);
    if (given.field !== undefined) throw new Error(`${where}.field goes with "url" only`);
    return { command: [...(argv as string[])], timeoutSeconds };
  }
  let url: URL;
  try {
    url = new URL(String(given.url));
  } catch {
    throw new Error(`${where}.url is not a URL: ${JSON.stringify(given.url)}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) throw new Error(`${where}.url must be https:// (http:// only to a loopback address)`);
  if (url.username || url.password) throw new Error(`${where}.url must not hold a user name or password`);
  if (given.field !== undefined && (typeof given.field !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(given.field))) {
    throw new Error(`${where}.field must be a dotted path of names such as "queues.lhcb.waiting", got ${JSON.stringify(given.field)}`);
  }
  return { url: url.href, ...(given.field ? { field: given.field as string } : {}), timeoutSeconds };
}

/** Checks the elastic keys of endpoint entry `where`; every mistake names its key. */
export function validateElastic(where: string, entry: Record<string, unknown>, maxInstances: number): ElasticEndpointConfig {
  const stopPolicy = entry.stopPolicy === undefined ? undefined : validateStopPolicy(`${where}.stopPolicy`, entry.stopPolicy);
  if (stopPolicy && entry.userData !== undefined && !isJsonObject(entry.userData)) {
    throw new Error(`${where}.stopPolicy travels in the user data, so ${where}.userData must be a JSON object (or absent)`);
  }
  const demand = entry.demand === undefined ? undefined : validateDemand(`${where}.demand`, entry.demand);
  const jobsPerInstance = entry.jobsPerInstance === undefined ? 1 : wholeNumber(`${where}.jobsPerInstance`, entry.jobsPerInstance, 1, 1_000_000);
  const minInstances = entry.minInstances === undefined ? 0 : wholeNumber(`${where}.minInstances`, entry.minInstances, 0, maxInstances);
  let idleBackoff = DEFAULT_IDLE_BACKOFF;
  if (entry.idleBackoff !== undefined) {
    const given = entry.idleBackoff as Record<string, unknown>;
    if (given === null || typeof given !== 'object' || Array.isArray(given)) throw new Error(`${where}.idleBackoff must be an object`);
    const unknown = Object.keys(given).filter((key) => key !== 'withinSeconds' && key !== 'backoffSeconds');
    if (unknown.length) throw new Error(`${where}.idleBackoff.${unknown[0]} is not a setting (withinSeconds, backoffSeconds)`);
    idleBackoff = {
      withinSeconds: given.withinSeconds === undefined ? DEFAULT_IDLE_BACKOFF.withinSeconds : wholeNumber(`${where}.idleBackoff.withinSeconds`, given.withinSeconds, 0, 604_800),
      backoffSeconds: given.backoffSeconds === undefined ? DEFAULT_IDLE_BACKOFF.backoffSeconds : wholeNumber(`${where}.idleBackoff.backoffSeconds`, given.backoffSeconds, 0, 604_800),
    };
  }
  let pricePerHour: number | undefined;
  if (entry.pricePerHour !== undefined) {
    const price = entry.pricePerHour;
    if (typeof price !== 'number' || !Number.isFinite(price) || price < 0 || price > 1e6) throw new Error(`${where}.pricePerHour must be a number from 0 to 1000000, got ${JSON.stringify(price)}`);
    pricePerHour = price;
  }
  return { ...(stopPolicy ? { stopPolicy } : {}), ...(demand ? { demand } : {}), jobsPerInstance, minInstances, idleBackoff, ...(pricePerHour !== undefined ? { pricePerHour } : {}) };
}

function isJsonObject(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  } catch {
    return false;
  }
}

/**
 * The user data an endpoint's VMs get: its own, with the stop policy in the `vmdb` block. The cloud
 * activity adds the API URL, InstanceID and token to that block later, out of the workflow's history.
 */
export function userDataWithStopPolicy(userData: string | undefined, stopPolicy: StopPolicy | undefined): string | undefined {
  if (!stopPolicy) return userData;
  const document = userData ? (JSON.parse(userData) as Record<string, unknown>) : {};
  const vmdb = document.vmdb !== null && typeof document.vmdb === 'object' && !Array.isArray(document.vmdb) ? document.vmdb : {};
  return JSON.stringify({ ...document, vmdb: { ...vmdb, stopPolicy } });
}
