import { strict as assert } from 'node:assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { snapshot } from './support/backends';
import { HOSTILE_STRINGS } from './support/corpus';
import { LifecycleRig } from './support/lifecycle-rig';
import { openApiOperations } from './support/routes';
import { startDevServer } from './support/temporal';

const SECRET = newSecret();
const ADMIN = newSecret();
const OPERATORS = [{ name: 'admin-injection', role: 'admin' as const, sha256: hashToken(ADMIN) }];
/**
 * What a caller must never see: the database's own words (the facade's wrapper, driver error codes
 * and fields, the servers' syntax complaints). Validation messages may quote the input, SQL and all.
 */
const DATABASE_TEXT = /Database error|\bER_[A-Z_]{3,}|SQLITE_[A-Z]+|sqlMessage|sqlState|in your SQL syntax|near ".*": syntax error|QueryFailedError/;
/** Query keys tried as filters with hostile values (any other key is a filter on routes that take them). */
const FILTER_KEYS = ['Status', 'Name', 'inst.Name', 'img.Name', 'UniqueID'];

interface Slot {
  title: string;
  /** Builds the request with `value` in this slot and valid values everywhere else. */
  request(value: string): InjectOptions;
  write: boolean;
}

/**
 * The injection corpus of the library suite (test/support/corpus.ts), sent
 * over HTTP into every string parameter of every route of the OpenAPI
 * document: path and query parameters, filter keys and values, body fields,
 * and the bearer token. Every answer is below 500, shows no database text,
 * and nothing changes unless the value was legitimately accepted.
 */
