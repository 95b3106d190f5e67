import path from 'node:path';
import { readCaFile } from '../net/ca-fetch';
import { plainHttpProblem } from '../net/plain-http';
import { type StopPolicy, validateStopPolicy } from './stop-policy';

/**
 * Settings of the VM monitor agent (`vmdb-agent`), from the VM's user data and its environment.
 *
 * The user data (`VMDB_USER_DATA`) may be any text: when it is a JSON object with a `vmdb` member,
 * that member gives `apiUrl`, `instanceID` and `token`. Environment variables override it:
 * `VMDB_API_URL`, `VMDB_INSTANCE_ID`, `VMDB_VM_TOKEN`. The token is never part of a message.
 * The API's certificate is verified against the system's CAs, or VMDB_AGENT_CA_FILE's alone; plain
 * http to another machine, wherever the url came from, needs VMDB_AGENT_ALLOW_HTTP=true.
 */
export interface AgentConfig {
  /** Base URL of the service, without a trailing slash and without `/api/v1`. */
  apiUrl: string;
  instanceID: number;
  /** The VM token (`vm.<InstanceID>.<signature>`); never log it. */
  token: string;
  /** VMDB_AGENT_PERIOD: seconds between heartbeats (default 300). */
  periodSeconds: number;
  /** VMDB_AGENT_JOBS_COMMAND: argv whose stdout is the number of jobs; undefined means 0 jobs. */
  jobsCommand?: string[];
  /** VMDB_AGENT_TRANSFER_COMMAND: argv whose stdout is "<files> <bytes>"; undefined means 0 0. */
  transferCommand?: string[];
  /** VMDB_AGENT_TRANSFER_FILE: a file holding "<files> <bytes>" (totals since boot), kept by the job agent; instead of the command. */
  transferFile?: string;
  /** VMDB_AGENT_STOP_FILE: written on `stop` so the job agent takes no more work. */
  stopFile: string;
  /** VMDB_AGENT_SHUTDOWN_FILE: holds the planned shutdown time (ISO) from the heartbeat reply, so the job agent takes no job that would not finish. */
  shutdownFile?: string;
  /** VMDB_AGENT_HALT_COMMAND: argv that powers the VM off. */
  haltCommand: string[];
  /** `vmdb.stopPolicy` of the user data, or VMDB_AGENT_STOP_POLICY (JSON); default `never`. */
  stopPolicy?: StopPolicy;
  /** VMDB_AGENT_LOAD_FILE: where the stop policy reads the load (first number, as /proc/loadavg); default the system's. */
  loadFile?: string;
  /** VMDB_AGENT_CA_FILE: the CA the API's certificate must chain to, instead of the system's; with `ca`, its PEM text. */
  caFile?: string;
  ca?: string;
  /** VMDB_AGENT_ALLOW_HTTP=true: plain http to a host other than this one is allowed. */
  allowHttp?: boolean;
  /** VMDB_AGENT_UPTIME: `system` (since boot, default) or `agent` (since the agent started: VMs that are processes). */
  uptimeFrom?: 'system' | 'agent';
}

export const DEFAULT_PERIOD_SECONDS = 300;
export const DEFAULT_STOP_FILE = '/var/run/vmdb/stop';
export const DEFAULT_SHUTDOWN_FILE = '/var/run/vmdb/shutdown-at';
export const DEFAULT_HALT_COMMAND: readonly string[] = ['shutdown', '-h', 'now'];
/** One day: a longer period would leave the instance silent past any sensible stalling interval. */
export const MAX_PERIOD_SECONDS = 86_400;

