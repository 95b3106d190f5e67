import { strict as assert } from 'node:assert';
import type { VirtualMachineDB } from '../src';
import { ok, onEveryBackend } from './support/backends';

/**
 * The read methods: getInstancesContent, getInstanceCounters,
 * getHistoryForInstanceID, getInstancesByStatus, getHistoryValues and the
 * four getRunningInstances*History views.
 *
 * Expected values are worked out by hand from the fixtures, never by calling
 * the code under test.
 */

type Db = VirtualMachineDB;
type Outcome<T = unknown> = { OK: true; Value: T } | { OK: false; Message: string };

function refused(result: Outcome, ...fragments: string[]): string {
  assert.equal(result.OK, false, `expected a refusal, got ${JSON.stringify(result)}`);
  const message = (result as { Message: string }).Message;
  for (const fragment of fragments) {
    assert.ok(message.includes(fragment), `message ${JSON.stringify(message)} should mention ${JSON.stringify(fragment)}`);
  }
  return message;
}

// ---- a small fleet built through the real state methods --------------------------

/**
 * | inst.Name | UniqueID | image | Endpoint | Pod  | Status    | image status |
 * | vm-a1     | u1       | imgA  | ep1      | podX | Running   | Validated    |  (heartbeat)
 * | vm-a2     | u2       | imgA  | ep2      | podX | Submitted |              |
 * | vm-b1     | u3       | imgB  | ep1      | podY | Running   | New          |  (declareInstanceRunning)
 * | vm-b2     | ''       | imgB  | ep3      | podY | New       |              |
 * | vm-a3     | u5       | imgA  | ep2      | podZ | Halted    |              |
 */
async function seedFleet(db: Db): Promise<Record<string, number>> {
  const ids: Record<string, number> = {};
  const add = async (uid: string, image: string, name: string, endpoint: string, pod: string) => {
    ids[name] = ok(await db.insertInstance(uid, image, name, endpoint, pod));
  };
  await add('u1', 'imgA', 'vm-a1', 'ep1', 'podX');
  await add('u2', 'imgA', 'vm-a2', 'ep2', 'podX');
  await add('u3', 'imgB', 'vm-b1', 'ep1', 'podY');
  await add('', 'imgB', 'vm-b2', 'ep3', 'podY');
  await add('u5', 'imgA', 'vm-a3', 'ep2', 'podZ');
  ok(await db.instanceIDHeartBeat('u1', 0.5, 1, 0, 0, 100));
  ok(await db.declareInstanceRunning('u3', '10.0.0.3'));
  ok(await db.declareInstanceRunning('u5', '10.0.0.5'));
  ok(await db.declareInstanceHalting('u5', 0.1));
  return ids;
}

type Content = { ParameterNames: string[]; Records: unknown[][]; TotalRecords: number };

/** One column of a getInstancesContent answer, found through ParameterNames. */
function contentColumn(content: Content, name: string): unknown[] {
  const index = content.ParameterNames.indexOf(name);
  assert.ok(index >= 0, `ParameterNames ${JSON.stringify(content.ParameterNames)} should include ${name}`);
  return content.Records.map((record) => record[index]);
}

/** The instance names of a getInstancesContent answer, in its order. */
const contentNames = (content: Content): string[] => contentColumn(content, 'inst.Name') as string[];

