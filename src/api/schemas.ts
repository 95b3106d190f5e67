import { FLOAT_MAX, UINT32_MAX } from '../../entities/heartbeat';
import { ERROR_SCHEMA_ID } from './errors';

/** JSON schemas shared by the route files. Request parts never use $ref: the validators do not share schemas. */

export const MAX_ID = Number.MAX_SAFE_INTEGER;

export const instanceIDParams = {
  type: 'object',
  properties: { instanceID: { type: 'integer', minimum: 1, maximum: MAX_ID, description: 'InstanceID' } },
  required: ['instanceID'],
  additionalProperties: false,
} as const;

export const count = (description: string, max = UINT32_MAX) => ({ type: 'integer', minimum: 0, maximum: max, description }) as const;
export const figure = (description: string) => ({ type: 'number', minimum: 0, maximum: FLOAT_MAX, description }) as const;

const errorRef = { $ref: `${ERROR_SCHEMA_ID}#` } as const;

/** The error replies a route can give, documented once. */
export function errorReplies(...codes: number[]): Record<number, typeof errorRef> {
  return Object.fromEntries([400, 401, 403, 429, 503, ...codes].map((code) => [code, errorRef]));
}

/** 429 with Retry-After, which any route can answer while rate limits are on (src/api/rate-limits.ts). */
export const rateLimitedReply = { 429: errorRef } as const;

/** `{ ParameterNames, Records }`, the DIRAC shape of tabular reads. */
export const table = {
  type: 'object',
  properties: {
    ParameterNames: { type: 'array', items: { type: 'string' } },
    Records: { type: 'array', items: { type: 'array' } },
  },
} as const;

/**
 * A query string of known parameters plus filters: any other key is a column
 * (`Status`, `inst.Status`, `img.Name`) whose comma-separated values are ORed.
 */
export function withFilters<P extends Record<string, unknown>>(properties: P) {
  return {
    type: 'object',
    properties,
    additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  } as const;
}
