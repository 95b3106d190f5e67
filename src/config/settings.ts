import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseDatabaseUrl } from '../db/database';

/**
 * Every setting the vmdb service reads, in one place.
 *
 * Values come from the environment and, optionally, from a JSON file named by
 * VMDB_CONFIG_FILE whose keys are the same names (`{ "VMDB_API_PORT": 8081 }`).
 * The environment wins over the file; an empty variable counts as unset.
 * `loadSettings` checks everything at start and throws a SettingsError that
 * names each bad setting: a bad url, a missing secret, an unknown key in the
 * file or an unknown VMDB_* variable in the environment.
 *
 * The older loaders (loadConfig, loadTemporalSettings, loadApiConfig,
 * loadFleetConfig) read through this module too, each for its own names.
 */

export type SettingKind = 'database-url' | 'positive-integer' | 'boolean' | 'host' | 'port' | 'bind' | 'http-url' | 'address' | 'text' | 'file' | 'secret' | 'trust-proxy';

export interface SettingSpec {
  /** The environment variable, and the key in the VMDB_CONFIG_FILE file. */
  name: string;
  kind: SettingKind;
  /** The default as text, for messages and docs; none: unset by default. */
  default?: string;
  description: string;
}

export const DEFAULT_DATABASE_URL = 'sqlite:vmdb.sqlite';
export const DEFAULT_STALLING_INTERVAL = 2400;
export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_PORT = 8080;
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';
/** Equal to workflows/definitions.ts DEFAULT_TASK_QUEUE (test/settings.test.ts checks it); kept here so reading settings loads no workflow code. */
export const DEFAULT_TASK_QUEUE_NAME = 'vmdb';
export const DEFAULT_DEV_TEMPORAL_PORT = 7233;
export const DEFAULT_DEV_TEMPORAL_UI_PORT = 8233;
export const DEFAULT_WORKER_HEALTH_HOST = '127.0.0.1';
/** Shorter than this is guessable; newSecret() and a 32-byte random token are far longer. */
export const MIN_SECRET_LENGTH = 16;
/** Requests per minute: one authenticated caller (an operator, or a VM whose heartbeats come every few seconds at most). */
export const DEFAULT_RATE_LIMIT_PER_TOKEN = 1200;
/** Requests per minute from one address without a token (probes, scrapes, the docs and the dashboard's files). */
export const DEFAULT_RATE_LIMIT_PER_ADDRESS = 600;
/** Failed authentications per minute from one address before it gets 429. */
export const DEFAULT_RATE_LIMIT_AUTH_FAILURES = 10;

