import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance } from 'fastify';
import type { OperatorToken } from '../auth/tokens';
import type { LifecycleClient } from '../lifecycle-client';
import type { VirtualMachineDB } from '../vmdb';
import { API_PREFIX, installAuth } from './auth';
import { errorSchema, formatValidation, installErrorHandling } from './errors';
import directorRoutes from './routes/director';
import healthRoutes from './routes/health';
import historyRoutes from './routes/history';
import imageRoutes from './routes/images';
import instanceRoutes from './routes/instances';
import vmRoutes from './routes/vm';
import { installValidators } from './validator';

export interface ApiDeps {
  db: VirtualMachineDB;
  lifecycle: LifecycleClient;
  /** For the director routes and the health check; without it they answer 503 / "down". */
  temporal?: Client;
  operators: OperatorToken[];
  /** The secret VM tokens are signed with (src/auth/tokens.ts). */
  tokenSecret: string;
  logger?: boolean | object;
}

// Heartbeats and operator requests are small; a large body is a mistake or an attack.
const BODY_LIMIT = 64 * 1024;

/** The HTTP API of docs/http-api.md, ready to `listen` or `inject`. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  if (!deps.tokenSecret) throw new Error('buildApi needs a tokenSecret (VMDB_TOKEN_SECRET): VM tokens are checked with it');
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: BODY_LIMIT,
    schemaErrorFormatter: (errors, where) => new Error(formatValidation(errors, where)),
  });

  installValidators(app);
  installErrorHandling(app);
  installAuth(app, deps.operators, deps.tokenSecret);
  app.addSchema(errorSchema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'vmdb', version: 'v1', description: 'VM fleet records and life cycles. See docs/http-api.md.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An operator token (role read, operate or admin) or the VM token of one instance' },
        },
      },
      tags: ['vm', 'instances', 'history', 'images', 'director', 'health'].map((name) => ({ name })),
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { deps });
  for (const routes of [vmRoutes, instanceRoutes, historyRoutes, imageRoutes, directorRoutes]) {
    await app.register(routes, { prefix: API_PREFIX, deps });
  }
  return app;
}
