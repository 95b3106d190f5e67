import { SEARCH_ATTRIBUTES } from '../../workflows/definitions';

export interface DevServerOptions {
  ip: string;
  port: number | string;
  /** The Web UI's port; none (headless) when undefined. */
  uiPort?: number | string;
  /** The SQLite file the server keeps its state in. */
  dbFile: string;
}

/**
 * The command line of `temporal server start-dev` as vmdb runs it: file persistence, vmdb's search
 * attributes, and SQLite in WAL mode. WAL with synchronous=NORMAL survives a killed server (what the
 * fault tests do) and costs one fsync per checkpoint instead of one per write; only a power loss can
 * take the last commits, and the heartbeats themselves are durable in MySQL before they are answered.
 */
export function devServerArgs(options: DevServerOptions): string[] {
  const args = ['server', 'start-dev', '--ip', options.ip, '--port', String(options.port), '--db-filename', options.dbFile, '--log-level', 'error'];
  args.push(...(options.uiPort === undefined ? ['--headless'] : ['--ui-port', String(options.uiPort)]));
  for (const pragma of ['journal_mode=WAL', 'synchronous=NORMAL']) args.push('--sqlite-pragma', pragma);
  for (const key of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=Keyword`);
  return args;
}