onEveryBackend('queries: getInstancesContent', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  it('answers ParameterNames, one Record per instance of the join and TotalRecords', async function () {
    const content = ok(await fx.db.getInstancesContent());
    assert.equal(content.TotalRecords, 5);
    assert.equal(content.Records.length, 5);
    for (const record of content.Records) assert.equal(record.length, content.ParameterNames.length);
    const byName = (name: string): Record<string, unknown> => {
      const index = contentNames(content).indexOf(name);
      return Object.fromEntries(content.ParameterNames.map((p, i) => [p, content.Records[index][i]]));
    };
    const b1 = byName('vm-b1');
    assert.equal(b1['inst.UniqueID'], 'u3');
    assert.equal(b1['inst.Endpoint'], 'ep1');
    assert.equal(b1['inst.RunningPod'], 'podY');
    assert.equal(b1['inst.Status'], 'Running');
    assert.equal(b1['inst.PublicIP'], '10.0.0.3');
    assert.equal(b1['img.Name'], 'imgB');
    assert.equal(b1['img.Status'], 'New');
    assert.ok(b1['inst.LastUpdate'] instanceof Date);
    const a1 = byName('vm-a1');
    assert.equal(a1['img.Name'], 'imgA');
    assert.equal(a1['img.Status'], 'Validated');
    assert.equal(a1['inst.Load'], 0.5);
    assert.equal(a1['inst.Jobs'], 1);
  });

  const selections: { title: string; selDict: Record<string, unknown>; names: string[] }[] = [
    { title: 'nothing: every instance', selDict: {}, names: ['vm-a1', 'vm-a2', 'vm-a3', 'vm-b1', 'vm-b2'] },
    { title: 'a bare instance field', selDict: { Status: 'Running' }, names: ['vm-a1', 'vm-b1'] },
    { title: 'a bare Name (the instance name, not the image name)', selDict: { Name: 'vm-a2' }, names: ['vm-a2'] },
    { title: 'a bare Name that is only an image name', selDict: { Name: 'imgA' }, names: [] },
    { title: 'an inst.-qualified field with a list (ORed)', selDict: { 'inst.Status': ['Submitted', 'New'] }, names: ['vm-a2', 'vm-b2'] },
    { title: 'an img.-qualified Name', selDict: { 'img.Name': 'imgB' }, names: ['vm-b1', 'vm-b2'] },
    { title: 'an img.-qualified Status', selDict: { 'img.Status': 'Validated' }, names: ['vm-a1', 'vm-a2', 'vm-a3'] },
    { title: 'two fields (ANDed), one a list', selDict: { Endpoint: ['ep1', 'ep2'], Status: 'Running' }, names: ['vm-a1', 'vm-b1'] },
    { title: 'fields of both tables (ANDed)', selDict: { 'inst.Endpoint': 'ep1', 'img.Name': 'imgA' }, names: ['vm-a1'] },
    { title: 'fields that cannot all hold', selDict: { Endpoint: 'ep3', 'img.Name': 'imgA' }, names: [] },
    { title: 'an unknown field (ignored)', selDict: { Bogus: 'x', Endpoint: 'ep3' }, names: ['vm-b2'] },
    { title: 'an unknown alias or column (ignored)', selDict: { 'nope.Name': 'x', 'img.Endpoint': 'ep1', 'inst.Bogus': 1 }, names: ['vm-a1', 'vm-a2', 'vm-a3', 'vm-b1', 'vm-b2'] },
    { title: 'a hostile free-text value (bound, matches nothing)', selDict: { 'inst.ErrorMessage': "x' OR '1'='1" }, names: [] },
  ];
  for (const c of selections) {
    it(`selects with ${c.title}`, async function () {
      const content = ok(await fx.db.getInstancesContent(c.selDict));
      assert.deepEqual(contentNames(content).sort(), c.names);
      assert.equal(content.TotalRecords, c.names.length);
    });
  }

  const sorts: { title: string; sortList: [string, string][]; names: string[] }[] = [
    { title: 'one field DESC', sortList: [['inst.Name', 'DESC']], names: ['vm-b2', 'vm-b1', 'vm-a3', 'vm-a2', 'vm-a1'] },
    { title: 'one bare field ASC', sortList: [['Name', 'ASC']], names: ['vm-a1', 'vm-a2', 'vm-a3', 'vm-b1', 'vm-b2'] },
    { title: 'two fields', sortList: [['Endpoint', 'ASC'], ['inst.Name', 'DESC']], names: ['vm-b1', 'vm-a1', 'vm-a3', 'vm-a2', 'vm-b2'] },
    { title: 'a field with ties (ties by InstanceID, in the same direction)', sortList: [['img.Name', 'DESC']], names: ['vm-b2', 'vm-b1', 'vm-a3', 'vm-a2', 'vm-a1'] },
    { title: 'a field with ties, ascending', sortList: [['img.Name', 'ASC']], names: ['vm-a1', 'vm-a2', 'vm-a3', 'vm-b1', 'vm-b2'] },
    { title: 'an image field first', sortList: [['img.Name', 'DESC'], ['inst.Name', 'ASC']], names: ['vm-b1', 'vm-b2', 'vm-a1', 'vm-a2', 'vm-a3'] },
    { title: 'an unknown field (ignored, the rest applies)', sortList: [['Bogus', 'DESC'], ['inst.Name', 'DESC']], names: ['vm-b2', 'vm-b1', 'vm-a3', 'vm-a2', 'vm-a1'] },
    { title: 'an unknown direction (ignored, the rest applies)', sortList: [['Endpoint', 'SIDEWAYS'], ['inst.Name', 'ASC']], names: ['vm-a1', 'vm-a2', 'vm-a3', 'vm-b1', 'vm-b2'] },
  ];
  for (const c of sorts) {
    it(`sorts by ${c.title}`, async function () {
      assert.deepEqual(contentNames(ok(await fx.db.getInstancesContent({}, c.sortList))), c.names);
    });
  }

  it('ignores a sortList made only of unknown fields and directions', async function () {
    const plain = ok(await fx.db.getInstancesContent({}, []));
    for (const sortList of [[['Bogus', 'ASC']], [['inst.Name', 'UP']], [['img.Nope', 'DESC'], ['Name', '']]] as [string, string][][]) {
      assert.deepEqual(contentNames(ok(await fx.db.getInstancesContent({}, sortList))), contentNames(plain));
    }
  });

  const pages: { title: string; selDict: Record<string, unknown>; start: number; limit: number; names: string[]; total: number }[] = [
    { title: 'the first page', selDict: {}, start: 0, limit: 2, names: ['vm-a1', 'vm-a2'], total: 5 },
    { title: 'a middle page', selDict: {}, start: 2, limit: 2, names: ['vm-a3', 'vm-b1'], total: 5 },
    { title: 'a short last page', selDict: {}, start: 4, limit: 2, names: ['vm-b2'], total: 5 },
    { title: 'a page past the end', selDict: {}, start: 10, limit: 2, names: [], total: 5 },
    { title: 'a page of a selection', selDict: { 'img.Name': 'imgA' }, start: 1, limit: 5, names: ['vm-a2', 'vm-a3'], total: 3 },
  ];
  for (const c of pages) {
    it(`pages: ${c.title}, TotalRecords counts every match`, async function () {
      const content = ok(await fx.db.getInstancesContent(c.selDict, [['inst.Name', 'ASC']], c.start, c.limit));
      assert.deepEqual(contentNames(content), c.names);
      assert.equal(content.TotalRecords, c.total);
    });
  }
});

// ---- counters, history of one instance, instances by status ---------------------------