/** The service's settings: what the API, the worker, `vmdb migrate` and `npm start` read. */
export const SETTINGS: readonly SettingSpec[] = [
  { name: 'VMDB_CONFIG_FILE', kind: 'file', description: 'JSON file of settings, keyed by these names (environment only; the environment wins over it)' },
  { name: 'VMDB_DATABASE_URL', kind: 'database-url', default: DEFAULT_DATABASE_URL, description: 'The database: mysql://user:pass@host:port/db, sqlite:<file> or sqlite::memory:' },
  { name: 'VMDB_STALLING_INTERVAL', kind: 'positive-integer', default: String(DEFAULT_STALLING_INTERVAL), description: 'Seconds without news before an instance is declared Stalled' },
  { name: 'VMDB_AUTO_MIGRATE', kind: 'boolean', default: 'true', description: 'Apply pending migrations when a process opens the database; false: refuse a schema that is behind (run `vmdb migrate`)' },
  { name: 'VMDB_API_HOST', kind: 'host', default: DEFAULT_API_HOST, description: 'Address the API listens on' },
  { name: 'VMDB_API_PORT', kind: 'port', default: String(DEFAULT_API_PORT), description: 'Port the API listens on' },
  { name: 'VMDB_API_TLS_CERT', kind: 'file', description: 'Certificate file (PEM, the chain after the certificate) the API serves HTTPS with, with VMDB_API_TLS_KEY; reread on SIGHUP (unset: plain HTTP)' },
  { name: 'VMDB_API_TLS_KEY', kind: 'file', description: 'Private key file (PEM) of VMDB_API_TLS_CERT' },
  {
    name: 'VMDB_TRUST_PROXY',
    kind: 'trust-proxy',
    default: 'false',
    description: "Behind a proxy: whose X-Forwarded-For the API believes for the client's address (true: any; a number: that many hops; or addresses and CIDRs, comma-separated)",
  },
  { name: 'VMDB_PUBLIC_API_URL', kind: 'http-url', description: "URL written into each VM's user data (default http://127.0.0.1:<VMDB_API_PORT>)" },
  { name: 'VMDB_TOKEN_SECRET', kind: 'secret', description: 'Secret VM tokens are signed with (API and worker)' },
  {
    name: 'VMDB_TOKEN_SECRETS',
    kind: 'secret',
    description: 'For a rotation: the current VM token secret, then the previous ones, comma-separated (API and worker); tokens signed with any of them are accepted, new ones are signed with the first. Instead of VMDB_TOKEN_SECRET',
  },
  { name: 'VMDB_ADMIN_TOKEN', kind: 'secret', description: 'An operator token with role admin' },
  { name: 'VMDB_OPERATOR_TOKENS_FILE', kind: 'file', description: 'Operator tokens as SHA-256 hashes: [{ "name", "role", "sha256" }]' },
  { name: 'VMDB_METRICS_TOKEN', kind: 'secret', description: "Bearer token Prometheus scrapes the API's and the worker's /metrics with (unset: only loopback callers may scrape)" },
  { name: 'VMDB_RATE_LIMITS', kind: 'boolean', default: 'true', description: "The API's rate limits (false: none, for a proxy that limits already)" },
  { name: 'VMDB_RATE_LIMIT_PER_TOKEN', kind: 'positive-integer', default: String(DEFAULT_RATE_LIMIT_PER_TOKEN), description: 'Requests per minute of one authenticated caller: an operator token, or the VM token of one instance' },
  { name: 'VMDB_RATE_LIMIT_PER_ADDRESS', kind: 'positive-integer', default: String(DEFAULT_RATE_LIMIT_PER_ADDRESS), description: 'Requests per minute from one client address without a token (health, metrics, docs, dashboard files)' },
  { name: 'VMDB_RATE_LIMIT_AUTH_FAILURES', kind: 'positive-integer', default: String(DEFAULT_RATE_LIMIT_AUTH_FAILURES), description: 'Failed authentications (401) per minute from one client address; past it, 429' },
  { name: 'TEMPORAL_ADDRESS', kind: 'address', default: DEFAULT_TEMPORAL_ADDRESS, description: 'Temporal frontend host:port' },
  { name: 'TEMPORAL_NAMESPACE', kind: 'text', default: DEFAULT_TEMPORAL_NAMESPACE, description: 'Temporal namespace' },
  { name: 'VMDB_TEMPORAL_UI_URL', kind: 'http-url', description: "Temporal Web UI, for the dashboard's links to each instance's workflow (`npm start`: the embedded UI; unset: no links)" },
  { name: 'VMDB_TASK_QUEUE', kind: 'text', default: DEFAULT_TASK_QUEUE_NAME, description: 'Task queue of the worker and the workflows' },
  { name: 'TEMPORAL_TLS', kind: 'boolean', default: 'false', description: 'TLS to Temporal without a client certificate (implied by the other TEMPORAL_TLS_* and TEMPORAL_API_KEY)' },
  { name: 'TEMPORAL_TLS_CERT', kind: 'file', description: 'Client certificate file (mTLS), with TEMPORAL_TLS_KEY' },
  { name: 'TEMPORAL_TLS_KEY', kind: 'file', description: 'Client key file (mTLS), with TEMPORAL_TLS_CERT' },
  { name: 'TEMPORAL_TLS_CA', kind: 'file', description: 'CA file of the Temporal server' },
  { name: 'TEMPORAL_TLS_SERVER_NAME', kind: 'text', description: 'TLS server name override' },
  { name: 'TEMPORAL_API_KEY', kind: 'secret', description: 'Temporal Cloud API key instead of mTLS' },
  { name: 'VMDB_FLEET_FILE', kind: 'file', description: 'JSON fleet: endpoints, drivers, images, pods, limits, contextualization' },
  { name: 'VMDB_SSH_KEY_FILE', kind: 'file', description: 'Private key the SSH contextualization logs in with' },
  { name: 'VMDB_WORKER_HEALTH_PORT', kind: 'port', description: 'Port of the worker\'s /healthz and /readyz (unset: none; 0: any free port)' },
  { name: 'VMDB_WORKER_HEALTH_HOST', kind: 'host', default: DEFAULT_WORKER_HEALTH_HOST, description: 'Address of the worker\'s health port' },
  { name: 'VMDB_WORKER_CACHED_WORKFLOWS', kind: 'positive-integer', description: "Most instance workflows the worker keeps in memory, about 70 KiB each (unset: the Temporal SDK's default, from the heap size)" },
  { name: 'VMDB_DATA_DIR', kind: 'text', default: 'data', description: '`npm start`: databases, Temporal store, local VMs, generated secrets' },
  { name: 'VMDB_TEMPORAL_PORT', kind: 'port', default: String(DEFAULT_DEV_TEMPORAL_PORT), description: '`npm start`: port of the embedded Temporal dev server' },
  { name: 'VMDB_TEMPORAL_UI_PORT', kind: 'port', default: String(DEFAULT_DEV_TEMPORAL_UI_PORT), description: '`npm start`: port of the embedded Temporal Web UI' },
  { name: 'VMDB_WORKER_METRICS_PORT', kind: 'bind', default: '9464', description: "[host:]port of the worker's Prometheus /metrics (a bare port listens on 127.0.0.1; 0: none)" },
  { name: 'VMDB_TEMPORAL_METRICS_PORT', kind: 'bind', default: '9465', description: "[host:]port of the Temporal SDK's worker metrics (a bare port listens on 127.0.0.1; 0: none)" },
  { name: 'VMDB_LOG_LEVEL', kind: 'text', default: 'info', description: 'Log level (checked by the logger, src/ops/log.ts)' },
];

