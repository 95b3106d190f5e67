#!/usr/bin/env node
import { CommanderError } from 'commander';
import { CliError, EXIT } from './errors';
import { clean } from './format';
import { buildProgram } from './program';

/** Runs the CLI; resolves to the exit code (see EXIT). Errors are one line on stderr, never a stack trace (VMDB_DEBUG=1 shows it). */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (or the help) already.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (process.env.VMDB_DEBUG) console.error(err);
    if (err instanceof CliError) {
      if (err.message) process.stderr.write(`error: ${clean(err.message, true)}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${clean((err as Error)?.message ?? String(err))}\n`);
    return EXIT.FAILED;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
