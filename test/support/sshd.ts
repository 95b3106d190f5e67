import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { hostKeyFingerprint } from '../../src/net/host-keys';

/**
 * A real OpenSSH sshd for tests: 127.0.0.1, a free port, a throw-away directory holding its host
 * key, its config and one authorized client key. It logs in the user running the tests.
 */
export interface TestSshd {
  host: string;
  port: number;
  username: string;
  /** The authorized client key (OpenSSH format). */
  privateKey: string;
  /** The fingerprint of the host key it presents, as `ssh-keygen -lf` prints it (SHA256:...). */
  hostKey: string;
  /** The throw-away directory; tests may put their files in it too. */
  dir: string;
  /** What sshd wrote on stderr (-e), for diagnosing a failed login. */
  log(): string;
  stop(): Promise<void>;
}

// sshd re-executes itself and refuses to run unless started by absolute path.
export const SSHD = '/usr/sbin/sshd';

export async function startSshd(): Promise<TestSshd> {
  if (!existsSync(SSHD)) {
    throw new Error(`${SSHD} not found: the SSH tests need a real OpenSSH server. Install openssh-server (apt-get install openssh-server); npm test installs it.`);
  }
  // The privilege separation directory; Debian creates it only when the service starts.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = mkdtempSync(join(tmpdir(), 'vmdb-sshd-'));
  try {
    keygen(join(dir, 'host_ed25519_key'));
    keygen(join(dir, 'client_ed25519_key'));
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_ed25519_key.pub')));
    const privateKey = readFileSync(join(dir, 'client_ed25519_key'), 'utf8');
    // A port found free can be taken before sshd binds it; try again with another one.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(dir, port);
      if ('process' in started) {
        const { process: sshd, stderr } = started;
        return {
          host: '127.0.0.1',
          port,
          username: userInfo().username,
          privateKey,
          hostKey: fingerprintOf(join(dir, 'host_ed25519_key.pub')),
          dir,
          log: () => stderr.join(''),
          stop: async () => {
            await stopProcess(sshd);
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      if (attempt === 3 || !/Address already in use|Cannot bind/i.test(started.error)) throw new Error(`sshd did not start: ${started.error}`);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** OpenSSH's SHA256 fingerprint of a public key file (ssh-keygen -lf prints the same). */
export function fingerprintOf(publicKeyFile: string): string {
  return hostKeyFingerprint(Buffer.from(readFileSync(publicKeyFile, 'utf8').trim().split(/\s+/)[1], 'base64'));
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'vmdb-test', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function config(dir: string, port: number): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${join(dir, 'host_ed25519_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    // The temp dir is world-readable /tmp: StrictModes would refuse the authorized_keys in it.
    'StrictModes no',
    // PAM needs the system's service config and a real login session: not wanted in a test.
    'UsePAM no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    // Tests usually run as root in CI containers.
    'PermitRootLogin prohibit-password',
    `AllowUsers ${userInfo().username}`,
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

type Launch = { process: ChildProcess; stderr: string[] } | { error: string };

/** Starts sshd in the foreground and waits until it sends its banner, or exits. */
async function launch(dir: string, port: number): Promise<Launch> {
  const configFile = join(dir, `sshd_config_${port}`);
  writeFileSync(configFile, config(dir, port));
  const sshd = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  sshd.stderr?.setEncoding('utf8').on('data', (text: string) => stderr.push(text));
  const exited = new Promise<string>((resolve) => {
    sshd.once('exit', (code, signal) => resolve(`sshd exited (${signal ?? code}): ${stderr.join('').trim()}`));
    sshd.once('error', (err) => resolve(err.message));
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const outcome = await Promise.race([answersBanner(port), exited]);
    if (outcome === true) return { process: sshd, stderr };
    if (typeof outcome === 'string') return { error: outcome };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stopProcess(sshd);
  return { error: `no SSH banner on 127.0.0.1:${port} after 10 s: ${stderr.join('').trim()}` };
}

function answersBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('SSH-')));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/** A port nothing listens on, at the time of the call. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(killer);
}
