/**
 * SSH contextualization activities: wait until a new VM's sshd answers, then upload the
 * contextualization files and run the contextualization command on it.
 *
 * Every failure is an ApplicationFailure whose `type` the workflow can match on:
 *
 * | type                        | retryable | when                                                         |
 * |-----------------------------|-----------|--------------------------------------------------------------|
 * | `SshUnreachable`            | yes       | no SSH banner in time, connection refused or dropped         |
 * | `SshAuthFailed`             | no        | the VM refused the key: another attempt cannot succeed       |
 * | `ContextualizationFailed`   | yes       | the command exited non-zero or was killed                    |
 * | `ContextualizationTimedOut` | yes       | not done within timeoutSeconds; the command was killed       |
 * | `SshUploadFailed`           | yes       | a file could not be written                                  |
 * | `SshKeyMissing`             | no        | the worker was started without a private key                 |
 * | `InvalidArgument`           | no        | malformed activity input                                     |
 *
 * The retryable failures are retryable on purpose: a contextualization script often fails for a
 * passing reason (a package mirror, a slow boot). Whether they are retried, with which backoff and
 * for how long is the workflow's retry policy, not this file's decision. ContextualizationFailed and
 * ContextualizationTimedOut carry `{ exitCode, signal, outputTail }` as their first detail.
 * A retry uploads every file and runs the command again, so the command must be idempotent.
 *
 * Secrets: activity arguments, results and failures are stored in the workflow history, which
 * the Temporal UI shows. The private key therefore comes from the factory (worker configuration),
 * never from an argument. File contents and the output tail are in the history too.
 *
 * Cancellation reaches an activity only through heartbeats, so the workflow should set a
 * heartbeatTimeout on these activities; both heartbeat at least every second.
 *
 * The command: it runs under the user's login shell with stdin open and empty. It is over when its
 * exit status arrives, even if a process it left in the background (`agent &`) still holds the
 * output. On timeout or cancellation its whole process group is killed before disconnecting.
 */
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { posix } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from '@temporalio/common';
import { Client, utils, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { hostKeyFingerprint, isHostKeyFingerprint } from '../src/net/host-keys';
import { sshContextualization } from '../src/ops/metrics';

export interface SshActivitiesOptions {
  /** Private key (OpenSSH or PEM format, unencrypted) the worker logs in with. */
  privateKey?: string | Buffer;
  /** Or a file holding it, read once when the activities are created. */
  privateKeyPath?: string;
  /** Where progress and command output go; default the activity logger (Context.current().log). */
  log?: Logger;
}

export interface WaitForSshInput {
  host: string;
  port: number;
  timeoutSeconds: number;
}

export interface WaitForSshResult {
  /** The server's identification line, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2`. */
  banner: string;
  attempts: number;
}

export interface ContextualizationFile {
  /** Absolute, or relative to the user's home. Missing parent directories are created. */
  path: string;
  /** UTF-8 text. It is stored in the workflow history: no secrets. */
  content: string;
  /** e.g. 0o755; applied even when the file already exists. */
  mode?: number;
}

export interface ContextualizeInput {
  host: string;
  port: number;
  username: string;
  files: ContextualizationFile[];
  /** Run by the user's login shell. Its stdin stays open and empty (add `< /dev/null` if it reads it). */
  command: string;
  /** Covers connecting, uploading and the command. */
  timeoutSeconds: number;
  /**
   * The host keys the VM may present, as OpenSSH fingerprints (`SHA256:...`): any other fails the
   * contextualization (SshHostKeyMismatch). Absent, with anyHostKey absent too: a run begun before
   * host keys were checked, accepted with a warning.
   */
  hostKeys?: string[];
  /** The fleet file says so explicitly: the image's host keys are made at its first boot, known to nobody. */
  anyHostKey?: boolean;
}

export interface ContextualizeResult {
  exitCode: number;
  /** The last OUTPUT_TAIL_LINES lines of stdout and stderr, interleaved, joined by '\n'. */
  outputTail: string;
}

/** Details of ContextualizationFailed and ContextualizationTimedOut. */
export interface ContextualizationFailureDetails {
  exitCode: number | null;
  signal: string | null;
  outputTail: string;
}

export const OUTPUT_TAIL_LINES = 50;
/** One banner probe may take this long; a VM still booting often accepts and stays silent. */
const PROBE_TIMEOUT_MS = 2_000;
/** Pause between probes and between heartbeats. */
const PAUSE_MS = 1_000;
/** Longer lines are cut: they go to logs, heartbeats and the workflow history. */
const MAX_LINE_CHARS = 2_000;

export function createSshActivities(options: SshActivitiesOptions = {}) {
  const privateKey = loadPrivateKey(options);

  /** Polls host:port until it answers with an SSH banner ("SSH-..."). */
  async function waitForSsh({ host, port, timeoutSeconds }: WaitForSshInput): Promise<WaitForSshResult> {
    checkEndpoint(host, port, timeoutSeconds);
    const ctx = Context.current();
    const log = options.log ?? ctx.log;
    const deadline = Date.now() + timeoutSeconds * 1000;
    let lastError = '';
    for (let attempt = 1; ; attempt++) {
      const probeMs = Math.max(1, Math.min(PROBE_TIMEOUT_MS, deadline - Date.now()));
      try {
        const banner = await Promise.race([readBanner(host, port, probeMs, ctx.cancellationSignal), ctx.cancelled]);
        log.info('SSH is answering', { host, port, banner, attempts: attempt });
        return { banner, attempts: attempt };
      } catch (err) {
        if (err instanceof CancelledFailure) throw err;
        lastError = errorMessage(err);
      }
      ctx.heartbeat({ attempt, lastError });
      const left = deadline - Date.now();
      if (left <= 0) {
        throw ApplicationFailure.create({
          type: 'SshUnreachable',
          message: `${host}:${port} gave no SSH banner within ${timeoutSeconds} s (${attempt} attempts; last: ${lastError})`,
          details: [{ attempts: attempt, lastError }],
        });
      }
      await ctx.sleep(Math.min(PAUSE_MS, left)); // throws CancelledFailure when cancelled
    }
  }

  /**
   * Uploads the files over SFTP, then runs the command, logging its output line by line. Each
   * attempt's duration goes to vmdb_ssh_contextualization_seconds, labelled by its outcome.
   */
  async function contextualize(input: ContextualizeInput): Promise<ContextualizeResult> {
    const started = performance.now();
    let outcome = 'success';
    try {
      return await contextualizeOnce(input);
    } catch (err) {
      outcome = err instanceof CancelledFailure ? 'cancelled' : err instanceof ApplicationFailure && err.type ? err.type : 'error';
      throw err;
    } finally {
      sshContextualization.observe({ outcome }, (performance.now() - started) / 1000);
    }
  }

  async function contextualizeOnce(input: ContextualizeInput): Promise<ContextualizeResult> {
    const { host, port, username, files, command, timeoutSeconds } = input;
    checkEndpoint(host, port, timeoutSeconds);
    checkContextualization(username, files, command);
    checkHostKeys(input.hostKeys, input.anyHostKey);
    if (privateKey === undefined) {
      throw ApplicationFailure.nonRetryable('this worker has no SSH private key (privateKey or privateKeyPath)', 'SshKeyMissing');
    }
    const ctx = Context.current();
    const log = options.log ?? ctx.log;
    const where = `${username}@${host}:${port}`;
    const tail = new OutputTail(OUTPUT_TAIL_LINES);
    let phase: 'connect' | 'upload' | 'command' = 'connect';

    const pinned = input.hostKeys;
    if (pinned === undefined && !input.anyHostKey) log.warn('Host key not checked: this run began before vmdb checked host keys', { host });
    const hostKeyAccepted = (fingerprint: string) => pinned === undefined || pinned.includes(fingerprint);
    let presented: string | undefined;
    const conn = new Client();
    // An 'error' event without a listener would crash the worker: listen before connecting.
    const dropped = new Promise<never>((_, reject) => {
      const refusedKey = () => (presented !== undefined && !hostKeyAccepted(presented) ? hostKeyMismatch(where, presented, pinned!) : undefined);
      conn.on('error', (err) => reject(refusedKey() ?? connectionFailure(err, where)));
      conn.on('close', () => reject(refusedKey() ?? ApplicationFailure.create({ type: 'SshUnreachable', message: `connection to ${where} closed during ${phase}` })));
    });
    dropped.catch(() => undefined); // it also rejects when we close the connection ourselves

    let running: number | undefined; // the command's process group, until it exits
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const details: ContextualizationFailureDetails = { exitCode: null, signal: null, outputTail: tail.text() };
        reject(ApplicationFailure.create({
          type: 'ContextualizationTimedOut',
          message: `contextualization of ${where} not done within ${timeoutSeconds} s (during ${phase})${tail.lastLines(10)}`,
          details: [details],
        }));
      }, timeoutSeconds * 1000);
    });
    const beat = setInterval(() => ctx.heartbeat({ phase, lines: tail.count }), PAUSE_MS);

    const session = async (): Promise<ContextualizeResult> => {
      const config: ConnectConfig = {
        host,
        port,
        username,
        privateKey,
        // A stuck handshake fails (retryably) after 30 s; under that, the overall timeout reports it.
        readyTimeout: timeoutSeconds < 30 ? timeoutSeconds * 1000 + 1_000 : 30_000,
        // A VM that dies mid-command is noticed in ~15 s instead of at the timeout.
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          presented = hostKeyFingerprint(key);
          return hostKeyAccepted(presented);
        },
      };
      await Promise.race([new Promise<void>((resolve) => conn.once('ready', resolve).connect(config)), dropped]);

      phase = 'upload';
      const sftp = await Promise.race([openSftp(conn), dropped]);
      try {
        for (const file of files) {
          await Promise.race([upload(sftp, file), dropped]);
          ctx.heartbeat({ phase, uploaded: file.path });
        }
      } finally {
        sftp.end();
      }
      log.info('Contextualization files uploaded', { host, files: files.map((f) => f.path) });

      phase = 'command';
      const onLine = (stream: 'stdout' | 'stderr', line: string) => {
        tail.push(line);
        log.info(line, { host, stream });
      };
      const exit = await Promise.race([runCommand(conn, command, onLine, (pgid) => (running = pgid)), dropped]);
      running = undefined;
      if (exit.code === 0) return { exitCode: 0, outputTail: tail.text() };
      const details: ContextualizationFailureDetails = { exitCode: exit.code, signal: exit.signal, outputTail: tail.text() };
      const how = exit.code !== null ? `exited with code ${exit.code}` : exit.signal ? `was killed by SIG${exit.signal}` : 'ended without an exit status';
      throw ApplicationFailure.create({
        type: 'ContextualizationFailed',
        message: `contextualization command on ${where} ${how}${tail.lastLines(10)}`,
        details: [details],
      });
    };

    try {
      return await Promise.race([session(), timedOut, dropped, ctx.cancelled]);
    } catch (err) {
      if (err instanceof ApplicationFailure || err instanceof CancelledFailure) throw err;
      throw ApplicationFailure.create({ type: 'SshUnreachable', message: `contextualization of ${where} failed: ${errorMessage(err)}`, cause: err as Error });
    } finally {
      clearTimeout(timer);
      clearInterval(beat);
      // On timeout or cancellation the command may still run: kill it, so that a retry never
      // overlaps it, then hang up.
      if (running !== undefined) await killProcessGroup(conn, running);
      conn.end();
    }
  }

  return { waitForSsh, contextualize };
}

