import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidRequestError, parseEndpointName } from '../src/drivers/driver';
import { createDrivers } from '../src/drivers/registry';
import { LOCAL_VM_MARKER, LocalDriver, type LocalVmRecord } from '../src/drivers/local';

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** State letter from /proc/<pid>/stat, or undefined when there is no such process. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0];
  } catch {
    return undefined;
  }
}

/** Running (not zombie) processes whose argv passes `match`. */
function processesWhere(match: (argv: string[]) => boolean): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // ended while we looked
    }
    const state = procState(Number(entry));
    if (state !== undefined && state !== 'Z' && match(argv)) found.push(Number(entry));
  }
  return found;
}

/** The default-command VM processes of one instance name. */
const vmProcesses = (name: string) => processesWhere((argv) => argv.includes(LOCAL_VM_MARKER) && argv.includes(name));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const RUN = `${process.pid}-${randomBytes(3).toString('hex')}`;
const uniqueName = (label: string) => `test-${label}-${RUN}-${randomBytes(3).toString('hex')}`;
// A grandchild of a VM that ignores SIGTERM; the stop must still take it down with the group. It
// writes its pid only once the handler is in place, so a test never signals it before.
const GRANDCHILD = [
  "process.on('SIGTERM', () => {});",
  "require('fs').writeFileSync(process.argv[1], String(process.pid));",
  'setInterval(() => {}, 1 << 30); // vmdb test grandchild',
].join('\n');
const request = (instanceName: string) => ({ instanceName, imageName: 'CernVM4', runningPod: 'lhcb' });

describe('endpoint names', function () {
  it('splits a valid Site::CE', function () {
    assert.deepEqual(parseEndpointName('LCG.CERN.cern::cloud-1.cern_ch'), {
      site: 'LCG.CERN.cern',
      ce: 'cloud-1.cern_ch',
      name: 'LCG.CERN.cern::cloud-1.cern_ch',
    });
  });

  const bad: [unknown, RegExp][] = [
    ['CERN', /must be "Site::CE" with exactly one "::"/],
    ['CERN:cloud', /exactly one "::"/],
    ['a::b::c', /exactly one "::"/],
    ['::cloud', /the site part is empty/],
    ['CERN::', /the CE part is empty/],
    ['CERN::cloud:8080', /the CE part ":?cloud:8080" may only contain letters, digits/],
    ['CE RN::cloud', /the site part "CE RN" may only contain/],
    ['CERN::cloud/x', /the CE part "cloud\/x" may only contain/],
    ['', /exactly one "::"/],
    [42, /must be a string "Site::CE", got number/],
    [undefined, /must be a string/],
  ];
  for (const [name, message] of bad) {
    it(`refuses ${JSON.stringify(name) ?? String(name)}`, function () {
      assert.throws(() => parseEndpointName(name), message);
    });
  }
});

