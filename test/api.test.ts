import { strict as assert } from 'node:assert';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { ApiConfigError, loadApiConfig } from '../src/api/config';
import { buildApi } from '../src/api/server';
import { ROLES, type Role, hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { DIRECTOR_SCHEDULE_ID, RECONCILE_SCHEDULE_ID, SWEEP_SCHEDULE_ID, ensureSchedules } from '../src/temporal/schedules';
import { VirtualMachineDB } from '../src/db/vmdb';
import { BACKENDS, ok, snapshot } from './support/backends';
import { ENDPOINT, LifecycleRig } from './support/lifecycle-rig';
import { startDevServer } from './support/temporal';

const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: 'read-token-0123456789', operate: 'operate-token-0123456789', admin: 'admin-token-0123456789' };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-person`, role, sha256: hashToken(TOKENS[role]) }));
/** The VM token of an instance, bound to its name in the record (as the worker makes it). */
const vmToken = (db: VirtualMachineDB, instanceID: number) => vmTokenOf(db, SECRET, instanceID);
const beat = (n = 1) => ({ load: 0.5 * n, jobs: n, transferredFiles: n, transferredBytes: 1000 * n, uptime: 60 * n });

interface Reply {
  status: number;
  body: any; // parsed JSON, whatever the route sent
  headers: Record<string, unknown>;
}

/** One request through inject(); the body is parsed when it is JSON. */
async function call(app: FastifyInstance, method: InjectOptions['method'], url: string, options: { token?: string; body?: unknown; raw?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.raw !== undefined) headers['content-type'] = 'application/json';
  const res = await app.inject({
    method,
    url,
    headers,
    ...(options.raw !== undefined ? { payload: options.raw } : options.body !== undefined ? { payload: options.body as object } : {}),
  });
  const json = /json/.test(String(res.headers['content-type'])) ? JSON.parse(res.body) : res.body;
  return { status: res.statusCode, body: json, headers: res.headers };
}

/** Every route of docs/http-api.md, as the OpenAPI document names it. */
const CONTRACT = [
  'post /api/v1/vms/{instanceID}/running',
  'post /api/v1/vms/{instanceID}/heartbeat',
  'post /api/v1/vms/{instanceID}/halting',
  'post /api/v1/vms/{instanceID}/halt-reason',
  'get /api/v1/instances',
  'get /api/v1/instances/counters',
  'get /api/v1/instances/by-status/{status}',
  'get /api/v1/instances/{instanceID}',
  'get /api/v1/instances/{instanceID}/history',
  'get /api/v1/history/values',
  'get /api/v1/history/running',
  'get /api/v1/images',
  'post /api/v1/instances/stop',
  'get /api/v1/director',
  'post /api/v1/director/trigger',
  'get /api/v1/me',
  'get /api/v1/safety',
  'get /api/v1/usage',
  'get /api/v1/audit',
  'put /api/v1/safety/mode',
  'post /api/v1/safety/endpoints/{endpoint}/pause',
  'post /api/v1/safety/endpoints/{endpoint}/resume',
  'put /api/v1/instances/{instanceID}/manual',
  'delete /api/v1/instances/{instanceID}/manual',
  'get /health',
  'get /healthz',
  'get /readyz',
  'get /metrics',
];

describe('HTTP API on a dev server [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  const request = (method: InjectOptions['method'], url: string, options?: Parameters<typeof call>[3]) => call(app, method, url, options);

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET);
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  /** A launched instance whose VM exists (Submitted), with its UniqueID and VM token. */
  async function submitted() {
    const launched = await rig.launch();
    await rig.waitForStatus(launched.instanceID, 'Submitted');
    return { ...launched, uniqueID: await rig.uniqueID(launched.instanceID), token: await vmToken(rig.db, launched.instanceID) };
  }

  /** An instance row with no workflow and no VM (New), as a Director leaves it before the launch. */
  async function bareInstance(): Promise<number> {
    return ok(await rig.db.insertInstance('', 'test-image', `bare-${Math.random().toString(36).slice(2, 8)}`, ENDPOINT, 'testvo'));
  }

  describe('open routes', function () {
    it('/health answers ok for the database and Temporal', async function () {
      const res = await request('GET', '/health');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { status: 'ok', database: 'ok', temporal: 'ok' });
    });

    it('/openapi.json documents every route of the contract, the /api/v1 ones as bearer-secured', async function () {
      const res = await request('GET', '/openapi.json');
      assert.equal(res.status, 200);
      assert.match(res.body.openapi, /^3\./);
      const documented = Object.entries(res.body.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
      assert.deepEqual([...documented].sort(), [...CONTRACT].sort());
      for (const [path, methods] of Object.entries(res.body.paths as Record<string, Record<string, any>>)) {
        for (const operation of Object.values(methods)) {
          if (path.startsWith('/api/v1/')) assert.deepEqual(operation.security, [{ bearer: [] }], path);
          else assert.equal(operation.security, undefined, path);
          assert.ok(operation.responses['200'], `${path} documents its reply`);
        }
      }
      assert.equal(res.body.components.securitySchemes.bearer.scheme, 'bearer');
      assert.ok(res.body.components.schemas.ApiError, 'the error shape is documented');
    });

    it('a path that exists, with a method it does not have: 405 with Allow (after authentication under /api/v1)', async function () {
      for (const [method, url, allow] of [
        ['DELETE', '/api/v1/instances/1', 'GET, HEAD'],
        ['OPTIONS', '/api/v1/instances/stop', 'POST'],
        ['GET', '/api/v1/instances/stop', 'POST'],
        ['PUT', '/api/v1/vms/1/heartbeat', 'POST'],
        ['TRACE', '/health', 'GET, HEAD'],
      ] as const) {
        // light-my-request 6.6 (pinned for Node 20) accepts TRACE but leaves it out of its method type.
        const res = await request(method as InjectOptions['method'], url, { token: TOKENS.admin });
        assert.deepEqual([res.status, res.headers.allow, res.body.error], [405, allow, 'method_not_allowed'], `${method} ${url}`);
      }
      assert.equal((await request('DELETE', '/api/v1/instances/1')).status, 401, 'no token: nothing said about the path');
      assert.equal((await request('PUT', '/nowhere', { token: TOKENS.admin })).status, 404);
    });

    it('/docs serves the interactive docs', async function () {
      const res = await request('GET', '/docs');
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /text\/html/);
      assert.match(res.body, /swagger/i);
    });
  });

  describe('auth', function () {
    let instanceID: number;
    const NO_SUCH = 999_999;
    const operatorRoutes = (): { method: InjectOptions['method']; url: string; role: Role; body?: unknown }[] => [
      { method: 'GET', url: '/api/v1/instances', role: 'read' },
      { method: 'GET', url: '/api/v1/instances/counters', role: 'read' },
      { method: 'GET', url: '/api/v1/instances/by-status/Running', role: 'read' },
      { method: 'GET', url: `/api/v1/instances/${instanceID}`, role: 'read' },
      { method: 'GET', url: `/api/v1/instances/${instanceID}/history`, role: 'read' },
      { method: 'GET', url: '/api/v1/history/values', role: 'read' },
      { method: 'GET', url: '/api/v1/history/running', role: 'read' },
      { method: 'GET', url: '/api/v1/images', role: 'read' },
      { method: 'GET', url: '/api/v1/director', role: 'read' },
      { method: 'GET', url: '/api/v1/me', role: 'read' },
      { method: 'GET', url: '/api/v1/usage', role: 'read' },
      { method: 'GET', url: '/api/v1/audit', role: 'read' },
      // Harmless when allowed: an unknown instance, and a trigger that finds no Schedule yet (or an idle one).
      { method: 'POST', url: '/api/v1/instances/stop', role: 'operate', body: { instanceIDs: [NO_SUCH] } },
      { method: 'POST', url: '/api/v1/director/trigger', role: 'admin' },
      // Fleet safety: an endpoint nothing runs at, an unknown instance, the mode it already has.
      { method: 'GET', url: '/api/v1/safety', role: 'read' },
      { method: 'PUT', url: '/api/v1/safety/mode', role: 'admin', body: { mode: 'normal' } },
      { method: 'POST', url: '/api/v1/safety/endpoints/Probe::none/pause', role: 'operate', body: { reason: 'auth probe' } },
      { method: 'POST', url: '/api/v1/safety/endpoints/Probe::none/resume', role: 'operate' },
      { method: 'PUT', url: `/api/v1/instances/${NO_SUCH}/manual`, role: 'operate', body: {} },
      { method: 'DELETE', url: `/api/v1/instances/${NO_SUCH}/manual`, role: 'operate' },
    ];
    const vmRoutes = (id: number) => [
      { url: `/api/v1/vms/${id}/running`, body: {} },
      { url: `/api/v1/vms/${id}/heartbeat`, body: beat() },
      { url: `/api/v1/vms/${id}/halting`, body: { load: 0 } },
      { url: `/api/v1/vms/${id}/halt-reason`, body: { reason: 'idle', load: 0, uptime: 60 } },
    ];

    before(async function () {
      instanceID = await bareInstance();
    });

    it('no token, a malformed header or an unknown token: 401 with WWW-Authenticate', async function () {
      const routes = [...operatorRoutes(), ...vmRoutes(instanceID).map((r) => ({ ...r, method: 'POST' as const }))];
      for (const route of routes) {
        for (const headers of [{}, { authorization: 'Basic cmVhZDpyZWFk' }, { authorization: 'Bearer' }, { authorization: 'Bearer not-a-token' }, { authorization: `Bearer ${TOKENS.admin}x` }, { authorization: `Bearer vm.${instanceID}.forged` }, { authorization: `Bearer ${await vmTokenOf(rig.db, 'another-secret-of-32-characters!', instanceID)}` }]) {
          const res = await app.inject({ method: route.method, url: route.url, headers, ...(route.body ? { payload: route.body as object } : {}) });
          assert.equal(res.statusCode, 401, `${route.method} ${route.url} with ${JSON.stringify(headers)}`);
          assert.equal(res.headers['www-authenticate'], 'Bearer');
          assert.equal(res.json().error, 'unauthorized');
        }
      }
    });

    it('each role on each operator route: allowed from its role up, 403 below', async function () {
      const before = await snapshot(rig.db);
      for (const route of operatorRoutes()) {
        for (const role of ROLES) {
          const res = await request(route.method, route.url, { token: TOKENS[role], body: route.body });
          const allowed = ROLES.indexOf(role) >= ROLES.indexOf(route.role);
          if (allowed) assert.ok(![401, 403].includes(res.status) && res.status < 500, `${role} on ${route.method} ${route.url}: ${res.status} ${JSON.stringify(res.body)}`);
          else assert.deepEqual([res.status, res.body.error], [403, 'forbidden'], `${role} on ${route.method} ${route.url}`);
        }
      }
      assert.deepEqual(await snapshot(rig.db), before, 'the allowed probes changed nothing');
    });

    it('a VM token on operator routes: 403', async function () {
      for (const route of operatorRoutes()) {
        const res = await request(route.method, route.url, { token: await vmToken(rig.db, instanceID), body: route.body });
        assert.equal(res.status, 403, `${route.method} ${route.url}`);
      }
    });

    it('operator tokens on VM routes: 403, whatever the role', async function () {
      for (const route of vmRoutes(instanceID)) {
        for (const role of ROLES) assert.equal((await request('POST', route.url, { token: TOKENS[role], body: route.body })).status, 403, `${role} on ${route.url}`);
      }
    });

    it("instance A's VM token on instance B's routes: 403", async function () {
      const other = await bareInstance();
      const before = await snapshot(rig.db);
      for (const route of vmRoutes(other)) {
        const res = await request('POST', route.url, { token: await vmToken(rig.db, instanceID), body: route.body });
        assert.deepEqual([res.status, res.body.error], [403, 'forbidden'], route.url);
      }
      // Not fooled by another spelling of the same number either.
      assert.equal((await request('POST', `/api/v1/vms/0${instanceID}/heartbeat`, { token: await vmToken(rig.db, instanceID), body: beat() })).status, 403);
      assert.deepEqual(await snapshot(rig.db), before);
    });

    it('an unknown route under /api/v1 needs a token too, then is a 404', async function () {
      assert.equal((await request('GET', '/api/v1/nowhere')).status, 401);
      const res = await request('GET', '/api/v1/nowhere', { token: TOKENS.read });
      assert.deepEqual([res.status, res.body.error], [404, 'not_found']);
    });
  });

  describe('a VM and its operators, through the workflow', function () {
    it('running, heartbeat, operator reads, stop, heartbeat answered stop, halting, then halt', async function () {
      const vm = await submitted();
      const base = `/api/v1/vms/${vm.instanceID}`;

      let res = await request('POST', `${base}/running`, { token: vm.token });
      assert.deepEqual([res.status, res.body], [200, { status: 'Running' }]);
      assert.equal(ok(await rig.db.getInstanceParameter('PublicIP', vm.instanceID)), '127.0.0.1', 'the remote address by default');
      res = await request('POST', `${base}/running`, { token: vm.token, body: { publicIP: '::ffff:192.0.2.7', privateIP: '10.0.0.7' } });
      assert.deepEqual([res.status, res.body], [200, { status: 'Running' }]);
      assert.equal(ok(await rig.db.getInstanceParameter('PublicIP', vm.instanceID)), '192.0.2.7', '::ffff: stripped');
      assert.equal(ok(await rig.db.getInstanceParameter('PrivateIP', vm.instanceID)), '10.0.0.7');

      res = await request('POST', `${base}/heartbeat`, { token: vm.token, body: beat(3) });
      assert.deepEqual([res.status, res.body], [200, { directive: 'ok' }]);
      assert.equal(ok(await rig.db.getInstanceParameter('Jobs', vm.instanceID)), 3, 'committed before the answer');

      const read = TOKENS.read;
      res = await request('GET', `/api/v1/instances?Status=Running,Stopping&sort=inst.InstanceID:DESC,Bogus:ASC&limit=5&start=0`, { token: read });
      assert.equal(res.status, 200);
      assert.equal(res.body.ParameterNames[0], 'inst.InstanceID');
      const idColumn = res.body.ParameterNames.indexOf('inst.InstanceID');
      assert.ok(res.body.Records.some((r: unknown[]) => r[idColumn] === vm.instanceID));
      assert.equal(typeof res.body.TotalRecords, 'number');
      const ids = res.body.Records.map((r: unknown[]) => r[idColumn]);
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'sorted DESC, the unknown sort field ignored');
      res = await request('GET', `/api/v1/instances?inst.InstanceID=${vm.instanceID}&img.Name=test-image&Load=1.5`, { token: read });
      assert.deepEqual([res.status, res.body.TotalRecords], [200, 1], 'qualified and FLOAT filters');
      res = await request('GET', '/api/v1/instances?limit=1&start=0', { token: read });
      assert.equal(res.body.Records.length, 1);

      // Pages by cursor: following Next reads every instance once, in the sort's order.
      await bareInstance();
      await bareInstance();
      const whole = await request('GET', '/api/v1/instances?sort=inst.Name:DESC&limit=1000', { token: read });
      assert.deepEqual([whole.status, whole.body.TotalExact, whole.body.Next], [200, true, null], 'one page holds all: exact total, no next page');
      const allIds = whole.body.Records.map((r: unknown[]) => r[idColumn]);
      assert.equal(whole.body.TotalRecords, allIds.length);
      const walked: number[] = [];
      let cursor: string | null = null;
      let firstCursor = '';
      do {
        res = await request('GET', `/api/v1/instances?sort=inst.Name:DESC&limit=1${cursor ? `&after=${encodeURIComponent(cursor)}` : ''}`, { token: read });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.TotalRecords, allIds.length);
        walked.push(...res.body.Records.map((r: unknown[]) => r[idColumn]));
        cursor = res.body.Next;
        firstCursor ||= cursor ?? '';
        assert.ok(walked.length <= allIds.length, 'no row twice');
      } while (cursor);
      assert.deepEqual(walked, allIds);
      assert.ok(firstCursor, 'more than one page');
      res = await request('GET', `/api/v1/instances?sort=inst.Name:ASC&after=${encodeURIComponent(firstCursor)}`, { token: read });
      assert.equal(res.status, 400);
      assert.match(res.body.message, /^after: the cursor belongs to another sort \(inst\.Name:DESC,inst\.InstanceID:DESC\)/);
      res = await request('GET', '/api/v1/instances?after=bm90IGEgY3Vyc29y', { token: read });
      assert.deepEqual([res.status, res.body.error], [400, 'bad_request']);
      assert.match(res.body.message, /^after: the cursor is malformed/);
      res = await request('GET', `/api/v1/instances?sort=inst.Name:DESC&start=1&after=${encodeURIComponent(firstCursor)}`, { token: read });
      assert.equal(res.status, 400);
      assert.match(res.body.message, /after and start exclude each other/);

      res = await request('GET', `/api/v1/instances/counters?groupBy=Endpoint&Status=Running`, { token: read });
      assert.equal(res.status, 200);
      assert.ok(res.body[ENDPOINT] >= 1);
      res = await request('GET', '/api/v1/instances/counters', { token: read });
      assert.ok(res.body.Running >= 1, 'grouped by Status by default');

      res = await request('GET', '/api/v1/instances/by-status/Running', { token: read });
      assert.equal(res.status, 200);
      assert.ok(res.body['test-image'].includes(vm.uniqueID));

      res = await request('GET', `/api/v1/instances/${vm.instanceID}`, { token: read });
      assert.equal(res.status, 200);
      assert.equal(res.body.Instance.InstanceID, vm.instanceID);
      assert.equal(res.body.Instance.UniqueID, vm.uniqueID);
      assert.equal(res.body.Instance.Status, 'Running');
      assert.match(res.body.Instance.LastUpdate, /^\d{4}-\d\d-\d\dT/);
      assert.deepEqual([res.body.Image.Name, res.body.Image.Status], ['test-image', 'Validated']);

      res = await request('GET', `/api/v1/instances/${vm.instanceID}/history`, { token: read });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.ParameterNames, ['Status', 'Load', 'Update', 'Jobs', 'TransferredFiles', 'TransferredBytes']);
      assert.deepEqual(res.body.Records.map((r: unknown[]) => r[0]), ['New', 'Submitted', 'Running', 'Running', 'Running']);

      res = await request('GET', `/api/v1/history/values?bucket=60&fields=Load,Jobs&timespan=3600&Endpoint=${encodeURIComponent(ENDPOINT)}`, { token: read });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.ParameterNames, ['Update', 'Load', 'Jobs']);
      assert.ok(res.body.Records.length >= 1);
      res = await request('GET', '/api/v1/history/values', { token: read });
      assert.deepEqual(res.body.ParameterNames, ['Update', 'Load', 'Jobs', 'TransferredFiles', 'TransferredBytes']);

      res = await request('GET', '/api/v1/history/running?timespan=3600&bucketSize=300', { token: read });
      assert.equal(res.status, 200);
      assert.ok(res.body.Records.length >= 1 && res.body.Records[0].length === 2);
      for (const [groupBy, value] of [['endpoint', ENDPOINT], ['pod', 'testvo'], ['image', 'test-image']]) {
        res = await request('GET', `/api/v1/history/running?groupBy=${groupBy}`, { token: read });
        assert.equal(res.status, 200);
        assert.ok(res.body.Records.some((r: unknown[]) => r.length === 3 && r[1] === value), groupBy);
      }

      res = await request('GET', '/api/v1/images', { token: read });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.ParameterNames, ['VMImageID', 'Name', 'Status', 'LastUpdate', 'ErrorMessage']);
      assert.ok(res.body.Records.some((r: unknown[]) => r[1] === 'test-image' && r[2] === 'Validated'));

      res = await request('POST', '/api/v1/instances/stop', { token: TOKENS.operate, body: { instanceIDs: [vm.instanceID, vm.instanceID] } });
      assert.deepEqual([res.status, res.body], [200, { results: { [vm.instanceID]: { OK: true, Value: 'Stopping' } } }]);

      res = await request('POST', `${base}/heartbeat`, { token: vm.token, body: beat(4) });
      assert.deepEqual([res.status, res.body], [200, { directive: 'stop' }], 'a refused heartbeat is an answer: drain');

      res = await request('POST', `${base}/halting`, { token: vm.token, body: { load: 0.1 } });
      assert.deepEqual([res.status, res.body], [200, { status: 'Halted' }]);
      assert.equal((await vm.handle.result()).status, 'Halted');

      // The life cycle is over: the VM's token is refused on every route, and the VM told to power off.
      for (const [route, body] of [['heartbeat', beat(5)], ['halting', { load: 0 }], ['running', undefined]] as const) {
        res = await request('POST', `${base}/${route}`, { token: vm.token, body });
        assert.deepEqual([res.status, res.body.error, res.body.state], [409, 'ended', 'halt'], route);
      }
      assert.deepEqual(await rig.history(vm.instanceID), ['New', 'Submitted', 'Running', 'Running', 'Running', 'Stopping', 'Halted']);
    });

    it('a halting from Submitted is refused: 409 with the state, nothing recorded', async function () {
      const vm = await submitted();
      const res = await request('POST', `/api/v1/vms/${vm.instanceID}/halting`, { token: vm.token, body: { load: 0 } });
      assert.equal(res.status, 409);
      assert.deepEqual(res.body, { error: 'refused', message: 'Transition ( Submitted -> Halted ) not allowed', state: 'Submitted' });
      assert.equal(await rig.status(vm.instanceID), 'Submitted');
      await vm.handle.terminate('test done');
    });

    it("stop per instance: a Submitted one's workflow stops its VM (Stalled, then Halted), New without a workflow is Halted at once", async function () {
      const vm = await submitted();
      const bare = await bareInstance();
      const res = await request('POST', '/api/v1/instances/stop', { token: TOKENS.operate, body: { instanceIDs: [vm.instanceID, bare, 999_998] } });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.results, {
        [vm.instanceID]: { OK: true, Value: 'Stalled' },
        [bare]: { OK: true, Value: 'Halted' },
        999998: { OK: false, Message: 'Unknown InstanceID = 999998' },
      });
      assert.equal((await vm.handle.result()).status, 'Halted');
      assert.deepEqual(await rig.history(vm.instanceID), ['New', 'Submitted', 'Stalled', 'Halted']);
      assert.equal(await rig.status(bare), 'Halted');
    });

    it('an instance without a VM yet cannot report for it: 409 not_ready with its status', async function () {
      const bare = await bareInstance();
      for (const [route, body] of [['heartbeat', beat()], ['running', {}], ['halting', { load: 0 }]] as const) {
        const res = await request('POST', `/api/v1/vms/${bare}/${route}`, { token: await vmToken(rig.db, bare), body });
        assert.deepEqual([res.status, res.body.error, res.body.state], [409, 'not_ready', 'New'], route);
      }
      assert.equal(await rig.status(bare), 'New');
    });
  });

  describe('unknown instances and bad input', function () {
    it('an unknown instance is a 404 on every route that names one', async function () {
      const NO_SUCH = 987_654;
      for (const url of [`/api/v1/instances/${NO_SUCH}`, `/api/v1/instances/${NO_SUCH}/history`]) {
        const res = await request('GET', url, { token: TOKENS.read });
        assert.deepEqual([res.status, res.body], [404, { error: 'not_found', message: `Unknown InstanceID = ${NO_SUCH}` }], url);
      }
      for (const [route, body] of [['heartbeat', beat()], ['running', {}], ['halting', { load: 0 }]] as const) {
        // A VM token is bound to an instance the record holds: for any other, it is no token at all.
        const res = await request('POST', `/api/v1/vms/${NO_SUCH}/${route}`, { token: await vmToken(rig.db, NO_SUCH), body });
        assert.deepEqual([res.status, res.body.error], [401, 'unauthorized'], route);
      }
    });

    it('bad input is a 400 whose message names the field, and changes nothing', async function () {
      const vm = await submitted();
      const token = vm.token;
      const hb = `/api/v1/vms/${vm.instanceID}/heartbeat`;
      const read = TOKENS.read;
      const cases: [InjectOptions['method'], string, string, { body?: unknown; raw?: string }, RegExp][] = [
        ['POST', hb, token, { body: { ...beat(), jobs: -1 } }, /^jobs must be >= 0/],
        ['POST', hb, token, { body: { ...beat(), jobs: 'NaN' } }, /^jobs must be integer/],
        ['POST', hb, token, { body: { ...beat(), jobs: 1.5 } }, /^jobs must be integer/],
        ['POST', hb, token, { body: { ...beat(), jobs: '3' } }, /^jobs must be integer/],
        ['POST', hb, token, { body: { ...beat(), load: null } }, /^load must be number/],
        ['POST', hb, token, { body: { ...beat(), load: true } }, /^load must be number/],
        ['POST', hb, token, { raw: '{"load":1e400,"jobs":1,"transferredFiles":0,"transferredBytes":0,"uptime":0}' }, /^load must be number/], // Infinity
        ['POST', hb, token, { body: { ...beat(), uptime: 2 ** 32 } }, /^uptime must be <=/],
        ['POST', hb, token, { body: { ...beat(), transferredBytes: 2 ** 53 } }, /^transferredBytes must be <=/],
        ['POST', hb, token, { body: { load: 1, jobs: 1, transferredFiles: 0, uptime: 0 } }, /^transferredBytes is required/],
        ['POST', hb, token, { body: { ...beat(), Jobs: 1 } }, /^Jobs is not a known field/],
        ['POST', hb, token, { body: [beat()] }, /^body must be object/],
        ['POST', hb, token, { raw: '{"load": 1,' }, /JSON/],
        ['POST', hb, token, { raw: 'null' }, /^body must be object/],
        ['POST', `/api/v1/vms/${vm.instanceID}/halting`, token, { body: {} }, /^load is required/],
        ['POST', `/api/v1/vms/${vm.instanceID}/halting`, token, { body: { load: -0.5 } }, /^load must be >= 0/],
        ['POST', `/api/v1/vms/${vm.instanceID}/running`, token, { body: { publicIP: 'not-an-ip' } }, /^publicIP must be an IPv4 or IPv6 address \(at most 32 characters\), or empty \(body\)$/],
        ['POST', `/api/v1/vms/${vm.instanceID}/running`, token, { body: { privateIP: 12 } }, /^privateIP must be an IPv4 or IPv6 address/],
        ['POST', `/api/v1/vms/${vm.instanceID}/running`, token, { body: { publicIP: '1'.repeat(40) } }, /^publicIP must be an IPv4 or IPv6 address \(at most 32 characters\)/],
        ['POST', `/api/v1/vms/${vm.instanceID}/running`, token, { body: { publicIP: 'fe80::1111:2222:3333:4444:5555:6666' } }, /^publicIP must be an IPv4 or IPv6 address \(at most 32 characters\)/],
        ['GET', '/api/v1/instances?limit=5000', read, {}, /^limit must be <= 1000/],
        ['GET', '/api/v1/instances?limit=0', read, {}, /^limit must be >= 1/],
        ['GET', '/api/v1/instances?limit=abc', read, {}, /^limit must be integer/],
        ['GET', '/api/v1/instances?start=-1', read, {}, /^start must be >= 0/],
        ['GET', '/api/v1/instances?start=NaN', read, {}, /^start must be integer/],
        ['GET', '/api/v1/instances?Status=Bogus', read, {}, /Status "Bogus" is not known/],
        ['GET', '/api/v1/instances?inst.Jobs=-3', read, {}, /Jobs must be a non-negative integer/],
        ['GET', '/api/v1/instances/abc', read, {}, /^instanceID must be integer/],
        ['GET', '/api/v1/instances/1.5', read, {}, /^instanceID must be integer/],
        ['GET', '/api/v1/instances/0', read, {}, /^instanceID must be >= 1/],
        ['GET', '/api/v1/instances/99999999999999999999', read, {}, /^instanceID must be <=/],
        ['GET', '/api/v1/instances/abc/history', read, {}, /^instanceID must be integer/],
        ['GET', '/api/v1/instances/by-status/Bogus', read, {}, /^status must be one of New, Submitted/],
        ['GET', '/api/v1/instances/counters?groupBy=Bogus', read, {}, /^groupBy must be one of InstanceID, .*Status.* \(querystring\)$/],
        ['GET', '/api/v1/instances/counters?Bogus=1', read, {}, /Bogus/],
        ['GET', '/api/v1/history/values?fields=Load,Bogus', read, {}, /^fields must be a comma-separated list of Load, Jobs, TransferredFiles, TransferredBytes/],
        ['GET', '/api/v1/history/values?bucket=0', read, {}, /^bucket must be >= 1/],
        ['GET', '/api/v1/history/values?timespan=-5', read, {}, /^timespan must be >= 0/],
        ['GET', '/api/v1/history/running?groupBy=site', read, {}, /^groupBy must be one of endpoint, pod, image/],
        ['GET', '/api/v1/history/running?bucketSize=x', read, {}, /^bucketSize must be integer/],
        ['GET', '/api/v1/history/running?since=1', read, {}, /^since is not a known field/],
        ['GET', '/api/v1/images?x=1', read, {}, /^x is not a known field/],
        ['POST', '/api/v1/instances/stop', TOKENS.operate, { body: {} }, /^instanceIDs is required/],
        ['POST', '/api/v1/instances/stop', TOKENS.operate, { body: { instanceIDs: [] } }, /^instanceIDs must NOT have fewer than 1 items/],
        ['POST', '/api/v1/instances/stop', TOKENS.operate, { body: { instanceIDs: [vm.instanceID, 'x'] } }, /^instanceIDs\[1\] must be integer/],
        ['POST', '/api/v1/instances/stop', TOKENS.operate, { body: { instanceIDs: [-1] } }, /^instanceIDs\[0\] must be >= 1/],
        ['POST', '/api/v1/instances/stop', TOKENS.operate, { body: { instanceIDs: Array.from({ length: 1001 }, (_, i) => i + 1) } }, /^instanceIDs must NOT have more than 1000 items/],
      ];
      const before = await snapshot(rig.db);
      for (const [method, url, who, payload, expected] of cases) {
        const res = await request(method, url, { token: who, ...payload });
        const label = `${method} ${url} ${JSON.stringify(payload).slice(0, 80)}`;
        assert.equal(res.status, 400, `${label}: ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error, 'bad_request', label);
        assert.match(res.body.message, expected, label);
        assert.doesNotMatch(JSON.stringify(res.body), /\bat .*\.js:\d+/, 'no stack trace');
      }
      assert.deepEqual(await snapshot(rig.db), before, 'nothing written');
      assert.equal(await rig.status(vm.instanceID), 'Submitted');
      await vm.handle.terminate('test done');
    });

    it('unknown sort fields and directions are ignored, unknown filters of the content view too', async function () {
      const res = await request('GET', '/api/v1/instances?sort=Bogus:ASC,inst.Status:SIDEWAYS,Name&Nonsense=1', { token: TOKENS.read });
      assert.equal(res.status, 200);
      assert.equal(typeof res.body.TotalRecords, 'number');
    });

    it('random bodies on the VM routes: never a 5xx, always a 4xx, nothing written', async function () {
      const vm = await submitted();
      ok(await rig.heartbeat(vm.uniqueID, beat())); // Running: every VM route would change something if it got through
      const before = await snapshot(rig.db);
      const random = seeded(20240611);
      const statuses = new Map<number, number>();
      for (let i = 0; i < 500; i++) {
        const route = random.pick(['running', 'heartbeat', 'halting'] as const);
        const payload = invalidPayload(route, random);
        const res = await request('POST', `/api/v1/vms/${vm.instanceID}/${route}`, { token: vm.token, ...payload });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        assert.ok(res.status >= 400 && res.status < 500, `${route} ${JSON.stringify(payload).slice(0, 200)}: ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.message, 'string');
      }
      assert.deepEqual(await snapshot(rig.db), before, 'nothing written');
      assert.ok((statuses.get(400) ?? 0) > 400, `mostly schema refusals: ${JSON.stringify([...statuses])}`);
      await vm.handle.terminate('test done');
    });
    it('random query strings on the operator reads: 200 or 400, never a 5xx', async function () {
      const random = seeded(7);
      const keys = ['Status', 'inst.Status', 'img.Name', 'Load', 'inst.Jobs', 'LastUpdate', 'InstanceID', 'sort', 'start', 'limit', 'groupBy', 'bucket', 'fields', 'timespan', 'bucketSize', 'Bogus', 'img.', '.x', '__proto__', 'constructor', ''];
      const values = ['Running', 'Running,Halted', '', ',', '-1', '0', '1.5', '1e3', 'NaN', '9'.repeat(30), 'Load,Jobs', 'inst.InstanceID:DESC', 'x:y:z', '2024-01-01 00:00:00', '%', "'", '\u0000', 'endpoint', '💥'];
      const routes = ['/api/v1/instances', '/api/v1/instances/counters', '/api/v1/history/values', '/api/v1/history/running', '/api/v1/images'];
      const before = await snapshot(rig.db);
      for (let i = 0; i < 300; i++) {
        const pairs = Array.from({ length: 1 + Math.floor(random.next() * 3) }, () => `${encodeURIComponent(random.pick(keys))}=${encodeURIComponent(random.pick(values))}`);
        const url = `${random.pick(routes)}?${pairs.join('&')}`;
        const res = await request('GET', url, { token: TOKENS.read });
        assert.ok(res.status === 200 || res.status === 400, `${url}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      assert.deepEqual(await snapshot(rig.db), before);
    });
  });

  describe('director', function () {
    const idleQueue = `vmdb-api-idle-${process.pid}`; // no worker polls it: triggered passes wait, harmlessly

    it('lists missing Schedules as absent, and a trigger without one is a 404', async function () {
      let res = await request('GET', '/api/v1/director', { token: TOKENS.read });
      assert.deepEqual(
        [res.status, res.body.schedules, res.body.mode],
        [200, [{ id: DIRECTOR_SCHEDULE_ID, absent: true }, { id: SWEEP_SCHEDULE_ID, absent: true }, { id: RECONCILE_SCHEDULE_ID, absent: true }], 'normal'],
      );
      // Endpoints with a pause or failures on record (the auth probes resumed theirs): none paused.
      assert.deepEqual(res.body.endpoints.filter((e: { paused: boolean }) => e.paused), []);
      res = await request('POST', '/api/v1/director/trigger', { token: TOKENS.admin });
      assert.deepEqual([res.status, res.body.error], [404, 'not_found']);
      // The failed trigger is on record, with what the operator was told.
      const [entry] = (await request('GET', '/api/v1/audit?action=director.trigger&limit=1', { token: TOKENS.read })).body.entries;
      assert.deepEqual([entry.operator, entry.outcome, entry.httpStatus, entry.error, entry.message], ['admin-person', 'failed', 404, 'not_found', res.body.message]);
    });

    it('describes both Schedules and triggers a Director pass', async function () {
      await ensureSchedules(env.client, rig.fleet, idleQueue);
      try {
        let res = await request('GET', '/api/v1/director', { token: TOKENS.read });
        assert.equal(res.status, 200);
        const [director, sweep, reconcile] = res.body.schedules;
        assert.deepEqual([reconcile.id, reconcile.intervalSeconds], [RECONCILE_SCHEDULE_ID, rig.fleet.safety.reconcile.everySeconds]);
        assert.deepEqual([director.id, director.paused, director.intervalSeconds], [DIRECTOR_SCHEDULE_ID, false, rig.fleet.directorEverySeconds]);
        assert.deepEqual([sweep.id, sweep.paused, sweep.intervalSeconds], [SWEEP_SCHEDULE_ID, false, rig.fleet.sweepEverySeconds]);
        assert.ok(!Number.isNaN(Date.parse(director.nextRun)), 'next run as an ISO time');
        res = await request('POST', '/api/v1/director/trigger', { token: TOKENS.admin });
        assert.deepEqual([res.status, res.body], [200, { triggered: true }]);
        const [entry] = (await request('GET', '/api/v1/audit?action=director.trigger&limit=1', { token: TOKENS.read })).body.entries;
        assert.deepEqual([entry.operator, entry.target, entry.outcome, entry.httpStatus], ['admin-person', `schedule:${DIRECTOR_SCHEDULE_ID}`, 'succeeded', 200]);
      } finally {
        for (const id of [DIRECTOR_SCHEDULE_ID, SWEEP_SCHEDULE_ID, RECONCILE_SCHEDULE_ID]) await env.client.schedule.getHandle(id).delete();
      }
    });
  });
});

