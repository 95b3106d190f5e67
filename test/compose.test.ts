import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validateFleet } from '../src/config/fleet';
import { DEFAULT_TEMPORAL_METRICS_PORT, DEFAULT_WORKER_METRICS_PORT } from '../src/run-worker';
import { DEFAULT_API_PORT, DEFAULT_DEV_TEMPORAL_UI_PORT, DEFAULT_TEMPORAL_ADDRESS, type Role, SETTINGS, isSetting, loadSettings } from '../src/config/settings';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';

// No Docker engine runs here: docker-compose.yml and the Dockerfile are read as files and checked against the code.

const ROOT = join(__dirname, '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number)[];
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  restart?: string;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const pkg = JSON.parse(read('package.json')) as { version: string; engines: { node: string } };

/** The services built from ./Dockerfile: vmdb's own. */
const VMDB = Object.keys(services).filter((name) => services[name].build !== undefined);
const ONE_SHOT_CONDITION = 'service_completed_successfully';

function env(name: string): Record<string, string> {
  const raw = services[name].environment ?? {};
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(raw).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

function dependsOn(name: string): Record<string, string | undefined> {
  const raw = services[name].depends_on ?? {};
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((dep) => [dep, undefined]));
  return Object.fromEntries(Object.entries(raw).map(([dep, spec]) => [dep, spec?.condition]));
}

/** A one-shot: it does not restart, and the services after it wait for it to complete. */
const isOneShot = (name: string) => services[name].restart === 'no';

function ports(name: string): { ip?: string; host: number; container: number }[] {
  return (services[name].ports ?? []).map((spec) => {
    const parts = String(spec).split(':');
    assert.ok(parts.length === 2 || parts.length === 3, `${name}: port "${spec}" as [ip:]host:container`);
    const [container, host, ip] = parts.reverse();
    return { ip, host: Number(host), container: Number(container) };
  });
}

const INTERPOLATION = /\$\{([A-Z0-9_]+)(?::?([?-])([^}]*))?\}/g;

/** Compose's interpolation: ${X:?message} must be given, ${X:-default} may be; $$ is a dollar. */
function interpolate(value: string, given: Record<string, string>): string {
  return value
    .replace(INTERPOLATION, (_all, name: string, kind: string | undefined, rest: string) => {
      if (given[name] !== undefined && given[name] !== '') return given[name];
      if (kind === '-') return rest;
      if (kind === '?') throw new Error(`${name} is required: ${rest}`);
      return '';
    })
    .replace(/\$\$/g, '$');
}

/** Every `${NAME:?...}` of the file (its values, not its comments): what the operator must provide. */
const REQUIRED = [...new Set([...JSON.stringify(compose).matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1]))].sort();
const operatorValues = Object.fromEntries(REQUIRED.map((name) => [name, `test-${name.toLowerCase().replace(/_/g, '-')}-0123456789abcdef`]));

function healthTest(name: string): string[] {
  const test = services[name].healthcheck?.test;
  if (!test || services[name].healthcheck?.disable) return [];
  return typeof test === 'string' ? ['CMD-SHELL', test] : test;
}

