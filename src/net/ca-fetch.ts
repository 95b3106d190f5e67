import { readFileSync } from 'node:fs';
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { X509Certificate } from 'node:crypto';

/**
 * fetch that trusts a given CA. Global fetch verifies against Node's trust store but takes no CA
 * of its own without the undici package, so with a CA file the request goes through node:https,
 * which verifies against that CA alone (like curl --cacert). Verification is never turned off.
 */
export type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** The PEM certificates of a CA file; throws, naming `setting`, when it cannot be read or holds none. */
export function readCaFile(setting: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${setting}: cannot read ${path}: ${(err as Error).message}`);
  }
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  try {
    if (!first) throw new Error('no PEM certificate in it');
    new X509Certificate(first);
  } catch (err) {
    throw new Error(`${setting}: ${path} is not a PEM CA certificate: ${(err as Error).message}`);
  }
  return text;
}

/** Global fetch without a CA (the system's trust store); with one, requests that trust it alone. */
export function fetchTrusting(ca?: string | Buffer): Fetch {
  if (ca === undefined) return (url, init) => fetch(url, init);
  return (url, init) => requestTrusting(new URL(url), init ?? {}, ca);
}

const NO_BODY = new Set([204, 205, 304]);

function requestTrusting(url: URL, init: RequestInit, ca: string | Buffer): Promise<Response> {
  const signal = init.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (init.body !== undefined && init.body !== null && typeof init.body !== 'string') return Promise.reject(new TypeError('fetchTrusting sends string bodies only'));
  const body = init.body ?? undefined;
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  const method = init.method ?? 'GET';
  return new Promise<Response>((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const replyHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) replyHeaders.append(name, one);
      }
      const status = res.statusCode ?? 0;
      const empty = method === 'HEAD' || NO_BODY.has(status);
      if (empty) res.resume();
      resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage, headers: replyHeaders }));
    };
    // Redirects are not followed (node:http never does), which is what the callers ask for.
    const options = { method, headers };
    const req = url.protocol === 'https:' ? httpsRequest(url, { ...options, ca }, onResponse) : httpRequest(url, options, onResponse);
    const onAbort = () => req.destroy(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal?.removeEventListener('abort', onAbort));
    // As fetch does: the abort reason itself, else a TypeError whose cause is the network's error.
    req.once('error', (err) => reject(signal?.aborted ? signal.reason : new TypeError('fetch failed', { cause: err })));
    req.end(body);
  });
}

/** Node's codes for a certificate that does not verify. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * What is wrong with the server's certificate, for a failed request: "is not trusted (...)",
 * "has expired (...)", "does not name this host (...)"; undefined for any other failure.
 */
export function certificateProblem(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  const code = cause?.code;
  if (!code) return undefined;
  const detail = `${cause?.message ?? code} (${code})`;
  if (UNTRUSTED.has(code)) return `its certificate is not trusted: ${detail}`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `its certificate is not valid now: ${detail}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `its certificate does not name this host: ${detail}`;
  return undefined;
}
