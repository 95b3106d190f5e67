import { inspect } from 'node:util';
import {
  type CloudDriver,
  type CloudInstance,
  type CreateRequest,
  EndpointError,
  type EndpointFailureReason,
  InvalidRequestError,
  checkCreateRequest,
  optionalTextOption,
  parseEndpointName,
} from './driver';
import { type ComputeAccess, ComputeSession, type OpenStackAuth, checkAuth, checkUrl, describeAuth } from './openstack-auth';

/**
 * The `openstack` driver: VMs as servers of OpenStack Compute (Nova), over its API v2.1 with plain
 * HTTP calls. Every server it creates carries the metadata below, so the driver finds its own servers
 * again (a retried create, the listing for reconciliation) and never touches a server it did not
 * create. docs/drivers.md describes the contract it keeps.
 */

/** The metadata the driver puts on every server. Nothing is kept locally. */
export const OPENSTACK_METADATA = {
  endpoint: 'vmdb_endpoint',
  instanceID: 'vmdb_instance_id',
  instanceName: 'vmdb_instance_name',
  runningPod: 'vmdb_running_pod',
  image: 'vmdb_image',
} as const;

/**
 * 2.37: `networks` may be "auto" or "none". Nothing newer is needed, so older clouds serve the
 * driver too.
 */
export const COMPUTE_MICROVERSION = '2.37';

export interface OpenStackDriverOptions {
  auth: unknown;
  /** The Compute API's URL (…/v2.1); default: the Keystone catalog's. Required without Keystone. */
  computeUrl?: string;
  /** Which catalog endpoint: "public" (default), "internal" or "admin". */
  interface?: 'public' | 'internal' | 'admin';
  /** The catalog's region, when it has several. */
  region?: string;
  /** The flavor of every server, by ID or name. */
  flavor: string;
  /** The image ID every server boots; default: the request's image name, taken as an image ID. */
  imageId?: string;
  /** "auto" (default), "none", or network IDs. */
  networks?: 'auto' | 'none' | string[];
  keyName?: string;
  securityGroups?: string[];
  availabilityZone?: string;
  /** Extra metadata for every server; no key starting with "vmdb_". */
  metadata?: Record<string, string>;
  /** How long a create waits for the new server to leave BUILD, to report a failed boot (ERROR) at once. Default 0. */
  buildWaitSeconds?: number;
  /** Time one HTTP request may take, in milliseconds. Default 30000. */
  requestTimeoutMs?: number;
}

const OPTION_NAMES = [
  'auth',
  'computeUrl',
  'interface',
  'region',
  'flavor',
  'imageId',
  'networks',
  'keyName',
  'securityGroups',
  'availabilityZone',
  'metadata',
  'buildWaitSeconds',
  'requestTimeoutMs',
];
/** Nova takes at most 65535 characters of base64 user data: 49149 bytes before encoding. */
export const OPENSTACK_MAX_USER_DATA = 49_149;
const SERVER_ID = /^[0-9A-Za-z-]{1,64}$/;
const GONE_STATES = new Set(['DELETED', 'SOFT_DELETED']);
const PAGE_SIZE = 500;

/** One server as Nova describes it (the fields the driver reads). */
interface Server {
  id: string;
  name?: string;
  status?: string;
  created?: string;
  metadata?: Record<string, string>;
  addresses?: Record<string, { addr?: string; version?: number; 'OS-EXT-IPS:type'?: string }[]>;
  accessIPv4?: string;
  fault?: { code?: number; message?: string };
}

/** A Compute API answer that is not what the call wanted. */
export interface ComputeAnswer {
  status: number;
  body: string;
  headers: Headers;
}

/** Nova's error bodies are `{ "<kind>": { "code", "message" } }` (kind: badRequest, forbidden, overLimit, ...). */
function faultOf(body: string): { kind: string; message: string } {
  try {
    const parsed = JSON.parse(body) as Record<string, { message?: unknown }>;
    for (const [kind, value] of Object.entries(parsed)) {
      if (value && typeof value === 'object' && typeof value.message === 'string') return { kind, message: value.message };
    }
  } catch {
    // Not JSON: a proxy's or a WSGI server's page.
  }
  return { kind: '', message: body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300) };
}

const QUOTA = /quota exceeded|exceeds? .*quota|over ?quota/i;

/**
 * Nova's answer to `operation` in the terms the Director backs off by:
 * - 429, and a 413 without quota text (older Novas' rate limit) → throttled;
 * - a 400, 403 or 413 saying the quota is exceeded → quota; any other 401 or 403 → auth;
 * - 5xx → unavailable;
 * - any other 400, and 404 (an image, flavor or network that does not exist) → InvalidRequestError;
 * - anything else (409, ...) → Error, retried.
 */
