import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentOutcome, VmAgent, type VmAgentOptions, backoffDelay, clean, parseDirective, parseJobs, parseTransfers, runCommand } from '../src/agent/agent';
import { AgentConfigError, type AgentConfig, DEFAULT_HALT_COMMAND, DEFAULT_SHUTDOWN_FILE, DEFAULT_STOP_FILE, loadAgentConfig, parseCommand } from '../src/agent/config';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/server';
import { newSecret } from '../src/auth/tokens';
import { ok } from './support/backends';
import { ENDPOINT, LifecycleRig } from './support/lifecycle-rig';
import { startDevServer } from './support/temporal';
import { vmTokenOf } from './support/vm-tokens';

// A token shaped like a real one; the tests check it never shows up in a message or a log line.
const SECRET_PART = 'S3cr3tS1gnatureNeverLogged_xyz';
const TOKEN = `vm.42.${SECRET_PART}`;
const MAIN_JS = join(__dirname, '..', 'src', 'agent', 'main.js');

/** `node -e <script>` as an argv: the test's commands never need a shell. */
const nodeCommand = (script: string, ...args: string[]) => [process.execPath, '-e', script, ...args];
/** Prints the content of a file (the test's job count). */
const catCommand = (file: string) => nodeCommand('process.stdout.write(require("fs").readFileSync(process.argv[1], "utf8"))', file);
/** Writes a marker file (the test's halt command). */
const markerCommand = (file: string) => nodeCommand('require("fs").writeFileSync(process.argv[1], "halted\\n")', file);

