import { strict as assert } from 'node:assert';
import type { Client } from '@temporalio/client';
import { createDirectorActivities } from '../activities/director';
import { DEFAULT_SAFETY, type SafetyConfig, deferSeconds, recoveryGraceSeconds, validateSafety } from '../src/safety/config';
import { FleetGuard } from '../src/safety/guard';
import { startPulse } from '../src/safety/pulse';
import { SafetyStore, backoffSeconds } from '../src/db/safety-store';
import { registry } from '../src/ops/metrics';
import { createLogger } from '../src/ops/log';
import type { VirtualMachineDB } from '../src/db/vmdb';
import { ageInstance, forceStatus, ok, onEveryBackend } from './support/backends';

const STALL = 2400;
const quiet = createLogger({ level: 'silent' });

function config(over: { [K in keyof SafetyConfig]?: Partial<SafetyConfig[K]> } = {}): SafetyConfig {
  const out = structuredClone(DEFAULT_SAFETY);
  for (const [section, values] of Object.entries(over)) Object.assign((out as unknown as Record<string, object>)[section], values);
  return out;
}

async function running(db: VirtualMachineDB, endpoint: string, n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = ok(await db.insertInstance(`uid-${endpoint}-${i}-${Math.random()}`, 'img', `vm-${endpoint}-${i}-${Math.random()}`, endpoint, 'pod'));
    await forceStatus(db, id, 'Running');
    ids.push(id);
  }
  return ids;
}

async function gauge(scope: string): Promise<number | undefined> {
  const metric = (await registry.getSingleMetric('vmdb_safety_guard_tripped')!.get()).values.find((v) => v.labels.scope === scope);
  return metric?.value;
}

async function clearSafety(db: VirtualMachineDB): Promise<void> {
  for (const table of ['vm_EndpointControl', 'vm_InstanceControl', 'vm_FleetControl']) ok(await db._query(`DELETE FROM \`${table}\``));
}