export function classifyComputeAnswer(endpoint: string, operation: string, answer: ComputeAnswer): Error {
  const { status } = answer;
  const fault = faultOf(answer.body);
  const requestId = answer.headers.get('x-openstack-request-id') ?? answer.headers.get('x-compute-request-id');
  const message = `openstack driver (${endpoint}): ${operation} failed: HTTP ${status}${fault.kind ? ` ${fault.kind}` : ''}${fault.message ? `: ${fault.message}` : ''}${requestId ? ` (request ${requestId})` : ''}`;
  const quota = [400, 403, 413].includes(status) && QUOTA.test(fault.message);
  const reason: EndpointFailureReason | undefined = quota
    ? 'quota'
    : status === 429 || status === 413
      ? 'throttled'
      : status === 401 || status === 403
        ? 'auth'
        : status >= 500
          ? 'unavailable'
          : undefined;
  if (reason) return new EndpointError(reason, message);
  if (status === 400 || status === 404) return new InvalidRequestError(message);
  return new Error(message);
}

/** A call that got no answer (refused, reset, timed out): the cloud may come back. */
function unreachable(endpoint: string, operation: string, err: unknown): EndpointError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = (err as Error).name === 'TimeoutError' ? 'timed out' : (cause?.code ?? cause?.message ?? (err as Error).message);
  return new EndpointError('unavailable', `openstack driver (${endpoint}): ${operation} got no answer: ${why}`, { cause: err });
}

/** Nova's status in vmdb's terms. A server that failed (ERROR) or is off is `stopped`. */
function statusOf(status: string | undefined): CloudInstance['status'] {
  switch (status) {
    case 'BUILD':
      return 'pending';
    case 'ACTIVE':
    case 'REBOOT':
    case 'HARD_REBOOT':
    case 'PASSWORD':
    case 'REBUILD':
    case 'MIGRATING':
    case 'RESIZE':
    case 'VERIFY_RESIZE':
    case 'REVERT_RESIZE':
      return 'running';
    case 'SHUTOFF':
    case 'PAUSED':
    case 'SUSPENDED':
    case 'SHELVED':
    case 'SHELVED_OFFLOADED':
    case 'RESCUE':
    case 'ERROR':
    case 'DELETED':
    case 'SOFT_DELETED':
      return 'stopped';
    default:
      return 'unknown';
  }
}

/** Why a server in ERROR failed, as Nova says. */
function faultText(server: Server): string {
  return server.fault?.message ? `${server.fault.message}${server.fault.code ? ` (code ${server.fault.code})` : ''}` : 'no fault recorded';
}

function createdOrder(a: Server, b: Server): number {
  return (a.created ?? '').localeCompare(b.created ?? '') || a.id.localeCompare(b.id);
}

/** Nova's `name` filter is a regular expression: match this name exactly. */
function exactNamePattern(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

function firstAddress(server: Server, type: 'fixed' | 'floating'): string {
  const all = Object.values(server.addresses ?? {}).flat();
  const ofType = all.filter((a) => (a['OS-EXT-IPS:type'] ?? 'fixed') === type && a.addr);
  return (ofType.find((a) => a.version === 4) ?? ofType[0])?.addr ?? '';
}

const TEXT = /^[^\u0000-\u001f\u007f]+$/;

const optionalText = (name: string, value: unknown) => optionalTextOption('openstack', name, value);

function textArray(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && TEXT.test(v) && v.length <= 255)) {
    throw new Error(`openstack driver: ${name} must be an array of non-empty strings`);
  }
  return [...value] as string[];
}

/** The options with their defaults filled in. */
interface CheckedOptions {
  auth: OpenStackAuth;
  computeUrl?: string;
  interface: 'public' | 'internal' | 'admin';
  region?: string;
  flavor: string;
  imageId?: string;
  networks: 'auto' | 'none' | string[];
  keyName?: string;
  securityGroups: string[];
  availabilityZone?: string;
  metadata: Record<string, string>;
  buildWaitSeconds: number;
  requestTimeoutMs: number;
}

