import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalDriver } from '../../src/drivers/local';
import { DEFAULT_FLEET } from '../../src/config/fleet';
import { VirtualMachineDB } from '../../src/db/vmdb';
import { freePort } from './sshd';

/** What `npm start` (or dist/src/start.js) needs to run beside others: free ports, and a data folder when given (default ./data). */
export async function startEnv(dataDir?: string): Promise<{ env: NodeJS.ProcessEnv; apiUrl: string; temporalUiUrl: string }> {
  const [apiPort, temporalPort, uiPort, metricsPort, sdkMetricsPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VMDB_API_PORT: String(apiPort),
    VMDB_TEMPORAL_PORT: String(temporalPort),
    VMDB_TEMPORAL_UI_PORT: String(uiPort),
    // Not the default metrics ports: they may be taken on this machine.
    VMDB_WORKER_METRICS_PORT: String(metricsPort),
    VMDB_TEMPORAL_METRICS_PORT: String(sdkMetricsPort),
  };
  for (const key of ['TEMPORAL_ADDRESS', 'VMDB_DATABASE_URL', 'VMDB_FLEET_FILE', 'VMDB_ADMIN_TOKEN', 'VMDB_TOKEN_SECRET', 'VMDB_OPERATOR_TOKENS_FILE', 'VMDB_CONFIG_FILE', 'VMDB_DATA_DIR']) delete env[key];
  if (dataDir) env.VMDB_DATA_DIR = dataDir;
  return { env, apiUrl: `http://127.0.0.1:${apiPort}`, temporalUiUrl: `http://127.0.0.1:${uiPort}` };
}

export interface InstanceRow {
  id: number;
  status: string;
  uniqueID: string;
}

/**
 * One run of the `npm start` stack, in its own process group as a terminal would run it: `interrupt`
 * is Ctrl-C. Its output is kept for the failure messages.
 */
export class StartedStack {
  readonly process: ChildProcess;
  output = '';

  constructor(argv: readonly string[], options: { cwd?: string; env: NodeJS.ProcessEnv }, readonly apiUrl: string) {
    this.process = spawn(argv[0], argv.slice(1), { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.process.stdout!.on('data', (chunk) => (this.output += chunk));
    this.process.stderr!.on('data', (chunk) => (this.output += chunk));
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  async waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (!this.running) throw new Error(`the stack exited while waiting for ${what}\n--- stack output ---\n${this.output.slice(-4000)}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n--- stack output ---\n${this.output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** The operator token it prints, once the API listens. */
  token(timeoutMs?: number): Promise<string> {
    return this.waitFor('the operator token', async () => /operator token (\S+)/.exec(this.output)?.[1], timeoutMs);
  }

  async instances(token: string): Promise<InstanceRow[]> {
    const res = await fetch(`${this.apiUrl}/api/v1/instances?limit=1000`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET /instances: ${res.status}`);
    const body = (await res.json()) as { ParameterNames: string[]; Records: unknown[][] };
    const col = (name: string) => body.ParameterNames.indexOf(name);
    return body.Records.map((r) => ({ id: r[col('inst.InstanceID')] as number, status: r[col('inst.Status')] as string, uniqueID: r[col('inst.UniqueID')] as string }));
  }

  /** Ctrl-C: SIGINT to the whole group; resolves with the exit code. */
  async interrupt(): Promise<number | null> {
    return this.signal('SIGINT');
  }

  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  private async signal(signal: NodeJS.Signals): Promise<number | null> {
    if (!this.running) return this.process.exitCode;
    const exited = new Promise<number | null>((resolve) => this.process.once('exit', (code) => resolve(code)));
    try {
      process.kill(-this.process.pid!, signal);
    } catch {
      // already gone
    }
    return exited;
  }
}

function commandLine(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * SIGKILL to every process whose command line or environment mentions `marker` (a temporary folder
 * of the test): what a stack killed outright leaves behind, its Temporal server (own process group)
 * and demo VMs (VMDB_DATA_DIR in their environment). Returns how many there were.
 */
export function killLeftovers(marker: string): number {
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)) {
    let environ = '';
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      // gone, or not ours to read
    }
    if (!commandLine(pid).includes(marker) && !environ.includes(marker)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // already gone
    }
  }
  return killed;
}

/** Whether a demo VM of the data folder still runs, as the local driver judges it (same process, not a zombie). */
export async function vmRunning(dataDir: string, uniqueID: string): Promise<boolean> {
  const [endpoint] = DEFAULT_FLEET.endpoints;
  const driver = new LocalDriver(endpoint.endpoint, { stateDir: join(dataDir, 'vms') });
  return (await driver.getInstanceStatus(uniqueID)).status === 'running';
}

/** The instance rows of a stopped stack, read from its SQLite file. */
export async function storedInstances(dataDir: string): Promise<InstanceRow[]> {
  const db = await VirtualMachineDB.open({ url: `sqlite:${join(dataDir, 'vmdb.sqlite')}`, migrate: false });
  try {
    const result = await db.getFields('vm_Instances', ['InstanceID', 'Status', 'UniqueID'], {});
    if (!result.OK) throw new Error(result.Message);
    return (result.Value as [number, string, string][]).map(([id, status, uniqueID]) => ({ id: Number(id), status, uniqueID }));
  } finally {
    await db.close();
  }
}
