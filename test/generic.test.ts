import { strict as assert } from 'node:assert';
import { TABLES_DESC, type VirtualMachineDB } from '../src';
import { ok, onEveryBackend, snapshot } from './support/backends';

/**
 * The generic helpers of DIRAC's DB base class (buildCondition, getFields,
 * insertFields, updateFields, deleteEntries, countEntries, getCounters,
 * getDistinctAttributeValues), transactions and the raw `_query`.
 *
 * Every suite works on the same small fleet (see `seedFleet`), written with
 * insertFields so that times, jobs and prices are exactly known.
 */

type Db = VirtualMachineDB;
type Outcome<T = unknown> = { OK: true; Value: T } | { OK: false; Message: string };

// ---- time -------------------------------------------------------------------

/** A fixed UTC origin for the fixture; `at(s)` is `s` seconds after it. */
const T0 = Date.UTC(2024, 0, 15, 12, 0, 0);
const at = (seconds: number): Date => new Date(T0 + seconds * 1000);
/** The UTC 'YYYY-MM-DD HH:MM:SS' spelling the spec allows for time values. */
const sqlTime = (date: Date): string => date.toISOString().slice(0, 19).replace('T', ' ');

// ---- assertions -------------------------------------------------------------

/** Asserts OK: false with a message naming every fragment; returns the message. */
function refused(result: Outcome, ...fragments: string[]): string {
  assert.equal(result.OK, false, `expected a refusal, got ${JSON.stringify(result)}`);
  const message = (result as { Message: string }).Message;
  assert.equal(typeof message, 'string');
  for (const fragment of fragments) {
    assert.ok(message.includes(fragment), `message ${JSON.stringify(message)} should mention ${JSON.stringify(fragment)}`);
  }
  return message;
}