onEveryBackend('queries: getInstanceCounters', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  const counters: { title: string; args: [string?, Record<string, unknown>?]; expected: Record<string, number> }[] = [
    { title: 'Status by default', args: [], expected: { Running: 2, Submitted: 1, New: 1, Halted: 1 } },
    { title: 'another field', args: ['Endpoint'], expected: { ep1: 2, ep2: 2, ep3: 1 } },
    { title: 'Status within a selection', args: ['Status', { Endpoint: 'ep2' }], expected: { Submitted: 1, Halted: 1 } },
    { title: 'a field within a list selection', args: ['RunningPod', { Status: ['Running', 'Halted'] }], expected: { podX: 1, podY: 1, podZ: 1 } },
    { title: 'a selection matching nothing', args: ['Status', { Endpoint: 'ep9' }], expected: {} },
  ];
  for (const c of counters) {
    it(`counts by ${c.title}`, async function () {
      assert.deepEqual(ok(await fx.db.getInstanceCounters(...c.args)), c.expected);
    });
  }

  it('counts instances per image id', async function () {
    const images = ok(await fx.db.getFields('vm_Images', ['Name', 'VMImageID']));
    const id = Object.fromEntries(images.map(([name, value]) => [name, String(value)]));
    assert.deepEqual(ok(await fx.db.getInstanceCounters('VMImageID')), { [id.imgA]: 3, [id.imgB]: 2 });
  });

  it('refuses a groupField or selDict key that is not a vm_Instances column', async function () {
    refused(await fx.db.getInstanceCounters('Bogus'), 'Bogus');
    refused(await fx.db.getInstanceCounters('img.Name'), 'img.Name');
    refused(await fx.db.getInstanceCounters('Status', { Bogus: 1 }), 'Bogus');
    refused(await fx.db.getInstanceCounters('Status', { TransferredFiles: 1 }), 'TransferredFiles');
  });
});

onEveryBackend('queries: getInstancesByStatus', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  /** Lists sorted, so that only membership is compared. */
  const normalised = (byImage: Record<string, string[]>) =>
    Object.fromEntries(Object.entries(byImage).map(([image, ids]) => [image, [...ids].sort()]));

  const cases: { status: string; expected: Record<string, string[]> }[] = [
    { status: 'Running', expected: { imgA: ['u1'], imgB: ['u3'] } },
    { status: 'Submitted', expected: { imgA: ['u2'] } },
    { status: 'New', expected: { imgB: [''] } },
    { status: 'Halted', expected: { imgA: ['u5'] } },
    { status: 'Stalled', expected: {} },
    { status: 'Wait_ssh_context', expected: {} },
  ];
  for (const c of cases) {
    it(`maps image names to the UniqueIDs in ${c.status}`, async function () {
      assert.deepEqual(normalised(ok(await fx.db.getInstancesByStatus(c.status))), c.expected);
    });
  }

  it('lists every instance of an image', async function () {
    ok(await fx.db.instanceIDHeartBeat('u2', 1, 0, 0, 0, 10));
    assert.deepEqual(normalised(ok(await fx.db.getInstancesByStatus('Running'))), { imgA: ['u1', 'u2'], imgB: ['u3'] });
  });

  it('refuses an unknown status', async function () {
    refused(await fx.db.getInstancesByStatus('Bogus'), 'Bogus');
    refused(await fx.db.getInstancesByStatus('Validated'), 'Validated');
  });
});

// ---- crafted history -----------------------------------------------------------------

/** Epoch seconds, a multiple of 300, 600, 900 and 1800, so bucket starts are easy to read. */
const B = 1_700_001_000;
const epochDate = (seconds: number): Date => new Date(seconds * 1000);
/** Now, truncated to the second (the precision of DATETIME). */
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

interface Figures {
  Load?: number;
  Jobs?: number;
  TransferredFiles?: number;
  TransferredBytes?: number;
}

/** Writes images and instances directly (no automatic history), so only crafted rows exist. */
async function addInstances(db: Db, specs: { name: string; image: string; endpoint: string; pod: string }[]): Promise<Record<string, number>> {
  const images: Record<string, number> = {};
  const ids: Record<string, number> = {};
  for (const spec of specs) {
    if (images[spec.image] === undefined) {
      const image = await db.insertFields('vm_Images', null, null, undefined, { Name: spec.image, Status: 'Validated' });
      ok(image);
      images[spec.image] = image.lastRowId!;
    }
    const instance = await db.insertFields('vm_Instances', null, null, undefined, {
      Name: spec.name, UniqueID: `uid-${spec.name}`, Endpoint: spec.endpoint, RunningPod: spec.pod,
      VMImageID: images[spec.image], Status: 'Running',
    });
    ok(instance);
    ids[spec.name] = instance.lastRowId!;
  }
  return ids;
}

async function historyRow(db: Db, instanceID: number, seconds: number, status: string, figures: Figures = {}): Promise<void> {
  ok(await db.insertFields('vm_History', null, null, undefined, {
    InstanceID: instanceID, Status: status, Load: 0, ...figures, Update: epochDate(seconds),
  }));
}

onEveryBackend('queries: getHistoryForInstanceID', (fx) => {
  it('returns the six named columns of its rows, oldest first, typed', async function () {
    const { i1, i2 } = await addInstances(fx.db, [
      { name: 'i1', image: 'imgA', endpoint: 'ep1', pod: 'p' },
      { name: 'i2', image: 'imgA', endpoint: 'ep1', pod: 'p' },
    ]);
    // Written out of order, and with another instance's row in between.
    await historyRow(fx.db, i1, B + 600, 'Running', { Load: 1.5, Jobs: 3, TransferredFiles: 4, TransferredBytes: 2 ** 33 });
    await historyRow(fx.db, i2, B + 300, 'Running', { Load: 9 });
    await historyRow(fx.db, i1, B, 'Submitted');
    await historyRow(fx.db, i1, B + 1200, 'Halted', { Load: 0.25 });
    const history = ok(await fx.db.getHistoryForInstanceID(i1));
    assert.deepEqual(history.ParameterNames, ['Status', 'Load', 'Update', 'Jobs', 'TransferredFiles', 'TransferredBytes']);
    assert.deepEqual(history.Records, [
      ['Submitted', 0, epochDate(B), 0, 0, 0],
      ['Running', 1.5, epochDate(B + 600), 3, 4, 2 ** 33],
      ['Halted', 0.25, epochDate(B + 1200), 0, 0, 0],
    ]);
  });

  it('records one row per state change made through the facade', async function () {
    const id = ok(await fx.db.insertInstance('u1', 'imgA', 'vm1', 'ep1', 'pod'));
    ok(await fx.db.declareInstanceRunning('u1', '192.0.2.1'));
    ok(await fx.db.instanceIDHeartBeat('u1', 2.5, 7, 8, 9, 60));
    ok(await fx.db.declareInstanceStopping(id));
    const history = ok(await fx.db.getHistoryForInstanceID(id));
    // Rows of one second may tie on Update: compare them as a set.
    const rows = history.Records.map(([status, load, , jobs, files, bytes]) => [status, load, jobs, files, bytes]);
    assert.deepEqual(rows.map((row) => JSON.stringify(row)).sort(), [
      ['Running', 0, 0, 0, 0],
      ['Running', 2.5, 7, 8, 9],
      ['Stopping', 0, 0, 0, 0],
      ['Submitted', 0, 0, 0, 0],
    ].map((row) => JSON.stringify(row)));
    for (const record of history.Records) assert.ok(record[2] instanceof Date);
  });

  it('answers no records for an unknown instance and refuses a bad id', async function () {
    assert.deepEqual(ok(await fx.db.getHistoryForInstanceID(12345)).Records, []);
    refused(await fx.db.getHistoryForInstanceID(-1), 'instanceId');
    refused(await fx.db.getHistoryForInstanceID('1 OR 1=1' as unknown as number), 'instanceId');
  });
});

