import { strict as assert } from 'node:assert';
import { VirtualMachineDB } from '../src';
import { ageInstance, ok, onEveryBackend } from './support/backends';

// Races that the original lost: check-then-write must be atomic across connections and facades.
onEveryBackend('concurrent writers', (fx) => {
  let other: VirtualMachineDB;
  before(async function () {
    other = await VirtualMachineDB.open({ url: fx.url }); // a second pool, as a second process would have
  });
  after(async function () {
    await other.close();
  });
  const either = (i: number) => (i % 2 ? fx.db : other);

  it('fifty concurrent checkImageStatus of one new image leave one row', async function () {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => either(i).checkImageStatus('fresh-image')));
    assert.deepEqual(new Set(results.map((r) => ok(r))), new Set(['New']));
    assert.equal(ok(await fx.db.countEntries('vm_Images', { Name: 'fresh-image' })), 1);
  });

  it('fifty concurrent insertInstance of one new image: one image, fifty instances', async function () {
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => either(i).insertInstance(`u-${i}`, 'shared', `vm-${i}`, 'cloud', 'pod')));
    assert.equal(new Set(ids.map((r) => ok(r))).size, 50);
    assert.equal(ok(await fx.db.countEntries('vm_Images', {})), 1);
    assert.equal(ok(await fx.db.countEntries('vm_History', { Status: 'Submitted' })), 50);
  });

  it('two conflicting transitions: exactly one wins, history matches', async function () {
    for (let round = 0; round < 10; round++) {
      const id = ok(await fx.db.insertInstance('', 'img', `vm-${round}`, 'cloud', 'pod'));
      ok(await fx.db.setInstanceUniqueID(id, `race-${round}`));
      // New -> Submitted and New -> Halted exclude each other (neither is reachable from the other).
      const [submitted, halted] = await Promise.all([fx.db.declareInstanceSubmitted(`race-${round}`), other.recordDBHalt(id, 0)]);
      assert.equal(Number(submitted.OK) + Number(halted.OK), 1, `round ${round}: one winner`);
      const status = ok(await fx.db.getInstanceStatus(id));
      assert.equal(status, submitted.OK ? 'Submitted' : 'Halted');
      const history = ok(await fx.db.getHistoryForInstanceID(id)).Records.map((r) => r[0]);
      assert.deepEqual(history, ['New', status]);
    }
  });

  it('two instances claiming one UniqueID at once: one gets it', async function () {
    const a = ok(await fx.db.insertInstance('', 'img', 'a', 'cloud', 'pod'));
    const b = ok(await fx.db.insertInstance('', 'img', 'b', 'cloud', 'pod'));
    const results = await Promise.all([fx.db.setInstanceUniqueID(a, 'i-5dec3236'), other.setInstanceUniqueID(b, 'i-5dec3236')]);
    assert.equal(results.filter((r) => r.OK).length, 1);
    assert.equal(ok(await fx.db.countEntries('vm_Instances', { UniqueID: 'i-5dec3236' })), 1);
  });

  it('a stall sweep racing heartbeats never loses a history row', async function () {
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = ok(await fx.db.insertInstance(`u-${i}`, 'img', `vm-${i}`, 'cloud', 'pod'));
      ok(await fx.db.declareInstanceRunning(`u-${i}`, '192.0.2.1'));
      await ageInstance(fx.db, id, fx.db.stallingInterval + 10);
      ids.push(id);
    }
    const [sweep, ...beats] = await Promise.all([
      other.declareStalledInstances(),
      ...ids.map((_, i) => fx.db.instanceIDHeartBeat(`u-${i}`, 0.1, 1, 0, 0, 10)),
    ]);
    const stalled = ok(sweep);
    for (const [i, id] of ids.entries()) {
      assert.equal(beats[i].OK, true, 'Stalled -> Running is allowed, so every heartbeat lands');
      const history = ok(await fx.db.getHistoryForInstanceID(id)).Records.map((r) => r[0]);
      const expected = stalled.includes(id) ? ['Submitted', 'Running', 'Stalled', 'Running'] : ['Submitted', 'Running', 'Running'];
      // Either order of sweep and beat is legal; the history must tell exactly what happened.
      if (stalled.includes(id) && history[2] === 'Running') expected.splice(2, 2, 'Running', 'Stalled');
      assert.deepEqual(history, expected);
      assert.equal(ok(await fx.db.getInstanceStatus(id)), history.at(-1));
    }
  });
});
