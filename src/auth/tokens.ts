import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Operator roles, weakest first: each role may do what the ones before it may. */
export const ROLES = ['read', 'operate', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

/** How operator tokens are stored: SHA-256 hex, never the token itself. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export interface OperatorToken {
  name: string;
  role: Role;
  /** hashToken(token) */
  sha256: string;
}

/** Finds the operator a token belongs to; every stored hash is compared, in constant time. */
export function findOperator(tokens: readonly OperatorToken[], presented: string): OperatorToken | undefined {
  const digest = Buffer.from(hashToken(presented), 'hex');
  let found: OperatorToken | undefined;
  for (const candidate of tokens) {
    const stored = Buffer.from(candidate.sha256, 'hex');
    if (stored.length === digest.length && timingSafeEqual(stored, digest)) found ??= candidate;
  }
  return found;
}

const VM_PREFIX = 'vm.';

function vmSignature(secret: string, instanceID: number): string {
  return createHmac('sha256', secret).update(`vm:${instanceID}`).digest('base64url');
}

/** The token of one instance's VM: `vm.<InstanceID>.<HMAC>`, valid for that instance only. */
export function makeVmToken(secret: string, instanceID: number): string {
  if (!secret) throw new Error('A token secret is needed to make VM tokens (VMDB_TOKEN_SECRET)');
  return `${VM_PREFIX}${instanceID}.${vmSignature(secret, instanceID)}`;
}

/** The InstanceID a VM token was made for, or undefined when it is not a valid VM token. */
export function verifyVmToken(secret: string, token: string): number | undefined {
  if (!secret || !token.startsWith(VM_PREFIX)) return undefined;
  const [id, signature, ...rest] = token.slice(VM_PREFIX.length).split('.');
  if (rest.length || !/^\d{1,15}$/.test(id ?? '') || !signature) return undefined;
  const instanceID = Number(id);
  const expected = Buffer.from(vmSignature(secret, instanceID));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given) ? instanceID : undefined;
}

export function isVmToken(token: string): boolean {
  return token.startsWith(VM_PREFIX);
}
