import { strict as assert } from 'node:assert';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { AgentConfigError, loadAgentConfig } from '../src/agent/config';
import { VmAgent } from '../src/agent/agent';
import { buildApi } from '../src/api/server';
import { readTlsFiles, reloadTls } from '../src/api/tls';
import { hashToken, newSecret } from '../src/auth/tokens';
import { ApiClient } from '../src/cli/http';
import { loadSettings } from '../src/config/settings';
import { VirtualMachineDB } from '../src/db/vmdb';
import { probePinned, probeTarget } from '../src/healthcheck';
import { type ChildRun, runNode, waitFor } from './support/processes';
import { freePort } from './support/sshd';
import { startDevServer } from './support/temporal';

const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');
const SECRET = newSecret();
const ADMIN = newSecret();
const OPERATORS = [{ name: 'admin', role: 'admin' as const, sha256: hashToken(ADMIN) }];

/** A CA, two server certificates it signed for 127.0.0.1 and localhost, and a second, unrelated CA. */
function makeCertificates(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string) => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=vmdb test ${name}`);
  };
  ca('ca');
  ca('other-ca');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  for (const name of ['a', 'b']) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=vmdb test server ${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'san.ext');
  }
}

const fingerprint = (dir: string, name: string) => new X509Certificate(readFileSync(join(dir, `${name}.crt`))).fingerprint256;

/** The fingerprint of the certificate a server presents, verified against `ca`. */
function servedFingerprint(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const value = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(value);
    });
    socket.once('error', reject);
  });
}

function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).once('error', reject);
  });
}

function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<ChildRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['VMDB_API_URL', 'VMDB_TOKEN', 'VMDB_CA_FILE', 'VMDB_ALLOW_HTTP']) delete childEnv[name];
  return runNode(CLI, args, Object.assign(childEnv, env));
}

/** waitFor, with the tail of a child's output in the message when it times out. */
function until<T>(what: string, probe: () => Promise<T | undefined>, output: () => string, timeoutMs = 30_000): Promise<T> {
  return waitFor(what, probe, timeoutMs, 200).catch((err: Error) => {
    throw new Error(`${err.message}\n--- output ---\n${output().slice(-3000)}`);
  });
}

describe('TLS: HTTPS at the API, verified by the agent and the CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let ca: Buffer;
  let db: VirtualMachineDB;
  let app: FastifyInstance;
  let base: string;
  const silent = { info: () => undefined, error: () => undefined };

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'vmdb-tls-'));
    makeCertificates(dir);
    ca = readFileSync(join(dir, 'ca.crt'));
    db = await VirtualMachineDB.open({ url: 'sqlite::memory:' });
    const tls = readTlsFiles({ certFile: join(dir, 'a.crt'), keyFile: join(dir, 'a.key') });
    app = await buildApi({ db, lifecycle: {} as never, operators: OPERATORS, tokenSecret: SECRET, tls });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `https://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  after(async function () {
    await app?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves /healthz over HTTPS with the files\' certificate', async function () {
    const res = await httpsGet(`${base}/healthz`, ca);
    assert.equal(res.status, 200);
    assert.equal(await servedFingerprint(Number(new URL(base).port), ca), fingerprint(dir, 'a'));
  });

  it('reloads to a new certificate on the same listener; a failed reload keeps the old one and says so', async function () {
    const port = Number(new URL(base).port);
    const errors: string[] = [];
    const log = { info: () => undefined, error: (line: string) => errors.push(line) };
    const server = app.server as unknown as Parameters<typeof reloadTls>[0];
    assert.equal(reloadTls(server, { certFile: join(dir, 'b.crt'), keyFile: join(dir, 'b.key') }, log), true);
    assert.equal(await servedFingerprint(port, ca), fingerprint(dir, 'b'));
    assert.equal(reloadTls(server, { certFile: join(dir, 'a.crt'), keyFile: join(dir, 'b.key') }, log), false, 'a key that is not the certificate\'s');
    assert.equal(reloadTls(server, { certFile: join(dir, 'absent.crt'), keyFile: join(dir, 'a.key') }, log), false);
    assert.equal(await servedFingerprint(port, ca), fingerprint(dir, 'b'), 'still the last good one');
    assert.equal(errors.length, 2);
    assert.match(errors[0], /not reloaded, the previous one is still served: .*not a usable pair/);
    assert.match(errors[1], /VMDB_API_TLS_CERT: cannot read .*absent\.crt/);
    reloadTls(server, { certFile: join(dir, 'a.crt'), keyFile: join(dir, 'a.key') }, silent);
  });

  it('the CLI verifies the certificate: with --ca-file or VMDB_CA_FILE it works, without it or with another CA it fails and says what to do', async function () {
    const token = { VMDB_TOKEN: ADMIN };
    const withFlag = await runCli(['images', '--api-url', base, '--ca-file', join(dir, 'ca.crt'), '--json'], token);
    assert.equal(withFlag.code, 0, withFlag.stderr);
    assert.deepEqual(JSON.parse(withFlag.stdout).Records, []);
    const withEnv = await runCli(['images', '--json'], { ...token, VMDB_API_URL: base, VMDB_CA_FILE: join(dir, 'ca.crt') });
    assert.equal(withEnv.code, 0, withEnv.stderr);

    const without = await runCli(['images'], { ...token, VMDB_API_URL: base });
    assert.equal(without.code, 3);
    assert.match(without.stderr, /cannot reach the API at https:\/\/127\.0\.0\.1:\d+: its certificate is not trusted: .*\(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*--ca-file or VMDB_CA_FILE/);
    const other = await runCli(['images'], { ...token, VMDB_API_URL: base, VMDB_CA_FILE: join(dir, 'other-ca.crt') });
    assert.equal(other.code, 3, 'another CA is not a reason to trust anything');
    assert.match(other.stderr, /its certificate is not trusted: .*is it signed by the CA in .*other-ca\.crt\?/);
    const unreadable = await runCli(['images'], { ...token, VMDB_API_URL: base, VMDB_CA_FILE: join(dir, 'absent.crt') });
    assert.equal(unreadable.code, 2);
    assert.match(unreadable.stderr, /--ca-file\/VMDB_CA_FILE: cannot read .*absent\.crt/);
  });

  it('the agent verifies the certificate: with VMDB_AGENT_CA_FILE it gets the API\'s answer, without it a clear transient failure', async function () {
    const env = { VMDB_API_URL: base, VMDB_VM_TOKEN: 'vm.41.not-a-valid-signature', VMDB_AGENT_PERIOD: '10' };
    const trusting = new VmAgent(loadAgentConfig({ ...env, VMDB_AGENT_CA_FILE: join(dir, 'ca.crt') }), { log: () => undefined });
    const reply = await trusting.post('heartbeat', { load: 0, jobs: 0, transferredFiles: 0, transferredBytes: 0, uptime: 1 });
    assert.equal(reply.kind, 'refused', JSON.stringify(reply));
    assert.equal((reply as { status?: number }).status, 401, 'the API itself answered, over a verified connection');

    const plain = await new VmAgent(loadAgentConfig(env), { log: () => undefined }).post('heartbeat', {});
    assert.equal(plain.kind, 'transient');
    assert.match((plain as { message: string }).message, /its certificate is not trusted: .*set VMDB_AGENT_CA_FILE to the CA that signed it/);
    const other = await new VmAgent(loadAgentConfig({ ...env, VMDB_AGENT_CA_FILE: join(dir, 'other-ca.crt') }), { log: () => undefined }).post('heartbeat', {});
    assert.equal(other.kind, 'transient');
    assert.match((other as { message: string }).message, /not trusted: .*VMDB_AGENT_CA_FILE \(.*other-ca\.crt\)/);

    assert.throws(() => loadAgentConfig({ ...env, VMDB_AGENT_CA_FILE: join(dir, 'absent.crt') }), /VMDB_AGENT_CA_FILE: cannot read .*absent\.crt/);
    assert.throws(() => loadAgentConfig({ ...env, VMDB_AGENT_CA_FILE: join(dir, 'san.ext') }), /VMDB_AGENT_CA_FILE: .*san\.ext is not a PEM CA certificate/);
  });

  it('the container\'s health probe pins the API\'s own certificate, whatever name it carries', async function () {
    const port = new URL(base).port;
    const target = probeTarget(`http://127.0.0.1:${port}/healthz`, { VMDB_API_TLS_CERT: join(dir, 'a.crt') });
    assert.deepEqual(target, { url: `https://127.0.0.1:${port}/healthz`, pinned: join(dir, 'a.crt') });
    assert.deepEqual(probeTarget('http://127.0.0.1:1/healthz', {}), { url: 'http://127.0.0.1:1/healthz' });
    assert.equal((await probePinned(target.url, join(dir, 'a.crt'))).ok, true);
    const wrong = await probePinned(target.url, join(dir, 'b.crt'));
    assert.equal(wrong.ok, false, 'another certificate is refused');
  });
});