function checkOptions(options: unknown, env: NodeJS.ProcessEnv): CheckedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error('openstack driver options must be an object');
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!OPTION_NAMES.includes(key)) throw new Error(`openstack driver: unknown option ${JSON.stringify(key)} (known: ${OPTION_NAMES.join(', ')})`);
  }
  const auth = checkAuth(given.auth, env);
  const computeUrl = given.computeUrl === undefined ? undefined : checkUrl('computeUrl', given.computeUrl);
  if ('type' in auth && computeUrl === undefined) throw new Error('openstack driver: computeUrl is required with auth type "noauth" (there is no catalog)');
  const iface = given.interface ?? 'public';
  if (iface !== 'public' && iface !== 'internal' && iface !== 'admin') throw new Error('openstack driver: interface must be "public", "internal" or "admin"');
  const flavor = optionalText('flavor', given.flavor);
  if (flavor === undefined) throw new Error('openstack driver: flavor is required (a flavor ID or name, e.g. "m1.large")');
  const networks = given.networks ?? 'auto';
  if (networks !== 'auto' && networks !== 'none') textArray('networks ("auto", "none" or network IDs)', networks);
  const metadata = given.metadata ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new Error('openstack driver: metadata must be an object of keys and values');
  for (const [key, value] of Object.entries(metadata)) {
    if (key === '' || key.length > 255 || /^vmdb_/i.test(key)) throw new Error(`openstack driver: metadata key ${JSON.stringify(key)} is not allowed (1 to 255 characters, not starting with "vmdb_")`);
    if (typeof value !== 'string' || value.length > 255) throw new Error(`openstack driver: the value of metadata ${JSON.stringify(key)} must be a string of at most 255 characters`);
  }
  if (Object.keys(metadata).length > 100) throw new Error('openstack driver: at most 100 metadata items (Nova\'s default quota is 128, vmdb uses 5)');
  const buildWaitSeconds = given.buildWaitSeconds ?? 0;
  if (typeof buildWaitSeconds !== 'number' || !Number.isSafeInteger(buildWaitSeconds) || buildWaitSeconds < 0 || buildWaitSeconds > 20) {
    throw new Error('openstack driver: buildWaitSeconds must be an integer from 0 to 20 (a create activity has 30 s)');
  }
  const requestTimeoutMs = given.requestTimeoutMs ?? 30_000;
  if (typeof requestTimeoutMs !== 'number' || !Number.isSafeInteger(requestTimeoutMs) || requestTimeoutMs < 100) {
    throw new Error('openstack driver: requestTimeoutMs must be an integer of at least 100 (milliseconds)');
  }
  return {
    auth,
    computeUrl,
    interface: iface,
    region: optionalText('region', given.region),
    flavor,
    imageId: optionalText('imageId', given.imageId),
    networks: Array.isArray(networks) ? [...(networks as string[])] : (networks as 'auto' | 'none'),
    keyName: optionalText('keyName', given.keyName),
    securityGroups: given.securityGroups === undefined ? [] : textArray('securityGroups', given.securityGroups),
    availabilityZone: optionalText('availabilityZone', given.availabilityZone),
    metadata: { ...(metadata as Record<string, string>) },
    buildWaitSeconds,
    requestTimeoutMs,
  };
}

export class OpenStackDriver implements CloudDriver {
  readonly endpoint: string;
  private readonly options: CheckedOptions;
  private readonly session: ComputeSession;

  constructor(endpoint: string, options: OpenStackDriverOptions, env: NodeJS.ProcessEnv = process.env) {
    this.endpoint = parseEndpointName(endpoint).name;
    this.options = checkOptions(options, env);
    const { auth, computeUrl, region, requestTimeoutMs } = this.options;
    this.session = new ComputeSession({ endpoint: this.endpoint, auth, computeUrl, interface: this.options.interface, region, requestTimeoutMs });
  }

