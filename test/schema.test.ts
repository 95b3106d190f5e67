import { PERFORMANCE_INDEXES } from '../entities/migrations/performance-indexes';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VirtualMachineDB } from '../src';
import { BACKENDS, MYSQL_SERVER_URL, ageInstance, ok, onEveryBackend, withMysql } from './support/backends';

/**
 * The schema equals the seed's tablesDesc on both backends, migrations run
 * once (also when two processes race on an empty database), `open` fails
 * clearly on bad urls, and the package root exposes the facade.
 */

const ROOT = resolve(__dirname, '..', '..'); // dist/test -> project root
const SEED_DIR = process.env.VMDB_SEED_DIR ?? resolve(ROOT, '..', 'shared', 'seed');

type TableName = keyof typeof VirtualMachineDB.tablesDesc;
const TABLES = Object.keys(VirtualMachineDB.tablesDesc) as TableName[];
const MIGRATION_NAMES = ['InitialSchema1732838400000', 'LookupIndexes1732838500000', 'FleetQueryIndexes1732838600000', 'FleetSafety1764460800000', 'InstanceLife1765000000000', 'ElasticFleet1765100000000', 'AuditTrail1765200000000'];
/** vmdb's own tables beside the seed's three: fleet safety (migrations FleetSafety and ElasticFleet), the life cycle's record (InstanceLife) and the audit trail (AuditTrail). */
const SAFETY_TABLES = ['vm_AuditLog', 'vm_EndpointControl', 'vm_FleetControl', 'vm_InstanceControl', 'vm_InstanceHalts', 'vm_InstanceLife'];

/** The indexes the later migrations add (not part of the seed): lookups, then fleet-size queries. */
const LOOKUP_INDEXES: Record<TableName, Record<string, string[]>> = {
  vm_Images: { vm_Images_Name: ['Name'] },
  vm_Instances: {
    vm_Instances_UniqueID: ['UniqueID'],
    vm_Instances_Name: ['Name'],
    vm_Instances_Status_LastUpdate: ['Status', 'LastUpdate'],
    vm_Instances_Status_Endpoint_Image: ['Status', 'Endpoint', 'VMImageID'],
    vm_Instances_Endpoint_Status_Image: ['Endpoint', 'Status', 'VMImageID'],
  },
  vm_History: { vm_History_InstanceID_Update: ['InstanceID', 'Update'], vm_History_Status_Update: ['Status', 'Update', 'InstanceID'] },
};

// ---- expected shape, parsed from the seed's column strings -----------------------------

interface Column {
  /** BIGINT, INTEGER, FLOAT, DATETIME or VARCHAR(n) */
  type: string;
  unsigned: boolean;
  nullable: boolean;
  /** The default as text ('' for an empty string, 'NULL'), or undefined for "no default". */
  default: string | undefined;
  autoIncrement: boolean;
}

interface TableShape {
  columns: Record<string, Column>;
  primaryKey: string[];
  /** Secondary (non-unique) indexes: name -> columns in order. */
  indexes: Record<string, string[]>;
}

/** A nullable column without a DEFAULT defaults to NULL: both spellings mean the same. */
function normalizeDefault(value: string | undefined, nullable: boolean): string | undefined {
  return nullable && value === undefined ? 'NULL' : value;
}

/** Parses one seed column string such as `VARCHAR(255) NOT NULL DEFAULT ""`; anything unknown fails loudly. */
function parseSeedColumn(sql: string): Column {
  const type = /^(BIGINT|INTEGER|FLOAT|DATETIME|VARCHAR\(\d+\))(?=\s|$)/.exec(sql);
  assert.ok(type, `unknown column type in ${JSON.stringify(sql)}`);
  let rest = sql.slice(type[0].length);
  const take = (pattern: RegExp): RegExpExecArray | null => {
    const match = pattern.exec(rest);
    if (match) rest = rest.replace(pattern, '');
    return match;
  };
  const unsigned = !!take(/\s+UNSIGNED\b/);
  const autoIncrement = !!take(/\s+AUTO_INCREMENT\b/);
  const nullable = !take(/\s+NOT NULL\b/);
  const dflt = take(/\s+DEFAULT\s+(""|''|NULL|-?\d+(?:\.\d+)?)/);
  assert.equal(rest.trim(), '', `unparsed text in ${JSON.stringify(sql)}`);
  const value = dflt ? (/^(""|'')$/.test(dflt[1]) ? '' : dflt[1]) : undefined;
  return { type: type[1], unsigned, nullable, default: normalizeDefault(value, nullable), autoIncrement };
}

