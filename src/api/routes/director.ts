import { type Client, ScheduleNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { FLEET_MODES, SafetyStore } from '../../db/safety-store';
import { DIRECTOR_SCHEDULE_ID, RECONCILE_SCHEDULE_ID, SWEEP_SCHEDULE_ID } from '../../temporal/schedules';
import { requireRole } from '../auth';
import { ApiError, temporalError } from '../errors';
import { errorReplies } from '../schemas';
import type { ApiDeps } from '../deps';
import { endpointHealthSchema } from './safety';

/** How long a Temporal call of these routes may take before the answer is 503. */
export const TEMPORAL_DEADLINE_MS = 5000;

interface ScheduleStatus {
  id: string;
  /** Set when the Schedule does not exist (the worker creates it at start). */
  absent?: true;
  paused?: boolean;
  intervalSeconds?: number;
  lastRun?: string;
  nextRun?: string;
}

const scheduleStatus = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    absent: { type: 'boolean', description: 'true when the Schedule does not exist; the other fields are then left out' },
    paused: { type: 'boolean' },
    intervalSeconds: { type: 'number' },
    lastRun: { type: 'string', format: 'date-time' },
    nextRun: { type: 'string', format: 'date-time' },
  },
  required: ['id'],
} as const;

/** The Director and stalled-sweep Schedules: their state, and a pass on demand. */
export default async function directorRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  function temporal(): Client {
    if (!deps.temporal) throw new ApiError(503, 'unavailable', 'This API has no Temporal client');
    return deps.temporal;
  }

  async function describe(client: Client, id: string): Promise<ScheduleStatus> {
    try {
      const d = await client.withDeadline(Date.now() + TEMPORAL_DEADLINE_MS, () => client.schedule.getHandle(id).describe());
      const every = d.spec.intervals?.[0]?.every;
      const last = d.info.recentActions.at(-1)?.takenAt;
      const next = d.info.nextActionTimes[0];
      return {
        id,
        paused: d.state.paused,
        ...(typeof every === 'number' ? { intervalSeconds: every / 1000 } : {}),
        ...(last ? { lastRun: last.toISOString() } : {}),
        ...(next ? { nextRun: next.toISOString() } : {}),
      };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return { id, absent: true };
      throw temporalError(err);
    }
  }

  app.get(
    '/director',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['director'],
        summary: 'The Director, stalled-sweep and reconciliation Schedules, the fleet mode, and each endpoint\'s pause and backoff',
        response: {
          200: {
            type: 'object',
            properties: {
              schedules: { type: 'array', items: scheduleStatus },
              mode: { type: 'string', enum: [...FLEET_MODES], description: 'normal, no-launch, drain or halt (PUT /safety/mode)' },
              endpoints: { type: 'array', items: endpointHealthSchema, description: 'endpoints with a pause or a failure on record; others launch normally' },
            },
          },
          ...errorReplies(),
        },
      },
    },
    async () => {
      const client = temporal();
      const store = SafetyStore.of(deps.db);
      return {
        schedules: await Promise.all([DIRECTOR_SCHEDULE_ID, SWEEP_SCHEDULE_ID, RECONCILE_SCHEDULE_ID].map((id) => describe(client, id))),
        mode: await store.mode(),
        endpoints: await store.endpoints(),
      };
    },
  );

  app.post(
    '/director/trigger',
    {
      onRequest: requireRole('admin'),
      config: { audit: { action: 'director.trigger', target: () => ({ target: `schedule:${DIRECTOR_SCHEDULE_ID}` }) } },
      schema: {
        tags: ['director'],
        summary: 'Run a Director pass now (overlap SKIP still applies)',
        response: { 200: { type: 'object', properties: { triggered: { type: 'boolean' } } }, ...errorReplies(404) },
      },
    },
    async () => {
      const client = temporal();
      try {
        await client.withDeadline(Date.now() + TEMPORAL_DEADLINE_MS, () => client.schedule.getHandle(DIRECTOR_SCHEDULE_ID).trigger());
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw new ApiError(404, 'not_found', `Schedule ${DIRECTOR_SCHEDULE_ID} does not exist; the worker creates it at start`);
        throw temporalError(err);
      }
      return { triggered: true };
    },
  );
}
