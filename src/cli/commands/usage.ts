import { type Command, InvalidArgumentError } from 'commander';
import { apiClient, withJson } from '../context';
import { json, table, write } from '../format';

interface UsageReply {
  from: string;
  to: string;
  rows: { day: string; endpoint: string; image: string; pod: string; vmHours: number; instances: number; cost?: number }[];
  totals: { endpoint: string; image: string; pod: string; vmHours: number; cost?: number }[];
}

function day(raw: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(raw)) throw new InvalidArgumentError(`"${raw}" is not a day (YYYY-MM-DD, UTC).`);
  return raw;
}

function dayCount(raw: string): number {
  if (!/^\d{1,2}$/.test(raw) || Number(raw) < 1 || Number(raw) > 92) throw new InvalidArgumentError(`"${raw}" is not a number of days (1 to 92).`);
  return Number(raw);
}

function label(raw: string): string {
  if (!raw.trim()) throw new InvalidArgumentError('an empty value matches nothing.');
  return raw;
}

export function registerUsageCommand(program: Command): void {
  withJson(
    program
      .command('usage')
      .description('VM-hours per day, endpoint, image and pod (and their cost, where the fleet file prices them)')
      .option('--to <day>', 'last day, included (YYYY-MM-DD, UTC); default today', day)
      .option('--days <n>', 'how many days, ending with --to (1 to 92; default 7)', dayCount)
      .option('--endpoint <endpoint>', 'only this endpoint (Site::CE)', label)
      .option('--image <image>', 'only this image', label)
      .option('--pod <pod>', 'only this running pod', label)
      .option('--totals', 'one line per endpoint, image and pod over the whole span'),
  ).action(async (options: { to?: string; days?: number; endpoint?: string; image?: string; pod?: string; totals?: boolean; json?: boolean }, command: Command) => {
    const { to, days, endpoint, image, pod } = options;
    const reply = await apiClient(command).get<UsageReply>('/api/v1/usage', { to, days, endpoint, image, pod });
    if (options.json) return write(json(reply));
    if (!reply.rows.length) return write(`no VM-hours from ${reply.from} to ${reply.to}\n`);
    const priced = reply.rows.some((row) => row.cost !== undefined);
    const cost = (value: number | undefined) => (value === undefined ? '' : value.toFixed(2));
    if (options.totals) {
      write(table(['Endpoint', 'Image', 'Pod', 'VM-hours', ...(priced ? ['Cost'] : [])], reply.totals.map((t) => [t.endpoint, t.image, t.pod, t.vmHours.toFixed(2), ...(priced ? [cost(t.cost)] : [])])));
    } else {
      write(table(['Day (UTC)', 'Endpoint', 'Image', 'Pod', 'VM-hours', 'Instances', ...(priced ? ['Cost'] : [])], reply.rows.map((r) => [r.day, r.endpoint, r.image, r.pod, r.vmHours.toFixed(2), r.instances, ...(priced ? [cost(r.cost)] : [])])));
    }
    const hours = reply.totals.reduce((sum, t) => sum + t.vmHours, 0);
    write(`${hours.toFixed(2)} VM-hours from ${reply.from} to ${reply.to}${priced ? `, cost ${reply.totals.reduce((sum, t) => sum + (t.cost ?? 0), 0).toFixed(2)}` : ''}\n`);
  });
}