onEveryBackend(
  'fleet-safety guard',
  (fx) => {
    beforeEach(async function () {
      await clearSafety(fx.db);
    });

    it('a mass silence at an endpoint trips its guard (metric + mark), holds stalls, and clears with a recovery grace', async function () {
      const ids = await running(fx.db, 'A::ce', 4);
      for (const id of ids.slice(0, 3)) await ageInstance(fx.db, id, STALL + 60);
      let clock = new Date();
      const guard = new FleetGuard(fx.db, config({ guard: { recoveryGraceSeconds: 300 } }), quiet, () => clock);
      const held = await guard.silenceVerdict(ids[0], 'A::ce', 'stall');
      assert.equal(held.allow, false);
      assert.equal(held.rule, 'guard');
      assert.match(held.reason!, /3 of 4 Running instances in endpoint:A::ce are silent/);
      assert.equal(held.retryInSeconds, 300, 'deferSeconds 0: a quarter of the stalling interval, at most 300 s');
      assert.equal(await gauge('endpoint:A::ce'), 1);
      assert.equal((await guard.store.mark('guard:endpoint:A::ce')).value, 'tripped');

      // Heartbeats come back for two of them: 1 of 4 silent, the guard clears, the grace holds the last one.
      for (const id of ids.slice(1, 3)) ok(await fx.db._query('UPDATE `vm_Instances` SET `LastUpdate` = ? WHERE `InstanceID` = ?', [new Date().toISOString().slice(0, 19).replace('T', ' '), id]));
      const grace = await guard.silenceVerdict(ids[0], 'A::ce', 'stall');
      assert.equal(grace.allow, false);
      assert.match(grace.reason!, /recovery grace after the endpoint:A::ce guard cleared/);
      assert.equal(await gauge('endpoint:A::ce'), 0);
      assert.equal((await guard.store.mark('guard:endpoint:A::ce')).value, 'clear');

      clock = new Date(Date.now() + 301_000);
      assert.deepEqual(await guard.silenceVerdict(ids[0], 'A::ce', 'stall'), { allow: true, retryInSeconds: 0 });
    });

    it('a few silent instances are not a mass silence: below minSilentInstances they may be stalled', async function () {
      const ids = await running(fx.db, 'B::ce', 2);
      for (const id of ids) await ageInstance(fx.db, id, STALL + 60);
      const guard = new FleetGuard(fx.db, config(), quiet);
      assert.equal((await guard.silenceVerdict(ids[0], 'B::ce', 'stall')).allow, true);
    });

    it('silence spread over endpoints trips the fleet-wide guard', async function () {
      const ids = [...(await running(fx.db, 'C::one', 2)), ...(await running(fx.db, 'C::two', 2))];
      for (const id of ids) await ageInstance(fx.db, id, STALL + 60);
      const guard = new FleetGuard(fx.db, config(), quiet);
      const verdict = await guard.silenceVerdict(ids[0], 'C::one', 'halt');
      assert.equal(verdict.allow, false);
      assert.match(verdict.reason!, /4 of 4 Running instances in fleet are silent/);
      assert.equal(await gauge('fleet'), 1);
    });

    it('pulses: a starting component holds stalls for the grace; a stale pulse holds them; a graceful stop releases', async function () {
      const [id] = await running(fx.db, 'D::ce', 1);
      await ageInstance(fx.db, id, STALL + 60);
      const t0 = Date.now();
      let clock = new Date(t0);
      const cfg = config({ guard: { recoveryGraceSeconds: 120 }, pulse: { everySeconds: 3600, outageAfterSeconds: 100 } });
      const guard = new FleetGuard(fx.db, cfg, quiet, () => clock);
      const pulse = startPulse('worker', fx.db, cfg, { log: quiet, now: () => clock });
      try {
        await pulse.beat();
        let verdict = await guard.silenceVerdict(id, 'D::ce', 'stall');
        assert.equal(verdict.rule, 'outage');
        assert.match(verdict.reason!, /recovery grace after an outage of the worker \(starting\)/);

        clock = new Date(t0 + 50_000);
        await pulse.beat(); // a pulse within outageAfterSeconds: no new outage
        clock = new Date(t0 + 125_000);
        assert.equal((await guard.silenceVerdict(id, 'D::ce', 'stall')).allow, true);

        clock = new Date(t0 + 200_000); // last pulse 150 s ago: the worker is down now
        verdict = await guard.silenceVerdict(id, 'D::ce', 'stall');
        assert.equal(verdict.rule, 'outage');
        assert.match(verdict.reason!, /the worker has not recorded a pulse since/);

        await pulse.beat(); // back after the gap: an outage that ends now
        assert.match((await guard.store.mark('outage:worker')).value, /^down since /);
        assert.equal((await guard.silenceVerdict(id, 'D::ce', 'stall')).rule, 'outage');
      } finally {
        await pulse.stop();
      }
      assert.equal((await guard.store.mark('pulse:worker')).at, null, 'a graceful stop removes the pulse');
    });

    it('the halt cap holds stalls at an endpoint that already had maxPerEndpoint within the window', async function () {
      const ids = await running(fx.db, 'E::ce', 3);
      for (const id of ids) await ageInstance(fx.db, id, STALL + 60);
      const guard = new FleetGuard(fx.db, config({ guard: { minSilentInstances: 10 }, halts: { maxPerEndpoint: 2, windowSeconds: 3600 } }), quiet);
      for (const id of ids.slice(0, 2)) {
        assert.equal((await guard.silenceVerdict(id, 'E::ce', 'stall')).allow, true);
        ok(await fx.db.declareInstanceStalled(id));
      }
      const verdict = await guard.silenceVerdict(ids[2], 'E::ce', 'stall');
      assert.equal(verdict.rule, 'cap');
      assert.match(verdict.reason!, /2 instances of E::ce were stalled within 3600 s \(cap 2\)/);
    });

    it('manual control holds every automatic action until it is cleared', async function () {
      const [id] = await running(fx.db, 'F::ce', 1);
      const guard = new FleetGuard(fx.db, config(), quiet);
      await guard.store.setManual(id, 'debugging a job');
      for (const action of ['lifetime', 'drain'] as const) {
        const verdict = await guard.manualVerdict(id, action);
        assert.deepEqual([verdict.allow, verdict.rule], [false, 'manual']);
        assert.match(verdict.reason!, /under manual control: debugging a job/);
      }
      assert.equal((await guard.silenceVerdict(id, 'F::ce', 'stall')).rule, 'manual');
      assert.equal(await guard.store.clearManual(id), true);
      assert.equal(await guard.store.clearManual(id), false);
      assert.equal((await guard.manualVerdict(id, 'lifetime')).allow, true);
    });

    it('the stalled sweep stalls a few silent instances but holds a mass silence', async function () {
      // Workflows of stalled instances are "running": the sweep leaves their halting to them.
      const client = { workflow: { getHandle: () => ({ describe: async () => ({ status: { name: 'RUNNING' } }) }) } } as unknown as Client;
      const sweep = () => createDirectorActivities({ db: fx.db, client, taskQueue: 'unused', endpoints: [], drivers: new Map(), safety: config() }).sweepStalled();
      const few = await running(fx.db, 'H::few', 2);
      for (const id of few) await ageInstance(fx.db, id, STALL + 60);
      assert.deepEqual(await sweep(), { stalled: few, halted: [] });

      const many = await running(fx.db, 'H::many', 4);
      for (const id of many) await ageInstance(fx.db, id, STALL + 60);
      const report = await sweep();
      assert.deepEqual([report.stalled, report.halted], [[], []]);
      assert.deepEqual(report.held!.map((h) => h.instanceID), many);
      assert.match(report.held![0].reason, /4 of 4 Running instances in endpoint:H::many are silent/);
      for (const id of many) assert.equal(ok(await fx.db.getInstanceParameter('Status', id)), 'Running');
    });

    it('endpoint health: failures back off exponentially (capped), a success or a resume clears it; pause and mode', async function () {
      const store = SafetyStore.of(fx.db);
      const backoff = { initialSeconds: 60, maxSeconds: 200 };
      const t0 = new Date(Math.floor(Date.now() / 1000) * 1000);
      let health = await store.recordCreateFailure('G::ce', 'quota', 'Instance limit reached', backoff, t0);
      assert.deepEqual([health.failures, health.lastReason, health.lastMessage, health.backoffUntil], [1, 'quota', 'Instance limit reached', new Date(t0.getTime() + 60_000).toISOString()]);
      health = await store.recordCreateFailure('G::ce', 'auth', 'credentials expired', backoff, t0);
      assert.deepEqual([health.failures, health.lastReason, health.backoffUntil], [2, 'auth', new Date(t0.getTime() + 120_000).toISOString()]);
      health = await store.recordCreateFailure('G::ce', 'auth', 'credentials expired', backoff, t0);
      assert.equal(health.backoffUntil, new Date(t0.getTime() + 200_000).toISOString(), 'capped at maxSeconds');
      await store.recordCreateSuccess('G::ce');
      health = await store.endpoint('G::ce');
      assert.deepEqual([health.failures, health.backoffUntil, health.lastReason], [0, null, 'auth']);

      assert.equal((await store.pauseEndpoint('G::ce', 'maintenance')).paused, true);
      assert.deepEqual((await store.endpoints()).map((e) => [e.endpoint, e.paused, e.pauseReason]), [['G::ce', true, 'maintenance']]);
      await store.recordCreateFailure('G::ce', 'capacity', 'no hosts', backoff);
      health = await store.resumeEndpoint('G::ce');
      assert.deepEqual([health.paused, health.failures, health.backoffUntil], [false, 0, null]);

      assert.equal(await store.mode(), 'normal');
      await store.setMode('drain');
      assert.equal(await store.mode(), 'drain');
      assert.deepEqual([0, 1, 2, 3, 40].map((n) => backoffSeconds(n, { initialSeconds: 10, maxSeconds: 1000 })), [0, 10, 20, 40, 1000]);
    });
  },
  { stallingInterval: STALL },
);