/** Every problem of the agent's configuration, one per line; the token never appears in it. */
export class AgentConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`vmdb-agent configuration is not usable:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'AgentConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** A short rendering of a (non-secret) value for a message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** The environment value of `name`, or undefined when it is unset or blank (blank means unset). */
function fromEnv(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

interface UserDataSettings {
  apiUrl?: unknown;
  instanceID?: unknown;
  token?: unknown;
  stopPolicy?: unknown;
}

/**
 * The `vmdb` member of the user data. User data that is not JSON (a cloud-init script, say) or JSON
 * without `vmdb` carries no settings; `vmdb` that is present but not an object is a problem.
 */
function readUserData(raw: string | undefined, problems: string[]): { settings: UserDataSettings; note?: string } {
  if (raw === undefined || raw.trim() === '') return { settings: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { settings: {}, note: 'VMDB_USER_DATA is set but is not JSON, so it gave no settings' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || !Object.prototype.hasOwnProperty.call(parsed, 'vmdb')) {
    return { settings: {}, note: 'VMDB_USER_DATA is JSON but has no "vmdb" object, so it gave no settings' };
  }
  const vmdb = (parsed as { vmdb: unknown }).vmdb;
  if (vmdb === null || typeof vmdb !== 'object' || Array.isArray(vmdb)) {
    problems.push(`VMDB_USER_DATA: "vmdb" must be an object with apiUrl, instanceID and token, got ${show(vmdb)}`);
    return { settings: {} };
  }
  const { apiUrl, instanceID, token, stopPolicy } = vmdb as Record<string, unknown>;
  return { settings: { apiUrl, instanceID, token, stopPolicy } };
}

function checkApiUrl(source: string, value: unknown, allowHttp: boolean, problems: string[]): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push(`${source} must be a non-empty string (the service's base URL, e.g. https://vmdb.example.org), got ${show(value)}`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    problems.push(`${source} is not a valid URL: ${show(value)}`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${source} must be an http:// or https:// URL, got protocol ${show(url.protocol)}`);
    return undefined;
  }
  if (url.username || url.password) {
    // Credentials in a URL end up in logs; the VM token is the only credential the agent sends.
    problems.push(`${source} must not contain a user name or password (the VM token authenticates the agent)`);
    return undefined;
  }
  if (url.search || url.hash) {
    problems.push(`${source} must not have a query string or fragment`);
    return undefined;
  }
  const plain = allowHttp ? undefined : plainHttpProblem(url, source, 'VMDB_AGENT_ALLOW_HTTP=true');
  if (plain) {
    problems.push(plain);
    return undefined;
  }
  // Accept both the service root and the versioned base (.../api/v1): the agent adds /api/v1 itself.
  const base = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return `${url.origin}${base}`;
}

function checkInstanceID(source: string, value: unknown, problems: string[]): number | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined || !/^\d{1,15}$/.test(text) || Number(text) <= 0) {
    problems.push(`${source} must be a positive integer (the InstanceID), got ${show(value)}`);
    return undefined;
  }
  return Number(text);
}

function checkToken(source: string, value: unknown, problems: string[]): string | undefined {
  // Never show the value: only its type or what is wrong with its shape.
  if (typeof value !== 'string' || value.trim() === '') {
    problems.push(`${source} must be a non-empty string (the instance's VM token)${typeof value === 'string' ? '' : `, got ${value === null ? 'null' : typeof value}`}`);
    return undefined;
  }
  const token = value.trim();
  if (!/^[\x21-\x7e]+$/.test(token)) {
    problems.push(`${source} contains spaces, control or non-ASCII characters (value not shown)`);
    return undefined;
  }
  return token;
}

/** The InstanceID a VM token names (`vm.<id>.<signature>`), without checking its signature. */
export function tokenInstanceID(token: string): number | undefined {
  const match = /^vm\.(\d{1,15})\.[^.]+$/.exec(token);
  return match ? Number(match[1]) : undefined;
}

/**
 * An argv from a variable: a JSON array of strings (preferred), or a plain command line split on
 * spaces, never run through a shell (so no quoting, globbing or pipes).
 */
export function parseCommand(name: string, raw: string): string[] {
  const text = raw.trim();
  let argv: unknown;
  if (text.startsWith('[') || text.startsWith('{')) {
    try {
      argv = JSON.parse(text);
    } catch (err) {
      throw new Error(`${name} looks like JSON but does not parse: ${(err as Error).message}`);
    }
  } else {
    argv = text.split(/\s+/).filter((part) => part !== '');
  }
  if (!Array.isArray(argv) || argv.length === 0) throw new Error(`${name} must be a non-empty command: a JSON array of strings such as ["/usr/bin/count-jobs","--all"], or a plain command line`);
  for (const [index, arg] of argv.entries()) {
    if (typeof arg !== 'string') throw new Error(`${name}[${index}] must be a string, got ${show(arg)}`);
    if (arg.includes('\0')) throw new Error(`${name}[${index}] must not contain NUL characters`);
  }
  if (argv[0] === '') throw new Error(`${name}: the program (first element) must not be empty`);
  return argv as string[];
}

