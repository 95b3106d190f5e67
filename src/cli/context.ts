import { type Command, Option } from 'commander';
import { seconds } from './args';
import { ApiClient, DEFAULT_API_URL, DEFAULT_TIMEOUT_SECONDS } from './http';

/** Options every API command understands (on the program, accepted before or after the command name). */
export interface GlobalOptions {
  apiUrl: string;
  token?: string;
  timeout: number;
}

export function addGlobalOptions(program: Command): Command {
  return program
    .addOption(new Option('--api-url <url>', 'base url of the vmdb HTTP API').env('VMDB_API_URL').default(DEFAULT_API_URL))
    .addOption(new Option('--token <token>', 'operator token (prefer the environment: command lines are visible to other users)').env('VMDB_TOKEN'))
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the API').argParser(seconds).default(DEFAULT_TIMEOUT_SECONDS));
}

/** The API client for a command, from its options and the program's. */
export function apiClient(command: Command): ApiClient {
  const options = command.optsWithGlobals<GlobalOptions>();
  return new ApiClient({ apiUrl: options.apiUrl, token: options.token || undefined, timeoutSeconds: options.timeout });
}

/** Adds `--json` (machine-readable output) to a command. */
export function withJson(command: Command): Command {
  return command.option('--json', 'print the API reply as JSON, for scripts');
}