/**
 * What each backend should hold. SQLite has no UNSIGNED and spells an
 * auto-increment id `INTEGER PRIMARY KEY AUTOINCREMENT` (its rowid alias), as
 * the first migration documents; everything else is the seed verbatim.
 */
function expectedShape(table: TableName, dialect: 'mysql' | 'sqlite'): TableShape {
  const desc = VirtualMachineDB.tablesDesc[table] as { Fields: Record<string, string>; PrimaryKey?: string; Indexes?: Record<string, readonly string[]> };
  const columns: Record<string, Column> = {};
  for (const [name, sql] of Object.entries(desc.Fields)) {
    const column = parseSeedColumn(sql);
    columns[name] =
      dialect === 'mysql' ? column : { ...column, unsigned: false, type: column.autoIncrement ? 'INTEGER' : column.type };
  }
  const indexes: Record<string, string[]> = { ...LOOKUP_INDEXES[table] };
  for (const [name, cols] of Object.entries(desc.Indexes ?? {})) indexes[name] = [...cols];
  return { columns, primaryKey: desc.PrimaryKey ? [desc.PrimaryKey] : [], indexes };
}

// ---- observed shape, read from the catalog of each backend --------------------------------

type Row = Record<string, any>;
type Query = (sql: string, params?: unknown[]) => Promise<Row[]>;

/** A raw connection (not the facade, which would migrate on open) to the database behind `url`. */
async function withCatalog<T>(url: string, fn: (query: Query, dialect: 'mysql' | 'sqlite') => Promise<T>): Promise<T> {
  if (url.startsWith('sqlite:')) {
    type Options = { fileMustExist?: boolean };
    const SqliteDatabase: new (file: string, options?: Options) => { prepare(sql: string): { all(...params: unknown[]): Row[] }; close(): void } =
      require('better-sqlite3');
    const db = new SqliteDatabase(url.slice('sqlite:'.length), { fileMustExist: true });
    try {
      return await fn(async (sql, params = []) => db.prepare(sql).all(...params), 'sqlite');
    } finally {
      db.close();
    }
  }
  return withMysql(url, (conn) => fn(async (sql, params = []) => (await conn.query(sql, params))[0] as Row[], 'mysql'));
}

function mysqlType(columnType: string): { type: string; unsigned: boolean } {
  const match = /^(bigint|int|float|datetime|varchar)(?:\((\d+)\))?( unsigned)?$/.exec(columnType);
  assert.ok(match, `unexpected COLUMN_TYPE ${columnType}`);
  const [, base, size, unsigned] = match;
  const type = { bigint: 'BIGINT', int: 'INTEGER', float: 'FLOAT', datetime: 'DATETIME', varchar: `VARCHAR(${size})` }[base]!;
  return { type, unsigned: !!unsigned };
}

/** information_schema.COLUMN_DEFAULT (MariaDB quotes string literals and spells a NULL default 'NULL'). */
function mysqlDefault(value: string | null): string | undefined {
  if (value === null) return undefined;
  const quoted = /^'(.*)'$/.exec(value);
  return quoted ? quoted[1].replace(/''/g, "'") : value;
}

/** PRAGMA table_info dflt_value: the default expression as written. */
function sqliteDefault(value: string | null): string | undefined {
  if (value === null) return undefined;
  const quoted = /^'(.*)'$|^"(.*)"$/.exec(value);
  return quoted ? (quoted[1] ?? quoted[2]) : value.toUpperCase() === 'NULL' ? 'NULL' : value;
}

