import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the worker's readiness depends on; see readiness() in src/ops/readiness.ts. */
export type ReadinessProbe = () => Promise<{ status: 'ready' | 'not ready' } & Record<string, unknown>>;

export interface WorkerHealthServer {
  server: Server;
  /** http://host:port */
  url: string;
  close(): Promise<void>;
}

/**
 * The worker's health port (VMDB_WORKER_HEALTH_PORT), for container health
 * checks and orchestrators:
 * - `GET /healthz`: the process is up, always 200.
 * - `GET /readyz`: 200 when `probe` says ready (database, schema, Temporal,
 *   and the worker polling its task queue), 503 with the report otherwise.
 */
export async function serveWorkerHealth(options: { host: string; port: number; probe: ReadinessProbe }): Promise<WorkerHealthServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method_not_allowed', message: 'GET /healthz or /readyz' });
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      options.probe().then(
        (report) => send(report.status === 'ready' ? 200 : 503, report),
        (err: Error) => send(503, { status: 'not ready', failed: ['probe'], message: err.message }),
      );
      return;
    }
    send(404, { error: 'not_found', message: 'GET /healthz or /readyz' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
