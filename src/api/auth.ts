import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { isTerminalState, type InstanceStatus } from '../../entities/states';
import { type OperatorToken, type Role, type VmTokenKeys, findOperator, isVmToken, roleAllows } from '../auth/tokens';
import { ApiError } from './errors';

/** Who sent a request to a protected route. */
export type Principal =
  | { kind: 'operator'; name: string; role: Role }
  /** `ended`: the instance is Halted or Error, and its VM routes refuse the token (`told` tells the workflow). */
  | { kind: 'vm'; instanceID: number; ended?: { status: InstanceStatus; tell: () => Promise<void> } };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export const API_PREFIX = '/api/v1';
export const BEARER_SECURITY = [{ bearer: [] }];

// The access checks handed out below; a route under /api/v1 without one of them is refused at startup.
const ACCESS_HOOKS = new WeakSet<onRequestHookHandler>();

function unauthorized(message: string): ApiError {
  return new ApiError(401, 'unauthorized', message);
}

/** The name and status of an instance, for checking a VM token against the record; undefined when unknown. */
export type InstanceIdentity = (instanceID: number) => Promise<{ name: string; status: InstanceStatus } | undefined>;

/** What the API checks tokens with. */
export interface Credentials {
  operators: readonly OperatorToken[];
  vmKeys: VmTokenKeys;
  identity: InstanceIdentity;
  /**
   * Told when the VM of an ended instance called (its workflow learns where the record stands). The
   * answer waits for it (it is bounded), so that nothing of the request outlives it.
   */
  onEnded?: (instanceID: number) => Promise<void>;
}

/**
 * The principal of a bearer token, or a 401 naming what is wrong with it. A VM token holds only for
 * the instance of the name it was made for, and only until that instance is Halted or Error: then
 * its VM routes tell the VM to halt (409, state halt; see requireVm), which every vmdb-agent obeys.
 */
async function authenticate(header: string | undefined, credentials: Credentials): Promise<Principal> {
  if (!header) throw unauthorized('Authorization: Bearer <token> is required');
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw unauthorized('Authorization must be "Bearer <token>"');
  const token = match[1];
  if (isVmToken(token)) {
    const claim = credentials.vmKeys.read(token);
    const instance = claim && (await credentials.identity(claim.instanceID));
    if (!claim || !instance || !claim.boundTo(instance.name)) throw unauthorized('Invalid VM token');
    const { instanceID } = claim;
    if (isTerminalState(instance.status)) return { kind: 'vm', instanceID, ended: { status: instance.status, tell: async () => credentials.onEnded?.(instanceID) } };
    return { kind: 'vm', instanceID };
  }
  const operator = findOperator(credentials.operators, token);
  if (!operator) throw unauthorized('Invalid token');
  return { kind: 'operator', name: operator.name, role: operator.role };
}

/**
 * Authenticates every request under /api/v1 (unknown routes there too, so
 * their existence is not revealed to strangers) and makes sure every such
 * route declares who may call it.
 */
export function installAuth(
  app: FastifyInstance,
  credentials: Credentials,
  /** Called before a 401 goes out; it may throw another error instead (the failed-authentication limit's 429). */
  onFailure: (request: FastifyRequest, reply: FastifyReply) => Promise<void> = async () => undefined,
): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isProtected(request.url)) return;
    try {
      request.principal = await authenticate(request.headers.authorization, credentials);
    } catch (err) {
      // Only a refused token counts against the address: a database that cannot be reached is no guess.
      if (err instanceof ApiError && err.statusCode === 401) {
        await onFailure(request, reply);
        reply.header('WWW-Authenticate', 'Bearer');
      }
      throw err;
    }
  });
  app.addHook('onRoute', (route) => {
    if (!isProtected(route.url)) return;
    const hooks = [route.onRequest ?? []].flat() as onRequestHookHandler[];
    if (!hooks.some((hook) => ACCESS_HOOKS.has(hook))) throw new Error(`${route.method} ${route.url} has no requireRole/requireVm`);
    // Documented as secured in the OpenAPI document; swagger's own onRoute hook runs after this one.
    route.schema = { ...route.schema, security: BEARER_SECURITY } as typeof route.schema;
  });
}

function isProtected(url: string): boolean {
  return url === API_PREFIX || url.startsWith(`${API_PREFIX}/`) || url.startsWith(`${API_PREFIX}?`);
}

function access(check: (principal: Principal, request: FastifyRequest) => void | Promise<void>): onRequestHookHandler {
  const hook: onRequestHookHandler = async function (request) {
    if (!request.principal) throw new ApiError(401, 'unauthorized', 'Authorization: Bearer <token> is required');
    await check(request.principal, request);
  };
  ACCESS_HOOKS.add(hook);
  return hook;
}

/** Operators whose role is at least `role`. */
export function requireRole(role: Role): onRequestHookHandler {
  return access((principal) => {
    if (principal.kind !== 'operator') throw new ApiError(403, 'forbidden', `This route is for operators (role ${role}), not VM tokens`);
    if (!roleAllows(principal.role, role)) throw new ApiError(403, 'forbidden', `Role ${principal.role} may not do this; it needs ${role}`);
  });
}

/**
 * The VM of the instance named by the `instanceID` path parameter, and only it.
 * Runs before validation, so it compares the raw path text with the token's id.
 */
export function requireVm(): onRequestHookHandler {
  return access(async (principal, request) => {
    if (principal.kind !== 'vm') throw new ApiError(403, 'forbidden', 'This route is for the VM token of the instance');
    const given = (request.params as Record<string, string | undefined>).instanceID;
    if (given !== String(principal.instanceID)) throw new ApiError(403, 'forbidden', `This VM token is for instance ${principal.instanceID} only`);
    if (principal.ended) {
      await principal.ended.tell().catch(() => undefined);
      throw new ApiError(409, 'ended', `Instance ${principal.instanceID} is ${principal.ended.status}: its VM token is no longer accepted`, 'halt');
    }
  });
}