async function observedShape(query: Query, dialect: 'mysql' | 'sqlite', table: TableName): Promise<TableShape & { columnKeys?: Record<string, string> }> {
  const columns: Record<string, Column> = {};
  const indexes: Record<string, string[]> = {};
  if (dialect === 'mysql') {
    const rows = await query(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS columnType, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS dflt, EXTRA AS extra, COLUMN_KEY AS columnKey
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [table],
    );
    const columnKeys: Record<string, string> = {};
    for (const row of rows) {
      const nullable = row.nullable === 'YES';
      assert.ok(['', 'auto_increment'].includes(row.extra), `${table}.${row.name} has EXTRA ${row.extra}`);
      columns[row.name] = {
        ...mysqlType(row.columnType),
        nullable,
        default: normalizeDefault(mysqlDefault(row.dflt), nullable),
        autoIncrement: row.extra === 'auto_increment',
      };
      columnKeys[row.name] = row.columnKey;
    }
    const stats = await query(
      `SELECT INDEX_NAME AS name, COLUMN_NAME AS col, NON_UNIQUE AS nonUnique
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      [table],
    );
    let primaryKey: string[] = [];
    for (const stat of stats) {
      if (stat.name === 'PRIMARY') primaryKey = [...primaryKey, stat.col];
      else {
        assert.equal(Number(stat.nonUnique), 1, `index ${stat.name} of ${table} should not be UNIQUE`);
        (indexes[stat.name] ??= []).push(stat.col);
      }
    }
    return { columns, primaryKey, indexes, columnKeys };
  }
  const [{ sql: createSql }] = await query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]);
  const info = await query('SELECT name, type, "notnull" AS isNotNull, dflt_value AS dflt, pk FROM pragma_table_info(?) ORDER BY cid', [table]);
  const primaryKey = info.filter((row) => row.pk > 0).sort((a, b) => a.pk - b.pk).map((row) => row.name as string);
  for (const row of info) {
    const nullable = !row.isNotNull;
    // SQLite keeps AUTOINCREMENT only in the CREATE statement; it requires exactly INTEGER PRIMARY KEY.
    const autoIncrement = new RegExp(`[\`"]${row.name}[\`"]\\s+INTEGER\\s+PRIMARY\\s+KEY\\s+AUTOINCREMENT`, 'i').test(createSql);
    columns[row.name] = { type: String(row.type).toUpperCase(), unsigned: false, nullable, default: normalizeDefault(sqliteDefault(row.dflt), nullable), autoIncrement };
  }
  for (const index of await query('SELECT name, "unique" AS isUnique, origin FROM pragma_index_list(?)', [table])) {
    assert.equal(index.origin, 'c', `${table} has an index ${index.name} not made by CREATE INDEX (origin ${index.origin})`);
    assert.equal(Number(index.isUnique), 0, `index ${index.name} of ${table} should not be UNIQUE`);
    const cols = await query('SELECT name FROM pragma_index_info(?) ORDER BY seqno', [index.name]);
    indexes[index.name] = cols.map((c) => c.name as string);
  }
  return { columns, primaryKey, indexes };
}

/** COLUMN_KEY MariaDB should report: PRI for the key, MUL for the first column of a non-unique index. */
function expectedColumnKeys(shape: TableShape): Record<string, string> {
  const firsts = new Set(Object.values(shape.indexes).map((cols) => cols[0]));
  return Object.fromEntries(
    Object.keys(shape.columns).map((name) => [name, shape.primaryKey.includes(name) ? 'PRI' : firsts.has(name) ? 'MUL' : '']),
  );
}

async function assertSchema(url: string): Promise<void> {
  await withCatalog(url, async (query, dialect) => {
    for (const table of TABLES) {
      const expected = expectedShape(table, dialect);
      const { columnKeys, ...observed } = await observedShape(query, dialect, table);
      assert.deepEqual(observed, expected, `${table} on ${dialect}`);
      if (columnKeys) assert.deepEqual(columnKeys, expectedColumnKeys(expected), `${table} COLUMN_KEY`);
    }
  });
}

async function tableNames(query: Query, dialect: 'mysql' | 'sqlite'): Promise<string[]> {
  const rows =
    dialect === 'mysql'
      ? await query('SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()')
      : await query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
  return rows.map((row) => String(row.name)).sort();
}

async function migrationRows(url: string): Promise<{ timestamp: number; name: string }[]> {
  return withCatalog(url, async (query) =>
    (await query('SELECT `timestamp`, `name` FROM `vm_Migrations` ORDER BY `id`')).map((row) => ({ timestamp: Number(row.timestamp), name: String(row.name) })),
  );
}

// ---- child processes ---------------------------------------------------------------------------

interface ChildOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node -e` that requires the built package at the project root and opens `url` at `startAt` (ms since epoch). */
function openInChild(url: string, startAt: number): Promise<ChildOutcome> {
  const script = `
    const { VirtualMachineDB } = require(${JSON.stringify(ROOT)});
    (async () => {
      while (Date.now() < ${startAt}) await new Promise((r) => setTimeout(r, 2));
      const db = await VirtualMachineDB.open({ url: process.env.VMDB_URL });
      const rows = await db._query('SELECT COUNT(*) AS n FROM vm_Migrations');
      await db.close();
      if (!rows.OK) throw new Error(rows.Message);
      process.stdout.write(JSON.stringify({ migrations: Number(rows.Value[0].n) }));
    })().catch((err) => { process.stderr.write(String((err && err.stack) || err)); process.exitCode = 1; });
  `;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, VMDB_URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

// ---- tests -------------------------------------------------------------------------------------

describe('tablesDesc', function () {
  it('parses every seed column string', function () {
    for (const table of TABLES) {
      for (const [name, sql] of Object.entries(VirtualMachineDB.tablesDesc[table].Fields)) {
        assert.doesNotThrow(() => parseSeedColumn(sql as string), `${table}.${name}`);
      }
    }
    assert.deepEqual(parseSeedColumn('VARCHAR(255) NOT NULL DEFAULT ""'), {
      type: 'VARCHAR(255)', unsigned: false, nullable: false, default: '', autoIncrement: false,
    });
    assert.deepEqual(parseSeedColumn('BIGINT UNSIGNED AUTO_INCREMENT NOT NULL'), {
      type: 'BIGINT', unsigned: true, nullable: false, default: undefined, autoIncrement: true,
    });
    assert.deepEqual(parseSeedColumn('DATETIME'), { type: 'DATETIME', unsigned: false, nullable: true, default: 'NULL', autoIncrement: false });
    assert.throws(() => parseSeedColumn('TEXT'));
    assert.throws(() => parseSeedColumn('INTEGER UNSIGNED ZEROFILL'));
  });

  it("equals the seed document's tablesDesc (when the seed is available)", function () {
    const files = existsSync(SEED_DIR) ? readdirSync(SEED_DIR).filter((f) => f.endsWith('.txt')) : [];
    const line = files
      .flatMap((file) => readFileSync(join(SEED_DIR, file), 'utf8').split('\n'))
      .find((l) => l.startsWith('- tablesDesc = '));
    if (!line) this.skip();
    // The seed prints a Python dict: single-quoted strings (which may hold double quotes), dicts and lists.
    const json = line.slice('- tablesDesc = '.length).replace(/'((?:[^'\\]|\\.)*)'/g, (_m, body: string) => JSON.stringify(body));
    assert.deepEqual(VirtualMachineDB.tablesDesc, JSON.parse(json));
  });
});

onEveryBackend('schema', (fx) => {
  it("columns: types (with UNSIGNED), nullability, defaults and auto-increment are the seed's", async function () {
    await withCatalog(fx.url, async (query, dialect) => {
      for (const table of TABLES) {
        const { columns } = await observedShape(query, dialect, table);
        assert.deepEqual(columns, expectedShape(table, dialect).columns, `${table} on ${dialect}`);
      }
    });
  });

  it("keys and indexes: the seed's primary keys and indexes plus the lookup indexes", async function () {
    await withCatalog(fx.url, async (query, dialect) => {
      for (const table of TABLES) {
        const { primaryKey, indexes, columnKeys } = await observedShape(query, dialect, table);
        const expected = expectedShape(table, dialect);
        assert.deepEqual(primaryKey, expected.primaryKey, `${table} primary key`);
        assert.deepEqual(indexes, expected.indexes, `${table} indexes`);
        if (columnKeys) assert.deepEqual(columnKeys, expectedColumnKeys(expected), `${table} COLUMN_KEY`);
      }
    });
    // The list the fleet-size benchmark drops is exactly what the migrations add beyond the seed.
    const listed = Object.fromEntries(TABLES.map((t) => [t, Object.fromEntries(PERFORMANCE_INDEXES.filter((i) => i.table === t).map((i) => [i.name, [...i.columns]]))]));
    assert.deepEqual(listed, LOOKUP_INDEXES);
    // Spot checks, spelled out: the seed's two indexes.
    const instances = expectedShape('vm_Instances', 'mysql');
    assert.deepEqual(instances.indexes.Status, ['Status']);
    assert.deepEqual(expectedShape('vm_History', 'mysql').indexes.InstanceID, ['InstanceID']);
  });

  it("holds only the three seed tables, vmdb's own tables and vm_Migrations", async function () {
    await withCatalog(fx.url, async (query, dialect) => {
      assert.deepEqual(await tableNames(query, dialect), [...TABLES, ...SAFETY_TABLES, 'vm_Migrations'].sort());
    });
  });

  it('MariaDB: transactional engine and a 4-byte UTF-8 charset', async function () {
    if (fx.backend.name !== 'mariadb') this.skip();
    await withCatalog(fx.url, async (query) => {
      const rows = await query(
        'SELECT TABLE_NAME AS name, ENGINE AS engine, TABLE_COLLATION AS collation FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?)',
        TABLES,
      );
      assert.equal(rows.length, 3);
      for (const row of rows) {
        assert.equal(row.engine, 'InnoDB', row.name);
        assert.match(row.collation, /^utf8mb4_/, row.name);
      }
    });
  });

  it('vm_Migrations records every migration; opening again applies nothing', async function () {
    this.timeout(60_000);
    const before = await migrationRows(fx.url);
    assert.deepEqual(before.map((row) => row.name), MIGRATION_NAMES);
    const id = ok(await fx.db.insertInstance('uid-keep', 'img-keep', 'vm-keep', 'ep', 'pod'));
    // In this process (SQLite shares one connection per file, so this re-runs the migrator on MariaDB only) ...
    const again = await VirtualMachineDB.open({ url: fx.url });
    try {
      assert.equal(ok(await again.getInstanceID('uid-keep')), id, 'data survives a re-open');
    } finally {
      await again.close();
    }
    // ... and from a fresh process, which runs the migrator on both backends.
    const child = await openInChild(fx.url, Date.now());
    assert.equal(child.code, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), { migrations: MIGRATION_NAMES.length });
    assert.deepEqual(await migrationRows(fx.url), before);
    assert.equal(ok(await fx.db.getInstanceID('uid-keep')), id, 'data survives');
    await assertSchema(fx.url);
  });

  it('two processes opening the same empty database at once both succeed and leave one schema', async function () {
    this.timeout(120_000);
    const url = await fx.backend.createDatabase();
    if (fx.backend.name === 'sqlite') assert.ok(!existsSync(url.slice('sqlite:'.length)), 'starts empty (no file yet)');
    else await withCatalog(url, async (query, dialect) => assert.deepEqual(await tableNames(query, dialect), [], 'starts empty'));
    const startAt = Date.now() + 2500; // both children wait for this instant, then open together
    const outcomes = await Promise.all([openInChild(url, startAt), openInChild(url, startAt)]);
    for (const [i, outcome] of outcomes.entries()) {
      assert.equal(outcome.code, 0, `child ${i} failed: ${outcome.stderr}`);
      assert.deepEqual(JSON.parse(outcome.stdout), { migrations: MIGRATION_NAMES.length }, `child ${i}`);
    }
    await withCatalog(url, async (query, dialect) => {
      assert.deepEqual(await tableNames(query, dialect), [...TABLES, ...SAFETY_TABLES, 'vm_Migrations'].sort());
    });
    assert.deepEqual((await migrationRows(url)).map((row) => row.name), MIGRATION_NAMES);
    await assertSchema(url);
    // And the result is usable and stays migrated.
    const db = await VirtualMachineDB.open({ url });
    try {
      assert.equal(ok(await db.checkImageStatus('img-after-race')), 'New');
    } finally {
      await db.close();
    }
    assert.deepEqual((await migrationRows(url)).map((row) => row.name), MIGRATION_NAMES);
  });

  it('stallingInterval defaults to 2400 and a custom value is kept and used', async function () {
    assert.equal(VirtualMachineDB.defaultStallingInterval, 2400);
    assert.equal(fx.db.stallingInterval, 2400);
    const quick = await VirtualMachineDB.open({ url: fx.url, stallingInterval: 60 });
    try {
      assert.equal(quick.stallingInterval, 60);
      const id = ok(await fx.db.insertInstance('uid-quiet', 'img-quiet', 'vm-quiet', 'ep', 'pod'));
      await ageInstance(fx.db, id, 120); // silent for 2 minutes
      assert.equal((await fx.db.declareInstanceStalled(id)).OK, false, 'not stalled after 120 s with the default 2400 s');
      assert.deepEqual(await quick.declareInstanceStalled(id), { OK: true, Value: 'Stalled' });
    } finally {
      await quick.close();
    }
  });
});

describe('VirtualMachineDB.open with bad options', function () {
  const server = new URL(MYSQL_SERVER_URL);
  const mysqlAt = (auth: string, rest: string) => `mysql://${auth}@${server.hostname}:${server.port || 3306}${rest}`;

  // [what, url, expected message, password that must not appear]
  const BAD_URLS: [string, string, RegExp, string?][] = [
    ['unsupported scheme', 'ftp://x', /scheme "ftp:" is not supported/],
    ['unsupported scheme with credentials', 'ftp://admin:ftp-s3cret@x/db', /scheme "ftp:" is not supported/, 'ftp-s3cret'],
    ['sqlite without a file', 'sqlite:', /names no file/],
    ['mysql without a database', 'mysql://root@127.0.0.1:3306/', /names no database/],
    ['mysql without a database, with a password', 'mysql://root:nodb-s3cret@127.0.0.1:3306/', /names no database/, 'nodb-s3cret'],
    ['unreachable port', 'mysql://root:port-s3cret@127.0.0.1:1/vmdb', /ECONNREFUSED/, 'port-s3cret'],
    ['wrong password', mysqlAt('root:wrong-s3cret', '/mysql'), /Access denied/, 'wrong-s3cret'],
    ['unknown database', mysqlAt(server.username || 'root', '/vmdb_no_such_database_here'), /Unknown database/],
    ['malformed url with a password', 'mysql://root:malformed-s3cret@[bad/db', /not a valid url/, 'malformed-s3cret'],
    // A base64-generated password holds '/' and '+'; unencoded, it makes the url invalid, and must still not be echoed.
    ['password with an unencoded slash', 'mysql://root:b64/s3cret+x@127.0.0.1:3306/vmdb', /not a valid url/, 's3cret+x'],
    ['empty url', '', /non-empty/],
  ];

  for (const [what, url, expected, password] of BAD_URLS) {
    it(`rejects ${what}${password ? ' without echoing the password' : ''}`, async function () {
      this.timeout(20_000);
      let message = '';
      await assert.rejects(VirtualMachineDB.open({ url }), (err: Error) => {
        message = err.message;
        return true;
      });
      assert.match(message, expected);
      assert.match(message, /^Cannot open /, 'the message says what failed');
      if (password) assert.ok(!message.includes(password), `password echoed in: ${message}`);
    });
  }

  const BAD_OPTIONS: [string, unknown, RegExp][] = [
    ['no options', undefined, /needs \{ url \}/],
    ['a string instead of options', 'sqlite::memory:', /needs \{ url \}/],
    ['a numeric url', { url: 5 }, /url must be a non-empty string/],
    ['stallingInterval 0', { url: 'sqlite::memory:', stallingInterval: 0 }, /stallingInterval/],
    ['negative stallingInterval', { url: 'sqlite::memory:', stallingInterval: -60 }, /stallingInterval/],
    ['fractional stallingInterval', { url: 'sqlite::memory:', stallingInterval: 1.5 }, /stallingInterval/],
    ['stallingInterval as text', { url: 'sqlite::memory:', stallingInterval: '60' }, /stallingInterval/],
    ['NaN stallingInterval', { url: 'sqlite::memory:', stallingInterval: NaN }, /stallingInterval/],
  ];

  for (const [what, options, expected] of BAD_OPTIONS) {
    it(`rejects ${what}`, async function () {
      await assert.rejects(VirtualMachineDB.open(options as never), (err: Error) => expected.test(err.message));
    });
  }
});

