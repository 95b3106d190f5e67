import { strict as assert } from 'node:assert';
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { loadApiConfig } from '../src/api/config';
import { buildApi } from '../src/api/server';
import { newSecret } from '../src/auth/tokens';
import { loadSettings } from '../src/config/settings';
import { VirtualMachineDB } from '../src/db/vmdb';
import { listeningPort, serveMetrics } from '../src/ops/metrics';
import { isLoopback, metricsAccess, sameToken } from '../src/ops/metrics-access';

/** Who may scrape /metrics: the bearer of VMDB_METRICS_TOKEN, or without it callers on this machine only. */

const SECRET = newSecret();
const METRICS_TOKEN = newSecret();

describe('/metrics access', function () {
  let db: VirtualMachineDB;
  const apps: FastifyInstance[] = [];

  before(async function () {
    db = await VirtualMachineDB.open({ url: 'sqlite::memory:' });
  });
  after(async function () {
    for (const app of apps.splice(0)) await app.close();
    await db?.close();
  });

  async function api(metricsToken?: string): Promise<FastifyInstance> {
    const app = await buildApi({ db, lifecycle: {} as never, operators: [], tokenSecret: SECRET, metricsToken });
    apps.push(app);
    return app;
  }

  const scrape = (app: FastifyInstance, from: string, authorization?: string) =>
    app.inject({ method: 'GET', url: '/metrics', remoteAddress: from, headers: authorization ? { authorization } : {} });

  it('with VMDB_METRICS_TOKEN: 401 with WWW-Authenticate without it or with another, from anywhere; served with it', async function () {
    const app = await api(METRICS_TOKEN);
    for (const [from, authorization] of [
      ['127.0.0.1', undefined],
      ['203.0.113.4', undefined],
      ['203.0.113.4', `Bearer ${METRICS_TOKEN.slice(0, -1)}`],
      ['203.0.113.4', `Bearer ${METRICS_TOKEN}x`],
      ['203.0.113.4', `Basic ${METRICS_TOKEN}`],
      ['127.0.0.1', `Bearer ${SECRET}`],
    ] as const) {
      const res = await scrape(app, from, authorization);
      assert.equal(res.statusCode, 401, `${from} ${authorization}`);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      assert.deepEqual(res.json(), { error: 'unauthorized', message: 'Authorization: Bearer <the metrics token> is required' });
      assert.doesNotMatch(res.body, /vmdb_heartbeats_total/);
    }
    for (const from of ['127.0.0.1', '203.0.113.4']) {
      const res = await scrape(app, from, `Bearer ${METRICS_TOKEN}`);
      assert.equal(res.statusCode, 200, from);
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.match(res.body, /^# TYPE vmdb_heartbeats_total counter$/m);
    }
  });

  it('without it: callers on this machine only; others get 403 naming the setting', async function () {
    const app = await api(undefined);
    for (const from of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      const res = await scrape(app, from);
      assert.equal(res.statusCode, 200, from);
      assert.match(res.body, /^# TYPE vmdb_instances gauge$/m);
    }
    for (const from of ['203.0.113.4', '10.0.0.2', '::ffff:10.0.0.2', '2001:db8::1']) {
      const res = await scrape(app, from, `Bearer ${METRICS_TOKEN}`);
      assert.equal(res.statusCode, 403, from);
      assert.equal(res.json().error, 'forbidden');
      assert.match(res.json().message, /VMDB_METRICS_TOKEN/);
    }
  });

  it("the worker's own /metrics takes the same token", async function () {
    const servers: Server[] = [await serveMetrics('127.0.0.1:0', { token: METRICS_TOKEN }), await serveMetrics('127.0.0.1:0')];
    try {
      const [guarded, open] = servers.map((server) => `http://127.0.0.1:${listeningPort(server)}/metrics`);
      const refused = await fetch(guarded);
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
      assert.equal(((await refused.json()) as { error: string }).error, 'unauthorized');
      assert.equal((await fetch(guarded, { headers: { authorization: `Bearer ${SECRET}` } })).status, 401);
      const served = await fetch(guarded, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(served.status, 200);
      assert.match(await served.text(), /^# HELP vmdb_heartbeats_total /m);
      assert.equal((await fetch(open)).status, 200, 'no token: loopback callers are served');
    } finally {
      for (const server of servers) await new Promise((resolve) => server.close(resolve));
    }
  });

  it('metricsAccess, isLoopback and sameToken', function () {
    assert.equal(metricsAccess(undefined, undefined, '127.0.0.1'), 'allowed');
    assert.equal(metricsAccess(undefined, undefined, '192.0.2.1'), 'forbidden');
    assert.equal(metricsAccess(undefined, undefined, undefined), 'forbidden');
    assert.equal(metricsAccess('a-token-0123456789', 'bearer a-token-0123456789', '192.0.2.1'), 'allowed');
    assert.equal(metricsAccess('a-token-0123456789', 'Bearer a-token-012345678', '127.0.0.1'), 'unauthorized');
    assert.equal(metricsAccess('a-token-0123456789', undefined, '127.0.0.1'), 'unauthorized');
    for (const address of ['127.0.0.1', '127.255.0.1', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopback(address), address);
    for (const address of ['128.0.0.1', '10.127.0.1', '::2', '::ffff:10.0.0.1', 'localhost', '', undefined]) assert.ok(!isLoopback(address), String(address));
    assert.ok(sameToken('abc', 'abc'));
    assert.ok(!sameToken('abc', 'abcd'));
    assert.ok(!sameToken('abc', ''));
  });

  it('VMDB_METRICS_TOKEN is a setting of the API and the worker, at least 16 characters without spaces', function () {
    const base = { VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: newSecret() };
    assert.equal(loadApiConfig({ ...base, VMDB_METRICS_TOKEN: METRICS_TOKEN }).metricsToken, METRICS_TOKEN);
    assert.equal(loadApiConfig(base).metricsToken, undefined);
    assert.equal(loadSettings({ ...base, VMDB_METRICS_TOKEN: METRICS_TOKEN }, { require: ['worker'] }).api.metricsToken, METRICS_TOKEN);
    assert.throws(() => loadApiConfig({ ...base, VMDB_METRICS_TOKEN: 'short' }), /VMDB_METRICS_TOKEN must be at least 16 characters without spaces/);
    assert.throws(() => loadSettings({ ...base, VMDB_METRICS_TOKEN: 'has a space in the middle' }), /VMDB_METRICS_TOKEN must be at least 16/);
  });
});