describe('safety configuration', function () {
  it('fills defaults and names every bad key or value', function () {
    assert.deepEqual(validateSafety(undefined), DEFAULT_SAFETY);
    assert.equal(validateSafety({ guard: { maxSilentFraction: 0.8 } }).guard.maxSilentFraction, 0.8);
    assert.equal(validateSafety({ reconcile: { stopZombies: true } }).reconcile.stopZombies, true);
    assert.throws(() => validateSafety({ gaurd: {} }), /safety.gaurd is not a safety setting/);
    assert.throws(() => validateSafety({ guard: { maxSilentFraction: 1.5 } }), /safety.guard.maxSilentFraction must be a number in \(0, 1\]/);
    assert.throws(() => validateSafety({ halts: { maxPerEndpoint: 0 } }), /safety.halts.maxPerEndpoint must be a positive integer/);
    assert.throws(() => validateSafety({ reconcile: { stopZombies: 'yes' } }), /safety.reconcile.stopZombies must be true or false/);
    assert.throws(() => validateSafety({ pulse: { every: 1 } }), /safety.pulse.every is not a safety setting/);
    assert.equal(validateSafety({ guard: { recoveryGraceSeconds: 0, deferSeconds: 30 } }).guard.deferSeconds, 30);
    assert.throws(() => validateSafety({ guard: { recoveryGraceSeconds: -1 } }), /safety.guard.recoveryGraceSeconds must be a whole number of seconds \(0: automatic\)/);
    const auto = validateSafety({});
    assert.deepEqual([recoveryGraceSeconds(auto, 2400), recoveryGraceSeconds(auto, 6), deferSeconds(auto, 2400), deferSeconds(auto, 6), deferSeconds(auto, 1)], [900, 6, 300, 2, 1]);
  });
});