describe('package entry point', function () {
  it("require('<project root>') exposes VirtualMachineDB", function () {
    const pkg = require(ROOT);
    assert.equal(typeof pkg.VirtualMachineDB, 'function');
    assert.equal(typeof pkg.VirtualMachineDB.open, 'function');
    assert.equal(pkg.VirtualMachineDB, VirtualMachineDB, 'the same class the sources export');
    assert.deepEqual(pkg.VirtualMachineDB.tablesDesc, VirtualMachineDB.tablesDesc);
    assert.equal(pkg.VirtualMachineDB.defaultStallingInterval, 2400);
  });
});

describe('automatic migration can be turned off', function () {
  for (const backend of BACKENDS) {
    it(`[${backend.name}] open({ migrate: false }) refuses a schema that is behind, and accepts a current one`, async function () {
      const url = await backend.createDatabase();
      try {
        await assert.rejects(VirtualMachineDB.open({ url, migrate: false }), /schema is not current.*vmdb migrate/);
        const migrated = await VirtualMachineDB.open({ url });
        assert.equal(await migrated.schemaIsCurrent(), true);
        await migrated.close();
        const strict = await VirtualMachineDB.open({ url, migrate: false });
        assert.equal(await strict.schemaIsCurrent(), true);
        await strict.close();
      } finally {
        await backend.dropAll();
      }
    });
  }
});