/**
 * VMDB_* names that are not the service's settings but are known all the same,
 * so that the unknown-variable check does not stop a process that merely
 * inherits them (a shell that also runs the CLI or the agent, the tests).
 */
export const OTHER_KNOWN_VARIABLES: Readonly<Record<string, string>> = {
  // vmdb-agent (src/agent/config.ts); every VMDB_AGENT_* name is also known.
  VMDB_USER_DATA: 'vmdb-agent: the VM user data',
  VMDB_API_URL: 'vmdb CLI and vmdb-agent: the API',
  VMDB_INSTANCE_ID: 'vmdb-agent: the InstanceID',
  VMDB_VM_TOKEN: 'vmdb-agent: the VM token',
  // What the local driver gives each VM process (src/drivers/local.ts).
  VMDB_INSTANCE_NAME: 'local driver: the VM name',
  VMDB_UNIQUE_ID: 'local driver: the VM UniqueID',
  VMDB_IMAGE_NAME: 'local driver: the image',
  VMDB_RUNNING_POD: 'local driver: the pod',
  // vmdb CLI
  VMDB_TOKEN: 'vmdb CLI: the operator token',
  VMDB_CA_FILE: 'vmdb CLI: the CA file that signed the API\'s certificate',
  VMDB_ALLOW_HTTP: 'vmdb CLI: allow an http:// API url that is not loopback',
  VMDB_DEBUG: 'vmdb CLI: print stack traces',
  // docker-compose.yml reads it from .env (a shell that sources .env passes it on)
  VMDB_MYSQL_PASSWORD: 'docker compose: the password of MySQL user vmdb, put into VMDB_DATABASE_URL',
  // tests; every VMDB_TEST_* name is also known.
  VMDB_RECORD_HISTORIES: 'tests: record workflow histories',
  VMDB_SEED_DIR: 'tests: the seed folder',
  VMDB_URL: 'tests: a database url for a child process',
};

/** Families of known names: the agent's settings and the tests'. */
export const KNOWN_PREFIXES: readonly string[] = ['VMDB_AGENT_', 'VMDB_TEST_'];

const SPECS = new Map(SETTINGS.map((spec) => [spec.name, spec]));
/** What VMDB_CONFIG_FILE may hold: every setting but itself. */
const FILE_KEYS = SETTINGS.map((spec) => spec.name).filter((name) => name !== 'VMDB_CONFIG_FILE');

/** True for a setting of the service (one that VMDB_CONFIG_FILE may hold, VMDB_CONFIG_FILE itself aside). */
export function isSetting(name: string): boolean {
  return SPECS.has(name);
}

