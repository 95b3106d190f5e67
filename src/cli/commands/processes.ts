import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type * as RunWorkerModule from '../../run-worker';
import { CliError, EXIT } from '../errors';

/** dist/src/start.js: the full local stack (`npm start` without the build). */
const START_SCRIPT = join(__dirname, '..', '..', 'start.js');

export function registerProcessCommands(program: Command): void {
  program
    .command('worker')
    .description('run the vmdb Temporal worker, with the Director and sweep Schedules, until SIGINT/SIGTERM (VMDB_*, TEMPORAL_* settings)')
    .action(async () => {
      // Loaded here: the Temporal worker is heavy, and no other command needs it.
      const { runWorker } = require('../../run-worker') as typeof RunWorkerModule;
      try {
        await runWorker();
      } catch (err) {
        // Once installed, the Temporal SDK's native runtime can keep the event loop alive after a
        // failed start: end the process shortly after the error has been reported (main sets the code).
        setTimeout(() => process.exit(), 1000).unref();
        // A configuration problem (src/config/settings.ts) is a usage error, as for `vmdb server` and `vmdb migrate`.
        if ((err as Error)?.name === 'SettingsError') throw new CliError(EXIT.USAGE, (err as Error).message);
        throw new CliError(EXIT.FAILED, `worker: ${(err as Error).message}`);
      }
    });

  program
    .command('dev')
    .description('run the whole local stack (embedded Temporal dev server unless TEMPORAL_ADDRESS is set, database, worker, local VMs); Ctrl-C stops it')
    .action(async () => {
      if (!existsSync(START_SCRIPT)) throw new CliError(EXIT.FAILED, `${START_SCRIPT} is missing: build first (npx tsc -p .)`);
      await runForwardingSignals(process.execPath, [START_SCRIPT]);
    });
}

/**
 * Runs a child in its own process group and forwards SIGINT/SIGTERM to it
 * once (SIGHUP as SIGTERM): a terminal's Ctrl-C reaches only this process,
 * so the stack gets one signal and shuts down in order. Resolves when the
 * child exits cleanly.
 */
function runForwardingSignals(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    const forward = (signal: NodeJS.Signals) => () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal === 'SIGHUP' ? 'SIGTERM' : signal);
    };
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    const done = () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    };
    child.on('error', (err) => {
      done();
      reject(new CliError(EXIT.FAILED, `could not start the local stack: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      done();
      if (code === 0) return resolve();
      const how = signal ? `signal ${signal}` : `code ${code}`;
      reject(new CliError(EXIT.FAILED, `the local stack exited with ${how}`));
    });
  });
}