// ---- getHistoryValues ------------------------------------------------------------------

/**
 * Two instances, buckets of 600 s from B:
 *
 * | offset | instance | Load | Jobs | Files | Bytes | bucket |
 * | +10    | i1       | 1.0  | 2    | 10    | 100   | B      |
 * | +100   | i2       | 2.0  | 1    | 1     | 50    | B      |
 * | +300   | i1       | 3.0  | 5    | 20    | 1000  | B      |
 * | +650   | i1       | 4.0  | 6    | 25    | 1500  | B+600  |   i2 silent: carried forward
 * | +1300  | i2       | 0.5  | 4    | 3     | 80    | B+1200 |   i1 silent: carried forward
 * | +1500  | i2       | 1.5  | 3    | 5     | 70    | B+1200 |   max per field within the bucket
 *
 * Bucket B:      Load (1+2+3)/3 = 2;   totals Jobs 5+1=6,  Files 20+1=21, Bytes 1000+50=1050  (first: 0 0 0)
 * Bucket B+600:  Load 4;               totals Jobs 6+1=7,  Files 25+1=26, Bytes 1500+50=1550  (1, 5, 500)
 * Bucket B+1200: Load (0.5+1.5)/2 = 1; totals Jobs 6+4=10, Files 25+5=30, Bytes 1500+80=1580  (4, 9, 530)
 */
async function seedHistory(db: Db): Promise<Record<string, number>> {
  const ids = await addInstances(db, [
    { name: 'i1', image: 'imgA', endpoint: 'ep1', pod: 'podX' },
    { name: 'i2', image: 'imgB', endpoint: 'ep2', pod: 'podX' },
  ]);
  const rows: [string, number, number, number, number, number][] = [
    ['i1', 10, 1.0, 2, 10, 100],
    ['i2', 100, 2.0, 1, 1, 50],
    ['i1', 300, 3.0, 5, 20, 1000],
    ['i1', 650, 4.0, 6, 25, 1500],
    ['i2', 1300, 0.5, 4, 3, 80],
    ['i2', 1500, 1.5, 3, 5, 70],
  ];
  for (const [name, offset, Load, Jobs, TransferredFiles, TransferredBytes] of rows) {
    await historyRow(db, ids[name], B + offset, 'Running', { Load, Jobs, TransferredFiles, TransferredBytes });
  }
  return ids;
}

