import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server';

const CHECK_TIMEOUT_MS = 3000;
type Check = 'ok' | 'down';

/** Resolves 'ok' when `probe` succeeds in time, 'down' otherwise; never throws. */
async function check(probe: () => Promise<boolean>): Promise<Check> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS)));
  try {
    return (await Promise.race([probe().catch(() => false), late])) ? 'ok' : 'down';
  } finally {
    clearTimeout(timer);
  }
}

/** Open: for load balancers and people. Always 200; `degraded` says which part is down. */
export default async function healthRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
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
              database: { type: 'string', enum: ['ok', 'down'] },
              temporal: { type: 'string', enum: ['ok', 'down'] },
            },
          },
        },
      },
    },
    async () => {
      const { db, temporal } = deps;
      const [database, temporalCheck] = await Promise.all([
        check(async () => (await db.countEntries('vm_Images')).OK), // a small table: cheap, and a real query
        check(async () => {
          if (!temporal) return false;
          await temporal.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => temporal.workflowService.getSystemInfo({}));
          return true;
        }),
      ]);
      return { status: database === 'ok' && temporalCheck === 'ok' ? 'ok' : 'degraded', database, temporal: temporalCheck };
    },
  );
}
