import 'reflect-metadata';
import { resolve as resolvePath } from 'node:path';
import { DataSource, type QueryRunner } from 'typeorm';
import { MIGRATIONS, VmAuditLog, VmEndpointControl, VmFleetControl, VmHistory, VmImage, VmInstance, VmInstanceControl, VmInstanceLife } from '../../entities';
import type { Dialect } from '../../entities/migrations/dialect';
import { Mutex } from './mutex';

export type { Dialect };

/** The table TypeORM records applied migrations in. */
export const MIGRATIONS_TABLE = 'vm_Migrations';

export type Row = Record<string, unknown>;
export interface WriteResult {
  affected: number;
  insertId: number;
}

/** Runs bound SQL on one connection (a transaction) or on the pool. */
export interface Executor {
  readonly dialect: Dialect;
  select(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  write(sql: string, params?: readonly unknown[]): Promise<WriteResult>;
  /** Transactions only: holds a named lock until the transaction ends (serialises inserts of one name). */
  lock(key: string): Promise<void>;
  readonly inTransaction: boolean;
  /**
   * Runs `fn` once the transaction has committed (at once outside a transaction); a rollback
   * forgets it. For bookkeeping such as metrics: `fn` must be cheap, and what it throws is ignored.
   */
  afterCommit(fn: () => void): void;
  /** Transactions only: the callbacks waiting for the commit (a rolled-back savepoint cuts it back). */
  readonly afterCommitQueue?: (() => void)[];
}

export interface DatabaseUrl {
  dialect: Dialect;
  /** mysql */
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  database: string;
}

/** `mysql://user:pass@host:port/db`, `sqlite:<file>` or `sqlite::memory:`. */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  if (typeof url !== 'string' || url.length === 0) throw new Error('Database url must be a non-empty string');
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (!file) throw new Error(`Database url "${url}" names no file (use sqlite:<file> or sqlite::memory:)`);
    return { dialect: 'sqlite', database: file };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`Database url "${redact(url)}" is not a valid url`);
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw new Error(`Database url scheme "${parsed.protocol}" is not supported (use mysql:// or sqlite:)`);
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database) throw new Error(`Database url "${redact(url)}" names no database`);
  return {
    dialect: 'mysql',
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 3306,
    username: decodeURIComponent(parsed.username || 'root'),
    password: decodeURIComponent(parsed.password),
    database,
  };
}

/** The url with its password masked, for messages and logs. */
export function redact(url: string): string {
  // Up to the last '@': an unencoded '/' or '@' in a password must not leak.
  return url.replace(/\/\/([^:/@]*):.*@/, '//$1:***@');
}

/** Runs post-commit callbacks; one that throws does not stop the others or fail the commit. */
function runCallbacks(callbacks: readonly (() => void)[]): void {
  for (const fn of callbacks) {
    try {
      fn();
    } catch {
      // bookkeeping only: the transaction has committed whatever a callback does
    }
  }
}

// Named locks are server-wide: scope them to this database (hashed, to stay within 64 characters).
const SCOPED_LOCK = "SHA1(CONCAT(DATABASE(), ':', ?))";

const DEADLOCK_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY']);
const TRANSACTION_ATTEMPTS = 5;
const OPEN_ATTEMPTS = 20;

function driverCode(err: unknown): string | undefined {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.driverError?.code ?? e?.code;
}

/** Owns the TypeORM DataSource; hands out executors and transactions. */
export class Database {
  // better-sqlite3 is one connection: every statement and transaction takes turns.
  private readonly sqliteTurn = new Mutex();

  /** Statements outside any transaction (each commits on its own). */
  readonly pool: Executor;

  private constructor(
    readonly dialect: Dialect,
    private readonly dataSource: DataSource,
  ) {
    this.pool = {
      dialect,
      inTransaction: false,
      afterCommit: (fn) => runCallbacks([fn]),
      lock: async () => {
        throw new Error('Named locks need a transaction');
      },
      select: (sql, params = []) =>
        this.onSqliteTurn(async () => (await this.dataSource.query(sql, [...params])) as Row[]),
      write: (sql, params = []) =>
        this.onSqliteTurn(async () => {
          const runner = this.dataSource.createQueryRunner();
          try {
            return toWriteResult(dialect, await runner.query(sql, [...params], true));
          } finally {
            await runner.release();
          }
        }),
    };
  }

  /**
   * better-sqlite3 waits for a busy file synchronously, blocking the event
   * loop: two connections to one file in one process would wait on each other
   * forever. So every opener of a file in this process shares one Database.
   */
  private static readonly sqliteFiles = new Map<string, { db: Promise<Database>; users: number }>();
  private sharedKey: string | null = null;