/** The SQL of a condition holds placeholders only: no literal, no quote, no statement separator. */
function assertOnlyPlaceholders(cond: { sql: string; params: unknown[] }): void {
  assert.equal(typeof cond.sql, 'string');
  assert.ok(Array.isArray(cond.params));
  assert.equal((cond.sql.match(/\?/g) ?? []).length, cond.params.length, `one ? per bound value in ${JSON.stringify(cond.sql)}`);
  assert.doesNotMatch(cond.sql, /['";]/, `no quoted literal or separator in ${JSON.stringify(cond.sql)}`);
  for (const param of cond.params) {
    const text = param instanceof Date ? sqlTime(param) : String(param);
    if (text.length >= 3) assert.ok(!cond.sql.includes(text), `value ${text} pasted into ${JSON.stringify(cond.sql)}`);
  }
}

// ---- fixture ----------------------------------------------------------------

async function addImage(db: Db, Name: string, Status = 'New'): Promise<number> {
  const inserted = await db.insertFields('vm_Images', null, null, undefined, { Name, Status, LastUpdate: at(0) });
  ok(inserted);
  return inserted.lastRowId!;
}

interface InstanceSeed {
  Name: string;
  VMImageID: number;
  Endpoint: string;
  RunningPod: string;
  UniqueID: string;
  Status: string;
  LastUpdate: Date;
  Jobs: number;
  MaxAllowedPrice?: number | null;
}

async function addInstance(db: Db, seed: InstanceSeed): Promise<number> {
  const inserted = await db.insertFields('vm_Instances', null, null, undefined, { ...seed });
  ok(inserted);
  return inserted.lastRowId!;
}

/**
 * | Name | Endpoint | Pod | Image | Status    | LastUpdate | Jobs | MaxAllowedPrice |
 * | vm1  | ep1      | p1  | imgA  | Running   | at(0)      | 1    | 2.5             |
 * | vm2  | ep1      | p2  | imgA  | Running   | at(100)    | 2    | null            |
 * | vm3  | ep2      | p1  | imgB  | Halted    | at(200)    | 3    | null            |
 * | vm4  | ep2      | p2  | imgB  | Submitted | at(300)    | 4    | null            |
 */
async function seedFleet(db: Db): Promise<{ imgA: number; imgB: number; ids: Record<string, number> }> {
  const imgA = await addImage(db, 'imgA', 'Validated');
  const imgB = await addImage(db, 'imgB');
  const rows: [string, string, string, number, string, number][] = [
    ['vm1', 'ep1', 'p1', imgA, 'Running', 0],
    ['vm2', 'ep1', 'p2', imgA, 'Running', 100],
    ['vm3', 'ep2', 'p1', imgB, 'Halted', 200],
    ['vm4', 'ep2', 'p2', imgB, 'Submitted', 300],
  ];
  const ids: Record<string, number> = {};
  for (const [i, [Name, Endpoint, RunningPod, VMImageID, Status, seconds]] of rows.entries()) {
    ids[Name] = await addInstance(db, {
      Name, Endpoint, RunningPod, VMImageID, Status,
      UniqueID: `u${i + 1}`,
      LastUpdate: at(seconds),
      Jobs: i + 1,
      MaxAllowedPrice: i === 0 ? 2.5 : null,
    });
  }
  return { imgA, imgB, ids };
}

const ALL = ['vm1', 'vm2', 'vm3', 'vm4'];

/** Names of vm_Instances rows matching a built condition, in the order the database returns them. */
async function namesMatching(db: Db, cond: { sql: string; params: unknown[] }): Promise<string[]> {
  const rows = ok(await db._query(`SELECT \`Name\` FROM \`vm_Instances\` ${cond.sql}`, cond.params)) as { Name: string }[];
  return rows.map((row) => row.Name);
}

/** One column of vm_Instances by Name, for "what did this write do" checks. */
async function instanceColumn(db: Db, column: string): Promise<Record<string, unknown>> {
  const rows = ok(await db.getFields('vm_Instances', ['Name', column]));
  return Object.fromEntries(rows.map(([name, value]) => [String(name), value]));
}

// ---- buildCondition -----------------------------------------------------------

interface CondArgs {
  condDict?: Record<string, unknown> | null;
  older?: unknown;
  newer?: unknown;
  timeStamp?: string | null;
  orderAttribute?: string | string[] | null;
  limit?: number | false;
  greater?: Record<string, unknown> | null;
  smaller?: Record<string, unknown> | null;
  offset?: number | null;
  useLikeQuery?: boolean;
  table?: string;
}

const build = (db: Db, a: CondArgs) =>
  db.buildCondition(a.condDict, a.older, a.newer, a.timeStamp, a.orderAttribute, a.limit ?? false, a.greater, a.smaller, a.offset, a.useLikeQuery ?? false, a.table);

interface ConditionCase {
  title: string;
  args: CondArgs;
  /** Fragments the SQL must contain (identifiers and operators, never values). */
  sql: (string | RegExp)[];
  params: unknown[];
  /** vm_Instances names the condition selects; compared in order when `ordered`. */
  names: string[];
  ordered?: boolean;
}

const CONDITION_CASES: ConditionCase[] = [
  { title: 'no arguments give an empty condition', args: {}, sql: [/^$/], params: [], names: ALL },
  { title: 'a single value is an equality', args: { condDict: { Endpoint: 'ep1' } }, sql: ['WHERE', '`Endpoint` = ?'], params: ['ep1'], names: ['vm1', 'vm2'] },
  {
    title: 'a list of values is ORed',
    args: { condDict: { Name: ['vm1', 'vm3'] } },
    sql: [/`Name` = \? OR `Name` = \?/],
    params: ['vm1', 'vm3'],
    names: ['vm1', 'vm3'],
  },
  {
    title: 'fields are ANDed',
    args: { condDict: { Endpoint: 'ep2', RunningPod: ['p2', 'p9'] } },
    sql: ['`Endpoint` = ?', ' AND ', '`RunningPod` = ?'],
    params: ['ep2', 'p2', 'p9'],
    names: ['vm4'],
  },
  { title: 'an empty list matches nothing', args: { condDict: { Name: [] } }, sql: ['WHERE'], params: [], names: [] },
  {
    title: 'null is IS NULL, not a bound value',
    args: { condDict: { MaxAllowedPrice: null } },
    sql: ['`MaxAllowedPrice` IS NULL'],
    params: [],
    names: ['vm2', 'vm3', 'vm4'],
  },
  {
    title: 'null may be one of the listed values',
    args: { condDict: { MaxAllowedPrice: [null, 2.5] } },
    sql: ['`MaxAllowedPrice` IS NULL', ' OR ', '`MaxAllowedPrice` = ?'],
    params: [2.5],
    names: ALL,
  },
  {
    title: 'a status valid for the named table',
    args: { condDict: { Status: ['Running', 'Halted'] }, table: 'vm_Instances' },
    sql: ['`Status` = ?'],
    params: ['Running', 'Halted'],
    names: ['vm1', 'vm2', 'vm3'],
  },
  { title: 'older compares LastUpdate by default (<)', args: { older: at(100) }, sql: ['`LastUpdate` < ?'], params: [sqlTime(at(100))], names: ['vm1'] },
  {
    title: 'newer compares LastUpdate by default (>=)',
    args: { newer: at(100) },
    sql: ['`LastUpdate` >= ?'],
    params: [sqlTime(at(100))],
    names: ['vm2', 'vm3', 'vm4'],
  },
  {
    title: 'older and newer on an explicit timeStamp, as UTC strings',
    args: { older: sqlTime(at(250)), newer: sqlTime(at(50)), timeStamp: 'LastUpdate' },
    sql: ['`LastUpdate` < ?', '`LastUpdate` >= ?'],
    params: [sqlTime(at(250)), sqlTime(at(50))],
    names: ['vm2', 'vm3'],
  },
  { title: 'greater is >=', args: { greater: { Jobs: 2 } }, sql: ['`Jobs` >= ?'], params: [2], names: ['vm2', 'vm3', 'vm4'] },
  { title: 'smaller is <', args: { smaller: { Jobs: 3 } }, sql: ['`Jobs` < ?'], params: [3], names: ['vm1', 'vm2'] },
  {
    title: 'greater and smaller together bound a range',
    args: { greater: { Jobs: 2 }, smaller: { Jobs: 4 } },
    sql: ['`Jobs` >= ?', '`Jobs` < ?'],
    params: [2, 4],
    names: ['vm2', 'vm3'],
  },
  { title: 'orderAttribute "Col:DESC"', args: { orderAttribute: 'Jobs:DESC' }, sql: ['ORDER BY `Jobs` DESC'], params: [], names: ['vm4', 'vm3', 'vm2', 'vm1'], ordered: true },
  { title: 'orderAttribute "Col:ASC"', args: { orderAttribute: 'Jobs:ASC' }, sql: ['ORDER BY `Jobs` ASC'], params: [], names: ['vm1', 'vm2', 'vm3', 'vm4'], ordered: true },
  { title: 'orderAttribute without direction is ascending', args: { orderAttribute: 'LastUpdate' }, sql: ['ORDER BY `LastUpdate`'], params: [], names: ALL, ordered: true },
  {
    title: 'a list of orderAttributes',
    args: { orderAttribute: ['Endpoint:DESC', 'Jobs:ASC'] },
    sql: [/ORDER BY `Endpoint` DESC, `Jobs` ASC/],
    params: [],
    names: ['vm3', 'vm4', 'vm1', 'vm2'],
    ordered: true,
  },
  { title: 'limit', args: { orderAttribute: 'Jobs:ASC', limit: 2 }, sql: ['LIMIT ?'], params: [2], names: ['vm1', 'vm2'], ordered: true },
  { title: 'limit and offset', args: { orderAttribute: 'Jobs:ASC', limit: 2, offset: 1 }, sql: ['LIMIT ?', 'OFFSET ?'], params: [2, 1], names: ['vm2', 'vm3'], ordered: true },
  { title: 'offset alone skips rows', args: { orderAttribute: 'Jobs:ASC', offset: 3 }, sql: ['OFFSET ?'], params: [Number.MAX_SAFE_INTEGER, 3], names: ['vm4'], ordered: true },
  { title: 'limit false or 0 mean no limit', args: { limit: 0 }, sql: [/^$/], params: [], names: ALL },
  { title: 'useLikeQuery turns a value with % into LIKE', args: { condDict: { Name: 'vm%' }, useLikeQuery: true }, sql: ['`Name` LIKE ?'], params: ['vm%'], names: ALL },
  {
    title: 'useLikeQuery keeps equality for values without %',
    args: { condDict: { Name: ['vm1', 'v%3'] }, useLikeQuery: true },
    sql: ['`Name` = ?', '`Name` LIKE ?'],
    params: ['vm1', 'v%3'],
    names: ['vm1', 'vm3'],
  },
  {
    title: 'free text with quotes and separators travels as a bound value',
    args: { condDict: { ErrorMessage: "x' OR '1'='1'; DROP TABLE vm_Instances; --" } },
    sql: ['`ErrorMessage` = ?'],
    params: ["x' OR '1'='1'; DROP TABLE vm_Instances; --"],
    names: [],
  },
  {
    title: 'everything together, restricted to a table',
    args: {
      condDict: { Endpoint: ['ep1', 'ep2'] },
      newer: at(0),
      greater: { Jobs: 1 },
      smaller: { Jobs: 4 },
      orderAttribute: 'Jobs:DESC',
      limit: 2,
      offset: 1,
      table: 'vm_Instances',
    },
    sql: [/^WHERE .* ORDER BY `Jobs` DESC LIMIT \? OFFSET \?$/],
    params: ['ep1', 'ep2', sqlTime(at(0)), 1, 4, 2, 1],
    names: ['vm2', 'vm1'],
    ordered: true,
  },
];

interface RefusalCase {
  title: string;
  args: CondArgs;
  /** Fragments the refusal message must contain. */
  message: string[];
}

const CONDITION_REFUSALS: RefusalCase[] = [
  { title: 'an unknown condDict column', args: { condDict: { Bogus: 1 } }, message: ['Bogus', 'not a valid field'] },
  { title: 'an identifier that tries to escape its quotes', args: { condDict: { 'Name` = 1 OR 1=1 --': 'x' } }, message: ['Name` = 1 OR 1=1 --'] },
  { title: 'an unknown column in greater', args: { greater: { Nope: 1 } }, message: ['Nope'] },
  { title: 'an unknown column in smaller', args: { smaller: { Nope: 1 } }, message: ['Nope'] },
  { title: 'an unknown timeStamp column', args: { older: at(0), timeStamp: 'Bogus' }, message: ['Bogus'] },
  { title: 'a timeStamp that is not a time column', args: { older: at(0), timeStamp: 'Name' }, message: ['Name', 'time'] },
  { title: 'an older that is not a time', args: { older: 'yesterday' }, message: ['yesterday'] },
  { title: 'an unknown orderAttribute column', args: { orderAttribute: 'Bogus:ASC' }, message: ['Bogus'] },
  { title: 'an orderAttribute with a bad direction', args: { orderAttribute: 'Jobs:SIDEWAYS' }, message: ['Jobs:SIDEWAYS'] },
  { title: 'an orderAttribute with too many parts', args: { orderAttribute: 'Jobs:ASC:DESC' }, message: ['Jobs:ASC:DESC'] },
  { title: 'a negative limit', args: { limit: -1 }, message: ['limit'] },
  { title: 'a fractional limit', args: { limit: 1.5 }, message: ['limit'] },
  { title: 'a negative offset', args: { limit: 1, offset: -2 }, message: ['offset'] },
  { title: 'a value of the wrong type', args: { condDict: { Jobs: 'many' } }, message: ['Jobs'] },
  { title: 'an unknown status of the named table', args: { condDict: { Status: 'Bogus' }, table: 'vm_Instances' }, message: ['Bogus'] },
  { title: "a column of another table than the one named", args: { condDict: { Endpoint: 'ep1' }, table: 'vm_Images' }, message: ['Endpoint', 'vm_Images'] },
  { title: 'an unknown table', args: { condDict: { Name: 'x' }, table: 'vm_Nope' }, message: ['vm_Nope'] },
];

onEveryBackend('generic: buildCondition', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  for (const c of CONDITION_CASES) {
    it(c.title, async function () {
      const cond = ok(await build(fx.db, c.args));
      assertOnlyPlaceholders(cond);
      for (const fragment of c.sql) {
        if (typeof fragment === 'string') assert.ok(cond.sql.includes(fragment), `${JSON.stringify(cond.sql)} should contain ${fragment}`);
        else assert.match(cond.sql, fragment);
      }
      assert.deepEqual(cond.params, c.params);
      const names = await namesMatching(fx.db, cond);
      assert.deepEqual(c.ordered ? names : names.sort(), c.names);
    });
  }

  for (const c of CONDITION_REFUSALS) {
    it(`refuses ${c.title}`, async function () {
      refused(await build(fx.db, c.args), ...c.message);
    });
  }

  it('without a table, accepts a value that is valid for the column of any vmdb table (Status Running)', async function () {
    // "Running" is an instance status, not an image status: the condition is not tied to vm_Images.
    const cond = ok(await build(fx.db, { condDict: { Status: 'Running' } }));
    assertOnlyPlaceholders(cond);
    assert.deepEqual(cond.params, ['Running']);
    assert.deepEqual((await namesMatching(fx.db, cond)).sort(), ['vm1', 'vm2']);
  });

  it('accepts a column of the named table only (vm_History.Update as timeStamp)', async function () {
    const cond = ok(await build(fx.db, { condDict: { InstanceID: 7 }, newer: at(0), timeStamp: 'Update', table: 'vm_History' }));
    assertOnlyPlaceholders(cond);
    assert.ok(cond.sql.includes('`Update` >= ?'));
    assert.deepEqual(cond.params, [7, sqlTime(at(0))]);
  });
});

// ---- getFields ----------------------------------------------------------------

onEveryBackend('generic: getFields', (fx) => {
  let fleet: Awaited<ReturnType<typeof seedFleet>>;
  beforeEach(async function () {
    fleet = await seedFleet(fx.db);
  });

  it('returns every column in table order, typed, when outFields is omitted', async function () {
    const rows = ok(await fx.db.getFields('vm_Instances', null, { Name: 'vm1' }));
    assert.equal(rows.length, 1);
    const columns = Object.keys(TABLES_DESC.vm_Instances.Fields);
    assert.equal(rows[0].length, columns.length);
    const row = Object.fromEntries(columns.map((name, i) => [name, rows[0][i]]));
    assert.equal(row.InstanceID, fleet.ids.vm1);
    assert.equal(row.VMImageID, fleet.imgA);
    assert.equal(row.Name, 'vm1');
    assert.equal(row.Status, 'Running');
    assert.equal(row.UniqueID, 'u1');
    assert.equal(row.Jobs, 1);
    assert.equal(row.MaxAllowedPrice, 2.5);
    assert.equal(row.PublicIP, '', 'defaults apply to columns not given');
    assert.equal(row.ErrorMessage, '');
    assert.ok(row.LastUpdate instanceof Date, 'DATETIME comes back as a Date');
    assert.equal((row.LastUpdate as Date).getTime(), at(0).getTime());
  });

  it('selects outFields with condDict, orderAttribute and limit', async function () {
    const rows = ok(await fx.db.getFields('vm_Instances', ['Name', 'Jobs'], { Endpoint: ['ep1', 'ep2'] }, 3, undefined, undefined, undefined, undefined, 'Jobs:DESC'));
    assert.deepEqual(rows, [['vm4', 4], ['vm3', 3], ['vm2', 2]]);
  });

  const positional: { title: string; call: (db: Db) => Promise<Outcome<unknown[][]>>; names: string[] }[] = [
    { title: 'older / newer on timeStamp', call: (db) => db.getFields('vm_Instances', ['Name'], null, false, undefined, at(300), at(100), 'LastUpdate'), names: ['vm2', 'vm3'] },
    { title: 'greater / smaller', call: (db) => db.getFields('vm_Instances', ['Name'], null, false, undefined, null, null, null, null, { Jobs: 3 }, { Jobs: 4 }), names: ['vm3'] },
    {
      title: 'useLikeQuery',
      call: (db) => db.getFields('vm_Instances', ['Name'], { UniqueID: 'u%', Endpoint: 'ep2' }, false, undefined, null, null, null, null, null, null, true),
      names: ['vm3', 'vm4'],
    },
  ];
  for (const c of positional) {
    it(`filters with ${c.title}`, async function () {
      const rows = ok(await c.call(fx.db));
      assert.deepEqual(rows.map(([name]) => name).sort(), c.names);
    });
  }

  it('refuses unknown tables and columns, naming them', async function () {
    refused(await fx.db.getFields('vm_Nope'), 'vm_Nope');
    refused(await fx.db.getFields('vm_Instances', ['Name', 'Bogus']), 'Bogus');
    refused(await fx.db.getFields('vm_Images', ['Endpoint']), 'Endpoint', 'vm_Images');
    refused(await fx.db.getFields('vm_Instances', ['Name'], { Bogus: 1 }), 'Bogus');
  });
});

// ---- insertFields ----------------------------------------------------------------

onEveryBackend('generic: insertFields', (fx) => {
  it('inserts from fields and values and reports the new id as lastRowId', async function () {
    const first = await fx.db.insertFields('vm_Images', ['Name', 'Status', 'LastUpdate'], ['imgX', 'New', at(5)]);
    const second = await fx.db.insertFields('vm_Images', ['Name', 'Status'], ['imgY', 'Validated']);
    assert.equal(ok(first), 1);
    assert.equal(ok(second), 1);
    assert.ok(Number.isInteger(first.lastRowId) && first.lastRowId! > 0);
    assert.ok(second.lastRowId! > first.lastRowId!);
    const rows = ok(await fx.db.getFields('vm_Images', ['VMImageID', 'Name', 'Status', 'LastUpdate', 'ErrorMessage'], null, false, undefined, null, null, null, 'VMImageID'));
    assert.deepEqual(rows, [
      [first.lastRowId, 'imgX', 'New', at(5), ''],
      [second.lastRowId, 'imgY', 'Validated', null, ''],
    ]);
  });

  it('inserts from inDict; lastRowId is the InstanceID', async function () {
    const image = await addImage(fx.db, 'imgA');
    const inserted = await fx.db.insertFields('vm_Instances', null, null, undefined, {
      Name: 'vm9', Endpoint: 'ep9', RunningPod: 'pod9', VMImageID: image, Status: 'New', Load: 0.25, Uptime: 4294967295,
    });
    assert.equal(ok(inserted), 1);
    const rows = ok(await fx.db.getFields('vm_Instances', ['InstanceID', 'Name', 'UniqueID', 'Load', 'Uptime', 'Jobs'], { Name: 'vm9' }));
    assert.deepEqual(rows, [[inserted.lastRowId, 'vm9', '', 0.25, 4294967295, 0]]);
  });

  it('inserts history rows (Status free, Update given as a Date)', async function () {
    assert.equal(ok(await fx.db.insertFields('vm_History', null, null, undefined, {
      InstanceID: 3, Status: 'Running', Load: 1.5, Jobs: 2, TransferredFiles: 3, TransferredBytes: 2 ** 40, Update: at(60),
    })), 1);
    assert.deepEqual(ok(await fx.db.getFields('vm_History')), [[3, 'Running', 1.5, 2, 3, 2 ** 40, at(60)]]);
  });

  const refusals: { title: string; fields?: string[]; values?: unknown[]; dict?: Record<string, unknown>; table?: string; message: string[] }[] = [
    { title: 'fields and values of different lengths', fields: ['Name', 'Status'], values: ['imgX'], message: ['differ in length'] },
    { title: 'no fields at all', dict: {}, message: ['No fields'] },
    { title: 'an unknown column', dict: { Name: 'imgX', Status: 'New', Bogus: 1 }, message: ['Bogus'] },
    { title: 'a missing Status', dict: { Name: 'imgX' }, message: ['Status'] },
    { title: 'a status the table does not know', dict: { Name: 'imgX', Status: 'Running' }, message: ['Running'] },
    { title: 'an over-long name', dict: { Name: 'x'.repeat(256), Status: 'New' }, message: ['Name', 'too long'] },
    { title: 'a name with quotes', dict: { Name: "img'); DROP TABLE vm_Images; --", Status: 'New' }, message: ['Name'] },
    { title: 'a time that is not a time', dict: { Name: 'imgX', Status: 'New', LastUpdate: 'soon' }, message: ['LastUpdate'] },
    { title: 'a null in a NOT NULL column', dict: { Name: null, Status: 'New' }, message: ['Name', 'null'] },
    { title: 'a negative unsigned number', table: 'vm_History', dict: { InstanceID: -1, Status: 'Running', Load: 0 }, message: ['InstanceID', 'negative'] },
    { title: 'an unknown table', table: 'vm_Nope', dict: { Name: 'x' }, message: ['vm_Nope'] },
  ];
  for (const c of refusals) {
    it(`refuses ${c.title} and writes nothing`, async function () {
      const before = await snapshot(fx.db);
      const result = await fx.db.insertFields(c.table ?? 'vm_Images', c.fields, c.values, undefined, c.dict);
      refused(result, ...c.message);
      assert.deepEqual(await snapshot(fx.db), before);
    });
  }

  it('accepts a name of exactly the column width (255)', async function () {
    assert.equal(ok(await fx.db.insertFields('vm_Images', null, null, undefined, { Name: 'n'.repeat(255), Status: 'New' })), 1);
  });
});

// ---- updateFields ------------------------------------------------------------------

/** updateFields with named arguments, in the facade's positional order. */
interface UpdateArgs {
  fields?: string[];
  values?: unknown[];
  dict?: Record<string, unknown>;
  condDict?: Record<string, unknown>;
  limit?: number | false;
  older?: unknown;
  newer?: unknown;
  timeStamp?: string;
  orderAttribute?: string;
  greater?: Record<string, unknown>;
  smaller?: Record<string, unknown>;
}
const update = (db: Db, table: string, a: UpdateArgs) =>
  db.updateFields(table, a.fields, a.values, a.condDict, a.limit ?? false, undefined, a.dict, a.older, a.newer, a.timeStamp, a.orderAttribute, a.greater, a.smaller);

onEveryBackend('generic: updateFields', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  const updates: { title: string; args: UpdateArgs; matched: number; jobs: Record<string, number> }[] = [
    { title: 'fields and values with condDict', args: { fields: ['Jobs'], values: [9], condDict: { Endpoint: 'ep1' } }, matched: 2, jobs: { vm1: 9, vm2: 9, vm3: 3, vm4: 4 } },
    { title: 'updateDict with a list condition', args: { dict: { Jobs: 7 }, condDict: { Name: ['vm1', 'vm4'] } }, matched: 2, jobs: { vm1: 7, vm2: 2, vm3: 3, vm4: 7 } },
    { title: 'no condition: every row', args: { dict: { Jobs: 0 } }, matched: 4, jobs: { vm1: 0, vm2: 0, vm3: 0, vm4: 0 } },
    { title: 'limit with orderAttribute DESC', args: { dict: { Jobs: 50 }, orderAttribute: 'LastUpdate:DESC', limit: 2 }, matched: 2, jobs: { vm1: 1, vm2: 2, vm3: 50, vm4: 50 } },
    {
      title: 'limit with orderAttribute ASC and a condition',
      args: { dict: { Jobs: 50 }, condDict: { Endpoint: 'ep2' }, orderAttribute: 'Jobs:ASC', limit: 1 },
      matched: 1,
      jobs: { vm1: 1, vm2: 2, vm3: 50, vm4: 4 },
    },
    { title: 'older on LastUpdate', args: { dict: { Jobs: 8 }, older: at(150) }, matched: 2, jobs: { vm1: 8, vm2: 8, vm3: 3, vm4: 4 } },
    { title: 'greater and smaller', args: { dict: { Jobs: 8 }, greater: { Jobs: 2 }, smaller: { Jobs: 4 } }, matched: 2, jobs: { vm1: 1, vm2: 8, vm3: 8, vm4: 4 } },
    {
      title: 'a value equal to the stored one still counts as matched',
      args: { dict: { Jobs: 1 }, condDict: { Name: 'vm1' } },
      matched: 1,
      jobs: { vm1: 1, vm2: 2, vm3: 3, vm4: 4 },
    },
    { title: 'a condition matching nothing', args: { dict: { Jobs: 8 }, condDict: { Name: 'nobody' } }, matched: 0, jobs: { vm1: 1, vm2: 2, vm3: 3, vm4: 4 } },
  ];
  for (const c of updates) {
    it(`updates with ${c.title}`, async function () {
      assert.equal(ok(await update(fx.db, 'vm_Instances', c.args)), c.matched);
      assert.deepEqual(await instanceColumn(fx.db, 'Jobs'), c.jobs);
    });
  }

  it('updates several columns at once, other columns untouched', async function () {
    assert.equal(ok(await update(fx.db, 'vm_Instances', { dict: { PublicIP: '192.0.2.7', ErrorMessage: "it's fine", Load: 0.5 }, condDict: { Name: 'vm2' } })), 1);
    const rows = ok(await fx.db.getFields('vm_Instances', ['Name', 'PublicIP', 'ErrorMessage', 'Load', 'Status'], null, false, undefined, null, null, null, 'Name'));
    assert.deepEqual(rows, [
      ['vm1', '', '', 0, 'Running'],
      ['vm2', '192.0.2.7', "it's fine", 0.5, 'Running'],
      ['vm3', '', '', 0, 'Halted'],
      ['vm4', '', '', 0, 'Submitted'],
    ]);
  });

  it('may write Status of vm_History rows', async function () {
    ok(await fx.db.insertFields('vm_History', ['InstanceID', 'Status', 'Load', 'Update'], [1, 'Running', 0, at(0)]));
    assert.equal(ok(await update(fx.db, 'vm_History', { dict: { Status: 'Halted' }, condDict: { InstanceID: 1 } })), 1);
    assert.deepEqual(ok(await fx.db.getFields('vm_History', ['Status'])), [['Halted']]);
  });

  const refusals: { title: string; table?: string; args: UpdateArgs; message: string[] }[] = [
    { title: 'Status of vm_Instances', args: { dict: { Status: 'Halted' }, condDict: { Name: 'vm1' } }, message: ['vm_Instances.Status'] },
    { title: 'Status of vm_Instances given as fields/values', args: { fields: ['Jobs', 'Status'], values: [3, 'Running'] }, message: ['Status'] },
    { title: 'Status of vm_Images', table: 'vm_Images', args: { dict: { Status: 'Validated' } }, message: ['vm_Images.Status'] },
    { title: 'the primary key', args: { dict: { InstanceID: 99 }, condDict: { Name: 'vm1' } }, message: ['InstanceID'] },
    { title: 'an unknown column', args: { dict: { Bogus: 1 } }, message: ['Bogus'] },
    { title: 'an unknown condDict column', args: { dict: { Jobs: 1 }, condDict: { Bogus: 1 } }, message: ['Bogus'] },
    { title: 'an unknown orderAttribute column', args: { dict: { Jobs: 1 }, orderAttribute: 'Bogus:DESC', limit: 1 }, message: ['Bogus'] },
    { title: 'fields and values of different lengths', args: { fields: ['Jobs', 'Load'], values: [1] }, message: ['differ in length'] },
    { title: 'no fields', args: { dict: {} }, message: ['No fields'] },
    { title: 'text in an integer column', args: { dict: { Jobs: 'lots' } }, message: ['Jobs'] },
    { title: 'a fraction in an integer column', args: { dict: { Jobs: 1.5 } }, message: ['Jobs', 'integer'] },
    { title: 'a negative unsigned integer', args: { dict: { Jobs: -1 } }, message: ['Jobs', 'negative'] },
    { title: 'a negative unsigned id', args: { dict: { VMImageID: -3 } }, message: ['VMImageID'] },
    { title: 'an integer beyond INTEGER UNSIGNED', args: { dict: { Uptime: 2 ** 32 } }, message: ['Uptime', 'too large'] },
    { title: 'a non-finite float', args: { dict: { Load: Number.NaN } }, message: ['Load'] },
    { title: 'a negative load', args: { dict: { Load: -0.5 } }, message: ['Load', 'negative'] },
    { title: 'a number in a text column', args: { dict: { Endpoint: 5 } }, message: ['Endpoint'] },
    { title: 'an over-long string', args: { dict: { Endpoint: 'e'.repeat(256) } }, message: ['Endpoint', 'too long'] },
    { title: 'an over-long IP', args: { dict: { PublicIP: '2001:0db8:0000:0000:0000:ff00:0042:8329' } }, message: ['PublicIP', 'too long'] },
    { title: 'an IP that is not an IP', args: { dict: { PublicIP: '999.1.1.1' } }, message: ['PublicIP'] },
    { title: 'control characters in free text', args: { dict: { ErrorMessage: 'line\u0000break' } }, message: ['ErrorMessage', 'control'] },
    { title: 'null in a NOT NULL column', args: { dict: { Name: null } }, message: ['Name', 'null'] },
    { title: 'a negative limit', args: { dict: { Jobs: 1 }, limit: -1 }, message: ['limit'] },
  ];
  for (const c of refusals) {
    it(`refuses ${c.title} and changes nothing`, async function () {
      const before = await snapshot(fx.db);
      refused(await update(fx.db, c.table ?? 'vm_Instances', c.args), ...c.message);
      assert.deepEqual(await snapshot(fx.db), before);
    });
  }
});

