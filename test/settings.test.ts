import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadApiConfig } from '../src/api/config';
import { loadConfig } from '../src/config/database';
import { MIGRATIONS } from '../entities/migrations';
import { loadFleetConfig } from '../src/config/fleet';
import {
  DEFAULT_TASK_QUEUE_NAME,
  OTHER_KNOWN_VARIABLES,
  SETTINGS,
  SettingsError,
  applyConfigFile,
  isKnownVariable,
  loadSettings,
  readSettings,
  settingsSource,
  unknownVariables,
} from '../src/config/settings';
import { loadTemporalSettings } from '../src/config/temporal';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions';
import { type ChildRun, runNode } from './support/processes';

const ROOT = join(__dirname, '..', '..');
const CLI = join(__dirname, '..', 'src', 'cli', 'main.js');

/** Runs the built CLI with only PATH and HOME from this process, plus `env`: no stray settings of the machine. */
function runCli(args: string[], env: Record<string, string>): Promise<ChildRun> {
  return runNode(CLI, args, { PATH: process.env.PATH, HOME: process.env.HOME, ...env });
}
const SECRET = 'a-token-secret-0123456789';
const ADMIN = 'an-admin-token-0123456789';

/** The problems loadSettings reports, one message each; [] when it accepts. */
function problems(env: Record<string, string | undefined>, options: Parameters<typeof loadSettings>[1] = {}): string[] {
  try {
    loadSettings(env, options);
    return [];
  } catch (err) {
    assert.ok(err instanceof SettingsError, String(err));
    assert.ok(err.problems.length > 0);
    return err.problems.map((p) => p.message);
  }
}

