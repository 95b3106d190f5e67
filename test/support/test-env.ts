import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { constants as os, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { redact } from '../../src/db/database';
import { MYSQL_SERVER_URL, withMysql } from './backends';
import { CHROMIUM } from './browser';
import { PrivateMariaDB } from './processes';
import { SSHD, freePort } from './sshd';

/**
 * `npm test`'s provisioning, run around the test command: `node test-env.js <command...>`.
 * It installs the system tools the tests run (Debian packages, when missing), and starts a private
 * MariaDB when nothing answers at the test server's url, which the command then gets as
 * VMDB_TEST_MYSQL_URL; the server is stopped when the command ends. The Python tools (Temporal,
 * moto, schemathesis) are installed by the tests themselves on first use.
 */

/** A tool the tests run and the Debian packages that provide it. */
export interface SystemNeed {
  tool: string;
  found: boolean;
  packages: string[];
}

// mariadbd lives in an sbin folder, which a user's PATH may lack.
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const onPath = (name: string, path = process.env.PATH ?? '') => path.split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, name)));

/** PATH with the sbin folders appended when absent. */
export function withSbin(path = ''): string {
  const dirs = path.split(delimiter).filter((dir) => dir !== '');
  return [...dirs, ...SBIN.filter((dir) => !dirs.includes(dir))].join(delimiter);
}

/** The system tools of the tests: sshd (SSH tests), Chromium (dashboard), MariaDB's server binaries (fault suite, private server). */
export function systemNeeds(env: NodeJS.ProcessEnv = process.env): SystemNeed[] {
  const needs: SystemNeed[] = [
    { tool: SSHD, found: isExecutable(SSHD), packages: ['openssh-server'] },
    { tool: 'mariadbd and mariadb-install-db', found: onPath('mariadbd', env.PATH) && onPath('mariadb-install-db', env.PATH), packages: ['mariadb-server-core', 'mariadb-client-core'] },
  ];
  // A Chromium named by VMDB_TEST_CHROMIUM is the user's own; Debian's is installed when missing.
  if (!env.VMDB_TEST_CHROMIUM) needs.push({ tool: CHROMIUM, found: isExecutable(CHROMIUM), packages: ['chromium', 'fonts-dejavu-core'] });
  return needs;
}

/** What to do about the missing tools: nothing, install packages (as root, with apt-get), or stop with one line that says how. */
export function provisioning(needs: readonly SystemNeed[], can: { root: boolean; apt: boolean }): { install: string[] } | { advice: string } | undefined {
  const missing = needs.filter((n) => !n.found);
  if (missing.length === 0) return undefined;
  const packages = missing.flatMap((n) => n.packages);
  const tools = missing.map((n) => n.tool).join(', ');
  if (!can.apt) return { advice: `npm test needs ${tools}: install them (Debian packages ${packages.join(' ')}) and run npm test again` };
  if (!can.root) return { advice: `npm test needs ${tools}: run "sudo ${aptInstall(packages).join(' ')}" once, then npm test again` };
  return { install: packages };
}

const aptInstall = (packages: readonly string[]) => ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...packages];

function apt(args: readonly string[]): boolean {
  // apt's progress goes to stderr: stdout stays the tests' report.
  const result = spawnSync(args[0], args.slice(1), { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return result.status === 0;
}

/** Installs what is missing, or throws the one line that says how. */
export function provisionSystem(): void {
  const plan = provisioning(systemNeeds(), { root: process.getuid?.() === 0, apt: onPath('apt-get') });
  if (plan === undefined) return;
  if ('advice' in plan) throw new ProvisioningError(plan.advice);
  console.error(`npm test: installing ${plan.install.join(' ')}`);
  // A fresh machine's package lists may be stale or absent: update once and retry.
  if (!apt(aptInstall(plan.install)) && !(apt(['apt-get', 'update', '-q']) && apt(aptInstall(plan.install)))) {
    throw new ProvisioningError(`npm test: "${aptInstall(plan.install).join(' ')}" failed (output above)`);
  }
  const still = systemNeeds().filter((n) => !n.found);
  if (still.length) throw new ProvisioningError(`npm test: still missing after the install: ${still.map((n) => n.tool).join(', ')}`);
}

export class ProvisioningError extends Error {}

// Nothing listens there (as opposed to a server that answers and refuses us).
const NOTHING_THERE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** True when a server answers at the url and lets us in; false when nothing answers; throws when it refuses. */
export async function mysqlAnswers(url: string): Promise<boolean> {
  try {
    await withMysql(url, (conn) => conn.query('SELECT 1'));
    return true;
  } catch (err) {
    if (NOTHING_THERE.has((err as NodeJS.ErrnoException).code ?? '')) return false;
    throw new ProvisioningError(`npm test: the MySQL/MariaDB server at ${redact(url)} answers but refuses the tests (${(err as Error).message}); set VMDB_TEST_MYSQL_URL to a server where they may create databases`);
  }
}

/** Runs the command with the environment; resolves with its exit code (128 + n after signal n). */
function runCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit', env });
  // Ctrl-C reaches the command too (same process group): wait for it, then clean up.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.once('error', (err) => {
      console.error(`npm test: cannot run ${argv[0]}: ${err.message}`);
      resolve(127);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? 128 + (signal ? os.signals[signal] : 0));
    });
  });
}

export async function withTestEnvironment(argv: readonly string[]): Promise<number> {
  process.env.PATH = withSbin(process.env.PATH);
  provisionSystem();
  const env: NodeJS.ProcessEnv = { ...process.env };
  let server: PrivateMariaDB | undefined;
  let dir: string | undefined;
  try {
    if (!(await mysqlAnswers(MYSQL_SERVER_URL))) {
      dir = mkdtempSync(join(tmpdir(), 'vmdb-test-mariadb-'));
      server = new PrivateMariaDB(dir, await freePort(), { checksPasswords: true });
      console.error(`npm test: nothing answers at ${redact(MYSQL_SERVER_URL)}; starting a private MariaDB for this run`);
      await server.create();
      env.VMDB_TEST_MYSQL_URL = server.serverUrl;
      console.error(`npm test: private MariaDB at ${server.serverUrl} (data in ${dir}); stopped at the end`);
    }
    return await runCommand(argv, env);
  } finally {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv.length === 0) {
    console.error('usage: node test-env.js <command> [args...]');
    process.exit(2);
  }
  withTestEnvironment(argv).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof ProvisioningError ? err.message : err);
      process.exit(1);
    },
  );
}
