import type { Command } from 'commander';
import { apiClient, withJson } from '../context';
import { json, table, write } from '../format';
import { endpointTable } from './safety';

interface Schedule {
  id: string;
  /** The Schedule does not exist (a worker creates it at start). */
  absent?: boolean;
  paused?: boolean;
  intervalSeconds?: number;
  lastRun?: string;
  nextRun?: string;
}

export function registerDirectorCommand(program: Command): void {
  withJson(
    program
      .command('director')
      .description('the Director, stalled-sweep and reconciliation Schedules, the fleet mode and endpoint backoffs; --trigger runs a Director pass now (admin)')
      .option('--trigger', 'start a Director pass now'),
  ).action(async (options: { trigger?: boolean; json?: boolean }, command: Command) => {
    const api = apiClient(command);
    if (options.trigger) {
      const reply = await api.post<{ triggered: boolean }>('/api/v1/director/trigger');
      return write(options.json ? json(reply) : 'Director pass triggered\n');
    }
    const reply = await api.get<{ schedules: Schedule[]; mode?: string; endpoints?: Parameters<typeof endpointTable>[0] }>('/api/v1/director');
    if (options.json) return write(json(reply));
    const schedules = reply.schedules ?? [];
    if (!schedules.length) return write('no schedules (is a worker running? it creates them)\n');
    const absent = schedules.filter((s) => s.absent).length;
    write(
      table(
        ['Schedule', 'State', 'Every (s)', 'Last run (UTC)', 'Next run (UTC)'],
        schedules.map((s) => [s.id, s.absent ? 'absent' : s.paused ? 'paused' : 'active', s.intervalSeconds, s.lastRun, s.nextRun]),
      ),
    );
    if (absent) write('absent Schedules are created by the worker when it starts (vmdb worker)\n');
    if (reply.mode && reply.mode !== 'normal') write(`fleet mode: ${reply.mode} (vmdb safety mode normal to launch again)\n`);
    if (reply.endpoints?.length) write(endpointTable(reply.endpoints));
  });
}