describe('docker-compose.yml against the code', function () {
  it('has the services of the stack; vmdb\'s are built from ./Dockerfile with package.json\'s version', function () {
    for (const name of ['mysql', 'temporal', 'temporal-ui', 'temporal-search-attributes', 'migrate', 'worker', 'api']) assert.ok(services[name], `service ${name}`);
    assert.deepEqual(VMDB.sort(), ['api', 'migrate', 'worker']);
    for (const name of VMDB) {
      const build = services[name].build;
      assert.deepEqual(typeof build === 'string' ? { context: build } : { context: build!.context, dockerfile: build!.dockerfile ?? 'Dockerfile' }, { context: '.', dockerfile: 'Dockerfile' });
      assert.equal(services[name].image, `vmdb:${pkg.version}`, `${name}: tagged with package.json's version`);
    }
    assert.deepEqual(services.migrate.command, ['migrate']);
    assert.deepEqual(services.worker.command, ['worker']);
    assert.deepEqual(services.api.command, ['server']);
  });

  it('every environment variable a vmdb service sets is a setting the code reads (or the local VMs\' agent\'s)', function () {
    for (const name of VMDB) {
      for (const key of Object.keys(env(name))) {
        const agent = name === 'worker' && key.startsWith('VMDB_AGENT_'); // inherited by the local VMs' vmdb-agent
        assert.ok(isSetting(key) || agent, `${name}: ${key} is not a setting of src/config/settings.ts`);
      }
    }
  });

  it('each vmdb service\'s environment passes the start-up checks of its process', function () {
    const roles: Record<string, Role[]> = { migrate: [], worker: ['worker'], api: ['api'] };
    for (const name of VMDB) {
      const values = Object.fromEntries(Object.entries(env(name)).map(([key, value]) => [key, interpolate(value, operatorValues)]));
      // The files are paths inside the container.
      const settings = loadSettings(values, { require: roles[name], checkFiles: false });
      assert.match(settings.databaseUrl, /^mysql:\/\/vmdb:test-vmdb-mysql-password-[0-9a-f-]+@mysql:3306\/vmdb$/, name);
      if (name !== 'migrate') {
        assert.equal(settings.autoMigrate, false, `${name}: migrations are the migrate service's job`);
        assert.equal(dependsOn(name).migrate, ONE_SHOT_CONDITION, `${name} waits for migrate`);
        assert.equal(settings.temporal.address, `temporal:${DEFAULT_TEMPORAL_ADDRESS.split(':')[1]}`);
        assert.equal(settings.temporal.namespace, env('temporal').DEFAULT_NAMESPACE, `${name}: the namespace auto-setup creates`);
      }
    }
    assert.equal(env('worker').VMDB_TASK_QUEUE, env('api').VMDB_TASK_QUEUE, 'worker and API on one task queue');
    assert.equal(env('worker').VMDB_TASK_QUEUE, 'vmdb');
  });

  it('publishes the ports the code listens on; only the API on every interface', function () {
    const api = ports('api');
    assert.deepEqual(api, [{ ip: undefined, host: DEFAULT_API_PORT, container: DEFAULT_API_PORT }], 'API: 8080, VMs call it');
    assert.equal(Number(env('api').VMDB_API_PORT), DEFAULT_API_PORT);
    assert.equal(env('api').VMDB_API_HOST, '0.0.0.0', 'the API listens beyond the container');

    const temporalPort = Number(DEFAULT_TEMPORAL_ADDRESS.split(':')[1]);
    assert.deepEqual(ports('temporal'), [{ ip: '127.0.0.1', host: temporalPort, container: temporalPort }], 'Temporal frontend 7233');
    // The Temporal UI listens on 8080 in its container; on the host it gets the port `npm start` gives its UI.
    assert.deepEqual(ports('temporal-ui'), [{ ip: '127.0.0.1', host: DEFAULT_DEV_TEMPORAL_UI_PORT, container: 8080 }], 'Temporal UI 8233 -> 8080');

    const worker = env('worker');
    const metrics = [worker.VMDB_WORKER_METRICS_PORT, worker.VMDB_TEMPORAL_METRICS_PORT].map((bind) => /^0\.0\.0\.0:(\d+)$/.exec(bind)?.[1]);
    assert.deepEqual(metrics.map(Number), [DEFAULT_WORKER_METRICS_PORT, DEFAULT_TEMPORAL_METRICS_PORT], 'the worker\'s metrics on their default ports, on every interface of the container');
    assert.deepEqual(ports('worker'), [
      { ip: '127.0.0.1', host: DEFAULT_WORKER_METRICS_PORT, container: DEFAULT_WORKER_METRICS_PORT },
      { ip: '127.0.0.1', host: DEFAULT_TEMPORAL_METRICS_PORT, container: DEFAULT_TEMPORAL_METRICS_PORT },
    ]);
    for (const spec of SETTINGS.filter((s) => s.name === 'VMDB_WORKER_METRICS_PORT' || s.name === 'VMDB_TEMPORAL_METRICS_PORT')) {
      assert.equal(Number(spec.default), spec.name === 'VMDB_WORKER_METRICS_PORT' ? DEFAULT_WORKER_METRICS_PORT : DEFAULT_TEMPORAL_METRICS_PORT, `${spec.name}: settings.ts and run-worker.ts agree`);
    }

    assert.deepEqual(ports('mysql'), [], 'MySQL is not published');
    const published = Object.keys(services).flatMap((name) => ports(name).map((p) => p.host));
    assert.equal(new Set(published).size, published.length, 'no host port published twice');
    for (const name of Object.keys(services)) {
      for (const p of ports(name)) if (name !== 'api') assert.equal(p.ip, '127.0.0.1', `${name}: ${p.host} only on loopback (no authentication)`);
    }
  });

  it('pins every image to an exact version', function () {
    for (const [name, service] of Object.entries(services)) {
      assert.ok(service.image, `${name} names its image`);
      const [, repository, tag, digest] = /^([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(service.image!) ?? [];
      assert.ok(repository, `${name}: ${service.image}`);
      assert.ok(digest || (tag && tag !== 'latest' && /^\d+\.\d+\.\d+/.test(tag)), `${name}: ${service.image} must carry an exact x.y.z tag (or a digest), not latest or a bare major`);
    }
    // The server, its schema tool and the admin tools come from one Temporal release.
    const version = (name: string) => /:(\d+\.\d+\.\d+)/.exec(services[name].image!)![1];
    assert.equal(version('temporal-search-attributes'), version('temporal'));
    assert.match(services.mysql.image!, /^mysql:8\.\d+\.\d+$/, 'MySQL 8');
    assert.match(services.temporal.image!, /^temporalio\/auto-setup:/);
    assert.equal(env('temporal').DB, 'mysql8');
    assert.equal(env('temporal').MYSQL_SEEDS, 'mysql');
  });

  it('gives every long-running vmdb service a health check, and the one-shots a completion condition', function () {
    for (const name of VMDB) {
      if (isOneShot(name)) {
        const waiting = Object.keys(services).filter((other) => dependsOn(other)[name] === ONE_SHOT_CONDITION);
        assert.ok(waiting.length > 0, `${name} is a one-shot that something waits for`);
        assert.deepEqual(healthTest(name), [], `${name}: a one-shot needs no health check`);
        continue;
      }
      assert.ok(healthTest(name).length > 0, `${name} has a health check`);
      assert.match(String(services[name].restart), /^(always|unless-stopped|on-failure)/, `${name} restarts`);
    }
    // Each probes its own /readyz, with the probe script of the image (it has no curl).
    const probe = (name: string) => {
      const [kind, ...argv] = healthTest(name);
      assert.equal(kind, 'CMD', name);
      assert.deepEqual(argv.slice(0, 2), ['node', 'dist/src/healthcheck.js'], name);
      return new URL(argv[2]);
    };
    assert.ok(existsSync(join(ROOT, 'dist', 'src', 'healthcheck.js')), 'the probe script is built');
    const api = probe('api');
    assert.deepEqual([api.hostname, Number(api.port), api.pathname], ['127.0.0.1', Number(env('api').VMDB_API_PORT), '/readyz']);
    const worker = probe('worker');
    assert.deepEqual([worker.hostname, worker.port, worker.pathname], [env('worker').VMDB_WORKER_HEALTH_HOST, env('worker').VMDB_WORKER_HEALTH_PORT, '/readyz']);
    // The dependencies the others wait on are checked too.
    assert.match(healthTest('mysql').join(' '), /mysqladmin ping/);
    assert.match(healthTest('mysql').join(' '), /-h 127\.0\.0\.1/, 'over TCP: not healthy during the first initialisation');
    assert.match(healthTest('temporal').join(' '), /temporal operator namespace describe default/);
  });

  it('orders the start with depends_on conditions that fit each dependency', function () {
    for (const name of Object.keys(services)) {
      for (const [dependency, condition] of Object.entries(dependsOn(name))) {
        assert.ok(services[dependency], `${name} depends on an unknown ${dependency}`);
        if (isOneShot(dependency)) assert.equal(condition, ONE_SHOT_CONDITION, `${name} -> ${dependency}: wait for completion`);
        else {
          assert.equal(condition, 'service_healthy', `${name} -> ${dependency}: wait for health, not just a start`);
          assert.ok(healthTest(dependency).length > 0, `${dependency} has the health check ${name} waits on`);
        }
      }
    }
    const edges: [string, string][] = [
      ['temporal', 'mysql'],
      ['temporal-ui', 'temporal'],
      ['temporal-search-attributes', 'temporal'],
      ['migrate', 'mysql'],
      ['worker', 'migrate'],
      ['worker', 'temporal'],
      ['worker', 'temporal-search-attributes'],
      ['api', 'migrate'],
      ['api', 'temporal'],
    ];
    for (const [from, to] of edges) assert.ok(to in dependsOn(from), `${from} depends on ${to}`);
    // No cycle.
    const visiting = new Set<string>();
    const visit = (name: string, path: string[]) => {
      assert.ok(!visiting.has(name), `depends_on cycle: ${[...path, name].join(' -> ')}`);
      visiting.add(name);
      for (const dependency of Object.keys(dependsOn(name))) visit(dependency, [...path, name]);
      visiting.delete(name);
    };
    for (const name of Object.keys(services)) visit(name, []);
  });

  it('registers exactly the search attributes of workflows/definitions.ts, as Keyword, on vmdb\'s namespace', function () {
    const job = services['temporal-search-attributes'];
    assert.ok(isOneShot('temporal-search-attributes'));
    const names = env('temporal-search-attributes').SEARCH_ATTRIBUTES.split(/\s+/).filter(Boolean);
    assert.deepEqual([...names].sort(), SEARCH_ATTRIBUTES.map((key) => key.name).sort());
    for (const key of SEARCH_ATTRIBUTES) assert.equal(key.type, 'KEYWORD', key.name);
    const script = interpolate(([] as string[]).concat(job.command ?? []).join('\n'), {});
    assert.match(script, /for name in \$SEARCH_ATTRIBUTES; do/);
    assert.match(script, /temporal operator search-attribute create --namespace "\$ns" --name "\$name" --type Keyword/);
    assert.match(script, /already registered/, 'an attribute that exists is not an error');
    assert.equal(env('temporal-search-attributes').TEMPORAL_NAMESPACE, env('temporal').DEFAULT_NAMESPACE);
    assert.equal(env('temporal-search-attributes').TEMPORAL_NAMESPACE, env('worker').TEMPORAL_NAMESPACE);
    assert.equal(env('temporal').SKIP_ADD_CUSTOM_SEARCH_ATTRIBUTES, 'true', 'only vmdb\'s attributes');
  });

  it('holds no secret value: each comes from the operator\'s environment or .env, and .env.example lists them', function () {
    const SECRET_NAME = /PASSWORD|PWD|SECRET|TOKEN|API_KEY/;
    for (const [name] of Object.entries(services)) {
      for (const [key, value] of Object.entries(env(name))) {
        if (SECRET_NAME.test(key)) assert.match(value, /^\$\{[A-Z0-9_]+:\?[^}]+\}$/, `${name}: ${key} must be \${NAME:?message}, not a value`);
        const userinfo = /^[a-z]+:\/\/[^:/@]*:([^@]*)@/.exec(value);
        if (userinfo) assert.match(userinfo[1], /^\$\{[A-Z0-9_]+:\?[^}]+\}$/, `${name}: ${key} has a password in its url`);
      }
    }
    assert.deepEqual(REQUIRED, ['MYSQL_ROOT_PASSWORD', 'TEMPORAL_MYSQL_PASSWORD', 'VMDB_ADMIN_TOKEN', 'VMDB_METRICS_TOKEN', 'VMDB_MYSQL_PASSWORD', 'VMDB_TOKEN_SECRET']);
    const example = read('.env.example');
    for (const name of REQUIRED) assert.match(example, new RegExp(`^${name}=$`, 'm'), `.env.example lists ${name}, without a value`);
    for (const line of example.split('\n').filter((l) => /^[A-Z0-9_]+=/.test(l))) assert.match(line, /=$/, `.env.example has no values: ${line}`);
    assert.match(read('.gitignore'), /^\.env$/m, '.env is not committed');
    for (const name of REQUIRED) assert.throws(() => interpolate(`\${${name}:?missing}`, {}), /is required/);
  });

  it('guards both vmdb /metrics with VMDB_METRICS_TOKEN, and deploy/prometheus/prometheus.yml scrapes them with it', function () {
    for (const name of ['api', 'worker']) {
      const values = Object.fromEntries(Object.entries(env(name)).map(([key, value]) => [key, interpolate(value, operatorValues)]));
      assert.equal(values.VMDB_METRICS_TOKEN, operatorValues.VMDB_METRICS_TOKEN, `${name}: the operator's token`);
      assert.equal(loadSettings(values, { checkFiles: false }).api.metricsToken, operatorValues.VMDB_METRICS_TOKEN, name);
    }
    const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: { job_name: string; metrics_path?: string; authorization?: { type?: string; credentials_file?: string; credentials?: string }; static_configs: { targets: string[] }[] }[];
    };
    const target = (job: string) => {
      const found = prometheus.scrape_configs.find((c) => c.job_name === job);
      assert.ok(found, `job ${job}`);
      return { ...found, targets: found.static_configs.flatMap((c) => c.targets) };
    };
    const api = target('vmdb-api');
    assert.deepEqual(api.targets, [`api:${env('api').VMDB_API_PORT}`]);
    const worker = target('vmdb-worker');
    assert.deepEqual(worker.targets, [`worker:${/:(\d+)$/.exec(env('worker').VMDB_WORKER_METRICS_PORT)![1]}`]);
    for (const job of [api, worker]) {
      assert.equal(job.metrics_path ?? '/metrics', '/metrics');
      assert.equal(job.authorization?.type ?? 'Bearer', 'Bearer', job.job_name);
      assert.ok(job.authorization?.credentials_file, `${job.job_name}: the token from a file`);
      assert.equal(job.authorization?.credentials, undefined, `${job.job_name}: no token written in the config`);
    }
  });

  it('shows both ways of TLS: certificate files for the API from .env, or a proxy whose X-Forwarded-For is trusted', function () {
    const values = (name: string, given: Record<string, string>) =>
      Object.fromEntries(Object.entries(env(name)).map(([key, value]) => [key, interpolate(value, { ...operatorValues, ...given })]));
    // Left alone: plain HTTP, nobody's X-Forwarded-For, and the demo VMs' http://api:8080 allowed on purpose.
    const plain = loadSettings(values('api', {}), { require: ['api'], checkFiles: false }).api;
    assert.deepEqual([plain.tls, plain.trustProxy], [undefined, false]);
    assert.equal(values('worker', {}).VMDB_AGENT_ALLOW_HTTP, 'true');
    assert.match(env('worker').VMDB_PUBLIC_API_URL, /http:\/\/api:/);
    // TLS at the API: the files .env names are in the mounted folder, in both containers.
    const tls = { VMDB_API_TLS_CERT: '/etc/vmdb/tls/server.crt', VMDB_API_TLS_KEY: '/etc/vmdb/tls/server.key' };
    assert.deepEqual(loadSettings(values('api', tls), { require: ['api'], checkFiles: false }).api.tls, { certFile: tls.VMDB_API_TLS_CERT, keyFile: tls.VMDB_API_TLS_KEY });
    for (const name of ['api', 'worker']) assert.ok(services[name].volumes!.includes('./deploy/tls:/etc/vmdb/tls:ro'), `${name} mounts ./deploy/tls`);
    assert.ok('VMDB_AGENT_CA_FILE' in env('worker'), 'the demo VMs can be given the CA');
    // TLS at a proxy: its address or CIDR.
    assert.deepEqual(loadSettings(values('api', { VMDB_TRUST_PROXY: '172.16.0.0/12' }), { require: ['api'], checkFiles: false }).api.trustProxy, ['172.16.0.0/12']);
    for (const name of ['VMDB_API_TLS_CERT', 'VMDB_API_TLS_KEY', 'VMDB_TRUST_PROXY', 'VMDB_AGENT_CA_FILE']) assert.match(read('.env.example'), new RegExp(`^# ${name}=`, 'm'), `.env.example shows ${name}`);
  });

  it('mounts files that exist; the demo fleet runs the agent of the image on the worker\'s volume', function () {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':');
        if (source.startsWith('.')) assert.ok(existsSync(join(ROOT, source)), `${name}: ${source} exists`);
        else assert.ok(compose.volumes && source in compose.volumes, `${name}: volume ${source} is declared`);
      }
    }
    const mounted = services.worker.volumes!.find((v) => v.split(':')[1] === env('worker').VMDB_FLEET_FILE);
    assert.ok(mounted, 'the fleet file is mounted where VMDB_FLEET_FILE says');
    const fleet = validateFleet(JSON.parse(read(mounted!.split(':')[0])));
    const state = services.worker.volumes!.find((v) => v.startsWith('worker-state:'))!.split(':')[1];
    for (const endpoint of fleet.endpoints.filter((e) => e.driver.type === 'local')) {
      const driver = endpoint.driver as { stateDir?: string; command?: string[] };
      assert.ok(driver.stateDir?.startsWith(`${state}/`), `${endpoint.endpoint}: VM state on the worker-state volume`);
      const agent = driver.command?.[1];
      assert.ok(agent?.startsWith('/app/'), `${endpoint.endpoint}: the agent inside the image`);
      assert.ok(existsSync(join(ROOT, agent!.slice('/app/'.length))), `${agent} is built`);
    }
    assert.ok(env('worker').VMDB_AGENT_STOP_FILE.startsWith(`${state}/`), 'the agents\' stop file is writable');
  });
});

