import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { buildApi } from '../src/api/server';
import { hashToken, newSecret } from '../src/auth/tokens';
import { type UsagePrice, usageByDay, usagePrices, usageTotals } from '../src/db/usage';
import { validateFleet } from '../src/config/fleet';
import { LifecycleClient } from '../src/temporal/lifecycle-client';
import { refreshUsageTotals, renderMetrics, trackInstances } from '../src/ops/metrics';
import { VirtualMachineDB } from '../src/db/vmdb';
import { BACKENDS, ok, onEveryBackend } from './support/backends';

const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');

/**
 * Four instances with history at set times (UTC):
 * - A (E1, I1, pod P): New 11-01 22:00, Submitted 22:30, Running 23:00, Running 11-02 01:30, Halted 02:00.
 *   Up 11-01 22:30 to 11-02 02:00: 1.5 h on 11-01, 2 h on 11-02.
 * - B (E1, I1, P): New and Submitted 11-02 10:00, Running 10:15, Stalled 11:45, Halted 11:45:36. 1.76 h on 11-02.
 * - C (E2, I2, P): New 11-02 12:00 only. Never created: nothing.
 * - D (E2, I2, pod Q): Running 10-31 23:00 (no Submitted), Running 11-03 06:00. 24 h on each of 11-01 and 11-02.
 */
const ROWS: [string, [string, string][]][] = [
  ['A', [['New', '2026-11-01 22:00:00'], ['Submitted', '2026-11-01 22:30:00'], ['Running', '2026-11-01 23:00:00'], ['Running', '2026-11-02 01:30:00'], ['Halted', '2026-11-02 02:00:00']]],
  ['B', [['New', '2026-11-02 10:00:00'], ['Submitted', '2026-11-02 10:00:00'], ['Running', '2026-11-02 10:15:00'], ['Stalled', '2026-11-02 11:45:00'], ['Halted', '2026-11-02 11:45:36']]],
  ['C', [['New', '2026-11-02 12:00:00']]],
  ['D', [['Running', '2026-10-31 23:00:00'], ['Running', '2026-11-03 06:00:00']]],
];
const LABELS: Record<string, [string, string, string]> = { A: ['Site1::ce1', 'I1', 'P'], B: ['Site1::ce1', 'I1', 'P'], C: ['Site2::ce2', 'I2', 'P'], D: ['Site2::ce2', 'I2', 'Q'] };
const PRICES: UsagePrice[] = [{ endpoint: 'Site1::ce1', image: 'I1', pricePerHour: 0.5 }];

async function loadHistory(db: VirtualMachineDB): Promise<void> {
  for (const [name, rows] of ROWS) {
    const [endpoint, image, pod] = LABELS[name];
    const id = ok(await db.insertInstance('', image, `usage-${name}`, endpoint, pod));
    ok(await db._update('DELETE FROM `vm_History` WHERE `InstanceID` = ?', [id]));
    for (const [status, at] of rows) {
      ok(await db._update('INSERT INTO `vm_History` (`InstanceID`, `Status`, `Load`, `Jobs`, `TransferredFiles`, `TransferredBytes`, `Update`) VALUES (?, ?, 0, 0, 0, 0, ?)', [id, status, at]));
    }
  }
}

const EXPECTED_DAYS = [
  { day: '2026-11-01', endpoint: 'Site1::ce1', image: 'I1', pod: 'P', vmHours: 1.5, instances: 1, cost: 0.75 },
  { day: '2026-11-01', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 24, instances: 1 },
  { day: '2026-11-02', endpoint: 'Site1::ce1', image: 'I1', pod: 'P', vmHours: 3.76, instances: 2, cost: 1.88 },
  { day: '2026-11-02', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 24, instances: 1 },
];

onEveryBackend('VM-hours from the history', (fx) => {
  it('per day, endpoint, image and pod, as computed by hand, with costs where priced', async function () {
    await loadHistory(fx.db);
    assert.deepEqual(await usageByDay(fx.db, { from: '2026-11-01', to: '2026-11-02' }, PRICES), EXPECTED_DAYS);
    // A day outside every span, and filters.
    assert.deepEqual(await usageByDay(fx.db, { from: '2026-10-01', to: '2026-10-30' }), []);
    assert.deepEqual(await usageByDay(fx.db, { from: '2026-10-31', to: '2026-11-03', pod: 'Q' }), [
      { day: '2026-10-31', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 1, instances: 1 },
      { day: '2026-11-01', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 24, instances: 1 },
      { day: '2026-11-02', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 24, instances: 1 },
      { day: '2026-11-03', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 6, instances: 1 },
    ]);
    assert.deepEqual(await usageByDay(fx.db, { from: '2026-11-01', to: '2026-11-02', endpoint: "Site1::ce1' OR '1'='1" }), [], 'values are bound');
  });

  it('the counter totals: every whole span, in seconds', async function () {
    await loadHistory(fx.db);
    const totals = (await usageTotals(fx.db)).sort((a, b) => a.endpoint.localeCompare(b.endpoint));
    // A: 3.5 h = 12600 s; B: 1 h 45 min 36 s = 6336 s; D: 55 h = 198000 s.
    assert.deepEqual(totals, [
      { endpoint: 'Site1::ce1', image: 'I1', pod: 'P', vmSeconds: 18936 },
      { endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmSeconds: 198000 },
    ]);
  });
});

