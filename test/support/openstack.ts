import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { closeServer, forward, listenLocal, readBody } from './http-proxy';
import { venvTool } from './venv-tools';

/**
 * A real OpenStack for the openstack driver tests: Nova's Compute API (and Keystone, when asked),
 * from PyPI in .openstack-venv (scripts/openstack-env.sh, installed on first use), each started as a
 * process of the test on 127.0.0.1 (test/support/openstack_cloud.py, keystone_server.py).
 */

const ROOT = join(__dirname, '..', '..', '..');

/** The Python of the project's OpenStack venv, installed on first use. */
export function openstackPython(): string {
  return venvTool('openstack-env.sh', 'OPENSTACK_PYTHON');
}

/** A Python service of the test: it prints one JSON line when it serves, and stops with it. */
export class PythonService<Ready> {
  private constructor(
    private readonly child: ChildProcess,
    readonly ready: Ready,
    private readonly output: () => string,
  ) {}

  static async start<Ready>(name: string, script: string, args: string[], timeoutMs = 180_000): Promise<PythonService<Ready>> {
    // stdin stays open: the service exits when it closes, so a killed test leaves nothing behind.
    const child = spawn(openstackPython(), [join(ROOT, 'test', 'support', script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    });
    const lines = createInterface({ input: child.stdout! });
    const first = new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before it served`)));
      setTimeout(() => reject(new Error(`${name} did not serve within ${timeoutMs} ms`)), timeoutMs).unref();
    });
    try {
      const ready = JSON.parse(await first) as Ready;
      return new PythonService(child, ready, () => output);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n--- ${name} ---\n${output.slice(-5000)}`);
    }
  }

  tail(chars = 3000): string {
    return this.output().slice(-chars);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export interface NovaReady {
  port: number;
  /** The image and network Nova's Glance and Neutron fixtures hold. */
  imageId: string;
  networkId: string;
}

export interface Nova {
  /** The Compute API v2.1 base URL. */
  url: string;
  imageId: string;
  networkId: string;
  service: PythonService<NovaReady>;
}

/** Starts Nova's Compute API; with `keystone`, its authtoken middleware checks tokens with that Keystone. */
export async function startNova(keystone?: { url: string; user: string; password: string; project: string }): Promise<Nova> {
  const args = keystone
    ? ['--keystone-url', keystone.url, '--keystone-user', keystone.user, '--keystone-password', keystone.password, '--keystone-project', keystone.project]
    : [];
  const service = await PythonService.start<NovaReady>('nova', 'openstack_cloud.py', args);
  const { port, imageId, networkId } = service.ready;
  return { url: `http://127.0.0.1:${port}/v2.1`, imageId, networkId, service };
}

export interface Keystone {
  /** The identity API v3 base URL. */
  url: string;
  service: PythonService<{ port: number; url: string }>;
  /** A call with an admin token of the bootstrap admin (admin project). */
  admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

/** A token of `user` (a password, scoped to a project by name), and the answer's body. */
export async function keystoneToken(url: string, user: string, password: string, project: string): Promise<{ token: string; body: unknown }> {
  const res = await fetch(`${url}/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`Keystone token for ${user}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return { token: res.headers.get('x-subject-token')!, body };
}

/** A call to Keystone's API with `token`; throws unless it answers 2xx. */
export async function keystoneCall<T = unknown>(url: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { 'X-Auth-Token': token, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`Keystone ${method} ${path}: HTTP ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/** Starts Keystone, bootstrapped with an admin user `admin` of project `admin` with this password. */
export async function startKeystone(adminPassword: string, tokenExpirationSeconds = 3600): Promise<Keystone> {
  const args = ['--admin-password', adminPassword, '--token-expiration', String(tokenExpirationSeconds)];
  const service = await PythonService.start<{ port: number; url: string }>('keystone', 'keystone_server.py', args);
  const { url } = service.ready;
  const { token } = await keystoneToken(url, 'admin', adminPassword, 'admin');
  return { url, service, admin: (method, path, body) => keystoneCall(url, token, method, path, body) };
}

/** An identity Nova trusts when its API runs without Keystone. */
export interface Identity {
  projectId: string;
  userId: string;
  roles: string[];
}

/** Calls the Compute API as `who` (no Keystone): the tests' own view of the cloud, and its admin calls. */
export async function novaCall<T = unknown>(url: string, who: Identity, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      'X-Auth-Token': 'test',
      'X-Project-Id': who.projectId,
      'X-User-Id': who.userId,
      'X-Roles': who.roles.join(','),
      'OpenStack-API-Version': 'compute 2.37',
      Accept: 'application/json',
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

/** What the fault proxy answers a matching request with instead of forwarding it. */
export interface ComputeFault {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

/**
 * What the fault proxy does with a matching request: answer it itself, hold it unanswered (a hung
 * API), or forward it and cut the connection before the answer (the call ran, its caller never hears).
 */
export type ProxyFault = ComputeFault | 'hang' | 'lose-answer';

/**
 * An HTTP proxy in front of Nova that meets chosen requests with the failures this Nova never
 * produces (rate limits, a load balancer's 502 page, hung calls, lost answers) and forwards
 * everything else unchanged.
 */
export class ComputeFaultProxy {
  private rules: { method: string; path: RegExp; fault: ProxyFault; remaining: number }[] = [];
  private server: http.Server | undefined;
  /** Every request: its method, path and X-Auth-Token. */
  readonly seen: { method: string; path: string; token: string }[] = [];
  url = '';

  constructor(private readonly upstream: string) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.url = `${await listenLocal(this.server)}${new URL(this.upstream).pathname}`;
    return this;
  }

  inject(method: string, path: RegExp, fault: ProxyFault, times = 1): void {
    this.rules.push({ method, path, fault, remaining: times });
  }

  clear(): void {
    this.rules = [];
    this.seen.length = 0;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    const method = req.method ?? '';
    const path = req.url ?? '';
    this.seen.push({ method, path, token: String(req.headers['x-auth-token'] ?? '') });
    const rule = this.rules.find((r) => r.method === method && r.path.test(path) && r.remaining > 0);
    if (rule) rule.remaining--;
    const fault = rule?.fault;
    if (fault === 'hang') return;
    if (fault !== undefined && fault !== 'lose-answer') {
      res.writeHead(fault.status, fault.headers ?? {});
      res.end(fault.body);
      return;
    }
    forward(req, res, this.upstream, body, fault === 'lose-answer');
  }
}
