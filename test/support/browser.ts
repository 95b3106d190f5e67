import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium, which npm test installs when it is missing; VMDB_TEST_CHROMIUM names another. */
export const CHROMIUM = process.env.VMDB_TEST_CHROMIUM || '/usr/bin/chromium';

/** Screenshots and other test artifacts (gitignored). */
export const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts');

export function artifactPath(...parts: string[]): string {
  const file = join(ARTIFACTS, ...parts);
  mkdirSync(join(file, '..'), { recursive: true });
  return file;
}

/** A headless Chromium; throws a message that says how to get one when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; npm test does) or set VMDB_TEST_CHROMIUM`);
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Polls `probe` until it stops throwing (the page refreshes on its own); rethrows its last error at the deadline. */
export async function eventually<T>(probe: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