describe('TLS: plain http to another machine is refused unless allowed', function () {
  const TOKEN = 'vm.42.signature';

  it('the agent, whether the url comes from the environment or the user data', function () {
    const refused = (env: Record<string, string>, source: RegExp) => {
      assert.throws(
        () => loadAgentConfig(env),
        (err: unknown) => err instanceof AgentConfigError && source.test(err.message) && /use https:\/\/, or set VMDB_AGENT_ALLOW_HTTP=true/.test(err.message),
      );
    };
    refused({ VMDB_API_URL: 'http://vmdb.example.org:8080', VMDB_VM_TOKEN: TOKEN }, /VMDB_API_URL is plain http to vmdb\.example\.org:8080/);
    refused({ VMDB_USER_DATA: JSON.stringify({ vmdb: { apiUrl: 'http://10.0.0.5', instanceID: 42, token: TOKEN } }) }, /VMDB_USER_DATA vmdb\.apiUrl is plain http to 10\.0\.0\.5/);
    refused({ VMDB_API_URL: 'http://api:8080', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_ALLOW_HTTP: 'false' }, /plain http to api:8080/);
    assert.throws(() => loadAgentConfig({ VMDB_API_URL: 'https://x', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_ALLOW_HTTP: 'yes please' }), /VMDB_AGENT_ALLOW_HTTP must be true or false/);

    assert.equal(loadAgentConfig({ VMDB_API_URL: 'http://api:8080', VMDB_VM_TOKEN: TOKEN, VMDB_AGENT_ALLOW_HTTP: 'true' }).apiUrl, 'http://api:8080');
    for (const url of ['http://127.0.0.1:8080', 'http://127.1.2.3', 'http://[::1]:8080', 'http://localhost:8080', 'https://vmdb.example.org']) {
      assert.equal(loadAgentConfig({ VMDB_API_URL: url, VMDB_VM_TOKEN: TOKEN }).apiUrl, url.replace(/\/$/, ''), url);
    }
  });

  it('the CLI, unless --allow-http or VMDB_ALLOW_HTTP=true', async function () {
    const refused = await runCli(['images'], { VMDB_API_URL: 'http://vmdb.example.org:8080', VMDB_TOKEN: ADMIN });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /API url "http:\/\/vmdb\.example\.org:8080" is plain http to vmdb\.example\.org:8080.*set VMDB_ALLOW_HTTP=true \(or --allow-http\)/);
    const badValue = await runCli(['images'], { VMDB_API_URL: 'http://vmdb.example.org:8080', VMDB_ALLOW_HTTP: 'maybe' });
    assert.equal(badValue.code, 2);
    assert.match(badValue.stderr, /VMDB_ALLOW_HTTP must be true or false/);
    // Allowed, the url is used: here nothing listens there, so the failure is the connection's.
    const port = await freePort();
    const allowed = (extra: string[], env: Record<string, string>) => runCli(['images', '--timeout', '5', ...extra], { VMDB_API_URL: `http://not-loopback.invalid:${port}`, ...env });
    for (const run of [await allowed(['--allow-http'], {}), await allowed([], { VMDB_ALLOW_HTTP: 'true' })]) {
      assert.equal(run.code, 3, run.stderr);
      assert.match(run.stderr, /cannot reach the API at http:\/\/not-loopback\.invalid/);
    }
    assert.doesNotThrow(() => new ApiClient({ apiUrl: 'http://127.0.0.1:8080', timeoutSeconds: 1 }));
    assert.doesNotThrow(() => new ApiClient({ apiUrl: 'http://localhost:8080', timeoutSeconds: 1 }));
  });
});