function checkPeriod(raw: string, problems: string[]): number {
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value) || value <= 0) {
    problems.push(`VMDB_AGENT_PERIOD must be a positive number of seconds, got ${show(raw)}`);
    return DEFAULT_PERIOD_SECONDS;
  }
  if (value > MAX_PERIOD_SECONDS) {
    problems.push(`VMDB_AGENT_PERIOD is too long (${value} s, at most ${MAX_PERIOD_SECONDS})`);
    return DEFAULT_PERIOD_SECONDS;
  }
  return value;
}

function optionalCommand(env: Env, name: string, problems: string[]): string[] | undefined {
  const raw = fromEnv(env, name);
  if (raw === undefined) return undefined;
  try {
    return parseCommand(name, raw);
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
}

/**
 * Reads the agent's settings. Throws AgentConfigError listing every problem at once; the token is
 * never part of its message.
 */
export function loadAgentConfig(env: Env = process.env): AgentConfig {
  const problems: string[] = [];
  const { settings, note } = readUserData(env.VMDB_USER_DATA, problems);

  const urlEnv = fromEnv(env, 'VMDB_API_URL');
  const idEnv = fromEnv(env, 'VMDB_INSTANCE_ID');
  const tokenEnv = fromEnv(env, 'VMDB_VM_TOKEN');

  const missing = (what: string, envName: string, key: string) =>
    `${what} is not set: set ${envName}, or give "vmdb": { "${key}": ... } in VMDB_USER_DATA${note ? ` (${note})` : ''}`;

  // Only the environment allows plain http: the user data travels with the VM, the image is the operator's.
  const allowRaw = fromEnv(env, 'VMDB_AGENT_ALLOW_HTTP');
  if (allowRaw !== undefined && !/^(true|false)$/i.test(allowRaw)) problems.push(`VMDB_AGENT_ALLOW_HTTP must be true or false, got ${show(allowRaw)}`);
  const allowHttp = allowRaw?.toLowerCase() === 'true';

  let apiUrl: string | undefined;
  if (urlEnv !== undefined) apiUrl = checkApiUrl('VMDB_API_URL', urlEnv, allowHttp, problems);
  else if (settings.apiUrl !== undefined) apiUrl = checkApiUrl('VMDB_USER_DATA vmdb.apiUrl', settings.apiUrl, allowHttp, problems);
  else problems.push(missing('The service URL', 'VMDB_API_URL', 'apiUrl'));

  let token: string | undefined;
  if (tokenEnv !== undefined) token = checkToken('VMDB_VM_TOKEN', tokenEnv, problems);
  else if (settings.token !== undefined) token = checkToken('VMDB_USER_DATA vmdb.token', settings.token, problems);
  else problems.push(missing('The VM token', 'VMDB_VM_TOKEN', 'token'));

  let instanceID: number | undefined;
  let idSource = '';
  if (idEnv !== undefined) [instanceID, idSource] = [checkInstanceID('VMDB_INSTANCE_ID', idEnv, problems), 'VMDB_INSTANCE_ID'];
  else if (settings.instanceID !== undefined) [instanceID, idSource] = [checkInstanceID('VMDB_USER_DATA vmdb.instanceID', settings.instanceID, problems), 'VMDB_USER_DATA vmdb.instanceID'];
  else if (token !== undefined && tokenInstanceID(token) !== undefined) [instanceID, idSource] = [tokenInstanceID(token), 'the VM token'];
  else problems.push(missing('The InstanceID', 'VMDB_INSTANCE_ID', 'instanceID'));

  // A VM token names its instance: a mismatch would only ever get 403s, so say so now.
  if (token !== undefined && instanceID !== undefined) {
    const named = tokenInstanceID(token);
    if (named !== undefined && named !== instanceID) {
      problems.push(`The VM token is for instance ${named}, but the InstanceID (from ${idSource}) is ${instanceID}`);
    }
  }

  const periodRaw = fromEnv(env, 'VMDB_AGENT_PERIOD');
  const periodSeconds = periodRaw === undefined ? DEFAULT_PERIOD_SECONDS : checkPeriod(periodRaw, problems);
  const jobsCommand = optionalCommand(env, 'VMDB_AGENT_JOBS_COMMAND', problems);
  const transferCommand = optionalCommand(env, 'VMDB_AGENT_TRANSFER_COMMAND', problems);
  const haltCommand = optionalCommand(env, 'VMDB_AGENT_HALT_COMMAND', problems) ?? [...DEFAULT_HALT_COMMAND];

  const fileSetting = (name: string, fallback: string): string => {
    const raw = fromEnv(env, name);
    if (raw === undefined) return fallback;
    if (raw.includes('\0')) problems.push(`${name} must not contain NUL characters`);
    else if (/[\\/]$/.test(raw)) problems.push(`${name} must name a file, not a directory: ${show(raw)}`);
    else return path.resolve(raw);
    return fallback;
  };
  const stopFile = fileSetting('VMDB_AGENT_STOP_FILE', DEFAULT_STOP_FILE);
  const transferFile = fromEnv(env, 'VMDB_AGENT_TRANSFER_FILE') === undefined ? undefined : fileSetting('VMDB_AGENT_TRANSFER_FILE', '');
  if (transferFile !== undefined && transferCommand !== undefined) problems.push('Set VMDB_AGENT_TRANSFER_COMMAND or VMDB_AGENT_TRANSFER_FILE, not both');
  const shutdownFile = fileSetting('VMDB_AGENT_SHUTDOWN_FILE', DEFAULT_SHUTDOWN_FILE);
  const loadFile = fromEnv(env, 'VMDB_AGENT_LOAD_FILE') === undefined ? undefined : fileSetting('VMDB_AGENT_LOAD_FILE', '');
  const stopPolicy = readStopPolicy(env, settings.stopPolicy, problems);
  const uptimeRaw = fromEnv(env, 'VMDB_AGENT_UPTIME');
  if (uptimeRaw !== undefined && uptimeRaw !== 'system' && uptimeRaw !== 'agent') problems.push(`VMDB_AGENT_UPTIME must be "system" or "agent", got ${show(uptimeRaw)}`);
  const uptimeFrom = uptimeRaw === 'agent' ? 'agent' : undefined;
  const caFile = fromEnv(env, 'VMDB_AGENT_CA_FILE') === undefined ? undefined : fileSetting('VMDB_AGENT_CA_FILE', '');
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readCaFile('VMDB_AGENT_CA_FILE', caFile);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }

  if (problems.length > 0 || apiUrl === undefined || instanceID === undefined || token === undefined) {
    throw new AgentConfigError(problems.length ? problems : ['incomplete configuration']);
  }
  return {
    apiUrl,
    instanceID,
    token,
    periodSeconds,
    jobsCommand,
    transferCommand,
    ...(transferFile ? { transferFile } : {}),
    stopFile,
    shutdownFile,
    haltCommand,
    ...(stopPolicy ? { stopPolicy } : {}),
    ...(loadFile ? { loadFile } : {}),
    ...(uptimeFrom ? { uptimeFrom } : {}),
    ...(caFile && ca ? { caFile, ca } : {}),
    ...(allowHttp ? { allowHttp } : {}),
  };
}

