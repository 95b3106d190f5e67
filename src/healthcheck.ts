#!/usr/bin/env node
/**
 * `node dist/src/healthcheck.js <url> [timeout-ms]`: exits 0 when the url
 * answers 2xx within the timeout (default 5000 ms), 1 otherwise, printing the
 * answer. For container HEALTHCHECKs: the runtime image has no curl or wget.
 * In the API's container with VMDB_API_TLS_CERT set, a loopback url is probed
 * over https, trusting exactly that certificate (it names the public host, not 127.0.0.1).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { isLoopbackHost } from './net/plain-http';

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

/** GET over https accepting only the certificate of `certFile` (its first one), whatever its names and issuer. */
export function probePinned(url: string, certFile: string, timeoutMs = 5000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let leaf: X509Certificate;
    try {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(readFileSync(certFile, 'utf8'))?.[0];
      leaf = new X509Certificate(pem ?? '');
    } catch (err) {
      resolve({ ok: false, body: `cannot read the certificate ${certFile}: ${(err as Error).message}` });
      return;
    }
    const req = get(
      url,
      {
        // The certificate itself is the trust anchor; the identity check compares it instead of a name.
        ca: leaf.toString(),
        allowPartialTrustChain: true,
        checkServerIdentity: (_host, cert) => (cert.fingerprint256 === leaf.fingerprint256 ? undefined : new Error('not the certificate of VMDB_API_TLS_CERT')),
        headers: { accept: 'application/json' },
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, status: res.statusCode, body: body.trim() }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, body: err.code ?? err.message }));
  });
}

/** The url to probe, and the certificate to pin when the API this container runs serves HTTPS. */
export function probeTarget(raw: string, env: Record<string, string | undefined> = process.env): { url: string; pinned?: string } {
  const certFile = env.VMDB_API_TLS_CERT || undefined;
  const url = URL.canParse(raw) ? new URL(raw) : undefined;
  if (!certFile || !url || !isLoopbackHost(url.hostname)) return { url: raw };
  url.protocol = 'https:';
  return { url: url.href, pinned: certFile };
}

if (require.main === module) {
  const [url, timeout] = process.argv.slice(2);
  if (!url || (timeout !== undefined && !/^\d+$/.test(timeout))) {
    process.stderr.write('usage: healthcheck <url> [timeout-ms]\n');
    process.exit(2);
  }
  const target = probeTarget(url);
  const ms = timeout === undefined ? undefined : Number(timeout);
  (target.pinned ? probePinned(target.url, target.pinned, ms) : probeUrl(target.url, ms)).then((result) => {
    process.stdout.write(`${result.status ?? 'unreachable'} ${result.body}\n`);
    process.exitCode = result.ok ? 0 : 1;
  });
}
