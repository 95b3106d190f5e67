import { EndpointError, type EndpointFailureReason } from './driver';

/**
 * How the `openstack` driver gets a token and the Compute API's URL: from Keystone v3 (an application
 * credential or a password), or, for a Nova whose API runs without Keystone, from the options alone.
 * The token is kept in memory, shared by concurrent calls and renewed before it expires.
 */

export interface ApplicationCredentialAuth {
  authUrl: string;
  applicationCredentialId: string;
  applicationCredentialSecret: string;
}

export interface PasswordAuth {
  authUrl: string;
  username: string;
  password: string;
  userDomainName: string;
  /** The project to scope the token to: its ID, or its name in projectDomainName. */
  projectId?: string;
  projectName?: string;
  projectDomainName: string;
}

/** No Keystone: the API trusts these identity headers (a Nova API pipeline without `authtoken`). */
export interface NoAuth {
  type: 'noauth';
  projectId: string;
  userId: string;
  roles: string[];
}

export type OpenStackAuth = ApplicationCredentialAuth | PasswordAuth | NoAuth;

/** What a call sends and where. */
export interface ComputeAccess {
  computeUrl: string;
  headers: Record<string, string>;
  /** The Keystone token, to renew after a 401; none without Keystone. */
  token?: string;
}

const TEXT = /^[^\u0000-\u001f\u007f]+$/;
const AUTH_FIELDS = [
  'type',
  'authUrl',
  'applicationCredentialId',
  'applicationCredentialSecret',
  'applicationCredentialSecretEnv',
  'username',
  'password',
  'passwordEnv',
  'userDomainName',
  'projectId',
  'projectName',
  'projectDomainName',
  'userId',
  'roles',
];

function fail(message: string): never {
  throw new Error(`openstack driver: ${message}`);
}

function text(name: string, value: unknown, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || !TEXT.test(value) || value.length > 255) fail(`auth.${name} must be a non-empty string without control characters`);
  return value;
}

/** An http(s) URL without credentials in it, with no trailing slash. */
export function checkUrl(name: string, value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.username || url.password || url.search || url.hash) {
    fail(`${name} must be an http(s) URL without credentials or query in it`);
  }
  return (value as string).replace(/\/+$/, '');
}

/** A secret given in place, or by the name of an environment variable of the worker; never echoed. */
function secret(given: Record<string, unknown>, name: string, env: NodeJS.ProcessEnv): string {
  const envName = given[`${name}Env`];
  if (given[name] !== undefined && envName !== undefined) fail(`give auth.${name} or auth.${name}Env, not both`);
  if (envName !== undefined) {
    if (typeof envName !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) fail(`auth.${name}Env must name an environment variable`);
    const value = env[envName];
    if (!value) fail(`auth.${name}Env names ${envName}, which is not set in the worker's environment`);
    return value;
  }
  if (typeof given[name] !== 'string' || given[name] === '') fail(`auth.${name} (or auth.${name}Env) must be a non-empty string`);
  return given[name] as string;
}

/** Checks the `auth` option; messages name the fields, never the secrets' values. */
export function checkAuth(value: unknown, env: NodeJS.ProcessEnv = process.env): OpenStackAuth {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('auth is required: { authUrl, applicationCredentialId, applicationCredentialSecret }, { authUrl, username, password, projectName | projectId, ... } or { type: "noauth", projectId }');
  }
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!AUTH_FIELDS.includes(key)) fail(`unknown auth field ${JSON.stringify(key)} (known: ${AUTH_FIELDS.join(', ')})`);
  }
  if (given.type !== undefined && given.type !== 'noauth' && given.type !== 'keystone') fail('auth.type must be "keystone" (default) or "noauth"');
  if (given.type === 'noauth') {
    for (const key of Object.keys(given)) {
      if (!['type', 'projectId', 'userId', 'roles'].includes(key)) fail(`auth field ${key} has no use with type "noauth"`);
    }
    const roles = given.roles ?? ['member', 'reader'];
    if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string' && /^[A-Za-z0-9_.-]+$/.test(r))) {
      fail('auth.roles must be a non-empty array of role names');
    }
    return { type: 'noauth', projectId: text('projectId', given.projectId, true)!, userId: text('userId', given.userId ?? 'vmdb', true)!, roles: [...roles] as string[] };
  }
  const authUrl = checkUrl('auth.authUrl', given.authUrl);
  if (given.applicationCredentialId !== undefined) {
    for (const key of ['username', 'password', 'passwordEnv', 'projectId', 'projectName']) {
      if (given[key] !== undefined) fail(`auth.${key} has no use with an application credential (it is scoped to its project)`);
    }
    return {
      authUrl,
      applicationCredentialId: text('applicationCredentialId', given.applicationCredentialId, true)!,
      applicationCredentialSecret: secret(given, 'applicationCredentialSecret', env),
    };
  }
  if (given.username === undefined) fail('auth needs applicationCredentialId (and its secret), or username and password');
  const projectId = text('projectId', given.projectId, false);
  const projectName = text('projectName', given.projectName, false);
  if ((projectId === undefined) === (projectName === undefined)) fail('auth needs exactly one of projectId and projectName with a password');
  return {
    authUrl,
    username: text('username', given.username, true)!,
    password: secret(given, 'password', env),
    userDomainName: text('userDomainName', given.userDomainName ?? 'Default', true)!,
    ...(projectId ? { projectId } : { projectName }),
    projectDomainName: text('projectDomainName', given.projectDomainName ?? 'Default', true)!,
  };
}