onEveryBackend('queries: getHistoryValues', (fx) => {
  it('buckets, averages Load and reports cumulative figures as increase since the first bucket', async function () {
    await seedHistory(fx.db);
    const values = ok(await fx.db.getHistoryValues(600));
    assert.deepEqual(values.ParameterNames, ['Update', 'Load', 'Jobs', 'TransferredFiles', 'TransferredBytes']);
    assert.deepEqual(values.Records, [
      [B, 2, 0, 0, 0],
      [B + 600, 4, 1, 5, 500],
      [B + 1200, 1, 4, 9, 530],
    ]);
  });

  it('starts each bucket at time - time % size, also for sizes that do not divide B', async function () {
    await seedHistory(fx.db);
    // B % 700 = 600, so buckets start at B-600, B+100, B+800, B+1500:
    //   B-600: i1@+10 (jobs 2)                 total 2       -> 0
    //   B+100: i2@+100 (1), i1@+300/+650 (6)   total 6+1=7   -> 5
    //   B+800: i2@+1300 (4), i1 carried (6)    total 10      -> 8
    //   B+1500: i2@+1500 (3), i1 carried (6)   total 9       -> 7
    assert.equal(B % 700, 600);
    const values = ok(await fx.db.getHistoryValues(700, {}, ['Jobs']));
    assert.deepEqual(values.Records, [
      [B - 600, 0],
      [B + 100, 5],
      [B + 800, 8],
      [B + 1500, 7],
    ]);
  });

  it('puts everything in one bucket when the bucket is large', async function () {
    await seedHistory(fx.db);
    // B % 3600 = 1800: every row (B+10 .. B+1500) falls in the one bucket [B-1800, B+1800),
    // so Load is the mean of all six samples and Jobs, being "since the first bucket", is 0.
    assert.equal(B % 3600, 1800);
    const values = ok(await fx.db.getHistoryValues(3600, {}, ['Load', 'Jobs']));
    assert.deepEqual(values.Records, [[B - 1800, (1 + 2 + 3 + 4 + 0.5 + 1.5) / 6, 0]]);
  });

  it('refuses, before loading anything, an answer of more than MAX_HISTORY_VALUES buckets x fields', async function () {
    const ids = await seedHistory(fx.db);
    // The history spans B+10 .. B+1500; one row 2 days later makes 1 s buckets far too many.
    await historyRow(fx.db, ids.i1, B + 2 * 86_400, 'Running', { Load: 1, Jobs: 1, TransferredFiles: 1, TransferredBytes: 1 });
    const refused = await fx.db.getHistoryValues(1);
    assert.equal(refused.OK, false);
    assert.match((refused as { Message: string }).Message, /^Too many values asked for: \d+ \(buckets of 1 s times 4 fields\) is over 100000; ask for larger buckets/);
    // 2 days in 2 s buckets for one field is 86,401 values: allowed.
    assert.ok((await fx.db.getHistoryValues(2, {}, ['Load'])).OK);
    assert.equal(ok(await fx.db.getHistoryValues(2, {}, ['Load'])).Records.length, 7, 'only the buckets with samples are listed');
  });

  it('returns the fields2Get subset in the order asked', async function () {
    await seedHistory(fx.db);
    const values = ok(await fx.db.getHistoryValues(600, {}, ['TransferredBytes', 'Load']));
    assert.deepEqual(values.ParameterNames, ['Update', 'TransferredBytes', 'Load']);
    assert.deepEqual(values.Records, [
      [B, 0, 2],
      [B + 600, 500, 4],
      [B + 1200, 530, 1],
    ]);
  });

  it('filters instances with selDict', async function () {
    await seedHistory(fx.db);
    // i1 alone: B: Load (1+3)/2 = 2, Jobs 5; B+600: Load 4, Jobs 6 (+1), Files 25 (+5), Bytes 1500 (+500).
    const expected = [
      [B, 2, 0, 0, 0],
      [B + 600, 4, 1, 5, 500],
    ];
    assert.deepEqual(ok(await fx.db.getHistoryValues(600, { Endpoint: 'ep1' })).Records, expected);
    assert.deepEqual(ok(await fx.db.getHistoryValues(600, { Name: ['i1', 'nobody'] })).Records, expected);
    assert.deepEqual(ok(await fx.db.getHistoryValues(600, { Endpoint: 'ep9' })).Records, []);
  });

  it('keeps only the last timespan seconds', async function () {
    const { i1, i2 } = await addInstances(fx.db, [
      { name: 'i1', image: 'imgA', endpoint: 'ep1', pod: 'podX' },
      { name: 'i2', image: 'imgA', endpoint: 'ep1', pod: 'podX' },
    ]);
    const now = nowSeconds();
    const size = 600;
    const bucketOf = (t: number) => t - (t % size);
    await historyRow(fx.db, i1, now - 7200, 'Running', { Load: 5, Jobs: 10 });
    await historyRow(fx.db, i1, now - 1800, 'Running', { Load: 1, Jobs: 12 });
    await historyRow(fx.db, i2, now - 60, 'Running', { Load: 3, Jobs: 3 });
    // Last hour: i1 12 (first bucket, 0), then i1 carried 12 + i2 3 = 15 -> 3.
    assert.deepEqual(ok(await fx.db.getHistoryValues(size, {}, ['Load', 'Jobs'], 3600)).Records, [
      [bucketOf(now - 1800), 1, 0],
      [bucketOf(now - 60), 3, 3],
    ]);
    // Everything: i1 10 (0), i1 12 (2), i1 12 + i2 3 = 15 (5).
    assert.deepEqual(ok(await fx.db.getHistoryValues(size, {}, ['Load', 'Jobs'])).Records, [
      [bucketOf(now - 7200), 5, 0],
      [bucketOf(now - 1800), 1, 2],
      [bucketOf(now - 60), 3, 5],
    ]);
    // A timespan reaching back before any date the database can hold is "everything", not an error.
    for (const timespan of [1e11, Number.MAX_SAFE_INTEGER]) {
      assert.deepEqual(ok(await fx.db.getHistoryValues(size, {}, ['Load', 'Jobs'], timespan)).Records.length, 3, `timespan ${timespan}`);
      assert.equal(ok(await fx.db.getRunningInstancesHistory(timespan, size)).length, 3, `timespan ${timespan}`);
    }
  });

  it('answers no records when there is no history', async function () {
    assert.deepEqual(ok(await fx.db.getHistoryValues(600)), {
      ParameterNames: ['Update', 'Load', 'Jobs', 'TransferredFiles', 'TransferredBytes'],
      Records: [],
    });
  });

  it('refuses invalid fields and buckets', async function () {
    refused(await fx.db.getHistoryValues(600, {}, ['Load', 'Status']), 'Status');
    refused(await fx.db.getHistoryValues(600, {}, ['InstanceID']), 'InstanceID');
    refused(await fx.db.getHistoryValues(0), 'averageBucket');
    refused(await fx.db.getHistoryValues(-600), 'averageBucket');
    refused(await fx.db.getHistoryValues(600, {}, false, -1), 'timespan');
  });
});

// ---- getRunningInstances*History -----------------------------------------------------

/**
 * Three instances, times from B (a multiple of 1800):
 *
 * | instance | Endpoint | Pod  | Image | rows                                      |
 * | r1       | ep1      | podX | imgA  | Running +10, +100, +1000, +2000           |
 * | r2       | ep1      | podY | imgB  | Running +200, +400; Halted +1100           |
 * | r3       | ep2      | podX | imgB  | Submitted +50; Running +950               |
 */
async function seedRunning(db: Db): Promise<void> {
  const ids = await addInstances(db, [
    { name: 'r1', image: 'imgA', endpoint: 'ep1', pod: 'podX' },
    { name: 'r2', image: 'imgB', endpoint: 'ep1', pod: 'podY' },
    { name: 'r3', image: 'imgB', endpoint: 'ep2', pod: 'podX' },
  ]);
  const rows: [string, number, string][] = [
    ['r1', 10, 'Running'],
    ['r1', 100, 'Running'],
    ['r2', 200, 'Running'],
    ['r3', 50, 'Submitted'],
    ['r2', 400, 'Running'],
    ['r3', 950, 'Running'],
    ['r1', 1000, 'Running'],
    ['r2', 1100, 'Halted'],
    ['r1', 2000, 'Running'],
  ];
  for (const [name, offset, status] of rows) await historyRow(db, ids[name], B + offset, status, { Load: 1 });
}

