import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';

/** What the tests' fault-injecting HTTP proxies (EC2, OpenStack) share. */

/** Starts an HTTP server on a free port of 127.0.0.1 and returns its base URL. */
export async function listenLocal(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** Closes the server and cuts the connections it still holds. */
export async function closeServer(server: http.Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  server.close();
  await once(server, 'close').catch(() => undefined);
}

/**
 * Sends the request on to `upstream` and its answer back. With `loseAnswer`, the call runs upstream
 * but the connection is cut before the answer: its caller never hears.
 */
export function forward(req: http.IncomingMessage, res: http.ServerResponse, upstream: string, body: Buffer, loseAnswer = false): void {
  const target = new URL(upstream);
  const forwarded = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers });
  forwarded.on('response', (answer) => {
    if (loseAnswer) {
      answer.resume();
      answer.on('end', () => req.socket.destroy());
      return;
    }
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  forwarded.on('error', () => req.socket.destroy());
  forwarded.end(body);
}

/** The whole body of a request. */
export async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