describe('HTTP API when Temporal or the database is down [mariadb]', function () {
  this.timeout(60_000);
  let db: VirtualMachineDB;
  let deadTemporal: Client;
  let app: FastifyInstance;
  let instanceID: number;

  before(async function () {
    db = await VirtualMachineDB.open({ url: await BACKENDS[0].createDatabase() });
    instanceID = ok(await db.insertInstance('vm-down-1', 'test-image', 'down-1', ENDPOINT, 'testvo'));
    // Nothing listens on port 1; no retry interceptor, so each call fails at once.
    deadTemporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', interceptors: [] }) });
    app = await buildApi({ db, lifecycle: new LifecycleClient(deadTemporal, db), temporal: deadTemporal, operators: OPERATORS, tokenSecret: SECRET });
  });
  after(async function () {
    await app?.close();
    await deadTemporal?.connection.close();
    await BACKENDS[0].dropAll();
  });

  it('Temporal down: health degraded; heartbeats recorded and answered from MySQL; running, stop and director 503', async function () {
    let res = await call(app, 'GET', '/health');
    assert.deepEqual([res.status, res.body], [200, { status: 'degraded', database: 'ok', temporal: 'down' }]);
    res = await call(app, 'POST', `/api/v1/vms/${instanceID}/heartbeat`, { token: await vmToken(db, instanceID), body: { ...beat(), bootId: 'b1', seq: 1 } });
    assert.deepEqual([res.status, res.body], [200, { directive: 'ok' }], 'MySQL is the record: the heartbeat is answered');
    assert.deepEqual((await db.getHistoryForInstanceID(instanceID) as { Value: { Records: unknown[][] } }).Value.Records.map((r) => r[0]), ['Submitted', 'Running']);
    res = await call(app, 'POST', `/api/v1/vms/${instanceID}/running`, { token: await vmToken(db, instanceID), body: {} });
    assert.deepEqual([res.status, res.body.error], [503, 'unavailable']);
    assert.doesNotMatch(res.body.message, /127\.0\.0\.1|UNAVAILABLE|ECONNREFUSED/);
    res = await call(app, 'POST', '/api/v1/instances/stop', { token: TOKENS.operate, body: { instanceIDs: [instanceID] } });
    assert.deepEqual([res.status, res.body.error, res.body.results[instanceID].OK], [503, 'unavailable', false]);
    assert.doesNotMatch(JSON.stringify(res.body), /127\.0\.0\.1|UNAVAILABLE|ECONNREFUSED/);
    assert.equal(ok(await db.getInstanceParameter('Status', instanceID)), 'Running', 'no stop behind the workflow');
    res = await call(app, 'GET', '/api/v1/director', { token: TOKENS.read });
    assert.deepEqual([res.status, res.body.error], [503, 'unavailable']);
  });

  it('database down: health degraded, reads and VM routes 503', async function () {
    await db.close();
    let res = await call(app, 'GET', '/health');
    assert.deepEqual(res.body, { status: 'degraded', database: 'down', temporal: 'down' });
    for (const url of ['/api/v1/instances', `/api/v1/instances/${instanceID}`, '/api/v1/images', '/api/v1/instances/counters']) {
      res = await call(app, 'GET', url, { token: TOKENS.read });
      assert.deepEqual([res.status, res.body.error], [503, 'unavailable'], url);
      // What the driver said (address, port, code) is for the server log, not for the caller.
      assert.match(res.body.message, /^The database cannot be reached right now; retry later$/);
    }
    res = await call(app, 'POST', `/api/v1/vms/${instanceID}/heartbeat`, { token: await vmToken(db, instanceID), body: beat() });
    assert.deepEqual([res.status, res.body.error], [503, 'unavailable']);
  });
});

