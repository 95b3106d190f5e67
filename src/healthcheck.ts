#!/usr/bin/env node
/**
 * `node dist/src/healthcheck.js <url> [timeout-ms]`: exits 0 when the url
 * answers 2xx within the timeout (default 5000 ms), 1 otherwise, printing the
 * answer. For container HEALTHCHECKs: the runtime image has no curl or wget.
 */

export interface ProbeResult {
  ok: boolean;
  status?: number;
  body: string;
}

export async function probeUrl(url: string, timeoutMs = 5000): Promise<ProbeResult> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
    const body = (await res.text()).trim();
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { ok: false, body: e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message) };
  }
}

if (require.main === module) {
  const [url, timeout] = process.argv.slice(2);
  if (!url || (timeout !== undefined && !/^\d+$/.test(timeout))) {
    process.stderr.write('usage: healthcheck <url> [timeout-ms]\n');
    process.exit(2);
  }
  probeUrl(url, timeout === undefined ? undefined : Number(timeout)).then((result) => {
    process.stdout.write(`${result.status ?? 'unreachable'} ${result.body}\n`);
    process.exitCode = result.ok ? 0 : 1;
  });
}