describe('API injection corpus: every string parameter of every route', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  let running: number;
  const slots: Slot[] = [];

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env, { tokenSecret: SECRET });
    await rig.setUp();
    app = await rig.api(OPERATORS, SECRET);
    // A Running instance with history: every VM route would change it, were a value let through.
    const { instanceID } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    assert.ok((await rig.lifecycle.running(uniqueID, '10.0.0.5')).OK);
    assert.ok((await rig.heartbeat(uniqueID, { load: 1, jobs: 1, transferredFiles: 1, transferredBytes: 1, uptime: 1 })).OK);
    running = instanceID;
    const vmToken = await vmTokenOf(rig.db, SECRET, running);

    for (const { method, path, operation } of openApiOperations(app.swagger() as any)) {
      if (method === 'POST' && path.endsWith('/director/trigger')) continue; // no parameter at all
      const token = path.startsWith('/api/v1/vms/') ? vmToken : ADMIN;
      const params: { in: string; name: string }[] = operation.parameters ?? [];
      const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
      const validBody = bodySchema ? exampleBody(bodySchema, running) : undefined;
      const validPath = (overrides: Record<string, string> = {}) =>
        path.replace(/\{(\w+)\}/g, (_, name: string) => percentEncoded(overrides[name] ?? (name === 'status' ? 'Running' : String(running))));
      const base = (url: string, body = validBody, auth = token): InjectOptions => ({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${auth}` },
        ...(body !== undefined ? { payload: body as object } : {}),
      });
      const write = method !== 'GET';
      const where = `${method} ${path}`;
      for (const p of params.filter((p) => p.in === 'path')) {
        slots.push({ title: `${where} path ${p.name}`, write, request: (v) => base(validPath({ [p.name]: v })) });
      }
      for (const p of params.filter((p) => p.in === 'query')) {
        slots.push({ title: `${where} query ${p.name}`, write, request: (v) => base(`${validPath()}?${new URLSearchParams({ [p.name]: v })}`) });
      }
      if (method === 'GET') {
        slots.push({ title: `${where} query key`, write, request: (v) => base(`${validPath()}?${new URLSearchParams({ [v]: 'Running' })}`) });
        for (const key of FILTER_KEYS) {
          slots.push({ title: `${where} filter ${key}`, write, request: (v) => base(`${validPath()}?${new URLSearchParams({ [key]: v })}`) });
        }
      }
      for (const field of Object.keys(bodySchema?.properties ?? {})) {
        slots.push({ title: `${where} body ${field}`, write, request: (v) => base(validPath(), { ...(validBody as object), [field]: bodySchema.properties[field].type === 'array' ? [v] : v }) });
      }
      slots.push({ title: `${where} bearer token`, write, request: (v) => base(validPath(), validBody, v) });
    }
  });

  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  it('covers every route with parameters, body fields and the token', function () {
    const titles = slots.map((s) => s.title);
    for (const expected of ['path instanceID', 'path status', 'query sort', 'query fields', 'body publicIP', 'body instanceIDs', 'filter Status', 'bearer token']) {
      assert.ok(titles.some((t) => t.includes(expected)), `no slot for ${expected}`);
    }
    assert.ok(slots.length > 60, `only ${slots.length} slots`);
  });

  it('no 5xx, no database text in any answer, nothing changed by what was refused', async function () {
    const problems: string[] = [];
    let calls = 0;
    const readsBefore = await snapshot(rig.db);
    for (const slot of slots.filter((s) => !s.write)) {
      for (const [label, value] of HOSTILE_STRINGS) {
        const res = await app.inject(slot.request(value));
        calls++;
        if (res.statusCode >= 500) problems.push(`${slot.title} <- ${label}: ${res.statusCode} ${res.body.slice(0, 150)}`);
        if (DATABASE_TEXT.test(res.body) && res.statusCode !== 200) problems.push(`${slot.title} <- ${label}: database text: ${res.body.slice(0, 150)}`);
      }
    }
    assert.deepEqual(await snapshot(rig.db), readsBefore, 'a read changed the database');

    for (const slot of slots.filter((s) => s.write)) {
      for (const [label, value] of HOSTILE_STRINGS) {
        const before = await snapshot(rig.db);
        const res = await app.inject(slot.request(value));
        calls++;
        if (res.statusCode >= 500) problems.push(`${slot.title} <- ${label}: ${res.statusCode} ${res.body.slice(0, 150)}`);
        if (DATABASE_TEXT.test(res.body)) problems.push(`${slot.title} <- ${label}: database text: ${res.body.slice(0, 150)}`);
        const accepted = res.statusCode >= 200 && res.statusCode < 300;
        if (accepted && !legitimate(slot.title, value, res.json(), running)) problems.push(`${slot.title} <- ${label}: accepted (${res.statusCode} ${res.body.slice(0, 100)})`);
        if (!accepted) {
          const after = await snapshot(rig.db);
          try {
            assert.deepEqual(after, before);
          } catch {
            problems.push(`${slot.title} <- ${label}: refused with ${res.statusCode} but the database changed`);
          }
        }
      }
    }
    console.log(`      ${calls} hostile requests over ${slots.length} parameters`);
    assert.deepEqual(problems, []);
  });

  it('the tables and the instance are intact afterwards', async function () {
    assert.equal(await rig.status(running), 'Running');
    const res = await app.inject({ method: 'GET', url: '/api/v1/instances', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.statusCode, 200);
    assert.ok(res.json().TotalRecords >= 1);
    const history = await rig.history(running);
    assert.ok(history.includes('Running'));
  });
});

/**
 * The hostile strings a write may accept: an empty address ("unknown"); any free text in a `reason`
 * (an operator's note), as long as it comes back exactly as sent, stored as data; and the number
 * forms JSON Schema coerces to the instance's own id ('0x1', ' 1'), which name the same instance.
 */
function legitimate(title: string, value: string, answer: any, instanceID: number): boolean {
  if (value === '' && /body (publicIP|privateIP)$/.test(title)) return true;
  if (/body reason$/.test(title)) return answer?.reason === value.toWellFormed();
  // A boot id is an opaque key (stored and compared as bound text): any value of the documented form will do.
  if (/body bootId$/.test(title)) return /^[A-Za-z0-9_.:@/+=,~#-]{1,64}$/.test(value) && answer?.directive === 'ok';
  if (/path instanceID$/.test(title)) return value.trim() !== '' && Number(value) === instanceID;
  return false;
}

/** Every UTF-8 byte percent-encoded (a lone surrogate becomes U+FFFD, as a client would send it). */
function percentEncoded(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
}

/** A body the route accepts, aimed at `instanceID`. */
function exampleBody(schema: any, instanceID: number): Record<string, unknown> {
  const value = (name: string, sub: any): unknown => {
    if (sub.type === 'array') return [instanceID];
    if (sub.type === 'integer') return 1;
    if (sub.type === 'number') return 0.5;
    if (/IP$/.test(name)) return '10.0.0.5';
    return 'x';
  };
  return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, sub]) => [name, value(name, sub)]));
}
