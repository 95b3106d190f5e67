import type { FastifyInstance } from 'fastify';
import { MAX_USAGE_DAYS, USAGE_DEFINITION, type UsageRow, usageByDay } from '../../elastic/usage';
import { requireRole } from '../auth';
import { badRequest, unavailable } from '../errors';
import { errorReplies } from '../schemas';
import type { ApiDeps } from '../server';

const DAY_MS = 86_400_000;
const DATE = '^\\d{4}-\\d{2}-\\d{2}$';
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

/** A YYYY-MM-DD that is a real day, as its UTC midnight in ms. */
function dayOf(name: string, text: string): number {
  const ms = Date.parse(`${text}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text) throw badRequest(`${name} is not a date (YYYY-MM-DD): ${JSON.stringify(text)} (querystring)`);
  return ms;
}

/** VM-hours per day, endpoint, image and pod, from the history. */
export default async function usageRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  app.get<{ Querystring: { from?: string; to?: string; endpoint?: string; image?: string; pod?: string } }>(
    '/usage',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['usage'],
        summary: 'VM-hours per UTC day, endpoint, image and pod, with their cost where the fleet file gives a price',
        description: `${USAGE_DEFINITION} At most ${MAX_USAGE_DAYS} days; by default the last 7 (today included).`,
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string', pattern: DATE, description: 'first day (UTC, YYYY-MM-DD); default 6 days before `to`' },
            to: { type: 'string', pattern: DATE, description: 'last day (UTC, YYYY-MM-DD), included; default today' },
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
      const { endpoint, image, pod } = request.query;
      const toMs = request.query.to === undefined ? Math.floor(Date.now() / DAY_MS) * DAY_MS : dayOf('to', request.query.to);
      const fromMs = request.query.from === undefined ? toMs - 6 * DAY_MS : dayOf('from', request.query.from);
      if (fromMs > toMs) throw badRequest('from must not be after to (querystring)');
      if ((toMs - fromMs) / DAY_MS + 1 > MAX_USAGE_DAYS) throw badRequest(`from..to spans more than ${MAX_USAGE_DAYS} days (querystring)`);
      const from = new Date(fromMs).toISOString().slice(0, 10);
      const to = new Date(toMs).toISOString().slice(0, 10);
      let rows: UsageRow[];
      try {
        rows = await usageByDay(deps.db.executor, { from, to, endpoint, image, pod }, deps.prices ?? []);
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
