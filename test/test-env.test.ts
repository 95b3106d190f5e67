import { strict as assert } from 'node:assert';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MYSQL_SERVER_URL } from './support/backends';
import { freePort } from './support/sshd';
import { type SystemNeed, mysqlAnswers, provisioning, systemNeeds, withSbin } from './support/test-env';

const ROOT = join(__dirname, '..', '..');
const TEST_ENV = join(ROOT, 'dist/test/support/test-env.js');

/** Runs a Node one-liner under `npm test`'s provisioning, with VMDB_TEST_MYSQL_URL as given. */
function underTestEnv(script: string, mysqlUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TEST_ENV, process.execPath, '-e', script], { cwd: ROOT, env: { ...process.env, VMDB_TEST_MYSQL_URL: mysqlUrl }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

// What the command sees: its VMDB_TEST_MYSQL_URL, and the port and data folder of the server there.
const PROBE = `
const { createConnection } = require(${JSON.stringify(require.resolve('mysql2/promise'))});
(async () => {
  const url = new URL(process.env.VMDB_TEST_MYSQL_URL);
  const conn = await createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
  const [[row]] = await conn.query('SELECT @@port AS port, @@datadir AS datadir');
  await conn.end();
  console.log(JSON.stringify({ url: process.env.VMDB_TEST_MYSQL_URL, port: row.port, datadir: row.datadir }));
  process.exit(3);
})();
`;

describe('npm test provisioning (test/support/test-env.ts)', function () {
  this.timeout(150_000);

  describe('system packages', function () {
    const need = (tool: string, found: boolean, packages: string[]): SystemNeed => ({ tool, found, packages });
    const needs = [need('/usr/sbin/sshd', false, ['openssh-server']), need('mariadbd', true, ['mariadb-server-core']), need('/usr/bin/chromium', false, ['chromium', 'fonts-dejavu-core'])];

    it('nothing to do when every tool is there', function () {
      assert.equal(provisioning(needs.map((n) => ({ ...n, found: true })), { root: false, apt: true }), undefined);
    });

    it('as root with apt-get: installs the packages of the missing tools only', function () {
      assert.deepEqual(provisioning(needs, { root: true, apt: true }), { install: ['openssh-server', 'chromium', 'fonts-dejavu-core'] });
    });

    it('without root: one line naming the command to run', function () {
      const plan = provisioning(needs, { root: false, apt: true });
      assert.ok(plan && 'advice' in plan);
      assert.equal(plan.advice, 'npm test needs /usr/sbin/sshd, /usr/bin/chromium: run "sudo apt-get install -y -q --no-install-recommends openssh-server chromium fonts-dejavu-core" once, then npm test again');
      assert.doesNotMatch(plan.advice, /\n/);
    });

    it('without apt-get: one line naming the tools and Debian\'s packages', function () {
      const plan = provisioning(needs, { root: true, apt: false });
      assert.ok(plan && 'advice' in plan);
      assert.match(plan.advice, /^npm test needs \/usr\/sbin\/sshd, \/usr\/bin\/chromium: install them \(Debian packages openssh-server chromium fonts-dejavu-core\)/);
    });

    it('a Chromium named by VMDB_TEST_CHROMIUM is not installed from Debian; the sbin folders join PATH for mariadbd', function () {
      assert.deepEqual(systemNeeds({ PATH: '/usr/bin', VMDB_TEST_CHROMIUM: '/opt/chrome' }).flatMap((n) => n.packages), ['openssh-server', 'mariadb-server-core', 'mariadb-client-core']);
      assert.ok(systemNeeds({ PATH: '/usr/bin' }).some((n) => n.packages.includes('chromium')));
      assert.equal(withSbin('/usr/bin:/usr/sbin'), '/usr/bin:/usr/sbin:/usr/local/sbin:/sbin');
    });

    it('every package it may install exists in this machine\'s Debian archive (apt-get, simulated)', function () {
      if (spawnSync('apt-get', ['--version']).status !== 0) this.skip();
      const packages = systemNeeds({ PATH: '' }).flatMap((n) => n.packages);
      const run = spawnSync('apt-get', ['install', '-s', '-q', '--no-install-recommends', ...packages], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(packages.filter((p) => !run.stdout.includes(p)), [], run.stdout);
    });
  });

  describe('the MariaDB of the tests', function () {
    it('nothing answers at VMDB_TEST_MYSQL_URL: a private server for the command, stopped and removed after it; its exit code is kept', async function () {
      const nowhere = `mysql://root@127.0.0.1:${await freePort()}`;
      assert.equal(await mysqlAnswers(nowhere), false);
      const run = await underTestEnv(PROBE, nowhere);
      assert.equal(run.code, 3, run.stderr);
      const seen = JSON.parse(run.stdout) as { url: string; port: number; datadir: string };
      assert.notEqual(seen.url, nowhere);
      assert.equal(Number(new URL(seen.url).port), seen.port);
      assert.match(run.stderr, /nothing answers at mysql:\/\/root@127\.0\.0\.1:\d+; starting a private MariaDB/);
      assert.equal(await mysqlAnswers(seen.url), false, 'the private server is stopped');
      assert.equal(existsSync(seen.datadir), false, 'its data folder is removed');
    });

    it('a server answers: the command gets the same url', async function () {
      const run = await underTestEnv(PROBE, MYSQL_SERVER_URL);
      assert.equal(run.code, 3, run.stderr);
      assert.equal((JSON.parse(run.stdout) as { url: string }).url, MYSQL_SERVER_URL);
      assert.equal(run.stderr, '');
    });

    it('a server answers but refuses the tests: one line, no password, no command run', async function () {
      const server = new URL(MYSQL_SERVER_URL);
      const refused = `mysql://vmdb_no_such_user:s3cret-pw@${server.host}`;
      const run = await underTestEnv(PROBE, refused);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^npm test: the MySQL\/MariaDB server at \S+ answers but refuses the tests \(.*\); set VMDB_TEST_MYSQL_URL to a server where they may create databases\n$/);
      assert.doesNotMatch(run.stderr, /s3cret-pw/);
    });
  });
});
