import { strict as assert } from 'node:assert';
import { ageInstance, forceStatus, ok, onEveryBackend } from './support/backends';

// The original project's integration scenarios, plus the spec's rules around them.
const INST = { uuid: '1111-2222-3333', name: 'TestInst', image: 'TestImage', ep: 'MyCloud::mycloud.domain', pod: 'testvo' };

onEveryBackend('instance life cycle (original scenarios)', (fx) => {
  let id: number;
  let canary: number;

  beforeEach(async function () {
    ok(await fx.db.insertInstance(INST.uuid, INST.image, INST.name, INST.ep, INST.pod));
    id = ok(await fx.db.getInstanceID(INST.uuid));
    canary = ok(await fx.db.insertInstance(`${INST.uuid}2`, `${INST.image}2`, `${INST.name}2`, `${INST.ep}2`, `${INST.pod}2`));
  });

  afterEach(async function () {
    // The second instance must never be touched by what the test did to the first.
    for (const [name, value] of Object.entries({
      UniqueID: `${INST.uuid}2`, InstanceID: canary, Name: `${INST.name}2`, Endpoint: `${INST.ep}2`, RunningPod: `${INST.pod}2`, Status: 'Submitted',
    })) {
      assert.equal(ok(await fx.db.getInstanceParameter(name, canary)), value, name);
    }
    assert.equal(ok(await fx.db.checkImageStatus(`${INST.image}2`)), 'New');
  });

  it('an image starts New and is Validated by a heartbeat', async function () {
    assert.equal(ok(await fx.db.checkImageStatus(INST.image)), 'New');
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    ok(await fx.db.instanceIDHeartBeat(INST.uuid, 0.0, 0, 0, 0, 60));
    assert.equal(ok(await fx.db.checkImageStatus(INST.image)), 'Validated');
  });

  it('reads every parameter back, refuses unknown ones, and records heartbeat figures', async function () {
    for (const [name, value] of Object.entries({ UniqueID: INST.uuid, InstanceID: id, Name: INST.name, Endpoint: INST.ep, RunningPod: INST.pod, Status: 'Submitted' })) {
      assert.equal(ok(await fx.db.getInstanceParameter(name, id)), value);
    }
    assert.deepEqual(await fx.db.getInstanceParameter('BadParam', id), { OK: false, Message: 'Invalid Instance parameter BadParam' });
    assert.equal(ok(await fx.db.getEndpointFromInstance(INST.uuid)), INST.ep);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Submitted');
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    ok(await fx.db.instanceIDHeartBeat(INST.uuid, 4.0, 5, 6, 7, 8));
    assert.equal(ok(await fx.db.getInstanceParameter('Load', id)), 4.0);
    assert.equal(ok(await fx.db.getInstanceParameter('Jobs', id)), 5);
    assert.equal(ok(await fx.db.getInstanceParameter('Uptime', id)), 8);
    const info = ok(await fx.db.getAllInfoForUniqueID(INST.uuid));
    assert.equal(info.Instance.Name, INST.name);
    assert.equal(info.Instance.Endpoint, INST.ep);
    assert.equal(info.Instance.RunningPod, INST.pod);
    assert.equal(info.Instance.Status, 'Running');
    assert.equal(info.Image.Name, INST.image);
    assert.equal(info.Image.Status, 'Validated');
    const last = ok(await fx.db.getHistoryForInstanceID(id)).Records.at(-1);
    assert.deepEqual([last![0], last![1], last![3], last![4], last![5]], ['Running', 4, 5, 6, 7]);
  });

  it('changes the UniqueID and finds the instance by it', async function () {
    ok(await fx.db.setInstanceUniqueID(id, '4444-5555-6666'));
    assert.equal(ok(await fx.db.getUniqueID(id)), '4444-5555-6666');
    assert.equal(ok(await fx.db.getInstanceID('4444-5555-6666')), id);
  });

  it('refuses a UniqueID already used by another instance', async function () {
    assert.deepEqual(await fx.db.setInstanceUniqueID(id, `${INST.uuid}2`), { OK: false, Message: `UniqueID is not unique: ${INST.uuid}2` });
    assert.equal(ok(await fx.db.getUniqueID(id)), INST.uuid);
    ok(await fx.db.setInstanceUniqueID(id, INST.uuid)); // its own id again is fine
  });

  it('finds the UniqueID by name', async function () {
    assert.equal(ok(await fx.db.getUniqueIDByName(INST.name)), INST.uuid);
    assert.deepEqual(await fx.db.getUniqueIDByName('nobody'), { OK: false, Message: 'Instance not found' });
  });

  it('walks Running -> Stopping -> Halted and cannot run again', async function () {
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Running');
    ok(await fx.db.declareInstanceStopping(id));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Stopping');
    ok(await fx.db.declareInstanceHalting(INST.uuid, 0.0));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Halted');
    const refused = await fx.db.declareInstanceRunning(INST.uuid, '10.1.1.1', '10.2.2.2');
    assert.deepEqual(refused, { OK: false, Message: 'Transition ( Halted -> Running ) not allowed', State: 'halt' });
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Halted');
    assert.equal(ok(await fx.db.getInstanceParameter('PublicIP', id)), '127.0.0.1', 'a refused call stores no IPs');
  });

  it('recordDBHalt is refused for a Submitted instance and works once Running', async function () {
    const refused = await fx.db.recordDBHalt(id, 0.0);
    assert.equal(refused.OK, false);
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    ok(await fx.db.recordDBHalt(id, 1.5));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Halted');
    const last = ok(await fx.db.getHistoryForInstanceID(id)).Records.at(-1)!;
    assert.deepEqual([last[0], last[1]], ['Halted', 1.5], 'the halt carries its load into history');
  });

  it('strips an IPv4-mapped IPv6 prefix from the public IP', async function () {
    ok(await fx.db.declareInstanceRunning(INST.uuid, '::ffff:123.123.123.123', '127.123.123.123'));
    assert.equal(ok(await fx.db.getInstanceParameter('PrivateIP', id)), '127.123.123.123');
    assert.equal(ok(await fx.db.getInstanceParameter('PublicIP', id)), '123.123.123.123');
  });

  it('declares silent instances Stalled, and only those', async function () {
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    ok(await fx.db.instanceIDHeartBeat(INST.uuid, 0.0, 0, 0, 0, 60));
    assert.deepEqual(ok(await fx.db.declareStalledInstances()), []);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Running');
    // The original test ages the row with raw SQL in MySQL's dialect.
    if (fx.backend.name === 'mariadb') {
      ok(await fx.db._query('UPDATE vm_Instances SET LastUpdate = LastUpdate - INTERVAL ? SECOND WHERE InstanceID = ?', [fx.db.stallingInterval * 2, id]));
    } else {
      await ageInstance(fx.db, id, fx.db.stallingInterval * 2);
    }
    assert.deepEqual(ok(await fx.db.declareStalledInstances()), [id]);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Stalled');
    assert.equal(ok(await fx.db.getHistoryForInstanceID(id)).Records.at(-1)![0], 'Stalled');
  });

  it('lists instances by status as { image: [uniqueID] } and refuses unknown states', async function () {
    assert.deepEqual(await fx.db.getInstancesByStatus('BadState'), { OK: false, Message: 'Status "BadState" is not known' });
    assert.deepEqual(ok(await fx.db.getInstancesByStatus('Submitted')), { [INST.image]: [INST.uuid], [`${INST.image}2`]: [`${INST.uuid}2`] });
    ok(await fx.db.declareInstanceRunning(INST.uuid, '127.0.0.1'));
    assert.deepEqual(ok(await fx.db.getInstancesByStatus('Submitted')), { [`${INST.image}2`]: [`${INST.uuid}2`] });
    assert.deepEqual(ok(await fx.db.getInstancesByStatus('Running')), { [INST.image]: [INST.uuid] });
  });
});