  /**
   * Boots one server for the request, or returns the live server an earlier attempt made for the same
   * instance name. Nova has no idempotency token, so the lookup by name and metadata carries the whole
   * weight, and POST /servers is sent once per call: a retry comes back through the lookup.
   * A server of this name that failed (ERROR) is deleted and its fault thrown, so that the next
   * attempt boots a fresh one.
   */
  async createInstance(req: CreateRequest): Promise<CloudInstance> {
    const request = checkCreateRequest(req, { driver: 'openstack', maxUserDataBytes: OPENSTACK_MAX_USER_DATA, allowNul: true });
    const live = await this.serversNamed(request.instanceName);
    const healthy = live.filter((s) => s.status !== 'ERROR');
    if (healthy.length > 0) return this.toInstance(healthy[0]);
    if (live.length > 0) await this.failBuild(live);

    const imageRef = this.options.imageId ?? request.imageName;
    if (imageRef === '') throw new InvalidRequestError(`openstack driver (${this.endpoint}): no image: set the endpoint's imageId, or name the image by its ID`);
    const metadata: Record<string, string> = {
      ...this.options.metadata,
      [OPENSTACK_METADATA.endpoint]: this.endpoint,
      [OPENSTACK_METADATA.instanceName]: request.instanceName,
      [OPENSTACK_METADATA.runningPod]: request.runningPod,
      [OPENSTACK_METADATA.image]: request.imageName,
      ...(request.instanceID === undefined ? {} : { [OPENSTACK_METADATA.instanceID]: String(request.instanceID) }),
    };
    const { networks, keyName, securityGroups, availabilityZone } = this.options;
    const server = {
      name: request.instanceName,
      imageRef,
      flavorRef: await this.flavorId(),
      networks: Array.isArray(networks) ? networks.map((uuid) => ({ uuid })) : networks,
      metadata,
      ...(request.userData ? { user_data: Buffer.from(request.userData, 'utf8').toString('base64') } : {}),
      ...(keyName ? { key_name: keyName } : {}),
      ...(securityGroups.length > 0 ? { security_groups: securityGroups.map((name) => ({ name })) } : {}),
      ...(availabilityZone ? { availability_zone: availabilityZone } : {}),
    };
    const created = (await this.call<{ server?: { id?: string } }>('POST', '/servers', 'create server', { server }, [202])).body.server;
    if (!created?.id) throw new Error(`openstack driver (${this.endpoint}): POST /servers answered without a server`);
    const fresh = await this.awaitBuild(created.id);
    if (fresh?.status === 'ERROR') await this.failBuild([fresh]);
    return fresh ? this.toInstance(fresh) : { uniqueID: created.id, status: 'pending', publicIP: '', privateIP: '', instanceName: request.instanceName, ...(request.instanceID ? { instanceID: request.instanceID } : {}) };
  }

  /** Deletes a server of this endpoint. A server that is gone, going, or not this endpoint's is left alone: success. */
  async stopInstance(uniqueID: string): Promise<void> {
    const server = await this.own(uniqueID);
    if (!server || GONE_STATES.has(server.status ?? '')) return;
    await this.call('DELETE', `/servers/${encodeURIComponent(uniqueID)}`, 'delete server', undefined, [202, 204, 404]);
  }

  /** An ID that is not a server of this endpoint answers 'unknown'. A server in ERROR is 'stopped', with Nova's fault. */
  async getInstanceStatus(uniqueID: string): Promise<CloudInstance> {
    const server = await this.own(uniqueID);
    return server ? this.toInstance(server) : { uniqueID, status: 'unknown', publicIP: '', privateIP: '' };
  }

