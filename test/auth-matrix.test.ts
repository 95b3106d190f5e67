import { strict as assert } from 'node:assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { ROLES, type Role, hashToken, makeVmToken, newSecret, roleAllows, tokenKeyId } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { snapshot } from './support/backends';
import { LifecycleRig } from './support/lifecycle-rig';
import { type RouteMethod, fastifyRoutes, openApiOperations } from './support/routes';
import { startDevServer } from './support/temporal';

const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: newSecret(), operate: newSecret(), admin: newSecret() };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-matrix`, role, sha256: hashToken(TOKENS[role]) }));

/**
 * Who may call each route under /api/v1: an operator role (and the roles
 * above it) or the VM token of the instance the path names. A route missing
 * here fails the suite: a new route must be given its place in the matrix.
 */
const ACCESS: Record<string, Role | 'vm'> = {
  'POST /api/v1/vms/{instanceID}/running': 'vm',
  'POST /api/v1/vms/{instanceID}/heartbeat': 'vm',
  'POST /api/v1/vms/{instanceID}/halting': 'vm',
  'POST /api/v1/vms/{instanceID}/halt-reason': 'vm',
  'GET /api/v1/instances': 'read',
  'GET /api/v1/instances/counters': 'read',
  'GET /api/v1/instances/by-status/{status}': 'read',
  'GET /api/v1/instances/{instanceID}': 'read',
  'GET /api/v1/instances/{instanceID}/history': 'read',
  'GET /api/v1/history/values': 'read',
  'GET /api/v1/history/running': 'read',
  'GET /api/v1/images': 'read',
  'POST /api/v1/instances/stop': 'operate',
  'GET /api/v1/director': 'read',
  'POST /api/v1/director/trigger': 'admin',
  'GET /api/v1/me': 'read',
  'GET /api/v1/usage': 'read',
  'GET /api/v1/audit': 'read',
  'GET /api/v1/safety': 'read',
  'PUT /api/v1/safety/mode': 'admin',
  'POST /api/v1/safety/endpoints/{endpoint}/pause': 'operate',
  'POST /api/v1/safety/endpoints/{endpoint}/resume': 'operate',
  'PUT /api/v1/instances/{instanceID}/manual': 'operate',
  'DELETE /api/v1/instances/{instanceID}/manual': 'operate',
};

/** Outside /api/v1 everything is open: probes, metrics (to this machine while VMDB_METRICS_TOKEN is unset), the API's own documents, the dashboard's page shell and assets (they hold no data). */
const OPEN = /^\/(health|healthz|readyz|metrics|openapi\.json|docs|assets|index\.html|favicon\.svg)?(\/|$)/;

type Caller =
  | { name: string; kind: 'stranger'; authorization?: string }
  | { name: string; kind: 'operator'; role: Role; authorization: string }
  | { name: string; kind: 'own vm' | 'foreign vm'; authorization: string };

/** What the matrix expects: let through (the route's own answer), or refused with 401/403. */
function expected(access: Role | 'vm', caller: Caller): 'through' | 401 | 403 {
  if (caller.kind === 'stranger') return 401;
  if (access === 'vm') return caller.kind === 'own vm' ? 'through' : 403;
  if (caller.kind !== 'operator') return 403;
  return roleAllows(caller.role, access) ? 'through' : 403;
}

/** A body the route would accept, aimed at `instanceID`: were a refused call let through, it would change something. */
function validExample(schema: any, instanceID: number, name = ''): unknown {
  if (!schema) return undefined;
  if (schema.enum) return schema.enum[0];
  switch (schema.type) {
    case 'object':
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, sub]) => [key, validExample(sub, instanceID, key)]));
    case 'array':
      return [validExample(schema.items, instanceID, name)];
    case 'integer':
      return /ID/.test(name) ? instanceID : Math.max(schema.minimum ?? 0, 1);
    case 'number':
      return 0.5;
    case 'string':
      return /IP$/.test(name) ? '10.1.2.3' : 'x';
    default:
      return undefined;
  }
}

describe('auth matrix: every route x every role x VM tokens, own and foreign', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  let own: number;
  let foreign: number;
  let routes: (RouteMethod & { access: Role | 'vm' | 'open'; requestBody?: unknown })[];
  const callers: Caller[] = [];

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env, { tokenSecret: SECRET });
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET);
    // Two live instances: the one the paths name, and another whose VM token must not reach it.
    const [a, b] = [await rig.launch(), await rig.launch()];
    for (const { instanceID } of [a, b]) {
      await rig.waitForStatus(instanceID, 'Submitted');
      const running = await rig.lifecycle.running(await rig.uniqueID(instanceID), '10.0.0.1');
      assert.ok(running.OK, JSON.stringify(running));
    }
    own = a.instanceID;
    foreign = b.instanceID;
    callers.push(
      { name: 'no token', kind: 'stranger' },
      { name: 'basic auth', kind: 'stranger', authorization: 'Basic YWRtaW46YWRtaW4=' },
      { name: 'unknown token', kind: 'stranger', authorization: `Bearer ${newSecret()}` },
      { name: 'an admin token with a character more', kind: 'stranger', authorization: `Bearer ${TOKENS.admin}x` },
      { name: 'forged VM token', kind: 'stranger', authorization: `Bearer vm.${own}.forged` },
      { name: 'VM token of another secret', kind: 'stranger', authorization: `Bearer ${await vmTokenOf(rig.db, newSecret(), own)}` },
      { name: 'VM token made for another instance name', kind: 'stranger', authorization: `Bearer ${makeVmToken(SECRET, own, 'not-its-name')}` },
      { name: 'forged VM token with a key id', kind: 'stranger', authorization: `Bearer vm2.${tokenKeyId(SECRET)}.${own}.forged` },
      { name: 'VM token of an instance that does not exist', kind: 'stranger', authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, 987_654)}` },
      ...ROLES.map((role): Caller => ({ name: `role ${role}`, kind: 'operator', role, authorization: `Bearer ${TOKENS[role]}` })),
      { name: 'own VM token', kind: 'own vm', authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, own)}` },
      { name: 'VM token of another live instance', kind: 'foreign vm', authorization: `Bearer ${await vmTokenOf(rig.db, SECRET, foreign)}` },
    );

    const documented = openApiOperations(app.swagger() as any);
    routes = fastifyRoutes(app).map((route) => {
      const asGet = route.method === 'HEAD' ? 'GET' : route.method;
      const access = ACCESS[`${asGet} ${route.path}`] ?? (OPEN.test(route.url) ? 'open' : undefined);
      if (!access) throw new Error(`${route.method} ${route.url} is served but has no place in the auth matrix (ACCESS)`);
      const operation = documented.find((d) => d.method === asGet && d.path === route.path)?.operation;
      return { ...route, access, requestBody: validExample(operation?.requestBody?.content?.['application/json']?.schema, own) };
    });
  });

  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  function urlOf(route: RouteMethod): string {
    return route.url.replace(':instanceID', String(own)).replace(':status', 'Running').replace(/\*$/, 'index.css');
  }

  async function send(route: RouteMethod & { requestBody?: unknown }, caller: Caller, body?: unknown) {
    const res = await app.inject({
      method: route.method as 'GET',
      url: urlOf(route),
      headers: caller.authorization ? { authorization: caller.authorization } : {},
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return res;
  }

  it('the route list comes from the app: every /api/v1 route served is documented and has an access rule, and back', function () {
    const served = new Set(routes.filter((r) => r.access !== 'open' && r.method !== 'HEAD').map((r) => `${r.method} ${r.path}`));
    const documented = new Set(openApiOperations(app.swagger() as any).filter((d) => d.path.startsWith('/api/v1')).map((d) => `${d.method} ${d.path}`));
    assert.deepEqual([...served].sort(), [...documented].sort());
    assert.deepEqual([...served].sort(), Object.keys(ACCESS).sort(), 'ACCESS names a route the app does not serve');
  });

  it('every refused call is refused before it does anything: 401/403, nothing changed', async function () {
    const before = await snapshot(rig.db);
    const wrong: string[] = [];
    let calls = 0;
    for (const route of routes.filter((r) => r.access !== 'open')) {
      for (const caller of callers) {
        const want = expected(route.access as Role | 'vm', caller);
        if (want === 'through') continue;
        // A body the route would act on, were the call let through.
        const res = await send(route, caller, route.requestBody);
        calls++;
        const body = route.method === 'HEAD' ? undefined : res.json();
        if (res.statusCode !== want || (body && body.error !== (want === 401 ? 'unauthorized' : 'forbidden'))) {
          wrong.push(`${route.method} ${route.url} as ${caller.name}: ${res.statusCode} ${res.body.slice(0, 120)} (expected ${want})`);
        }
        if (want === 401 && res.headers['www-authenticate'] !== 'Bearer') wrong.push(`${route.method} ${route.url} as ${caller.name}: 401 without WWW-Authenticate`);
      }
    }
    assert.deepEqual(wrong, []);
    assert.ok(calls > 100, `the matrix made only ${calls} refused calls`);
    assert.deepEqual(await snapshot(rig.db), before, 'a refused call changed the database');
  });

  it("100% of cross-instance calls denied: another instance's VM token never reaches an instance's routes", async function () {
    const before = await snapshot(rig.db);
    const crossing = routes.filter((r) => r.access !== 'open' && r.url.includes(':instanceID'));
    assert.ok(crossing.some((r) => r.access === 'vm'), 'the VM routes are in the list');
    let denied = 0;
    let calls = 0;
    for (const route of crossing) {
      for (const caller of callers.filter((c) => c.kind === 'foreign vm')) {
        const res = await send(route, caller, route.requestBody);
        calls++;
        if (res.statusCode === 403) denied++;
      }
    }
    console.log(`      cross-instance calls: ${calls}, denied: ${denied} (${((100 * denied) / calls).toFixed(0)}%)`);
    assert.equal(denied, calls);
    assert.deepEqual(await snapshot(rig.db), before);
  });

  it('every allowed caller gets through to the route (its answer, never 401/403 or 5xx)', async function () {
    const wrong: string[] = [];
    for (const route of routes) {
      for (const caller of callers) {
        const want = route.access === 'open' ? 'through' : expected(route.access, caller);
        if (want !== 'through') continue;
        // An empty object, not the example: the answer proves the gate opened without changing anything.
        const res = await send(route, caller, route.method === 'POST' && route.requestBody !== undefined ? { unknownField: 1 } : undefined);
        if ([401, 403].includes(res.statusCode) || (res.statusCode >= 500 && !/^\/(health|readyz)/.test(route.url))) {
          wrong.push(`${route.method} ${route.url} as ${caller.name}: ${res.statusCode} ${res.body.slice(0, 120)}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });
});
