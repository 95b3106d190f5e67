import type { FastifyInstance } from 'fastify';
import { CHECK_TIMEOUT_MS, check, databaseAnswers, readiness, temporalAnswers } from '../../ops/readiness';
import type { ApiDeps } from '../deps';
import { rateLimitedReply } from '../schemas';

const part = { type: 'string', enum: ['ok', 'down'] } as const;

const readinessReply = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not ready'] },
    database: part,
    schema: { type: 'string', enum: ['current', 'behind', 'unknown'], description: 'whether every migration of this build is applied (`vmdb migrate`)' },
    temporal: part,
    failed: { type: 'array', items: { type: 'string', enum: ['database', 'schema', 'temporal'] }, description: 'the parts that are not ready' },
    message: { type: 'string', description: 'what is wrong, for a person' },
  },
  required: ['status', 'database', 'schema', 'temporal', 'failed'],
} as const;

/**
 * Open routes for load balancers, orchestrators and people:
 * - `/healthz`: the process is up (liveness); always 200.
 * - `/readyz`: 200 when the database answers, its schema is current and Temporal answers; 503 naming what is not.
 * - `/health`: both dependencies, always 200; `degraded` says which part is down.
 */
export default async function healthRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'The process is up (liveness); checks nothing else',
        response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } }, required: ['status'] }, ...rateLimitedReply },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Ready for traffic: the database answers with a current schema, and Temporal answers (503 otherwise)',
        response: { 200: readinessReply, 503: readinessReply, ...rateLimitedReply },
      },
    },
    async (_request, reply) => {
      const report = await readiness({ db: deps.db, temporal: deps.temporal, timeoutMs: CHECK_TIMEOUT_MS });
      return reply.code(report.status === 'ready' ? 200 : 503).send(report);
    },
  );

  app.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        summary: 'Whether the database and Temporal answer',
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string', enum: ['ok', 'degraded'] },
              database: part,
              temporal: part,
            },
          },
          ...rateLimitedReply,
        },
      },
    },
    async () => {
      const { db, temporal } = deps;
      const [database, temporalCheck] = await Promise.all([check(() => databaseAnswers(db)), check(() => temporalAnswers(temporal))]);
      return { status: database === 'ok' && temporalCheck === 'ok' ? 'ok' : 'degraded', database, temporal: temporalCheck };
    },
  );
}
