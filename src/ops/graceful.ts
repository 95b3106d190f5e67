import type { FastifyInstance } from 'fastify';

/**
 * Stops an API server without dropping a request: Fastify's close stops
 * accepting connections and waits for the requests in flight. A keep-alive
 * connection whose request ends during that wait would then be held open
 * until the client or the keep-alive timeout (72 s) ends it, longer than a
 * container's stop grace period: each becomes idle, and is closed, as soon
 * as its answer is sent.
 */
export async function closeApi(app: FastifyInstance, pollMs = 100): Promise<void> {
  const timer = setInterval(() => app.server.closeIdleConnections(), pollMs);
  try {
    await app.close();
  } finally {
    clearInterval(timer);
  }
}
