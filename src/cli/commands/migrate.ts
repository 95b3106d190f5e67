import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type * as ConfigModule from '../../config/database';
import type * as DatabaseModule from '../../db/database';
import type * as SettingsModule from '../../config/settings';
import type * as VmdbModule from '../../db/vmdb';
import { withJson } from '../context';
import { CliError, EXIT } from '../errors';
import { json, write } from '../format';

const MIGRATIONS_TABLE = 'vm_Migrations';

type SqliteDatabase = new (
  file: string,
  options: { readonly: boolean; fileMustExist: boolean },
) => { prepare(sql: string): { get(...params: unknown[]): unknown; all(...params: unknown[]): unknown[] }; close(): void };

/**
 * The migrations already recorded, read without applying anything (a plain
 * driver connection, closed before the facade opens the database); undefined
 * when that cannot be told (the open that follows reports any real problem).
 */
async function appliedBefore(url: string): Promise<string[] | undefined> {
  const { parseDatabaseUrl } = require('../../db/database') as typeof DatabaseModule;
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

export function registerMigrateCommand(program: Command): void {
  withJson(
    program
      .command('migrate')
      .description('open the configured database (VMDB_DATABASE_URL), apply pending migrations, report what was applied (the explicit step when VMDB_AUTO_MIGRATE=false)'),
  ).action(async (options: { json?: boolean }) => {
    // Loaded here, so that API commands do not load TypeORM and the drivers.
    const { loadConfig } = require('../../config/database') as typeof ConfigModule;
    const { redact } = require('../../db/database') as typeof DatabaseModule;
    const { VirtualMachineDB } = require('../../db/vmdb') as typeof VmdbModule;
    const { applyConfigFile, loadSettings } = require('../../config/settings') as typeof SettingsModule;
    let config: ReturnType<typeof loadConfig>;
    try {
      applyConfigFile(process.env); // VMDB_CONFIG_FILE under the environment, for every reader
      loadSettings(process.env); // every setting, as the other processes check them at start
      config = loadConfig();
    } catch (err) {
      throw new CliError(EXIT.USAGE, (err as Error).message);
    }
    const database = redact(config.databaseUrl);
    const before = await appliedBefore(config.databaseUrl);
    let db: VmdbModule.VirtualMachineDB;
    try {
      // Always migrates, whatever VMDB_AUTO_MIGRATE says: this is the explicit step.
      db = await VirtualMachineDB.open({ url: config.databaseUrl, stallingInterval: config.stallingInterval, migrate: true });
    } catch (err) {
      throw new CliError(EXIT.FAILED, (err as Error).message);
    }
    let after: string[];
    try {
      const rows = await db._query(`SELECT name FROM ${db.dialect === 'mysql' ? `\`${MIGRATIONS_TABLE}\`` : MIGRATIONS_TABLE} ORDER BY id`);
      if (!rows.OK) throw new CliError(EXIT.FAILED, `migrations applied, but ${MIGRATIONS_TABLE} could not be read: ${rows.Message}`);
      after = (rows.Value as { name: string }[]).map((r) => String(r.name));
    } finally {
      await db.close();
    }
    const applied = before === undefined ? undefined : after.filter((name) => !before.includes(name));
    if (options.json) return write(json({ database, applied: applied ?? null, migrations: after }));
    if (applied === undefined) write(`${database}: up to date, ${after.length} migrations recorded (${after.join(', ')}); could not tell which were new\n`);
    else if (applied.length) write(`${database}: applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}\n`);
    else write(`${database}: already up to date (${after.length} migrations)\n`);
  });
}