/** VMDB_AGENT_STOP_POLICY (JSON) wins over the user data's `vmdb.stopPolicy`; neither: undefined (`never`). */
function readStopPolicy(env: Env, fromUserData: unknown, problems: string[]): StopPolicy | undefined {
  const raw = fromEnv(env, 'VMDB_AGENT_STOP_POLICY');
  try {
    if (raw !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new Error(`VMDB_AGENT_STOP_POLICY must be JSON such as {"policy":"elastic"}, got ${show(raw)}`);
      }
      return validateStopPolicy('VMDB_AGENT_STOP_POLICY', parsed);
    }
    return fromUserData === undefined ? undefined : validateStopPolicy('VMDB_USER_DATA vmdb.stopPolicy', fromUserData);
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
}

/** The configuration as it may be logged: everything but the token. */
export function describeAgentConfig(config: AgentConfig): string {
  const argv = (cmd?: string[]) => (cmd ? JSON.stringify(cmd) : 'none');
  return [
    `api=${config.apiUrl}`,
    `instance=${config.instanceID}`,
    `period=${config.periodSeconds}s`,
    `jobs=${argv(config.jobsCommand)}`,
    `transfers=${config.transferFile ? `file ${config.transferFile}` : argv(config.transferCommand)}`,
    `stopFile=${config.stopFile}`,
    `shutdownFile=${config.shutdownFile}`,
    `halt=${argv(config.haltCommand)}`,
    `stopPolicy=${config.stopPolicy?.policy ?? 'never'}`,
    ...(config.loadFile ? [`loadFile=${config.loadFile}`] : []),
    ...(config.caFile ? [`ca=${config.caFile}`] : []),
    ...(config.allowHttp ? ['allowHttp=true'] : []),
  ].join(' ');
}