describe('settings (src/config/settings.ts)', function () {
  const dir = mkdtempSync(join(tmpdir(), 'vmdb-settings-'));
  const file = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults: nothing set is a valid configuration for migrate and the embedded stack', function () {
    const settings = loadSettings({});
    assert.equal(settings.databaseUrl, 'sqlite:vmdb.sqlite');
    assert.equal(settings.stallingInterval, 2400);
    assert.equal(settings.autoMigrate, true);
    assert.deepEqual(settings.api, {
      host: '127.0.0.1', port: 8080, publicUrl: 'http://127.0.0.1:8080', tokenSecret: undefined, previousTokenSecrets: [], adminToken: undefined, operatorTokensFile: undefined, temporalUiUrl: undefined,
      metricsToken: undefined,
      rateLimits: { perToken: 1200, perAddress: 600, authFailures: 10 },
      tls: undefined, // plain HTTP
      trustProxy: false, // the connection's address, whatever X-Forwarded-For says
    });
    assert.deepEqual(settings.temporal, { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'vmdb', tls: undefined, apiKey: undefined });
    assert.equal(settings.workerHealth, undefined);
    assert.equal(settings.workerCachedWorkflows, undefined, "the SDK's own default");
    assert.deepEqual(settings.devTemporal, { port: 7233, uiPort: 8233 });
    assert.equal(DEFAULT_TASK_QUEUE_NAME, DEFAULT_TASK_QUEUE, 'settings.ts keeps the task queue default of workflows/definitions.ts');
  });

  it('reads typed values from the environment', function () {
    const settings = loadSettings({
      VMDB_DATABASE_URL: 'mysql://vmdb:pw@db:3306/vmdb',
      VMDB_STALLING_INTERVAL: '600',
      VMDB_AUTO_MIGRATE: 'false',
      VMDB_API_PORT: '9090',
      VMDB_WORKER_HEALTH_PORT: '9466',
      VMDB_WORKER_CACHED_WORKFLOWS: '20000',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_API_KEY: 'key',
    });
    assert.equal(settings.workerCachedWorkflows, 20000);
    assert.equal(settings.stallingInterval, 600);
    assert.equal(settings.autoMigrate, false);
    assert.equal(settings.api.port, 9090);
    assert.equal(settings.api.publicUrl, 'http://127.0.0.1:9090');
    assert.deepEqual(settings.workerHealth, { host: '127.0.0.1', port: 9466 });
    assert.equal(settings.temporal.address, 'temporal:7233');
    assert.ok(settings.temporal.tls, 'an API key implies TLS');
    for (const [raw, value] of [['true', true], ['TRUE', true], ['1', true], ['yes', true], ['no', false], ['0', false], ['off', false]] as const) {
      assert.equal(loadSettings({ VMDB_AUTO_MIGRATE: raw }).autoMigrate, value, raw);
    }
  });

  describe('stops with a message that names the setting', function () {
    it('a bad database url (password masked)', function () {
      const found = problems({ VMDB_DATABASE_URL: 'postgres://vmdb:hunter2@db/vmdb' });
      assert.equal(found.length, 1);
      assert.match(found[0], /^VMDB_DATABASE_URL: Database url scheme "postgres:" is not supported/);
      assert.match(problems({ VMDB_DATABASE_URL: 'mysql://vmdb:hunter2@db:3306/' })[0], /^VMDB_DATABASE_URL: .*names no database/);
      assert.match(problems({ VMDB_DATABASE_URL: 'sqlite:' })[0], /^VMDB_DATABASE_URL: .*names no file/);
      for (const message of [...found, ...problems({ VMDB_DATABASE_URL: 'mysql://vmdb:hunter2@db:3306/' })]) assert.doesNotMatch(message, /hunter2/);
    });

    it('other bad urls, addresses, ports, numbers and booleans', function () {
      const found = problems({
        VMDB_PUBLIC_API_URL: 'ftp://vmdb.example.org',
        TEMPORAL_ADDRESS: 'temporal',
        VMDB_API_PORT: '70000',
        VMDB_WORKER_HEALTH_PORT: 'x',
        VMDB_WORKER_METRICS_PORT: 'a:b',
        VMDB_STALLING_INTERVAL: '-5',
        VMDB_WORKER_CACHED_WORKFLOWS: '0',
        VMDB_AUTO_MIGRATE: 'maybe',
        VMDB_API_HOST: 'a host',
      });
      const expected = [
        /VMDB_PUBLIC_API_URL must be an http:\/\/ or https:\/\/ url, got "ftp:\/\/vmdb.example.org"/,
        /TEMPORAL_ADDRESS must be host:port .*got "temporal"/,
        /VMDB_API_PORT must be a port number \(0-65535\), got "70000"/,
        /VMDB_WORKER_HEALTH_PORT must be a port number/,
        /VMDB_WORKER_METRICS_PORT must be a port or host:port/,
        /VMDB_STALLING_INTERVAL must be a positive integer, got "-5"/,
        /VMDB_WORKER_CACHED_WORKFLOWS must be a positive integer, got "0"/,
        /VMDB_AUTO_MIGRATE must be true or false, got "maybe"/,
        /VMDB_API_HOST must be a host name or an IP address/,
      ];
      assert.equal(found.length, expected.length, found.join('\n'));
      for (const pattern of expected) assert.ok(found.some((p) => pattern.test(p)), `${pattern} in\n${found.join('\n')}`);
    });

    it('a missing secret, for the roles that need it', function () {
      assert.deepEqual(problems({}, { require: [] }), []);
      const api = problems({}, { require: ['api'] });
      assert.equal(api.length, 2);
      assert.match(api[0], /^VMDB_TOKEN_SECRET is not set/);
      assert.match(api[1], /^No operator token: set VMDB_OPERATOR_TOKENS_FILE and\/or VMDB_ADMIN_TOKEN/);
      const worker = problems({ VMDB_ADMIN_TOKEN: ADMIN }, { require: ['worker'] });
      assert.equal(worker.length, 1);
      assert.match(worker[0], /^VMDB_TOKEN_SECRET is not set.*worker/);
      assert.deepEqual(problems({ VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: ADMIN }, { require: ['api', 'worker'] }), []);
      assert.match(problems({ VMDB_TOKEN_SECRET: 'short', VMDB_ADMIN_TOKEN: ADMIN }, { require: ['api'] })[0], /VMDB_TOKEN_SECRET must be at least 16 characters/);
      assert.match(problems({ VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: 'short' }, { require: ['api'] })[0], /VMDB_ADMIN_TOKEN must be at least 16 characters/);
      const tls = problems({ TEMPORAL_TLS_CERT: '/etc/vmdb/client.pem' }, { checkFiles: false });
      assert.deepEqual(tls, ['TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be given together']);
    });

    it('a file setting that names a file that cannot be read', function () {
      const found = problems({ VMDB_FLEET_FILE: join(dir, 'no-fleet.json'), VMDB_SSH_KEY_FILE: join(dir, 'no-key') });
      assert.deepEqual(found, [`VMDB_FLEET_FILE: cannot read ${join(dir, 'no-fleet.json')}`, `VMDB_SSH_KEY_FILE: cannot read ${join(dir, 'no-key')}`]);
      assert.deepEqual(problems({ VMDB_FLEET_FILE: join(dir, 'no-fleet.json') }, { checkFiles: false }), []);
    });

    it('an unknown VMDB_* variable, with the closest known name and the list of known ones', function () {
      const found = problems({ VMDB_STALING_INTERVAL: '60', VMDB_FROBNICATE: '1' });
      assert.match(found[0], /^VMDB_FROBNICATE is not a vmdb setting$/);
      assert.match(found[1], /^VMDB_STALING_INTERVAL is not a vmdb setting \(did you mean VMDB_STALLING_INTERVAL\?\)$/);
      assert.match(found[2], /^known VMDB_\* settings: VMDB_CONFIG_FILE, VMDB_DATABASE_URL, VMDB_STALLING_INTERVAL, VMDB_AUTO_MIGRATE, /);
      assert.deepEqual(problems({ VMDB_FROBNICATE: '1' }, { checkUnknown: false }), []);
      // Variables of other programs are none of vmdb's business.
      assert.deepEqual(problems({ TEMPORAL_CLI_ADDRESS: 'x', NODE_ENV: 'production', MYSQL_PWD: 'x' }), []);
    });

    it('the agent, CLI, local-VM and test variables are known', function () {
      const inherited: Record<string, string> = { VMDB_AGENT_PERIOD: '10', VMDB_AGENT_ANYTHING_NEW: 'x', VMDB_TEST_MYSQL_URL: 'mysql://root@127.0.0.1:3306', VMDB_TEST_OTHER: 'x' };
      for (const name of Object.keys(OTHER_KNOWN_VARIABLES)) inherited[name] = 'x';
      assert.deepEqual(unknownVariables(inherited), []);
      assert.deepEqual(problems(inherited), []);
      for (const name of ['VMDB_API_URL', 'VMDB_TOKEN', 'VMDB_USER_DATA', 'VMDB_INSTANCE_ID', 'VMDB_VM_TOKEN', 'VMDB_DEBUG']) assert.ok(isKnownVariable(name), name);
    });
  });

  describe('VMDB_CONFIG_FILE', function () {
    it('VMDB_TOKEN_SECRETS: the current secret first, then the previous ones', function () {
      const OLDER = 'an-older-secret-0123456789';
      const settings = loadSettings({ VMDB_TOKEN_SECRETS: `${SECRET},${OLDER}`, VMDB_ADMIN_TOKEN: ADMIN }, { require: ['api', 'worker'] });
      assert.deepEqual([settings.api.tokenSecret, settings.api.previousTokenSecrets], [SECRET, [OLDER]]);
      assert.deepEqual(problems({ VMDB_TOKEN_SECRET: SECRET, VMDB_TOKEN_SECRETS: `${SECRET},${OLDER}`, VMDB_ADMIN_TOKEN: ADMIN }, { require: ['api'] }), [], 'the same current secret');
      assert.match(problems({ VMDB_TOKEN_SECRET: OLDER, VMDB_TOKEN_SECRETS: `${SECRET},${OLDER}` })[0], /VMDB_TOKEN_SECRET and VMDB_TOKEN_SECRETS disagree/);
      assert.match(problems({ VMDB_TOKEN_SECRETS: `${SECRET},short` })[0], /VMDB_TOKEN_SECRETS: secret #2 must be at least 16 characters/);
      assert.match(problems({ VMDB_TOKEN_SECRETS: `${SECRET},,${OLDER}` })[0], /secret #2/);
      assert.match(problems({ VMDB_TOKEN_SECRETS: Array(9).fill(SECRET).join(',') })[0], /at most 8 secrets/);
      const api = loadApiConfig({ VMDB_TOKEN_SECRETS: `${SECRET},${OLDER}`, VMDB_ADMIN_TOKEN: ADMIN });
      assert.deepEqual([api.tokenSecret, api.previousTokenSecrets], [SECRET, [OLDER]]);
    });

    it('gives settings under the same names; the environment wins over it', function () {
      const path = file('precedence.json', { VMDB_API_PORT: 9000, VMDB_STALLING_INTERVAL: '60', VMDB_AUTO_MIGRATE: false, TEMPORAL_NAMESPACE: 'from-file', VMDB_TASK_QUEUE: null });
      const env = { VMDB_CONFIG_FILE: path, VMDB_API_PORT: '9100', TEMPORAL_NAMESPACE: '' };
      const settings = loadSettings(env);
      assert.equal(settings.api.port, 9100, 'the environment wins');
      assert.equal(settings.stallingInterval, 60, 'the file fills in');
      assert.equal(settings.autoMigrate, false, 'a JSON boolean');
      assert.equal(settings.temporal.namespace, 'from-file', 'an empty variable counts as unset');
      assert.equal(settings.temporal.taskQueue, 'vmdb', 'null in the file counts as unset');
      assert.deepEqual(settings.origin, { VMDB_API_PORT: 'environment', VMDB_STALLING_INTERVAL: 'file', VMDB_AUTO_MIGRATE: 'file', TEMPORAL_NAMESPACE: 'file', VMDB_CONFIG_FILE: 'environment' });
      assert.equal(settings.configFile, path);
    });

    it('the older loaders read it too, with the same precedence', function () {
      const fleetPath = file('fleet.json', { endpoints: [{ endpoint: 'Site::ce', image: 'img', runningPod: 'vo', maxInstances: 3, driver: { type: 'local' } }] });
      const path = file('loaders.json', {
        VMDB_DATABASE_URL: 'sqlite::memory:',
        VMDB_STALLING_INTERVAL: 120,
        VMDB_AUTO_MIGRATE: 'false',
        VMDB_TOKEN_SECRET: SECRET,
        VMDB_ADMIN_TOKEN: ADMIN,
        VMDB_API_PORT: 9000,
        TEMPORAL_ADDRESS: 'temporal.example.org:7233',
        VMDB_FLEET_FILE: fleetPath,
      });
      assert.deepEqual(loadConfig({ VMDB_CONFIG_FILE: path }), { databaseUrl: 'sqlite::memory:', stallingInterval: 120, autoMigrate: false });
      assert.equal(loadConfig({ VMDB_CONFIG_FILE: path, VMDB_STALLING_INTERVAL: '30' }).stallingInterval, 30);
      const api = loadApiConfig({ VMDB_CONFIG_FILE: path, VMDB_API_PORT: '9001' });
      assert.deepEqual([api.port, api.tokenSecret, api.operators.length], [9001, SECRET, 1]);
      assert.equal(loadTemporalSettings({ VMDB_CONFIG_FILE: path }).address, 'temporal.example.org:7233');
      assert.equal(loadFleetConfig({ VMDB_CONFIG_FILE: path }).endpoints[0].endpoint, 'Site::ce');
    });

    it('a bad value in the file names the setting and the file', function () {
      const path = file('bad-value.json', { VMDB_STALLING_INTERVAL: 'soon' });
      assert.deepEqual(problems({ VMDB_CONFIG_FILE: path }), [`VMDB_STALLING_INTERVAL must be a positive integer, got "soon" (from ${path})`]);
      assert.throws(() => loadConfig({ VMDB_CONFIG_FILE: path }), /VMDB_STALLING_INTERVAL must be a positive integer/);
    });

    it('an unknown option in the file is named, with the closest known one', function () {
      const path = file('unknown.json', { VMDB_API_PORT: 8080, VMDB_STALLING_INTERVALL: 60, colour: 'blue', VMDB_CONFIG_FILE: 'other.json', VMDB_AGENT_PERIOD: 10 });
      const found = problems({ VMDB_CONFIG_FILE: path });
      assert.deepEqual(found, [
        `VMDB_CONFIG_FILE (${path}): unknown option "VMDB_STALLING_INTERVALL" (did you mean VMDB_STALLING_INTERVAL?)`,
        `VMDB_CONFIG_FILE (${path}): unknown option "colour"`,
        `VMDB_CONFIG_FILE (${path}): "VMDB_CONFIG_FILE" can only be set in the environment`,
        `VMDB_CONFIG_FILE (${path}): unknown option "VMDB_AGENT_PERIOD" (vmdb-agent or the tests; not a setting of the service)`,
      ]);
      // Every loader refuses a file with an unknown option, whatever it reads itself.
      assert.throws(() => loadConfig({ VMDB_CONFIG_FILE: path }), /unknown option "colour"/);
      assert.throws(() => loadTemporalSettings({ VMDB_CONFIG_FILE: path }), /unknown option "colour"/);
      assert.throws(() => loadApiConfig({ VMDB_CONFIG_FILE: path, VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: ADMIN }), /unknown option "colour"/);
    });

    it('a file that cannot be read, is not JSON, is not an object, or holds a non-scalar', function () {
      assert.match(problems({ VMDB_CONFIG_FILE: join(dir, 'missing.json') })[0], /^VMDB_CONFIG_FILE \(.*missing.json\): cannot read: ENOENT/);
      assert.match(problems({ VMDB_CONFIG_FILE: file('broken.json', '{"VMDB_API_PORT": ') })[0], /^VMDB_CONFIG_FILE \(.*broken.json\): not JSON: /);
      assert.match(problems({ VMDB_CONFIG_FILE: file('array.json', [1]) })[0], /must be a JSON object whose keys are setting names/);
      assert.match(problems({ VMDB_CONFIG_FILE: file('nested.json', { VMDB_API_PORT: { port: 1 } }) })[0], /"VMDB_API_PORT" must be a string, a number or a boolean/);
    });

    it('applyConfigFile lays the file under the process environment (npm start; its local VMs inherit it)', function () {
      const path = file('apply.json', { VMDB_DATA_DIR: '/srv/vmdb', VMDB_API_PORT: 9000 });
      const env: NodeJS.ProcessEnv = { VMDB_CONFIG_FILE: path, VMDB_API_PORT: '9100' };
      applyConfigFile(env);
      assert.deepEqual(env, { VMDB_CONFIG_FILE: path, VMDB_API_PORT: '9100', VMDB_DATA_DIR: '/srv/vmdb' });
      assert.throws(() => applyConfigFile({ VMDB_CONFIG_FILE: file('apply-bad.json', { nope: 1 }) }), SettingsError);
    });
  });

  it('the older loaders check only their own names (and the file)', function () {
    assert.deepEqual(loadConfig({ VMDB_API_PORT: 'x', TEMPORAL_ADDRESS: 'x' }), { databaseUrl: 'sqlite:vmdb.sqlite', stallingInterval: 2400, autoMigrate: true });
    assert.throws(() => loadConfig({ VMDB_DATABASE_URL: 'postgres://x/y' }), /^SettingsError: VMDB_DATABASE_URL: Database url scheme/);
    assert.throws(() => loadTemporalSettings({ TEMPORAL_ADDRESS: 'no-port' }), /TEMPORAL_ADDRESS must be host:port/);
    assert.throws(() => loadTemporalSettings({ TEMPORAL_TLS_CERT: '/c.pem' }), /TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be given together/);
    assert.deepEqual(loadTemporalSettings({ TEMPORAL_TLS: 'true' }).tls, { certFile: undefined, keyFile: undefined, caFile: undefined, serverName: undefined });
    const { settings, problems: found } = readSettings({ VMDB_API_PORT: 'x', VMDB_STALLING_INTERVAL: '30' });
    assert.equal(settings.api.port, 8080, 'a bad value is left out, the default stands in');
    assert.equal(settings.stallingInterval, 30);
    assert.deepEqual(found.map((p) => p.name), ['VMDB_API_PORT']);
  });

  it('settingsSource never throws, and keeps the origin of each value', function () {
    const source = settingsSource({ VMDB_CONFIG_FILE: join(dir, 'absent.json'), VMDB_API_PORT: '1' });
    assert.deepEqual(source.values, { VMDB_CONFIG_FILE: join(dir, 'absent.json'), VMDB_API_PORT: '1' });
    assert.equal(source.problems.length, 1);
  });

  it('every VMDB_* name the code mentions is a known one, and every setting is in README\'s Configuration table', function () {
    const mentioned = new Map<string, string>();
    const walk = (folder: string) => {
      for (const entry of readdirSync(folder)) {
        const path = join(folder, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts')) for (const [name] of readFileSync(path, 'utf8').matchAll(/\bVMDB_[A-Z0-9_]*[A-Z0-9]\b/g)) mentioned.set(name, path);
      }
    };
    for (const folder of ['src', 'activities', 'workflows', 'entities']) walk(join(ROOT, folder));
    const unknown = [...mentioned].filter(([name]) => !isKnownVariable(name));
    assert.deepEqual(unknown, [], 'add them to SETTINGS (service settings) or OTHER_KNOWN_VARIABLES in src/config/settings.ts');

    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('### Your own Temporal cluster'));
    const missing = SETTINGS.map((s) => s.name).filter((name) => !table.includes(`\`${name}\``));
    assert.deepEqual(missing, [], 'each setting has a row in README, Configuration');
  });
});

