import type { Command } from 'commander';
import { instanceID } from '../args';
import { apiClient, withJson } from '../context';
import { CliError, EXIT } from '../errors';
import { json, table, write } from '../format';

/** The API takes at most this many ids per request. */
const MAX_STOP = 1000;

interface StopResult {
  OK: boolean;
  Value?: unknown;
  Message?: string;
  State?: string;
}

export function registerStopCommand(program: Command): void {
  withJson(
    program
      .command('stop')
      .description('stop instances (seed rules: Running → Stopping, then the VM drains; Stalled or New → Halted)')
      .argument('<instanceID...>', 'one or more InstanceIDs'),
  ).action(async (raw: string[], options: { json?: boolean }, command: Command) => {
    // Checked here rather than by a variadic argument parser, so every bad id is named at once.
    const ids: number[] = [];
    const bad: string[] = [];
    for (const value of raw) {
      try {
        const id = instanceID(value);
        if (!ids.includes(id)) ids.push(id);
      } catch {
        bad.push(`"${value}"`);
      }
    }
    if (bad.length) throw new CliError(EXIT.USAGE, `not an instance ID (a positive integer): ${bad.join(', ')}`);
    if (ids.length > MAX_STOP) throw new CliError(EXIT.USAGE, `at most ${MAX_STOP} instances per stop (got ${ids.length})`);

    const reply = await apiClient(command).post<{ results?: Record<string, StopResult> }>('/api/v1/instances/stop', { instanceIDs: ids });
    const results = reply.results ?? {};
    const outcome = ids.map((id) => [id, results[String(id)] ?? { OK: false, Message: 'no result from the API' }] as const);
    if (options.json) write(json(reply));
    else {
      write(
        table(
          ['Instance', 'Result', 'Detail'],
          outcome.map(([id, r]) => [id, r.OK ? 'ok' : 'refused', r.OK ? r.Value : `${r.Message ?? 'refused'}${r.State ? ` (state: ${r.State})` : ''}`]),
        ),
      );
    }
    const refused = outcome.filter(([, r]) => !r.OK).length;
    if (refused) throw new CliError(EXIT.FAILED, `${refused} of ${ids.length} instance${ids.length === 1 ? '' : 's'} not stopped`);
  });
}