/** Rows sorted by bucket, then group; also checks the answer was already in time order. */
function chronological(rows: unknown[][]): unknown[][] {
  const buckets = rows.map((row) => row[0] as number);
  assert.deepEqual(buckets, [...buckets].sort((a, b) => a - b), 'buckets come in time order');
  return [...rows].sort((a, b) => (a[0] as number) - (b[0] as number) || String(a[1]).localeCompare(String(b[1])));
}

onEveryBackend('queries: getRunningInstances*History', (fx) => {
  beforeEach(async function () {
    assert.equal(B % 1800, 0);
    await seedRunning(fx.db);
  });

  const ungrouped: { title: string; args: [number?, number?]; expected: number[][] }[] = [
    // 900 s: B {r1, r2}; B+900 {r3, r1}; B+1800 {r1}.
    { title: 'the default bucket of 900 s', args: [], expected: [[B, 2], [B + 900, 2], [B + 1800, 1]] },
    { title: 'an explicit 900 s bucket', args: [0, 900], expected: [[B, 2], [B + 900, 2], [B + 1800, 1]] },
    // 300 s: B {r1, r2}; B+300 {r2}; B+900 {r3, r1}; B+1800 {r1}.
    { title: 'a 300 s bucket', args: [0, 300], expected: [[B, 2], [B + 300, 1], [B + 900, 2], [B + 1800, 1]] },
    { title: 'a bucket below the 300 s floor (raised to 300)', args: [0, 100], expected: [[B, 2], [B + 300, 1], [B + 900, 2], [B + 1800, 1]] },
    { title: 'a bucket of 0 (raised to 300)', args: [0, 0], expected: [[B, 2], [B + 300, 1], [B + 900, 2], [B + 1800, 1]] },
    // 1800 s: B {r1, r2, r3}; B+1800 {r1}.
    { title: 'a 1800 s bucket', args: [0, 1800], expected: [[B, 3], [B + 1800, 1]] },
  ];
  for (const c of ungrouped) {
    it(`counts distinct Running instances per bucket with ${c.title}`, async function () {
      assert.deepEqual(chronological(ok(await fx.db.getRunningInstancesHistory(...c.args))), c.expected);
    });
  }

  const grouped: { title: string; call: (db: Db) => Promise<Outcome<unknown[][]>>; expected: unknown[][] }[] = [
    {
      title: 'Endpoint (BEP)',
      call: (db) => db.getRunningInstancesBEPHistory(0, 900),
      expected: [[B, 'ep1', 2], [B + 900, 'ep1', 1], [B + 900, 'ep2', 1], [B + 1800, 'ep1', 1]],
    },
    {
      title: 'RunningPod',
      call: (db) => db.getRunningInstancesByRunningPodHistory(0, 900),
      expected: [[B, 'podX', 1], [B, 'podY', 1], [B + 900, 'podX', 2], [B + 1800, 'podX', 1]],
    },
    {
      title: 'image Name',
      call: (db) => db.getRunningInstancesByImageHistory(0, 900),
      expected: [[B, 'imgA', 1], [B, 'imgB', 1], [B + 900, 'imgA', 1], [B + 900, 'imgB', 1], [B + 1800, 'imgA', 1]],
    },
    {
      title: 'Endpoint with the default bucket',
      call: (db) => db.getRunningInstancesBEPHistory(),
      expected: [[B, 'ep1', 2], [B + 900, 'ep1', 1], [B + 900, 'ep2', 1], [B + 1800, 'ep1', 1]],
    },
    {
      title: 'image Name with a bucket below the floor',
      call: (db) => db.getRunningInstancesByImageHistory(0, 60),
      // 300 s: B {r1 imgA, r2 imgB}; B+300 {r2 imgB}; B+900 {r3 imgB, r1 imgA}; B+1800 {r1 imgA}.
      expected: [[B, 'imgA', 1], [B, 'imgB', 1], [B + 300, 'imgB', 1], [B + 900, 'imgA', 1], [B + 900, 'imgB', 1], [B + 1800, 'imgA', 1]],
    },
    {
      title: 'RunningPod with an 1800 s bucket',
      call: (db) => db.getRunningInstancesByRunningPodHistory(0, 1800),
      // B {r1 podX, r2 podY, r3 podX}; B+1800 {r1 podX}.
      expected: [[B, 'podX', 2], [B, 'podY', 1], [B + 1800, 'podX', 1]],
    },
  ];
  for (const c of grouped) {
    it(`groups by ${c.title}`, async function () {
      assert.deepEqual(chronological(ok(await c.call(fx.db))), c.expected);
    });
  }

  it('keeps only the last timespan seconds, in every variant', async function () {
    const { n1, n2 } = await addInstances(fx.db, [
      { name: 'n1', image: 'imgN', endpoint: 'epN', pod: 'podN' },
      { name: 'n2', image: 'imgN', endpoint: 'epN', pod: 'podN' },
    ]);
    const now = nowSeconds();
    await historyRow(fx.db, n1, now - 7200, 'Running');
    await historyRow(fx.db, n2, now - 120, 'Running');
    await historyRow(fx.db, n1, now - 60, 'Running');
    await historyRow(fx.db, n2, now - 30, 'Halted');
    // Worked out independently: distinct Running instances per 900 s bucket among the last hour's rows.
    const perBucket = new Map<number, Set<string>>();
    for (const [name, t] of [['n2', now - 120], ['n1', now - 60]] as [string, number][]) {
      const bucket = t - (t % 900);
      perBucket.set(bucket, (perBucket.get(bucket) ?? new Set()).add(name));
    }
    const buckets = [...perBucket.keys()].sort((a, b) => a - b);
    assert.deepEqual(chronological(ok(await fx.db.getRunningInstancesHistory(3600, 900))), buckets.map((b) => [b, perBucket.get(b)!.size]));
    for (const [group, call] of [
      ['epN', (db: Db) => db.getRunningInstancesBEPHistory(3600, 900)],
      ['podN', (db: Db) => db.getRunningInstancesByRunningPodHistory(3600, 900)],
      ['imgN', (db: Db) => db.getRunningInstancesByImageHistory(3600, 900)],
    ] as const) {
      assert.deepEqual(chronological(ok(await call(fx.db))), buckets.map((b) => [b, group, perBucket.get(b)!.size]));
    }
  });

  it('refuses negative timespans and bucket sizes', async function () {
    refused(await fx.db.getRunningInstancesHistory(-1, 900), 'timespan');
    refused(await fx.db.getRunningInstancesBEPHistory(0, -900), 'bucketSize');
  });
});

