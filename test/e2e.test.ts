import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isAliveState } from '../entities/states';
import { StartedStack, killLeftovers, startEnv, storedInstances, vmRunning } from './support/start-stack';
import { temporalBinaries } from './support/temporal';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);

// The `npm start` stack end to end: embedded Temporal, SQLite, API, worker, Director, demo VMs running vmdb-agent.
describe('npm start stack, end to end', function () {
  this.timeout(180_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'vmdb-e2e-'));
  let env: NodeJS.ProcessEnv;
  let stack: StartedStack;
  let apiUrl: string;
  let token: string;
  let temporalUiUrl: string;
  const start = () => new StartedStack([process.execPath, join(ROOT, 'dist/src/start.js')], { env }, apiUrl);

  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { env: { ...process.env, VMDB_API_URL: apiUrl, VMDB_TOKEN: token } });
      return { code: 0, stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout + e.stderr };
    }
  };
  const instances = () => stack.instances(token);
  const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs?: number) => stack.waitFor(what, probe, timeoutMs);
  const history = async (id: number): Promise<string[]> => {
    const { stdout } = await cli('history', String(id), '--json');
    return (JSON.parse(stdout) as { Records: unknown[][] }).Records.map((r) => r[0] as string);
  };
  const twoRunning = (newerThan = 0) =>
    waitFor('two Running instances', async () => {
      const list = (await instances()).filter((i) => i.status === 'Running' && i.id > newerThan);
      return list.length >= 2 ? list : undefined;
    });

  before(async function () {
    temporalBinaries(); // install outside the timed part
    ({ env, apiUrl, temporalUiUrl } = await startEnv(dataDir));
    Object.assign(env, { VMDB_STALLING_INTERVAL: '6', VMDB_AGENT_PERIOD: '1' });
    stack = start();
    token = await stack.token();
  });

  after(async function () {
    if (stack?.running) await stack.kill();
    killLeftovers(dataDir); // the Temporal server and demo VMs of a stack that did not stop
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('demo VMs reach Running; one stopped with the CLI drains and halts; one whose agent dies stalls and halts; Ctrl-C stops the VMs and records them Halted', async function () {
    const running = await twoRunning();
    const [stopped, silenced] = running;

    // The dashboard is served, and links each instance to its workflow in the embedded Temporal UI.
    const dashboard = await fetch(`${apiUrl}/`);
    assert.equal(dashboard.status, 200);
    assert.match(await dashboard.text(), /<title>vmdb fleet<\/title>/);
    const detail = (await (await fetch(`${apiUrl}/api/v1/instances/${stopped.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { Workflow: { UIUrl: string } };
    assert.equal(detail.Workflow.UIUrl, `${temporalUiUrl}/namespaces/default/workflows/vm-${stopped.id}`);

    const stop = await cli('stop', String(stopped.id));
    assert.equal(stop.code, 0, stop.stdout);
    await waitFor('the stopped VM to halt', async () => ((await instances()).find((i) => i.id === stopped.id)?.status === 'Halted' ? true : undefined));
    const drained = await history(stopped.id);
    assert.deepEqual(drained.slice(-2), ['Stopping', 'Halted']);

    const record = JSON.parse(readFileSync(join(dataDir, 'vms', `${silenced.uniqueID}.json`), 'utf8'));
    process.kill(-record.pid, 'SIGKILL'); // the VM (its agent) dies without a word
    await waitFor('the silent VM to stall and halt', async () => ((await instances()).find((i) => i.id === silenced.id)?.status === 'Halted' ? true : undefined));
    const stalled = await history(silenced.id);
    assert.deepEqual(stalled.slice(-2), ['Stalled', 'Halted']);

    // A Director pass now (not at its next interval) puts two VMs in the freed slots; Ctrl-C stops them.
    const trigger = await fetch(`${apiUrl}/api/v1/director/trigger`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(trigger.status, 200);
    const replacements = await twoRunning(silenced.id);
    const code = await stack.interrupt();
    assert.equal(code, 0, stack.output.slice(-2000));
    const leftovers = [];
    for (const row of await storedInstances(dataDir)) if (row.uniqueID && (await vmRunning(dataDir, row.uniqueID))) leftovers.push(row.id);
    assert.deepEqual(leftovers, [], 'no demo VM left running');
    const rows = await storedInstances(dataDir);
    assert.deepEqual(replacements.map((vm) => rows.find((r) => r.id === vm.id)?.status), ['Halted', 'Halted'], 'Ctrl-C records the demo VMs it stopped');
    assert.deepEqual(rows.filter((r) => r.uniqueID && isAliveState(r.status)), []);
  });

  it('after a crash (stack and VMs killed), the next start records the dead VMs at once and fills the slots', async function () {
    if (stack.running) await stack.interrupt(); // the test above failed midway
    stack = start();
    const lost = await twoRunning(Math.max(...(await storedInstances(dataDir)).map((r) => r.id)));
    await stack.kill();
    assert.ok(killLeftovers(dataDir) >= lost.length, 'the demo VMs and the Temporal server outlived the stack');
    const left = (await storedInstances(dataDir)).filter((r) => lost.some((vm) => vm.id === r.id));
    assert.deepEqual(left.map((r) => r.status), ['Running', 'Running'], 'the crash left their rows Running');

    stack = start();
    const shown = await waitFor('the API to answer', () => instances());
    assert.deepEqual(lost.map((vm) => shown.find((r) => r.id === vm.id)?.status), ['Halted', 'Halted'], 'recorded Halted before the API answers');
    await twoRunning(Math.max(...lost.map((vm) => vm.id)));
    assert.equal(await stack.interrupt(), 0, stack.output.slice(-2000));
  });
});
