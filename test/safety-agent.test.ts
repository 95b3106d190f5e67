import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmAgent } from '../src/agent/agent';
import { AgentConfigError, loadAgentConfig } from '../src/agent/config';

/** vmdb-agent keeps the shutdown file in step with the heartbeat replies' planned shutdown time. */
describe('vmdb-agent: shutdown notice and transfer figures', function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server;
  let shutdownAt: string | undefined;
  let beats = 0;
  const bodies: Record<string, number>[] = [];
  const controller = new AbortController();

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'vmdb-agent-shutdown-'));
    server = createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      req.on('end', () => {
        if (req.url?.endsWith('/heartbeat')) bodies.push(JSON.parse(text));
        res.setHeader('content-type', 'application/json');
        if (req.url?.endsWith('/running')) return res.end(JSON.stringify({ status: 'Running' }));
        beats++;
        res.end(JSON.stringify(shutdownAt ? { directive: 'ok', shutdownAt } : { directive: 'ok' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async function () {
    controller.abort();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  async function until(what: string, check: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('writes the time when one is planned, rewrites it when it moves, removes the file when none is planned', async function () {
    const file = join(dir, 'run', 'shutdown-at');
    const agent = new VmAgent(
      {
        apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        instanceID: 7,
        token: 'vm.7.x',
        periodSeconds: 0.05,
        stopFile: join(dir, 'stop'),
        shutdownFile: file,
        haltCommand: ['true'],
      },
      { log: () => undefined },
    );
    const done = agent.run(controller.signal);
    await until('a few heartbeats', () => beats >= 3);
    assert.equal(existsSync(file), false, 'no shutdown planned: no file');

    shutdownAt = '2030-01-02T03:04:05.000Z';
    await until('the shutdown file', () => existsSync(file) && readFileSync(file, 'utf8') === '2030-01-02T03:04:05.000Z\n');
    shutdownAt = '2030-01-02T05:00:00Z';
    await until('the moved time', () => readFileSync(file, 'utf8') === '2030-01-02T05:00:00.000Z\n');
    shutdownAt = 'not a time';
    await until('the file removed (a malformed time counts as none)', () => !existsSync(file));
    controller.abort();
    assert.deepEqual(await done, { reason: 'aborted' });
  });

  it('reports the transfer figures the job agent keeps in VMDB_AGENT_TRANSFER_FILE (0 0 while it does not exist)', async function () {
    const file = join(dir, 'transfers');
    const controller2 = new AbortController();
    const agent = new VmAgent(
      {
        apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        instanceID: 8,
        token: 'vm.8.x',
        periodSeconds: 0.05,
        transferFile: file,
        stopFile: join(dir, 'stop'),
        haltCommand: ['true'],
      },
      { log: () => undefined },
    );
    bodies.length = 0;
    const done = agent.run(controller2.signal);
    await until('a heartbeat', () => bodies.length >= 1);
    assert.deepEqual([bodies[0].transferredFiles, bodies[0].transferredBytes], [0, 0]);
    writeFileSync(file, '12 3456789\n');
    await until('the figures of the file', () => bodies.some((b) => b.transferredFiles === 12 && b.transferredBytes === 3456789));
    writeFileSync(file, 'garbage');
    const seen = bodies.length;
    await until('more heartbeats', () => bodies.length >= seen + 3);
    assert.deepEqual([bodies.at(-1)!.transferredFiles, bodies.at(-1)!.transferredBytes], [12, 3456789], 'a bad file keeps the last figures');
    controller2.abort();
    await done;
  });

  it('the transfer file and the transfer command exclude each other', function () {
    const base = { VMDB_API_URL: 'http://vmdb.example.org', VMDB_INSTANCE_ID: '3', VMDB_VM_TOKEN: 'vm.3.abc', VMDB_AGENT_ALLOW_HTTP: 'true' };
    assert.equal(loadAgentConfig({ ...base, VMDB_AGENT_TRANSFER_FILE: '/run/transfers' }).transferFile, '/run/transfers');
    assert.throws(
      () => loadAgentConfig({ ...base, VMDB_AGENT_TRANSFER_FILE: '/run/transfers', VMDB_AGENT_TRANSFER_COMMAND: '["cat","/x"]' }),
      (err: Error) => err instanceof AgentConfigError && /not both/.test(err.message),
    );
  });
});
