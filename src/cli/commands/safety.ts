import { type Command, InvalidArgumentError } from 'commander';
import { instanceID } from '../args';
import { apiClient, withJson } from '../context';
import { json, table, write } from '../format';
import { type EndpointHealth, FLEET_MODES, type ManualControl } from '../../db/safety-store';

// The API answers with the store's own shapes; the store module is light (no database driver).
const MODES: readonly string[] = FLEET_MODES;

function mode(raw: string): string {
  if (!MODES.includes(raw)) throw new InvalidArgumentError(`unknown mode "${raw}" (one of ${MODES.join(', ')}).`);
  return raw;
}

function endpointArg(raw: string): string {
  if (!/^[^:]+::[^:]+$/.test(raw)) throw new InvalidArgumentError(`"${raw}" is not an endpoint name "Site::CE".`);
  return raw;
}

const when = (iso: string | null) => (iso ? iso.slice(0, 19).replace('T', ' ') : undefined);

/** The demand source's last reading: waiting jobs -> target, or why there is none. */
function demandOf(e: EndpointHealth): string | undefined {
  if (e.demandAt === null || e.demandAt === undefined) return undefined;
  return `${e.demand ?? '?'} -> ${e.target ?? '?'}${e.demandMessage ? ` (${e.demandMessage})` : ''}`;
}

/** One line per endpoint with a pause, a failure or a demand reading on record (shared with `vmdb director`). */
export function endpointTable(endpoints: readonly EndpointHealth[]): string {
  return table(
    ['Endpoint', 'Paused', 'Failures', 'Last reason', 'Backoff until (UTC)', 'Demand -> target', 'Detail'],
    endpoints.map((e) => [e.endpoint, e.paused ? 'yes' : 'no', e.failures, e.lastReason || undefined, when(e.backoffUntil), demandOf(e), e.paused ? e.pauseReason : e.lastMessage]),
  );
}

export function registerSafetyCommands(program: Command): void {
  const safety = program.command('safety').description('fleet safety: the fleet mode, endpoint pauses and backoffs, manual control of instances');

  withJson(safety.command('show', { isDefault: true }).description('the fleet mode, endpoints with a pause or failures, instances under manual control')).action(
    async (options: { json?: boolean }, command: Command) => {
      const reply = await apiClient(command).get<{ mode: string; endpoints: EndpointHealth[]; manual: ManualControl[] }>('/api/v1/safety');
      if (options.json) return write(json(reply));
      write(`fleet mode: ${reply.mode}\n`);
      write(reply.endpoints.length ? endpointTable(reply.endpoints) : 'no endpoint paused or failing\n');
      write(
        reply.manual.length
          ? table(['Instance', 'Since (UTC)', 'Reason'], reply.manual.map((m) => [m.instanceID, when(m.since), m.reason || undefined]))
          : 'no instance under manual control\n',
      );
    },
  );

  withJson(safety.command('mode').argument('<mode>', `${MODES.join(', ')}`, mode).description('set the fleet mode (admin)')).action(
    async (value: string, options: { json?: boolean }, command: Command) => {
      const reply = await apiClient(command).put<{ mode: string }>('/api/v1/safety/mode', { mode: value });
      write(options.json ? json(reply) : `fleet mode: ${reply.mode}\n`);
    },
  );

  for (const [name, what] of [
    ['pause', 'pause launching at an endpoint'],
    ['resume', 'resume launching at an endpoint (lifts its pause and backoff)'],
  ] as const) {
    const sub = safety.command(name).argument('<endpoint>', 'Site::CE', endpointArg).description(what);
    if (name === 'pause') sub.option('--reason <text>', 'why (shown in the status)');
    withJson(sub).action(async (endpoint: string, options: { reason?: string; json?: boolean }, command: Command) => {
      const body = name === 'pause' ? { reason: options.reason ?? '' } : undefined;
      const reply = await apiClient(command).post<EndpointHealth>(`/api/v1/safety/endpoints/${encodeURIComponent(endpoint)}/${name}`, body);
      write(options.json ? json(reply) : `${reply.endpoint}: ${reply.paused ? `paused${reply.pauseReason ? ` (${reply.pauseReason})` : ''}` : 'launching'}\n`);
    });
  }

  withJson(
    safety
      .command('manual')
      .argument('<instanceID>', 'the instance', instanceID)
      .option('--reason <text>', 'why (shown in the status)')
      .description('put an instance under manual control: no automatic stall, halt or lifetime action'),
  ).action(async (id: number, options: { reason?: string; json?: boolean }, command: Command) => {
    const reply = await apiClient(command).put<ManualControl>(`/api/v1/instances/${id}/manual`, { reason: options.reason ?? '' });
    write(options.json ? json(reply) : `instance ${reply.instanceID}: under manual control\n`);
  });

  withJson(safety.command('auto').argument('<instanceID>', 'the instance', instanceID).description('hand an instance back to automatic control')).action(
    async (id: number, options: { json?: boolean }, command: Command) => {
      const reply = await apiClient(command).delete<{ cleared: boolean }>(`/api/v1/instances/${id}/manual`);
      write(options.json ? json(reply) : `instance ${id}: ${reply.cleared ? 'back under automatic control' : 'was not under manual control'}\n`);
    },
  );
}
