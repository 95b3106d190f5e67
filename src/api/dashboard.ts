import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../ops/log';

/** Where `npm run build` puts the dashboard (vite, web/vite.config.ts): dist/web beside dist/src. */
export const DEFAULT_DASHBOARD_DIR = join(__dirname, '..', '..', 'web');

/**
 * Only this origin's own files: the page has no inline script or style and loads nothing from
 * elsewhere; every datum comes from /api/v1 with the operator's token.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

export const DASHBOARD_MISSING =
  'The dashboard is not built: run `npm run build` (it builds the pages into dist/web). The API under /api/v1 works without it.';

/**
 * The fleet dashboard at `/`: the page shell and its assets are public, as they hold no data.
 * Encapsulated (not fastify-plugin), so its headers apply to its own routes only.
 */
export async function installDashboard(app: FastifyInstance, options: { dir?: string; log?: Logger }): Promise<void> {
  const dir = options.dir ?? DEFAULT_DASHBOARD_DIR;
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });
  if (!existsSync(join(dir, 'index.html'))) {
    options.log?.warn({ dir }, DASHBOARD_MISSING);
    app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.code(503).type('text/plain; charset=utf-8').send(`${DASHBOARD_MISSING}\n`));
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    // One route per built file, read once: unknown paths stay the API's 404, and /api/v1 is untouched.
    wildcard: false,
    index: ['index.html'],
    cacheControl: false,
    setHeaders: (res, path) => {
      // Vite names assets by their content hash; the shell must be re-read to pick up a new build.
      res.header('cache-control', path.includes(`${join(dir, 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
}
