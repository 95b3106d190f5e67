import { isLoopback } from '../ops/metrics-access';

/**
 * Whether a client may send its token over plain http: to this machine (127.0.0.0/8, ::1,
 * localhost) yes, since nothing crosses a network; elsewhere only when the operator says so.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || isLoopback(host);
}

/**
 * Why `url` may not be used as it is, or undefined. `source` names where the url came from,
 * `allowance` how to allow plain http anyway (a setting or a flag).
 */
export function plainHttpProblem(url: URL, source: string, allowance: string): string | undefined {
  if (url.protocol !== 'http:' || isLoopbackHost(url.hostname)) return undefined;
  return `${source} is plain http to ${url.host}, which would send the token unencrypted: use https://, or set ${allowance} to allow it (a private network, a test)`;
}