describe('API configuration', function () {
  const files: Record<string, string> = {
    '/ok.json': JSON.stringify([{ name: 'alice', role: 'operate', sha256: hashToken('alice-token').toUpperCase() }]),
    '/bad.json': JSON.stringify([{ name: 'bob', role: 'root', sha256: 'secret' }, 'x', { name: 'alice', role: 'read', sha256: hashToken('a'), extra: 1 }]),
    '/notjson.json': '[{',
  };
  const readFile = (path: string) => {
    if (!(path in files)) throw new Error(`ENOENT: no such file, open '${path}'`);
    return files[path];
  };
  const problems = (env: NodeJS.ProcessEnv): string[] => {
    try {
      loadApiConfig(env, readFile);
    } catch (err) {
      assert.ok(err instanceof ApiConfigError);
      return err.problems;
    }
    return [];
  };

  it('reads the tokens file and the admin token (hashed at load), the secret, host and port', function () {
    const config = loadApiConfig({ VMDB_OPERATOR_TOKENS_FILE: '/ok.json', VMDB_ADMIN_TOKEN: 'a-long-admin-token-1234', VMDB_TOKEN_SECRET: SECRET, VMDB_API_PORT: '9090' }, readFile);
    assert.deepEqual(config.operators, [
      { name: 'alice', role: 'operate', sha256: hashToken('alice-token') },
      { name: 'admin (VMDB_ADMIN_TOKEN)', role: 'admin', sha256: hashToken('a-long-admin-token-1234') },
    ]);
    assert.deepEqual([config.tokenSecret, config.host, config.port], [SECRET, '127.0.0.1', 9090]);
    assert.equal(loadApiConfig({ VMDB_ADMIN_TOKEN: 'a-long-admin-token-1234', VMDB_TOKEN_SECRET: SECRET }, readFile).port, 8080);
  });

  it('reads VMDB_TEMPORAL_UI_URL for the dashboard\'s workflow links, and refuses one that is not an http(s) url', function () {
    const env = { VMDB_ADMIN_TOKEN: 'a-long-admin-token-1234', VMDB_TOKEN_SECRET: SECRET };
    assert.equal(loadApiConfig(env, readFile).temporalUiUrl, undefined);
    assert.equal(loadApiConfig({ ...env, VMDB_TEMPORAL_UI_URL: 'https://temporal.example.org' }, readFile).temporalUiUrl, 'https://temporal.example.org');
    assert.deepEqual(problems({ ...env, VMDB_TEMPORAL_UI_URL: 'temporal:8233' }), ['VMDB_TEMPORAL_UI_URL must be an http:// or https:// url, got "temporal:8233"']);
  });

  it('says everything that is wrong at once, clearly', function () {
    assert.deepEqual(problems({}).length, 2, 'no operator token, no secret');
    assert.match(problems({}).join('\n'), /No operator token.*\n.*VMDB_TOKEN_SECRET is not set/);
    const bad = problems({ VMDB_OPERATOR_TOKENS_FILE: '/bad.json', VMDB_TOKEN_SECRET: 'short', VMDB_API_PORT: '70000' });
    assert.ok(bad.some((p) => /entry 0: role must be one of read, operate, admin/.test(p)));
    assert.ok(bad.some((p) => /entry 0: sha256 must be the 64 hex digits/.test(p)));
    assert.ok(bad.some((p) => /entry 1 must be an object/.test(p)));
    assert.ok(bad.some((p) => /entry 2: unknown field "extra"/.test(p)));
    assert.ok(bad.some((p) => /VMDB_TOKEN_SECRET must be at least 16/.test(p)));
    assert.ok(bad.some((p) => /VMDB_API_PORT must be a port number/.test(p)));
    assert.match(problems({ VMDB_OPERATOR_TOKENS_FILE: '/notjson.json', VMDB_TOKEN_SECRET: SECRET })[0], /not JSON/);
    assert.match(problems({ VMDB_OPERATOR_TOKENS_FILE: '/missing.json', VMDB_TOKEN_SECRET: SECRET })[0], /cannot read \/missing.json/);
    assert.match(problems({ VMDB_ADMIN_TOKEN: 'short', VMDB_TOKEN_SECRET: SECRET })[0], /VMDB_ADMIN_TOKEN must be at least 16/);
  });

  it('buildApi refuses to start without a token secret', async function () {
    await assert.rejects(buildApi({ db: {} as VirtualMachineDB, lifecycle: {} as LifecycleClient, operators: OPERATORS, tokenSecret: '' }), /tokenSecret/);
  });
});