describe('Dockerfile', function () {
  const text = read('Dockerfile');
  const lines = text.split('\n').filter((l) => l.trim() && !l.trimStart().startsWith('#'));
  const stages: { from: string; name?: string; lines: string[] }[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ from: from[1], name: from[2], lines: [] });
    else stages.at(-1)?.lines.push(line.trim());
  }
  const runtime = stages.at(-1)!;

  it('builds in one stage and runs from another, both on one pinned Node 20 image that meets package.json\'s engines', function () {
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const stage of stages) assert.match(stage.from, /^node:\d+\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/, `${stage.from}: an exact version tag`);
    assert.equal(stages[0].from, runtime.from, 'the native addon is compiled for the Node it runs on');
    const [major, minor] = /^node:(\d+)\.(\d+)/.exec(runtime.from)!.slice(1).map(Number);
    assert.equal(major, 20);
    const [wantMajor, wantMinor] = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node)!.slice(1).map(Number);
    assert.ok(major > wantMajor || (major === wantMajor && minor >= wantMinor), `${runtime.from} meets engines ${pkg.engines.node}`);
  });

  it('the build stage has the toolchain, installs from the lockfile, builds, then drops the dev dependencies', function () {
    const build = stages[0].lines.join('\n');
    assert.match(build, /apt-get install[^\n]*python3[^\n]*make[^\n]*g\+\+/);
    assert.match(build, /RUN npm ci/);
    assert.match(build, /npm run build[\s\\&]*npm prune --omit=dev/);
  });

  it('the runtime stage takes only dist, node_modules and package.json, runs as an unprivileged user, and starts the CLI', function () {
    const copies = runtime.lines.filter((l) => /^COPY\b/i.test(l));
    assert.ok(copies.every((l) => /--from=build/.test(l)), 'only from the build stage');
    assert.deepEqual(copies.map((l) => l.split(/\s+/).at(-2)).sort(), ['/app/dist', '/app/node_modules', '/app/package.json']);
    const user = runtime.lines.filter((l) => /^USER\b/i.test(l)).at(-1);
    assert.ok(user, 'a USER');
    assert.doesNotMatch(user!, /^USER\s+(root|0)(:|$)/i, 'not root');
    assert.ok(runtime.lines.indexOf(user!) > runtime.lines.findIndex((l) => /^COPY\b/i.test(l)), 'USER after the files are in place');
    assert.ok(runtime.lines.includes('ENTRYPOINT ["node", "dist/src/cli/main.js"]'));
    assert.ok(runtime.lines.includes('WORKDIR /app'));
    assert.doesNotMatch(text, /^\s*(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|API_KEY)/im, 'no secret is built in');
  });

  it('.dockerignore keeps everything but the sources out of the context (.env, data, node_modules)', function () {
    const patterns = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(patterns[0], '*', 'deny by default');
    const allowed = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, ''));
    const copied = stages[0].lines.filter((l) => /^COPY\b/i.test(l) && !/--from/.test(l)).flatMap((l) => l.split(/\s+/).slice(1, -1));
    assert.deepEqual([...new Set(copied)].sort(), [...allowed].sort(), 'exactly what the build stage copies');
    for (const secret of ['.env', 'data', 'node_modules', 'dist', '.git']) assert.ok(!allowed.includes(secret), secret);
  });
});
