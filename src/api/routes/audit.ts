import type { FastifyInstance } from 'fastify';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES, AuditStore, MAX_AUDIT_PAGE } from '../../db/audit-store';
import { requireRole } from '../auth';
import { badRequest, unavailable } from '../errors';
import { MAX_ID, errorReplies } from '../schemas';
import { isCalendarDay } from '../validator';
import type { ApiDeps } from '../deps';

// A day, or a time with its zone: a time without one would be read in the server's zone.

const entrySchema = {
  type: 'object',
  properties: {
    id: { type: 'integer', description: 'increasing; pass the last one as `before` for the next page' },
    at: { type: 'string', format: 'date-time', description: 'when it was recorded (UTC, to the second)' },
    operator: { type: 'string', description: "the operator token's name" },
    role: { type: 'string', description: 'its role then' },
    action: { type: 'string', enum: [...AUDIT_ACTIONS] },
    target: { type: 'string', description: 'instance:<id>, endpoint:<Site::CE>, fleet or schedule:<id>; "instances" for a stop refused before its body was read' },
    instanceID: { type: ['integer', 'null'], description: 'the instance, when the target is one' },
    detail: { type: 'string', description: 'what was asked (the mode, the reason), or what a stop made of the instance' },
    outcome: { type: 'string', enum: [...AUDIT_OUTCOMES] },
    httpStatus: { type: 'integer', description: 'the status the caller got' },
    error: { type: 'string', description: "a failure's error code (forbidden, refused, not_found, unavailable...)" },
    message: { type: 'string', description: "a failure's message" },
  },
  required: ['id', 'at', 'operator', 'role', 'action', 'target', 'instanceID', 'detail', 'outcome', 'httpStatus', 'error', 'message'],
} as const;

interface AuditQuerystring {
  instanceID?: number;
  operator?: string;
  action?: string;
  since?: string;
  before?: number;
  limit: number;
}

/** The audit trail of operator actions, newest first, a bounded page at a time. */
export default async function auditRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  // read: who stopped or paused what is part of watching the fleet, and the trail holds no secret
  // (token names, never tokens); the dashboard shows it on every instance page.
  app.get<{ Querystring: AuditQuerystring }>(
    '/audit',
    {
      onRequest: requireRole('read'),
      schema: {
        tags: ['audit'],
        summary: 'Operator actions (stops, manual control, endpoint pauses, fleet mode, Director triggers) with who, when and how they ended; newest first',
        description: `Filters are ANDed. A page holds at most \`limit\` entries (at most ${MAX_AUDIT_PAGE}); \`next\` is the \`before\` of the next page, null on the last.`,
        querystring: {
          type: 'object',
          properties: {
            instanceID: { type: 'integer', minimum: 1, maximum: MAX_ID, description: 'only actions on this instance' },
            operator: { type: 'string', minLength: 1, maxLength: 255, description: "only this operator (the token's name)" },
            action: { type: 'string', enum: [...AUDIT_ACTIONS], description: 'only this action' },
            since: {
              anyOf: [
                { type: 'string', format: 'date' },
                { type: 'string', format: 'date-time' },
              ],
              description: 'a day (YYYY-MM-DD, UTC) or an RFC 3339 time with its zone (2026-05-01T12:00:00Z): only actions from then on',
            },
            before: { type: 'integer', minimum: 1, maximum: MAX_ID, description: 'only entries older than this id (the `next` of the previous page)' },
            limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_PAGE, default: 100 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              entries: { type: 'array', items: entrySchema },
              next: { type: ['integer', 'null'], description: 'pass as `before` for older entries; null: this page was not full, there are no more' },
            },
            required: ['entries', 'next'],
          },
          ...errorReplies(),
        },
      },
    },
    async (request) => {
      const { instanceID, operator, action, before, limit } = request.query;
      const since = request.query.since === undefined ? undefined : sinceOf(request.query.since);
      let entries;
      try {
        entries = await AuditStore.of(deps.db).list({ instanceID, operator, action, since, before, limit });
      } catch (err) {
        throw unavailable('database', (err as Error)?.message ?? String(err));
      }
      return { entries, next: entries.length === limit ? entries[entries.length - 1].id : null };
    },
  );
}

function sinceOf(text: string): Date {
  const ms = Date.parse(text);
  if (!isCalendarDay(text.slice(0, 10)) || Number.isNaN(ms)) throw badRequest(`since: ${JSON.stringify(text)} is not a real day or time (querystring)`);
  return new Date(ms);
}
