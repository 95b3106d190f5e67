import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure, type LogLevel, type LogMetadata, type Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { utils } from 'ssh2';
import {
  createSshActivities,
  type ContextualizationFailureDetails,
  type ContextualizeResult,
  type WaitForSshResult,
} from '../activities/ssh';
import { validateFleet } from '../src/config/fleet';
import { freePort, startSshd, type TestSshd } from './support/sshd';

/** Keeps what the activities log, so the streamed command output can be checked. */
class CapturingLogger implements Logger {
  readonly entries: { level: LogLevel; message: string; meta?: LogMetadata }[] = [];
  log(level: LogLevel, message: string, meta?: LogMetadata) {
    this.entries.push({ level, message, meta });
  }
  trace(message: string, meta?: LogMetadata) { this.log('TRACE', message, meta); }
  debug(message: string, meta?: LogMetadata) { this.log('DEBUG', message, meta); }
  info(message: string, meta?: LogMetadata) { this.log('INFO', message, meta); }
  warn(message: string, meta?: LogMetadata) { this.log('WARN', message, meta); }
  error(message: string, meta?: LogMetadata) { this.log('ERROR', message, meta); }
}

/** A fresh environment per test: a cancelled MockActivityEnvironment stays cancelled. */
function environment() {
  const logger = new CapturingLogger();
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 5_000 }, { logger });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return { env, logger, heartbeats };
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => assert.fail('expected the activity to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  return err;
}

