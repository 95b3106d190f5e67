import { type Fetch, certificateProblem, fetchTrusting, readCaFile } from '../net/ca-fetch';
import { plainHttpProblem } from '../net/plain-http';
import { CliError, EXIT } from './errors';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_SECONDS = 60;

export interface ApiSettings {
  /** Base url of the service (VMDB_API_URL, --api-url). */
  apiUrl: string;
  /** Operator token (VMDB_TOKEN, --token). */
  token?: string;
  /** Seconds to wait for a reply. */
  timeoutSeconds: number;
  /** The CA the API's certificate must chain to, instead of the system's (VMDB_CA_FILE, --ca-file). */
  caFile?: string;
  /** Plain http to another machine is allowed (VMDB_ALLOW_HTTP=true, --allow-http). */
  allowHttp?: boolean;
}

/** The error body of the API: `{ error, message, state? }`. */
export interface ApiErrorBody {
  error?: string;
  message?: string;
  state?: string;
}

/** The API answered, but not with a 2xx. */
export class ApiError extends CliError {
  constructor(
    exitCode: typeof EXIT.FAILED | typeof EXIT.UNREACHABLE,
    message: string,
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
  ) {
    super(exitCode, message);
    this.name = 'ApiError';
  }
}

type Query = Record<string, string | number | undefined>;

/** A small client of the vmdb HTTP API (docs/http-api.md) over global fetch, or node:https with a CA file. */
export class ApiClient {
  private readonly base: URL;
  private readonly fetch: Fetch;

  constructor(readonly settings: ApiSettings) {
    let base: URL;
    try {
      base = new URL(settings.apiUrl);
    } catch {
      throw new CliError(EXIT.USAGE, `API url "${settings.apiUrl}" is not a valid url (for example ${DEFAULT_API_URL})`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new CliError(EXIT.USAGE, `API url "${settings.apiUrl}" must start with http:// or https://`);
    }
    if (base.username || base.password) {
      throw new CliError(EXIT.USAGE, 'API url must not carry credentials; use --token or VMDB_TOKEN');
    }
    const plain = settings.allowHttp ? undefined : plainHttpProblem(base, `API url "${base.origin}"`, 'VMDB_ALLOW_HTTP=true (or --allow-http)');
    if (plain) throw new CliError(EXIT.USAGE, plain);
    try {
      this.fetch = fetchTrusting(settings.caFile === undefined ? undefined : readCaFile('--ca-file/VMDB_CA_FILE', settings.caFile));
    } catch (err) {
      throw new CliError(EXIT.USAGE, (err as Error).message);
    }
    // Keep any path prefix (a service behind a reverse proxy at /vmdb/).
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    base.search = '';
    base.hash = '';
    this.base = base;
  }

  /** Where the client sends requests (for messages). */
  get origin(): string {
    return this.base.href.replace(/\/$/, '');
  }

  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, {}, body);
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, {}, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path, {});
  }

  private url(path: string, query: Query): URL {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  private async request<T>(method: string, path: string, query: Query, body?: unknown): Promise<T> {
    const url = this.url(path, query);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.settings.token) headers.authorization = `Bearer ${this.settings.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.settings.timeoutSeconds * 1000),
        redirect: 'manual',
      });
      text = await response.text();
    } catch (err) {
      throw this.unreachable(err);
    }
    const parsed = parseJson(text);
    if (response.status >= 200 && response.status < 300) {
      if (parsed === undefined) throw new CliError(EXIT.FAILED, `unexpected reply from ${method} ${url.pathname}: not JSON (is ${this.origin} the vmdb API?)`);
      return parsed as T;
    }
    const errorBody = isObject(parsed) ? (parsed as ApiErrorBody) : undefined;
    const detail = typeof errorBody?.message === 'string' && errorBody.message ? errorBody.message : `HTTP ${response.status} ${response.statusText}`.trim();
    if (response.status === 401 || response.status === 403) {
      const hint = response.status === 401 && !this.settings.token ? ' (no token given: set VMDB_TOKEN or use --token)' : '';
      throw new ApiError(EXIT.UNREACHABLE, `authentication failed: ${detail}${hint}`, response.status, errorBody);
    }
    if (response.status === 502 || response.status === 503 || response.status === 504) {
      throw new ApiError(EXIT.UNREACHABLE, `the API at ${this.origin} is unavailable: ${detail}`, response.status, errorBody);
    }
    if (response.status >= 300 && response.status < 400) {
      throw new ApiError(EXIT.FAILED, `unexpected redirect (HTTP ${response.status}) from ${url.pathname} (is ${this.origin} the vmdb API?)`, response.status, errorBody);
    }
    const state = typeof errorBody?.state === 'string' && errorBody.state ? ` (state: ${errorBody.state})` : '';
    throw new ApiError(EXIT.FAILED, `${detail}${state}`, response.status, errorBody);
  }

  private unreachable(err: unknown): CliError {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    if (e?.name === 'TimeoutError') {
      return new CliError(EXIT.UNREACHABLE, `no answer from the API at ${this.origin} within ${this.settings.timeoutSeconds} s`);
    }
    const certificate = certificateProblem(err);
    if (certificate) {
      const hint = this.settings.caFile ? `is it signed by the CA in ${this.settings.caFile}?` : 'give the CA that signed it with --ca-file or VMDB_CA_FILE';
      return new CliError(EXIT.UNREACHABLE, `cannot reach the API at ${this.origin}: ${certificate}; ${hint}`);
    }
    const cause = e?.cause?.message || e?.cause?.code || e?.message || String(err);
    return new CliError(EXIT.UNREACHABLE, `cannot reach the API at ${this.origin}: ${cause}`);
  }
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
