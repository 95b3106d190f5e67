import { strict as assert } from 'node:assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stateQuery } from '../workflows/definitions';
import { LifecycleRig } from './support/lifecycle-rig';
import { startTimeSkippingServer } from './support/temporal';

const STALL = 2400; // the real default stallingInterval, in skipped time

async function lifetimeSeconds(handle: { describe(): Promise<{ startTime: Date; closeTime?: Date }> }): Promise<number> {
  const { startTime, closeTime } = await handle.describe();
  return (closeTime!.getTime() - startTime.getTime()) / 1000;
}

describe('stall timer at the real 2400 s (time-skipping server) [mariadb]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;

  before(async function () {
    env = await startTimeSkippingServer();
    rig = new LifecycleRig(env);
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
  });

  it('an instance that never reports is Stalled after 2400 s and halted', async function () {
    const { instanceID, handle } = await rig.launch({ stallingIntervalSeconds: STALL });
    const final = await handle.result(); // awaiting the result lets the server skip time
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Stalled', 'Halted']);
    const lived = await lifetimeSeconds(handle);
    assert.ok(lived >= STALL && lived < STALL + 60, `stalled after ${lived}s`);
  });

  it('a heartbeat moves the deadline: stalled 2400 s after the last beat, not after the start', async function () {
    const { instanceID, handle } = await rig.launch({ stallingIntervalSeconds: STALL });
    await rig.waitForStatus(instanceID, 'Submitted');
    await env.sleep('2000s');
    assert.deepEqual(await rig.heartbeat(await rig.uniqueID(instanceID), { load: 1, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 2000 }), { OK: true, Value: 'ok' });
    await env.sleep('1000s'); // 3000 s after the start, 1000 s after the beat
    assert.equal((await handle.query(stateQuery)).status, 'Running');
    assert.equal(await rig.status(instanceID), 'Running');
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running', 'Stalled', 'Halted']);
    const lived = await lifetimeSeconds(handle);
    assert.ok(lived >= 2000 + STALL && lived < 2000 + STALL + 60, `stalled after ${lived}s`);
  });

  it('maxLifetimeSeconds stops a running instance; silence after the stop halts it', async function () {
    const { instanceID, handle } = await rig.launch({ stallingIntervalSeconds: STALL, maxLifetimeSeconds: 600 });
    await rig.waitForStatus(instanceID, 'Submitted');
    await rig.heartbeat(await rig.uniqueID(instanceID), { load: 1, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 1 });
    const final = await handle.result();
    assert.equal(final.status, 'Halted');
    assert.deepEqual(await rig.history(instanceID), ['New', 'Submitted', 'Running', 'Stopping', 'Halted']);
  });
});
