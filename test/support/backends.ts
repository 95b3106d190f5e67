import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { createConnection } from 'mysql2/promise';
import { VirtualMachineDB } from '../../src';

/**
 * Each test file runs its suites on every backend: a throw-away MariaDB/MySQL
 * database (created and dropped by this run) and an SQLite file.
 * VMDB_TEST_MYSQL_URL points at the server (default: local root without password).
 */
export const MYSQL_SERVER_URL = process.env.VMDB_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

export interface Backend {
  name: 'mariadb' | 'sqlite';
  /** A url for a fresh, empty database on this backend. */
  createDatabase(): Promise<string>;
  /** Drops every database created by createDatabase. */
  dropAll(): Promise<void>;
}

/** A raw mysql2 connection (no facade, no migrations) to the server or database of a mysql:// url. */
export async function withMysql<T>(url: string, fn: (conn: Awaited<ReturnType<typeof createConnection>>) => Promise<T>): Promise<T> {
  const target = new URL(url);
  const conn = await createConnection({
    host: target.hostname,
    port: Number(target.port || 3306),
    user: decodeURIComponent(target.username || 'root'),
    password: decodeURIComponent(target.password),
    database: decodeURIComponent(target.pathname.slice(1)) || undefined,
  });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

const mysqlAdmin = <T>(fn: Parameters<typeof withMysql<T>>[1]) => withMysql(MYSQL_SERVER_URL, fn);

function mariadb(): Backend {
  const created: string[] = [];
  return {
    name: 'mariadb',
    async createDatabase() {
      const name = `vmdb_test_${process.pid}_${randomBytes(4).toString('hex')}`;
      // The name is generated above from digits and hex only; identifiers cannot be bound.
      await mysqlAdmin((conn) => conn.query(`CREATE DATABASE \`${name}\``));
      created.push(name);
      return `${MYSQL_SERVER_URL.replace(/\/$/, '')}/${name}`;
    },
    async dropAll() {
      await mysqlAdmin(async (conn) => {
        for (const name of created.splice(0)) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      });
    },
  };
}

function sqlite(): Backend {
  const created: string[] = [];
  return {
    name: 'sqlite',
    async createDatabase() {
      const file = join(tmpdir(), `vmdb-test-${process.pid}-${randomBytes(4).toString('hex')}.sqlite`);
      created.push(file);
      return `sqlite:${file}`;
    },
    async dropAll() {
      for (const file of created.splice(0)) {
        for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      }
    },
  };
}

export const BACKENDS: Backend[] = [mariadb(), sqlite()];

export interface Fixture {
  backend: Backend;
  url: string;
  db: VirtualMachineDB;
}

/**
 * describe() once per backend with a fresh database opened before the suite;
 * every test starts from empty tables. `open` options other than url may be given.
 */
export function onEveryBackend(title: string, body: (fx: Fixture) => void, options: { stallingInterval?: number } = {}): void {
  for (const backend of BACKENDS) {
    describe(`${title} [${backend.name}]`, function () {
      const fx = { backend } as Fixture;
      before(async function () {
        fx.url = await backend.createDatabase();
        fx.db = await VirtualMachineDB.open({ url: fx.url, ...options });
      });
      beforeEach(async function () {
        await clearTables(fx.db);
      });
      after(async function () {
        await fx.db?.close();
        await backend.dropAll();
      });
      body(fx);
    });
  }
}

export async function clearTables(db: VirtualMachineDB): Promise<void> {
  for (const table of Object.keys(VirtualMachineDB.tablesDesc)) {
    const result = await db._query(`DELETE FROM \`${table}\``);
    if (!result.OK) throw new Error(result.Message);
  }
}

/** Every row of every table, for "nothing changed" assertions. */
export async function snapshot(db: VirtualMachineDB): Promise<Record<string, unknown[][]>> {
  const out: Record<string, unknown[][]> = {};
  for (const table of Object.keys(VirtualMachineDB.tablesDesc)) {
    const rows = await db.getFields(table);
    if (!rows.OK) throw new Error(rows.Message);
    out[table] = rows.Value.map((row) => row.map((v) => (v instanceof Date ? v.toISOString() : v)));
    out[table].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  return out;
}

/** Unwraps an OK result or fails the test with its message. */
export function ok<T>(result: { OK: true; Value: T } | { OK: false; Message: string }): T {
  if (!result.OK) throw new Error(`expected OK, got: ${result.Message}`);
  return result.Value;
}

/** Sets an instance's status directly (test setup only), bypassing the state machine. */
export async function forceStatus(db: VirtualMachineDB, instanceID: number, status: string): Promise<void> {
  ok(await db._query('UPDATE `vm_Instances` SET `Status` = ? WHERE `InstanceID` = ?', [status, instanceID]));
}

/** Moves an instance's LastUpdate `seconds` into the past (test setup only). */
export async function ageInstance(db: VirtualMachineDB, instanceID: number, seconds: number): Promise<void> {
  const old = new Date(Date.now() - seconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
  ok(await db._query('UPDATE `vm_Instances` SET `LastUpdate` = ? WHERE `InstanceID` = ?', [old, instanceID]));
}
