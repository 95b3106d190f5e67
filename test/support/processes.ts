import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { withMysql } from './backends';

const run = promisify(execFile);
const OUTPUT_KEPT = 20_000;

/** What a child process said and how it ended. */
export interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node script ...args` with `env` as its whole environment, asynchronously (the test's own servers keep answering). */
export function runNode(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something other than undefined (a throw counts as "not yet"). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * One process of the stack under test, in its own process group so that
 * `kill9` takes it (and anything it forked without detaching) down at once,
 * as a crash would. Its output is kept (the tail) for failure messages.
 */
export class OwnedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  output = '';

  constructor(
    readonly name: string,
    private readonly argv: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const child = spawn(this.argv[0], this.argv.slice(1), { env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_KEPT);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    this.child = child;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGKILL to the whole group, and wait until the leader is gone. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** A polite stop (SIGTERM by default); SIGKILL if it has not exited within `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.groupKill('SIGKILL'), graceMs);
    try {
      await this.signal(signal);
    } finally {
      clearTimeout(timer);
    }
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.groupKill(signal);
    await this.exited;
  }

  private groupKill(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.child!.pid!, signal);
    } catch {
      // already gone
    }
  }

  tail(chars = 3000): string {
    return `--- ${this.name} ---\n${this.output.slice(-chars)}`;
  }
}

/**
 * A MariaDB server of this test alone, in a temporary data folder on a free
 * port: it can be stopped and started without touching anyone else's.
 */
export class PrivateMariaDB {
  readonly process: OwnedProcess;
  /** The server (no database): what VMDB_TEST_MYSQL_URL names. */
  readonly serverUrl: string;
  /** Its database. */
  readonly url: string;
  readonly database: string;

  /** `checksPasswords`: keep the grant tables, for tests that expect a wrong password to be refused. */
  constructor(
    private readonly dir: string,
    readonly port: number,
    options: { database?: string; checksPasswords?: boolean } = {},
  ) {
    const data = join(dir, 'data');
    this.database = options.database ?? 'vmdb';
    this.process = new OwnedProcess('mariadbd', [
      'mariadbd',
      '--no-defaults',
      `--datadir=${data}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mariadb.sock')}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      '--user=root',
      // Otherwise only this test connects, over loopback, to a server that lives for one run.
      ...(options.checksPasswords ? [] : ['--skip-grant-tables']),
      '--innodb-buffer-pool-size=32M',
      '--skip-log-bin',
    ], process.env);
    this.serverUrl = `mysql://root@127.0.0.1:${port}`;
    this.url = `${this.serverUrl}/${this.database}`;
  }

  /** mariadb-install-db into the data folder, then the server, then the empty database. */
  async create(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${join(this.dir, 'data')}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db']);
    await this.start();
    // The name is this class's own constant (letters only); identifiers cannot be bound.
    await withMysql(this.serverUrl, (conn) => conn.query(`CREATE DATABASE IF NOT EXISTS \`${this.database}\``));
  }

  async start(): Promise<void> {
    this.process.start();
    await waitFor('MariaDB to accept connections', async () => {
      if (!this.process.running) throw new Error(`mariadbd exited\n${this.process.tail()}`);
      await withMysql(this.serverUrl, (conn) => conn.query('SELECT 1'));
      return true;
    }, 60_000);
  }

  /** A clean shutdown (SIGTERM), as `systemctl stop` does. */
  async stop(): Promise<void> {
    await this.process.stop('SIGTERM', 60_000);
  }
}
