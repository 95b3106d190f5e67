import type { FastifyInstance } from 'fastify';
import { HISTORY_DATA_FIELDS, MAX_HISTORY_VALUES } from '../../db/history';
import { requireRole } from '../auth';
import { badRequest, unwrap } from '../errors';
import { filtersOf, listOf } from '../filters';
import { MAX_ID, errorReplies, table, withFilters } from '../schemas';
import type { ApiDeps } from '../deps';

const timespan = { type: 'integer', minimum: 0, maximum: MAX_ID, default: 0, description: 'seconds back from now; 0: all' } as const;

const FIELD = `(?:${HISTORY_DATA_FIELDS.join('|')})`;
/** `Load,Jobs`; empty entries are dropped (listOf), so stray commas are fine. */
const FIELDS_PATTERN = `^,*(?:${FIELD}(?:,+${FIELD})*)?,*$`;

const RUNNING_GROUPS = ['endpoint', 'pod', 'image'] as const;
type RunningGroup = (typeof RUNNING_GROUPS)[number];

/** Fleet figures and running-instance counts over time, in buckets. */
export default async function historyRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const { db } = deps;

  app.get<{ Querystring: { bucket: number; fields?: string; timespan: number } & Record<string, unknown> }>(
    '/history/values',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['history'],
        summary: 'History figures per time bucket (getHistoryValues)',
        description: `Any other query parameter filters on a vm_Instances column; comma-separated values are ORed. Refused (400) when the answer would hold more than ${MAX_HISTORY_VALUES} values: buckets from the first to the last sample in reach, times the fields.`,
        querystring: withFilters({
          bucket: { type: 'integer', minimum: 1, maximum: MAX_ID, default: 900, description: 'bucket size in seconds' },
          fields: { type: 'string', pattern: FIELDS_PATTERN, description: `a comma-separated list of ${HISTORY_DATA_FIELDS.join(', ')} (absent or empty: all)` },
          timespan,
        }),
        response: { 200: table, ...errorReplies() },
      },
    },
    async (request) => {
      const { bucket, fields, timespan } = request.query;
      const wanted = listOf(fields);
      const unknown = wanted.find((field) => !(HISTORY_DATA_FIELDS as readonly string[]).includes(field));
      if (unknown !== undefined) throw badRequest(`fields: ${JSON.stringify(unknown.slice(0, 40))} is not one of ${HISTORY_DATA_FIELDS.join(', ')} (querystring)`);
      const selDict = filtersOf(request.query, ['bucket', 'fields', 'timespan']);
      return unwrap(await db.getHistoryValues(bucket, selDict, wanted.length ? wanted : false, timespan));
    },
  );

  app.get<{ Querystring: { timespan: number; bucketSize: number; groupBy?: RunningGroup } }>(
    '/history/running',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['history'],
        summary: 'Running instances per time bucket, in all or per endpoint, pod or image',
        description: 'Records are [bucketStart, count], or [bucketStart, group, count] with groupBy. Buckets are at least 300 s.',
        querystring: {
          type: 'object',
          properties: {
            timespan,
            bucketSize: { type: 'integer', minimum: 0, maximum: MAX_ID, default: 900, description: 'seconds' },
            groupBy: { type: 'string', enum: [...RUNNING_GROUPS] },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { Records: table.properties.Records } }, ...errorReplies() },
      },
    },
    async (request) => {
      const { timespan, bucketSize, groupBy } = request.query;
      const series = {
        none: () => db.getRunningInstancesHistory(timespan, bucketSize),
        endpoint: () => db.getRunningInstancesBEPHistory(timespan, bucketSize),
        pod: () => db.getRunningInstancesByRunningPodHistory(timespan, bucketSize),
        image: () => db.getRunningInstancesByImageHistory(timespan, bucketSize),
      };
      return { Records: unwrap(await series[groupBy ?? 'none']()) };
    },
  );
}
