import { createHash } from 'node:crypto';

/** OpenSSH's fingerprint of a host key blob: `SHA256:` and the unpadded base64 of its SHA-256 (as `ssh-keygen -lf` prints it). */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** True for a fingerprint in that form. */
export function isHostKeyFingerprint(text: unknown): text is string {
  return typeof text === 'string' && /^SHA256:[A-Za-z0-9+/]{43}$/.test(text);
}
