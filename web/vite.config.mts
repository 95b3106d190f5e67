import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard: web/ built into dist/web, which the API serves at / (src/api/dashboard.ts).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    // The page's Content-Security-Policy allows no inline code: keep every script and style a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    // `npx vite web` during development: the API runs on its own port; pages call /api/v1.
    proxy: { '/api': process.env.VMDB_API_URL ?? 'http://127.0.0.1:8080' },
  },
});