// ---- deleteEntries, countEntries, getCounters, getDistinctAttributeValues ----------------

onEveryBackend('generic: deleteEntries', (fx) => {
  beforeEach(async function () {
    await seedFleet(fx.db);
  });

  const deletions: { title: string; call: (db: Db) => Promise<Outcome<number>>; deleted: number; left: string[] }[] = [
    { title: 'condDict', call: (db) => db.deleteEntries('vm_Instances', { Endpoint: 'ep2' }), deleted: 2, left: ['vm1', 'vm2'] },
    { title: 'a list condition', call: (db) => db.deleteEntries('vm_Instances', { Name: ['vm1', 'vm4', 'nobody'] }), deleted: 2, left: ['vm2', 'vm3'] },
    { title: 'older', call: (db) => db.deleteEntries('vm_Instances', null, false, undefined, at(200)), deleted: 2, left: ['vm3', 'vm4'] },
    {
      title: 'newer on an explicit timeStamp',
      call: (db) => db.deleteEntries('vm_Instances', null, false, undefined, null, at(200), 'LastUpdate'),
      deleted: 2,
      left: ['vm1', 'vm2'],
    },
    {
      title: 'greater and smaller',
      call: (db) => db.deleteEntries('vm_Instances', null, false, undefined, null, null, null, null, { Jobs: 2 }, { Jobs: 3 }),
      deleted: 1,
      left: ['vm1', 'vm3', 'vm4'],
    },
    {
      title: 'limit with orderAttribute',
      call: (db) => db.deleteEntries('vm_Instances', null, 1, undefined, null, null, null, 'Jobs:DESC'),
      deleted: 1,
      left: ['vm1', 'vm2', 'vm3'],
    },
    {
      title: 'limit with orderAttribute and a condition',
      call: (db) => db.deleteEntries('vm_Instances', { Endpoint: 'ep1' }, 1, undefined, null, null, null, 'LastUpdate:ASC'),
      deleted: 1,
      left: ['vm2', 'vm3', 'vm4'],
    },
    { title: 'a condition matching nothing', call: (db) => db.deleteEntries('vm_Instances', { Name: 'nobody' }), deleted: 0, left: ALL },
    { title: 'no condition: every row', call: (db) => db.deleteEntries('vm_Instances'), deleted: 4, left: [] },
  ];
  for (const c of deletions) {
    it(`deletes with ${c.title}`, async function () {
      assert.equal(ok(await c.call(fx.db)), c.deleted);
      assert.deepEqual(Object.keys(await instanceColumn(fx.db, 'Jobs')).sort(), c.left);
    });
  }

  it('refuses unknown columns and tables and deletes nothing', async function () {
    const before = await snapshot(fx.db);
    refused(await fx.db.deleteEntries('vm_Instances', { Bogus: 'x' }), 'Bogus');
    refused(await fx.db.deleteEntries('vm_Instances', null, 1, undefined, null, null, null, 'Bogus:ASC'), 'Bogus');
    refused(await fx.db.deleteEntries('vm_Nope', { Name: 'vm1' }), 'vm_Nope');
    assert.deepEqual(await snapshot(fx.db), before);
  });
});

