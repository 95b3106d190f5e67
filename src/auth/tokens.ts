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

const LEGACY_PREFIX = 'vm.';
const VM_PREFIX = 'vm2.';
const KEY_ID = /^[A-Za-z0-9_-]{8}$/;

/**
 * A secret's key id: carried in the tokens it signs, so that the API picks the right one of the
 * secrets it holds (the current one and the previous ones, VMDB_TOKEN_SECRETS) and a rotation does
 * not break the VMs that are running. A digest: it says nothing about the secret.
 */
export function tokenKeyId(secret: string): string {
  return createHash('sha256').update(`vmdb-token-key:${secret}`, 'utf8').digest('base64url').slice(0, 8);
}

function signature(secret: string, claim: string): string {
  return createHmac('sha256', secret).update(claim).digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What a VM token says, once its signature holds. */
export interface VmTokenClaim {
  instanceID: number;
  /** The key id of the secret that signed it; absent for a token made before key ids (unbound). */
  keyId?: string;
  /** True when the token was made for the instance of this name (always true for a token made before key ids). */
  boundTo(instanceName: string): boolean;
}

/**
 * The secrets VM tokens are signed with: the first makes new tokens, all of them check tokens.
 * A token `vm2.<keyId>.<InstanceID>.<HMAC of InstanceID and instance name>` is valid for that
 * instance only, and a reused InstanceID (another database) does not revive it.
 */
export class VmTokenKeys {
  private readonly secrets = new Map<string, string>();
  readonly currentKeyId: string;

  constructor(secrets: readonly string[]) {
    const given = secrets.filter((secret) => secret !== '');
    if (!given.length) throw new Error('A token secret is needed to make VM tokens (VMDB_TOKEN_SECRET)');
    for (const secret of given) if (!this.secrets.has(tokenKeyId(secret))) this.secrets.set(tokenKeyId(secret), secret);
    this.currentKeyId = tokenKeyId(given[0]);
  }

  /** The token of one instance's VM, signed with the current secret. */
  make(instanceID: number, instanceName: string): string {
    if (!Number.isSafeInteger(instanceID) || instanceID < 0) throw new Error(`Not an InstanceID: ${instanceID}`);
    const secret = this.secrets.get(this.currentKeyId)!;
    return `${VM_PREFIX}${this.currentKeyId}.${instanceID}.${signature(secret, `vm2:${instanceID}:${instanceName}`)}`;
  }

  /** The claim of a VM token whose form and key are known, or undefined (the name is checked by `boundTo`). */
  read(token: string): VmTokenClaim | undefined {
    if (token.startsWith(VM_PREFIX)) {
      const [keyId, id, signed, ...rest] = token.slice(VM_PREFIX.length).split('.');
      if (rest.length || !KEY_ID.test(keyId ?? '') || !/^\d{1,15}$/.test(id ?? '') || !signed) return undefined;
      const secret = this.secrets.get(keyId);
      if (!secret) return undefined;
      const instanceID = Number(id);
      return { instanceID, keyId, boundTo: (name) => sameText(signature(secret, `vm2:${instanceID}:${name}`), signed) };
    }
    if (token.startsWith(LEGACY_PREFIX)) {
      const [id, signed, ...rest] = token.slice(LEGACY_PREFIX.length).split('.');
      if (rest.length || !/^\d{1,15}$/.test(id ?? '') || !signed) return undefined;
      const instanceID = Number(id);
      for (const secret of this.secrets.values()) {
        if (sameText(signature(secret, `vm:${instanceID}`), signed)) return { instanceID, boundTo: () => true };
      }
    }
    return undefined;
  }
}

/** The token of one instance's VM (see VmTokenKeys), made with `secret`. */
export function makeVmToken(secret: string, instanceID: number, instanceName: string): string {
  return new VmTokenKeys([secret]).make(instanceID, instanceName);
}

export function isVmToken(token: string): boolean {
  return token.startsWith(VM_PREFIX) || token.startsWith(LEGACY_PREFIX);
}