describe('GET /api/v1/usage, vmdb usage and vmdb_vm_seconds_total [mariadb]', function () {
  this.timeout(60_000);
  let fx: { db: VirtualMachineDB };
  let app: Awaited<ReturnType<typeof buildApi>>;
  let temporal: Client;
  let url: string;
  let untrack: () => void;
  const token = newSecret();

  before(async function () {
    fx = { db: await VirtualMachineDB.open({ url: await BACKENDS[0].createDatabase() }) };
    await loadHistory(fx.db);
    const fleet = validateFleet({ endpoints: [{ endpoint: 'Site1::ce1', image: 'I1', runningPod: 'P', maxInstances: 1, pricePerHour: 0.5, driver: { type: 'local' } }] });
    // Usage needs no Temporal: a client that reaches nothing.
    temporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', interceptors: [] }) });
    app = await buildApi({ db: fx.db, lifecycle: new LifecycleClient(temporal, fx.db), temporal, operators: [{ name: 'reader', role: 'read', sha256: hashToken(token) }], tokenSecret: newSecret(), prices: usagePrices(fleet) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    untrack = trackInstances(fx.db);
  });
  after(async function () {
    untrack?.();
    await app?.close();
    await temporal?.connection.close();
    await fx?.db.close();
    await BACKENDS[0].dropAll();
  });

  const get = (query: string, auth = token) => app.inject({ method: 'GET', url: `/api/v1/usage${query}`, headers: { authorization: `Bearer ${auth}` } });

  it('answers the rows, the totals and the definition; prices come from the fleet file', async function () {
    const res = await get('?to=2026-11-02&days=2');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual([body.from, body.to, body.rows], ['2026-11-01', '2026-11-02', EXPECTED_DAYS]);
    assert.deepEqual(body.totals, [
      { day: '2026-11-01..2026-11-02', endpoint: 'Site1::ce1', image: 'I1', pod: 'P', vmHours: 5.26, instances: 3, cost: 2.63 },
      { day: '2026-11-01..2026-11-02', endpoint: 'Site2::ce2', image: 'I2', pod: 'Q', vmHours: 48, instances: 2 },
    ]);
    assert.match(body.definition, /first vm_History row other than New to its last/);
  });

  it('bounds its parameters and needs a token', async function () {
    for (const [query, pattern] of [
      ['?to=2026-02-30', /to/],
      ['?to=0000-01-01', /to/],
      ['?days=93', /days/],
      ['?days=0', /days/],
      ['?from=2026-11-01', /from/],
      ['?bucket=1', /bucket/],
    ] as const) {
      const res = await get(query);
      assert.equal(res.statusCode, 400, query);
      assert.match(res.json().message, pattern);
    }
    assert.equal((await get('', 'wrong')).statusCode, 401);
    const recent = await get('');
    assert.equal(recent.statusCode, 200, 'the last 7 days by default');
  });

  it('vmdb usage prints the table and the totals', async function () {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        execFile(process.execPath, [CLI, 'usage', ...args], { env: { ...process.env, VMDB_API_URL: url, VMDB_TOKEN: token } }, (err, stdout) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout }));
      });
    const days = await run(['--to', '2026-11-02', '--days', '2']);
    assert.equal(days.code, 0);
    assert.match(days.stdout, /2026-11-02\s+Site1::ce1\s+I1\s+P\s+3\.76\s+2\s+1\.88/);
    assert.match(days.stdout, /53\.26 VM-hours from 2026-11-01 to 2026-11-02, cost 2\.63/);
    const totals = await run(['--to', '2026-11-02', '--days', '2', '--totals']);
    assert.match(totals.stdout, /Site2::ce2\s+I2\s+Q\s+48\.00/);
    assert.equal((await run(['--to', 'soon'])).code, 2);
    assert.equal((await run(['--days', '93'])).code, 2);
  });

  it('the counter carries every span in seconds, and grows with the history', async function () {
    refreshUsageTotals();
    let text = (await renderMetrics()).body;
    assert.match(text, /vmdb_vm_seconds_total\{endpoint="Site1::ce1",image="I1",pod="P"\} 18936/);
    assert.match(text, /vmdb_vm_seconds_total\{endpoint="Site2::ce2",image="I2",pod="Q"\} 198000/);
    const [[d]] = ok(await fx.db.getFields('vm_Instances', ['InstanceID'], { Name: 'usage-D' })) as [number][];
    ok(await fx.db._update('INSERT INTO `vm_History` (`InstanceID`, `Status`, `Load`, `Jobs`, `TransferredFiles`, `TransferredBytes`, `Update`) VALUES (?, ?, 0, 0, 0, 0, ?)', [d, 'Halted', '2026-11-03 07:00:00']));
    refreshUsageTotals();
    text = (await renderMetrics()).body;
    assert.match(text, /vmdb_vm_seconds_total\{endpoint="Site2::ce2",image="I2",pod="Q"\} 201600/);
  });
});