onEveryBackend('generic: countEntries, getCounters, getDistinctAttributeValues', (fx) => {
  let fleet: Awaited<ReturnType<typeof seedFleet>>;
  beforeEach(async function () {
    fleet = await seedFleet(fx.db);
  });

  const counts: { title: string; call: (db: Db) => Promise<Outcome<number>>; n: number }[] = [
    { title: 'everything', call: (db) => db.countEntries('vm_Instances'), n: 4 },
    { title: 'condDict', call: (db) => db.countEntries('vm_Instances', { Endpoint: 'ep1' }), n: 2 },
    { title: 'a list condition', call: (db) => db.countEntries('vm_Instances', { RunningPod: ['p1', 'p2'], Endpoint: 'ep2' }), n: 2 },
    { title: 'an empty list', call: (db) => db.countEntries('vm_Instances', { RunningPod: [] }), n: 0 },
    { title: 'older', call: (db) => db.countEntries('vm_Instances', null, at(150)), n: 2 },
    { title: 'newer', call: (db) => db.countEntries('vm_Instances', null, null, at(300), 'LastUpdate'), n: 1 },
    { title: 'greater', call: (db) => db.countEntries('vm_Instances', null, null, null, null, undefined, { Jobs: 3 }), n: 2 },
    { title: 'smaller', call: (db) => db.countEntries('vm_Instances', null, null, null, null, undefined, null, { Jobs: 3 }), n: 2 },
    { title: 'another table', call: (db) => db.countEntries('vm_Images', { Status: 'Validated' }), n: 1 },
  ];
  for (const c of counts) {
    it(`countEntries with ${c.title}`, async function () {
      assert.equal(ok(await c.call(fx.db)), c.n);
    });
  }

  /** getCounters results in a stable order for comparison. */
  const sorted = (rows: [Record<string, unknown>, number][]) => [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

  it('getCounters groups by one attribute', async function () {
    assert.deepEqual(sorted(ok(await fx.db.getCounters('vm_Instances', ['Status']))), [
      [{ Status: 'Halted' }, 1],
      [{ Status: 'Running' }, 2],
      [{ Status: 'Submitted' }, 1],
    ]);
  });

  it('getCounters groups by several attributes, with a condition', async function () {
    assert.deepEqual(sorted(ok(await fx.db.getCounters('vm_Instances', ['Endpoint', 'VMImageID'], { Status: ['Running', 'Halted'] }))), sorted([
      [{ Endpoint: 'ep1', VMImageID: fleet.imgA }, 2],
      [{ Endpoint: 'ep2', VMImageID: fleet.imgB }, 1],
    ]));
  });

  it('getCounters with older and greater', async function () {
    assert.deepEqual(sorted(ok(await fx.db.getCounters('vm_Instances', ['RunningPod'], null, at(250), null, null, undefined, { Jobs: 2 }))), [
      [{ RunningPod: 'p1' }, 1],
      [{ RunningPod: 'p2' }, 1],
    ]);
  });

  it('getDistinctAttributeValues lists each value once, sorted and typed', async function () {
    assert.deepEqual(ok(await fx.db.getDistinctAttributeValues('vm_Instances', 'Endpoint')), ['ep1', 'ep2']);
    assert.deepEqual(ok(await fx.db.getDistinctAttributeValues('vm_Instances', 'VMImageID')), [fleet.imgA, fleet.imgB].sort((a, b) => a - b));
    assert.deepEqual(ok(await fx.db.getDistinctAttributeValues('vm_Instances', 'Jobs', null, null, null, null, undefined, { Jobs: 2 })), [2, 3, 4]);
    assert.deepEqual(ok(await fx.db.getDistinctAttributeValues('vm_Instances', 'RunningPod', { Status: 'Running' }, null, at(50))), ['p2']);
    assert.deepEqual(ok(await fx.db.getDistinctAttributeValues('vm_Instances', 'Endpoint', { Name: [] })), []);
  });

  it('refuses unknown attributes, conditions and tables, naming them', async function () {
    refused(await fx.db.countEntries('vm_Instances', { Bogus: 1 }), 'Bogus');
    refused(await fx.db.countEntries('vm_Nope'), 'vm_Nope');
    refused(await fx.db.getCounters('vm_Instances', ['Status', 'Bogus']), 'Bogus');
    refused(await fx.db.getCounters('vm_Instances', []), 'attrList');
    refused(await fx.db.getCounters('vm_Images', ['Endpoint']), 'Endpoint');
    refused(await fx.db.getDistinctAttributeValues('vm_Instances', 'Bogus'), 'Bogus');
    refused(await fx.db.getDistinctAttributeValues('vm_Instances', 'Name', { Nope: 1 }), 'Nope');
  });
});

// ---- transactions --------------------------------------------------------------------

onEveryBackend('generic: transaction', (fx) => {
  const imageNames = async (db: Db): Promise<string[]> => ok(await db.getDistinctAttributeValues('vm_Images', 'Name')) as string[];
  const newImage = async (db: Db, Name: string): Promise<void> => {
    ok(await db.insertFields('vm_Images', null, null, undefined, { Name, Status: 'New' }));
  };

  it('commits when the callback returns, and returns its value', async function () {
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'img1');
      await newImage(tx, 'img2');
      return 42;
    });
    assert.deepEqual(result, { OK: true, Value: 42 });
    assert.deepEqual(await imageNames(fx.db), ['img1', 'img2']);
  });

  it('rolls back everything when the callback throws', async function () {
    await newImage(fx.db, 'before');
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'img1');
      ok(await tx.updateFields('vm_Images', null, null, { Name: 'before' }, false, undefined, { ErrorMessage: 'touched' }));
      throw new Error('boom');
    });
    refused(result, 'boom');
    assert.deepEqual(await imageNames(fx.db), ['before']);
    assert.deepEqual(ok(await fx.db.getFields('vm_Images', ['ErrorMessage'])), [['']]);
  });

  it('rolls back when a method inside hits a database error, even if the callback carries on', async function () {
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'img1');
      // vm_History.Status is NOT NULL without a default: the database itself refuses the row.
      const failed = await tx.insertFields('vm_History', ['InstanceID', 'Load'], [1, 0.5]);
      assert.equal(failed.OK, false);
      await newImage(tx, 'img2');
      return 'carried on';
    });
    assert.equal(result.OK, false);
    assert.deepEqual(await imageNames(fx.db), []);
    assert.equal(ok(await fx.db.countEntries('vm_History')), 0);
  });

  it('rolls back when raw SQL inside fails', async function () {
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'img1');
      assert.equal((await tx._query('SELECT * FROM `vm_NoSuchTable`')).OK, false);
      return true;
    });
    assert.equal(result.OK, false);
    assert.deepEqual(await imageNames(fx.db), []);
  });

  it('keeps input refusals inside a transaction harmless: the rest commits', async function () {
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'img1');
      refused(await tx.updateFields('vm_Images', null, null, null, false, undefined, { Bogus: 1 }), 'Bogus');
      await newImage(tx, 'img2');
      return 'done';
    });
    assert.deepEqual(result, { OK: true, Value: 'done' });
    assert.deepEqual(await imageNames(fx.db), ['img1', 'img2']);
  });

  it('runs a nested transaction inside the outer one: both commit together', async function () {
    const result = await fx.db.transaction(async (tx) => {
      await newImage(tx, 'outer');
      const inner = await tx.transaction(async (nested) => {
        await newImage(nested, 'inner');
        // The nested callback sees the outer transaction's uncommitted row.
        return imageNames(nested);
      });
      return inner;
    });
    assert.deepEqual(result, { OK: true, Value: { OK: true, Value: ['inner', 'outer'] } });
    assert.deepEqual(await imageNames(fx.db), ['inner', 'outer']);
  });

  it('rolls a nested transaction back with the outer one', async function () {
    const result = await fx.db.transaction(async (tx) => {
      ok(await tx.transaction(async (nested) => newImage(nested, 'inner')));
      throw new Error('outer fails after the nested one returned');
    });
    refused(result, 'outer fails');
    assert.deepEqual(await imageNames(fx.db), []);
  });

  it('does not keep the writes of a nested transaction that throws', async function () {
    await fx.db.transaction(async (tx) => {
      const nested = await tx.transaction(async (inner) => {
        await newImage(inner, 'inner');
        throw new Error('nested boom');
      });
      refused(nested, 'nested boom');
      return 'outer returns';
    });
    assert.ok(!(await imageNames(fx.db)).includes('inner'));
  });

  it('a refused call inside a transaction undoes only its own savepoint', async function () {
    const result = await fx.db.transaction(async (tx) => {
      const first = ok(await tx.insertInstance('uid-1', 'img1', 'vm1', 'ep1', 'pod1'));
      // Same UniqueID again: the call first creates image img2, then is refused; img2 must go with it.
      refused(await tx.insertInstance('uid-1', 'img2', 'vm2', 'ep1', 'pod1'), 'UniqueID is not unique: uid-1');
      // A refused transition (Submitted cannot go to Stopping) leaves no trace either.
      const stopping = await tx.declareInstanceStopping(first);
      refused(stopping, 'Transition ( Submitted -> Stopping ) not allowed');
      assert.equal((stopping as { State?: string }).State, 'Submitted');
      // ... and the transaction goes on.
      ok(await tx.insertInstance('uid-3', 'img3', 'vm3', 'ep1', 'pod1'));
      return first;
    });
    const first = ok(result);
    assert.deepEqual(await imageNames(fx.db), ['img1', 'img3']);
    assert.deepEqual(ok(await fx.db.getFields('vm_Instances', ['Name', 'UniqueID', 'Status'], null, false, undefined, null, null, null, 'Name')), [
      ['vm1', 'uid-1', 'Submitted'],
      ['vm3', 'uid-3', 'Submitted'],
    ]);
    assert.deepEqual(ok(await fx.db.getFields('vm_History', ['InstanceID', 'Status'], { InstanceID: first })), [[first, 'Submitted']]);
  });
});

