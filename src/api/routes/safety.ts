import type { FastifyInstance } from 'fastify';
import { parseEndpointName } from '../../drivers/driver';
import { DEFAULT_SAFETY } from '../../safety/config';
import { FleetGuard } from '../../safety/guard';
import { FLEET_MODES, type FleetMode, SafetyStore } from '../../db/safety-store';
import { type AuditTarget, instanceIDOf } from '../audit';
import { requireRole } from '../auth';
import { ApiError, badRequest, unwrap } from '../errors';
import { errorReplies, instanceIDParams } from '../schemas';
import type { ApiDeps } from '../deps';

// The shape parseEndpointName (src/drivers/driver.ts) accepts, so that the document tells clients the truth.
const endpointParams = {
  type: 'object',
  properties: {
    endpoint: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,120}::[A-Za-z0-9._-]{1,120}$', maxLength: 242, description: '"Site::CE", each part of letters, digits, ".", "_" and "-"' },
  },
  required: ['endpoint'],
} as const;

const reasonBody = {
  type: 'object',
  properties: { reason: { type: 'string', maxLength: 255, description: 'why; shown in the status' } },
  additionalProperties: false,
} as const;

export const endpointHealthSchema = {
  type: 'object',
  properties: {
    endpoint: { type: 'string' },
    paused: { type: 'boolean' },
    pauseReason: { type: 'string' },
    failures: { type: 'integer', description: 'consecutive failed creations since the last success' },
    lastReason: { type: 'string', description: 'throttled, quota, auth, capacity, unavailable, error (unclassified), or idle (its VMs halted idle soon after boot)' },
    lastMessage: { type: 'string' },
    lastFailure: { type: ['string', 'null'], format: 'date-time' },
    backoffUntil: { type: ['string', 'null'], format: 'date-time', description: 'the Director launches nothing here before this time' },
    demand: { type: ['integer', 'null'], description: 'waiting jobs its demand source gave at the last Director pass (null: no source, or it failed)' },
    target: { type: ['integer', 'null'], description: 'instances the Director launched toward at that pass (null: no demand source, it fills maxInstances)' },
    demandMessage: { type: 'string', description: 'why the demand source gave no figure' },
    demandAt: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

const manualSchema = {
  type: 'object',
  properties: { instanceID: { type: 'integer' }, reason: { type: 'string' }, since: { type: ['string', 'null'], format: 'date-time' } },
} as const;

const modeSchema = { type: 'string', enum: [...FLEET_MODES] } as const;

const guardSchema = {
  type: 'object',
  properties: {
    scope: { type: 'string' },
    tripped: { type: 'boolean', description: 'true: too many Running instances are silent at once; their stalls and halts are held' },
    since: { type: ['string', 'null'], format: 'date-time', description: 'when it tripped or cleared' },
  },
} as const;

type Parts = { params?: unknown; body?: unknown };
const paramOf = (request: Parts, name: string) => String((request.params as Record<string, unknown> | undefined)?.[name] ?? '');
const reasonOf = (request: Parts) => String((request.body as { reason?: unknown } | undefined)?.reason ?? '');
const endpointTarget = (request: Parts): AuditTarget => ({ target: `endpoint:${paramOf(request, 'endpoint')}`, detail: reasonOf(request) });
const instanceTarget = (request: Parts): AuditTarget => ({ target: `instance:${paramOf(request, 'instanceID')}`, instanceID: instanceIDOf(paramOf(request, 'instanceID')), detail: reasonOf(request) });

/** The fleet-safety controls: the global mode, per-endpoint pauses, per-instance manual control. */
export default async function safetyRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const store = SafetyStore.of(deps.db);
  // Reads only: the API's guard answers why stalls are held, it never trips or clears anything here.
  const guard = new FleetGuard(deps.db, deps.safety ?? DEFAULT_SAFETY);

  function endpointParam(raw: string): string {
    try {
      return parseEndpointName(raw).name;
    } catch (err) {
      throw badRequest(`${(err as Error).message} (path)`);
    }
  }

  async function knownInstance(instanceID: number): Promise<void> {
    const rows = unwrap(await deps.db.getFields('vm_Instances', ['InstanceID'], { InstanceID: instanceID }));
    if (rows.length === 0) throw new ApiError(404, 'not_found', `Unknown InstanceID = ${instanceID}`);
  }

  app.get(
    '/safety',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['safety'],
        summary: 'Fleet mode, endpoint pauses and backoffs, instances under manual control',
        response: {
          200: {
            type: 'object',
            properties: {
              mode: modeSchema,
              endpoints: { type: 'array', items: endpointHealthSchema },
              manual: { type: 'array', items: manualSchema },
              stallsHeld: { type: ['string', 'null'], description: 'why every stall is held now (an outage of vmdb, or its recovery grace); null: none' },
              guards: { type: 'array', items: guardSchema, description: 'the mass-silence guard per scope (fleet, endpoint:<Site::CE>) that has ever tripped' },
            },
          },
          ...errorReplies(),
        },
      },
    },
    async () => ({
      mode: await store.mode(),
      endpoints: await store.endpoints(),
      manual: await store.manualInstances(),
      stallsHeld: (await guard.outageReason()) ?? null,
      guards: [...(await store.marksStartingWith('guard:')).entries()].map(([name, mark]) => ({ scope: name.slice('guard:'.length), tripped: mark.value === 'tripped', since: mark.at?.toISOString() ?? null })),
    }),
  );

  app.put<{ Body: { mode: FleetMode } }>(
    '/safety/mode',
    {
      onRequest: requireRole('admin'),
      config: { audit: { action: 'fleet.mode', target: (request) => ({ target: 'fleet', detail: String((request.body as { mode?: unknown } | undefined)?.mode ?? '') }) } },
      schema: {
        tags: ['safety'],
        summary: 'Set the fleet mode: normal, no-launch (launch nothing new), drain (stop everything), halt (halt everything)',
        body: { type: 'object', properties: { mode: modeSchema }, required: ['mode'], additionalProperties: false },
        response: { 200: { type: 'object', properties: { mode: modeSchema } }, ...errorReplies() },
      },
    },
    async (request) => {
      await store.setMode(request.body.mode);
      request.log.warn({ mode: request.body.mode }, 'fleet mode set');
      return { mode: request.body.mode };
    },
  );

  app.post<{ Params: { endpoint: string }; Body: { reason?: string } }>(
    '/safety/endpoints/:endpoint/pause',
    {
      onRequest: requireRole('operate'),
      config: { audit: { action: 'endpoint.pause', target: endpointTarget } },
      schema: {
        tags: ['safety'],
        summary: 'Pause launching at an endpoint ("Site::CE") until it is resumed',
        params: endpointParams,
        body: reasonBody,
        response: { 200: endpointHealthSchema, ...errorReplies() },
      },
    },
    async (request) => {
      const endpoint = endpointParam(request.params.endpoint);
      request.log.warn({ endpoint, reason: request.body.reason }, 'endpoint paused');
      return store.pauseEndpoint(endpoint, request.body.reason ?? '');
    },
  );

  app.post<{ Params: { endpoint: string } }>(
    '/safety/endpoints/:endpoint/resume',
    {
      onRequest: requireRole('operate'),
      config: { audit: { action: 'endpoint.resume', target: endpointTarget } },
      schema: {
        tags: ['safety'],
        summary: 'Resume launching at an endpoint: lifts its pause and any backoff',
        params: endpointParams,
        response: { 200: endpointHealthSchema, ...errorReplies() },
      },
    },
    async (request) => {
      const endpoint = endpointParam(request.params.endpoint);
      request.log.info({ endpoint }, 'endpoint resumed');
      return store.resumeEndpoint(endpoint);
    },
  );

  app.put<{ Params: { instanceID: number }; Body: { reason?: string } }>(
    '/instances/:instanceID/manual',
    {
      onRequest: requireRole('operate'),
      config: { audit: { action: 'instance.manual.set', target: instanceTarget } },
      schema: {
        tags: ['safety'],
        summary: 'Put an instance under manual control: no automatic stall, halt or lifetime action touches it',
        params: instanceIDParams,
        body: reasonBody,
        response: { 200: manualSchema, ...errorReplies(404) },
      },
    },
    async (request) => {
      await knownInstance(request.params.instanceID);
      request.log.warn({ instanceID: request.params.instanceID, reason: request.body.reason }, 'instance under manual control');
      return store.setManual(request.params.instanceID, request.body.reason ?? '');
    },
  );

  app.delete<{ Params: { instanceID: number } }>(
    '/instances/:instanceID/manual',
    {
      onRequest: requireRole('operate'),
      config: { audit: { action: 'instance.manual.clear', target: (request) => ({ ...instanceTarget(request), detail: '' }) } },
      schema: {
        tags: ['safety'],
        summary: 'Hand an instance back to automatic control',
        params: instanceIDParams,
        response: { 200: { type: 'object', properties: { cleared: { type: 'boolean' } } }, ...errorReplies(404) },
      },
    },
    async (request) => {
      await knownInstance(request.params.instanceID);
      const cleared = await store.clearManual(request.params.instanceID);
      request.log.info({ instanceID: request.params.instanceID, cleared }, 'instance back under automatic control');
      return { cleared };
    },
  );
}
