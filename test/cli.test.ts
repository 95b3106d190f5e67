import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/server';
import { hashToken, newSecret } from '../src/auth/tokens';
import { BACKENDS, MYSQL_SERVER_URL, ok } from './support/backends';
import { ENDPOINT, LifecycleRig } from './support/lifecycle-rig';
import { type ChildRun, runNode } from './support/processes';
import { startDevServer } from './support/temporal';

const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');

export type CliRun = ChildRun;

/** Runs the built CLI as a child process (asynchronously: the test's own HTTP server must keep answering). */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.VMDB_API_URL;
  delete childEnv.VMDB_TOKEN;
  delete childEnv.VMDB_DEBUG;
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete childEnv[key];
    else childEnv[key] = value;
  }
  return runNode(CLI, args, childEnv);
}

/** No stack trace ever reaches the user. */
export function assertNoStack(run: CliRun): void {
  assert.doesNotMatch(run.stderr, /^\s+at /m, `stack trace in stderr:\n${run.stderr}`);
  assert.doesNotMatch(run.stdout, /^\s+at /m, `stack trace in stdout:\n${run.stdout}`);
}

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization?: string;
  body: unknown;
}

type Reply = { status: number; body?: unknown; raw?: string } | 'hang';

/**
 * A tiny server that answers as docs/http-api.md says, from canned replies:
 * the CLI's formatting, arguments and exit codes are tested against it.
 */
class CannedApi {
  readonly seen: Seen[] = [];
  readonly routes = new Map<string, (req: Seen) => Reply>();
  private server!: Server;
  private hanging: ServerResponse[] = [];
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  on(method: string, path: string, reply: Reply | ((req: Seen) => Reply)): void {
    this.routes.set(`${method} ${path}`, typeof reply === 'function' ? reply : () => reply);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    const url = new URL(req.url ?? '/', 'http://x');
    const seen: Seen = { method: req.method ?? '', path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, body: text ? JSON.parse(text) : undefined };
    this.seen.push(seen);
    const token = /^Bearer (.*)$/.exec(req.headers.authorization ?? '')?.[1];
    let reply: Reply;
    if (!['good-token', 'read-token'].includes(token ?? '')) reply = { status: 401, body: { error: 'unauthorized', message: 'missing or invalid token' } };
    else if (token === 'read-token' && req.method === 'POST') reply = { status: 403, body: { error: 'forbidden', message: 'role operate needed' } };
    else reply = this.routes.get(`${req.method} ${url.pathname}`)?.(seen) ?? { status: 404, body: { error: 'not_found', message: `no route ${url.pathname}` } };
    if (reply === 'hang') {
      this.hanging.push(res);
      return;
    }
    res.writeHead(reply.status, { 'content-type': reply.raw === undefined ? 'application/json' : 'text/html' });
    res.end(reply.raw ?? JSON.stringify(reply.body));
  }
}

const INSTANCES = {
  ParameterNames: [
    'inst.InstanceID', 'inst.Name', 'inst.UniqueID', 'inst.Endpoint', 'inst.RunningPod', 'inst.VMImageID', 'inst.Status', 'inst.PublicIP',
    'inst.PrivateIP', 'inst.ErrorMessage', 'inst.LastUpdate', 'inst.Load', 'inst.Uptime', 'inst.Jobs', 'img.Name', 'img.Status',
  ],
  Records: [
    [7, 'vm-aaaa', 'u-7', 'CERN::openstack', 'lhcb', 1, 'Running', '192.0.2.7', '10.0.0.7', '', '2024-05-01T12:00:00.000Z', 0.25, 600, 3, 'CernVM4', 'Validated'],
    [12, 'vm-long-name-12', 'u-12', 'Local::localhost', 'testvo', 1, 'Stalled', '', '', 'no news\u001b[31m', '2024-05-01T12:30:05.000Z', 1.5, 60, 12, 'CernVM4', 'Validated'],
  ],
  TotalRecords: 5,
};

