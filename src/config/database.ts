import { DEFAULT_DATABASE_URL, DEFAULT_STALLING_INTERVAL, settingsFor } from './settings';

/** Settings from the environment (and VMDB_CONFIG_FILE, see src/config/settings.ts), with the embedded defaults `npm start` runs on. */
export interface Config {
  /** VMDB_DATABASE_URL: mysql://user:pass@host:port/db, sqlite:<file> or sqlite::memory: */
  databaseUrl: string;
  /** VMDB_STALLING_INTERVAL: seconds without news before an instance is Stalled. */
  stallingInterval: number;
  /** VMDB_AUTO_MIGRATE: apply pending migrations on open (default true); false refuses a schema that is behind. */
  autoMigrate?: boolean;
}

export const DEFAULT_CONFIG: Config = {
  databaseUrl: DEFAULT_DATABASE_URL,
  stallingInterval: DEFAULT_STALLING_INTERVAL,
};

/** The database settings; throws an Error naming a bad one (src/config/settings.ts does the checking). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const settings = settingsFor(env, ['VMDB_DATABASE_URL', 'VMDB_STALLING_INTERVAL', 'VMDB_AUTO_MIGRATE']);
  return { databaseUrl: settings.databaseUrl, stallingInterval: settings.stallingInterval, autoMigrate: settings.autoMigrate };
}