/** True for any name vmdb knows: the service's settings, the agent's, the CLI's, the local VMs' and the tests'. */
export function isKnownVariable(name: string): boolean {
  return SPECS.has(name) || Object.hasOwn(OTHER_KNOWN_VARIABLES, name) || KNOWN_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** One thing wrong, with the setting it is about. */
export interface SettingsProblem {
  name: string;
  message: string;
}

/** Thrown with every problem at once; the message names each setting. */
export class SettingsError extends Error {
  constructor(readonly problems: SettingsProblem[]) {
    super(problems.length === 1 ? problems[0].message : `Invalid configuration:\n- ${problems.map((p) => p.message).join('\n- ')}`);
    this.name = 'SettingsError';
  }
}

type Env = NodeJS.ProcessEnv | Record<string, string | undefined>;
type ReadFile = (path: string) => string;
const readText: ReadFile = (path) => readFileSync(path, 'utf8');

/** The values in force: environment over file; where each came from. */
export interface SettingsSource {
  values: Record<string, string>;
  origin: Record<string, 'environment' | 'file'>;
  file?: string;
  /** Problems of the file itself: unreadable, not a JSON object, unknown keys, values that are not scalars. */
  problems: SettingsProblem[];
}

/** The closest known name, for "did you mean"; undefined when nothing is close. */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

const didYouMean = (name: string, candidates: Iterable<string>) => {
  const near = closestName(name, candidates);
  return near ? ` (did you mean ${near}?)` : '';
};

/** Reads VMDB_CONFIG_FILE (when set) and lays the environment over it. Never throws: problems are collected. */
export function settingsSource(env: Env = process.env, readFile: ReadFile = readText): SettingsSource {
  const values: Record<string, string> = {};
  const origin: SettingsSource['origin'] = {};
  const problems: SettingsProblem[] = [];
  const file = env.VMDB_CONFIG_FILE || undefined;
  if (file) {
    const where = `VMDB_CONFIG_FILE (${file})`;
    let data: unknown;
    try {
      data = JSON.parse(readFile(file));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problems.push({ name: 'VMDB_CONFIG_FILE', message: `${where}: ${e instanceof SyntaxError ? 'not JSON: ' : 'cannot read: '}${e.message}` });
    }
    if (data !== undefined && (data === null || typeof data !== 'object' || Array.isArray(data))) {
      problems.push({ name: 'VMDB_CONFIG_FILE', message: `${where}: must be a JSON object whose keys are setting names, such as { "VMDB_API_PORT": 8080 }` });
    } else if (data !== undefined) {
      for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
        if (key === 'VMDB_CONFIG_FILE') {
          problems.push({ name: key, message: `${where}: "VMDB_CONFIG_FILE" can only be set in the environment` });
          continue;
        }
        if (!isSetting(key)) {
          const whose = isKnownVariable(key) ? ` (${Object.hasOwn(OTHER_KNOWN_VARIABLES, key) ? OTHER_KNOWN_VARIABLES[key] : 'vmdb-agent or the tests'}; not a setting of the service)` : didYouMean(key, FILE_KEYS);
          problems.push({ name: key, message: `${where}: unknown option "${key}"${whose}` });
          continue;
        }
        if (value === null) continue; // null: unset, like an empty variable
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
          problems.push({ name: key, message: `${where}: "${key}" must be a string, a number or a boolean` });
          continue;
        }
        if (String(value) === '') continue;
        values[key] = String(value);
        origin[key] = 'file';
      }
    }
  }
  for (const spec of SETTINGS) {
    const raw = env[spec.name];
    if (raw === undefined || raw === '') continue;
    values[spec.name] = raw;
    origin[spec.name] = 'environment';
  }
  return { values, origin, file, problems };
}

/**
 * Lays the file's values under the process environment (a variable already set
 * keeps its value), so that what the process starts (local VMs) sees them too.
 * Throws a SettingsError for the file's own problems.
 */
export function applyConfigFile(env: NodeJS.ProcessEnv = process.env, readFile: ReadFile = readText): void {
  const source = settingsSource(env, readFile);
  if (source.problems.length) throw new SettingsError(source.problems);
  for (const [name, value] of Object.entries(source.values)) {
    if (source.origin[name] === 'file') env[name] = value;
  }
}

/** VMDB_* variables of the environment that vmdb does not know. */
export function unknownVariables(env: Env = process.env): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('VMDB_') && !isKnownVariable(name))
    .sort();
}

// Checks of one value; each returns the message of what is wrong, or undefined.

const shown = (value: string) => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

export function portProblem(name: string, raw: string): string | undefined {
  return /^\d{1,5}$/.test(raw) && Number(raw) <= 65535 ? undefined : `${name} must be a port number (0-65535), got ${shown(raw)}`;
}

export function httpUrlProblem(name: string, raw: string): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  return url && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname ? undefined : `${name} must be an http:// or https:// url, got ${shown(raw)}`;
}

/** A token a caller presents (an operator's, Prometheus'): long enough not to be guessed, and one word. */
export function bearerTokenProblem(name: string, value: string): string | undefined {
  return value.length < MIN_SECRET_LENGTH || /\s/.test(value) ? `${name} must be at least ${MIN_SECRET_LENGTH} characters without spaces` : undefined;
}

export function adminTokenProblem(value: string): string | undefined {
  return bearerTokenProblem('VMDB_ADMIN_TOKEN', value);
}

export const TOKEN_SECRET_MISSING =
  'VMDB_TOKEN_SECRET is not set: it signs the VM tokens (make one with: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))")';

/** Secrets a rotation keeps accepting at most (VMDB_TOKEN_SECRETS). */
export const MAX_TOKEN_SECRETS = 8;