// ---- pages by keyset cursor (getInstancesPage) -------------------------------------------

/**
 * Thirteen instances with ties and NULLs in the sort keys:
 * instance i (1..13) is vm-<i>, image imgA/imgB/imgC by i % 3, endpoint ep1..ep4 by i % 4, and
 * the Load and LastUpdate of the lists below (null: NULL in the database).
 */
const LOADS = [0.3, null, 0.1, 0.3, 0.3, 0, null, 0.1, 2.5, 0.3, 0, 0.1, 0.3];
const DAY1 = '2026-01-01 09:00:00';
const DAY2 = '2026-01-02 10:00:00';
const DAY3 = '2026-01-03 00:00:00';
const UPDATES = [DAY2, null, DAY1, DAY2, null, DAY3, DAY1, DAY2, DAY2, null, DAY3, DAY1, DAY2];

interface PageFleetRow {
  id: number;
  name: string;
  image: string;
  endpoint: string;
  load: number | null;
  update: string | null;
}

async function seedPageFleet(db: Db): Promise<PageFleetRow[]> {
  const rows: PageFleetRow[] = [];
  for (let i = 1; i <= 13; i++) {
    const name = `vm-${String(i).padStart(2, '0')}`;
    const image = ['imgC', 'imgA', 'imgB'][i % 3];
    const endpoint = `ep${(i % 4) + 1}`;
    const id = ok(await db.insertInstance(`u${i}`, image, name, endpoint, 'pod'));
    ok(await db.updateFields('vm_Instances', ['Load', 'LastUpdate'], [LOADS[i - 1], UPDATES[i - 1]], { InstanceID: id }));
    rows.push({ id, name, image, endpoint, load: LOADS[i - 1], update: UPDATES[i - 1] });
  }
  return rows;
}

type Key = [keyof PageFleetRow, 'ASC' | 'DESC'];

/** The documented order: each key in its direction, NULL first ascending (last descending), ties by InstanceID in the last key's direction. */
function expectedOrder(rows: PageFleetRow[], keys: Key[]): string[] {
  const cmp = (a: unknown, b: unknown) => (a === b ? 0 : a === null ? -1 : b === null ? 1 : (a as number) < (b as number) ? -1 : 1);
  const last = keys.length ? keys[keys.length - 1][1] : 'ASC';
  const all: Key[] = [...keys, ['id', last]];
  return [...rows]
    .sort((x, y) => {
      for (const [field, dir] of all) {
        const c = cmp(x[field], y[field]);
        if (c) return dir === 'ASC' ? c : -c;
      }
      return 0;
    })
    .map((r) => r.name);
}

type Page = { ParameterNames: string[]; Records: unknown[][]; TotalRecords: number; TotalExact: boolean; Next: string | null };

/** Every page from the first, following Next; each page's names. */
async function walk(db: Db, options: { selDict?: Record<string, unknown>; sortList?: [string, string][]; limit: number }): Promise<{ pages: string[][]; first: Page }> {
  const pages: string[][] = [];
  let page = ok(await db.getInstancesPage(options)) as Page;
  const first = page;
  for (;;) {
    pages.push(contentNames(page));
    if (!page.Next) break;
    assert.ok(pages.length < 30, 'the walk ends');
    page = ok(await db.getInstancesPage({ ...options, after: page.Next })) as Page;
  }
  return { pages, first };
}

