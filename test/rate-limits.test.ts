import { strict as assert } from 'node:assert';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { loadApiConfig } from '../src/api/config';
import { buildApi } from '../src/api/server';
import { hashToken, makeVmToken, newSecret } from '../src/auth/tokens';
import { DEFAULT_RATE_LIMIT_AUTH_FAILURES, DEFAULT_RATE_LIMIT_PER_ADDRESS, DEFAULT_RATE_LIMIT_PER_TOKEN, type RateLimitSettings, loadSettings } from '../src/config/settings';
import { VirtualMachineDB } from '../src/db/vmdb';
import { ok } from './support/backends';

/**
 * The API's rate limits (src/api/rate-limits.ts): per principal for callers with a valid token,
 * per address for the others, strictest for failed authentications. No route here reaches the
 * lifecycle: the limits act in onRequest, before any handler.
 */

const SECRET = newSecret();
const ALICE = newSecret();
const BOB = newSecret();
const OPERATORS = [
  { name: 'alice', role: 'read' as const, sha256: hashToken(ALICE) },
  { name: 'bob', role: 'read' as const, sha256: hashToken(BOB) },
];
const PROXY = '198.51.100.7';
const OTHER = '203.0.113.9';

describe('rate limits', function () {
  let db: VirtualMachineDB;
  const apps: FastifyInstance[] = [];

  /** VM tokens are bound to an instance the record holds: instances 1 to 40, named rl-<id>. */
  const vmToken = (id: number) => makeVmToken(SECRET, id, `rl-${id}`);

  before(async function () {
    db = await VirtualMachineDB.open({ url: 'sqlite::memory:' });
    for (let i = 1; i <= 40; i++) assert.equal(ok(await db.insertInstance('', 'img', `rl-${i}`, 'Site::ce', 'pod')), i);
  });
  afterEach(async function () {
    for (const app of apps.splice(0)) await app.close();
  });
  after(async function () {
    await db?.close();
  });

  async function api(rateLimits: RateLimitSettings | undefined, metricsToken?: string): Promise<FastifyInstance> {
    const app = await buildApi({ db, lifecycle: {} as never, operators: OPERATORS, tokenSecret: SECRET, rateLimits, metricsToken });
    apps.push(app);
    return app;
  }

  async function call(app: FastifyInstance, url: string, from: string, token?: string, method: InjectOptions['method'] = 'GET') {
    const res = await app.inject({ method, url, remoteAddress: from, headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.statusCode, headers: res.headers, body: /json/.test(String(res.headers['content-type'])) ? res.json() : res.body };
  }

  const limits = (overrides: Partial<Exclude<RateLimitSettings, false>>): RateLimitSettings => ({ perToken: 1000, perAddress: 1000, authFailures: 1000, ...overrides });

  it('an address that keeps failing authentication gets 429 with Retry-After; a valid token from it still gets through', async function () {
    const app = await api(limits({ authFailures: 3 }));
    for (let i = 0; i < 3; i++) {
      const res = await call(app, '/api/v1/me', PROXY, `wrong-${i}-${newSecret()}`);
      assert.equal(res.status, 401, `failure ${i + 1} is still a 401`);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    for (const token of ['still-wrong-0123456789abcdef', undefined, makeVmToken(newSecret(), 5, 'rl-5')]) {
      const res = await call(app, '/api/v1/me', PROXY, token);
      assert.equal(res.status, 429, `token ${String(token)}`);
      assert.equal(res.body.error, 'rate_limited');
      assert.match(res.body.message, /failed authentications.*retry in \d+ s/);
      const retryAfter = Number(res.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${res.headers['retry-after']}`);
    }
    // The operator and the VMs behind the same address are not throttled.
    assert.equal((await call(app, '/api/v1/me', PROXY, ALICE)).status, 200);
    assert.notEqual((await call(app, '/api/v1/vms/5/heartbeat', PROXY, vmToken(5), 'POST')).status, 429);
    // Another address fails on its own count.
    assert.equal((await call(app, '/api/v1/me', OTHER, 'wrong-elsewhere-0123456789')).status, 401);
  });

  it('a wrong metrics token counts as a failed authentication', async function () {
    const app = await api(limits({ authFailures: 2 }), newSecret());
    assert.equal((await call(app, '/metrics', PROXY, 'not-the-metrics-token-0123')).status, 401);
    assert.equal((await call(app, '/metrics', PROXY)).status, 401);
    const res = await call(app, '/metrics', PROXY, 'not-the-metrics-token-0123');
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers['retry-after']) >= 1);
  });

  it('the per-token limit trips for one token without affecting another from the same address', async function () {
    const app = await api(limits({ perToken: 4 }));
    for (let i = 0; i < 4; i++) assert.equal((await call(app, '/api/v1/me', PROXY, ALICE)).status, 200, `request ${i + 1}`);
    const over = await call(app, '/api/v1/me', PROXY, ALICE);
    assert.equal(over.status, 429);
    assert.equal(over.body.error, 'rate_limited');
    assert.match(over.body.message, /this token/);
    assert.ok(Number(over.headers['retry-after']) >= 1);
    // Alice from elsewhere is the same principal: still throttled.
    assert.equal((await call(app, '/api/v1/me', OTHER, ALICE)).status, 429);
    assert.equal((await call(app, '/api/v1/me', PROXY, BOB)).status, 200);
    // VMs are counted by InstanceID.
    const vm = (id: number) => call(app, `/api/v1/vms/${id}/heartbeat`, PROXY, vmToken(id), 'POST');
    for (let i = 0; i < 4; i++) assert.notEqual((await vm(7)).status, 429);
    assert.equal((await vm(7)).status, 429);
    assert.notEqual((await vm(8)).status, 429);
  });

  it('a fleet behind one address is never counted by address: many VM tokens, far past the per-address and failure limits', async function () {
    const app = await api(limits({ perToken: 3, perAddress: 5, authFailures: 2 }));
    const statuses = new Set<number>();
    for (let round = 0; round < 3; round++) {
      for (let id = 1; id <= 40; id++) statuses.add((await call(app, `/api/v1/vms/${id}/heartbeat`, '127.0.0.1', vmToken(id), 'POST')).status);
    }
    assert.ok(!statuses.has(429), `statuses ${[...statuses]}`);
    assert.ok(!statuses.has(401));
  });

  it('requests without a token are limited per address', async function () {
    const app = await api(limits({ perAddress: 3 }));
    for (let i = 0; i < 3; i++) assert.equal((await call(app, '/healthz', PROXY)).status, 200);
    const res = await call(app, '/healthz', PROXY);
    assert.equal(res.status, 429);
    assert.deepEqual(Object.keys(res.body).sort(), ['error', 'message']);
    assert.match(res.body.message, /from this address/);
    assert.ok(Number(res.headers['retry-after']) >= 1);
    assert.equal((await call(app, '/healthz', OTHER)).status, 200);
    assert.equal((await call(app, '/api/v1/me', PROXY, ALICE)).status, 200, 'a token is counted by its principal, not the address');
  });

  it('off (false, or not given to buildApi): no 429 however often', async function () {
    for (const app of [await api(false), await api(undefined)]) {
      for (let i = 0; i < 30; i++) assert.equal((await call(app, '/api/v1/me', PROXY, `wrong-${i}-0123456789abcdef`)).status, 401);
      for (let i = 0; i < 30; i++) assert.equal((await call(app, '/healthz', PROXY)).status, 200);
    }
  });

  it('the 429 reply is documented on every /api/v1 operation and the open routes', async function () {
    const app = await api(false);
    const doc = (await call(app, '/openapi.json', '127.0.0.1')).body as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        if (path.startsWith('/api/v1/') || ['/metrics', '/health', '/healthz', '/readyz'].includes(path)) assert.ok(operation.responses['429'], `${method} ${path}`);
      }
    }
  });
});

describe('rate limit settings', function () {
  const base = { VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: ALICE };

  it('on by default, with the documented defaults', function () {
    assert.deepEqual(loadApiConfig(base).rateLimits, { perToken: DEFAULT_RATE_LIMIT_PER_TOKEN, perAddress: DEFAULT_RATE_LIMIT_PER_ADDRESS, authFailures: DEFAULT_RATE_LIMIT_AUTH_FAILURES });
    // Room for a VM heartbeating every second, and a handful of failures only.
    assert.ok(DEFAULT_RATE_LIMIT_PER_TOKEN >= 600);
    assert.ok(DEFAULT_RATE_LIMIT_AUTH_FAILURES <= 20);
  });

  it('each limit can be set, and VMDB_RATE_LIMITS=false turns them all off', function () {
    const env = { ...base, VMDB_RATE_LIMIT_PER_TOKEN: '50', VMDB_RATE_LIMIT_PER_ADDRESS: '40', VMDB_RATE_LIMIT_AUTH_FAILURES: '3' };
    assert.deepEqual(loadApiConfig(env).rateLimits, { perToken: 50, perAddress: 40, authFailures: 3 });
    assert.equal(loadApiConfig({ ...env, VMDB_RATE_LIMITS: 'false' }).rateLimits, false);
    assert.equal(loadSettings({ ...env, VMDB_RATE_LIMITS: 'off' }, { require: ['api'] }).api.rateLimits, false);
  });

  it('a bad value stops the API, naming the setting', function () {
    assert.throws(() => loadApiConfig({ ...base, VMDB_RATE_LIMIT_AUTH_FAILURES: '0' }), /VMDB_RATE_LIMIT_AUTH_FAILURES must be a positive integer/);
    assert.throws(() => loadApiConfig({ ...base, VMDB_RATE_LIMITS: 'maybe' }), /VMDB_RATE_LIMITS must be true or false/);
    assert.throws(() => loadSettings({ ...base, VMDB_RATE_LIMIT_PER_TOKEN: 'lots' }, { require: ['api'] }), /VMDB_RATE_LIMIT_PER_TOKEN must be a positive integer/);
  });
});
