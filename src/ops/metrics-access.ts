import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * Who may scrape a /metrics endpoint (the API's and the worker's own).
 *
 * With VMDB_METRICS_TOKEN set: whoever presents `Authorization: Bearer <it>`, from anywhere.
 * Unset: callers on this machine only. Metrics name endpoints, images, pods and the fleet's
 * size, which strangers have no business reading; loopback keeps `npm start` and a local
 * `curl` working with nothing to configure.
 */
export type MetricsAccess = 'allowed' | 'unauthorized' | 'forbidden';

export const METRICS_TOKEN_SETTING = 'VMDB_METRICS_TOKEN';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Equal tokens, compared in constant time (the hashes have one length whatever was sent). */
export function sameToken(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

/** 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(plain) === 4) return plain.startsWith('127.');
  return plain === '::1' || plain === '0:0:0:0:0:0:0:1';
}

export function metricsAccess(token: string | undefined, authorization: string | undefined, remoteAddress: string | undefined): MetricsAccess {
  if (token === undefined) return isLoopback(remoteAddress) ? 'allowed' : 'forbidden';
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  return match && sameToken(token, match[1]) ? 'allowed' : 'unauthorized';
}

export const METRICS_MESSAGES: Record<Exclude<MetricsAccess, 'allowed'>, string> = {
  unauthorized: 'Authorization: Bearer <the metrics token> is required',
  forbidden: `/metrics answers only callers on this machine while ${METRICS_TOKEN_SETTING} is unset; set it to scrape from elsewhere`,
};
