import type { FastifyInstance } from 'fastify';
import { INSTANCE_STATES } from '../../../entities/states';
import { lifecycleWorkflowId } from '../../../workflows/definitions';
import { columnNames, columnOf } from '../../../entities/tables';
import { type Failure, type Result, S_ERROR, failureCode, isDatabaseError } from '../../db/result';
import { UnwatchedInstances } from '../../db/unwatched';
import { instanceIDOf, recordOwn } from '../audit';
import { requireRole } from '../auth';
import { ApiError, badRequest, fromFailure, isTemporalUnavailable, unwrap } from '../errors';
import { filtersOf, sortListOf } from '../filters';
import { MAX_ID, errorReplies, instanceIDParams, table, withFilters } from '../schemas';
import type { ApiDeps } from '../deps';

export const MAX_PAGE = 1000;
export const MAX_STOP = 1000;
const STOP_CONCURRENCY = 8;
const UNREACHABLE = 'The database or Temporal cannot be reached right now; retry later';

const record = { type: 'object', additionalProperties: true } as const;

/** `{ <InstanceID>: { OK, Value?, Message?, State? } }` */
const stopResults = {
  type: 'object',
  additionalProperties: {
    type: 'object',
    properties: { OK: { type: 'boolean' }, Value: { type: 'string' }, Message: { type: 'string' }, State: { type: 'string' } },
  },
} as const;