describe('TLS: the API\'s certificate settings', function () {
  it('come together, as files that can be read; a key that is not the certificate\'s stops the start', function () {
    assert.throws(() => loadSettings({ VMDB_API_TLS_CERT: '/c.pem' }, { checkFiles: false }), /VMDB_API_TLS_CERT and VMDB_API_TLS_KEY must be given together/);
    assert.throws(() => loadSettings({ VMDB_API_TLS_KEY: '/k.pem' }, { checkFiles: false }), /VMDB_API_TLS_CERT and VMDB_API_TLS_KEY must be given together/);
    assert.throws(() => loadSettings({ VMDB_API_TLS_CERT: '/nowhere/c.pem', VMDB_API_TLS_KEY: '/nowhere/k.pem' }), /VMDB_API_TLS_CERT: cannot read \/nowhere\/c\.pem[\s\S]*VMDB_API_TLS_KEY: cannot read/);
    const dir = mkdtempSync(join(tmpdir(), 'vmdb-tls-pair-'));
    try {
      makeCertificates(dir);
      assert.throws(() => readTlsFiles({ certFile: join(dir, 'a.crt'), keyFile: join(dir, 'b.key') }), /VMDB_API_TLS_CERT \(.*a\.crt\) and VMDB_API_TLS_KEY \(.*b\.key\) are not a usable pair/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TLS: VMDB_TRUST_PROXY', function () {
  let db: VirtualMachineDB;
  before(async function () {
    db = await VirtualMachineDB.open({ url: 'sqlite::memory:' });
  });
  after(async function () {
    await db?.close();
  });

  it('is false by default; true, a hop count, or addresses and CIDRs; anything else is refused', function () {
    const settings = (value?: string) => loadSettings({ VMDB_TRUST_PROXY: value }, { checkFiles: false }).api.trustProxy;
    assert.equal(settings(), false);
    assert.equal(settings('true'), true);
    assert.equal(settings('2'), 2);
    assert.deepEqual(settings('10.0.0.1, 192.168.0.0/16,loopback,::1'), ['10.0.0.1', '192.168.0.0/16', 'loopback', '::1']);
    assert.throws(() => settings('10.0.0.0/33'), /VMDB_TRUST_PROXY must be true, false, a hop count, or addresses and CIDRs .*"10\.0\.0\.0\/33"/);
    assert.throws(() => settings('proxy.example.org'), /VMDB_TRUST_PROXY/);
  });

  it('makes the X-Forwarded-For client the address the rate limits count (and /metrics is no longer "local" through the proxy)', async function () {
    const limited = async (trustProxy: false | string[]) => {
      const app = await buildApi({ db, lifecycle: {} as never, operators: OPERATORS, tokenSecret: SECRET, trustProxy, rateLimits: { perToken: 100, perAddress: 2, authFailures: 10 } });
      try {
        const statuses: number[] = [];
        for (let i = 1; i <= 4; i++) {
          statuses.push((await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': `203.0.113.${i}` } })).statusCode);
        }
        const metrics = (await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9' } })).statusCode;
        return { statuses, metrics };
      } finally {
        await app.close();
      }
    };
    assert.deepEqual(await limited(false), { statuses: [200, 200, 429, 429], metrics: 429 }, 'without: every client is the proxy');
    assert.deepEqual(await limited(['127.0.0.1']), { statuses: [200, 200, 200, 200], metrics: 403 }, 'with: each client its own budget');
  });
});

describe('TLS: vmdb server over HTTPS reloads its certificate on SIGHUP [sqlite]', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let dir: string;
  let server: ChildProcess | undefined;

  before(async function () {
    env = await startDevServer();
    dir = mkdtempSync(join(tmpdir(), 'vmdb-tls-server-'));
    makeCertificates(dir);
  });
  after(async function () {
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the files, switches on SIGHUP without dropping the listener, and keeps the old certificate when the new files are bad', async function () {
    const ca = readFileSync(join(dir, 'ca.crt'));
    copyFileSync(join(dir, 'a.crt'), join(dir, 'server.crt'));
    copyFileSync(join(dir, 'a.key'), join(dir, 'server.key'));
    const port = await freePort();
    let output = '';
    server = spawn(process.execPath, [CLI, 'server', '--quiet', '--port', String(port)], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        VMDB_LOG_LEVEL: 'warn',
        VMDB_DATABASE_URL: `sqlite:${join(dir, 'vmdb.sqlite')}`,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_NAMESPACE: env.namespace ?? 'default',
        VMDB_TOKEN_SECRET: SECRET,
        VMDB_ADMIN_TOKEN: ADMIN,
        VMDB_API_TLS_CERT: join(dir, 'server.crt'),
        VMDB_API_TLS_KEY: join(dir, 'server.key'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (chunk) => (output += chunk));
    server.stderr!.on('data', (chunk) => (output += chunk));
    const base = `https://127.0.0.1:${port}`;
    await until('vmdb server over https', async () => ((await httpsGet(`${base}/healthz`, ca)).status === 200 ? true : undefined), () => output);
    assert.match(output, new RegExp(`vmdb API on https://127\\.0\\.0\\.1:${port} .*certificate .*SIGHUP rereads it`));
    assert.equal(await servedFingerprint(port, ca), fingerprint(dir, 'a'));

    // A renewal: new files in place, then SIGHUP.
    const kept = new Socket();
    await new Promise<void>((resolve, reject) => kept.connect(port, '127.0.0.1', resolve).once('error', reject));
    copyFileSync(join(dir, 'b.crt'), join(dir, 'server.crt'));
    copyFileSync(join(dir, 'b.key'), join(dir, 'server.key'));
    server.kill('SIGHUP');
    await until('the new certificate', async () => ((await servedFingerprint(port, ca)) === fingerprint(dir, 'b') ? true : undefined), () => output);
    assert.match(output, /TLS certificate reloaded: .*vmdb test server b/);
    assert.equal(kept.destroyed, false, 'a connection open before the reload is not dropped');
    kept.destroy();

    // A bad renewal (the key does not match): the old certificate stays, and the error is written.
    copyFileSync(join(dir, 'a.crt'), join(dir, 'server.crt'));
    server.kill('SIGHUP');
    await until('the error line', async () => (/not reloaded, the previous one is still served/.test(output) ? true : undefined), () => output);
    assert.equal(await servedFingerprint(port, ca), fingerprint(dir, 'b'));
    assert.equal((await httpsGet(`${base}/healthz`, ca)).status, 200);
    assert.equal(server.exitCode, null, 'still running');

    server.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => (server!.exitCode !== null ? resolve(server!.exitCode) : server!.once('exit', resolve)));
    assert.equal(code, 0, output);
  });
});
