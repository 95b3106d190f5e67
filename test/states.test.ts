import { strict as assert } from 'node:assert';
import { IMAGE_STATES, INSTANCE_STATES, checkTransition } from '../entities/states';
import type { VirtualMachineDB } from '../src';
import { ageInstance, forceStatus, ok, onEveryBackend } from './support/backends';

// The spec's table (semantics.md, "Transitions"), restated here so the code is checked against the document.
const SPEC: Record<string, Record<string, string[]>> = {
  Image: { Validated: ['New', 'Validated'] },
  Instance: {
    Submitted: ['New'],
    Wait_ssh_context: ['Submitted'],
    Contextualizing: ['Wait_ssh_context'],
    Running: ['New', 'Submitted', 'Contextualizing', 'Running', 'Stalled'],
    Stopping: ['Running', 'Stalled'],
    Halted: ['New', 'Running', 'Stopping', 'Stalled', 'Halted'],
    Stalled: ['New', 'Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running'],
  },
};

const expectedState = (current: string) => (current === 'Halted' ? 'halt' : current === 'Stopping' ? 'stop' : current);

describe('transition table (pure)', function () {
  for (const [kind, states] of [['Image', IMAGE_STATES], ['Instance', INSTANCE_STATES]] as const) {
    for (const current of states) {
      for (const target of states) {
        it(`${kind}: ${current} -> ${target}`, function () {
          const verdict = checkTransition(kind, current, target);
          const sources = SPEC[kind][target];
          if (!sources) {
            assert.deepEqual(verdict, { allowed: false, message: `Transition to ${target} not possible` });
          } else if (sources.includes(current)) {
            assert.deepEqual(verdict, { allowed: true, refreshOnly: current === target });
          } else {
            assert.deepEqual(verdict, {
              allowed: false,
              message: `Transition ( ${current} -> ${target} ) not allowed`,
              state: expectedState(current),
            });
          }
        });
      }
    }
  }
});

const UNIQUE = 'vm-0001';

/** The facade call that asks for each instance target state. */
const REQUEST: Record<string, (db: VirtualMachineDB, id: number) => Promise<{ OK: boolean; Message?: string; State?: string }>> = {
  Submitted: (db) => db.declareInstanceSubmitted(UNIQUE),
  Wait_ssh_context: (db, id) => db.declareInstanceWaitSshContext(id),
  Contextualizing: (db, id) => db.declareInstanceContextualizing(id),
  Running: (db) => db.declareInstanceRunning(UNIQUE, '192.0.2.10'),
  Stopping: (db, id) => db.declareInstanceStopping(id),
  Halted: (db, id) => db.recordDBHalt(id, 0.5),
  Stalled: (db, id) => db.declareInstanceStalled(id),
};

async function historyStatuses(db: VirtualMachineDB, id: number): Promise<string[]> {
  return ok(await db.getHistoryForInstanceID(id)).Records.map((r) => r[0] as string);
}

onEveryBackend('every instance transition through the facade', (fx) => {
  for (const target of Object.keys(REQUEST)) {
    for (const current of INSTANCE_STATES) {
      const allowed = SPEC.Instance[target].includes(current);
      it(`${current} -> ${target}: ${allowed ? 'allowed' : 'refused'}`, async function () {
        const id = ok(await fx.db.insertInstance(UNIQUE, 'img', 'inst', 'cloud', 'pod'));
        await forceStatus(fx.db, id, current);
        if (current === 'Error') ok(await fx.db._query('UPDATE `vm_Instances` SET `ErrorMessage` = ? WHERE `InstanceID` = ?', ['broken disk', id]));
        // Stalling needs silence longer than the interval; everything else must not care.
        await ageInstance(fx.db, id, fx.db.stallingInterval + 60);
        const before = await historyStatuses(fx.db, id);

        const result = await REQUEST[target](fx.db, id);
        const status = ok(await fx.db.getInstanceParameter('Status', id));
        const after = await historyStatuses(fx.db, id);
        if (allowed) {
          assert.equal(result.OK, true, String(result.Message));
          assert.equal(status, target);
          assert.deepEqual(after, [...before, target], 'one history row with the new status');
        } else {
          assert.equal(result.OK, false);
          assert.equal(status, current, 'a refusal changes nothing');
          assert.deepEqual(after, before, 'a refusal writes no history');
          if (current === 'Error') {
            assert.equal(result.Message, 'broken disk');
          } else {
            assert.equal(result.Message, `Transition ( ${current} -> ${target} ) not allowed`);
            assert.equal(result.State, expectedState(current));
          }
        }
      });
    }
  }

  it('a transition to the current state only refreshes LastUpdate', async function () {
    const id = ok(await fx.db.insertInstance(UNIQUE, 'img', 'inst', 'cloud', 'pod'));
    await forceStatus(fx.db, id, 'Halted');
    await ageInstance(fx.db, id, 3600);
    const stale = ok(await fx.db.getInstanceParameter('LastUpdate', id)) as Date;
    ok(await fx.db.recordDBHalt(id, 0));
    const fresh = ok(await fx.db.getInstanceParameter('LastUpdate', id)) as Date;
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Halted');
    assert.ok(fresh.getTime() - stale.getTime() >= 3590 * 1000, 'LastUpdate moved to now');
  });

  it('a stored status outside the valid list turns into Error "Invalid Status: <s>"', async function () {
    const id = ok(await fx.db.insertInstance(UNIQUE, 'img', 'inst', 'cloud', 'pod'));
    await forceStatus(fx.db, id, 'Bogus');
    const result = await fx.db.declareInstanceStopping(id);
    assert.deepEqual(result, { OK: false, Message: 'Invalid Status: Bogus' });
    assert.equal(ok(await fx.db.getInstanceParameter('Status', id)), 'Error');
    assert.equal(ok(await fx.db.getInstanceParameter('ErrorMessage', id)), 'Invalid Status: Bogus');
  });

  it('Wait_ssh_context and Contextualizing are valid states (the seed list omitted them)', async function () {
    const id = ok(await fx.db.insertInstance(UNIQUE, 'img', 'inst', 'cloud', 'pod'));
    ok(await fx.db.declareInstanceWaitSshContext(id));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Wait_ssh_context');
    ok(await fx.db.declareInstanceContextualizing(id));
    assert.equal(ok(await fx.db.getInstanceStatus(id)), 'Contextualizing');
    ok(await fx.db.declareInstanceRunning(UNIQUE, '192.0.2.1'));
    assert.deepEqual(await historyStatuses(fx.db, id), ['Submitted', 'Wait_ssh_context', 'Contextualizing', 'Running']);
  });
});