function expectConfigError(env: Record<string, string | undefined>, ...patterns: RegExp[]): AgentConfigError {
  let caught: unknown;
  try {
    loadAgentConfig(env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof AgentConfigError, `expected an AgentConfigError, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  assert.ok(!caught.message.includes(SECRET_PART), 'the token is never echoed');
  return caught;
}

describe('vmdb-agent configuration', function () {
  const userData = (vmdb: unknown) => JSON.stringify({ vmdb });

  it('reads apiUrl, instanceID and token from the user data, with defaults for the rest', function () {
    const config = loadAgentConfig({ VMDB_USER_DATA: userData({ apiUrl: 'https://vmdb.example.org/', instanceID: 42, token: TOKEN }) });
    assert.deepEqual(config, {
      apiUrl: 'https://vmdb.example.org',
      instanceID: 42,
      token: TOKEN,
      periodSeconds: 300,
      jobsCommand: undefined,
      transferCommand: undefined,
      stopFile: DEFAULT_STOP_FILE,
      shutdownFile: DEFAULT_SHUTDOWN_FILE,
      haltCommand: [...DEFAULT_HALT_COMMAND],
    });
    assert.deepEqual(DEFAULT_HALT_COMMAND, ['shutdown', '-h', 'now']);
    assert.equal(DEFAULT_STOP_FILE, '/var/run/vmdb/stop');
  });

  it('the environment overrides the user data', function () {
    const config = loadAgentConfig({
      VMDB_USER_DATA: userData({ apiUrl: 'https://old.example.org', instanceID: 7, token: 'vm.7.old' }),
      VMDB_API_URL: 'http://127.0.0.1:8080/base/api/v1/',
      VMDB_INSTANCE_ID: '42',
      VMDB_VM_TOKEN: TOKEN,
      VMDB_AGENT_PERIOD: '1.5',
      VMDB_AGENT_STOP_FILE: '/tmp/x/stop',
      VMDB_AGENT_JOBS_COMMAND: '["/usr/bin/count jobs", "--all"]',
      VMDB_AGENT_TRANSFER_COMMAND: '/usr/bin/transfers  --since boot',
      VMDB_AGENT_HALT_COMMAND: '["/sbin/poweroff"]',
    });
    assert.equal(config.apiUrl, 'http://127.0.0.1:8080/base', 'a trailing /api/v1 is accepted and dropped');
    assert.equal(config.instanceID, 42);
    assert.equal(config.token, TOKEN);
    assert.equal(config.periodSeconds, 1.5);
    assert.equal(config.stopFile, '/tmp/x/stop');
    assert.deepEqual(config.jobsCommand, ['/usr/bin/count jobs', '--all'], 'JSON argv keeps spaces inside arguments');
    assert.deepEqual(config.transferCommand, ['/usr/bin/transfers', '--since', 'boot'], 'a plain command is split on spaces');
    assert.deepEqual(config.haltCommand, ['/sbin/poweroff']);
  });

  it('environment only, with the InstanceID taken from the VM token', function () {
    const config = loadAgentConfig({ VMDB_API_URL: 'http://vmdb:8080', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_ALLOW_HTTP: 'true' });
    assert.equal(config.instanceID, 42);
  });

  it('user data that is not JSON (a cloud-init script) gives no settings and says so', function () {
    expectConfigError({ VMDB_USER_DATA: '#!/bin/sh\necho hello\n' }, /service URL is not set: set VMDB_API_URL/, /VMDB_USER_DATA is set but is not JSON/, /VM token is not set/);
    const config = loadAgentConfig({ VMDB_USER_DATA: '#cloud-config\n', VMDB_API_URL: 'http://h', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_ALLOW_HTTP: 'true' });
    assert.equal(config.instanceID, 42);
  });

  it('lists every problem at once, naming the variable, and never shows the token', function () {
    const err = expectConfigError(
      {
        VMDB_USER_DATA: userData({ apiUrl: 'ftp://vmdb.example.org', instanceID: 'forty-two', token: TOKEN }),
        VMDB_AGENT_PERIOD: '-3',
        VMDB_AGENT_JOBS_COMMAND: '["count", 3]',
        VMDB_AGENT_HALT_COMMAND: '[not json',
      },
      /VMDB_USER_DATA vmdb\.apiUrl must be an http:\/\/ or https:\/\/ URL/,
      /VMDB_USER_DATA vmdb\.instanceID must be a positive integer/,
      /VMDB_AGENT_PERIOD must be a positive number of seconds, got "-3"/,
      /VMDB_AGENT_JOBS_COMMAND\[1\] must be a string/,
      /VMDB_AGENT_HALT_COMMAND looks like JSON but does not parse/,
    );
    assert.equal(err.problems.length, 5);
  });

  it('refuses a token made for another instance, a token with spaces, credentials in the URL, a bad vmdb member', function () {
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_INSTANCE_ID: '43', VMDB_VM_TOKEN: TOKEN }, /VM token is for instance 42, but the InstanceID \(from VMDB_INSTANCE_ID\) is 43/);
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_INSTANCE_ID: '42', VMDB_VM_TOKEN: `${SECRET_PART} x` }, /VMDB_VM_TOKEN contains spaces, control or non-ASCII characters \(value not shown\)/);
    expectConfigError({ VMDB_USER_DATA: userData({ apiUrl: 'https://h', instanceID: 42, token: 12 }) }, /VMDB_USER_DATA vmdb\.token must be a non-empty string .*got number/);
    expectConfigError({ VMDB_API_URL: 'http://user:pw@h', VMDB_VM_TOKEN: TOKEN }, /must not contain a user name or password/);
    expectConfigError({ VMDB_API_URL: 'not a url', VMDB_VM_TOKEN: TOKEN }, /VMDB_API_URL is not a valid URL/);
    expectConfigError({ VMDB_USER_DATA: '{"vmdb": "http://h"}' }, /"vmdb" must be an object/);
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_VM_TOKEN: 'opaque-token' }, /InstanceID is not set: set VMDB_INSTANCE_ID/);
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_PERIOD: '1e9' }, /VMDB_AGENT_PERIOD must be a positive number/);
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_PERIOD: '100000' }, /VMDB_AGENT_PERIOD is too long/);
    expectConfigError({ VMDB_API_URL: 'https://h', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_STOP_FILE: '/var/run/vmdb/' }, /must name a file, not a directory/);
  });

  it('parses commands: JSON argv preferred, plain command lines split on spaces, empties refused', function () {
    assert.deepEqual(parseCommand('X', '["a b", "c"]'), ['a b', 'c']);
    assert.deepEqual(parseCommand('X', '  condor_q   -totals '), ['condor_q', '-totals']);
    assert.throws(() => parseCommand('X', '[]'), /X must be a non-empty command/);
    assert.throws(() => parseCommand('X', '[""]'), /X: the program \(first element\) must not be empty/);
    assert.throws(() => parseCommand('X', '{"argv": []}'), /X must be a non-empty command/);
  });
});

describe('vmdb-agent pieces', function () {
  it('backoff grows exponentially up to the cap, with equal jitter', function () {
    const options = { initialMs: 1000, maxMs: 30_000 };
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, options, () => 1)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.deepEqual([0, 1, 2, 5].map((n) => backoffDelay(n, options, () => 0)), [500, 1000, 2000, 15000]);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, options);
      assert.ok(d >= 4000 && d <= 8000, `jittered delay ${d} within [4000, 8000]`);
    }
    assert.equal(backoffDelay(2, { initialMs: 100, maxMs: 10_000, factor: 3 }, () => 1), 900);
  });

  it('parses directives, job counts and transfer figures strictly', function () {
    assert.equal(parseDirective({ directive: 'stop' }), 'stop');
    for (const bad of [null, 'ok', [], {}, { directive: 'STOP' }, { directive: 1 }, { directive: 'reboot' }]) assert.equal(parseDirective(bad), undefined);
    assert.equal(parseJobs(' 12\n'), 12);
    for (const bad of ['', '-1', '1.5', '3 jobs', 'NaN', '99999999999']) assert.equal(parseJobs(bad), undefined, bad);
    assert.deepEqual(parseTransfers('3 4096\n'), { files: 3, bytes: 4096 });
    for (const bad of ['3', '3 -1', 'a b', '1 2 3']) assert.equal(parseTransfers(bad), undefined, bad);
    assert.equal(clean('a\nb\u0000c'), 'a b c');
  });

  it('runs commands without a shell and reports every way they fail', async function () {
    assert.deepEqual(await runCommand(nodeCommand('process.stdout.write(process.argv[1])', '$HOME; echo hi'), 5000), { ok: true, code: 0, stdout: '$HOME; echo hi' });
    const failed = await runCommand(nodeCommand('console.error("no scheduler\\nhere"); process.exit(3)'), 5000);
    assert.equal(failed.ok, false);
    assert.equal(failed.code, 3);
    assert.equal(failed.problem, 'exited with code 3: no scheduler here');
    assert.equal((await runCommand(nodeCommand('setTimeout(() => {}, 10000)'), 200)).problem, 'timed out after 200 ms');
    assert.equal((await runCommand(nodeCommand('process.stdout.write("x".repeat(100000))'), 5000)).problem, 'output larger than 65536 bytes');
    assert.match((await runCommand(['/no/such/program'], 5000)).problem ?? '', /^cannot run "\/no\/such\/program": .*ENOENT/);
  });
});

// ---------------------------------------------------------------------------------------------
// The agent's robustness, against a small HTTP server the test controls (garbage, 5xx, 4xx, 409).

interface Seen {
  route: string;
  authorization: string | undefined;
  body: unknown;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A fake service: each route answers from its queue of handlers (the last one repeats). */
class FakeService {
  readonly seen: Seen[] = [];
  private readonly routes = new Map<string, Handler[]>();
  private server: Server | undefined;
  port = 0;

  on(route: 'running' | 'heartbeat' | 'halting', ...handlers: Handler[]): this {
    this.routes.set(route, handlers);
    return this;
  }

  async listen(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const route = /^\/api\/v1\/vms\/\d+\/(\w+)$/.exec(req.url ?? '')?.[1] ?? req.url ?? '';
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // keep as text
        }
        this.seen.push({ route, authorization: req.headers.authorization, body });
        const queue = this.routes.get(route);
        const handler = queue && queue.length > 1 ? queue.shift()! : queue?.[0];
        if (!handler) return json(404, { error: 'not_found', message: `no route ${route}` })(req, res, text);
        handler(req, res, text);
      });
    });
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close').catch(() => undefined);
    this.server = undefined;
  }

  routesSeen(): string[] {
    return this.seen.map((s) => s.route);
  }
}

const json =
  (status: number, body: unknown): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
const raw =
  (status: number, text: string, type = 'text/html'): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': type });
    res.end(text);
  };
/** Drops the connection without an answer. */
const hangUp: Handler = (req) => req.socket.destroy();
/** Never answers (the agent's request timeout must fire). */
const silent: Handler = () => undefined;

const RUNNING_OK = json(200, { status: 'Running' });
const OK = json(200, { directive: 'ok' });
const STOP = json(200, { directive: 'stop' });
const HALT = json(200, { directive: 'halt' });
const HALTED = json(200, { status: 'Halted' });

/** A free TCP port on 127.0.0.1 that nothing listens on (right now). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('VmAgent against a service it cannot trust', function () {
  this.timeout(20_000);
  let dir: string;
  let service: FakeService;
  let logs: string[];
  let controller: AbortController;
  let running: Promise<AgentOutcome> | undefined;

  beforeEach(async function () {
    dir = mkdtempSync(join(tmpdir(), 'vmdb-agent-'));
    service = await new FakeService().listen();
    logs = [];
    controller = new AbortController();
    running = undefined;
  });
  afterEach(async function () {
    controller.abort();
    await running;
    await service.close();
    rmSync(dir, { recursive: true, force: true });
    if (this.currentTest?.state === 'failed') console.log(logs.join('\n'));
  });

  const config = (over: Partial<AgentConfig> = {}): AgentConfig => ({
    apiUrl: `http://127.0.0.1:${service.port}`,
    instanceID: 42,
    token: TOKEN,
    periodSeconds: 0.1,
    stopFile: join(dir, 'run', 'stop'),
    haltCommand: markerCommand(join(dir, 'halted')),
    ...over,
  });
  const start = (over: Partial<AgentConfig> = {}, options: VmAgentOptions = {}) => {
    const agent = new VmAgent(config(over), { log: (line) => logs.push(line), backoff: { initialMs: 20, maxMs: 100 }, requestTimeoutMs: 2000, ...options });
    running = agent.run(controller.signal);
    return running;
  };
  const logged = (pattern: RegExp) => logs.some((line) => pattern.test(line));
  const heartbeats = () => service.seen.filter((s) => s.route === 'heartbeat');
  const noSecretInLogs = () => assert.ok(!logs.some((line) => line.includes(SECRET_PART)), 'the token never appears in the log');

  it('declares running with an empty body, then heartbeats its figures with the bearer token', async function () {
    service.on('running', RUNNING_OK).on('heartbeat', OK);
    const jobsFile = join(dir, 'jobs');
    writeFileSync(jobsFile, '3\n');
    start({ jobsCommand: catCommand(jobsFile), transferCommand: nodeCommand('console.log("5 12345")') });
    await waitFor('three heartbeats', () => heartbeats().length >= 3);
    controller.abort();
    assert.deepEqual(await running, { reason: 'aborted' });

    assert.deepEqual(service.seen[0], { route: 'running', authorization: `Bearer ${TOKEN}`, body: {} });
    const beat = heartbeats()[0];
    assert.equal(beat.authorization, `Bearer ${TOKEN}`);
    const figures = beat.body as Record<string, number>;
    assert.deepEqual(Object.keys(figures).sort(), ['bootId', 'jobs', 'load', 'seq', 'transferredBytes', 'transferredFiles', 'uptime']);
    assert.equal(figures.jobs, 3);
    const numbers = heartbeats().map((h) => h.body as { bootId: string; seq: number });
    assert.deepEqual(numbers.map((n) => n.seq).slice(0, 3), [1, 2, 3], 'each heartbeat numbered in turn');
    assert.equal(new Set(numbers.map((n) => n.bootId)).size, 1, 'one boot id for the run');
    assert.equal(figures.transferredFiles, 5);
    assert.equal(figures.transferredBytes, 12345);
    assert.ok(Number.isInteger(figures.uptime) && figures.uptime > 0);
    assert.ok(Number.isFinite(figures.load) && figures.load >= 0);
    assert.equal(service.routesSeen().filter((r) => r === 'running').length, 1, 'running is declared once');
    assert.ok(logged(/declared running: status Running/));
    assert.ok(logged(/heartbeat \(load=[\d.]+ jobs=3 files=5 bytes=12345 uptime=\d+\): ok/));
    assert.ok(logged(/stopped by signal/));
    noSecretInLogs();
  });

  it('retries with backoff through 503, 500, dropped connections and timeouts', async function () {
    service
      .on('running', json(503, { error: 'unavailable', message: 'Temporal unreachable' }), raw(500, '<html>oops</html>'), hangUp, silent, RUNNING_OK)
      .on('heartbeat', json(503, { error: 'unavailable', message: 'database unreachable' }), hangUp, OK);
    start({}, { requestTimeoutMs: 300 });
    await waitFor('a heartbeat answered ok', () => logged(/heartbeat \(.*\): ok/));
    assert.deepEqual(service.routesSeen().slice(0, 8), ['running', 'running', 'running', 'running', 'running', 'heartbeat', 'heartbeat', 'heartbeat']);
    assert.ok(logged(/running: HTTP 503 \(unavailable: Temporal unreachable\); retry 1 in/));
    assert.ok(logged(/running: HTTP 500 \(not JSON: "<html>oops<\/html>"\); retry 2 in/));
    assert.ok(logged(/running: .*(socket|other side closed|ECONNRESET).*; retry 3 in/i), logs.join('\n'));
    assert.ok(logged(/running: request timed out; retry 4 in/));
    assert.ok(logged(/heartbeat: HTTP 503 \(unavailable: database unreachable\); retry 1 in/));
    noSecretInLogs();
  });

  it('keeps retrying while the service is unreachable and carries on once it is up', async function () {
    await service.close();
    const port = await freePort();
    start({ apiUrl: `http://127.0.0.1:${port}` }, { backoff: { initialMs: 50, maxMs: 200 } });
    await waitFor('three failed attempts', () => logs.filter((l) => /running: .*ECONNREFUSED.*; retry \d+ in/.test(l)).length >= 3);
    service = await new FakeService().on('running', RUNNING_OK).on('heartbeat', OK).listen(port);
    await waitFor('a heartbeat', () => logged(/heartbeat \(.*\): ok/));
    assert.equal(service.seen[0].route, 'running');
  });

  it('a malformed reply never crashes it: HTML, wrong JSON, unknown directive, huge body, redirect', async function () {
    service
      .on('running', raw(200, '<html>captive portal</html>'))
      .on(
        'heartbeat',
        raw(200, '<html>captive portal</html>'),
        json(200, [1, 2, 3]),
        json(200, { directive: 'reboot' }),
        json(200, { directive: null }),
        raw(200, ''),
        raw(200, 'x'.repeat(200_000), 'application/json'),
        raw(200, '{"directive": "ok"', 'application/json'),
        (_req, res) => {
          res.writeHead(302, { location: 'https://elsewhere.example.org/login' });
          res.end();
        },
        OK,
      );
    start();
    await waitFor('a good heartbeat', () => logged(/heartbeat \(.*\): ok$/), 15_000);
    assert.ok(logged(/declared running \(HTTP 200, reply without a status: not JSON: "<html>captive portal<\/html>"\)/));
    assert.ok(logged(/malformed reply \(HTTP 200: not JSON: "<html>captive portal<\/html>"\); trying again next period/));
    assert.ok(logged(/malformed reply \(HTTP 200: \[1,2,3\]\)/));
    assert.ok(logged(/malformed reply \(HTTP 200: \{"directive":"reboot"\}\)/));
    assert.ok(logged(/malformed reply \(HTTP 200: empty body\)/));
    assert.ok(logged(/heartbeat: reply body larger than 65536 bytes; retry 1 in/), 'an oversized body is dropped and retried');
    assert.ok(logged(/malformed reply \(HTTP 200: not JSON: "\{\\"directive\\": \\"ok\\""\)/));
    assert.ok(logged(/rejected \(HTTP 302: redirected to https:\/\/elsewhere\.example\.org\/login; set the API URL to the final address\)/));
    assert.equal(service.routesSeen().filter((r) => r === 'running').length, 1, 'a 200 counts as declared, whatever its body');
  });

  it('a 4xx other than 409 is logged and tried again at the next period, not in a tight loop', async function () {
    service
      .on('running', json(401, { error: 'unauthorized', message: 'invalid token' }), json(404, { error: 'not_found', message: 'Unknown InstanceID 42' }), RUNNING_OK)
      .on('heartbeat', json(403, { error: 'forbidden', message: 'token of another instance' }), json(400, { error: 'bad_request', message: 'body/jobs must be integer' }), OK);
    const started = Date.now();
    start({ periodSeconds: 0.3 });
    await waitFor('a good heartbeat', () => logged(/heartbeat \(.*\): ok$/));
    assert.ok(Date.now() - started >= 2 * 300, 'one try per period');
    assert.ok(logged(/running rejected \(HTTP 401: unauthorized: invalid token\); trying again next period/));
    assert.ok(logged(/running rejected \(HTTP 404: not_found: Unknown InstanceID 42\)/));
    assert.ok(logged(/heartbeat \(.*\): rejected \(HTTP 403: forbidden: token of another instance\); trying again next period/));
    assert.ok(logged(/heartbeat \(.*\): rejected \(HTTP 400: bad_request: body\/jobs must be integer\)/));
    // A heartbeat is still sent in a period whose running was rejected: Submitted -> Running works by heartbeat too.
    assert.deepEqual(service.routesSeen().slice(0, 6), ['running', 'heartbeat', 'running', 'heartbeat', 'running', 'heartbeat']);
    assert.ok(!logged(/retry \d+ in/), 'no backoff retries for 4xx');
  });

  it('stop: writes the stop file, keeps heartbeating while jobs run, declares halting at 0 jobs and halts', async function () {
    const jobsFile = join(dir, 'jobs');
    writeFileSync(jobsFile, '2');
    service.on('running', RUNNING_OK).on('heartbeat', OK, STOP).on('halting', HALTED);
    start({ jobsCommand: catCommand(jobsFile) });
    const stopFile = join(dir, 'run', 'stop');
    await waitFor('the stop file', () => existsSync(stopFile));
    assert.match(readFileSync(stopFile, 'utf8'), /stop requested for instance 42/);
    await waitFor('two more heartbeats while draining', () => heartbeats().length >= 4);
    assert.ok(!service.routesSeen().includes('halting'), 'no halting while jobs run');
    assert.ok(!existsSync(join(dir, 'halted')));
    writeFileSync(jobsFile, '0\n');
    const outcome = await running;
    assert.equal(outcome?.reason, 'halted');
    assert.equal(outcome?.haltCommand?.ok, true);
    assert.equal(readFileSync(join(dir, 'halted'), 'utf8'), 'halted\n');
    const halting = service.seen.filter((s) => s.route === 'halting');
    assert.equal(halting.length, 1);
    assert.deepEqual(Object.keys(halting[0].body as object), ['load']);
    assert.equal(service.seen.at(-1)?.route, 'halting', 'no heartbeat once drained');
    for (const pattern of [/stop: the service answered stop; draining/, /wrote stop file/, /draining: waiting for 2 job\(s\) to finish/, /drained: no jobs left/, /declared halting \(load [\d.]+\): status Halted/, /halt command done; exiting/]) {
      assert.ok(logged(pattern), String(pattern));
    }
  });

  it('stop with no jobs command (0 jobs): halts straight away', async function () {
    service.on('running', RUNNING_OK).on('heartbeat', STOP).on('halting', HALTED);
    const outcome = await start();
    assert.equal(outcome.reason, 'halted');
    assert.deepEqual(service.routesSeen(), ['running', 'heartbeat', 'halting']);
    assert.ok(existsSync(join(dir, 'run', 'stop')));
  });

  it('a failing jobs command never counts as 0 jobs while draining', async function () {
    const jobsFile = join(dir, 'jobs');
    writeFileSync(jobsFile, '1');
    service.on('running', RUNNING_OK).on('heartbeat', STOP).on('halting', HALTED);
    start({ jobsCommand: catCommand(jobsFile) });
    await waitFor('draining', () => logged(/draining: waiting for 1 job/));
    writeFileSync(jobsFile, 'lots');
    await waitFor('two heartbeats with an unknown count', () => logs.filter((l) => /jobs command failed \(printed "lots", not a number of jobs\); reporting the last count, 1/.test(l)).length >= 2);
    rmSync(jobsFile);
    await waitFor('a missing file', () => logged(/jobs command failed \(exited with code 1: .*ENOENT/));
    assert.ok(!service.routesSeen().includes('halting'));
    assert.equal((heartbeats().at(-1)?.body as { jobs: number }).jobs, 1, 'the last good count is reported');
    writeFileSync(jobsFile, '0');
    assert.equal((await running)?.reason, 'halted');
  });

  it('halt: declares halting and runs the halt command at once, without a stop file', async function () {
    service.on('running', RUNNING_OK).on('heartbeat', OK, HALT).on('halting', HALTED);
    const outcome = await start();
    assert.equal(outcome.reason, 'halted');
    assert.deepEqual(service.routesSeen(), ['running', 'heartbeat', 'heartbeat', 'halting']);
    assert.ok(existsSync(join(dir, 'halted')));
    assert.ok(!existsSync(join(dir, 'run', 'stop')));
  });

  it('a 409 with state halt or stop is obeyed like the directive; other 409s wait for the next period', async function () {
    service
      .on('running', json(409, { error: 'conflict', message: 'Transition ( Contextualizing -> Running ) not allowed', state: 'Contextualizing' }), RUNNING_OK)
      .on('heartbeat', json(409, { error: 'conflict', message: 'No running life cycle for 42' }), json(409, { error: 'conflict', message: 'Transition ( Halted -> Running ) not allowed', state: 'halt' }))
      .on('halting', json(409, { error: 'conflict', message: 'Transition ( Halted -> Halted ) not allowed', state: 'halt' }));
    const outcome = await start();
    assert.equal(outcome.reason, 'halted');
    assert.deepEqual(service.routesSeen(), ['running', 'heartbeat', 'running', 'heartbeat', 'halting']);
    assert.ok(logged(/running refused \(409 conflict: Transition \( Contextualizing -> Running \) not allowed; state Contextualizing\); trying again next period/));
    assert.ok(logged(/heartbeat \(.*\): refused \(409 conflict: No running life cycle for 42\); trying again next period/));
    assert.ok(logged(/heartbeat \(.*\): refused \(409 .*\); state halt/));
    assert.ok(logged(/halting refused \(409 .*; state halt\); halting anyway/));
  });

  it('running refused with state stop: drains (stop file) before the first heartbeat', async function () {
    service
      .on('running', json(409, { error: 'conflict', message: 'Transition ( Stopping -> Running ) not allowed', state: 'stop' }))
      .on('heartbeat', STOP)
      .on('halting', HALTED);
    const outcome = await start();
    assert.equal(outcome.reason, 'halted');
    assert.deepEqual(service.routesSeen(), ['running', 'halting'], 'drained at once (no jobs command): no heartbeat needed');
    assert.ok(existsSync(join(dir, 'run', 'stop')));
  });

  it('told to halt while the service goes away: retries halting for a while, then halts anyway', async function () {
    service.on('running', RUNNING_OK).on('heartbeat', HALT).on('halting', json(503, { error: 'unavailable', message: 'database unreachable' }));
    const started = Date.now();
    const outcome = await start({}, { haltingRetryMs: 500, backoff: { initialMs: 50, maxMs: 100 } });
    assert.equal(outcome.reason, 'halted');
    assert.ok(Date.now() - started >= 400);
    assert.ok(service.seen.filter((s) => s.route === 'halting').length >= 3);
    assert.ok(logged(/halting not declared \(HTTP 503 \(unavailable: database unreachable\)\) after 0.5 s of retries; halting anyway/));
    assert.ok(existsSync(join(dir, 'halted')));
  });

  it('a halt command that fails is reported, not thrown', async function () {
    service.on('running', RUNNING_OK).on('heartbeat', HALT).on('halting', HALTED);
    const outcome = await start({ haltCommand: [join(dir, 'no-such-halt')] });
    assert.equal(outcome.reason, 'halted');
    assert.equal(outcome.haltCommand?.ok, false);
    assert.ok(logged(/halt command failed: cannot run .*no-such-halt.*ENOENT/));
  });

  it('an abort during backoff returns at once', async function () {
    service.on('running', json(503, { error: 'unavailable', message: 'down' }));
    start({}, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await waitFor('a retry', () => logged(/retry 1 in/));
    const t = Date.now();
    controller.abort();
    assert.deepEqual(await running, { reason: 'aborted' });
    assert.ok(Date.now() - t < 1000);
  });
});

describe('vmdb-agent executable', function () {
  this.timeout(20_000);

  it('starts with a shebang', function () {
    assert.match(readFileSync(MAIN_JS, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('a bad configuration exits 2 with every problem listed and no token', async function () {
    const child = spawn(process.execPath, [MAIN_JS], {
      env: { PATH: process.env.PATH, VMDB_API_URL: 'gopher://h', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_PERIOD: 'soon' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 2);
    assert.match(stderr, /vmdb-agent configuration is not usable/);
    assert.match(stderr, /VMDB_API_URL must be an http:\/\/ or https:\/\/ URL/);
    assert.match(stderr, /VMDB_AGENT_PERIOD must be a positive number of seconds, got "soon"/);
    assert.ok(!stderr.includes(SECRET_PART));
  });

  it('SIGTERM stops it cleanly (exit 0), even while the service is down', async function () {
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN_JS], {
      env: { PATH: process.env.PATH, VMDB_API_URL: `http://127.0.0.1:${port}`, VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_PERIOD: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    await waitFor('a retry', () => /running: .*ECONNREFUSED.*retry 1 in/.test(stdout));
    const t = Date.now();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0);
    assert.ok(Date.now() - t < 3000);
    assert.match(stdout, /received SIGTERM; stopping/);
    assert.match(stdout, /stopped by signal/);
    assert.ok(!stdout.includes(SECRET_PART));
  });

  it('runs the halt command and exits 0 when told to halt', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'vmdb-agent-main-'));
    const service = await new FakeService().on('running', RUNNING_OK).on('heartbeat', HALT).on('halting', HALTED).listen();
    try {
      const marker = join(dir, 'halted');
      const child = spawn(process.execPath, [MAIN_JS], {
        env: {
          PATH: process.env.PATH,
          VMDB_USER_DATA: JSON.stringify({ vmdb: { apiUrl: `http://127.0.0.1:${service.port}`, instanceID: 42, token: TOKEN } }),
          VMDB_AGENT_PERIOD: '1',
          VMDB_AGENT_HALT_COMMAND: JSON.stringify(markerCommand(marker)),
          VMDB_AGENT_STOP_FILE: join(dir, 'stop'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 0);
      assert.ok(existsSync(marker));
      assert.deepEqual(service.routesSeen(), ['running', 'heartbeat', 'halting']);
    } finally {
      await service.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The agent against the real service: API (Fastify) -> LifecycleClient -> Temporal dev server ->
// worker -> MariaDB, with the instance's VM a local-driver process.

describe('VmAgent against the real API [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let secret: string;
  const apps: FastifyInstance[] = [];
  let dir: string;
  let logs: string[];
  let controller: AbortController;
  let running: Promise<AgentOutcome> | undefined;

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
    secret = newSecret();
  });
  after(async function () {
    for (const app of apps) await app.close();
    await rig?.tearDown();
    await env?.teardown();
  });
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'vmdb-agent-api-'));
    logs = [];
    controller = new AbortController();
    running = undefined;
  });
  afterEach(async function () {
    controller.abort();
    await running;
    rmSync(dir, { recursive: true, force: true });
    if (this.currentTest?.state === 'failed') console.log(logs.join('\n'));
  });

  /** A fresh API over the rig's database and lifecycle client, listening on `port` (0: any). */
  async function startApi(port = 0): Promise<number> {
    const app = await buildApi({ db: rig.db, lifecycle: rig.lifecycle, temporal: env.client, operators: [], tokenSecret: secret, logger: false });
    apps.push(app);
    await app.listen({ port, host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }

  /** A launched instance that has reached Submitted, with its VM token. */
  async function submittedInstance() {
    const launched = await rig.launch();
    await rig.waitForStatus(launched.instanceID, 'Submitted');
    return { ...launched, token: await vmTokenOf(rig.db, secret, launched.instanceID) };
  }

  function startAgent(config: AgentConfig, options: VmAgentOptions = {}): Promise<AgentOutcome> {
    const agent = new VmAgent(config, { log: (line) => logs.push(line), ...options });
    running = agent.run(controller.signal);
    return running;
  }

  const logged = (pattern: RegExp) => logs.filter((line) => pattern.test(line)).length;

  async function waitForDb(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('declares Running, heartbeats into the history, drains on an operator stop and halts: the workflow completes', async function () {
    const port = await startApi();
    const { instanceID, handle, token } = await submittedInstance();
    const jobsFile = join(dir, 'jobs');
    const stopFile = join(dir, 'run', 'vmdb', 'stop');
    const marker = join(dir, 'halted');
    writeFileSync(jobsFile, '2\n');
    startAgent({
      apiUrl: `http://127.0.0.1:${port}`,
      instanceID,
      token,
      periodSeconds: 1,
      jobsCommand: catCommand(jobsFile),
      transferCommand: nodeCommand('console.log("7 70000")'),
      stopFile,
      haltCommand: markerCommand(marker),
    });

    await rig.waitForStatus(instanceID, 'Running');
    assert.equal(ok(await rig.db.getInstanceParameter('PublicIP', instanceID)), '127.0.0.1', 'the API took the remote address');
    await waitForDb('three Running history rows', async () => (await rig.history(instanceID)).filter((s) => s === 'Running').length >= 3);
    assert.equal(ok(await rig.db.getInstanceParameter('Jobs', instanceID)), 2);
    const history = ok(await rig.db.getHistoryForInstanceID(instanceID));
    const jobsColumn = history.ParameterNames.indexOf('Jobs');
    assert.ok(jobsColumn >= 0);
    assert.ok(history.Records.some((r) => r[0] === 'Running' && r[jobsColumn] === 2), 'heartbeat figures are in the history');
    assert.ok(logged(/declared running: status Running/) === 1);
    // The rows are committed before the answers reach the agent: wait for it to have logged two of them.
    await waitForDb('two heartbeats answered ok in the agent log', async () => logged(/heartbeat \(load=[\d.]+ jobs=2 files=7 bytes=70000 uptime=\d+\): ok/) >= 2);

    // The operator stops it: the next heartbeat is answered stop, the VM drains while jobs run.
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    await waitForDb('the stop file', async () => existsSync(stopFile));
    const stopsBefore = logged(/heartbeat \(.*\): stop/);
    await waitForDb('another heartbeat while draining', async () => logged(/heartbeat \(.*\): stop/) > stopsBefore);
    assert.equal(await rig.status(instanceID), 'Stopping', 'still draining: 2 jobs');
    assert.ok(!existsSync(marker), 'not halted while jobs run');

    writeFileSync(jobsFile, '0\n');
    const outcome = await running!;
    assert.equal(outcome.reason, 'halted');
    assert.equal(outcome.haltCommand?.ok, true);
    assert.equal(readFileSync(marker, 'utf8'), 'halted\n', 'the halt command ran');
    assert.equal(logged(/declared halting \(load [\d.]+\): status Halted/), 1);
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.equal(await rig.status(instanceID), 'Halted');
    const states = await rig.history(instanceID);
    assert.deepEqual(states.slice(0, 3), ['New', 'Submitted', 'Running']);
    assert.deepEqual(states.slice(-2), ['Stopping', 'Halted']);
    assert.ok(states.slice(2, -2).every((s) => s === 'Running'));
    assert.equal((await rig.drivers.get(ENDPOINT)!.getInstanceStatus(final.uniqueID)).status, 'stopped', 'the VM was stopped at its endpoint');
    assert.ok(!logs.some((line) => line.includes(token)), 'the token never appears in the log');
  });

  it('the API down at start: the agent retries with backoff and declares Running once it is up', async function () {
    const port = await freePort();
    const { instanceID, handle, token } = await submittedInstance();
    startAgent(
      { apiUrl: `http://127.0.0.1:${port}`, instanceID, token, periodSeconds: 1, stopFile: join(dir, 'stop'), haltCommand: markerCommand(join(dir, 'halted')) },
      { backoff: { initialMs: 200, maxMs: 1000 } },
    );
    await waitForDb('three refused attempts', async () => logged(/running: .*ECONNREFUSED.*; retry \d+ in/) >= 3);
    assert.equal(await rig.status(instanceID), 'Submitted');
    await startApi(port);
    await rig.waitForStatus(instanceID, 'Running');
    await waitForDb('a heartbeat', async () => logged(/heartbeat \(.*\): ok/) >= 1);
    assert.equal(logged(/declared running: status Running/), 1);

    // Clean up through the agent: stop, no jobs command (0 jobs), so it halts at the next heartbeat.
    assert.deepEqual(await rig.lifecycle.stop(instanceID), { OK: true, Value: 'Stopping' });
    assert.equal((await running!).reason, 'halted');
    assert.equal((await handle.result()).status, 'Halted');
  });

  it('an instance put in Error is told to halt; the agent halts although halting is refused', async function () {
    const port = await startApi();
    const { instanceID, handle, token } = await submittedInstance();
    const marker = join(dir, 'halted');
    startAgent({ apiUrl: `http://127.0.0.1:${port}`, instanceID, token, periodSeconds: 1, stopFile: join(dir, 'stop'), haltCommand: markerCommand(marker) });
    await rig.waitForStatus(instanceID, 'Running');
    ok(await rig.db.declareInstanceError(instanceID, 'broken image'));
    const outcome = await running!;
    assert.equal(outcome.reason, 'halted');
    assert.ok(existsSync(marker));
    // Answered halt from the record, or (once Error is committed before the request) its token refused with state halt.
    assert.equal(logged(/heartbeat \(.*\): (halt|refused \(409 ended: .*\); state halt)$/), 1);
    // The facade refuses Error -> Halted without a State; whatever the API makes of that, the VM halts.
    assert.equal(logged(/halting (refused|rejected) \(.*\); halting anyway/), 1);
    assert.equal((await handle.result()).status, 'Error');
    assert.ok(!existsSync(join(dir, 'stop')), 'halt is not a drain: no stop file');
  });

  it('with the token of another instance: 403 logged every period, never a crash', async function () {
    const port = await startApi();
    const { instanceID, handle } = await submittedInstance();
    const otherID = ok(await rig.db.insertInstance('', 'test-image', `other-of-${instanceID}`, ENDPOINT, 'testvo'));
    const other = await vmTokenOf(rig.db, secret, otherID);
    startAgent({ apiUrl: `http://127.0.0.1:${port}`, instanceID, token: other, periodSeconds: 0.5, stopFile: join(dir, 'stop'), haltCommand: markerCommand(join(dir, 'halted')) });
    await waitForDb('two periods of 403s', async () => logged(/heartbeat \(.*\): rejected \(HTTP 403/) >= 2);
    assert.ok(logged(/running rejected \(HTTP 403/) >= 2);
    assert.equal(await rig.status(instanceID), 'Submitted');
    controller.abort();
    assert.equal((await running!).reason, 'aborted');
    await handle.terminate('test done');
  });
});