/** The VM token secrets in force: VMDB_TOKEN_SECRETS (current first), else VMDB_TOKEN_SECRET alone. */
export function tokenSecretRing(single: string | undefined, list: string | undefined): { current?: string; previous: string[] } {
  if (list === undefined) return { current: single, previous: [] };
  const [current, ...previous] = list.split(',');
  return { current, previous };
}

function tokenSecretsProblem(raw: string): string | undefined {
  const parts = raw.split(',');
  if (parts.length > MAX_TOKEN_SECRETS) return `VMDB_TOKEN_SECRETS holds at most ${MAX_TOKEN_SECRETS} secrets (the current one, then the previous ones), got ${parts.length}`;
  const bad = parts.findIndex((part) => tokenSecretProblem(part) !== undefined);
  return bad < 0 ? undefined : `VMDB_TOKEN_SECRETS: secret #${bad + 1} must be at least ${MIN_SECRET_LENGTH} characters, without commas or spaces`;
}

export function tokenSecretProblem(value: string | undefined): string | undefined {
  if (!value) return TOKEN_SECRET_MISSING;
  return value.length < MIN_SECRET_LENGTH ? `VMDB_TOKEN_SECRET must be at least ${MIN_SECRET_LENGTH} characters` : undefined;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** What Fastify's `trustProxy` accepts, as VMDB_TRUST_PROXY gives it. */
export type TrustProxy = boolean | number | string[];

/** proxy-addr's names for address ranges, which Fastify accepts beside addresses and CIDRs. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function trustProxyEntryProblem(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return false;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (!family || rest.length) return true;
  if (prefix === undefined) return false;
  const bits = family === 4 ? 32 : 128;
  return !/^\d{1,3}$/.test(prefix) || Number(prefix) > bits;
}

/** VMDB_TRUST_PROXY: true/false, a hop count ('1' counts as true, as for the booleans), or addresses and CIDRs. */
export function parseTrustProxy(raw: string): TrustProxy {
  const text = raw.trim().toLowerCase();
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  if (/^\d+$/.test(text)) return Number(text);
  return raw.split(',').map((entry) => entry.trim());
}

export function trustProxyProblem(name: string, raw: string): string | undefined {
  const value = parseTrustProxy(raw);
  if (!Array.isArray(value)) return undefined;
  const bad = value.filter(trustProxyEntryProblem);
  return bad.length
    ? `${name} must be true, false, a hop count, or addresses and CIDRs (or loopback, linklocal, uniquelocal) separated by commas; not an address: ${bad.map(shown).join(', ')}`
    : undefined;
}

function valueProblem(spec: SettingSpec, raw: string): string | undefined {
  const { name } = spec;
  switch (spec.kind) {
    case 'database-url':
      try {
        parseDatabaseUrl(raw);
        return undefined;
      } catch (err) {
        return `${name}: ${(err as Error).message}`;
      }
    case 'positive-integer':
      return /^\d+$/.test(raw) && Number(raw) > 0 && Number.isSafeInteger(Number(raw)) ? undefined : `${name} must be a positive integer, got ${shown(raw)}`;
    case 'boolean':
      return TRUE.has(raw.toLowerCase()) || FALSE.has(raw.toLowerCase()) ? undefined : `${name} must be true or false, got ${shown(raw)}`;
    case 'port':
      return portProblem(name, raw);
    case 'bind': {
      const match = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(raw);
      return match && Number(match[2]) <= 65535 ? undefined : `${name} must be a port or host:port, got ${shown(raw)}`;
    }
    case 'host':
      return /^[A-Za-z0-9.:_[\]-]+$/.test(raw) ? undefined : `${name} must be a host name or an IP address, got ${shown(raw)}`;
    case 'address': {
      const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(raw);
      return match && Number(match[2]) <= 65535 ? undefined : `${name} must be host:port (for example temporal.example.org:7233), got ${shown(raw)}`;
    }
    case 'http-url':
      return httpUrlProblem(name, raw);
    case 'trust-proxy':
      return trustProxyProblem(name, raw);
    case 'secret':
      if (name === 'VMDB_TOKEN_SECRET') return tokenSecretProblem(raw);
      if (name === 'VMDB_TOKEN_SECRETS') return tokenSecretsProblem(raw);
      if (name === 'VMDB_ADMIN_TOKEN' || name === 'VMDB_METRICS_TOKEN') return bearerTokenProblem(name, raw);
      return /\s/.test(raw) ? `${name} must not contain spaces` : undefined;
    case 'text':
    case 'file':
      return raw.trim() === '' ? `${name} must not be blank` : undefined;
  }
}

/** The typed settings; anything not given has its default. */
/** Where the Temporal cluster is and how to reach it (environment variables in parentheses). */
export interface TemporalSettings {
  /** host:port of the frontend (TEMPORAL_ADDRESS, default 127.0.0.1:7233). */
  address: string;
  /** (TEMPORAL_NAMESPACE, default "default") */
  namespace: string;
  /** (VMDB_TASK_QUEUE, default "vmdb", workflows/definitions.ts DEFAULT_TASK_QUEUE) */
  taskQueue: string;
  /** mTLS to a self-hosted cluster or Temporal Cloud (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME files/names). */
  tls?: { certFile?: string; keyFile?: string; caFile?: string; serverName?: string };
  /** Temporal Cloud API key instead of mTLS (TEMPORAL_API_KEY). */
  apiKey?: string;
}

/** The API's rate limits, each per minute (src/api/rate-limits.ts); false: none. */
export type RateLimitSettings =
  | false
  | {
      /** Per authenticated caller: the operator's name or the VM's InstanceID. */
      perToken: number;
      /** Per client address, for requests without a token. */
      perAddress: number;
      /** Failed authentications per client address. */
      authFailures: number;
    };

export interface Settings {
  databaseUrl: string;
  stallingInterval: number;
  autoMigrate: boolean;
  api: {
    host: string;
    port: number;
    /** Where VMs reach the API (user data). */
    publicUrl: string;
    /** The secret new VM tokens are signed with (VMDB_TOKEN_SECRETS' first, or VMDB_TOKEN_SECRET). */
    tokenSecret?: string;
    /** Older secrets whose tokens are still accepted (the rest of VMDB_TOKEN_SECRETS). */
    previousTokenSecrets: string[];
    adminToken?: string;
    operatorTokensFile?: string;
    /** The Temporal Web UI the dashboard links workflows to. */
    temporalUiUrl?: string;
    /** The bearer token of /metrics (API and worker); undefined: loopback callers only. */
    metricsToken?: string;
    rateLimits: RateLimitSettings;
    /** HTTPS at the API from these files (VMDB_API_TLS_CERT, VMDB_API_TLS_KEY); undefined: plain HTTP. */
    tls?: { certFile: string; keyFile: string };
    /** VMDB_TRUST_PROXY, for Fastify's `trustProxy`. */
    trustProxy: TrustProxy;
  };
  temporal: TemporalSettings;
  fleetFile?: string;
  sshKeyFile?: string;
  /** The worker's health port; undefined when VMDB_WORKER_HEALTH_PORT is unset. */
  workerHealth?: { host: string; port: number };
  /** The worker's workflow cache size; undefined: the SDK's default. */
  workerCachedWorkflows?: number;
  dataDir: string;
  /** The embedded dev server of `npm start`. */
  devTemporal: { port: number; uiPort: number };
  logLevel?: string;
  configFile?: string;
  /** Where each given setting came from. */
  origin: Record<string, 'environment' | 'file'>;
}

function build(values: Record<string, string>, origin: SettingsSource['origin'], file: string | undefined, bad: Set<string>): Settings {
  // A value with a problem is left out, so the rest can still be built (the caller decides what is fatal).
  const get = (name: string): string | undefined => (bad.has(name) ? undefined : values[name]);
  const int = (name: string, fallback: number) => (get(name) === undefined ? fallback : Number(get(name)));
  const bool = (name: string, fallback: boolean) => (get(name) === undefined ? fallback : TRUE.has(get(name)!.toLowerCase()));
  const apiPort = int('VMDB_API_PORT', DEFAULT_API_PORT);
  const tlsCert = get('TEMPORAL_TLS_CERT');
  const tlsCa = get('TEMPORAL_TLS_CA');
  const apiKey = get('TEMPORAL_API_KEY');
  const tlsWanted = bool('TEMPORAL_TLS', false) || Boolean(tlsCert || tlsCa || apiKey);
  const healthPort = get('VMDB_WORKER_HEALTH_PORT');
  const tokenRing = tokenSecretRing(get('VMDB_TOKEN_SECRET'), get('VMDB_TOKEN_SECRETS'));
  const apiCert = get('VMDB_API_TLS_CERT');
  const apiTlsKey = get('VMDB_API_TLS_KEY');
  return {
    databaseUrl: get('VMDB_DATABASE_URL') ?? DEFAULT_DATABASE_URL,
    stallingInterval: int('VMDB_STALLING_INTERVAL', DEFAULT_STALLING_INTERVAL),
    autoMigrate: bool('VMDB_AUTO_MIGRATE', true),
    api: {
      host: get('VMDB_API_HOST') ?? DEFAULT_API_HOST,
      port: apiPort,
      publicUrl: get('VMDB_PUBLIC_API_URL') ?? `http://127.0.0.1:${apiPort}`,
      tokenSecret: tokenRing.current,
      previousTokenSecrets: tokenRing.previous,
      adminToken: get('VMDB_ADMIN_TOKEN'),
      operatorTokensFile: get('VMDB_OPERATOR_TOKENS_FILE'),
      temporalUiUrl: get('VMDB_TEMPORAL_UI_URL'),
      metricsToken: get('VMDB_METRICS_TOKEN'),
      rateLimits: bool('VMDB_RATE_LIMITS', true)
        ? {
            perToken: int('VMDB_RATE_LIMIT_PER_TOKEN', DEFAULT_RATE_LIMIT_PER_TOKEN),
            perAddress: int('VMDB_RATE_LIMIT_PER_ADDRESS', DEFAULT_RATE_LIMIT_PER_ADDRESS),
            authFailures: int('VMDB_RATE_LIMIT_AUTH_FAILURES', DEFAULT_RATE_LIMIT_AUTH_FAILURES),
          }
        : false,
      tls: apiCert && apiTlsKey ? { certFile: apiCert, keyFile: apiTlsKey } : undefined,
      trustProxy: get('VMDB_TRUST_PROXY') === undefined ? false : parseTrustProxy(get('VMDB_TRUST_PROXY')!),
    },
    temporal: {
      address: get('TEMPORAL_ADDRESS') ?? DEFAULT_TEMPORAL_ADDRESS,
      namespace: get('TEMPORAL_NAMESPACE') ?? DEFAULT_TEMPORAL_NAMESPACE,
      taskQueue: get('VMDB_TASK_QUEUE') ?? DEFAULT_TASK_QUEUE_NAME,
      tls: tlsWanted ? { certFile: tlsCert, keyFile: get('TEMPORAL_TLS_KEY'), caFile: tlsCa, serverName: get('TEMPORAL_TLS_SERVER_NAME') } : undefined,
      apiKey,
    },
    fleetFile: get('VMDB_FLEET_FILE'),
    sshKeyFile: get('VMDB_SSH_KEY_FILE'),
    workerCachedWorkflows: get('VMDB_WORKER_CACHED_WORKFLOWS') === undefined ? undefined : int('VMDB_WORKER_CACHED_WORKFLOWS', 0),
    workerHealth: healthPort === undefined ? undefined : { host: get('VMDB_WORKER_HEALTH_HOST') ?? DEFAULT_WORKER_HEALTH_HOST, port: Number(healthPort) },
    dataDir: get('VMDB_DATA_DIR') ?? 'data',
    devTemporal: { port: int('VMDB_TEMPORAL_PORT', DEFAULT_DEV_TEMPORAL_PORT), uiPort: int('VMDB_TEMPORAL_UI_PORT', DEFAULT_DEV_TEMPORAL_UI_PORT) },
    logLevel: get('VMDB_LOG_LEVEL'),
    configFile: file,
    origin: { ...origin },
  };
}

/** Parses every setting; never throws. `problems` lists what is wrong, each with its setting's name. */
export function readSettings(env: Env = process.env, readFile: ReadFile = readText): { settings: Settings; problems: SettingsProblem[] } {
  const source = settingsSource(env, readFile);
  const problems = [...source.problems];
  for (const [name, raw] of Object.entries(source.values)) {
    const message = valueProblem(SPECS.get(name)!, raw);
    if (message) problems.push({ name, message: source.origin[name] === 'file' ? `${message} (from ${source.file})` : message });
  }
  const values = source.values;
  if (Boolean(values.TEMPORAL_TLS_CERT) !== Boolean(values.TEMPORAL_TLS_KEY)) {
    problems.push({ name: values.TEMPORAL_TLS_CERT ? 'TEMPORAL_TLS_KEY' : 'TEMPORAL_TLS_CERT', message: 'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be given together' });
  }
  if (Boolean(values.VMDB_API_TLS_CERT) !== Boolean(values.VMDB_API_TLS_KEY)) {
    problems.push({ name: values.VMDB_API_TLS_CERT ? 'VMDB_API_TLS_KEY' : 'VMDB_API_TLS_CERT', message: 'VMDB_API_TLS_CERT and VMDB_API_TLS_KEY must be given together' });
  }
  if (values.VMDB_TOKEN_SECRET !== undefined && values.VMDB_TOKEN_SECRETS !== undefined && values.VMDB_TOKEN_SECRETS.split(',')[0] !== values.VMDB_TOKEN_SECRET) {
    problems.push({ name: 'VMDB_TOKEN_SECRETS', message: 'VMDB_TOKEN_SECRET and VMDB_TOKEN_SECRETS disagree: set one, or make VMDB_TOKEN_SECRET the first of VMDB_TOKEN_SECRETS' });
  }
  const bad = new Set(problems.map((p) => p.name));
  return { settings: build(values, source.origin, source.file, bad), problems };
}

/**
 * The settings for a loader that reads only `names`: throws for a problem of
 * one of them, or of the settings file itself; other settings are not its business.
 */
export function settingsFor(env: Env, names: readonly string[], readFile: ReadFile = readText): Settings {
  const { settings, problems } = readSettings(env, readFile);
  const relevant = problems.filter((p) => names.includes(p.name) || p.name === 'VMDB_CONFIG_FILE' || !isSetting(p.name));
  if (relevant.length) throw new SettingsError(relevant);
  return settings;
}

/** What a process needs besides valid values: the API its operator tokens and secret, the worker its secret. */
export type Role = 'api' | 'worker';

export interface LoadOptions {
  require?: readonly Role[];
  /** Stop on an unknown VMDB_* variable (default true). */
  checkUnknown?: boolean;
  /** Check that the files named by settings can be read (default true). */
  checkFiles?: boolean;
  readFile?: ReadFile;
  canRead?: (path: string) => boolean;
}

const canReadFile = (path: string): boolean => {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Every setting, checked as a process does at start; throws a SettingsError
 * naming each problem. `require` adds what a role cannot run without.
 */
export function loadSettings(env: Env = process.env, options: LoadOptions = {}): Settings {
  const { settings, problems } = readSettings(env, options.readFile);
  const roles = new Set(options.require ?? []);
  const hasProblem = (name: string) => problems.some((p) => p.name === name);

  if (options.checkUnknown ?? true) {
    const unknown = unknownVariables(env);
    for (const name of unknown) {
      problems.push({ name, message: `${name} is not a vmdb setting${didYouMean(name, [...SPECS.keys(), ...Object.keys(OTHER_KNOWN_VARIABLES)])}` });
    }
    if (unknown.length) {
      problems.push({ name: 'VMDB_*', message: `known VMDB_* settings: ${SETTINGS.filter((s) => s.name.startsWith('VMDB_')).map((s) => s.name).join(', ')} (README, Configuration)` });
    }
  }

  if (options.checkFiles ?? true) {
    const canRead = options.canRead ?? canReadFile;
    for (const spec of SETTINGS) {
      if (spec.kind !== 'file' || hasProblem(spec.name)) continue;
      const path = fileSettingValue(settings, spec.name); // VMDB_CONFIG_FILE has been read already
      if (path === undefined) continue;
      if (!canRead(path)) problems.push({ name: spec.name, message: `${spec.name}: cannot read ${path}` });
    }
  }

  if ((roles.has('api') || roles.has('worker')) && !hasProblem('VMDB_TOKEN_SECRET') && !hasProblem('VMDB_TOKEN_SECRETS') && !settings.api.tokenSecret) {
    problems.push({
      name: 'VMDB_TOKEN_SECRET',
      message: roles.has('api') ? TOKEN_SECRET_MISSING : `${TOKEN_SECRET_MISSING}; the worker puts a token signed with it (the API's secret) into each VM's user data`,
    });
  }
  if (roles.has('api') && !settings.api.adminToken && !settings.api.operatorTokensFile && !hasProblem('VMDB_ADMIN_TOKEN') && !hasProblem('VMDB_OPERATOR_TOKENS_FILE')) {
    problems.push({ name: 'VMDB_ADMIN_TOKEN', message: 'No operator token: set VMDB_OPERATOR_TOKENS_FILE and/or VMDB_ADMIN_TOKEN' });
  }

  if (problems.length) throw new SettingsError(problems);
  return settings;
}

/** The in-force value of a file setting, from the typed settings. */
function fileSettingValue(settings: Settings, name: string): string | undefined {
  switch (name) {
    case 'VMDB_OPERATOR_TOKENS_FILE':
      return settings.api.operatorTokensFile;
    case 'VMDB_API_TLS_CERT':
      return settings.api.tls?.certFile;
    case 'VMDB_API_TLS_KEY':
      return settings.api.tls?.keyFile;
    case 'TEMPORAL_TLS_CERT':
      return settings.temporal.tls?.certFile;
    case 'TEMPORAL_TLS_KEY':
      return settings.temporal.tls?.keyFile;
    case 'TEMPORAL_TLS_CA':
      return settings.temporal.tls?.caFile;
    case 'VMDB_FLEET_FILE':
      return settings.fleetFile;
    case 'VMDB_SSH_KEY_FILE':
      return settings.sshKeyFile;
    default:
      return undefined;
  }
}
