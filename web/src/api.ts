// Every datum of the dashboard comes from the authenticated API; the token lives in this tab only.

const TOKEN_KEY = 'vmdb.token';
export const API = '/api/v1';

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A refused or failed call, with the API's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Called when the API refuses the token (401): the page goes back to the sign-in form. */
let onUnauthorized: (message: string) => void = () => undefined;
export function whenUnauthorized(handler: (message: string) => void): void {
  onUnauthorized = handler;
}

type Query = Record<string, string | number | undefined>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(key, String(value));
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A JSON call to /api/v1 with the stored token (or `token`, when signing in). */
export async function call<T>(path: string, init: { method?: string; body?: unknown; query?: Query; token?: string } = {}): Promise<T> {
  const token = init.token ?? storedToken();
  if (!token) {
    onUnauthorized('Sign in with an operator token.');
    throw new ApiError(401, 'not signed in');
  }
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(withQuery(`${API}${path}`, init.query), {
      method: init.method ?? 'GET',
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, `The API cannot be reached (${(err as Error).message})`);
  }
  const body = (await response.json().catch(() => undefined)) as { message?: string } | undefined;
  if (response.status === 401 && init.token === undefined) onUnauthorized(body?.message ?? 'The token was refused.');
  if (!response.ok && !(response.status === 503 && body && 'results' in body)) {
    throw new ApiError(response.status, body?.message ?? `${response.status} ${response.statusText}`, body);
  }
  return body as T;
}

// The shapes of the answers the dashboard reads (docs/http-api.md).

export interface Me {
  name: string;
  role: 'read' | 'operate' | 'admin';
  mayOperate: boolean;
  temporalUi: boolean;
}

export interface Table {
  ParameterNames: string[];
  Records: unknown[][];
  TotalRecords?: number;
}

/** GET /instances: a Table with the next page's cursor and whether the total is exact. */
export interface InstancesTable extends Table {
  TotalRecords: number;
  TotalExact: boolean;
  Next: string | null;
}

export type Counters = Record<string, number>;

export interface InstanceDetail {
  Image: Record<string, unknown>;
  Instance: Record<string, unknown>;
  Workflow?: { ID: string; UIUrl: string | null };
  /** The life cycle's own record: the planned shutdown and a stop the endpoint keeps refusing. */
  Life?: { ShutdownAt: string | null; HaltPendingSince: string | null; HaltPendingReason: string };
}

/** One operator action on record (GET /audit). */
export interface AuditEntry {
  id: number;
  at: string;
  operator: string;
  role: string;
  action: string;
  target: string;
  instanceID: number | null;
  detail: string;
  outcome: 'succeeded' | 'failed';
  httpStatus: number;
  error: string;
  message: string;
}

export type StopResult = { OK: boolean; Value?: string; Message?: string; State?: string };

/** Rows of a `{ ParameterNames, Records }` table as objects keyed by parameter name. */
export function rowsOf(table: Table): Record<string, unknown>[] {
  return table.Records.map((record) => Object.fromEntries(table.ParameterNames.map((name, i) => [name, record[i]])));
}