/** Operators' view of the instances, and the operator stop. */
export default async function instanceRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const { db, lifecycle } = deps;
  const unwatched = new UnwatchedInstances(db);

  app.get<{ Querystring: { sort?: string; start: number; limit: number; after?: string } & Record<string, unknown> }>(
    '/instances',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['instances'],
        summary: 'Instances with their image (getInstancesContent): filters, sort, paging by cursor or offset, total',
        description:
          'Any other query parameter filters: a column (`Status`), or `inst.X` / `img.X`, equal to the value; comma-separated values are ORed. Unknown filter and sort fields are ignored. ' +
          'Each page answers `Next`, an opaque cursor: pass it as `after` (with the same sort) for the next page, at the same cost at any depth. `start` pages by offset and reads every row before it. ' +
          '`TotalRecords` is exact when `TotalExact` is true; otherwise it is the database\'s estimate, given when more than 10,000 rows match.',
        querystring: withFilters({
          sort: { type: 'string', description: 'F:ASC,G:DESC' },
          start: { type: 'integer', minimum: 0, maximum: MAX_ID, default: 0, description: 'an offset; not with `after`' },
          after: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^[A-Za-z0-9_-]+$', description: 'the `Next` cursor of the previous page, for the same sort (base64url)' },
          limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: 100 },
        }),
        response: {
          200: {
            type: 'object',
            properties: {
              ...table.properties,
              TotalRecords: { type: 'integer', description: 'the matching rows: exact when TotalExact, else an estimate' },
              TotalExact: { type: 'boolean', description: 'false when TotalRecords is an estimate (more than 10,000 rows match, MySQL/MariaDB)' },
              Next: { type: 'string', nullable: true, description: 'the cursor of the next page (pass it as `after`), or null on the last page' },
            },
          },
          ...errorReplies(),
        },
      },
    },
    async (request) => {
      const { sort, start, limit, after } = request.query;
      const selDict = filtersOf(request.query, ['sort', 'start', 'limit', 'after'], ['vm_Instances', 'vm_Images']);
      return unwrap(await db.getInstancesPage({ selDict, sortList: sortListOf(sort), after, start, limit }));
    },
  );

  app.get<{ Querystring: { groupBy: string } & Record<string, unknown> }>(
    '/instances/counters',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['instances'],
        summary: 'Number of instances per value of a column (getInstanceCounters)',
        description: 'Any other query parameter filters on a vm_Instances column; comma-separated values are ORed.',
        querystring: withFilters({ groupBy: { type: 'string', enum: columnNames('vm_Instances'), default: 'Status', description: 'a vm_Instances column' } }),
        response: { 200: { type: 'object', additionalProperties: { type: 'integer' } }, ...errorReplies() },
      },
    },
    async (request) => {
      const { groupBy } = request.query;
      if (!columnOf('vm_Instances', groupBy)) throw badRequest(`groupBy: ${JSON.stringify(groupBy.slice(0, 40))} is not a vm_Instances column (querystring)`);
      return unwrap(await db.getInstanceCounters(groupBy, filtersOf(request.query, ['groupBy'])));
    },
  );

  app.get<{ Params: { status: string } }>(
    '/instances/by-status/:status',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['instances'],
        summary: 'UniqueIDs of the instances in a status, per image (getInstancesByStatus)',
        params: {
          type: 'object',
          properties: { status: { type: 'string', enum: [...INSTANCE_STATES] } },
          required: ['status'],
          additionalProperties: false,
        },
        response: { 200: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } }, ...errorReplies() },
      },
    },
    async (request) => unwrap(await db.getInstancesByStatus(request.params.status)),
  );

  app.get<{ Params: { instanceID: number } }>(
    '/instances/:instanceID',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['instances'],
        summary: 'One instance and its image',
        params: instanceIDParams,
        response: {
          200: {
            type: 'object',
            properties: {
              Image: record,
              Instance: record,
              Workflow: {
                type: 'object',
                description: "The instance's life-cycle workflow; `UIUrl` is its page in the Temporal UI (null without VMDB_TEMPORAL_UI_URL)",
                properties: { ID: { type: 'string' }, UIUrl: { type: 'string', nullable: true } },
              },
              Life: {
                type: 'object',
                description: "The life cycle's own record: the planned shutdown (ISO, or null) and a stop the endpoint keeps refusing (halt pending since, and why)",
                properties: {
                  ShutdownAt: { type: 'string', format: 'date-time', nullable: true },
                  HaltPendingSince: { type: 'string', format: 'date-time', nullable: true },
                  HaltPendingReason: { type: 'string' },
                },
              },
            },
          },
          ...errorReplies(404),
        },
      },
    },
    async (request) => {
      const { instanceID } = request.params;
      // By InstanceID rather than getAllInfoForUniqueID: a New instance has no UniqueID yet.
      const instance = await rowOf('vm_Instances', { InstanceID: instanceID });
      if (!instance) throw new ApiError(404, 'not_found', `Unknown InstanceID = ${instanceID}`);
      const image = await rowOf('vm_Images', { VMImageID: instance.VMImageID });
      const life = unwrap(await db.getInstanceLife(instanceID));
      return {
        Image: image ?? {},
        Instance: instance,
        Workflow: workflowOf(instanceID),
        Life: { ShutdownAt: life.shutdownAt, HaltPendingSince: life.haltPendingSince, HaltPendingReason: life.haltPendingReason },
      };
    },
  );

  function workflowOf(instanceID: number): { ID: string; UIUrl: string | null } {
    const ID = lifecycleWorkflowId(instanceID);
    const ui = deps.temporalUi;
    if (!ui) return { ID, UIUrl: null };
    const base = ui.url.replace(/\/+$/, '');
    return { ID, UIUrl: `${base}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(ID)}` };
  }

  async function rowOf(tableName: 'vm_Instances' | 'vm_Images', where: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    const names = columnNames(tableName);
    const [row] = unwrap(await db.getFields(tableName, names, where));
    return row && Object.fromEntries(names.map((name, i) => [name, row[i]]));
  }

  app.get<{ Params: { instanceID: number } }>(
    '/instances/:instanceID/history',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['instances'],
        summary: 'The history rows of one instance, oldest first',
        params: instanceIDParams,
        response: { 200: table, ...errorReplies(404) },
      },
    },
    async (request) => {
      const { instanceID } = request.params;
      unwrap(await db.getUniqueID(instanceID)); // an unknown instance is a 404, not an empty history
      return unwrap(await db.getHistoryForInstanceID(instanceID));
    },
  );

  app.post<{ Body: { instanceIDs: number[] } }>(
    '/instances/stop',
    {
      onRequest: requireRole('operate'),
      // A stop refused before its body is read (role, bad body) is one row; the handler records one per instance.
      config: { audit: { action: 'instance.stop', target: (request) => stopTarget(request.body) } },
      schema: {
        tags: ['instances'],
        summary: "Stop instances with the seed's rules (Running: Stopping; New or Stalled: Halted), through each workflow",
        description: 'An instance without a running workflow is stopped in the database. Each id has its own result.',
        body: {
          type: 'object',
          properties: { instanceIDs: { type: 'array', items: { type: 'integer', minimum: 1, maximum: MAX_ID }, minItems: 1, maxItems: MAX_STOP } },
          required: ['instanceIDs'],
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { results: stopResults } },
          ...errorReplies(),
          503: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' }, results: stopResults } },
        },
      },
    },
    async (request, reply) => {
      const ids = [...new Set(request.body.instanceIDs)];
      const results: Record<string, Result<string>> = {};
      for (let i = 0; i < ids.length; i += STOP_CONCURRENCY) {
        const batch = ids.slice(i, i + STOP_CONCURRENCY);
        const outcomes = await Promise.all(batch.map(stopOne));
        batch.forEach((id, j) => (results[id] = outcomes[j]));
      }
      // Nothing could be reached at all: say so, so that a script retries, with each instance's result.
      const unavailable = (r: Result<string>) => !r.OK && (isDatabaseError(r) || isTemporalUnavailable(r));
      const down = Object.entries(results).filter(([, r]) => unavailable(r));
      if (down.length) request.log.warn({ failures: Object.fromEntries(down.map(([id, r]) => [id, (r as Failure).Message])) }, 'stop: database or Temporal unreachable');
      // The driver's words (addresses, codes) stay in the log; the caller learns what it can act on.
      for (const [id] of down) results[id] = S_ERROR(UNREACHABLE);
      const status = down.length === ids.length ? 503 : 200;
      await recordOwn(db, request, (operator) =>
        ids.map((id) => {
          const result = results[id];
          return {
            operator: operator.name,
            role: operator.role,
            action: 'instance.stop',
            target: `instance:${id}`,
            instanceID: id,
            detail: result.OK ? `now ${result.Value}` : '',
            outcome: result.OK ? 'succeeded' : 'failed',
            httpStatus: status,
            error: result.OK ? '' : fromFailure(result).code,
            message: result.OK ? '' : result.Message,
          };
        }),
      );
      if (status === 503) {
        return reply.code(503).send({ error: 'unavailable', message: 'Neither the workflows nor the database could be reached', results });
      }
      return { results };
    },
  );

  /** The instances a stop named, when its body could be read. */
  function stopTarget(body: unknown): { target: string; instanceID?: number | null } {
    const ids = (body as { instanceIDs?: unknown } | undefined)?.instanceIDs;
    const named = Array.isArray(ids) ? ids.map(instanceIDOf).filter((id): id is number => id !== null) : [];
    return { target: named.length ? named.map((id) => `instance:${id}`).join(',') : 'instances', instanceID: named.length === 1 ? named[0] : null };
  }

  async function stopOne(instanceID: number): Promise<Result<string>> {
    const viaWorkflow = await lifecycle.stop(instanceID);
    if (failureCode(viaWorkflow) !== 'no_lifecycle') return viaWorkflow;
    return unwatched.stop(instanceID);
  }
}
