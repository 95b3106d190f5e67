import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors';

/** A route's url (`/api/v1/vms/:instanceID/heartbeat`, `/docs/*`) as a test for request paths. */
function pathTest(url: string): RegExp {
  const parts = url.split(/(:\w+|\*)/).map((part) => {
    if (part === '*') return '.*';
    if (part.startsWith(':')) return '[^/]+';
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('')}$`);
}

/** How much of a route's url is not fixed text: a wildcard more than any number of parameters. */
function vaguenessOf(url: string): number {
  return (url.match(/:\w+/g)?.length ?? 0) + (url.includes('*') ? 1000 : 0);
}

/**
 * A path that exists, asked with a method it does not have, gets 405 with an
 * Allow header (RFC 9110) instead of a 404 that would say the path is wrong.
 * Runs after authentication: strangers learn nothing about /api/v1.
 */
export function installMethodNotAllowed(app: FastifyInstance): void {
  const routes: { test: RegExp; method: string; vagueness: number }[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ test: pathTest(route.url), method, vagueness: vaguenessOf(route.url) });
  });
  app.addHook('onRequest', async (request, reply) => {
    // A request routed to a fixed path is where it belongs; only unknown paths and parameters need a look.
    const routed = request.is404 ? undefined : vaguenessOf(request.routeOptions.url ?? '');
    if (routed === 0) return;
    const path = request.url.split('?')[0];
    const matching = routes.filter((r) => r.test.test(path));
    // The resource is the most specific route that matches: GET /instances/stop is not
    // GET /instances/:instanceID with instanceID "stop", but a method /instances/stop lacks.
    const best = Math.min(...matching.map((r) => r.vagueness));
    if (routed !== undefined && routed <= best) return;
    const allowed = [...new Set(matching.filter((r) => r.vagueness === best).map((r) => r.method))];
    if (!allowed.length) return;
    reply.header('Allow', allowed.join(', '));
    throw new ApiError(405, 'method_not_allowed', `${request.method.slice(0, 20)} is not allowed here; allowed: ${allowed.join(', ')}`);
  });
}
