import { readFileSync } from 'node:fs';
import { type OperatorToken, ROLES, type Role, hashToken } from '../auth/tokens';
import {
  DEFAULT_API_HOST,
  DEFAULT_API_PORT,
  type RateLimitSettings,
  type TrustProxy,
  adminTokenProblem,
  httpUrlProblem,
  portProblem,
  readSettings,
  settingsSource,
  tokenSecretProblem,
  tokenSecretRing,
} from '../config/settings';

/** What the API server needs from its environment. */
export interface ApiConfig {
  operators: OperatorToken[];
  tokenSecret: string;
  /** Secrets whose VM tokens are still accepted after a rotation (VMDB_TOKEN_SECRETS). */
  previousTokenSecrets: string[];
  host: string;
  port: number;
  /** VMDB_TEMPORAL_UI_URL: where the dashboard links each instance's workflow; undefined: no links. */
  temporalUiUrl?: string;
  /** VMDB_METRICS_TOKEN: the bearer token of /metrics; undefined: loopback callers only. */
  metricsToken?: string;
  /** VMDB_RATE_LIMITS and VMDB_RATE_LIMIT_*: on, with their defaults, unless turned off. */
  rateLimits: RateLimitSettings;
  /** VMDB_API_TLS_CERT and VMDB_API_TLS_KEY: HTTPS from these files; undefined: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** VMDB_TRUST_PROXY: whose X-Forwarded-For gives the client's address (false: nobody's). */
  trustProxy: TrustProxy;
}

/** The API's settings that settings.ts parses and checks whole. */
const TYPED = [
  'VMDB_METRICS_TOKEN',
  'VMDB_RATE_LIMITS',
  'VMDB_RATE_LIMIT_PER_TOKEN',
  'VMDB_RATE_LIMIT_PER_ADDRESS',
  'VMDB_RATE_LIMIT_AUTH_FAILURES',
  'VMDB_API_TLS_CERT',
  'VMDB_API_TLS_KEY',
  'VMDB_TRUST_PROXY',
];

export { DEFAULT_API_HOST, DEFAULT_API_PORT };

/** Thrown with every problem of the configuration at once, one per line. */
export class ApiConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid API configuration:\n- ${problems.join('\n- ')}`);
  }
}

/**
 * Reads VMDB_OPERATOR_TOKENS_FILE (JSON `[{ name, role, sha256 }]`) and/or
 * VMDB_ADMIN_TOKEN (a plain token, hashed here, role admin), VMDB_TOKEN_SECRET,
 * VMDB_API_HOST, VMDB_API_PORT, VMDB_METRICS_TOKEN, the rate limits, TLS and VMDB_TRUST_PROXY, from the environment and VMDB_CONFIG_FILE
 * (src/config/settings.ts checks the values; this adds the tokens file's content).
 */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env, readFile: (path: string) => string = (path) => readFileSync(path, 'utf8')): ApiConfig {
  const source = settingsSource(env);
  const problems: string[] = source.problems.map((p) => p.message);
  const operators: OperatorToken[] = [];
  const value = (name: string): string | undefined => source.values[name];

  const file = value('VMDB_OPERATOR_TOKENS_FILE');
  if (file) {
    let text: string | undefined;
    try {
      text = readFile(file);
    } catch (err) {
      problems.push(`VMDB_OPERATOR_TOKENS_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
    if (text !== undefined) operators.push(...parseOperators(text, `VMDB_OPERATOR_TOKENS_FILE (${file})`, problems));
  }

  const admin = value('VMDB_ADMIN_TOKEN');
  if (admin) {
    const problem = adminTokenProblem(admin);
    if (problem) problems.push(problem);
    else operators.push({ name: 'admin (VMDB_ADMIN_TOKEN)', role: 'admin', sha256: hashToken(admin) });
  }
  if (!file && !admin) problems.push('No operator token: set VMDB_OPERATOR_TOKENS_FILE and/or VMDB_ADMIN_TOKEN');

  const ring = tokenSecretRing(value('VMDB_TOKEN_SECRET'), value('VMDB_TOKEN_SECRETS'));
  const tokenSecret = ring.current ?? '';
  const previousTokenSecrets = ring.previous;
  for (const secret of [tokenSecret, ...previousTokenSecrets]) {
    const secretProblem = tokenSecretProblem(secret);
    if (secretProblem) problems.push(value('VMDB_TOKEN_SECRETS') === undefined ? secretProblem : `VMDB_TOKEN_SECRETS: ${secretProblem}`);
  }

  const host = value('VMDB_API_HOST') || DEFAULT_API_HOST;
  let port = DEFAULT_API_PORT;
  const rawPort = value('VMDB_API_PORT');
  if (rawPort) {
    const problem = portProblem('VMDB_API_PORT', rawPort);
    if (problem) problems.push(problem);
    else port = Number(rawPort);
  }

  const temporalUiUrl = value('VMDB_TEMPORAL_UI_URL');
  const uiProblem = temporalUiUrl === undefined ? undefined : httpUrlProblem('VMDB_TEMPORAL_UI_URL', temporalUiUrl);
  if (uiProblem) problems.push(uiProblem);

  const typed = readSettings(env);
  for (const problem of typed.problems) if (TYPED.includes(problem.name)) problems.push(problem.message);

  if (problems.length) throw new ApiConfigError(problems);
  const { metricsToken, rateLimits, tls, trustProxy } = typed.settings.api;
  return { operators, tokenSecret, previousTokenSecrets, host, port, temporalUiUrl, metricsToken, rateLimits, tls, trustProxy };
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