  /** Every server carrying this endpoint's metadata, by creation time, then ID. */
  async listInstances(): Promise<CloudInstance[]> {
    const found: Server[] = [];
    for (let marker: string | undefined; ; ) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(marker ? { marker } : {}) });
      const page = (await this.call<{ servers?: Server[] }>('GET', `/servers/detail?${query}`, 'list servers')).body.servers ?? [];
      found.push(...page.filter((s) => this.isOwn(s)));
      if (page.length < PAGE_SIZE) break;
      marker = page[page.length - 1].id;
    }
    return found.sort(createdOrder).map((s) => this.toInstance(s));
  }

  /** Options as they may be shown: the secrets are replaced by whether there are any. */
  describeOptions(): Record<string, unknown> {
    return { ...this.options, auth: describeAuth(this.options.auth) };
  }

  toJSON(): Record<string, unknown> {
    return { driver: 'openstack', endpoint: this.endpoint, options: this.describeOptions() };
  }

  [inspect.custom](): string {
    return `OpenStackDriver ${inspect(this.toJSON(), { depth: 4, breakLength: Infinity })}`;
  }

  /** This endpoint's live servers of that name (not deleted), oldest first. */
  private async serversNamed(name: string): Promise<Server[]> {
    const query = new URLSearchParams({ name: exactNamePattern(name) });
    const servers = (await this.call<{ servers?: Server[] }>('GET', `/servers/detail?${query}`, 'look up server')).body.servers ?? [];
    return servers.filter((s) => this.isOwn(s) && s.metadata?.[OPENSTACK_METADATA.instanceName] === name && !GONE_STATES.has(s.status ?? '')).sort(createdOrder);
  }

  /**
   * Deletes servers that failed to build, then says why the first failed: no host is `capacity`, a
   * quota (Nova's recheck after scheduling, when concurrent creates got past its first check) is
   * `quota`, anything else `unavailable`.
   */
  private async failBuild(failed: Server[]): Promise<never> {
    for (const { id } of failed) await this.call('DELETE', `/servers/${encodeURIComponent(id)}`, 'delete failed server', undefined, [202, 204, 404]);
    const server = failed[0];
    const fault = faultText(server);
    const reason: EndpointFailureReason = /no valid host/i.test(fault) ? 'capacity' : QUOTA.test(fault) ? 'quota' : 'unavailable';
    throw new EndpointError(reason, `openstack driver (${this.endpoint}): server ${server.id} (${server.name ?? ''}) went to ERROR: ${fault}; it was deleted`);
  }

  /** The new server once it has left BUILD, or as it is when buildWaitSeconds are up. */
  private async awaitBuild(id: string): Promise<Server | undefined> {
    const deadline = Date.now() + this.options.buildWaitSeconds * 1000;
    for (let pause = 200; ; pause = Math.min(pause * 2, 2000)) {
      const server = await this.own(id);
      if (!server || server.status !== 'BUILD' || Date.now() + pause > deadline) return server;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** The flavor's ID, from the `flavor` option taken as an ID first, then as a name. */
  private async flavorId(): Promise<string> {
    const wanted = this.options.flavor;
    const flavors = (await this.call<{ flavors?: { id: string; name: string }[] }>('GET', '/flavors', 'list flavors')).body.flavors ?? [];
    const match = flavors.find((f) => f.id === wanted) ?? flavors.find((f) => f.name === wanted);
    if (!match) {
      const known = flavors.map((f) => f.name).slice(0, 20).join(', ');
      throw new InvalidRequestError(`openstack driver (${this.endpoint}): no flavor ${JSON.stringify(wanted)} (known: ${known || 'none'})`);
    }
    return match.id;
  }

  private isOwn(server: Server): boolean {
    return server.metadata?.[OPENSTACK_METADATA.endpoint] === this.endpoint;
  }

  /** The server of that ID if it carries this endpoint's metadata; undefined for any other ID. */
  private async own(uniqueID: string): Promise<Server | undefined> {
    if (typeof uniqueID !== 'string' || !SERVER_ID.test(uniqueID)) return undefined;
    const answer = await this.call<{ server?: Server }>('GET', `/servers/${encodeURIComponent(uniqueID)}`, 'show server', undefined, [200, 404]);
    const server = answer.status === 200 ? answer.body.server : undefined;
    return server && server.id === uniqueID && this.isOwn(server) ? server : undefined;
  }

  /**
   * One Compute API call; an answer outside `expected` is classified and thrown. A 401 with a Keystone
   * token is retried once with a new token: the call was refused before it ran.
   */
  private async call<T>(method: string, path: string, operation: string, body?: unknown, expected: number[] = [200]): Promise<{ status: number; body: T }> {
    for (let attempt = 0; ; attempt++) {
      const access: ComputeAccess = await this.session.access();
      let res: Response;
      let text: string;
      try {
        res = await fetch(`${access.computeUrl}${path}`, {
          method,
          headers: {
            ...access.headers,
            Accept: 'application/json',
            'User-Agent': 'vmdb',
            'OpenStack-API-Version': `compute ${COMPUTE_MICROVERSION}`,
            'X-OpenStack-Nova-API-Version': COMPUTE_MICROVERSION,
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(this.options.requestTimeoutMs),
        });
        text = await res.text();
      } catch (err) {
        throw unreachable(this.endpoint, operation, err);
      }
      if (res.status === 401 && access.token !== undefined && attempt === 0) {
        this.session.invalidate(access.token);
        continue;
      }
      if (!expected.includes(res.status)) throw classifyComputeAnswer(this.endpoint, operation, { status: res.status, body: text, headers: res.headers });
      let parsed: unknown = {};
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          throw new EndpointError('unavailable', `openstack driver (${this.endpoint}): ${operation} answered HTTP ${res.status} with a body that is not JSON`);
        }
      }
      return { status: res.status, body: parsed as T };
    }
  }

  private toInstance(server: Server): CloudInstance {
    const instanceID = Number(server.metadata?.[OPENSTACK_METADATA.instanceID]);
    const instanceName = server.metadata?.[OPENSTACK_METADATA.instanceName];
    return {
      uniqueID: server.id,
      status: statusOf(server.status),
      publicIP: firstAddress(server, 'floating') || (server.accessIPv4 ?? ''),
      privateIP: firstAddress(server, 'fixed'),
      ...(instanceName === undefined ? {} : { instanceName }),
      ...(Number.isSafeInteger(instanceID) && instanceID > 0 ? { instanceID } : {}),
      ...(server.status === 'ERROR' ? { fault: faultText(server) } : {}),
    };
  }
}

/** The registry's factory: options come straight from the endpoint configuration. */
export function openstackDriverFromConfig(endpoint: string, options: Record<string, unknown>): OpenStackDriver {
  return new OpenStackDriver(endpoint, options as unknown as OpenStackDriverOptions);
}