  static async connect(url: string, { migrate = true }: { migrate?: boolean } = {}): Promise<Database> {
    const target = parseDatabaseUrl(url);
    if (target.dialect === 'sqlite' && target.database !== ':memory:') {
      const key = resolvePath(target.database);
      let entry = Database.sqliteFiles.get(key);
      if (!entry) {
        entry = { db: Database.connectWithRetry(target, migrate), users: 0 };
        Database.sqliteFiles.set(key, entry);
        entry.db.then((db) => (db.sharedKey = key)).catch(() => Database.sqliteFiles.delete(key));
      }
      entry.users++;
      return entry.db;
    }
    return Database.connectWithRetry(target, migrate);
  }

  private static async connectNew(target: DatabaseUrl, migrate: boolean): Promise<Database> {
    const common = {
      entities: [VmImage, VmInstance, VmHistory, VmEndpointControl, VmInstanceControl, VmFleetControl, VmInstanceLife, VmAuditLog] as Function[],
      migrations: MIGRATIONS as Function[],
      migrationsTableName: MIGRATIONS_TABLE,
      synchronize: false,
      logging: false,
    } as const;
    const dataSource =
      target.dialect === 'mysql'
        ? new DataSource({
            ...common,
            type: 'mysql',
            host: target.host,
            port: target.port,
            username: target.username,
            password: target.password,
            database: target.database,
            charset: 'utf8mb4',
            timezone: 'Z',
            dateStrings: true,
            supportBigNumbers: true,
            bigNumberStrings: false,
          })
        : new DataSource({
            ...common,
            type: 'better-sqlite3',
            database: target.database,
            timeout: 10000,
            enableWAL: target.database !== ':memory:',
          });
    const db = new Database(target.dialect, dataSource);
    try {
      await dataSource.initialize();
      if (migrate) await db.migrate();
      else await db.requireCurrentSchema();
    } catch (err) {
      if (dataSource.isInitialized) await dataSource.destroy();
      throw err;
    }
    return db;
  }

  /**
   * SQLite: switching a new file to WAL needs a moment alone with it, and some
   * of those waits bypass the busy timeout. Another process opening the same
   * file at that instant gets "database is locked": try again shortly.
   */
  private static async connectWithRetry(target: DatabaseUrl, migrate: boolean): Promise<Database> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Database.connectNew(target, migrate);
      } catch (err) {
        const busy = driverCode(err) === 'SQLITE_BUSY' || /database is locked/.test(String((err as Error)?.message));
        if (target.dialect !== 'sqlite' || !busy || attempt >= OPEN_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt + Math.random() * 50));
      }
    }
  }

  /** With automatic migration off: refuse to run on a schema that is behind the code. */
  private async requireCurrentSchema(): Promise<void> {
    if (await this.dataSource.showMigrations()) {
      throw new Error('The database schema is not current (pending migrations); run `vmdb migrate`, or open with migrations enabled');
    }
  }

  /** True when every migration of this build has been applied. */
  async schemaIsCurrent(): Promise<boolean> {
    return !(await this.onSqliteTurn(() => this.dataSource.showMigrations()));
  }

  /** Applies pending migrations; two processes opening one empty database take turns. */
  private async migrate(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    try {
      if (this.dialect === 'mysql') {
        const [lock] = await runner.query(`SELECT GET_LOCK(${SCOPED_LOCK}, 120) AS got`, ['vmdb.migrate']);
        if (Number(lock.got) !== 1) throw new Error('Timed out waiting for another process to finish migrating');
        try {
          await this.dataSource.runMigrations({ transaction: 'each' });
        } finally {
          await runner.query(`SELECT RELEASE_LOCK(${SCOPED_LOCK})`, ['vmdb.migrate']);
        }
      } else {
        // SQLite DDL is transactional: one IMMEDIATE transaction makes the whole run exclusive and atomic.
        await this.sqliteTurn.run(async () => {
          await runner.query('BEGIN IMMEDIATE');
          try {
            await this.dataSource.runMigrations({ transaction: 'none' });
            await runner.query('COMMIT');
          } catch (err) {
            await runner.query('ROLLBACK');
            throw err;
          }
        });
      }
    } finally {
      await runner.release();
    }
  }

  private onSqliteTurn<T>(fn: () => Promise<T>): Promise<T> {
    return this.dialect === 'sqlite' ? this.sqliteTurn.run(fn) : fn();
  }

  /**
   * Runs `fn` in one transaction on one connection, retrying the whole of it
   * when the server picks it as a deadlock victim. `fn` must have no side
   * effects outside the transaction.
   */
  async transaction<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.onSqliteTurn(() => this.transactionOnce(fn));
      } catch (err) {
        if (attempt >= TRANSACTION_ATTEMPTS || !DEADLOCK_CODES.has(driverCode(err) ?? '')) throw err;
        await new Promise((resolve) => setTimeout(resolve, 5 * attempt * Math.random()));
      }
    }
  }

  private async transactionOnce<T>(fn: (tx: Executor) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const tx = bindExecutor(this.dialect, runner);
    let open = false;
    try {
      // SQLite: IMMEDIATE takes the write lock up front, so a second process waits instead of failing mid-way.
      await runner.query(this.dialect === 'mysql' ? 'START TRANSACTION' : 'BEGIN IMMEDIATE');
      open = true;
      const result = await fn(tx);
      await runner.query('COMMIT');
      open = false;
      runCallbacks(tx.afterCommitQueue);
      return result;
    } catch (err) {
      if (open) await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // Named locks belong to the session, not the transaction: release them before the connection returns to the pool.
      if (tx.locksHeld) await runner.query('SELECT RELEASE_ALL_LOCKS()').catch(() => undefined);
      await runner.release();
    }
  }

  /** Runs raw SQL (maintenance and tests); values still travel as bound parameters. Rows, or a write summary. */
  async raw(sql: string, params: readonly unknown[] = []): Promise<Row[] | WriteResult> {
    return this.onSqliteTurn(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        return rowsOrSummary(this.dialect, await runner.query(sql, [...params], true));
      } finally {
        await runner.release();
      }
    });
  }

  async close(): Promise<void> {
    const shared = this.sharedKey ? Database.sqliteFiles.get(this.sharedKey) : undefined;
    if (shared && --shared.users > 0) return;
    if (this.sharedKey) Database.sqliteFiles.delete(this.sharedKey);
    if (this.dataSource.isInitialized) await this.onSqliteTurn(() => this.dataSource.destroy());
  }
}

