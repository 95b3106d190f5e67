import type { Command } from 'commander';
import type * as ConfigModule from '../../config/database';
import type * as DatabaseModule from '../../db/database';
import type * as MigrationsModule from '../../db/migrations-applied';
import type * as SettingsModule from '../../config/settings';
import type * as VmdbModule from '../../db/vmdb';
import { withJson } from '../context';
import { CliError, EXIT } from '../errors';
import { json, write } from '../format';

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
    const { MIGRATIONS_TABLE, appliedBefore, appliedMigrations } = require('../../db/migrations-applied') as typeof MigrationsModule;
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
      const rows = await appliedMigrations(db);
      if (!rows.OK) throw new CliError(EXIT.FAILED, `migrations applied, but ${MIGRATIONS_TABLE} could not be read: ${rows.Message}`);
      after = rows.Value;
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