/** The auth option as it may be shown: secrets replaced by whether they are set. */
export function describeAuth(auth: OpenStackAuth): Record<string, unknown> {
  if ('type' in auth) return { ...auth };
  if ('applicationCredentialId' in auth) return { authUrl: auth.authUrl, applicationCredentialId: auth.applicationCredentialId, applicationCredentialSecret: '(set)' };
  const { password: _password, ...rest } = auth;
  return { ...rest, password: '(set)' };
}

interface CatalogEntry {
  type?: string;
  endpoints?: { interface?: string; region_id?: string; region?: string; url?: string }[];
}

interface Token {
  value: string;
  computeUrl: string;
  renewAt: number;
}

/** A Keystone token is renewed when this much of its life is left, or half of it for short tokens. */
const RENEW_MARGIN_MS = 5 * 60_000;

export interface SessionOptions {
  endpoint: string;
  auth: OpenStackAuth;
  /** The Compute API's URL; default: the Keystone catalog's. */
  computeUrl?: string;
  interface: 'public' | 'internal' | 'admin';
  region?: string;
  requestTimeoutMs: number;
}

/** Keystone's answer as a classified error: a refused credential is `auth`, an outage `unavailable`. */
function keystoneFailure(endpoint: string, status: number, body: string, requestId: string | null): EndpointError {
  const reason: EndpointFailureReason = status === 429 ? 'throttled' : status >= 500 ? 'unavailable' : 'auth';
  let detail = '';
  try {
    detail = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? '';
  } catch {
    detail = '';
  }
  return new EndpointError(reason, `openstack driver (${endpoint}): Keystone refused a token: HTTP ${status}${detail ? `: ${detail.slice(0, 300)}` : ''}${requestId ? ` (request ${requestId})` : ''}`);
}

export class ComputeSession {
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;

  constructor(private readonly options: SessionOptions) {}

  /** The URL and headers of the next call, with a fresh token when Keystone is used. */
  async access(): Promise<ComputeAccess> {
    const { auth } = this.options;
    if ('type' in auth) {
      // Nova wants some token even when nothing checks it (without one POST /servers fails).
      return {
        computeUrl: this.options.computeUrl!,
        headers: { 'X-Auth-Token': 'noauth', 'X-Project-Id': auth.projectId, 'X-User-Id': auth.userId, 'X-Roles': auth.roles.join(',') },
      };
    }
    let token = this.token;
    if (!token || Date.now() >= token.renewAt) {
      this.pending ??= this.issue().finally(() => {
        this.pending = undefined;
      });
      token = await this.pending;
      this.token = token;
    }
    return { computeUrl: token.computeUrl, headers: { 'X-Auth-Token': token.value }, token: token.value };
  }

  /** Forgets a token the Compute API refused (revoked, or expired early), so the next call gets another. */
  invalidate(token: string | undefined): void {
    if (token !== undefined && this.token?.value === token) this.token = undefined;
  }

  private async issue(): Promise<Token> {
    const { endpoint, auth, requestTimeoutMs } = this.options;
    if ('type' in auth) throw new Error('no token without Keystone');
    const identity =
      'applicationCredentialId' in auth
        ? { methods: ['application_credential'], application_credential: { id: auth.applicationCredentialId, secret: auth.applicationCredentialSecret } }
        : { methods: ['password'], password: { user: { name: auth.username, domain: { name: auth.userDomainName }, password: auth.password } } };
    const scope =
      'applicationCredentialId' in auth
        ? undefined
        : { project: auth.projectId ? { id: auth.projectId } : { name: auth.projectName, domain: { name: auth.projectDomainName } } };
    let res: Response;
    let body: string;
    const started = Date.now();
    try {
      res = await fetch(`${auth.authUrl}/auth/tokens`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'User-Agent': 'vmdb' },
        body: JSON.stringify({ auth: { identity, ...(scope ? { scope } : {}) } }),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      body = await res.text();
    } catch (err) {
      throw new EndpointError('unavailable', `openstack driver (${endpoint}): Keystone did not answer: ${(err as Error).message}`, { cause: err });
    }
    if (res.status !== 201) throw keystoneFailure(endpoint, res.status, body, res.headers.get('x-openstack-request-id'));
    const value = res.headers.get('x-subject-token');
    let parsed: { token?: { expires_at?: string; catalog?: CatalogEntry[] } };
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = {};
    }
    if (!value || !parsed.token) throw new EndpointError('unavailable', `openstack driver (${endpoint}): Keystone answered 201 without a token`);
    const expires = Date.parse(parsed.token.expires_at ?? '');
    const life = Number.isFinite(expires) ? expires - started : 60 * 60_000;
    return {
      value,
      computeUrl: this.options.computeUrl ?? this.computeUrlFromCatalog(parsed.token.catalog ?? []),
      renewAt: started + life - Math.min(RENEW_MARGIN_MS, life / 2),
    };
  }

  private computeUrlFromCatalog(catalog: CatalogEntry[]): string {
    const { endpoint, region } = this.options;
    const wanted = this.options.interface;
    const urls = catalog
      .filter((service) => service.type === 'compute')
      .flatMap((service) => service.endpoints ?? [])
      .filter((e) => e.interface === wanted && e.url && (region === undefined || e.region_id === region || e.region === region));
    const regions = new Set(urls.map((e) => e.region_id ?? e.region));
    if (urls.length === 0) {
      throw new EndpointError('auth', `openstack driver (${endpoint}): the Keystone catalog has no ${wanted} compute endpoint${region ? ` in region ${region}` : ''} for these credentials`);
    }
    if (regions.size > 1) {
      throw new EndpointError('auth', `openstack driver (${endpoint}): the Keystone catalog has compute endpoints in several regions (${[...regions].join(', ')}); set the region option`);
    }
    return urls[0].url!.replace(/\/+$/, '');
  }
}
