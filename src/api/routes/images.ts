import type { FastifyInstance } from 'fastify';
import { columnNames } from '../../../entities/tables';
import { requireRole } from '../auth';
import { unwrap } from '../errors';
import { errorReplies, table } from '../schemas';
import type { ApiDeps } from '../deps';

export default async function imageRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const { db } = deps;

  app.get(
    '/images',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['images'],
        summary: 'Every image with its status',
        // properties, even empty: without it the OpenAPI document would list `type` as a query parameter.
        querystring: { type: 'object', properties: {}, additionalProperties: false },
        response: { 200: table, ...errorReplies() },
      },
    },
    async () => {
      const names = columnNames('vm_Images');
      return { ParameterNames: names, Records: unwrap(await db.getFields('vm_Images', names, null, false, undefined, undefined, undefined, null, 'VMImageID')) };
    },
  );
}