describe('settings at the start of the processes', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'vmdb-start-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // The worker's metrics ports off: tests may run beside a worker that has them.
  const clean = (extra: Record<string, string>) => ({ VMDB_WORKER_METRICS_PORT: '0', VMDB_TEMPORAL_METRICS_PORT: '0', ...extra });

  it('vmdb migrate: an unknown VMDB_* variable stops it (exit 2), naming it', async function () {
    const run = await runCli(['migrate'], clean({ VMDB_DATABASE_URL: `sqlite:${join(dir, 'unknown.sqlite')}`, VMDB_STALING_INTERVAL: '60' }));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /VMDB_STALING_INTERVAL is not a vmdb setting \(did you mean VMDB_STALLING_INTERVAL\?\)/);
    assert.match(run.stderr, /known VMDB_\* settings: /);
  });

  it('vmdb migrate reads VMDB_CONFIG_FILE; an unknown key in it stops it (exit 2)', async function () {
    const database = join(dir, 'from-file.sqlite');
    const good = join(dir, 'migrate-config.json');
    writeFileSync(good, JSON.stringify({ VMDB_DATABASE_URL: `sqlite:${database}` }));
    const run = await runCli(['migrate', '--json'], clean({ VMDB_CONFIG_FILE: good }));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).database, `sqlite:${database}`);
    const bad = join(dir, 'migrate-bad.json');
    writeFileSync(bad, JSON.stringify({ VMDB_DATABASE_URL: `sqlite:${database}`, VMDB_DATABSE_URL: 'x' }));
    const refused = await runCli(['migrate'], clean({ VMDB_CONFIG_FILE: bad }));
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /unknown option "VMDB_DATABSE_URL" \(did you mean VMDB_DATABASE_URL\?\)/);
  });

  it('vmdb server: a missing secret or a bad url stops it (exit 2), naming each', async function () {
    const run = await runCli(['server', '--quiet'], clean({ VMDB_DATABASE_URL: 'mysql://vmdb:hunter2@db/', TEMPORAL_ADDRESS: 'temporal' }));
    assert.equal(run.code, 2, run.stderr);
    for (const pattern of [/VMDB_DATABASE_URL: .*names no database/, /TEMPORAL_ADDRESS must be host:port/, /VMDB_TOKEN_SECRET is not set/, /No operator token/]) assert.match(run.stderr, pattern);
    assert.doesNotMatch(run.stderr, /hunter2/);
  });

  it('vmdb worker: a missing token secret stops it (exit 2)', async function () {
    const run = await runCli(['worker'], clean({ VMDB_DATABASE_URL: `sqlite:${join(dir, 'worker-secret.sqlite')}` }));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /VMDB_TOKEN_SECRET is not set/);
  });

  it('VMDB_AUTO_MIGRATE=false: server and worker refuse a schema that is behind; `vmdb migrate` is the way', async function () {
    const url = `sqlite:${join(dir, 'auto-migrate.sqlite')}`;
    const env = clean({ VMDB_DATABASE_URL: url, VMDB_AUTO_MIGRATE: 'false', VMDB_TOKEN_SECRET: SECRET, VMDB_ADMIN_TOKEN: ADMIN, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    for (const command of [['server', '--quiet', '--port', '0'], ['worker']]) {
      const refused = await runCli(command, env);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /The database schema is not current \(pending migrations\); run `vmdb migrate`/, command[0]);
    }
    const migrated = await runCli(['migrate', '--json'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.equal(JSON.parse(migrated.stdout).applied.length, MIGRATIONS.length);
    // Now the schema is current: the server gets past the database and stops at Temporal (nothing listens on port 1).
    const server = await runCli(['server', '--quiet', '--port', '0'], env);
    assert.equal(server.code, 1);
    assert.match(server.stderr, /cannot connect to Temporal at 127\.0\.0\.1:1/);
  });
});
