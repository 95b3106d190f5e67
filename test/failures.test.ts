import { strict as assert } from 'node:assert';
import { fromFailure } from '../src/api/errors';
import { UnknownInstanceError } from '../src/db/instance-store';
import { type FailureCode, S_ERROR, failureCode } from '../src/db/result';
import { UnwatchedInstances } from '../src/db/unwatched';
import { VirtualMachineDB } from '../src/db/vmdb';
import { forceStatus, ok, onEveryBackend } from './support/backends';

describe('failure codes (src/db/result.ts, src/api/errors.ts)', function () {
  it('a failure keeps the DIRAC shape: its code is read, never compared or sent', function () {
    const failure = S_ERROR('Unknown InstanceID = 7', undefined, 'not_found');
    assert.deepStrictEqual(failure, { OK: false, Message: 'Unknown InstanceID = 7' });
    assert.equal(JSON.stringify(failure), '{"OK":false,"Message":"Unknown InstanceID = 7"}');
    assert.equal(failureCode(failure), 'not_found');
    assert.equal(failureCode({ OK: true, Value: 1 }), undefined);
  });

  it('a failure with a State and no code is a refusal', function () {
    assert.equal(failureCode(S_ERROR('Transition ( Halted -> Running ) not allowed', 'halt')), 'refused');
    assert.equal(failureCode(S_ERROR('Instance 1 has no VM yet', 'New', 'not_ready')), 'not_ready');
    assert.equal(failureCode(S_ERROR('bad input')), undefined);
  });

  it('the HTTP answer follows the code, whatever the message says', function () {
    const table: [FailureCode | undefined, number, string][] = [
      ['not_found', 404, 'not_found'],
      ['refused', 409, 'refused'],
      ['no_lifecycle', 409, 'no_lifecycle'],
      ['not_ready', 409, 'not_ready'],
      ['database_unavailable', 503, 'unavailable'],
      ['temporal_unavailable', 503, 'unavailable'],
      [undefined, 400, 'bad_request'],
    ];
    for (const [code, status, error] of table) {
      // Messages that once decided the answer, crossed with codes that now do.
      for (const message of ['Unknown InstanceID = 1', 'Transition ( A -> B ) not allowed', 'No running life cycle for 1', 'Database error: gone', 'UNAVAILABLE', 'anything']) {
        const answer = fromFailure(S_ERROR(message, code === 'refused' || code === 'not_ready' ? 'New' : undefined, code));
        assert.deepEqual([answer.statusCode, answer.code], [status, error], `${code} with "${message}"`);
      }
    }
  });
});

onEveryBackend('codes set where failures start (facade)', (fx) => {
  it('unknown ids, refusals and bad input', async function () {
    assert.equal(failureCode(await fx.db.getInstanceStatus(999_999)), 'not_found');
    assert.equal(failureCode(await fx.db.getInstanceID('nobody')), 'not_found');
    assert.equal(failureCode(await fx.db.declareInstanceStopping(999_999)), 'not_found');
    const id = ok(await fx.db.insertInstance('u-codes', 'img', 'codes', 'Site::ce', 'pod'));
    const refused = await fx.db.declareInstanceContextualizing(id);
    assert.deepEqual([refused.OK, failureCode(refused)], [false, 'refused']);
    assert.equal(failureCode(await fx.db.getInstanceStatus(-1)), undefined, 'bad input has no code: a 400');
  });

  it('a database that fails is database_unavailable', async function () {
    const db = await VirtualMachineDB.open({ url: await fx.backend.createDatabase() });
    try {
      const id = ok(await db.insertInstance('', 'img', 'lost', 'Site::ce', 'pod'));
      ok(await db._update('DROP TABLE `vm_History`'));
      const failed = await db.recordDBHalt(id, 0);
      assert.equal(failed.OK, false);
      assert.match((failed as { Message: string }).Message, /^Database error: /);
      assert.equal(failureCode(failed), 'database_unavailable');
    } finally {
      await db.close();
    }
  });
});

