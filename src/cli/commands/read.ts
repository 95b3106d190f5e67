import type { Command } from 'commander';
import {
  CONTENT_COLUMNS,
  columnOfTable,
  filterPair,
  filterValue,
  instanceID,
  instanceStatuses,
  nonNegativeInteger,
  positiveInteger,
  sortSpec,
} from '../args';
import { apiClient, withJson } from '../context';
import { json, keyValues, recordsTable, table, write } from '../format';
import { columnNames } from '../../../entities/tables';

interface Records {
  ParameterNames: string[];
  Records: unknown[][];
}

interface FilterOptions {
  status?: string;
  endpoint?: string;
  image?: string;
  pod?: string;
  filter?: Record<string, string>;
}

/** Filters as the API takes them: column (or inst.X / img.X) = value; comma-separated values are ORed. */
function filterQuery(options: FilterOptions): Record<string, string | undefined> {
  return {
    ...options.filter,
    Status: options.status ?? options.filter?.Status,
    Endpoint: options.endpoint ?? options.filter?.Endpoint,
    RunningPod: options.pod ?? options.filter?.RunningPod,
    ...(options.image !== undefined ? { 'img.Name': options.image } : {}),
  };
}

/** The instance columns people see by default, with their titles. */
const LIST_COLUMNS: [string, string][] = [
  ['inst.InstanceID', 'ID'],
  ['inst.Name', 'Name'],
  ['inst.Status', 'Status'],
  ['inst.Endpoint', 'Endpoint'],
  ['inst.RunningPod', 'Pod'],
  ['img.Name', 'Image'],
  ['inst.PublicIP', 'Public IP'],
  ['inst.Load', 'Load'],
  ['inst.Jobs', 'Jobs'],
  ['inst.LastUpdate', 'Last update (UTC)'],
];

function instancesTable(reply: Records, wide: boolean): string {
  if (wide) return recordsTable(reply);
  const columns = LIST_COLUMNS.filter(([name]) => reply.ParameterNames.includes(name));
  const index = columns.map(([name]) => reply.ParameterNames.indexOf(name));
  return table(
    columns.map(([, title]) => title),
    reply.Records.map((record) => index.map((i) => record[i])),
  );
}

export function registerReadCommands(program: Command): void {
  withJson(
    program
      .command('instances')
      .description('list instances with their image (filters, sort, paging)')
      .option('--status <status>', 'only these states (comma-separated: Running,Stalled)', instanceStatuses)
      .option('--endpoint <endpoint>', 'only this endpoint (Site::CE; comma-separated for several)', filterValue)
      .option('--image <image>', 'only instances of this image (comma-separated for several)', filterValue)
      .option('--pod <pod>', 'only this running pod (comma-separated for several)', filterValue)
      .option('--filter <column=value>', 'any other column (inst.X, img.X or a bare column); repeatable', filterPair(CONTENT_COLUMNS))
      .option('--sort <field:dir>', 'sort, e.g. LastUpdate:DESC or Status:ASC,InstanceID:DESC', sortSpec)
      .option('--start <n>', 'skip the first n instances', nonNegativeInteger)
      .option('--limit <n>', 'at most n instances', positiveInteger)
      .option('--wide', 'every column the API returns'),
  ).action(async (options: FilterOptions & { sort?: string; start?: number; limit?: number; wide?: boolean; json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<Records & { TotalRecords: number }>('/api/v1/instances', {
      ...filterQuery(options),
      sort: options.sort,
      start: options.start,
      limit: options.limit,
    });
    if (options.json) return write(json(reply));
    const shown = reply.Records.length;
    const total = Number(reply.TotalRecords ?? shown);
    if (total === 0) return write('no instances\n');
    write(instancesTable(reply, Boolean(options.wide)));
    const first = (options.start ?? 0) + 1;
    write(shown < total ? `${shown ? `${first}-${first + shown - 1}` : 'none'} of ${total} instances\n` : `${total} instance${total === 1 ? '' : 's'}\n`);
  });

  withJson(
    program
      .command('show')
      .description('one instance and its image')
      .argument('<instanceID>', 'the InstanceID', instanceID),
  ).action(async (id: number, options: { json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<{ Instance: Record<string, unknown>; Image: Record<string, unknown> }>(`/api/v1/instances/${id}`);
    if (options.json) return write(json(reply));
    write(`Instance ${id}\n${indent(keyValues(Object.entries(reply.Instance ?? {})))}\nImage\n${indent(keyValues(Object.entries(reply.Image ?? {})))}`);
  });

  withJson(
    program
      .command('history')
      .description("an instance's state changes and heartbeats, oldest first")
      .argument('<instanceID>', 'the InstanceID', instanceID),
  ).action(async (id: number, options: { json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<Records>(`/api/v1/instances/${id}/history`);
    if (options.json) return write(json(reply));
    if (!reply.Records?.length) return write(`no history for instance ${id}\n`);
    write(recordsTable(reply, { Update: 'Update (UTC)' }));
  });

  withJson(
    program
      .command('counters')
      .description('how many instances per value of a column')
      .option('--by <column>', 'the column to group by (an instance column)', columnOfTable('vm_Instances', 'column'), 'Status')
      .option('--status <status>', 'only these states (comma-separated)', instanceStatuses)
      .option('--endpoint <endpoint>', 'only this endpoint', filterValue)
      .option('--pod <pod>', 'only this running pod', filterValue)
      .option('--filter <column=value>', 'any other instance column; repeatable', filterPair(columnNames('vm_Instances'))),
  ).action(async (options: FilterOptions & { by: string; json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<Record<string, number>>('/api/v1/instances/counters', { groupBy: options.by, ...filterQuery(options) });
    if (options.json) return write(json(reply));
    const rows = Object.entries(reply).sort(([a], [b]) => a.localeCompare(b));
    if (!rows.length) return write('no instances\n');
    const total = rows.reduce((sum, [, n]) => sum + Number(n), 0);
    write(table([options.by, 'Count'], [...rows, ['total', total]]));
  });

  withJson(program.command('images').description('the images and their status')).action(async (options: { json?: boolean }, command: Command) => {
    const reply = await apiClient(command).get<Records>('/api/v1/images');
    if (options.json) return write(json(reply));
    if (!reply.Records?.length) return write('no images\n');
    write(recordsTable(reply, { VMImageID: 'ID', LastUpdate: 'Last update (UTC)', ErrorMessage: 'Error' }));
  });
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => (line ? `  ${line}` : line))
    .join('\n');
}