describe('vmdb CLI against a canned API', function () {
  this.timeout(20_000);
  const api = new CannedApi();
  let env: Record<string, string>;

  before(async function () {
    await api.start();
    env = { VMDB_API_URL: api.url, VMDB_TOKEN: 'good-token' };
  });
  after(async function () {
    await api.stop();
  });
  beforeEach(function () {
    api.seen.length = 0;
    api.routes.clear();
  });

  describe('usage errors exit 2 with a clear message, before any request', function () {
    const cases: [string[], RegExp][] = [
      [['show', 'abc'], /"abc" is not an instance ID/],
      [['show', '0'], /"0" is not an instance ID/],
      [['history', '12x'], /"12x" is not an instance ID/],
      [['stop', '1', 'x', '-3'], /not an instance ID \(a positive integer\): "x", "-3"/],
      [['stop'], /missing required argument 'instanceID'/],
      [['instances', '--sort', 'Status:UP'], /unknown sort direction "UP"/],
      [['instances', '--sort', 'Nope:ASC'], /unknown sort field "Nope"/],
      [['instances', '--limit', 'ten'], /"ten" is not a whole number/],
      [['instances', '--limit', '0'], /must be 1 or more/],
      [['instances', '--status', 'Runing'], /unknown instance status "Runing"/],
      [['instances', '--filter', 'nothing'], /"nothing" is not Column=Value/],
      [['counters', '--by', 'Color'], /unknown column "Color"/],
      [['instances', '--bogus'], /unknown option '--bogus'/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['show', '1', '2'], /too many arguments/],
      [['audit', '--instance', 'x'], /"x" is not an instance ID/],
      [['audit', '--limit', '1001'], /"1001" is more than 1000/],
      [['audit', '--action', 'reboot'], /unknown action "reboot"/],
      [['audit', '--since', 'yesterday'], /"yesterday" is not a day/],
      [['--timeout', '-1', 'images'], /not a number of seconds/],
      [['--api-url', 'not a url', 'images'], /API url "not a url" is not a valid url/],
      [['--api-url', 'ftp://example.org', 'images'], /must start with http/],
      [[], /Usage: vmdb/],
    ];
    for (const [args, message] of cases) {
      it(`vmdb ${args.join(' ')}`, async function () {
        const run = await runCli(args, env);
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, message);
        assertNoStack(run);
        assert.equal(api.seen.length, 0, 'nothing was sent');
      });
    }

    it('--help and --version exit 0', async function () {
      const help = await runCli(['stop', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Usage: vmdb stop \[options\] <instanceID\.\.\.>/);
      const top = await runCli(['--help']);
      assert.match(top.stdout, /Exit codes:/);
      const version = await runCli(['--version']);
      assert.equal(version.code, 0);
      assert.match(version.stdout, /^\d+\.\d+\.\d+/);
    });
  });

  describe('reads', function () {
    it('instances: filters, sort and paging go into the query; the table is aligned', async function () {
      api.on('GET', '/api/v1/instances', { status: 200, body: INSTANCES });
      const run = await runCli(
        ['instances', '--status', 'running,Stalled', '--endpoint', 'CERN::openstack', '--image', 'CernVM4', '--pod', 'lhcb', '--filter', 'publicip=192.0.2.7',
          '--sort', 'lastupdate:desc,inst.InstanceID', '--start', '2', '--limit', '2'],
        env,
      );
      assert.equal(run.code, 0, run.stderr);
      const [req] = api.seen;
      assert.equal(req.authorization, 'Bearer good-token');
      assert.deepEqual(Object.fromEntries(req.query), {
        Status: 'Running,Stalled',
        Endpoint: 'CERN::openstack',
        'img.Name': 'CernVM4',
        RunningPod: 'lhcb',
        PublicIP: '192.0.2.7',
        sort: 'LastUpdate:DESC,inst.InstanceID:ASC',
        start: '2',
        limit: '2',
      });
      const lines = run.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^\s*ID {2}NAME +STATUS +ENDPOINT +POD +IMAGE +PUBLIC IP +LOAD +JOBS +LAST UPDATE \(UTC\)$/);
      assert.match(lines[1], /^ {1}7 {2}vm-aaaa +Running +CERN::openstack +lhcb +CernVM4 +192\.0\.2\.7 +0\.25 +3 {2}2024-05-01 12:00:00$/);
      assert.match(lines[2], /^12 {2}vm-long-name-12 +Stalled +Local::localhost +testvo +CernVM4 +- +1\.5 +12 {2}2024-05-01 12:30:05$/);
      // Columns line up: STATUS starts at the same offset on every line.
      const at = lines[0].indexOf('STATUS');
      assert.equal(lines[1].indexOf('Running'), at);
      assert.equal(lines[2].indexOf('Stalled'), at);
      assert.equal(lines[3], '3-4 of 5 instances');
    });

    it('instances --json prints the API reply as it came; --wide shows every column, control characters escaped', async function () {
      api.on('GET', '/api/v1/instances', { status: 200, body: INSTANCES });
      const run = await runCli(['instances', '--json'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), INSTANCES);
      const wide = await runCli(['instances', '--wide'], env);
      assert.match(wide.stdout.split('\n')[0], /INST\.ERRORMESSAGE/);
      assert.match(wide.stdout, /no news\\x1b\[31m/);
      assert.doesNotMatch(wide.stdout, /\u001b/);
    });

    it('instances: an empty fleet', async function () {
      api.on('GET', '/api/v1/instances', { status: 200, body: { ...INSTANCES, Records: [], TotalRecords: 0 } });
      const run = await runCli(['instances'], env);
      assert.equal(run.code, 0);
      assert.equal(run.stdout, 'no instances\n');
    });

    it('show: the instance and its image; an unknown instance exits 1 with the API message', async function () {
      const reply = {
        Instance: { InstanceID: 7, Name: 'vm-aaaa', Status: 'Running', Endpoint: 'CERN::openstack', LastUpdate: '2024-05-01T12:00:00.000Z', MaxAllowedPrice: null },
        Image: { VMImageID: 1, Name: 'CernVM4', Status: 'Validated' },
      };
      api.on('GET', '/api/v1/instances/7', { status: 200, body: reply });
      api.on('GET', '/api/v1/instances/8', { status: 404, body: { error: 'not_found', message: 'Unknown InstanceID = 8' } });
      const run = await runCli(['show', '7'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^Instance 7\n {2}InstanceID +7\n {2}Name +vm-aaaa\n/);
      assert.match(run.stdout, /LastUpdate +2024-05-01 12:00:00\n/);
      assert.match(run.stdout, /MaxAllowedPrice +-\n/);
      assert.match(run.stdout, /\nImage\n {2}VMImageID +1\n {2}Name +CernVM4\n {2}Status +Validated\n$/);
      assert.deepEqual(JSON.parse((await runCli(['show', '7', '--json'], env)).stdout), reply);
      const missing = await runCli(['show', '8'], env);
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr, 'error: Unknown InstanceID = 8\n');
      assert.equal(missing.stdout, '');
    });

    it('history, counters, images', async function () {
      api.on('GET', '/api/v1/instances/7/history', {
        status: 200,
        body: { ParameterNames: ['Status', 'Load', 'Update', 'Jobs', 'TransferredFiles', 'TransferredBytes'], Records: [['New', 0, '2024-05-01T11:00:00.000Z', 0, 0, 0], ['Running', 0.5, '2024-05-01T11:05:00.000Z', 2, 4, 4096]] },
      });
      api.on('GET', '/api/v1/instances/counters', (req) => ({ status: 200, body: req.query.get('groupBy') === 'Endpoint' ? { 'CERN::openstack': 3, 'Local::localhost': 2 } : { Running: 4, Halted: 1 } }));
      api.on('GET', '/api/v1/images', { status: 200, body: { ParameterNames: ['VMImageID', 'Name', 'Status', 'LastUpdate', 'ErrorMessage'], Records: [[1, 'CernVM4', 'Validated', '2024-05-01T10:00:00.000Z', '']] } });

      const history = await runCli(['history', '7'], env);
      assert.equal(history.code, 0, history.stderr);
      assert.deepEqual(history.stdout.split('\n').slice(0, 3), [
        'STATUS   LOAD  UPDATE (UTC)         JOBS  TRANSFERREDFILES  TRANSFERREDBYTES',
        'New         0  2024-05-01 11:00:00     0                 0                 0',
        'Running   0.5  2024-05-01 11:05:00     2                 4              4096',
      ]);

      const counters = await runCli(['counters', '--by', 'endpoint', '--status', 'Running'], env);
      assert.equal(counters.code, 0, counters.stderr);
      const req = api.seen.find((s) => s.path === '/api/v1/instances/counters')!;
      assert.equal(req.query.get('groupBy'), 'Endpoint');
      assert.equal(req.query.get('Status'), 'Running');
      assert.deepEqual(counters.stdout.split('\n'), ['ENDPOINT          COUNT', 'CERN::openstack       3', 'Local::localhost      2', 'total                 5', '']);
      assert.deepEqual(JSON.parse((await runCli(['counters', '--json'], env)).stdout), { Running: 4, Halted: 1 });

      const images = await runCli(['images'], env);
      assert.equal(images.code, 0, images.stderr);
      assert.deepEqual(images.stdout.split('\n'), ['ID  NAME     STATUS     LAST UPDATE (UTC)    ERROR', ' 1  CernVM4  Validated  2024-05-01 10:00:00  -', '']);
    });

    it('director: schedules, and --trigger posts', async function () {
      api.on('GET', '/api/v1/director', {
        status: 200,
        body: { schedules: [{ id: 'vmdb-director', paused: false, intervalSeconds: 60, lastRun: '2024-05-01T12:00:00.000Z', nextRun: '2024-05-01T12:01:00.000Z' }, { id: 'vmdb-stalled-sweep', paused: true, intervalSeconds: 900 }, { id: 'vmdb-other', absent: true }] },
      });
      api.on('POST', '/api/v1/director/trigger', { status: 200, body: { triggered: true } });
      const run = await runCli(['director'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        /^SCHEDULE +STATE +EVERY \(S\) +LAST RUN \(UTC\) +NEXT RUN \(UTC\)\nvmdb-director +active +60 +2024-05-01 12:00:00 +2024-05-01 12:01:00\nvmdb-stalled-sweep +paused +900 +- +-\nvmdb-other +absent +- +- +-\nabsent Schedules are created by the worker/,
      );
      const trigger = await runCli(['director', '--trigger', '--json'], env);
      assert.equal(trigger.code, 0, trigger.stderr);
      assert.deepEqual(JSON.parse(trigger.stdout), { triggered: true });
      assert.equal(api.seen.at(-1)!.method, 'POST');
      assert.equal(api.seen.at(-1)!.path, '/api/v1/director/trigger');
    });
  });

  describe('audit', function () {
    const entries = [
      { id: 12, at: '2026-05-01T12:05:00.000Z', operator: 'alice', role: 'operate', action: 'instance.stop', target: 'instance:7', instanceID: 7, detail: 'now Stopping', outcome: 'succeeded', httpStatus: 200, error: '', message: '' },
      { id: 11, at: '2026-05-01T12:00:00.000Z', operator: 'bob', role: 'read', action: 'instance.stop', target: 'instances', instanceID: null, detail: '', outcome: 'failed', httpStatus: 403, error: 'forbidden', message: 'Role read may not do this; it needs operate' },
    ];

    it('the filters and the limit go into the query; a table newest first, failures with status, code and message; the next page', async function () {
      api.on('GET', '/api/v1/audit', { status: 200, body: { entries, next: 11 } });
      const run = await runCli(['audit', '--instance', '7', '--operator', 'alice', '--action', 'instance.stop', '--since', '2026-05-01', '--limit', '2'], env);
      assert.equal(run.code, 0, run.stderr);
      const query = Object.fromEntries(api.seen[0].query);
      assert.deepEqual(query, { instanceID: '7', operator: 'alice', action: 'instance.stop', since: '2026-05-01', limit: '2' });
      assert.deepEqual(run.stdout.split('\n'), [
        'ID  WHEN (UTC)           OPERATOR  ACTION         TARGET      OUTCOME               DETAIL',
        '12  2026-05-01 12:05:00  alice     instance.stop  instance:7  ok                    now Stopping',
        '11  2026-05-01 12:00:00  bob       instance.stop  instances   failed 403 forbidden  Role read may not do this; it needs operate',
        'more: --before 11',
        '',
      ]);
      const json = await runCli(['audit', '--before', '11', '--json'], env);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(api.seen[1].query.get('before'), '11');
      assert.deepEqual(JSON.parse(json.stdout), { entries, next: 11 });
    });

    it('nothing recorded', async function () {
      api.on('GET', '/api/v1/audit', { status: 200, body: { entries: [], next: null } });
      const run = await runCli(['audit'], env);
      assert.deepEqual([run.code, run.stdout], [0, 'no operator actions recorded\n']);
      assert.equal(api.seen[0].query.toString(), '');
    });
  });

  describe('stop', function () {
    it('all stopped: exit 0, one line per id, ids de-duplicated', async function () {
      api.on('POST', '/api/v1/instances/stop', { status: 200, body: { results: { '7': { OK: true, Value: 'Stopping' }, '9': { OK: true, Value: 'Halted' } } } });
      const run = await runCli(['stop', '7', '9', '7'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(api.seen[0].body, { instanceIDs: [7, 9] });
      assert.deepEqual(run.stdout.split('\n'), ['INSTANCE  RESULT  DETAIL', '       7  ok      Stopping', '       9  ok      Halted', '']);
      assert.equal(run.stderr, '');
    });

    it('one refused: exit 1, the refusal with its State, a summary on stderr; --json still parses', async function () {
      const body = {
        results: {
          '7': { OK: true, Value: 'Stopping' },
          '8': { OK: false, Message: 'Transition ( Submitted -> Stopping ) not allowed', State: 'Submitted' },
          '999999': { OK: false, Message: 'Unknown InstanceID = 999999' },
        },
      };
      api.on('POST', '/api/v1/instances/stop', { status: 200, body });
      const run = await runCli(['stop', '7', '8', '999999'], env);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /^ {7}8 {2}refused +Transition \( Submitted -> Stopping \) not allowed \(state: Submitted\)$/m);
      assert.match(run.stdout, /^ {2}999999 {2}refused +Unknown InstanceID = 999999$/m);
      assert.equal(run.stderr, 'error: 2 of 3 instances not stopped\n');
      const json = await runCli(['stop', '7', '8', '999999', '--json'], env);
      assert.equal(json.code, 1);
      assert.deepEqual(JSON.parse(json.stdout), body);
    });

    it('an id missing from the reply counts as not stopped', async function () {
      api.on('POST', '/api/v1/instances/stop', { status: 200, body: { results: {} } });
      const run = await runCli(['stop', '5'], env);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /no result from the API/);
    });

    it('a 4xx for the whole request exits 1 with its message', async function () {
      api.on('POST', '/api/v1/instances/stop', { status: 400, body: { error: 'bad_request', message: 'body/instanceIDs must have at most 1000 items' } });
      const run = await runCli(['stop', '5'], env);
      assert.equal(run.code, 1);
      assert.equal(run.stderr, 'error: body/instanceIDs must have at most 1000 items\n');
    });
  });

  describe('cannot reach or not allowed: exit 3', function () {
    it('a wrong token: 401 → "authentication failed"', async function () {
      const run = await runCli(['instances'], { ...env, VMDB_TOKEN: 'wrong' });
      assert.equal(run.code, 3);
      assert.equal(run.stderr, 'error: authentication failed: missing or invalid token\n');
      assertNoStack(run);
    });

    it('no token at all: 401 with a hint', async function () {
      const run = await runCli(['images'], { VMDB_API_URL: api.url });
      assert.equal(run.code, 3);
      assert.match(run.stderr, /authentication failed: .*set VMDB_TOKEN or use --token/);
      assert.equal(api.seen[0].authorization, undefined);
    });

    it('--token and --api-url override the environment', async function () {
      api.on('GET', '/api/v1/images', { status: 200, body: { ParameterNames: [], Records: [] } });
      const run = await runCli(['images', '--token', 'good-token', '--api-url', `${api.url}/`], { VMDB_API_URL: 'http://127.0.0.1:9', VMDB_TOKEN: 'wrong' });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'no images\n');
    });

    it('a role too weak: 403 → exit 3', async function () {
      const run = await runCli(['stop', '7'], { ...env, VMDB_TOKEN: 'read-token' });
      assert.equal(run.code, 3);
      assert.equal(run.stderr, 'error: authentication failed: role operate needed\n');
    });

    it('nothing listening', async function () {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const run = await runCli(['instances', '--json'], { ...env, VMDB_API_URL: `http://127.0.0.1:${port}` });
      assert.equal(run.code, 3);
      assert.match(run.stderr, new RegExp(`^error: cannot reach the API at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      assert.equal(run.stdout, '');
      assertNoStack(run);
    });

    it('no answer in time', async function () {
      api.on('GET', '/api/v1/images', 'hang');
      const run = await runCli(['--timeout', '0.5', 'images'], env);
      assert.equal(run.code, 3);
      assert.match(run.stderr, /no answer from the API at .* within 0\.5 s/);
    });

    it('503 (database or Temporal down) → exit 3', async function () {
      api.on('GET', '/api/v1/director', { status: 503, body: { error: 'unavailable', message: 'Temporal unreachable' } });
      const run = await runCli(['director'], env);
      assert.equal(run.code, 3);
      assert.match(run.stderr, /is unavailable: Temporal unreachable/);
    });

    it('something that is not the API: exit 1', async function () {
      api.on('GET', '/api/v1/images', { status: 200, raw: '<html>hello</html>' });
      const run = await runCli(['images'], env);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /not JSON/);
    });
  });
});

describe('vmdb migrate', function () {
  this.timeout(60_000);
  for (const backend of BACKENDS) {
    it(`applies the migrations once, then reports up to date [${backend.name}]`, async function () {
      const url = await backend.createDatabase();
      try {
        const first = await runCli(['migrate', '--json'], { VMDB_DATABASE_URL: url });
        assert.equal(first.code, 0, first.stderr);
        const report = JSON.parse(first.stdout);
        assert.deepEqual(report.applied, ['InitialSchema1732838400000', 'LookupIndexes1732838500000', 'FleetQueryIndexes1732838600000', 'FleetSafety1764460800000', 'InstanceLife1765000000000', 'ElasticFleet1765100000000', 'AuditTrail1765200000000']);
        assert.deepEqual(report.migrations, report.applied);
        assert.doesNotMatch(report.database, /secret/);
        const second = await runCli(['migrate'], { VMDB_DATABASE_URL: url });
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stdout, new RegExp(`already up to date \\(${report.applied.length} migrations\\)`));
      } finally {
        await backend.dropAll();
      }
    });
  }

  it('a database that cannot be opened: exit 1, one line, password masked', async function () {
    const run = await runCli(['migrate'], { VMDB_DATABASE_URL: 'mysql://vmdb:secret@127.0.0.1:1/vmdb' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: Cannot open mysql:\/\/vmdb:\*\*\*@127\.0\.0\.1:1\/vmdb: .*\n$/);
    assert.doesNotMatch(run.stderr, /secret/);
    assertNoStack(run);
  });

  it('a bad setting: exit 2', async function () {
    const run = await runCli(['migrate'], { VMDB_STALLING_INTERVAL: 'soon' });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /VMDB_STALLING_INTERVAL must be a positive integer/);
  });
});

// The CLI against the real API: a Temporal dev server, MariaDB, the worker (LifecycleRig) and buildApi.
describe('vmdb CLI against the real API [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  let cli: Record<string, string>;
  const operatorToken = randomBytes(24).toString('base64url');
  const readerToken = randomBytes(24).toString('base64url');
  const tokenSecret = newSecret();
  const beat = { load: 0.5, jobs: 2, transferredFiles: 1, transferredBytes: 100, uptime: 60 };

  before(async function () {
    env = await startDevServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
    app = await buildApi({
      db: rig.db,
      lifecycle: rig.lifecycle,
      temporal: env.client,
      operators: [
        { name: 'ops', role: 'operate', sha256: hashToken(operatorToken) },
        { name: 'viewer', role: 'read', sha256: hashToken(readerToken) },
      ],
      tokenSecret,
      logger: false,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cli = { VMDB_API_URL: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, VMDB_TOKEN: operatorToken };
  });
  after(async function () {
    await app?.close();
    await rig?.tearDown();
    await env?.teardown();
  });

  /** A launched instance that heartbeats its way to Running. */
  async function runningInstance(): Promise<{ instanceID: number; uniqueID: string; handle: Awaited<ReturnType<LifecycleRig['launch']>>['handle'] }> {
    const { instanceID, handle } = await rig.launch();
    await rig.waitForStatus(instanceID, 'Submitted');
    const uniqueID = await rig.uniqueID(instanceID);
    assert.deepEqual(await rig.heartbeat(uniqueID, beat), { OK: true, Value: 'ok' });
    assert.equal(await rig.status(instanceID), 'Running');
    return { instanceID, uniqueID, handle };
  }

  it('instances, show, history, counters, images see a Running instance; stop makes it Stopping; unknown id exit 1; bad tokens exit 3', async function () {
    const { instanceID, uniqueID, handle } = await runningInstance();

    const list = await runCli(['instances', '--json', '--status', 'Running', '--sort', 'InstanceID:DESC'], cli);
    assert.equal(list.code, 0, list.stderr);
    const content = JSON.parse(list.stdout) as { ParameterNames: string[]; Records: unknown[][]; TotalRecords: number };
    const col = (name: string) => content.ParameterNames.indexOf(name);
    const mine = content.Records.find((r) => r[col('inst.InstanceID')] === instanceID);
    assert.ok(mine, `instance ${instanceID} is listed: ${list.stdout}`);
    assert.equal(mine[col('inst.Status')], 'Running');
    assert.equal(mine[col('img.Name')], 'test-image');
    assert.equal(mine[col('inst.UniqueID')], uniqueID);

    const people = await runCli(['instances', '--endpoint', 'Local::testcloud', '--image', 'test-image'], cli);
    assert.equal(people.code, 0, people.stderr);
    assert.match(people.stdout, new RegExp(`^ *${instanceID}  vm-\\w+ +Running +Local::testcloud +testvo +test-image `, 'm'));

    const show = await runCli(['show', String(instanceID)], cli);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^Instance ${instanceID}\n`));
    assert.match(show.stdout, /^ {2}Status +Running$/m);
    assert.match(show.stdout, new RegExp(`^ {2}UniqueID +${uniqueID}$`, 'm'));
    assert.match(show.stdout, /\nImage\n(.*\n)* {2}Name +test-image\n/);
    const shown = JSON.parse((await runCli(['show', String(instanceID), '--json'], cli)).stdout);
    assert.equal(shown.Instance.InstanceID, instanceID);
    assert.equal(shown.Image.Name, 'test-image');

    const history = await runCli(['history', String(instanceID), '--json'], cli);
    assert.equal(history.code, 0, history.stderr);
    assert.deepEqual((JSON.parse(history.stdout).Records as unknown[][]).map((r) => r[0]), ['New', 'Submitted', 'Running']);

    const counters = await runCli(['counters', '--json', '--endpoint', 'Local::testcloud'], cli);
    assert.equal(counters.code, 0, counters.stderr);
    assert.ok(JSON.parse(counters.stdout).Running >= 1, counters.stdout);

    const images = await runCli(['images'], cli);
    assert.equal(images.code, 0, images.stderr);
    assert.match(images.stdout, /^ *\d+  test-image  Validated /m);

    const missing = await runCli(['show', '999999'], cli);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: .*999999/);

    // A read-only token may look but not stop; a wrong token may do nothing.
    const weak = await runCli(['stop', String(instanceID)], { ...cli, VMDB_TOKEN: readerToken });
    assert.equal(weak.code, 3);
    assert.match(weak.stderr, /^error: authentication failed/);
    const wrong = await runCli(['instances'], { ...cli, VMDB_TOKEN: 'not-a-token' });
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /^error: authentication failed/);
    assert.equal(await rig.status(instanceID), 'Running', 'nothing changed');

    const stop = await runCli(['stop', String(instanceID)], cli);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, new RegExp(`^ *${instanceID}  ok +Stopping$`, 'm'));
    assert.equal(await rig.status(instanceID), 'Stopping');

    const unknown = await runCli(['stop', '999999'], cli);
    assert.equal(unknown.code, 1, unknown.stdout);
    assert.match(unknown.stdout, /^ *999999  refused +\S/m);
    assert.equal(unknown.stderr, 'error: 1 of 1 instance not stopped\n');

    // A batch with one unknown id exits 1, whatever the others did.
    const again = await runCli(['stop', String(instanceID), '999999', '--json'], cli);
    assert.equal(again.code, 1);
    const results = JSON.parse(again.stdout).results;
    assert.equal(results['999999'].OK, false);

    // The VM drains and halts; its workflow completes.
    assert.deepEqual(await rig.heartbeat(uniqueID, beat), { OK: true, Value: 'stop' });
    assert.deepEqual(await rig.lifecycle.halting(uniqueID, 0), { OK: true, Value: 'Halted' });
    await handle.result();
  });

  it('audit shows the stops of an instance: who, when, and a refusal too', async function () {
    const id = ok(await rig.db.insertInstance('', 'test-image', `audited-${process.pid}`, ENDPOINT, 'testvo'));
    const refused = await runCli(['stop', String(id)], { ...cli, VMDB_TOKEN: readerToken });
    assert.equal(refused.code, 3);
    const stopped = await runCli(['stop', String(id)], cli);
    assert.equal(stopped.code, 0, stopped.stderr);

    const mine = await runCli(['audit', '--instance', String(id), '--json'], cli);
    assert.equal(mine.code, 0, mine.stderr);
    const { entries, next } = JSON.parse(mine.stdout);
    assert.equal(next, null);
    assert.deepEqual(
      entries.map((e: Record<string, unknown>) => [e.operator, e.action, e.target, e.outcome, e.detail]),
      [['ops', 'instance.stop', `instance:${id}`, 'succeeded', 'now Halted']],
    );
    assert.ok(Math.abs(Date.parse(entries[0].at) - Date.now()) < 60_000, entries[0].at);

    const viewer = await runCli(['audit', '--operator', 'viewer', '--limit', '1'], { ...cli, VMDB_TOKEN: readerToken });
    assert.equal(viewer.code, 0, viewer.stderr);
    assert.match(viewer.stdout, /^ *\d+  \S+ \S+  viewer +instance\.stop +instances +failed 403 forbidden +Role read may not do this/m);
  });

  it('director lists the Schedules (absent: no worker created them here)', async function () {
    const run = await runCli(['director', '--json'], cli);
    assert.equal(run.code, 0, run.stderr);
    const ids = (JSON.parse(run.stdout).schedules as { id: string }[]).map((s) => s.id).sort();
    assert.deepEqual(ids, ['vmdb-director', 'vmdb-reconcile', 'vmdb-stalled-sweep']);
    const trigger = await runCli(['director', '--trigger'], cli);
    assert.equal(trigger.code, 3, 'operate is not admin');
    assert.match(trigger.stderr, /^error: authentication failed/);
  });

  it('vmdb server serves the same database and Temporal, and stops on SIGINT', async function () {
    const [{ name }] = ok(await rig.db._query('SELECT DATABASE() AS name')) as { name: string }[];
    const adminToken = randomBytes(24).toString('base64url');
    const server = spawn(process.execPath, [CLI, 'server', '--port', '0', '--quiet'], {
      env: {
        ...process.env,
        VMDB_DATABASE_URL: `${MYSQL_SERVER_URL.replace(/\/$/, '')}/${name}`,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        VMDB_TASK_QUEUE: rig.taskQueue,
        VMDB_ADMIN_TOKEN: adminToken,
        VMDB_TOKEN_SECRET: tokenSecret,
        VMDB_OPERATOR_TOKENS_FILE: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await serverUrl(server);
      const { instanceID } = await runningInstance();
      const admin = { VMDB_API_URL: url, VMDB_TOKEN: adminToken };
      const list = await runCli(['instances', '--json', '--status', 'Running'], admin);
      assert.equal(list.code, 0, list.stderr);
      assert.ok((JSON.parse(list.stdout).Records as unknown[][]).some((r) => r[0] === instanceID), list.stdout);
      const stop = await runCli(['stop', String(instanceID)], admin);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(await rig.status(instanceID), 'Stopping');
      const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
      server.kill('SIGINT');
      assert.equal(await exited, 0);
      const gone = await runCli(['images'], admin);
      assert.equal(gone.code, 3, 'nothing listens any more');
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
  });
});

/** The url `vmdb server` prints when it listens (its stderr), or a failure with what it printed. */
function serverUrl(server: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`vmdb server did not start:\n${output}`)), 30_000);
    server.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /vmdb API on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.stdout!.resume();
    server.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vmdb server exited with ${code}:\n${output}`));
    });
  });
}