onEveryBackend('the life cycle store (src/db/instance-store.ts)', (fx) => {
  it('answers each change with the row it left, read in the same transaction', async function () {
    const store = fx.db.instanceStore();
    const id = ok(await fx.db.insertInstance('', 'img', 'store-1', 'Site::ce', 'pod'));
    const before = await store.row(id);
    const submitted = await store.recordSubmitted(id, 'u-store-1');
    assert.equal(submitted.accepted, true);
    assert.deepEqual([submitted.row.status, submitted.row.uniqueID], ['Submitted', 'u-store-1']);
    assert.ok(submitted.row.version > before.version, 'the version the change wrote');
    assert.deepEqual(submitted.row, await store.row(id), 'what the record holds');
    assert.equal((await store.recordSubmitted(id, 'u-store-1')).accepted, true, 'a retry after success is accepted');

    const running = await store.running(id, 'u-store-1', '::ffff:192.0.2.9', '');
    assert.deepEqual([running.accepted, running.row.status], [true, 'Running']);
    assert.equal(ok(await fx.db.getInstanceParameter('PublicIP', id)), '192.0.2.9');

    const refused = await store.contextualizing(id);
    assert.equal(refused.accepted, false);
    assert.ok(!refused.accepted && refused.code === 'refused' && refused.state === 'Running' && /Running -> Contextualizing/.test(refused.message));
    assert.deepEqual(refused.row, await store.row(id), 'a refusal changes nothing');

    const stopping = await store.lifecycleStop(id, '2030-01-01T00:00:00Z');
    assert.deepEqual([stopping.accepted, stopping.row.status, stopping.row.shutdownAt], [true, 'Stopping', '2030-01-01T00:00:00.000Z']);
    const halted = await store.halted(id);
    assert.deepEqual([halted.accepted, halted.row.status], [true, 'Halted']);
  });

  it('bad input is a refusal, and an unknown instance is an error', async function () {
    const store = fx.db.instanceStore();
    const id = ok(await fx.db.insertInstance('u-store-2', 'img', 'store-2', 'Site::ce', 'pod'));
    const bad = await store.running(id, 'u-store-2', 'not-an-ip', '');
    assert.ok(!bad.accepted && /publicIP/.test(bad.message), 'names the field');
    assert.equal(bad.row.status, 'Submitted');
    await assert.rejects(store.waitForSsh(999_999), UnknownInstanceError);
    await assert.rejects(store.row(999_999), UnknownInstanceError);
    await assert.rejects(store.planShutdown(999_999, null), UnknownInstanceError);
  });
});

onEveryBackend('instances no workflow watches (src/db/unwatched.ts)', (fx) => {
  it('a VM that vanished is Halted when it ran, an Error when it never did', async function () {
    const unwatched = new UnwatchedInstances(fx.db);
    const ran = ok(await fx.db.insertInstance('u-gone-1', 'img', 'gone-1', 'Site::ce', 'pod'));
    await forceStatus(fx.db, ran, 'Running');
    assert.deepEqual(await unwatched.recordVanished(ran, 'Running'), { OK: true, Value: 'Halted' });
    assert.equal(ok(await fx.db.getInstanceStatus(ran)), 'Halted');
    const never = ok(await fx.db.insertInstance('u-gone-2', 'img', 'gone-2', 'Site::ce', 'pod'));
    assert.deepEqual(await unwatched.recordVanished(never, 'Submitted'), { OK: true, Value: 'Error' });
    assert.equal((await fx.db.getInstanceLife(never)).OK && ok(await fx.db.getInstanceLife(never)).status, 'Error');
  });

  it("an operator's stop: New is Halted at once, Running drains", async function () {
    const unwatched = new UnwatchedInstances(fx.db);
    const fresh = ok(await fx.db.insertInstance('', 'img', 'stop-1', 'Site::ce', 'pod'));
    assert.deepEqual(await unwatched.stop(fresh), { OK: true, Value: 'Halted' });
    const up = ok(await fx.db.insertInstance('u-stop-2', 'img', 'stop-2', 'Site::ce', 'pod'));
    await forceStatus(fx.db, up, 'Running');
    assert.deepEqual(await unwatched.stop(up), { OK: true, Value: 'Stopping' });
    assert.equal(failureCode(await unwatched.stop(999_999)), 'not_found');
  });
});
