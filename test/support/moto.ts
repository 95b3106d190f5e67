import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer, forward, listenLocal, readBody } from './http-proxy';
import { venvTool } from './venv-tools';

/**
 * moto's EC2 API server (PyPI `moto[server]`), installed into .moto-venv by scripts/moto-env.sh on
 * first use and started on 127.0.0.1 at a free port. The driver talks to it as to AWS: SigV4-signed
 * EC2 Query requests over HTTP.
 */

/** The moto_server executable of the project's moto venv, installed on first use. */
export function motoServerPath(): string {
  return venvTool('moto-env.sh', 'MOTO_SERVER');
}

/** The Python of the moto venv; moto[server] brings boto3, which the tests use for IAM set-up. */
export function motoPython(): string {
  return join(motoServerPath(), '..', 'python');
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface MotoServer {
  url: string;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** From now on every request must be signed by a known IAM access key and be allowed by its policies. */
  enforceAuth(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts moto with the validations AWS does and moto skips by default: the AMI, the instance type and
 * the key pair of RunInstances must exist.
 */
export async function startMoto(): Promise<MotoServer> {
  const executable = motoServerPath();
  let lastError: Error | undefined;
  // A port found free can be taken before moto binds it: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(executable, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MOTO_ENABLE_AMI_VALIDATION: 'true',
        MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true',
        MOTO_ENABLE_KEYPAIR_VALIDATION: 'true',
      },
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    try {
      await waitUntilServing(child, url);
      return motoHandle(child, url);
    } catch (err) {
      lastError = new Error(`moto did not start on ${url}: ${(err as Error).message}\n${output}`);
      await stopChild(child);
    }
  }
  throw lastError;
}

async function waitUntilServing(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
    try {
      const res = await fetch(`${url}/moto-api/data.json`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('no answer within 60 s');
    await sleep(100);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function motoHandle(child: ChildProcess, url: string): MotoServer {
  const post = async (path: string, body?: string) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', body });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer().catch(() => undefined);
  };
  return {
    url,
    reset: () => post('/moto-api/reset'),
    enforceAuth: () => post('/moto-api/reset-auth', '0'),
    stop: () => stopChild(child),
  };
}

/** What the fault proxy does with a matching request. */
export type Fault =
  /** Answer with an EC2 error response, as EC2 does (XML body, EC2's code and HTTP status). */
  | { kind: 'error'; status: number; code: string; message: string }
  /** Forward it to moto, then cut the connection before the answer: the call ran, its caller never hears. */
  | { kind: 'lose-answer' }
  /** Answer with a non-EC2 body, as a load balancer in front of a cloud may. */
  | { kind: 'html'; status: number };

interface Rule {
  action: string;
  fault: Fault;
  remaining: number;
}

/**
 * An HTTP proxy in front of moto that injects the failures moto never produces (throttling, quotas,
 * capacity, outages, lost answers) for chosen EC2 actions, and forwards everything else unchanged.
 * It also records the actions it saw and their parameters.
 */
export class Ec2FaultProxy {
  readonly seen: { action: string; params: URLSearchParams }[] = [];
  private rules: Rule[] = [];
  private server: http.Server | undefined;
  url = '';

  constructor(private readonly upstream: string) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.url = await listenLocal(this.server);
    return this;
  }

  /** The next `times` requests of `action` meet `fault`. */
  inject(action: string, fault: Fault, times = 1): void {
    this.rules.push({ action, fault, remaining: times });
  }

  clear(): void {
    this.rules = [];
    this.seen.length = 0;
  }

  count(action: string): number {
    return this.seen.filter((s) => s.action === action).length;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    const params = new URLSearchParams(body.toString('utf8'));
    const action = params.get('Action') ?? '';
    this.seen.push({ action, params });
    const rule = this.rules.find((r) => r.action === action && r.remaining > 0);
    if (rule) rule.remaining--;
    const fault = rule?.fault;
    if (fault?.kind === 'error') {
      const requestId = `fault-${this.seen.length}`;
      // EC2 gives the request id twice: in a header, which the SDK reads, and in the body.
      res.writeHead(fault.status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${fault.code}</Code><Message>${fault.message}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
      );
      return;
    }
    if (fault?.kind === 'html') {
      res.writeHead(fault.status, { 'content-type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
      return;
    }
    forward(req, res, this.upstream, body, fault?.kind === 'lose-answer');
  }
}
