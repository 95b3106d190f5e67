import type { FastifyError, FastifyInstance } from 'fastify';
import type { Failure, Result } from '../db/result';

/** The error reply of every route: `{ error, message }`, plus `state` for a refused transition. */
export interface ApiErrorBody {
  error: string;
  message: string;
  state?: string;
}

export const ERROR_SCHEMA_ID = 'ApiError';

export const errorSchema = {
  $id: ERROR_SCHEMA_ID,
  type: 'object',
  description: 'What went wrong; the message names the field for bad input',
  properties: {
    error: { type: 'string', description: 'short code: bad_request, unauthorized, forbidden, not_found, refused, no_lifecycle, not_ready, ended (a VM token of an instance that has ended; state: halt), rate_limited (with Retry-After), unavailable' },
    message: { type: 'string' },
    state: { type: 'string', description: 'for a refused transition: stop, halt or the current status' },
  },
  required: ['error', 'message'],
} as const;

/** An error a route throws on purpose; the error handler sends it as it is (and logs `detail`, which the caller never sees). */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly state?: string,
    readonly detail?: string,
  ) {
    super(message);
  }

  get body(): ApiErrorBody {
    return this.state === undefined ? { error: this.code, message: this.message } : { error: this.code, message: this.message, state: this.state };
  }
}

export const badRequest = (message: string) => new ApiError(400, 'bad_request', message);

/**
 * 503 for a database or Temporal that cannot be reached. The driver's message (addresses, ports,
 * error codes) goes to the server log only: it says nothing a caller can act on.
 */
export function unavailable(what: 'database' | 'Temporal', detail: string): ApiError {
  const subject = what === 'database' ? 'The database' : 'Temporal';
  return new ApiError(503, 'unavailable', `${subject} cannot be reached right now; retry later`, undefined, detail);
}

export function isTemporalUnavailable(failure: Failure): boolean {
  return failure.code === 'temporal_unavailable';
}

/** A facade or LifecycleClient failure as an HTTP error, by its code: the contract's table in one place. */
export function fromFailure(failure: Failure): ApiError {
  const message = failure.Message;
  switch (failure.code) {
    case 'database_unavailable':
      return unavailable('database', message);
    case 'temporal_unavailable':
      return unavailable('Temporal', message);
    case 'not_found':
      return new ApiError(404, 'not_found', message);
    case 'refused':
      return new ApiError(409, 'refused', message, failure.State);
    case 'no_lifecycle':
      return new ApiError(409, 'no_lifecycle', message);
    case 'not_ready':
      return new ApiError(409, 'not_ready', message, failure.State);
    default:
      return badRequest(message);
  }
}

/** The Value of an OK result; anything else is thrown as its HTTP error. */
export function unwrap<T>(result: Result<T>): T {
  if (!result.OK) throw fromFailure(result);
  return result.Value;
}

/** A thrown Temporal error other than "not found" (director routes): the server failed, not the request. */
export function temporalError(err: unknown): ApiError {
  return unavailable('Temporal', (err as Error)?.message ?? String(err));
}

/** What ajv reports (and Fastify passes on as FastifySchemaValidationError). */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
  /** With ajv's verbose option: the schema the failing keyword belongs to. */
  parentSchema?: { description?: unknown };
}

/** Where an ajv error points, as the field a person would name: `jobs`, `instanceIDs[2]`. */
function fieldOf(error: SchemaError): string {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
  const params = error.params;
  const child = (params.missingProperty ?? params.additionalProperty) as string | undefined;
  return child === undefined ? path : path ? `${path}.${child}` : child;
}

/** One sentence naming the field, from the first schema error (ajv runs with allErrors off). */
export function formatValidation(errors: SchemaError[], where: string): string {
  // For anyOf, ajv lists each branch's error before its own: the anyOf one says what was wanted.
  const error = errors.find((e) => e.keyword === 'anyOf') ?? errors[0];
  if (!error) return `${where} is invalid`;
  const field = fieldOf(error);
  const params = error.params;
  let what: string;
  switch (error.keyword) {
    case 'required':
      what = 'is required';
      break;
    case 'additionalProperties':
      what = 'is not a known field';
      break;
    case 'enum':
      what = `must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}`;
      break;
    case 'anyOf':
    case 'pattern': {
      // The schema's description says, in words, what a matching value looks like.
      const description = error.parentSchema?.description;
      what = typeof description === 'string' ? `must be ${description}` : (error.message ?? 'is invalid');
      break;
    }
    default:
      what = error.message ?? 'is invalid';
  }
  return field ? `${field} ${what} (${where})` : `${where} ${what}`;
}

const CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  409: 'conflict',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  431: 'headers_too_large',
};

/**
 * Every error becomes `{ error, message }`. Client errors keep their status
 * (Fastify's own messages are safe to show); anything unexpected is logged and
 * answered without its stack or message, which could carry internals.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError, request, reply) => {
    if (err instanceof ApiError) {
      if (err.detail !== undefined) request.log.warn({ status: err.statusCode, detail: err.detail }, err.message);
      return reply.code(err.statusCode).send(err.body);
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (err.validation) return reply.code(400).send({ error: 'bad_request', message: err.message });
    if (status >= 400 && status < 500) return reply.code(status).send({ error: CODES[status] ?? 'bad_request', message: err.message });
    request.log.error({ err }, 'unexpected error');
    return reply.code(500).send({ error: 'internal', message: 'Internal error; the server log has the details' });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0].slice(0, 200)}` });
  });
}