// ---- _query ------------------------------------------------------------------------

onEveryBackend('generic: _query', (fx) => {
  it('binds params and returns rows for a SELECT', async function () {
    await seedFleet(fx.db);
    const rows = ok(await fx.db._query('SELECT `Name`, `Jobs` FROM `vm_Instances` WHERE `Endpoint` = ? AND `Jobs` >= ? ORDER BY `Jobs`', ['ep2', 4])) as Record<string, unknown>[];
    assert.ok(Array.isArray(rows));
    assert.deepEqual(rows.map((row) => [row.Name, Number(row.Jobs)]), [['vm4', 4]]);
    assert.deepEqual(ok(await fx.db._query('SELECT `Name` FROM `vm_Instances` WHERE `Name` = ?', ['nobody'])), []);
  });

  it('returns { affected, insertId } for writes', async function () {
    const inserted = ok(await fx.db._query('INSERT INTO `vm_Images` (`Name`, `Status`) VALUES (?, ?)', ['imgQ', 'New'])) as { affected: number; insertId: number };
    assert.equal(inserted.affected, 1);
    assert.deepEqual(ok(await fx.db.getFields('vm_Images', ['VMImageID'], { Name: 'imgQ' })), [[inserted.insertId]]);
    const again = ok(await fx.db._query('INSERT INTO `vm_Images` (`Name`, `Status`) VALUES (?, ?), (?, ?)', ['imgR', 'New', 'imgS', 'New'])) as { affected: number };
    assert.equal(again.affected, 2);
    const updated = ok(await fx.db._query('UPDATE `vm_Images` SET `ErrorMessage` = ? WHERE `Name` IN (?, ?)', ['x', 'imgQ', 'imgR'])) as { affected: number };
    assert.equal(updated.affected, 2);
    const deleted = ok(await fx.db._query('DELETE FROM `vm_Images` WHERE `Name` = ?', ['imgS'])) as { affected: number };
    assert.equal(deleted.affected, 1);
  });

  it('stores a hostile value verbatim when it is bound', async function () {
    const hostile = "x'); DROP TABLE `vm_Images`; -- \"";
    ok(await fx.db._query('INSERT INTO `vm_Images` (`Name`, `Status`, `ErrorMessage`) VALUES (?, ?, ?)', ['imgH', 'New', hostile]));
    assert.deepEqual(ok(await fx.db.getFields('vm_Images', ['Name', 'ErrorMessage'])), [['imgH', hostile]]);
  });

  it('refuses empty SQL and reports database errors as results', async function () {
    refused(await fx.db._query(''), 'sql');
    refused(await fx.db._query('   '), 'sql');
    refused(await fx.db._query('SELECT * FROM `vm_NoSuchTable` WHERE `x` = ?', [1]), 'Database error');
  });
});
