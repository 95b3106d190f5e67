import { strict as assert } from 'node:assert';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApi } from '../src/api/server';
import { ROLES, type Role, hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { type AuditEntry, type AuditRecord, AuditStore } from '../src/db/audit-store';
import { S_ERROR } from '../src/db/result';
import { createLogger } from '../src/ops/log';
import { auditWriteFailures } from '../src/ops/metrics';
import type { LifecycleClient } from '../src/temporal/lifecycle-client';
import { forceStatus, ok, onEveryBackend } from './support/backends';

const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: 'audit-read-token-0123456789', operate: 'audit-operate-token-0123456789', admin: 'audit-admin-token-0123456789' };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-person`, role, sha256: hashToken(TOKENS[role]) }));

/** A pino destination that keeps every line, parsed. */
function capture(): DestinationStream & { lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line)) };
}

/** No workflow runs for any instance: stops go through the database (UnwatchedInstances), as for finished workflows. */
const noWorkflows = { stop: async () => S_ERROR('No running life cycle', undefined, 'no_lifecycle') } as unknown as LifecycleClient;

/** A Temporal client whose Director Schedule triggers, or fails as an unreachable server would. */
function fakeTemporal(state: { reachable: boolean; triggers: number }): Client {
  return {
    withDeadline: (_deadline: number, fn: () => Promise<unknown>) => fn(),
    schedule: {
      getHandle: () => ({
        trigger: async () => {
          if (!state.reachable) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
          state.triggers++;
        },
      }),
    },
  } as unknown as Client;
}

async function failuresCounted(action: string): Promise<number> {
  return (await auditWriteFailures.get()).values.find((v) => v.labels.action === action)?.value ?? 0;
}

onEveryBackend('audit trail of operator actions', (fx) => {
  let app: FastifyInstance;
  const log = capture();
  const temporal = { reachable: true, triggers: 0 };

  before(async function () {
    app = await buildApi({ db: fx.db, lifecycle: noWorkflows, temporal: fakeTemporal(temporal), operators: OPERATORS, tokenSecret: SECRET, logger: createLogger({ destination: log, level: 'error' }) });
  });
  after(async function () {
    await app?.close();
  });
  beforeEach(async function () {
    ok(await fx.db._query('DELETE FROM `vm_AuditLog`'));
    log.lines.length = 0;
    temporal.reachable = true;
  });

  async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string | undefined, body?: unknown) {
    const res = await app.inject({ method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, body: res.json() };
  }

  /** The whole trail, oldest first. */
  async function trail(): Promise<AuditEntry[]> {
    return (await AuditStore.of(fx.db).list({ limit: 1000 })).reverse();
  }

  const instance = async (name: string) => ok(await fx.db.insertInstance('', 'audit-image', name, 'Site::ce', 'pod'));
  /** The fields an entry is checked on; its id and time are checked apart. */
  const gist = ({ id: _id, at: _at, ...rest }: AuditEntry) => rest;
  const entry = (fields: Partial<AuditRecord>): AuditRecord => ({ operator: '', role: '', action: 'instance.stop', target: '', instanceID: null, detail: '', outcome: 'succeeded', httpStatus: 200, error: '', message: '', ...fields });

  it('records each action with the operator, the time, the target and the outcome', async function () {
    const halted = await instance('to-halt');
    const running = await instance('to-stop');
    await forceStatus(fx.db, running, 'Running');
    const started = Math.floor(Date.now() / 1000) * 1000;

    assert.equal((await call('POST', '/api/v1/instances/stop', TOKENS.operate, { instanceIDs: [halted] })).status, 200);
    const batch = await call('POST', '/api/v1/instances/stop', TOKENS.operate, { instanceIDs: [running, 999_999] });
    assert.equal(batch.status, 200);
    assert.equal(batch.body.results[999_999].OK, false);
    assert.equal((await call('PUT', `/api/v1/instances/${halted}/manual`, TOKENS.operate, { reason: 'debugging' })).status, 200);
    assert.equal((await call('DELETE', `/api/v1/instances/${halted}/manual`, TOKENS.operate)).status, 200);
    assert.equal((await call('POST', '/api/v1/safety/endpoints/Site::ce/pause', TOKENS.operate, { reason: 'quota' })).status, 200);
    assert.equal((await call('POST', '/api/v1/safety/endpoints/Site::ce/resume', TOKENS.admin)).status, 200);
    assert.equal((await call('PUT', '/api/v1/safety/mode', TOKENS.admin, { mode: 'no-launch' })).status, 200);
    assert.equal((await call('POST', '/api/v1/director/trigger', TOKENS.admin)).status, 200);
    assert.equal(temporal.triggers, 1);
    // Reads are not actions.
    assert.equal((await call('GET', '/api/v1/safety', TOKENS.read)).status, 200);
    const finished = Date.now();

    const rows = await trail();
    const operate = { operator: 'operate-person', role: 'operate' };
    const admin = { operator: 'admin-person', role: 'admin' };
    assert.deepEqual(rows.map(gist), [
      entry({ ...operate, target: `instance:${halted}`, instanceID: halted, detail: 'now Halted' }),
      entry({ ...operate, target: `instance:${running}`, instanceID: running, detail: 'now Stopping' }),
      entry({ ...operate, target: 'instance:999999', instanceID: 999_999, outcome: 'failed', error: 'not_found', message: batch.body.results[999_999].Message }),
      entry({ ...operate, action: 'instance.manual.set', target: `instance:${halted}`, instanceID: halted, detail: 'debugging' }),
      entry({ ...operate, action: 'instance.manual.clear', target: `instance:${halted}`, instanceID: halted }),
      entry({ ...operate, action: 'endpoint.pause', target: 'endpoint:Site::ce', detail: 'quota' }),
      entry({ ...admin, action: 'endpoint.resume', target: 'endpoint:Site::ce' }),
      entry({ ...admin, action: 'fleet.mode', target: 'fleet', detail: 'no-launch' }),
      entry({ ...admin, action: 'director.trigger', target: 'schedule:vmdb-director' }),
    ]);
    assert.match(batch.body.results[999_999].Message, /999999/);
    for (const row of rows) {
      const at = Date.parse(row.at);
      assert.ok(at >= started && at <= finished, `${row.at} is the time of the action`);
    }
  });

  it('records refused and failed actions with the status, the error code and the message the caller got', async function () {
    const id = await instance('kept');
    const refusals = [
      await call('POST', '/api/v1/instances/stop', TOKENS.read, { instanceIDs: [id] }),
      await call('PUT', '/api/v1/safety/mode', TOKENS.operate, { mode: 'halt' }),
      await call('POST', '/api/v1/director/trigger', TOKENS.operate),
      await call('PUT', `/api/v1/instances/${id}/manual`, TOKENS.read, { reason: 'mine' }),
    ];
    assert.deepEqual(refusals.map((r) => r.status), [403, 403, 403, 403]);
    const unknown = await call('PUT', '/api/v1/instances/999999/manual', TOKENS.operate, {});
    assert.equal(unknown.status, 404);
    const badEndpoint = await call('POST', '/api/v1/safety/endpoints/nope/pause', TOKENS.operate, {});
    assert.equal(badEndpoint.status, 400);
    temporal.reachable = false;
    const down = await call('POST', '/api/v1/director/trigger', TOKENS.admin);
    assert.equal(down.status, 503);
    // Neither VM tokens nor strangers are operators: their refusals stay in the request log only.
    assert.equal((await call('POST', '/api/v1/instances/stop', await vmTokenOf(fx.db, SECRET, id), { instanceIDs: [id] })).status, 403);
    assert.equal((await call('POST', '/api/v1/instances/stop', undefined, { instanceIDs: [id] })).status, 401);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'New', 'nothing was stopped');

    const failed = (fields: Partial<AuditRecord>, reply: { status: number; body: { error: string; message: string } }) =>
      entry({ outcome: 'failed', httpStatus: reply.status, error: reply.body.error, message: reply.body.message, ...fields });
    assert.deepEqual((await trail()).map(gist), [
      // Refused before its body was read: one row, without the instances it named.
      failed({ operator: 'read-person', role: 'read', target: 'instances' }, refusals[0]),
      failed({ operator: 'operate-person', role: 'operate', action: 'fleet.mode', target: 'fleet' }, refusals[1]),
      failed({ operator: 'operate-person', role: 'operate', action: 'director.trigger', target: 'schedule:vmdb-director' }, refusals[2]),
      failed({ operator: 'read-person', role: 'read', action: 'instance.manual.set', target: `instance:${id}`, instanceID: id }, refusals[3]),
      failed({ operator: 'operate-person', role: 'operate', action: 'instance.manual.set', target: 'instance:999999', instanceID: 999_999 }, unknown),
      failed({ operator: 'operate-person', role: 'operate', action: 'endpoint.pause', target: 'endpoint:nope' }, badEndpoint),
      failed({ operator: 'admin-person', role: 'admin', action: 'director.trigger', target: 'schedule:vmdb-director' }, down),
    ]);
    assert.deepEqual([refusals[0].body.error, unknown.body.error, badEndpoint.body.error, down.body.error], ['forbidden', 'not_found', 'bad_request', 'unavailable']);
  });

  it('a trail that cannot be written: the action still answers, the miss is logged at error level and counted', async function () {
    const id = await instance('unrecorded');
    const before = await failuresCounted('instance.stop');
    ok(await fx.db._query('ALTER TABLE `vm_AuditLog` RENAME TO `vm_AuditLog_away`'));
    let res;
    try {
      res = await call('POST', '/api/v1/instances/stop', TOKENS.operate, { instanceIDs: [id] });
    } finally {
      ok(await fx.db._query('ALTER TABLE `vm_AuditLog_away` RENAME TO `vm_AuditLog`'));
    }
    assert.deepEqual([res.status, res.body.results[id]], [200, { OK: true, Value: 'Halted' }]);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Halted');
    assert.equal(await failuresCounted('instance.stop'), before + 1);
    const miss = log.lines.find((line) => line.msg === 'audit trail: operator action not recorded');
    assert.ok(miss, JSON.stringify(log.lines));
    assert.equal(miss.level, 'error');
    assert.deepEqual(miss.audit.map((r: AuditRecord) => [r.operator, r.action, r.instanceID, r.outcome]), [['operate-person', 'instance.stop', id, 'succeeded']]);
    assert.deepEqual(await trail(), []);
  });

  describe('GET /api/v1/audit', function () {
    /** 30 entries over three instances, two operators and three actions, a minute apart (the oldest first). */
    async function seed(): Promise<void> {
      const store = AuditStore.of(fx.db);
      const t0 = Date.parse('2026-05-01T12:00:00Z');
      for (let i = 0; i < 30; i++) {
        const instanceID = 1 + (i % 3);
        const action = (['instance.stop', 'instance.manual.set', 'endpoint.pause'] as const)[i % 3];
        await store.record([entry({ operator: i % 2 ? 'bob' : 'alice', role: 'operate', action, target: action === 'endpoint.pause' ? 'endpoint:Site::ce' : `instance:${instanceID}`, instanceID: action === 'endpoint.pause' ? null : instanceID, detail: `n${i}` })], new Date(t0 + i * 60_000));
      }
    }
    const get = async (query: string, token = TOKENS.read) => call('GET', `/api/v1/audit${query}`, token);
    const details = (entries: AuditEntry[]) => entries.map((e) => e.detail);
    const expected = (keep: (i: number) => boolean) => Array.from({ length: 30 }, (_, i) => 29 - i).filter(keep).map((i) => `n${i}`);

    it('answers newest first, with each filter and their combination', async function () {
      await seed();
      let res = await get('');
      assert.equal(res.status, 200);
      assert.deepEqual(details(res.body.entries), expected(() => true));
      assert.equal(res.body.next, null);
      assert.deepEqual(gist(res.body.entries[0]), entry({ operator: 'bob', role: 'operate', action: 'endpoint.pause', target: 'endpoint:Site::ce', detail: 'n29' }));
      assert.equal(res.body.entries[0].at, '2026-05-01T12:29:00.000Z');

      res = await get('?instanceID=2');
      assert.deepEqual(details(res.body.entries), expected((i) => i % 3 === 1));
      res = await get('?operator=alice');
      assert.deepEqual(details(res.body.entries), expected((i) => i % 2 === 0));
      res = await get('?action=instance.manual.set');
      assert.deepEqual(details(res.body.entries), expected((i) => i % 3 === 1));
      res = await get('?since=2026-05-01T12:20:00Z');
      assert.deepEqual(details(res.body.entries), expected((i) => i >= 20));
      res = await get(`?since=${encodeURIComponent('2026-05-01T14:25:00+02:00')}`);
      assert.deepEqual(details(res.body.entries), expected((i) => i >= 25));
      res = await get('?since=2026-05-02');
      assert.deepEqual(res.body.entries, []);
      res = await get('?instanceID=1&operator=bob&action=instance.stop&since=2026-05-01T12:05:00Z');
      assert.deepEqual(details(res.body.entries), expected((i) => i % 3 === 0 && i % 2 === 1 && i >= 5));
      res = await get('?operator=nobody');
      assert.deepEqual([res.status, res.body], [200, { entries: [], next: null }]);
    });

    it('pages with limit and the before cursor, and never returns more than limit', async function () {
      await seed();
      const seen: string[] = [];
      let before: number | null = null;
      let pages = 0;
      do {
        const res = await get(`?limit=7${before === null ? '' : `&before=${before}`}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.entries.length <= 7);
        seen.push(...details(res.body.entries));
        before = res.body.next;
        if (before !== null) assert.equal(before, res.body.entries.at(-1).id);
        pages++;
      } while (before !== null && pages < 10);
      assert.equal(pages, 5);
      assert.deepEqual(seen, expected(() => true));

      // The cursor with a filter.
      const first = await get('?operator=alice&limit=4');
      const second = await get(`?operator=alice&limit=4&before=${first.body.next}`);
      assert.deepEqual([...details(first.body.entries), ...details(second.body.entries)], expected((i) => i % 2 === 0).slice(0, 8));
    });

    it('has a default limit of 100 and refuses limits over 1000 and bad parameters with 400', async function () {
      const many = Array.from({ length: 120 }, (_, i) => entry({ operator: 'carol', detail: `m${i}` }));
      await AuditStore.of(fx.db).record(many);
      let res = await get('');
      assert.equal(res.body.entries.length, 100);
      assert.equal(res.body.next, res.body.entries[99].id);
      res = await get('?limit=1000');
      assert.equal(res.body.entries.length, 120);
      for (const [query, field] of [
        ['?limit=1001', /limit/],
        ['?limit=0', /limit/],
        ['?limit=ten', /limit/],
        ['?before=0', /before/],
        ['?instanceID=-1', /instanceID/],
        ['?action=instance.reboot', /action/],
        ['?since=yesterday', /since/],
        ['?since=2026-02-30', /since/],
        ['?since=2026-05-01T12:00:00', /since/],
        ['?operator=', /operator/],
        ['?who=alice', /who/],
      ] as const) {
        res = await get(query);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.error, 'bad_request', query);
        assert.match(res.body.message, field, query);
      }
    });

    it('is for operators from read up: a VM token gets 403, no token 401', async function () {
      const id = await instance('asker');
      for (const role of ROLES) assert.equal((await get('', TOKENS[role])).status, 200, role);
      const vm = await get(`?instanceID=${id}`, await vmTokenOf(fx.db, SECRET, id));
      assert.deepEqual([vm.status, vm.body.error], [403, 'forbidden']);
      assert.equal((await call('GET', '/api/v1/audit', undefined)).status, 401);
    });

    it('is in the OpenAPI document with its parameters', async function () {
      const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
      const operation = doc.paths['/api/v1/audit'].get;
      assert.deepEqual(operation.parameters.map((p: { name: string }) => p.name).sort(), ['action', 'before', 'instanceID', 'limit', 'operator', 'since']);
      assert.equal(operation.parameters.find((p: { name: string }) => p.name === 'limit').schema.maximum, 1000);
      assert.ok(operation.responses['200'] && operation.responses['403']);
    });
  });
});
