import { strict as assert } from 'node:assert';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { DestinationStream } from 'pino';
import { buildApi } from '../src/api/server';
import { makeVmToken, newSecret } from '../src/auth/tokens';
import type { LifecycleClient } from '../src/temporal/lifecycle-client';
import { PinoSdkLogger, activityLogger, createLogger, formatPretty, instanceLogger, parseLogLevel, prettyStream } from '../src/ops/log';
import type { VirtualMachineDB } from '../src/db/vmdb';

/** A pino destination that keeps every line, parsed. */
function capture(): DestinationStream & { lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line)) };
}

describe('logs (pino)', function () {
  it('writes one JSON object per line: ISO time, level by name, message', function () {
    const out = capture();
    createLogger({ destination: out, level: 'info' }).info({ endpoint: 'Site::ce' }, 'hello');
    assert.equal(out.lines.length, 1);
    const [line] = out.lines;
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'hello');
    assert.equal(line.endpoint, 'Site::ce');
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('lines about an instance carry instanceID, uniqueID and workflowId', function () {
    const out = capture();
    const log = createLogger({ destination: out, level: 'info' });
    instanceLogger({ instanceID: 7, uniqueID: 'local-7' }, log).info('VM created');
    instanceLogger({ instanceID: 8 }, log).warn({ status: 'Error' }, 'no VM yet');
    assert.deepEqual(
      out.lines.map(({ instanceID, uniqueID, workflowId, msg }) => ({ instanceID, uniqueID, workflowId, msg })),
      [
        { instanceID: 7, uniqueID: 'local-7', workflowId: 'vm-7', msg: 'VM created' },
        { instanceID: 8, uniqueID: undefined, workflowId: 'vm-8', msg: 'no VM yet' },
      ],
    );
  });

  it('filters by level: the option, else VMDB_LOG_LEVEL, else info', function () {
    const out = capture();
    const log = createLogger({ destination: out, level: 'warn' });
    log.info('dropped');
    log.debug('dropped');
    log.warn('kept');
    log.error('kept too');
    assert.deepEqual(out.lines.map((l) => [l.level, l.msg]), [['warn', 'kept'], ['error', 'kept too']]);

    const saved = process.env.VMDB_LOG_LEVEL;
    try {
      process.env.VMDB_LOG_LEVEL = 'debug';
      const fromEnv = capture();
      createLogger({ destination: fromEnv }).debug('shown');
      assert.deepEqual(fromEnv.lines.map((l) => l.msg), ['shown']);
      delete process.env.VMDB_LOG_LEVEL;
      const byDefault = capture();
      const quiet = createLogger({ destination: byDefault });
      quiet.debug('hidden');
      quiet.info('shown');
      assert.deepEqual(byDefault.lines.map((l) => l.msg), ['shown']);
    } finally {
      if (saved === undefined) delete process.env.VMDB_LOG_LEVEL;
      else process.env.VMDB_LOG_LEVEL = saved;
    }
  });

  it('refuses an unknown level, naming VMDB_LOG_LEVEL', function () {
    assert.equal(parseLogLevel(' WARN '), 'warn');
    assert.equal(parseLogLevel(''), 'info');
    assert.throws(() => parseLogLevel('verbose'), /VMDB_LOG_LEVEL: "verbose" is not a log level/);
    assert.throws(() => createLogger({ level: 'loud', destination: capture() }), /VMDB_LOG_LEVEL/);
  });

  it('serialises errors with their type, message and stack', function () {
    const out = capture();
    createLogger({ destination: out, level: 'info' }).error({ err: new TypeError('bad thing') }, 'failed');
    assert.equal(out.lines[0].err.type, 'TypeError');
    assert.equal(out.lines[0].err.message, 'bad thing');
    assert.match(out.lines[0].err.stack, /TypeError: bad thing/);
  });

  it("the Temporal SDK's logger adapter: levels, instanceID from a life-cycle workflow id, no task token", function () {
    const out = capture();
    const sdk = new PinoSdkLogger(createLogger({ destination: out, level: 'info' }));
    sdk.debug('Activity started', { workflowId: 'vm-12' }); // below the level
    sdk.warn('Activity failed', { workflowId: 'vm-12', activityType: 'contextualize', taskToken: 'c2VjcmV0', sdkComponent: 'worker' });
    sdk.log('ERROR', 'Workflow failed', { workflowId: 'vmdb-director-workflow' });
    sdk.info('Heartbeat signal dropped', { workflowId: 'vm-3', instanceID: 3 });
    assert.equal(out.lines.length, 3);
    assert.deepEqual(
      out.lines.map(({ level, msg, instanceID, workflowId }) => ({ level, msg, instanceID, workflowId })),
      [
        { level: 'warn', msg: 'Activity failed', instanceID: 12, workflowId: 'vm-12' },
        { level: 'error', msg: 'Workflow failed', instanceID: undefined, workflowId: 'vmdb-director-workflow' },
        { level: 'info', msg: 'Heartbeat signal dropped', instanceID: 3, workflowId: 'vm-3' },
      ],
    );
    assert.equal(out.lines[0].taskToken, undefined);
    assert.equal(out.lines[0].activityType, 'contextualize');
  });

  it("activities log with their workflow's instance (Context.current())", async function () {
    const out = capture();
    const log = createLogger({ destination: out, level: 'info' });
    const env = new MockActivityEnvironment({ activityType: 'recordHeartbeat', workflowExecution: { workflowId: 'vm-42', runId: 'run-1' } });
    await env.run(async () => {
      activityLogger({ uniqueID: 'local-42' }, log).info('heartbeat: Running');
      activityLogger({ instanceID: 5 }, log).info('instance launched'); // a Director pass names the instance
    });
    activityLogger({ instanceID: 6 }, log).info('outside any activity');
    assert.deepEqual(
      out.lines.map(({ instanceID, uniqueID, workflowId, activity }) => ({ instanceID, uniqueID, workflowId, activity })),
      [
        { instanceID: 42, uniqueID: 'local-42', workflowId: 'vm-42', activity: 'recordHeartbeat' },
        { instanceID: 5, uniqueID: undefined, workflowId: 'vm-5', activity: 'recordHeartbeat' },
        { instanceID: 6, uniqueID: undefined, workflowId: 'vm-6', activity: undefined },
      ],
    );
  });

  it('the API logs VM requests with the instance, its workflow and the request id', async function () {
    const out = capture();
    const secret = newSecret();
    const instance = { instanceID: 9, name: 'vm-9', uniqueID: 'local-9', endpoint: 'Site::ce', status: 'Running' };
    const db = { getUniqueID: async () => ({ OK: true, Value: 'local-9' }), instanceStore: () => ({ instances: async () => [instance] }) } as unknown as VirtualMachineDB;
    // A heartbeat goes to the workflow by InstanceID: its lines do not pay a database read for the UniqueID.
    const lifecycle = {
      heartbeatOf: async () => ({ OK: true, Value: { directive: 'stop' } }),
      running: async () => ({ OK: true, Value: 'Running' }),
    } as unknown as LifecycleClient;
    const app = await buildApi({ db, lifecycle, operators: [], tokenSecret: secret, logger: createLogger({ destination: out, level: 'debug' }) });
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/vms/9/heartbeat',
        headers: { authorization: `Bearer ${makeVmToken(secret, 9, 'vm-9')}` },
        payload: { load: 1, jobs: 2, transferredFiles: 0, transferredBytes: 0, uptime: 60 },
      });
      assert.deepEqual(res.json(), { directive: 'stop' });
      const running = await app.inject({
        method: 'POST',
        url: '/api/v1/vms/9/running',
        headers: { authorization: `Bearer ${makeVmToken(secret, 9, 'vm-9')}` },
        payload: { publicIP: '10.0.0.9', privateIP: '' },
      });
      assert.deepEqual(running.json(), { status: 'Running' });
    } finally {
      await app.close();
    }
    const answered = out.lines.find((l) => l.msg === 'heartbeat answered');
    assert.ok(answered, JSON.stringify(out.lines));
    assert.equal(answered.level, 'info', 'stop changes what the VM does');
    assert.deepEqual([answered.instanceID, answered.workflowId, answered.directive], [9, 'vm-9', 'stop']);
    assert.ok(answered.reqId, 'Fastify request binding');
    const completed = out.lines.find((l) => l.msg === 'request completed');
    assert.ok(completed);
    assert.equal(completed.level, 'debug', "a VM's successful call is the steady state");
    assert.deepEqual([completed.instanceID, completed.workflowId, completed.res.statusCode], [9, 'vm-9', 200]);
    // The other VM routes look the UniqueID up anyway, and their lines carry it.
    const reported = out.lines.find((l) => l.msg === 'VM reported running');
    assert.deepEqual([reported?.instanceID, reported?.uniqueID, reported?.workflowId], [9, 'local-9', 'vm-9']);
    const incoming = out.lines.find((l) => l.msg === 'incoming request');
    assert.deepEqual([incoming?.instanceID, incoming?.workflowId], [9, 'vm-9'], 'from the first line of the request');
  });

  it('reads well in a terminal: time, level, message, instance keys first, the stack below', function () {
    const text: string[] = [];
    const stream = prettyStream({ write: (t: string) => text.push(t) });
    const log = createLogger({ destination: stream, level: 'info' });
    instanceLogger({ instanceID: 7, uniqueID: 'local 7' }, log).warn({ endpoint: 'Site::ce', jobs: 3 }, 'heartbeat refused');
    assert.equal(text.length, 1);
    assert.match(text[0], /^\d\d:\d\d:\d\d\.\d{3} WARN  heartbeat refused {2}instanceID=7 uniqueID="local 7" workflowId=vm-7 endpoint=Site::ce jobs=3\n$/);
    const withError = formatPretty({ time: '2026-01-01T10:00:00.000Z', level: 'error', msg: 'failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } });
    assert.equal(withError, '10:00:00.000 ERROR failed\n    Error: boom\n        at x');
  });
});