describe('driver registry', function () {
  let stateDir: string;
  before(async function () {
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vmdb-registry-'));
  });
  after(async function () {
    await fs.rm(stateDir, { recursive: true, force: true });
  });

  it('builds one driver per endpoint, keyed by its name', function () {
    const drivers = createDrivers([
      { endpoint: 'Site1::ce1', driver: 'local', stateDir },
      { endpoint: 'Site2::ce2', driver: 'local', stateDir, publicIP: '10.0.0.1' },
    ]);
    assert.deepEqual([...drivers.keys()], ['Site1::ce1', 'Site2::ce2']);
    const driver = drivers.get('Site1::ce1');
    assert.ok(driver instanceof LocalDriver);
    assert.equal(driver.endpoint, 'Site1::ce1');
  });

  it('accepts an empty configuration', function () {
    assert.equal(createDrivers([]).size, 0);
  });

  const bad: [string, unknown, RegExp][] = [
    ['an unknown driver type', [{ endpoint: 'S::c', driver: 'azure' }], /#1 \(S::c\): unknown driver type "azure" \(known: local, ec2, openstack\)/],
    ['a prototype key as driver type', [{ endpoint: 'S::c', driver: 'toString' }], /unknown driver type "toString"/],
    ['a missing driver type', [{ endpoint: 'S::c' }], /#1 \(S::c\): "driver" must name a driver type \(known: local, ec2, openstack\)/],
    ['a bad endpoint name', [{ endpoint: 'S::c' , driver: 'local', stateDir: '/x' }, { endpoint: 'nocolons', driver: 'local' }], /#2: Endpoint name "nocolons" must be "Site::CE"/],
    ['a duplicate endpoint', [{ endpoint: 'S::c', driver: 'local' }, { endpoint: 'S::c', driver: 'local' }], /#2: endpoint S::c is configured more than once/],
    ['a config that is not an object', [null], /#1 must be an object/],
    ['a configuration that is not an array', { endpoint: 'S::c', driver: 'local' }, /must be an array/],
    ['an unknown local option', [{ endpoint: 'S::c', driver: 'local', statedir: '/x' }], /Endpoint S::c: local driver: unknown option "statedir"/],
    ['a command string', [{ endpoint: 'S::c', driver: 'local', command: 'sleep 100' }], /command must be a non-empty array of strings/],
    ['an empty command', [{ endpoint: 'S::c', driver: 'local', command: [] }], /command must be a non-empty array of strings/],
    ['a bad IP', [{ endpoint: 'S::c', driver: 'local', publicIP: 'localhost' }], /publicIP must be an IP address, got "localhost"/],
    ['a bad grace period', [{ endpoint: 'S::c', driver: 'local', stopGraceMs: -1 }], /stopGraceMs must be a non-negative integer/],
  ];
  for (const [what, configs, message] of bad) {
    it(`refuses ${what}`, function () {
      assert.throws(() => createDrivers(configs as never), message);
    });
  }
});

describe('local driver', function () {
  this.timeout(30_000);
  let stateDir: string;
  let scratch: string;
  const drivers: LocalDriver[] = [];
  const strays: ChildProcess[] = [];
  const strayPids: number[] = [];

  function driver(options: ConstructorParameters<typeof LocalDriver>[1] = {}, endpoint = 'Test::local'): LocalDriver {
    const made = new LocalDriver(endpoint, { stateDir, ...options });
    drivers.push(made);
    return made;
  }

  async function pidOf(d: LocalDriver, uniqueID: string): Promise<number> {
    const record = await d.record(uniqueID);
    assert.ok(record, `no record for ${uniqueID}`);
    return record.pid;
  }

  before(async function () {
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vmdb-local-state-'));
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'vmdb-local-scratch-'));
  });

  after(async function () {
    // Whatever we spawned outside the driver first, then every VM any driver object started;
    // one failure must not leave the rest running.
    for (const child of strays) child.kill('SIGKILL');
    // Only a pid that is still the grandchild we started, not a process that reused it.
    for (const pid of processesWhere((argv) => argv.includes(GRANDCHILD))) if (strayPids.includes(pid)) process.kill(pid, 'SIGKILL');
    const problems: unknown[] = [];
    for (const d of drivers) {
      for (const vm of await d.listInstances()) await d.stopInstance(vm.uniqueID).catch((err: unknown) => problems.push(err));
    }
    assert.deepEqual(problems, []);
    const left = processesWhere((argv) => argv.includes(LOCAL_VM_MARKER) && argv.some((arg) => arg.includes(`-${RUN}-`)));
    assert.deepEqual(left, [], 'no VM of this run outlives the tests');
    await fs.rm(stateDir, { recursive: true, force: true });
    await fs.rm(scratch, { recursive: true, force: true });
  });

  it('creates a VM that is a live process', async function () {
    const d = driver();
    const name = uniqueName('create');
    const vm = await d.createInstance(request(name));
    assert.match(vm.uniqueID, /^local-\d+-[0-9a-f]{12}$/);
    assert.deepEqual({ ...vm, uniqueID: '' }, { uniqueID: '', status: 'running', publicIP: '127.0.0.1', privateIP: '127.0.0.1' });
    const pid = await pidOf(d, vm.uniqueID);
    assert.ok(pidExists(pid));
    assert.deepEqual(vmProcesses(name), [pid]);
    assert.deepEqual(await d.getInstanceStatus(vm.uniqueID), vm);
  });

  it("a VM sees the system basics and the agent's settings, never the service's secrets", async function () {
    const secrets = { VMDB_TOKEN_SECRET: 'token-secret', VMDB_ADMIN_TOKEN: 'admin-token', VMDB_DB_URL: 'mysql://root:pw@db/vmdb', AWS_SECRET_ACCESS_KEY: 'aws' };
    const settings = { VMDB_AGENT_PERIOD: '7', LC_ALL: 'C' };
    const saved = Object.fromEntries(Object.keys({ ...secrets, ...settings }).map((name) => [name, process.env[name]]));
    Object.assign(process.env, secrets, settings);
    try {
      const d = driver();
      const vm = await d.createInstance(request(uniqueName('environ')));
      const environ = readFileSync(`/proc/${await pidOf(d, vm.uniqueID)}/environ`, 'utf8').split('\0').filter(Boolean);
      const names = new Set(environ.map((entry) => entry.slice(0, entry.indexOf('='))));
      for (const name of Object.keys(secrets)) assert.ok(!names.has(name), `${name} reached the VM`);
      assert.ok(environ.includes('VMDB_AGENT_PERIOD=7') && environ.includes('LC_ALL=C'), "the agent's settings and the locale pass");
      assert.ok(names.has('PATH') && names.has('VMDB_UNIQUE_ID') && names.has('VMDB_USER_DATA'));
      const allowed = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|TZ|TMPDIR|TERM|LC_.*|VMDB_AGENT_.*|VMDB_(INSTANCE_NAME|UNIQUE_ID|IMAGE_NAME|RUNNING_POD|USER_DATA))$/;
      assert.deepEqual([...names].filter((name) => !allowed.test(name)), [], 'nothing outside the allowlist');
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('refuses a default state folder that others may use, and makes its own 0700', async function () {
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = await fs.mkdtemp(path.join(scratch, 'tmp-'));
    try {
      const base = path.join(process.env.TMPDIR, `vmdb-local-${process.getuid!()}`);
      new LocalDriver('Test::defaults');
      assert.equal((await fs.stat(base)).mode & 0o777, 0o700, 'made 0700');
      await fs.chmod(base, 0o777);
      assert.throws(() => new LocalDriver('Test::defaults'), /refusing the default state folder .*others may use it \(mode 777\)/);
      await fs.rm(base, { recursive: true });
      await fs.symlink(scratch, base);
      assert.throws(() => new LocalDriver('Test::defaults'), /refusing the default state folder .*not a folder/);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
  });

  it('is idempotent by instance name, within one driver and across driver objects', async function () {
    const first = driver();
    const second = driver();
    const name = uniqueName('twice');
    const vm = await first.createInstance(request(name));
    const again = await first.createInstance(request(name));
    assert.equal(again.uniqueID, vm.uniqueID);
    // Concurrent retries, as from two workers sharing the state directory.
    const racing = await Promise.all([first.createInstance(request(name)), second.createInstance(request(name)), second.createInstance(request(name))]);
    assert.deepEqual(racing.map((r) => r.uniqueID), [vm.uniqueID, vm.uniqueID, vm.uniqueID]);
    assert.equal(vmProcesses(name).length, 1);
  });

  it('starts exactly one VM when several driver objects race for a new name', async function () {
    const name = uniqueName('race');
    const results = await Promise.all([driver(), driver(), driver(), driver()].map((d) => d.createInstance(request(name))));
    assert.equal(new Set(results.map((r) => r.uniqueID)).size, 1);
    assert.equal(vmProcesses(name).length, 1);
  });

  it('takes over the create lock of a worker that died holding it', async function () {
    const d = driver();
    const name = uniqueName('lock');
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 32);
    const lock = path.join(stateDir, `create-${hash}.lock`);
    await fs.writeFile(lock, JSON.stringify({ pid: 2 ** 22 + 1, bootId: 'gone', startTime: '1', token: 'dead' }));
    const started = Date.now();
    assert.equal((await d.createInstance(request(name))).status, 'running');
    assert.ok(Date.now() - started < 5000);
    await assert.rejects(fs.access(lock), 'the lock is released');
  });

  it('lets a new driver object on the same state directory see the VM', async function () {
    const name = uniqueName('shared');
    const vm = await driver({ publicIP: '192.0.2.7', privateIP: '10.1.2.3' }).createInstance(request(name));
    const fresh = driver();
    assert.deepEqual(await fresh.getInstanceStatus(vm.uniqueID), { uniqueID: vm.uniqueID, status: 'running', publicIP: '192.0.2.7', privateIP: '10.1.2.3' });
    assert.ok((await fresh.listInstances()).some((i) => i.uniqueID === vm.uniqueID && i.status === 'running'));
    // A different endpoint sharing the directory does not.
    const other = driver({}, 'Other::local');
    assert.equal((await other.getInstanceStatus(vm.uniqueID)).status, 'unknown');
    assert.ok(!(await other.listInstances()).some((i) => i.uniqueID === vm.uniqueID));
  });

  it('sees and stops a VM created by another process that has since exited', async function () {
    const name = uniqueName('worker');
    // A short-lived "worker" creates the VM and exits; the VM is orphaned, as after a worker restart.
    const script = `
      const { LocalDriver } = require(${JSON.stringify(require.resolve('../src/drivers/local'))});
      new LocalDriver('Test::local', { stateDir: process.argv[1] })
        .createInstance({ instanceName: process.argv[2], imageName: 'CernVM4', runningPod: 'lhcb' })
        .then((vm) => process.stdout.write(JSON.stringify(vm)), (err) => { console.error(err); process.exitCode = 1; });`;
    const worker = spawn(process.execPath, ['-e', script, stateDir, name], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    worker.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => worker.on('exit', resolve));
    assert.equal(code, 0);
    const vm = JSON.parse(output) as { uniqueID: string; status: string };
    assert.equal(vm.status, 'running');
    const d = driver();
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'running');
    assert.equal((await d.createInstance(request(name))).uniqueID, vm.uniqueID);
    const pid = await pidOf(d, vm.uniqueID);
    await d.stopInstance(vm.uniqueID);
    // Not our child: once dead it is reaped by whoever adopted it, maybe later.
    assert.ok([undefined, 'Z'].includes(procState(pid)), 'the VM process is dead');
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    assert.deepEqual(vmProcesses(name), []);
  });

  it('stops a VM; stopping again, or from another driver object, is success', async function () {
    const d = driver();
    const name = uniqueName('stop');
    const vm = await d.createInstance(request(name));
    const pid = await pidOf(d, vm.uniqueID);
    await d.stopInstance(vm.uniqueID);
    // Dead at once; give this process a moment to reap its child so kill(pid, 0) fails too.
    assert.ok([undefined, 'Z'].includes(procState(pid)), 'the VM process is dead');
    await waitFor('the VM process to be gone', () => (pidExists(pid) ? undefined : true), 2000);
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    assert.ok((await d.record(vm.uniqueID))?.stoppedAt);
    await d.stopInstance(vm.uniqueID);
    await driver().stopInstance(vm.uniqueID);
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    // A create after the stop boots a new VM: only a live VM answers a retry.
    const next = await d.createInstance(request(name));
    assert.notEqual(next.uniqueID, vm.uniqueID);
    assert.equal(next.status, 'running');
  });

  it('lists the VMs of its endpoint with their statuses', async function () {
    const d = driver();
    const running = await d.createInstance(request(uniqueName('list-a')));
    const stopped = await d.createInstance(request(uniqueName('list-b')));
    await d.stopInstance(stopped.uniqueID);
    const listed = new Map((await d.listInstances()).map((i) => [i.uniqueID, i.status]));
    assert.equal(listed.get(running.uniqueID), 'running');
    assert.equal(listed.get(stopped.uniqueID), 'stopped');
  });

  it('reports a VM that died by itself as stopped, and a create then boots a new one', async function () {
    const d = driver();
    const name = uniqueName('crash');
    const vm = await d.createInstance(request(name));
    process.kill(await pidOf(d, vm.uniqueID), 'SIGKILL');
    await waitFor('the crashed VM to be seen as stopped', async () => ((await d.getInstanceStatus(vm.uniqueID)).status === 'stopped' ? true : undefined));
    const next = await d.createInstance(request(name));
    assert.notEqual(next.uniqueID, vm.uniqueID);
    await d.stopInstance(vm.uniqueID);
  });

  it('answers unknown for IDs it never issued, and stopping them is success', async function () {
    const d = driver();
    for (const id of ['local-1-000000000000', 'i-5dec3236', '../../etc/passwd', '']) {
      assert.deepEqual(await d.getInstanceStatus(id), { uniqueID: id, status: 'unknown', publicIP: '', privateIP: '' });
      await d.stopInstance(id);
    }
  });

  it('does not mistake a reused pid for its VM, nor kill it', async function () {
    // A process that is not the VM but holds the pid a record names, as after pid reuse or a reboot.
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    strays.push(stranger);
    stranger.unref();
    await once(stranger, 'spawn');
    const pid = stranger.pid as number;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const d = driver();
    const real = (await d.record((await d.createInstance(request(uniqueName('reuse')))).uniqueID)) as LocalVmRecord;
    const fakes: [string, Partial<LocalVmRecord>][] = [
      ['local-1-00000000000a', { startTime: String(Number(startTime) - 1) }], // same pid, started at another time
      ['local-1-00000000000b', { startTime, bootId: 'another-boot' }], // same pid and time, before a reboot
    ];
    for (const [uniqueID, differences] of fakes) {
      const fake = { ...real, uniqueID, instanceName: uniqueName('reuse-fake'), pid, startTime, ...differences };
      await fs.writeFile(path.join(stateDir, `${uniqueID}.json`), JSON.stringify(fake));
      assert.equal((await d.getInstanceStatus(uniqueID)).status, 'stopped');
      await d.stopInstance(uniqueID);
      assert.ok(pidExists(pid), 'the stranger survived the stop');
    }
    // The same record with the stranger's true identity is taken for a VM, which shows the check is what spared it.
    await fs.writeFile(path.join(stateDir, 'local-1-00000000000c.json'), JSON.stringify({ ...real, uniqueID: 'local-1-00000000000c', pid, startTime }));
    assert.equal((await d.getInstanceStatus('local-1-00000000000c')).status, 'running');
    await fs.rm(path.join(stateDir, 'local-1-00000000000c.json'));
    assert.equal(stranger.exitCode, null);
  });

  it('runs a configured command with the instance in its environment', async function () {
    const out = path.join(scratch, 'env.json');
    const script = [
      "const fs = require('fs');",
      'const pick = (k) => process.env[k];',
      "const env = Object.fromEntries(['VMDB_INSTANCE_NAME', 'VMDB_UNIQUE_ID', 'VMDB_USER_DATA', 'VMDB_IMAGE_NAME', 'VMDB_RUNNING_POD'].map((k) => [k, pick(k)]));",
      'fs.writeFileSync(process.argv[1] + ".tmp", JSON.stringify(env));',
      'fs.renameSync(process.argv[1] + ".tmp", process.argv[1]);',
      'setInterval(() => {}, 1 << 30);',
    ].join('\n');
    const d = driver({ command: [process.execPath, '-e', script, out] });
    const name = uniqueName('command');
    const userData = '#cloud-config\nruncmd:\n  - echo "it\'s $HOME; `x`"\n';
    const vm = await d.createInstance({ ...request(name), userData });
    const seen = await waitFor('the command to write its file', async () => {
      const text = await fs.readFile(out, 'utf8').catch(() => undefined);
      return text === undefined ? undefined : (JSON.parse(text) as Record<string, string>);
    });
    assert.deepEqual(seen, {
      VMDB_INSTANCE_NAME: name,
      VMDB_UNIQUE_ID: vm.uniqueID,
      VMDB_USER_DATA: userData,
      VMDB_IMAGE_NAME: 'CernVM4',
      VMDB_RUNNING_POD: 'lhcb',
    });
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'running');
    await d.stopInstance(vm.uniqueID);
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
  });

  describe('a VM that started a child which ignores SIGTERM', function () {
    // The VM's child writes its pid to the file argv[1]; argv[2] says whether the VM itself ignores SIGTERM.
    const script = [
      "if (process.argv[2] === 'ignore') process.on('SIGTERM', () => {});",
      `require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(GRANDCHILD)}, process.argv[1]], { stdio: 'ignore' });`,
      'setInterval(() => {}, 1 << 30);',
    ].join('\n');

    async function start(leader: 'ignore' | 'obey', stopGraceMs: number) {
      const pidFile = path.join(scratch, `grandchild-${randomBytes(3).toString('hex')}.pid`);
      const d = driver({ command: [process.execPath, '-e', script, pidFile, leader], stopGraceMs });
      const vm = await d.createInstance(request(uniqueName(`group-${leader}`)));
      const grandchild = await waitFor('the grandchild pid', async () => {
        const text = await fs.readFile(pidFile, 'utf8').catch(() => '');
        return text === '' ? undefined : Number(text);
      });
      strayPids.push(grandchild);
      return { d, vm, grandchild, pid: await pidOf(d, vm.uniqueID) };
    }

    // Not our child: once killed it may linger as a zombie until its new parent reaps it.
    const grandchildGone = (pid: number) => waitFor('the grandchild to be gone', () => (['Z', undefined].includes(procState(pid)) ? true : undefined), 3000);

    for (const leader of ['ignore', 'obey'] as const) {
      it(`stops all of it after the grace period when the VM ${leader === 'ignore' ? 'ignores' : 'obeys'} SIGTERM`, async function () {
        const { d, vm, grandchild, pid } = await start(leader, 300);
        const started = Date.now();
        await d.stopInstance(vm.uniqueID);
        assert.ok(Date.now() - started >= 300, 'waited the grace period before SIGKILL');
        await waitFor('the VM process to be gone', () => (pidExists(pid) ? undefined : true), 2000);
        await grandchildGone(grandchild);
        assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
      });
    }

    it('kills what a crashed VM left behind, without a grace period', async function () {
      const { d, vm, grandchild, pid } = await start('obey', 10_000);
      process.kill(pid, 'SIGKILL');
      await waitFor('the crash to be seen', async () => ((await d.getInstanceStatus(vm.uniqueID)).status === 'stopped' ? true : undefined));
      assert.ok(!['Z', undefined].includes(procState(grandchild)), 'the orphan still runs');
      const started = Date.now();
      await d.stopInstance(vm.uniqueID);
      assert.ok(Date.now() - started < 5000, 'no grace period for orphans');
      await grandchildGone(grandchild);
    });
  });

  it('reports a VM whose command exits at once as stopped', async function () {
    const d = driver({ command: [process.execPath, '-e', 'process.exit(3)'] });
    const vm = await d.createInstance(request(uniqueName('exit')));
    await waitFor('the VM to be seen as stopped', async () => ((await d.getInstanceStatus(vm.uniqueID)).status === 'stopped' ? true : undefined));
    await d.stopInstance(vm.uniqueID);
  });

  it('fails clearly when the command cannot start, leaving no record', async function () {
    const d = driver({ command: [path.join(scratch, 'no-such-program')] });
    const before = (await d.listInstances()).length;
    await assert.rejects(d.createInstance(request(uniqueName('enoent'))), /local driver: cannot start ".*no-such-program" for instance "test-enoent-.*": .*ENOENT/);
    assert.equal((await d.listInstances()).length, before);
  });

  it('refuses malformed requests with InvalidRequestError', async function () {
    const d = driver();
    const cases: [unknown, RegExp][] = [
      [{ ...request(''), instanceName: '' }, /instanceName must not be empty/],
      [{ ...request('x'), instanceName: 7 }, /instanceName must be a string, got number/],
      [{ ...request('x\nrm'), instanceName: 'x\nrm' }, /instanceName contains control characters/],
      [{ ...request('x'), runningPod: undefined }, /runningPod must be a string/],
      [{ ...request('x'), userData: 'a\0b' }, /userData must not contain NUL/],
      [{ ...request('x'), userData: 'x'.repeat(100_001) }, /userData is too large for the local driver \(100001 bytes, at most 100000\)/],
      [null, /create request must be an object/],
    ];
    for (const [req, message] of cases) {
      await assert.rejects(d.createInstance(req as never), (err: Error) => err instanceof InvalidRequestError && err.name === 'InvalidRequestError' && message.test(err.message));
    }
  });
});

async function once(child: ChildProcess, event: 'spawn'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.once(event, resolve);
    child.once('error', reject);
  });
}
