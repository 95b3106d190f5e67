import { readFileSync } from 'node:fs';
import { type OperatorToken, ROLES, type Role, hashToken } from '../auth/tokens';

/** What the API server needs from its environment. */
export interface ApiConfig {
  operators: OperatorToken[];
  tokenSecret: string;
  host: string;
  port: number;
}

export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_PORT = 8080;
// Shorter than this is guessable; newSecret() and a 32-byte random token are far longer.
const MIN_SECRET_LENGTH = 16;

/** Thrown with every problem of the configuration at once, one per line. */
export class ApiConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid API configuration:\n- ${problems.join('\n- ')}`);
  }
}

/**
 * Reads VMDB_OPERATOR_TOKENS_FILE (JSON `[{ name, role, sha256 }]`) and/or
 * VMDB_ADMIN_TOKEN (a plain token, hashed here, role admin), VMDB_TOKEN_SECRET,
 * VMDB_API_HOST and VMDB_API_PORT.
 */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env, readFile: (path: string) => string = (path) => readFileSync(path, 'utf8')): ApiConfig {
  const problems: string[] = [];
  const operators: OperatorToken[] = [];

  const file = env.VMDB_OPERATOR_TOKENS_FILE;
  if (file) {
    let text: string | undefined;
    try {
      text = readFile(file);
    } catch (err) {
      problems.push(`VMDB_OPERATOR_TOKENS_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
    if (text !== undefined) operators.push(...parseOperators(text, `VMDB_OPERATOR_TOKENS_FILE (${file})`, problems));
  }

  const admin = env.VMDB_ADMIN_TOKEN;
  if (admin !== undefined && admin !== '') {
    if (admin.length < MIN_SECRET_LENGTH || /\s/.test(admin)) problems.push(`VMDB_ADMIN_TOKEN must be at least ${MIN_SECRET_LENGTH} characters without spaces`);
    else operators.push({ name: 'admin (VMDB_ADMIN_TOKEN)', role: 'admin', sha256: hashToken(admin) });
  }
  if (!file && !admin) problems.push('No operator token: set VMDB_OPERATOR_TOKENS_FILE and/or VMDB_ADMIN_TOKEN');

  const tokenSecret = env.VMDB_TOKEN_SECRET ?? '';
  if (!tokenSecret) problems.push('VMDB_TOKEN_SECRET is not set: it signs the VM tokens (make one with: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))")');
  else if (tokenSecret.length < MIN_SECRET_LENGTH) problems.push(`VMDB_TOKEN_SECRET must be at least ${MIN_SECRET_LENGTH} characters`);

  const host = env.VMDB_API_HOST || DEFAULT_API_HOST;
  let port = DEFAULT_API_PORT;
  if (env.VMDB_API_PORT) {
    const raw = env.VMDB_API_PORT;
    if (/^\d{1,5}$/.test(raw) && Number(raw) <= 65535) port = Number(raw);
    else problems.push(`VMDB_API_PORT must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  }

  if (problems.length) throw new ApiConfigError(problems);
  return { operators, tokenSecret, host, port };
}

/** The operator tokens of a tokens file; problems are collected with the entry's position. */
export function parseOperators(text: string, source: string, problems: string[]): OperatorToken[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    problems.push(`${source}: not JSON: ${(err as Error).message}`);
    return [];
  }
  if (!Array.isArray(data)) {
    problems.push(`${source}: must be a JSON array of { name, role, sha256 }`);
    return [];
  }
  const operators: OperatorToken[] = [];
  const names = new Set<string>();
  data.forEach((entry: unknown, i) => {
    const where = `${source}: entry ${i}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      problems.push(`${where} must be an object { name, role, sha256 }`);
      return;
    }
    const { name, role, sha256, ...rest } = entry as Record<string, unknown>;
    const before = problems.length;
    if (typeof name !== 'string' || !name.trim()) problems.push(`${where}: name must be a non-empty string`);
    else if (names.has(name)) problems.push(`${where}: name ${JSON.stringify(name)} is used twice`);
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) problems.push(`${where}: role must be one of ${ROLES.join(', ')}`);
    if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256)) problems.push(`${where}: sha256 must be the 64 hex digits of SHA-256(token), not the token itself`);
    for (const key of Object.keys(rest)) problems.push(`${where}: unknown field ${JSON.stringify(key)}`);
    if (problems.length > before) return;
    names.add(name as string);
    operators.push({ name: name as string, role: role as Role, sha256: (sha256 as string).toLowerCase() });
  });
  return operators;
}