onEveryBackend('instance life cycle (spec rules)', (fx) => {
  it('inserts New without a UniqueID and Submitted with one, each with a history row', async function () {
    const fresh = ok(await fx.db.insertInstance('', 'img', 'a', 'cloud', 'pod'));
    const submitted = ok(await fx.db.insertInstance('u-1', 'img', 'b', 'cloud', 'pod'));
    assert.equal(ok(await fx.db.getInstanceStatus(fresh)), 'New');
    assert.equal(ok(await fx.db.getInstanceStatus(submitted)), 'Submitted');
    assert.deepEqual(ok(await fx.db.getHistoryForInstanceID(fresh)).Records.map((r) => r[0]), ['New']);
    assert.deepEqual(ok(await fx.db.getHistoryForInstanceID(submitted)).Records.map((r) => r[0]), ['Submitted']);
    assert.ok(ok(await fx.db.getInstanceParameter('LastUpdate', fresh)) instanceof Date);
    ok(await fx.db.setInstanceUniqueID(fresh, 'u-2'));
    ok(await fx.db.declareInstanceSubmitted('u-2'));
    assert.equal(ok(await fx.db.getInstanceStatus(fresh)), 'Submitted');
  });

  it('an image in Error blocks new instances and fails heartbeats, taking the instance to Error', async function () {
    const id = ok(await fx.db.insertInstance('u-1', 'bad-image', 'a', 'cloud', 'pod'));
    ok(await fx.db.declareInstanceRunning('u-1', '192.0.2.1'));
    ok(await fx.db.declareImageError('bad-image', 'wrong requirements'));
    assert.deepEqual(await fx.db.checkImageStatus('bad-image'), { OK: false, Message: 'wrong requirements' });
    assert.deepEqual(await fx.db.insertInstance('u-2', 'bad-image', 'b', 'cloud', 'pod'), { OK: false, Message: 'wrong requirements' });
    assert.equal(ok(await fx.db.countEntries('vm_Instances', {})), 1);
    const beat = await fx.db.instanceIDHeartBeat('u-1', 1, 1, 1, 1, 1);
    assert.equal(beat.OK, false);
    assert.equal(ok(await fx.db.getInstanceParameter('Status', id)), 'Error');
    const status = await fx.db.getInstanceStatus(id);
    assert.equal(status.OK, false, 'reading an instance in Error returns its message');
    assert.match((status as { Message: string }).Message, /bad-image is in Error: wrong requirements/);
  });

  it('a heartbeat from Stopping or Halted is refused with State stop / halt, and changes nothing', async function () {
    const id = ok(await fx.db.insertInstance('u-1', 'img', 'a', 'cloud', 'pod'));
    ok(await fx.db.declareInstanceRunning('u-1', '192.0.2.1'));
    ok(await fx.db.declareInstanceStopping(id));
    const rows = ok(await fx.db.countEntries('vm_History', { InstanceID: id }));
    assert.deepEqual(await fx.db.instanceIDHeartBeat('u-1', 1, 2, 3, 4, 5), { OK: false, Message: 'Transition ( Stopping -> Running ) not allowed', State: 'stop' });
    ok(await fx.db.declareInstanceHalting('u-1', 0));
    assert.deepEqual(await fx.db.instanceIDHeartBeat('u-1', 1, 2, 3, 4, 5), { OK: false, Message: 'Transition ( Halted -> Running ) not allowed', State: 'halt' });
    assert.equal(ok(await fx.db.countEntries('vm_History', { InstanceID: id })), rows + 1, 'only the halt wrote history');
    assert.equal(ok(await fx.db.getInstanceParameter('Jobs', id)), 0);
  });

  it('a heartbeat revives a Stalled instance', async function () {
    const id = ok(await fx.db.insertInstance('u-1', 'img', 'a', 'cloud', 'pod'));
    await forceStatus(fx.db, id, 'Stalled');
    assert.equal(ok(await fx.db.instanceIDHeartBeat('u-1', 0.2, 1, 0, 0, 30)), 'Running');
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Running');
  });

  it('uptime 0 means unknown: the span of the history is used', async function () {
    const id = ok(await fx.db.insertInstance('u-1', 'img', 'a', 'cloud', 'pod'));
    ok(await fx.db._query('UPDATE `vm_History` SET `Update` = ? WHERE `InstanceID` = ?', [new Date(Date.now() - 600_000).toISOString().slice(0, 19).replace('T', ' '), id]));
    ok(await fx.db.instanceIDHeartBeat('u-1', 0.5, 1, 0, 0, 0));
    const uptime = ok(await fx.db.getInstanceParameter('Uptime', id)) as number;
    assert.ok(uptime >= 599 && uptime <= 602, `uptime ${uptime}`);
  });

  it('declareInstancesStopping: Stalled and New are halted, Running goes to Stopping, unknown ids are reported', async function () {
    const stalled = ok(await fx.db.insertInstance('u-1', 'img', 'a', 'cloud', 'pod'));
    await forceStatus(fx.db, stalled, 'Stalled');
    const fresh = ok(await fx.db.insertInstance('', 'img', 'b', 'cloud', 'pod'));
    const running = ok(await fx.db.insertInstance('u-3', 'img', 'c', 'cloud', 'pod'));
    ok(await fx.db.declareInstanceRunning('u-3', '192.0.2.3'));
    const all = await fx.db.declareInstancesStopping([stalled, fresh, running]);
    assert.deepEqual(all, { OK: true, Value: { [stalled]: { OK: true, Value: 'Halted' }, [fresh]: { OK: true, Value: 'Halted' }, [running]: { OK: true, Value: 'Stopping' } } });
    const partial = await fx.db.declareInstancesStopping([running, 999999]);
    assert.equal(partial.OK, false);
    assert.match((partial as { Message: string }).Message, /999999 \(Unknown InstanceID = 999999\)/);
    assert.equal(ok(await fx.db.getInstanceStatus(running)), 'Stopping');
  });

  it('declareInstanceStalled refuses an instance that spoke recently', async function () {
    const id = ok(await fx.db.insertInstance('u-1', 'img', 'a', 'cloud', 'pod'));
    const refused = await fx.db.declareInstanceStalled(id);
    assert.equal(refused.OK, false);
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Submitted');
    await ageInstance(fx.db, id, fx.db.stallingInterval + 1);
    assert.equal(ok(await fx.db.declareInstanceStalled(id)), 'Stalled');
  });

  it('unknown ids are refused by name', async function () {
    assert.deepEqual(await fx.db.getInstanceStatus(42), { OK: false, Message: 'Unknown InstanceID = 42' });
    assert.deepEqual(await fx.db.getInstanceID('nope'), { OK: false, Message: 'Unknown UniqueID = nope' });
    assert.deepEqual(await fx.db.declareInstanceStopping(42), { OK: false, Message: 'Unknown InstanceID = 42' });
    assert.deepEqual(await fx.db.instanceIDHeartBeat('nope', 0, 0, 0, 0, 0), { OK: false, Message: 'Unknown UniqueID = nope' });
  });
});