/** The activities' interface, for proxyActivities<SshActivities>() in workflows. */
export type SshActivities = ReturnType<typeof createSshActivities>;

function loadPrivateKey({ privateKey, privateKeyPath }: SshActivitiesOptions): string | Buffer | undefined {
  if (privateKey !== undefined && privateKeyPath !== undefined) throw new Error('give privateKey or privateKeyPath, not both');
  const key = privateKey ?? (privateKeyPath !== undefined ? readFileSync(privateKeyPath) : undefined);
  if (key === undefined) return undefined;
  // Checked now so a bad key stops the worker at start-up instead of failing every contextualization.
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) throw new Error(`SSH private key ${privateKeyPath ?? '(privateKey option)'} is unusable: ${parsed.message}`);
  return key;
}

function checkEndpoint(host: unknown, port: unknown, timeoutSeconds: unknown): void {
  if (typeof host !== 'string' || host === '') invalid('host must be a non-empty string');
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) invalid(`port must be an integer in 1..65535, got ${String(port)}`);
  if (typeof timeoutSeconds !== 'number' || !(timeoutSeconds > 0) || !Number.isFinite(timeoutSeconds)) invalid(`timeoutSeconds must be a positive number, got ${String(timeoutSeconds)}`);
}

function checkContextualization(username: unknown, files: unknown, command: unknown): void {
  if (typeof username !== 'string' || username === '') invalid('username must be a non-empty string');
  if (typeof command !== 'string' || command.trim() === '') invalid('command must be a non-empty string');
  if (!Array.isArray(files)) invalid('files must be an array');
  for (const [i, file] of (files as ContextualizationFile[]).entries()) {
    if (typeof file?.path !== 'string' || file.path === '' || file.path.endsWith('/')) invalid(`files[${i}].path must be a file path`);
    if (typeof file.content !== 'string') invalid(`files[${i}].content must be a string`);
    if (file.mode !== undefined && (!Number.isInteger(file.mode) || file.mode < 0 || file.mode > 0o7777)) invalid(`files[${i}].mode must be a permission number such as 0o755`);
  }
}

