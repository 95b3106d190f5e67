import { existsSync } from 'node:fs';
import { MIGRATIONS_TABLE, parseDatabaseUrl } from './database';
import type { VirtualMachineDB } from './vmdb';
import type { Result } from './result';

export { MIGRATIONS_TABLE };

type SqliteDatabase = new (
  file: string,
  options: { readonly: boolean; fileMustExist: boolean },
) => { prepare(sql: string): { get(...params: unknown[]): unknown; all(...params: unknown[]): unknown[] }; close(): void };

/**
 * The migrations already recorded, read without applying anything (a plain
 * driver connection, closed before the facade opens the database); undefined
 * when that cannot be told (the open that follows reports any real problem).
 */
export async function appliedBefore(url: string): Promise<string[] | undefined> {
  let target: ReturnType<typeof parseDatabaseUrl>;
  try {
    target = parseDatabaseUrl(url);
  } catch {
    return undefined;
  }
  try {
    if (target.dialect === 'sqlite') {
      if (target.database === ':memory:' || !existsSync(target.database)) return [];
      // better-sqlite3 ships no types; only these three calls are used.
      const Sqlite = require('better-sqlite3') as SqliteDatabase;
      const file = new Sqlite(target.database, { readonly: true, fileMustExist: true });
      try {
        const table = file.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?").get(MIGRATIONS_TABLE);
        if (!table) return [];
        return (file.prepare(`SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`).all() as { name: string }[]).map((r) => r.name);
      } finally {
        file.close();
      }
    }
    const { createConnection } = require('mysql2/promise') as typeof import('mysql2/promise');
    const conn = await createConnection({
      host: target.host,
      port: target.port,
      user: target.username,
      password: target.password,
      database: target.database,
      connectTimeout: 10_000,
    });
    try {
      const [tables] = await conn.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [MIGRATIONS_TABLE]);
      if (!(tables as unknown[]).length) return [];
      const [rows] = await conn.query(`SELECT name FROM \`${MIGRATIONS_TABLE}\` ORDER BY id`);
      return (rows as { name: string }[]).map((r) => r.name);
    } finally {
      await conn.end();
    }
  } catch {
    return undefined;
  }
}

/** The migrations recorded in an open database, oldest first. */
export async function appliedMigrations(db: VirtualMachineDB): Promise<Result<string[]>> {
  const rows = await db._query(`SELECT name FROM ${db.dialect === 'mysql' ? `\`${MIGRATIONS_TABLE}\`` : MIGRATIONS_TABLE} ORDER BY id`);
  return rows.OK ? { OK: true, Value: (rows.Value as { name: string }[]).map((r) => String(r.name)) } : rows;
}
