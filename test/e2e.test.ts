import { strict as assert } from 'node:assert';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './support/sshd';
import { temporalBinaries } from './support/temporal';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);

// The `npm start` stack end to end: embedded Temporal, SQLite, API, worker, Director, demo VMs running vmdb-agent.
describe('npm start stack, end to end', function () {
  this.timeout(180_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'vmdb-e2e-'));
  let stack: ChildProcess;
  let output = '';
  let apiUrl: string;
  let token: string;
  let temporalUiUrl: string;

  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { env: { ...process.env, VMDB_API_URL: apiUrl, VMDB_TOKEN: token } });
      return { code: 0, stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout + e.stderr };
    }
  };
  const instances = async (): Promise<{ id: number; status: string; uniqueID: string }[]> => {
    const { stdout } = await cli('instances', '--json');
    const content = JSON.parse(stdout) as { ParameterNames: string[]; Records: unknown[][] };
    const col = (name: string) => content.ParameterNames.indexOf(name);
    return content.Records.map((r) => ({ id: r[col('inst.InstanceID')] as number, status: r[col('inst.Status')] as string, uniqueID: r[col('inst.UniqueID')] as string }));
  };
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n--- stack output ---\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const history = async (id: number): Promise<string[]> => {
    const { stdout } = await cli('history', String(id), '--json');
    return (JSON.parse(stdout) as { Records: unknown[][] }).Records.map((r) => r[0] as string);
  };

  before(async function () {
    temporalBinaries(); // install outside the timed part
    const [apiPort, temporalPort, uiPort, metricsPort, sdkMetricsPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    apiUrl = `http://127.0.0.1:${apiPort}`;
    temporalUiUrl = `http://127.0.0.1:${uiPort}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VMDB_DATA_DIR: dataDir,
      VMDB_API_PORT: String(apiPort),
      VMDB_TEMPORAL_PORT: String(temporalPort),
      VMDB_TEMPORAL_UI_PORT: String(uiPort),
      VMDB_STALLING_INTERVAL: '6',
      VMDB_AGENT_PERIOD: '1',
      // Not the default metrics ports: they may be taken on this machine.
      VMDB_WORKER_METRICS_PORT: String(metricsPort),
      VMDB_TEMPORAL_METRICS_PORT: String(sdkMetricsPort),
    };
    for (const key of ['TEMPORAL_ADDRESS', 'VMDB_DATABASE_URL', 'VMDB_FLEET_FILE', 'VMDB_ADMIN_TOKEN', 'VMDB_TOKEN_SECRET', 'VMDB_OPERATOR_TOKENS_FILE']) delete env[key];
    stack = spawn(process.execPath, [join(ROOT, 'dist/src/start.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    stack.stdout!.on('data', (chunk) => (output += chunk));
    stack.stderr!.on('data', (chunk) => (output += chunk));
    token = await waitFor('the operator token', async () => /operator token (\S+)/.exec(output)?.[1]);
  });

  after(async function () {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGKILL');
      for (const file of readdirSync(join(dataDir, 'vms')).filter((f) => f.endsWith('.json'))) {
        const { pid } = JSON.parse(readFileSync(join(dataDir, 'vms', file), 'utf8'));
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('demo VMs reach Running; one stopped with the CLI drains and halts; one whose agent dies stalls and halts; Ctrl-C stops it all', async function () {
    const running = await waitFor('two Running instances', async () => {
      const list = (await instances()).filter((i) => i.status === 'Running');
      return list.length >= 2 ? list : undefined;
    });
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

    stack.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => stack.once('exit', resolve));
    assert.equal(code, 0, output.slice(-2000));
    const leftovers = readdirSync(join(dataDir, 'vms'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dataDir, 'vms', f), 'utf8')).pid as number)
      .filter((pid) => {
        try {
          process.kill(pid, 0);
          return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
        } catch {
          return false;
        }
      });
    assert.deepEqual(leftovers, [], 'no demo VM left running');
  });
});