function checkHostKeys(hostKeys: unknown, anyHostKey: unknown): void {
  if (anyHostKey !== undefined && typeof anyHostKey !== 'boolean') invalid('anyHostKey must be a boolean');
  if (hostKeys === undefined) return;
  if (!Array.isArray(hostKeys) || hostKeys.length === 0) invalid('hostKeys must be a non-empty array of SHA256: fingerprints');
  for (const [i, key] of hostKeys.entries()) if (!isHostKeyFingerprint(key)) invalid(`hostKeys[${i}] must be an OpenSSH fingerprint such as SHA256:<43 base64 characters> (ssh-keygen -lf <key>.pub)`);
}

/** The VM presented a host key nobody pinned: no retry changes that, and the files and command must not reach it. */
function hostKeyMismatch(where: string, presented: string, pinned: readonly string[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'SshHostKeyMismatch',
    nonRetryable: true,
    message: `${where} presented host key ${presented}, which is not one of contextualization.hostKeys (${pinned.join(', ')}): refusing to log in`,
  });
}

function invalid(message: string): never {
  throw ApplicationFailure.nonRetryable(message, 'InvalidArgument');
}

function connectionFailure(err: Error & { level?: string }, where: string): ApplicationFailure {
  if (err.level === 'client-authentication') {
    return ApplicationFailure.create({ type: 'SshAuthFailed', nonRetryable: true, message: `${where} refused the worker's SSH key (${err.message})` });
  }
  return ApplicationFailure.create({ type: 'SshUnreachable', message: `SSH connection to ${where} failed: ${err.message}`, cause: err });
}