// ---- fuzz helpers ---------------------------------------------------------------

function seeded(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    // mulberry32: small, and the same sequence on every run
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] };
}

const ANY_BAD = [null, true, false, -1, -0.5, 1.5, 'NaN', 'Infinity', '', '1', [], [1], {}, { a: 1 }, 2 ** 53, -(2 ** 60), 'x'.repeat(300), '\u0000', '<script>', "'; DROP TABLE vm_Instances; --"];
const BAD_VALUES: Record<string, unknown[]> = {
  load: [...ANY_BAD.filter((v) => typeof v !== 'number' || v < 0), 1e39],
  jobs: [...ANY_BAD.filter((v) => typeof v !== 'number' || v < 0 || !Number.isInteger(v) || v > 2 ** 32), 2 ** 32],
  transferredFiles: [...ANY_BAD.filter((v) => typeof v !== 'number' || v < 0 || !Number.isInteger(v) || v > 2 ** 32), 2 ** 32 + 5],
  transferredBytes: [...ANY_BAD.filter((v) => typeof v !== 'number' || v < 0 || !Number.isInteger(v)), 2 ** 53],
  uptime: [...ANY_BAD.filter((v) => typeof v !== 'number' || v < 0 || !Number.isInteger(v) || v > 2 ** 32), 2 ** 40],
  publicIP: ['not-an-ip', '1.2.3.4.5', '999.1.1.1', '::ffff:999.1.1.1', 'x'.repeat(33), 7, null, [], {}, true, 'localhost'],
  privateIP: ['10.0.0', '10.0.0.256', 12, null, ['10.0.0.1'], 'x'.repeat(40)],
};
const GOOD_VALUES: Record<string, unknown[]> = {
  load: [0, 0.5, 12.25],
  jobs: [0, 3],
  transferredFiles: [0, 9],
  transferredBytes: [0, 123456789],
  uptime: [0, 3600],
  publicIP: ['192.0.2.1', '2001:db8::1', ''],
  privateIP: ['10.0.0.1', ''],
};
const FIELDS = { running: ['publicIP', 'privateIP'], heartbeat: ['load', 'jobs', 'transferredFiles', 'transferredBytes', 'uptime'], halting: ['load'] } as const;
const RAW_BODIES = ['', '{', '[]', 'null', '"text"', '42', '{"load":}', '{"load":1e400}', '{"__proto__":{"load":1}}', '{"constructor":{"prototype":{}}}', '\u00ff\u00fe', '{"load":1,"load":-1}'];

/** A body that must be refused: each mode breaks it in a different way, so none can slip through as valid. */
function invalidPayload(route: keyof typeof FIELDS, random: ReturnType<typeof seeded>): { body?: unknown; raw?: string } {
  const fields = FIELDS[route];
  const good = () => Object.fromEntries(fields.map((f) => [f, random.pick(GOOD_VALUES[f])]));
  switch (random.pick(['badValue', 'badValue', 'unknownKey', 'notObject', 'raw'] as const)) {
    case 'badValue': {
      const body: Record<string, unknown> = good();
      const target = random.pick(fields);
      body[target] = random.pick(BAD_VALUES[target]);
      for (const f of fields) if (f !== target && random.next() < 0.3) body[f] = random.pick([...BAD_VALUES[f], ...GOOD_VALUES[f]]);
      return { body };
    }
    case 'unknownKey':
      return { body: { ...good(), [random.pick(['Load', 'status', 'instanceID', 'extra', 'uniqueID', 'directive'])]: random.pick(ANY_BAD) } };
    case 'notObject':
      return { raw: JSON.stringify(random.pick([[good()], 'text', 7, null, true])) };
    case 'raw':
      return { raw: random.pick(RAW_BODIES) };
  }
}