const LOCK_WAIT_SECONDS = 30;

/** Runs `fn` inside the transaction of `ex` so that a throw undoes only its own work, and what it queued for after the commit. */
export async function undoOnThrow<T>(ex: Executor, savepoint: string, fn: () => Promise<T>): Promise<T> {
  await ex.write(`SAVEPOINT ${savepoint}`);
  const queued = ex.afterCommitQueue?.length ?? 0;
  try {
    const result = await fn();
    await ex.write(`RELEASE SAVEPOINT ${savepoint}`);
    return result;
  } catch (err) {
    try {
      await ex.write(`ROLLBACK TO SAVEPOINT ${savepoint}`);
    } catch {
      // The server rolled the whole transaction back (a deadlock): the cause is what the caller must see, and retry.
      throw err;
    }
    if (ex.afterCommitQueue) ex.afterCommitQueue.length = queued;
    throw err;
  }
}

function bindExecutor(dialect: Dialect, runner: QueryRunner): Executor & { locksHeld: boolean; afterCommitQueue: (() => void)[] } {
  const afterCommitQueue: (() => void)[] = [];
  const tx = {
    dialect,
    inTransaction: true,
    locksHeld: false,
    afterCommitQueue,
    afterCommit: (fn: () => void) => {
      afterCommitQueue.push(fn);
    },
    select: async (sql: string, params: readonly unknown[] = []) => (await runner.query(sql, [...params])) as Row[],
    raw: async (sql: string, params: readonly unknown[] = []) => rowsOrSummary(dialect, await runner.query(sql, [...params], true)),
    write: async (sql: string, params: readonly unknown[] = []) =>
      toWriteResult(dialect, await runner.query(sql, [...params], true)),
    lock: async (key: string) => {
      // SQLite transactions are already exclusive (BEGIN IMMEDIATE).
      if (dialect !== 'mysql') return;
      const [row] = await runner.query(`SELECT GET_LOCK(${SCOPED_LOCK}, ?) AS got`, [key, LOCK_WAIT_SECONDS]);
      if (Number(row.got) !== 1) throw new Error(`Timed out after ${LOCK_WAIT_SECONDS}s waiting for lock ${key}`);
      tx.locksHeld = true;
    },
  };
  return tx;
}

/** SELECTs give rows (an array from either driver); anything else a WriteResult. */
export function rowsOrSummary(dialect: Dialect, result: { raw: unknown; affected?: number | null }): Row[] | WriteResult {
  return Array.isArray(result.raw) ? (result.raw as Row[]) : toWriteResult(dialect, result);
}

function toWriteResult(dialect: Dialect, result: { raw: unknown; affected?: number | null }): WriteResult {
  if (dialect === 'mysql') {
    const header = result.raw as { affectedRows?: number; insertId?: number };
    return { affected: Number(header.affectedRows ?? 0), insertId: Number(header.insertId ?? 0) };
  }
  return { affected: Number(result.affected ?? 0), insertId: Number(result.raw ?? 0) };
}
