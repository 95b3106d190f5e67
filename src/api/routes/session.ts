import type { FastifyInstance } from 'fastify';
import { roleAllows } from '../../auth/tokens';
import { requireRole } from '../auth';
import { errorReplies } from '../schemas';
import type { ApiDeps } from '../deps';

/** Who the caller is, for the dashboard: what to show and which buttons to offer (the routes check anyway). */
export default async function sessionRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  app.get(
    '/me',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['session'],
        summary: "The caller's operator name and role, and what that role may do",
        response: {
          200: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              role: { type: 'string', enum: ['read', 'operate', 'admin'] },
              mayOperate: { type: 'boolean', description: 'may stop instances' },
              temporalUi: { type: 'boolean', description: 'instances link to their workflow in the Temporal UI (VMDB_TEMPORAL_UI_URL)' },
            },
          },
          ...errorReplies(),
        },
      },
    },
    async (request) => {
      const principal = request.principal!;
      if (principal.kind !== 'operator') throw new Error('requireRole lets only operators through');
      return { name: principal.name, role: principal.role, mayOperate: roleAllows(principal.role, 'operate'), temporalUi: Boolean(deps.temporalUi) };
    },
  );
}
