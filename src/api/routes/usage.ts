import type { FastifyInstance } from 'fastify';
import { MAX_USAGE_DAYS, USAGE_DEFINITION, type UsageRow, usageByDay } from '../../db/usage';
import { requireRole } from '../auth';
import { unavailable } from '../errors';
import { errorReplies } from '../schemas';
import type { ApiDeps } from '../deps';

const DAY_MS = 86_400_000;
// Days from 1970 to 2999, and real ones (format date): the database's DATETIME holds them all.
const DAY = { type: 'string', pattern: '^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$', format: 'date' } as const;
const label = (what: string) => ({ type: 'string', minLength: 1, maxLength: 255, description: `only this ${what}` }) as const;

const usageRow = {
  type: 'object',
  properties: {
    day: { type: 'string', format: 'date' },
    endpoint: { type: 'string' },
    image: { type: 'string' },
    pod: { type: 'string' },
    vmHours: { type: 'number' },
    instances: { type: 'integer', description: 'instances with some of their span in the day' },
    cost: { type: 'number', description: 'vmHours x pricePerHour of the endpoint entry (fleet file); absent without a price' },
  },
  required: ['day', 'endpoint', 'image', 'pod', 'vmHours', 'instances'],
} as const;

/** VM-hours per day, endpoint, image and pod, from the history. */
export default async function usageRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  app.get<{ Querystring: { to?: string; days: number; endpoint?: string; image?: string; pod?: string } }>(
    '/usage',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['usage'],
        summary: 'VM-hours per UTC day, endpoint, image and pod, with their cost where the fleet file gives a price',
        description: `${USAGE_DEFINITION} The \`days\` days that end with \`to\` (at most ${MAX_USAGE_DAYS}); by default the last 7, today included.`,
        querystring: {
          type: 'object',
          properties: {
            to: { ...DAY, description: 'last day (UTC, YYYY-MM-DD), included; default today' },
            days: { type: 'integer', minimum: 1, maximum: MAX_USAGE_DAYS, default: 7, description: 'how many days, ending with `to`' },
            endpoint: label('endpoint'),
            image: label('image'),
            pod: label('running pod'),
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              from: { type: 'string', format: 'date' },
              to: { type: 'string', format: 'date' },
              definition: { type: 'string' },
              rows: { type: 'array', items: usageRow },
              totals: { type: 'array', items: { ...usageRow, properties: { ...usageRow.properties, day: { type: 'string', description: 'the span: from..to' } } } },
            },
            required: ['from', 'to', 'definition', 'rows', 'totals'],
          },
          ...errorReplies(),
        },
      },
    },
    async (request) => {
      const { endpoint, image, pod, days } = request.query;
      const toMs = request.query.to === undefined ? Math.floor(Date.now() / DAY_MS) * DAY_MS : Date.parse(`${request.query.to}T00:00:00Z`);
      const fromMs = toMs - (days - 1) * DAY_MS;
      const from = new Date(fromMs).toISOString().slice(0, 10);
      const to = new Date(toMs).toISOString().slice(0, 10);
      let rows: UsageRow[];
      try {
        rows = await usageByDay(deps.db, { from, to, endpoint, image, pod }, deps.prices ?? []);
      } catch (err) {
        throw unavailable('database', (err as Error)?.message ?? String(err));
      }
      return { from, to, definition: USAGE_DEFINITION, rows, totals: totalsOf(rows, `${from}..${to}`) };
    },
  );
}

/** The rows summed over the days, per endpoint, image and pod. */
export function totalsOf(rows: readonly UsageRow[], span: string): UsageRow[] {
  const totals = new Map<string, UsageRow>();
  for (const row of rows) {
    const key = JSON.stringify([row.endpoint, row.image, row.pod]);
    const total = totals.get(key) ?? { day: span, endpoint: row.endpoint, image: row.image, pod: row.pod, vmHours: 0, instances: 0 };
    total.vmHours = Math.round((total.vmHours + row.vmHours) * 1e4) / 1e4;
    // An instance spanning days is in each of them: the total counts instance-days.
    total.instances += row.instances;
    if (row.cost !== undefined) total.cost = Math.round(((total.cost ?? 0) + row.cost) * 100) / 100;
    totals.set(key, total);
  }
  return [...totals.values()];
}
