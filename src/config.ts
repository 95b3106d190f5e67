/** Settings from the environment, with the embedded defaults `npm start` runs on. */
export interface Config {
  /** VMDB_DATABASE_URL: mysql://user:pass@host:port/db, sqlite:<file> or sqlite::memory: */
  databaseUrl: string;
  /** VMDB_STALLING_INTERVAL: seconds without news before an instance is Stalled. */
  stallingInterval: number;
}

export const DEFAULT_CONFIG: Config = {
  databaseUrl: 'sqlite:vmdb.sqlite',
  stallingInterval: 2400,
};

function positiveInteger(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return Number(raw);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    databaseUrl: env.VMDB_DATABASE_URL || DEFAULT_CONFIG.databaseUrl,
    stallingInterval: env.VMDB_STALLING_INTERVAL
      ? positiveInteger('VMDB_STALLING_INTERVAL', env.VMDB_STALLING_INTERVAL)
      : DEFAULT_CONFIG.stallingInterval,
  };
}
