import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { isAliveState } from '../entities/states';
import { type InstanceRow, StartedStack, killLeftovers, startEnv, storedInstances, vmRunning } from './support/start-stack';

const ROOT = join(__dirname, '..', '..');
const VENVS = ['.temporal-venv'];

/** A command line of README's "Two commands" block, without its comment. */
function readmeLine(checkout: string, command: 'npm start' | 'npm test'): string {
  const readme = readFileSync(join(checkout, 'README.md'), 'utf8');
  const block = /## Two commands[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  const line = block?.split('\n').find((l) => l.replace(/#.*$/, '').includes(command));
  assert.ok(line, `README's "Two commands" block has a line with ${command}`);
  return line.replace(/#.*$/, '').trim();
}

/**
 * The `npm` of the clone's runs. `npm ci` links this checkout's node_modules and Temporal venv
 * (a full install takes minutes and is the same lock file); everything else is the real npm.
 */
function npmShim(dir: string): string {
  const realNpm = execFileSync('bash', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
  const links = ['node_modules', ...VENVS].filter((name) => existsSync(join(ROOT, name))).map((name) => `ln -sfn ${JSON.stringify(join(ROOT, name))} ${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'npm'), ['#!/usr/bin/env bash', 'set -e', 'if [[ "$*" == ci ]]; then', ...links.map((l) => `  ${l}`), '  exit 0', 'fi', `exec ${JSON.stringify(realNpm)} "$@"`, ''].join('\n'));
  chmodSync(join(dir, 'npm'), 0o755);
  return dir;
}

/** The environment of a fresh terminal: no npm run variables, no checkout's node_modules/.bin on PATH; the shim first. */
function terminalEnv(base: NodeJS.ProcessEnv, shimDir: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(base).filter(([key]) => !/^npm_/i.test(key) && key !== 'INIT_CWD'));
  const path = (base.PATH ?? '').split(delimiter).filter((dir) => dir !== '' && !dir.endsWith(join('node_modules', '.bin')));
  env.PATH = [shimDir, ...path].join(delimiter);
  return env;
}

// README's start line, run as a new user would: in a fresh clone of this commit, twice, with Ctrl-C between.
describe('README\'s start line in a fresh clone', function () {
  this.timeout(600_000);
  const home = mkdtempSync(join(tmpdir(), 'vmdb-start-line-'));
  const clone = join(home, 'vmdb');
  const data = join(clone, 'data');
  const stacks: StartedStack[] = [];

  after(async function () {
    for (const stack of stacks) if (stack.running) await stack.kill();
    killLeftovers(clone); // the Temporal server and the demo VMs of a run that did not stop
    rmSync(home, { recursive: true, force: true });
  });

  it('API up with demo VMs Running, no warning; Ctrl-C stops and records them; the next start shows only live VMs and fills its slots', async function () {
    execFileSync('git', ['clone', '--quiet', ROOT, clone], { stdio: 'inherit' });
    const line = readmeLine(clone, 'npm start');
    const { env: ports, apiUrl } = await startEnv();
    const env = terminalEnv(ports, npmShim(join(home, 'bin')));
    const start = () => {
      const stack = new StartedStack(['bash', '-c', line], { cwd: clone, env }, apiUrl);
      stacks.push(stack);
      return stack;
    };
    const running = (rows: InstanceRow[]) => rows.filter((r) => r.status === 'Running');

    const first = start();
    const token = await first.token(420_000); // npm start builds first
    const before = await first.waitFor('two demo VMs Running', async () => {
      const rows = running(await first.instances(token));
      return rows.length >= 2 ? rows : undefined;
    }, 120_000);
    const warnings = first.output.split('\n').filter((l) => /\(node:\d+\) (\[\w+\] )?\w*Warning|^npm warn/i.test(l));
    assert.deepEqual(warnings, [], 'no Node or npm warning at start');

    await first.interrupt();
    assert.equal(first.running, false);
    for (const vm of before) assert.equal(await vmRunning(data, vm.uniqueID), false, `demo VM ${vm.id} stopped by Ctrl-C`);
    const recorded = await storedInstances(data);
    assert.deepEqual(recorded.filter((r) => r.uniqueID && isAliveState(r.status)), [], 'Ctrl-C records the VMs it stopped');
    assert.deepEqual(before.map((vm) => recorded.find((r) => r.id === vm.id)?.status), before.map(() => 'Halted'));

    const second = start();
    assert.equal(await second.token(420_000), token, 'the data folder keeps the token');
    const shown = await second.waitFor('the API to answer', () => second.instances(token));
    for (const vm of running(shown)) assert.ok(await vmRunning(data, vm.uniqueID), `instance ${vm.id} shown Running has a live VM`);
    const newest = Math.max(...recorded.map((r) => r.id));
    await second.waitFor('two new demo VMs Running', async () => {
      const fresh = running(await second.instances(token)).filter((r) => r.id > newest);
      return fresh.length >= 2 ? fresh : undefined;
    }, 120_000);
    await second.interrupt();
    assert.equal(killLeftovers(clone), 0, 'nothing of the stack outlives Ctrl-C');
  });
});
