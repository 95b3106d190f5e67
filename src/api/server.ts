import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { type Logger, createLogger, processLogger } from '../ops/log';
import { renderMetrics, trackInstances } from '../ops/metrics';
import { METRICS_MESSAGES, METRICS_TOKEN_SETTING, isLoopback, metricsAccess } from '../ops/metrics-access';
import type { SafetyConfig } from '../safety/config';
import { startPulse } from '../safety/pulse';
import type { VirtualMachineDB } from '../db/vmdb';
import { VmTokenKeys } from '../auth/tokens';
import type { InstanceStore } from '../db/instance-store';
import { installAudit } from './audit';
import { API_PREFIX, installAuth } from './auth';
import { installDashboard } from './dashboard';
import { ApiError, errorSchema, formatValidation, installErrorHandling, unavailable } from './errors';
import { rateLimitedReply } from './schemas';
import { installMethodNotAllowed } from './methods';
import { type RateLimits, installRateLimits } from './rate-limits';
import auditRoutes from './routes/audit';
import directorRoutes from './routes/director';
import haltReasonRoutes from './routes/halt-reason';
import healthRoutes from './routes/health';
import historyRoutes from './routes/history';
import imageRoutes from './routes/images';
import instanceRoutes from './routes/instances';
import sessionRoutes from './routes/session';
import safetyRoutes from './routes/safety';
import usageRoutes from './routes/usage';
import vmRoutes from './routes/vm';
import { installValidators } from './validator';

import type { ApiDeps } from './deps';

export type { ApiDeps };

function isLogger(value: unknown): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function' && typeof (value as Logger).info === 'function';
}

function apiLogger(option: ApiDeps['logger']): Logger | undefined {
  if (!option) return undefined;
  if (option === true) return processLogger();
  if (isLogger(option)) return option;
  return createLogger({ level: option.level });
}

const VM_ROUTE = /^\/api\/v1\/vms\//;

/**
 * One line per request, at a level that fits a fleet: a VM's successful calls (a heartbeat every
 * few minutes from every VM) at debug, operators' calls at info, failures at warn and error.
 * "incoming request" lines are debug.
 */
class ApiLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const fields = { res: reply, responseTime: reply.elapsedTime, method: request.method, url: request.url };
    if (error) return reply.log.error({ ...fields, err: error }, 'request errored');
    const status = reply.statusCode;
    const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : VM_ROUTE.test(request.url) ? 'debug' : 'info';
    reply.log[level](fields, 'request completed');
  }
}

// Heartbeats and operator requests are small; a large body is a mistake or an attack.
const BODY_LIMIT = 64 * 1024;

/** The HTTP API of docs/http-api.md, ready to `listen` or `inject`. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  if (!deps.tokenSecret) throw new Error('buildApi needs a tokenSecret (VMDB_TOKEN_SECRET): VM tokens are checked with it');
  const logger = apiLogger(deps.logger);
  // With TLS the server is node:https's (its setSecureContext reloads the certificate); the routes see no difference.
  const app = Fastify({
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger, logController: new ApiLogController() } : { logger: false }),
    ...(deps.tls ? { https: { cert: deps.tls.cert, key: deps.tls.key } } : {}),
    trustProxy: deps.trustProxy ?? false,
    bodyLimit: BODY_LIMIT,
    // Fastify's default (100) is below the longest valid endpoint name ("Site::CE", 120 + 2 + 120
    // characters, percent-encoded in a path): let the route's schema judge the length instead.
    routerOptions: { maxParamLength: 1024 },
    schemaErrorFormatter: (errors, where) => new Error(formatValidation(errors, where)),
  } as FastifyServerOptions) as unknown as FastifyInstance;

  installValidators(app);
  installErrorHandling(app);
  const limits = await installRateLimits(app, deps.rateLimits ?? false);
  let instances: InstanceStore | undefined; // made at the first VM token, from the facade
  installAuth(
    app,
    {
      operators: deps.operators,
      vmKeys: new VmTokenKeys([deps.tokenSecret, ...(deps.previousTokenSecrets ?? [])]),
      onEnded: async (instanceID) => deps.lifecycle.heartbeats?.noteEnded(instanceID),
      identity: async (instanceID) => {
        try {
          instances ??= deps.db.instanceStore();
          return (await instances.instances({ instanceID }))[0];
        } catch (err) {
          throw unavailable('database', (err as Error)?.message ?? String(err));
        }
      },
    },
    limits.authFailed,
  );
  // After authentication, so that a caller with a token is counted by who it is, not where from.
  app.addHook('onRequest', limits.perCaller);
  installMethodNotAllowed(app);
  installAudit(app, deps.db);
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
      tags: ['vm', 'instances', 'history', 'images', 'director', 'health', 'metrics', 'session', 'usage', 'audit'].map((name) => ({ name })),
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { deps });
  if (deps.safety) installPulse(app, deps.db, deps.safety);
  installMetrics(app, deps, limits);
  for (const routes of [vmRoutes, haltReasonRoutes, instanceRoutes, historyRoutes, imageRoutes, directorRoutes, sessionRoutes, safetyRoutes, usageRoutes, auditRoutes]) {
    await app.register(routes, { prefix: API_PREFIX, deps });
  }
  await app.register(installDashboard, { dir: deps.dashboardDir, log: logger });
  return app;
}

/**
 * Prometheus' route: with VMDB_METRICS_TOKEN, for its bearer only (a wrong token counts as a failed
 * authentication); without, for callers on this machine only (src/ops/metrics-access.ts).
 */
function installMetrics(app: FastifyInstance, deps: ApiDeps, limits: RateLimits): void {
  const untrack = trackInstances(deps.db);
  app.addHook('onClose', async () => untrack());
  const errorRef = { $ref: `${errorSchema.$id}#` };
  app.get(
    '/metrics',
    {
      onRequest: async (request, reply) => {
        // Loopback only if both the connection and the forwarded client are: through a trusted proxy
        // on this machine every connection is local, and X-Forwarded-For alone can be forged.
        const peer = request.socket.remoteAddress;
        const access = metricsAccess(deps.metricsToken, request.headers.authorization, isLoopback(peer) ? request.ip : peer);
        if (access === 'allowed') return;
        if (access === 'unauthorized') {
          await limits.authFailed(request, reply);
          reply.header('WWW-Authenticate', 'Bearer');
        }
        throw new ApiError(access === 'unauthorized' ? 401 : 403, access, METRICS_MESSAGES[access]);
      },
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics of this process (text exposition format)',
        description: `With ${METRICS_TOKEN_SETTING} set: \`Authorization: Bearer <that token>\` (401 otherwise). Unset: callers on the API's own machine only (403 otherwise). vmdb_heartbeats_total{directive}, vmdb_transitions_total{kind,from,to}, vmdb_instances{status}, vmdb_director_launches_total{endpoint}, vmdb_director_failures_total{endpoint}, vmdb_activity_failures_total{activity}, vmdb_ssh_contextualization_seconds{outcome}, vmdb_audit_write_failures_total{action}, and the Node process metrics.`,
        response: { 200: { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } }, 401: errorRef, 403: errorRef, ...rateLimitedReply },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await renderMetrics();
      return reply.type(contentType).send(body);
    },
  );
}

/** The API's pulse: from the first request it can take until it closes. */
function installPulse(app: FastifyInstance, db: VirtualMachineDB, safety: SafetyConfig): void {
  const pulse = startPulse('api', db, safety, { log: app.log as unknown as Logger });
  app.addHook('onReady', async () => pulse.beat());
  app.addHook('onClose', async () => pulse.stop());
}
