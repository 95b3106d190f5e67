import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createDirectorActivities } from '../activities/director';
import { hashToken, newSecret } from '../src/auth/tokens';
import { validateElastic } from '../src/elastic/config';
import { atPath, demandTarget, readDemand } from '../src/elastic/demand';
import { HaltStore } from '../src/db/halt-store';
import { validateFleet } from '../src/config/fleet';
import { renderMetrics } from '../src/ops/metrics';
import { ok } from './support/backends';
import { AgentVms } from './support/agent-vms';

describe('demand: sources, targets and settings', function () {
  let server: Server;
  let reply = '';
  let url = '';
  before(async function () {
    server = createServer((_req, res) => res.writeHead(reply.startsWith('!') ? 500 : 200, { 'content-type': 'application/json' }).end(reply));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/queues`;
  });
  after(function () {
    server.close();
  });

  it('the target is ceil(waiting / jobsPerInstance) within min and max; a failed reading gives the minimum', function () {
    const config = { jobsPerInstance: 3, minInstances: 1, maxInstances: 5 };
    assert.deepEqual([0, 1, 3, 4, 9, 10, 1000].map((waiting) => demandTarget({ waiting }, config)), [1, 1, 1, 2, 3, 4, 5]);
    assert.equal(demandTarget({ error: 'down' }, config), 1);
    assert.equal(demandTarget({ waiting: 0 }, { jobsPerInstance: 1, minInstances: 0, maxInstances: 5 }), 0);
  });

  it('a command prints the number; a URL returns JSON with the number at a dotted field', async function () {
    assert.deepEqual(await readDemand({ command: [process.execPath, '-e', 'console.log(" 17 ")'], timeoutSeconds: 10 }), { waiting: 17 });
    assert.match((await readDemand({ command: [process.execPath, '-e', 'console.log("many")'], timeoutSeconds: 10 }) as { error: string }).error, /not a number of waiting jobs/);
    assert.match((await readDemand({ command: [process.execPath, '-e', 'process.exit(4)'], timeoutSeconds: 10 }) as { error: string }).error, /exited with code 4/);
    reply = JSON.stringify({ queues: { lhcb: { waiting: 42 } } });
    assert.deepEqual(await readDemand({ url, field: 'queues.lhcb.waiting', timeoutSeconds: 10 }), { waiting: 42 });
    assert.match((await readDemand({ url, field: 'queues.atlas.waiting', timeoutSeconds: 10 }) as { error: string }).error, /no field queues.atlas.waiting/);
    reply = '7';
    assert.deepEqual(await readDemand({ url, timeoutSeconds: 10 }), { waiting: 7 });
    reply = '!oops';
    assert.match((await readDemand({ url, timeoutSeconds: 10 }) as { error: string }).error, /HTTP 500/);
    assert.equal(atPath({ a: { b: [1] } }, 'a.b.0'), 1);
  });

  it('README\'s elastic endpoint entry is valid, as written', function () {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const block = /```json\n([\s\S]*?)\n```/.exec(readme.slice(readme.indexOf('## Elastic fleet')));
    assert.ok(block, 'README has a JSON endpoint entry under "Elastic fleet"');
    const [entry] = validateFleet({ endpoints: [JSON.parse(block[1])] }).endpoints;
    assert.deepEqual([entry.stopPolicy?.policy, entry.jobsPerInstance, entry.minInstances, entry.pricePerHour], ['elastic', 4, 1, 0.12]);
    assert.deepEqual(entry.demand, { url: 'https://queue.example.org/api/queues', field: 'lhcb.waiting', timeoutSeconds: 10 });
  });

  it('fleet-file keys: https only (http to loopback), one source, bounds named', function () {
    assert.deepEqual(validateElastic('e', { demand: { url: 'https://queue.example.org/q', field: 'a.b' }, jobsPerInstance: 4, minInstances: 1, pricePerHour: 0.12 }, 10), {
      demand: { url: 'https://queue.example.org/q', field: 'a.b', timeoutSeconds: 10 },
      jobsPerInstance: 4,
      minInstances: 1,
      idleBackoff: { withinSeconds: 600, backoffSeconds: 600 },
      pricePerHour: 0.12,
    });
    assert.throws(() => validateElastic('e', { demand: { url: 'http://queue.example.org/q' } }, 10), /e.demand.url must be https:\/\//);
    assert.throws(() => validateElastic('e', { demand: { url: 'https://x.org', command: ['true'] } }, 10), /exactly one of/);
    assert.throws(() => validateElastic('e', { minInstances: 11 }, 10), /e.minInstances must be a whole number from 0 to 10/);
    assert.throws(() => validateElastic('e', { stopPolicy: { policy: 'elastic' }, userData: '#!/bin/sh' }, 10), /userData must be a JSON object/);
    assert.throws(() => validateElastic('e', { idleBackoff: { seconds: 1 } }, 10), /e.idleBackoff.seconds is not a setting/);
  });
});

// The Director's real pass over local-driver VMs that run the real agent with the elastic policy.
describe('the Director follows a demand command [mariadb]', function () {
  this.timeout(240_000);
  const vms = new AgentVms();
  let demandFile: string;

  before(async function () {
    demandFile = join(vms.dir, 'demand');
    writeFileSync(demandFile, '5\n');
    await vms.setUp({
      endpoint: {
        maxInstances: 4,
        jobsPerInstance: 2,
        minInstances: 0,
        demand: { command: [process.execPath, '-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(demandFile)}, 'utf8'))`] },
        stopPolicy: { policy: 'elastic', loadAverageTimespan: 2, haltPeriod: 4, haltBeforeMargin: 2, minWorkingLoad: 0.5 },
        idleBackoff: { withinSeconds: 3600, backoffSeconds: 25 },
      },
    });
  });
  after(async function () {
    await vms.tearDown();
  });

  const director = () =>
    createDirectorActivities({ db: vms.rig.db, client: vms.env.client, taskQueue: vms.rig.taskQueue, endpoints: vms.rig.fleet.endpoints, drivers: vms.rig.drivers, safety: vms.rig.fleet.safety });
  const live = async () => Object.entries(ok(await vms.rig.db.getInstanceCounters('Status', { Endpoint: vms.rig.endpoint }))).filter(([s]) => !['Halted', 'Error'].includes(s)).reduce((n, [, c]) => n + c, 0);

  it('grows to the target, shrinks as idle VMs halt themselves without stopping busy ones, backs off after idle halts, grows again', async function () {
    const { rig } = vms;
    // 5 waiting jobs at 2 per instance: 3 instances.
    const [grow] = await director().launchFreeSlots();
    assert.deepEqual([grow.demand, grow.target, grow.reserved.length, grow.held], [5, 3, 3, undefined]);
    const [a, b, c] = grow.reserved;
    for (const id of grow.reserved) await rig.waitForStatus(id, 'Running', 60_000);
    await vms.setJobs(a, 1);
    await vms.setJobs(b, 2);

    // The queue drains to 1 job: target 1. The Director stops nothing; the VM without work halts itself.
    writeFileSync(demandFile, '1\n');
    vms.setLoad(0);
    const [shrink] = await director().launchFreeSlots();
    assert.deepEqual([shrink.demand, shrink.target, shrink.reserved], [1, 1, []]);
    await rig.waitForStatus(c, 'Halted', 60_000);
    // The fleet file's stop policy reached the VM in its user data: it halted itself, idle.
    assert.equal((await HaltStore.of(rig.db).of(c))?.reason, 'idle');
    for (let pass = 0; pass < 3; pass++) {
      await vms.heartbeatsPass([a, b], 2);
      const [report] = await director().launchFreeSlots();
      assert.deepEqual(report.reserved, [], 'the target is below the live count: nothing launched');
      assert.equal(report.stopped, undefined);
    }
    for (const id of [a, b]) {
      assert.equal(await rig.status(id), 'Running', `busy instance ${id} is not stopped`);
      assert.ok(!(await rig.history(id)).includes('Stopping'), `instance ${id} was never told to stop`);
    }
    assert.equal(await live(), 2);

    // Demand grows to 8 jobs (target 4), but a VM halted idle soon after boot: the endpoint backs off first.
    writeFileSync(demandFile, '8\n');
    const [held] = await director().launchFreeSlots();
    assert.deepEqual([held.demand, held.target, held.reserved], [8, 4, []]);
    assert.match(held.held ?? '', new RegExp(`^backing off for \\d+ s: instance ${c} halted idle \\d+ s after boot \\(under 3600 s\\)$`));

    // The status says so: the metrics of this pass, and the API.
    const metrics = (await renderMetrics()).body;
    const series = (name: string) => new RegExp(`^${name}\\{endpoint="${rig.endpoint}"\\} (-?\\d+)$`, 'm').exec(metrics)?.[1];
    assert.deepEqual([series('vmdb_director_demand_jobs'), series('vmdb_director_target_instances')], ['8', '4']);
    assert.ok(Number(series('vmdb_endpoint_backoff_seconds')) > 0, 'the backoff gauge counts down');
    const admin = newSecret();
    const app = await rig.api([{ name: 'admin', role: 'admin', sha256: hashToken(admin) }], newSecret());
    const safety = await app.inject({ method: 'GET', url: '/api/v1/safety', headers: { authorization: `Bearer ${admin}` } });
    const endpoint = safety.json().endpoints.find((e: { endpoint: string }) => e.endpoint === rig.endpoint);
    assert.deepEqual([endpoint.demand, endpoint.target, endpoint.lastReason, endpoint.failures], [8, 4, 'idle', 0]);
    assert.match(endpoint.lastMessage, new RegExp(`instance ${c} halted idle`));

    // An operator resumes the endpoint: the same idle halt does not back it off again, and the fleet grows to the target.
    const resumed = await app.inject({ method: 'POST', url: `/api/v1/safety/endpoints/${encodeURIComponent(rig.endpoint)}/resume`, headers: { authorization: `Bearer ${admin}` } });
    assert.equal(resumed.statusCode, 200, resumed.body);
    const [regrow] = await director().launchFreeSlots();
    assert.equal(regrow.held, undefined);
    assert.equal(regrow.reserved.length, 2);
    assert.equal(await live(), 4);
    for (const id of [a, b]) assert.equal(await rig.status(id), 'Running');

    // A demand source that fails: target minInstances (0), nothing launched, the reason on record.
    writeFileSync(demandFile, 'lots\n');
    const [broken] = await director().launchFreeSlots();
    assert.deepEqual([broken.demand, broken.target, broken.reserved], [null, 0, []]);
    assert.match(broken.demandMessage ?? '', /not a number of waiting jobs/);
    assert.match((await renderMetrics()).body, new RegExp(`^vmdb_director_demand_jobs\\{endpoint="${rig.endpoint}"\\} -1$`, 'm'));
  });
});
