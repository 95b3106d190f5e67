import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerAuditCommand } from './commands/audit';
import { registerDirectorCommand } from './commands/director';
import { registerMigrateCommand } from './commands/migrate';
import { registerProcessCommands } from './commands/processes';
import { registerReadCommands } from './commands/read';
import { registerSafetyCommands } from './commands/safety';
import { registerServerCommand } from './commands/server';
import { registerStopCommand } from './commands/stop';
import { registerUsageCommand } from './commands/usage';
import { addGlobalOptions } from './context';

function version(): string {
  try {
    return String(JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

const EXIT_CODES_HELP = `
Environment:
  VMDB_API_URL   base url of the API (default http://127.0.0.1:8080)
  VMDB_TOKEN     operator token
  VMDB_CA_FILE   CA file that signed the API's certificate (default: the system's CAs)
  VMDB_ALLOW_HTTP=true  allow a plain http:// API url to another machine (loopback needs nothing)
  server, worker, migrate and dev read the service settings (VMDB_DATABASE_URL, TEMPORAL_ADDRESS, ...; see README.md)

Exit codes:
  0  success
  1  the operation failed (the API refused it, unknown instance, a stop refused for any id, a local command failed)
  2  bad arguments or usage
  3  cannot reach the API, no answer in time, API unavailable (502/503/504), or authentication failed (401/403)
`;

/** The `vmdb` command line; errors throw (exitOverride) so main.ts picks the exit code. */
export function buildProgram(): Command {
  const program = new Command('vmdb')
    .description('operate a vmdb VM fleet: instances, images, stops, the Director; run the API, the worker, the local stack')
    .version(version(), '-V, --version')
    // Before any .command(): subcommands inherit these settings.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  addGlobalOptions(program);
  registerReadCommands(program);
  registerStopCommand(program);
  registerDirectorCommand(program);
  registerUsageCommand(program);
  registerSafetyCommands(program);
  registerAuditCommand(program);
  registerServerCommand(program);
  registerProcessCommands(program);
  registerMigrateCommand(program);
  program.addHelpText('after', EXIT_CODES_HELP);
  return program;
}