onEveryBackend('queries: getInstancesPage (keyset cursors)', (fx) => {
  let fleet: PageFleetRow[];
  beforeEach(async function () {
    fleet = await seedPageFleet(fx.db);
  });

  const sorts: { title: string; sortList: [string, string][]; keys: Key[] }[] = [
    { title: 'no sort (InstanceID)', sortList: [], keys: [] },
    { title: 'a FLOAT with ties and NULLs, descending', sortList: [['inst.Load', 'DESC']], keys: [['load', 'DESC']] },
    { title: 'a FLOAT with ties and NULLs, ascending', sortList: [['Load', 'ASC']], keys: [['load', 'ASC']] },
    { title: 'a DATETIME with ties and NULLs, ascending', sortList: [['inst.LastUpdate', 'ASC']], keys: [['update', 'ASC']] },
    { title: 'a DATETIME with ties and NULLs, descending', sortList: [['inst.LastUpdate', 'DESC']], keys: [['update', 'DESC']] },
    { title: 'an image field, then a FLOAT the other way', sortList: [['img.Name', 'ASC'], ['inst.Load', 'DESC']], keys: [['image', 'ASC'], ['load', 'DESC']] },
    { title: 'three keys of mixed directions', sortList: [['inst.Endpoint', 'DESC'], ['inst.LastUpdate', 'ASC'], ['img.Name', 'DESC']], keys: [['endpoint', 'DESC'], ['update', 'ASC'], ['image', 'DESC']] },
  ];
  const selections: { title: string; selDict: Record<string, unknown>; keep: (r: PageFleetRow) => boolean }[] = [
    { title: 'every instance', selDict: {}, keep: () => true },
    { title: 'two endpoints', selDict: { Endpoint: ['ep1', 'ep3'] }, keep: (r) => r.endpoint === 'ep1' || r.endpoint === 'ep3' },
    { title: 'one image', selDict: { 'img.Name': 'imgB' }, keep: (r) => r.image === 'imgB' },
  ];
  for (const sort of sorts) {
    for (const sel of selections) {
      it(`walks by cursor, sorted by ${sort.title}, selecting ${sel.title}: every row once, in order`, async function () {
        const expected = expectedOrder(fleet.filter(sel.keep), sort.keys);
        for (const limit of [1, 2, 5, 13]) {
          const { pages, first } = await walk(fx.db, { selDict: sel.selDict, sortList: sort.sortList, limit });
          assert.deepEqual(pages.flat(), expected, `limit ${limit}`);
          assert.ok(pages.every((p, i) => p.length === limit || (i === pages.length - 1 && p.length > 0 && p.length <= limit)), `full pages but the last (limit ${limit}): ${JSON.stringify(pages)}`);
          assert.equal(first.TotalRecords, expected.length);
          assert.equal(first.TotalExact, true);
        }
      });
    }
  }

  it('pages by offset too, with the cursor of the page after', async function () {
    const expected = expectedOrder(fleet, [['load', 'DESC']]);
    const byOffset = ok(await fx.db.getInstancesPage({ sortList: [['inst.Load', 'DESC']], start: 4, limit: 3 }));
    assert.deepEqual(contentNames(byOffset), expected.slice(4, 7));
    const following = ok(await fx.db.getInstancesPage({ sortList: [['inst.Load', 'DESC']], after: byOffset.Next, limit: 3 }));
    assert.deepEqual(contentNames(following), expected.slice(7, 10));
    const last = ok(await fx.db.getInstancesPage({ sortList: [['inst.Load', 'DESC']], start: 10, limit: 3 }));
    assert.deepEqual([contentNames(last), last.Next], [expected.slice(10), null], 'no cursor after the last row');
  });

  it('refuses a malformed cursor, a cursor of another sort and a cursor with start, naming after', async function () {
    const page = ok(await fx.db.getInstancesPage({ sortList: [['inst.Name', 'ASC']], limit: 2 }));
    assert.ok(page.Next);
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const { s, k } = JSON.parse(Buffer.from(page.Next, 'base64url').toString()) as { s: string; k: unknown[] };
    const malformed = [
      'not a cursor!',
      'AAAA',
      encode([1, 2]),
      encode({ s }),
      encode({ s, k: k.slice(1) }),
      encode({ s, k: [k[0], 'seven'] }),
      encode({ s, k: [k[0], -1] }),
      encode({ s, k: [42, k[1]] }),
      encode({ s, k: [null, k[1]] }),
      encode({ s, k: ['x'.repeat(300), k[1]] }),
    ];
    for (const after of malformed) {
      refused(await fx.db.getInstancesPage({ sortList: [['inst.Name', 'ASC']], after, limit: 2 }), 'after', 'malformed');
    }
    refused(await fx.db.getInstancesPage({ sortList: [['inst.Name', 'DESC']], after: page.Next, limit: 2 }), 'after', 'another sort', 'inst.Name:ASC');
    refused(await fx.db.getInstancesPage({ sortList: [], after: page.Next, limit: 2 }), 'after', 'another sort');
    refused(await fx.db.getInstancesPage({ sortList: [['inst.Name', 'ASC']], after: page.Next, start: 2, limit: 2 }), 'after and start');
    // A well-formed cursor's values are bound, never SQL: a hostile name matches as text.
    const hostile = ok(await fx.db.getInstancesPage({ sortList: [['inst.Name', 'ASC']], after: encode({ s, k: ["vm-05' OR '1'='1", 1] }), limit: 20 }));
    assert.deepEqual(contentNames(hostile), expectedOrder(fleet, [['name', 'ASC']]).filter((n) => n > "vm-05' OR '1'='1"));
  });

  it('says whether the total is exact: MySQL/MariaDB estimate above the cap, SQLite always counts', async function () {
    const small = ok(await fx.db.getInstancesPage({ selDict: { 'img.Name': 'imgB' }, limit: 2, exactTotalCap: 4 }));
    assert.deepEqual([small.TotalRecords, small.TotalExact], [4, true], 'at the cap: exact');
    const big = ok(await fx.db.getInstancesPage({ limit: 2, exactTotalCap: 4 }));
    if (fx.backend.name === 'sqlite') {
      assert.deepEqual([big.TotalRecords, big.TotalExact], [13, true]);
    } else {
      assert.equal(big.TotalExact, false);
      assert.ok(big.TotalRecords > 4, `an estimate above the cap: ${big.TotalRecords}`);
    }
    const filtered = ok(await fx.db.getInstancesPage({ selDict: { Endpoint: ['ep1', 'ep2', 'ep3'] }, limit: 2, exactTotalCap: 4 }));
    if (fx.backend.name === 'sqlite') assert.deepEqual([filtered.TotalRecords, filtered.TotalExact], [10, true]);
    else assert.ok(!filtered.TotalExact && filtered.TotalRecords > 4, `a filtered estimate above the cap: ${JSON.stringify([filtered.TotalRecords, filtered.TotalExact])}`);
    const byDefault = ok(await fx.db.getInstancesPage({ limit: 2 }));
    assert.deepEqual([byDefault.TotalRecords, byDefault.TotalExact], [13, true], 'under the default cap of 10,000: exact');
  });
});
