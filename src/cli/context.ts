import { type Command, Option } from 'commander';
import { seconds } from './args';
import { CliError, EXIT } from './errors';
import { ApiClient, DEFAULT_API_URL, DEFAULT_TIMEOUT_SECONDS } from './http';

/** Options every API command understands (on the program, accepted before or after the command name). */
export interface GlobalOptions {
  apiUrl: string;
  token?: string;
  timeout: number;
  caFile?: string;
  allowHttp?: boolean;
}

export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(new Option('--api-url <url>', 'base url of the vmdb HTTP API').env('VMDB_API_URL').default(DEFAULT_API_URL))
    .addOption(new Option('--token <token>', 'operator token (prefer the environment: command lines are visible to other users)').env('VMDB_TOKEN'))
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the API').argParser(seconds).default(DEFAULT_TIMEOUT_SECONDS))
    .addOption(new Option('--ca-file <file>', "CA file that signed the API's certificate (default: the system's CAs)").env('VMDB_CA_FILE'))
    // No .env(): commander would take VMDB_ALLOW_HTTP=false for true; apiClient reads the variable.
    .addOption(new Option('--allow-http', 'allow a plain http:// API url to another machine (or VMDB_ALLOW_HTTP=true)'));
}

/** VMDB_ALLOW_HTTP: true or false; anything else is a usage error rather than a guess. */
function allowHttpFromEnv(raw: string | undefined): boolean {
  if (raw === undefined || raw.trim() === '') return false;
  if (/^true$/i.test(raw.trim())) return true;
  if (/^false$/i.test(raw.trim())) return false;
  throw new CliError(EXIT.USAGE, `VMDB_ALLOW_HTTP must be true or false, got ${JSON.stringify(raw)}`);
}

/** The API client for a command, from its options and the program's. */
export function apiClient(command: Command): ApiClient {
  const options = command.optsWithGlobals<GlobalOptions>();
  return new ApiClient({
    apiUrl: options.apiUrl,
    token: options.token || undefined,
    timeoutSeconds: options.timeout,
    caFile: options.caFile || undefined,
    allowHttp: options.allowHttp === true || allowHttpFromEnv(process.env.VMDB_ALLOW_HTTP),
  });
}

/** Adds `--json` (machine-readable output) to a command. */
export function withJson(command: Command): Command {
  return command.option('--json', 'print the API reply as JSON, for scripts');
}