/** Alive and not a zombie (a container's PID 1 may never reap orphans). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    if (check()) return true;
  }
  return check();
}

describe('SSH contextualization activities (real sshd)', function () {
  this.timeout(15_000);
  let sshd: TestSshd;
  let work: string; // a fresh directory per test, created by the upload itself

  before(async function () {
    sshd = await startSshd();
  });
  after(async function () {
    await sshd?.stop();
  });
  beforeEach(function () {
    work = join(sshd.dir, `ctx-${randomBytes(4).toString('hex')}`);
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(`sshd log:\n${sshd.log()}`);
  });

  const target = () => ({ host: sshd.host, port: sshd.port, username: sshd.username, hostKeys: [sshd.hostKey] });

  describe('waitForSsh', function () {
    it('returns the banner of a listening sshd', async function () {
      const { env } = environment();
      const { waitForSsh } = createSshActivities();
      const result: WaitForSshResult = await env.run(waitForSsh, { host: sshd.host, port: sshd.port, timeoutSeconds: 5 });
      assert.match(result.banner, /^SSH-2\.0-OpenSSH_/);
      assert.equal(result.attempts, 1);
    });

    it('fails, retryable, after timeoutSeconds on a closed port, heartbeating meanwhile', async function () {
      const { env, heartbeats } = environment();
      const { waitForSsh } = createSshActivities();
      const port = await freePort();
      const started = Date.now();
      const failure = await failureOf(env.run(waitForSsh, { host: '127.0.0.1', port, timeoutSeconds: 2 }));
      const elapsed = Date.now() - started;
      assert.equal(failure.type, 'SshUnreachable');
      assert.equal(failure.nonRetryable, false);
      assert.match(failure.message, /ECONNREFUSED/);
      assert.ok(elapsed >= 1900 && elapsed < 3500, `took ${elapsed} ms`);
      assert.ok(heartbeats.length >= 2, `${heartbeats.length} heartbeats`);
    });

    it('stops at once when cancelled', async function () {
      const { env } = environment();
      const { waitForSsh } = createSshActivities();
      const port = await freePort();
      const started = Date.now();
      setTimeout(() => env.cancel(), 300);
      await assert.rejects(env.run(waitForSsh, { host: '127.0.0.1', port, timeoutSeconds: 10 }), CancelledFailure);
      assert.ok(Date.now() - started < 1000);
    });
  });

  describe('contextualize', function () {
    it('uploads the files, runs the command, streams its output and returns exit 0', async function () {
      const { env, logger } = environment();
      // The key file is read by the factory: activity inputs never carry it.
      const { contextualize } = createSshActivities({ privateKeyPath: join(sshd.dir, 'client_ed25519_key') });
      const script = [
        '#!/bin/sh',
        'set -e',
        'sum=0',
        'while read n; do sum=$((sum + n)); done < "$1"',
        'echo "sum is $sum"',
        'echo "a warning on stderr" >&2',
        'echo "$sum" > "$2"',
      ].join('\n');
      const result: ContextualizeResult = await env.run(contextualize, {
        ...target(),
        files: [
          { path: `${work}/numbers.txt`, content: '3\n4\n35\n' },
          { path: `${work}/nested/deep/compute.sh`, content: `${script}\n`, mode: 0o750 },
        ],
        command: `${work}/nested/deep/compute.sh ${work}/numbers.txt ${work}/marker`,
        timeoutSeconds: 10,
      });

      assert.equal(readFileSync(join(work, 'marker'), 'utf8'), '42\n'); // the command ran, on the uploaded file
      assert.equal(statSync(join(work, 'nested/deep/compute.sh')).mode & 0o777, 0o750);
      assert.equal(result.exitCode, 0);
      assert.match(result.outputTail, /sum is 42/);
      assert.match(result.outputTail, /a warning on stderr/);
      const lines = logger.entries.filter((e) => e.meta?.stream !== undefined).map((e) => [e.level, e.meta?.stream, e.message]);
      assert.deepEqual(
        lines.sort(),
        [
          ['INFO', 'stderr', 'a warning on stderr'],
          ['INFO', 'stdout', 'sum is 42'],
        ],
      );
    });

    it('a non-zero exit is a retryable ContextualizationFailed with the exit code and (cleaned) output', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKey: sshd.privateKey });
      const failure = await failureOf(
        env.run(contextualize, { ...target(), files: [], command: "echo about to fail; printf '\\033[31moops\\033[0m\\r\\n' >&2; exit 3", timeoutSeconds: 10 }),
      );
      assert.equal(failure.type, 'ContextualizationFailed');
      assert.equal(failure.nonRetryable, false);
      assert.match(failure.message, /exited with code 3/);
      assert.match(failure.message, /oops/);
      const details = failure.details?.[0] as ContextualizationFailureDetails;
      assert.equal(details.exitCode, 3);
      assert.deepEqual(details.outputTail.split('\n').sort(), ['about to fail', 'oops']);
    });

    it('a background process that keeps the output open does not hold the activity', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKey: sshd.privateKey });
      const started = Date.now();
      // `agent &` is what a contextualization command often ends with; it inherits the output pipes.
      const result: ContextualizeResult = await env.run(contextualize, {
        ...target(),
        files: [],
        command: 'sleep 4 & echo agent started',
        timeoutSeconds: 10,
      });
      assert.equal(result.exitCode, 0);
      assert.equal(result.outputTail, 'agent started');
      assert.ok(Date.now() - started < 3500, `took ${Date.now() - started} ms`);
    });

    it('a command past timeoutSeconds fails in time and is killed on the machine', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKey: sshd.privateKey });
      const pidFile = join(work, 'sleep.pid');
      const started = Date.now();
      const failure = await failureOf(
        env.run(contextualize, {
          ...target(),
          files: [{ path: `${work}/readme`, content: 'the pid file goes here\n' }],
          // A background child, to check the whole process group is killed and not just the shell.
          command: `echo started; sleep 30 & echo $! > ${pidFile}; wait`,
          timeoutSeconds: 2,
        }),
      );
      const elapsed = Date.now() - started;
      assert.equal(failure.type, 'ContextualizationTimedOut');
      assert.equal(failure.nonRetryable, false);
      assert.ok(elapsed >= 1900 && elapsed < 4000, `took ${elapsed} ms`);
      assert.equal((failure.details?.[0] as ContextualizationFailureDetails).outputTail, 'started');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(await eventually(() => !alive(pid), 2000), `sleep (pid ${pid}) survived the timeout`);
    });

    it('cancellation closes the connection and kills the command', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKey: sshd.privateKey });
      const pidFile = join(work, 'sleep.pid');
      setTimeout(() => env.cancel(), 1000);
      const started = Date.now();
      await assert.rejects(
        env.run(contextualize, {
          ...target(),
          files: [{ path: `${work}/readme`, content: 'x\n' }],
          command: `sleep 30 & echo $! > ${pidFile}; wait`,
          timeoutSeconds: 10,
        }),
        CancelledFailure,
      );
      assert.ok(Date.now() - started < 2000);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(await eventually(() => !alive(pid), 2000), `sleep (pid ${pid}) survived the cancellation`);
    });

    it('a port that accepts but never speaks SSH times out during connect', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKey: sshd.privateKey });
      const sockets: Socket[] = [];
      let hungUp = 0;
      const silent = createServer((socket) => {
        sockets.push(socket);
        socket.on('end', () => hungUp++).resume();
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const port = (silent.address() as AddressInfo).port;
        const started = Date.now();
        const failure = await failureOf(
          env.run(contextualize, { ...target(), port, files: [], command: 'true', timeoutSeconds: 1 }),
        );
        assert.equal(failure.type, 'ContextualizationTimedOut');
        assert.match(failure.message, /during connect/);
        assert.ok(Date.now() - started < 2000);
        assert.equal(sockets.length, 1);
        assert.ok(await eventually(() => hungUp === 1, 1000), 'the connection was left open');
      } finally {
        sockets.forEach((s) => s.destroy());
        silent.close();
      }
    });

    it('a VM presenting a host key nobody pinned is refused at once: SshHostKeyMismatch naming the key, nothing uploaded or run', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKeyPath: join(sshd.dir, 'client_ed25519_key') });
      // The fingerprint ssh-keygen prints for the sshd's real key is the one the activity computes.
      const printed = execFileSync('ssh-keygen', ['-lf', join(sshd.dir, 'host_ed25519_key.pub')], { encoding: 'utf8' }).split(' ')[1];
      assert.equal(sshd.hostKey, printed);
      const other = `SHA256:${'A'.repeat(43)}`;
      const failure = await failureOf(
        env.run(contextualize, { ...target(), hostKeys: [other], files: [{ path: `${work}/never-${Date.now()}`, content: 'x' }], command: `touch ${work}/ran`, timeoutSeconds: 5 }),
      );
      assert.equal(failure.type, 'SshHostKeyMismatch');
      assert.equal(failure.nonRetryable, true);
      assert.ok(failure.message.includes(`presented host key ${sshd.hostKey}`) && failure.message.includes(other), failure.message);
      assert.ok(!existsSync(join(work, 'ran')), 'the command never ran');
    });

    it('anyHostKey trusts whatever answers; a malformed fingerprint is refused before connecting', async function () {
      const { env } = environment();
      const { contextualize } = createSshActivities({ privateKeyPath: join(sshd.dir, 'client_ed25519_key') });
      const { hostKeys: _pinned, ...unpinned } = target();
      const trusted = (await env.run(contextualize, { ...unpinned, anyHostKey: true, files: [], command: 'true', timeoutSeconds: 5 })) as ContextualizeResult;
      assert.equal(trusted.exitCode, 0);
      const failure = await failureOf(env.run(contextualize, { ...target(), hostKeys: ['md5:00:11'], files: [], command: 'true', timeoutSeconds: 5 }));
      assert.deepEqual([failure.type, failure.nonRetryable], ['InvalidArgument', true]);
      assert.match(failure.message, /hostKeys\[0\] must be an OpenSSH fingerprint/);
    });

    it('a fleet file needs hostKeys or anyHostKey for a contextualization', function () {
      const fleet = (contextualization: Record<string, unknown>) =>
        validateFleet({ endpoints: [{ endpoint: 'Site::ce', image: 'img', runningPod: 'pod', maxInstances: 1, driver: { type: 'local' }, contextualization: { username: 'root', command: 'true', timeoutSeconds: 5, files: [], ...contextualization } }] } as never);
      assert.throws(() => fleet({}), /contextualization needs hostKeys: the SHA256 fingerprints .* or "anyHostKey": true/);
      assert.throws(() => fleet({ hostKeys: ['SHA256:short'] }), /hostKeys\[0\] must be an OpenSSH fingerprint/);
      assert.throws(() => fleet({ hostKeys: [sshd.hostKey], anyHostKey: true }), /contradict/);
      assert.doesNotThrow(() => fleet({ hostKeys: [sshd.hostKey] }));
      assert.doesNotThrow(() => fleet({ anyHostKey: true }));
      // README's fleet file, as written, pins its image's host key.
      const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
      const example = /### The fleet file\n\n```json\n([\s\S]*?)\n```/.exec(readme)![1];
      const parsed = validateFleet(JSON.parse(example));
      assert.equal(parsed.endpoints[0].contextualization?.hostKeys?.length, 1);
    });

    it('a key the server does not accept is a non-retryable SshAuthFailed', async function () {
      const { env } = environment();
      const stranger = utils.generateKeyPairSync('ed25519');
      const { contextualize } = createSshActivities({ privateKey: stranger.private });
      const failure = await failureOf(
        env.run(contextualize, { ...target(), files: [{ path: `${work}/never`, content: '' }], command: 'true', timeoutSeconds: 5 }),
      );
      assert.equal(failure.type, 'SshAuthFailed');
      assert.equal(failure.nonRetryable, true);
    });

    it('refuses an unusable key when the activities are created, and runs nothing without one', async function () {
      assert.throws(() => createSshActivities({ privateKey: 'not a key' }), /unusable/);
      const { env } = environment();
      const failure = await failureOf(
        env.run(createSshActivities().contextualize, { ...target(), files: [], command: 'true', timeoutSeconds: 5 }),
      );
      assert.equal(failure.type, 'SshKeyMissing');
      assert.equal(failure.nonRetryable, true);
    });
  });
});
