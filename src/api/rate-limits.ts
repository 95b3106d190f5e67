import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RateLimitSettings } from '../config/settings';
import { ApiError } from './errors';

/**
 * The API's rate limits (@fastify/rate-limit, counted in this process, per minute):
 * - a caller that authenticated is counted by who it is (operator name, VM InstanceID), never by
 *   its address: a fleet behind one proxy address, or a benchmark on 127.0.0.1, shares no budget;
 * - a request without a token (probes, scrapes, docs, dashboard files) by its client address;
 * - failed authentications by client address, strictest: past the limit each further failure
 *   answers 429 and restarts the window, so a client that keeps guessing stays throttled. A valid
 *   token from that address still gets through.
 */
export interface RateLimits {
  /** Before a 401 is sent: throws the 429 instead once the address is over its failures. */
  authFailed(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** An onRequest hook for after authentication: counts the request by its principal, or by its address. */
  perCaller(request: FastifyRequest, reply: FastifyReply): Promise<void>;
}

const MINUTE_MS = 60_000;
const NONE: RateLimits = { authFailed: async () => undefined, perCaller: async () => undefined };

export function principalKey(request: FastifyRequest): string | undefined {
  const principal = request.principal;
  if (!principal) return undefined;
  return principal.kind === 'operator' ? `operator:${principal.name}` : `vm:${principal.instanceID}`;
}

/** Registers the plugin (no limit of its own on any route) and returns the three limits; `false`: none. */
export async function installRateLimits(app: FastifyInstance, settings: RateLimitSettings): Promise<RateLimits> {
  if (!settings) return NONE;
  await app.register(rateLimit, { global: false });

  // Each limiter has its own counters; `cache` bounds how many keys each keeps (the least recent go first).
  const limiter = (max: number, key: (request: FastifyRequest) => string, more: Partial<RateLimitOptions> = {}) => {
    const options: RateLimitOptions = { max, timeWindow: MINUTE_MS, keyGenerator: key, ...more };
    const check = app.createRateLimit(options);
    return async (request: FastifyRequest, reply: FastifyReply, message: string) => {
      const result = await check(request);
      if (result.isAllowed || !result.isExceeded) return;
      const seconds = Math.max(1, result.ttlInSeconds);
      reply.header('retry-after', String(seconds));
      throw new ApiError(429, 'rate_limited', `${message}; retry in ${seconds} s`);
    };
  };
  const perToken = limiter(settings.perToken, (request) => principalKey(request) ?? request.ip, { cache: 100_000 });
  const perAddress = limiter(settings.perAddress, (request) => request.ip, { cache: 20_000 });
  const failures = limiter(settings.authFailures, (request) => request.ip, { cache: 20_000, continueExceeding: true });

  return {
    authFailed: (request, reply) => failures(request, reply, 'Too many failed authentications from this address'),
    perCaller: (request, reply) =>
      request.principal ? perToken(request, reply, 'Too many requests with this token') : perAddress(request, reply, 'Too many requests from this address'),
  };
}