/** Connects and reads lines until one starts with "SSH-" (RFC 4253 §4.2 allows other lines first). */
function readBanner(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    let received = '';
    let settled = false;
    const finish = (err: Error | undefined, banner?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(banner as string);
    };
    const onAbort = () => finish(new Error('cancelled'));
    const timer = setTimeout(() => finish(new Error(`no banner within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const lines = received.split('\n');
      for (const line of lines.slice(0, -1)) {
        if (line.startsWith('SSH-')) return finish(undefined, line.replace(/\r$/, ''));
      }
      if (received.length > 8192) finish(new Error('no SSH banner in the first 8 KiB'));
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error('connection closed before an SSH banner')));
  });
}

function openSftp(conn: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => conn.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

async function upload(sftp: SFTPWrapper, file: ContextualizationFile): Promise<void> {
  try {
    await ensureDir(sftp, posix.dirname(file.path));
    await new Promise<void>((resolve, reject) =>
      sftp.writeFile(file.path, file.content, { mode: file.mode ?? 0o644 }, (err) => (err ? reject(err) : resolve())),
    );
    // The mode given to open() only applies to a new file, and the server's umask trims it.
    if (file.mode !== undefined) {
      await new Promise<void>((resolve, reject) => sftp.chmod(file.path, file.mode as number, (err) => (err ? reject(err) : resolve())));
    }
  } catch (err) {
    throw ApplicationFailure.create({ type: 'SshUploadFailed', message: `cannot write ${file.path}: ${errorMessage(err)}`, cause: err as Error });
  }
}

/** mkdir -p over SFTP. */
async function ensureDir(sftp: SFTPWrapper, dir: string): Promise<void> {
  if (dir === '/' || dir === '.') return;
  const isDir = (): Promise<boolean | undefined> =>
    new Promise((resolve) => sftp.stat(dir, (err, stats) => resolve(err ? undefined : stats.isDirectory())));
  const existing = await isDir();
  if (existing === true) return;
  if (existing === false) throw new Error(`${dir} exists and is not a directory`);
  await ensureDir(sftp, posix.dirname(dir));
  await new Promise<void>((resolve, reject) => sftp.mkdir(dir, (err) => (err ? reject(new Error(`mkdir ${dir}: ${err.message}`)) : resolve())));
}

interface CommandExit {
  code: number | null;
  signal: string | null;
}

/** Printed by the shell before the command, so the command's process group can be killed later. */
const PGID_MARKER = 'vmdb-ssh-pgid=';
/** After the exit status, how long to wait for the rest of the output. */
const EXIT_GRACE_MS = 2_000;

/**
 * Runs the command; resolves when its channel closes. Output is split into lines as it arrives.
 *
 * sshd starts the command's shell with setsid(), so the shell's PID ($$) is its process group.
 * The shell prints it first (that line is not output) and onProcessGroup receives it.
 */
function runCommand(
  conn: Client,
  command: string,
  onLine: (stream: 'stdout' | 'stderr', line: string) => void,
  onProcessGroup: (pgid: number) => void,
): Promise<CommandExit> {
  return new Promise((resolve, reject) => {
    conn.exec(`echo ${PGID_MARKER}$$; ${command}`, (err, channel) => {
      if (err) return reject(err);
      let first = true;
      const stdout = new LineSplitter((line) => {
        if (first && line.startsWith(PGID_MARKER)) onProcessGroup(Number(line.slice(PGID_MARKER.length)));
        else onLine('stdout', line);
        first = false;
      });
      const stderr = new LineSplitter((line) => onLine('stderr', line));
      const exit: CommandExit = { code: null, signal: null };
      let grace: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(grace);
        stdout.flush();
        stderr.flush();
        resolve(exit);
      };
      channel.on('exit', (code: number | null, signal?: string) => {
        exit.code = code;
        exit.signal = signal ?? null;
        // A background process the command started (`agent &`) keeps the output pipes, and with
        // them the channel, open: the exit status is what tells that the command is over.
        grace = setTimeout(done, EXIT_GRACE_MS);
      });
      channel.on('data', (chunk: Buffer) => stdout.push(chunk));
      channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      channel.on('close', done);
    });
  });
}

/**
 * Kills a process group over a second channel of the same connection. The SSH "signal" request
 * would be simpler, but sshd refuses it for root logins (they run without privilege separation
 * after authentication), and root is the usual contextualization user. Best effort, bounded.
 */
function killProcessGroup(conn: Client, pgid: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      conn.exec(`kill -s KILL -- -${pgid}`, (err, channel) => {
        if (err) return finish();
        channel.on('close', finish).resume();
        channel.stderr.resume();
      });
    } catch {
      finish(); // the connection is already gone
    }
  });
}

/** ANSI escape sequences (colours, cursor moves), then any other control character but tab. */
const TERMINAL_NOISE = /\x1b\[[0-9;?]*[ -\/]*[@-~]|[\x00-\x08\x0a-\x1f\x7f]/g;

/**
 * Cuts a byte stream into lines, keeping multi-byte characters whole and overlong lines bounded.
 * Lines are cleaned of control characters: they end up in logs and in failure messages, and the
 * database refuses control characters in an instance's error message.
 */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private readonly emit: (line: string) => void;
  constructor(emit: (line: string) => void) {
    this.emit = (line) => emit(line.replace(TERMINAL_NOISE, '').slice(0, MAX_LINE_CHARS));
  }

  push(chunk: Buffer): void {
    this.pending += this.decoder.write(chunk);
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      this.emit(this.pending.slice(0, newline));
      this.pending = this.pending.slice(newline + 1);
    }
    if (this.pending.length > MAX_LINE_CHARS) {
      this.emit(this.pending);
      this.pending = '';
    }
  }

  flush(): void {
    this.pending += this.decoder.end();
    if (this.pending !== '') this.emit(this.pending);
    this.pending = '';
  }
}

/** The last `size` lines of output, for the result and for failure messages. */
class OutputTail {
  private readonly lines: string[] = [];
  count = 0;
  constructor(private readonly size: number) {}

  push(line: string): void {
    this.count++;
    this.lines.push(line);
    if (this.lines.length > this.size) this.lines.shift();
  }

  text(): string {
    return this.lines.join('\n');
  }

  /** A suffix for a failure message: the UI shows the message first. */
  lastLines(n: number): string {
    return this.lines.length === 0 ? '' : `; last output:\n${this.lines.slice(-n).join('\n')}`;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
