import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { newSecret } from '../../src/auth/tokens';
import { LifecycleRig } from './lifecycle-rig';
import { freePort } from './sshd';
import { startDevServer } from './temporal';

const MAIN_JS = join(__dirname, '..', '..', 'src', 'agent', 'main.js');

/**
 * Local-driver VMs that run the real vmdb-agent against a listening API, with a load and per-VM job
 * counts the test controls: the load is one file for all, the jobs of a VM are in jobs-<UniqueID>
 * (none: 0). The local driver passes its environment on to the VMs: the agent's settings go there.
 */
export class AgentVms {
  readonly dir = mkdtempSync(join(tmpdir(), 'vmdb-agent-vms-'));
  env!: TestWorkflowEnvironment;
  rig!: LifecycleRig;
  /** The API the VMs call, and the secret their tokens are signed with. */
  app!: FastifyInstance;
  readonly secret = newSecret();
  private readonly saved = new Map<string, string | undefined>();

  async setUp(rigOptions: ConstructorParameters<typeof LifecycleRig>[1] = {}): Promise<void> {
    const agentEnv: Record<string, string> = {
      VMDB_AGENT_PERIOD: '1',
      VMDB_AGENT_LOAD_FILE: join(this.dir, 'load'),
      VMDB_AGENT_UPTIME: 'agent',
      VMDB_AGENT_JOBS_COMMAND: JSON.stringify([
        process.execPath,
        '-e',
        `try { process.stdout.write(require('fs').readFileSync(${JSON.stringify(this.dir)} + '/jobs-' + process.env.VMDB_UNIQUE_ID, 'utf8')) } catch { console.log(0) }`,
      ]),
      VMDB_AGENT_HALT_COMMAND: '["true"]',
      VMDB_AGENT_STOP_FILE: join(this.dir, 'stop'),
      VMDB_AGENT_SHUTDOWN_FILE: join(this.dir, 'shutdown-at'),
    };
    for (const [name, value] of Object.entries(agentEnv)) {
      this.saved.set(name, process.env[name]);
      process.env[name] = value;
    }
    this.setLoad(2);
    this.env = await startDevServer();
    const port = await freePort();
    this.rig = new LifecycleRig(this.env, { tokenSecret: this.secret, apiUrl: `http://127.0.0.1:${port}`, ...rigOptions, driver: { command: [process.execPath, MAIN_JS], ...rigOptions.driver } });
    await this.rig.setUp();
    this.app = await this.rig.api([], this.secret, { logger: false });
    await this.app.listen({ port, host: '127.0.0.1' });
  }

  async tearDown(): Promise<void> {
    await this.rig?.tearDown();
    await this.env?.teardown();
    for (const [name, value] of this.saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The 1-minute load every agent reads from now on. */
  setLoad(load: number): void {
    writeFileSync(join(this.dir, 'load'), `${load.toFixed(2)} 0.00 0.00 1/100 1234\n`);
  }

  async setJobs(instanceID: number, jobs: number): Promise<void> {
    writeFileSync(join(this.dir, `jobs-${await this.rig.uniqueID(instanceID)}`), `${jobs}\n`);
  }

  async runningRows(instanceID: number): Promise<number> {
    return (await this.rig.history(instanceID)).filter((s) => s === 'Running').length;
  }

  /** Waits until each instance has sent `more` heartbeats beyond what it has now. */
  async heartbeatsPass(ids: number[], more: number, timeoutMs = 60_000): Promise<void> {
    const start = await Promise.all(ids.map((id) => this.runningRows(id)));
    await waitFor(`${more} heartbeats of ${ids.join(', ')}`, async () => (await Promise.all(ids.map((id) => this.runningRows(id)))).every((n, i) => n >= start[i] + more), timeoutMs);
  }
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
