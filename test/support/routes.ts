import type { FastifyInstance } from 'fastify';

/** One method of one route, as Fastify has it (`:param`) and as OpenAPI names it (`{param}`). */
export interface RouteMethod {
  method: string;
  /** Fastify's path, e.g. /api/v1/vms/:instanceID/heartbeat */
  url: string;
  /** OpenAPI's path, e.g. /api/v1/vms/{instanceID}/heartbeat */
  path: string;
}

const NODE = /^(?<indent>[│ ]*)[├└]── (?<segment>.*?)(?: \((?<methods>[A-Z, ]+)\))?$/;

/**
 * Every route the app serves, read from Fastify's own route tree
 * (printRoutes), so that a route nobody documented is still found.
 */
export function fastifyRoutes(app: FastifyInstance): RouteMethod[] {
  const stack: string[] = [];
  const found: RouteMethod[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = NODE.exec(line);
    if (!match?.groups) continue;
    const depth = match.groups.indent.length / 4;
    const url = (stack[depth - 1] ?? '') + match.groups.segment;
    stack[depth] = url;
    stack.length = depth + 1;
    for (const method of (match.groups.methods ?? '').split(',').map((m) => m.trim()).filter(Boolean)) {
      found.push({ method, url, path: url.replace(/:(\w+)/g, '{$1}') });
    }
  }
  return found;
}

/** The operations of an OpenAPI document, method in upper case. */
export function openApiOperations(document: { paths: Record<string, Record<string, unknown>> }): { method: string; path: string; operation: any }[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}
