import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { inspect } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createCloudActivities } from '../activities/cloud';
import { tokenIsFor } from './support/vm-tokens';
import { EndpointError, InvalidRequestError } from '../src/drivers/driver';
import { createDrivers } from '../src/drivers/registry';
import { OPENSTACK_METADATA, OPENSTACK_MAX_USER_DATA, OpenStackDriver, type OpenStackDriverOptions, classifyComputeAnswer } from '../src/drivers/openstack';
import { type EndpointConfig, driverConfigs, validateFleet } from '../src/config/fleet';
import { ok } from './support/backends';
import { directorPassWithFailedCreate, exampleRig, isReason, readmeFleet, rejectsWith } from './support/drivers';
import type { LifecycleRig } from './support/lifecycle-rig';
import { ComputeFaultProxy, type Identity, type Keystone, type Nova, keystoneCall, keystoneToken, novaCall, startKeystone, startNova } from './support/openstack';
import { sleep, waitFor } from './support/processes';
import { TcpProxy } from './support/tcp-proxy';
import { startDevServer } from './support/temporal';

const RUN = randomBytes(3).toString('hex');
const uniqueName = (label: string) => `vm-${label}-${RUN}-${randomBytes(3).toString('hex')}`;
const request = (instanceName: string, extra: { userData?: string; instanceID?: number } = {}) => ({ instanceName, imageName: 'CernVM4', runningPod: 'lhcb', ...extra });

interface Server {
  id: string;
  name: string;
  status: string;
  tenant_id: string;
  user_id: string;
  metadata: Record<string, string>;
  key_name: string | null;
  flavor: { id: string };
  image: { id: string };
  fault?: { message: string };
  'OS-EXT-SRV-ATTR:user_data'?: string;
}

describe('openstack driver options and error classes', function () {
  const auth = { type: 'noauth', projectId: 'p' };
  const base = { auth, computeUrl: 'http://127.0.0.1:1/v2.1', flavor: 'm1.tiny' };
  const build = (options: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => new OpenStackDriver('CERN::openstack', options as unknown as OpenStackDriverOptions, env);

  it('refuses unknown and bad options with a message naming them', function () {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, flavour: 'x' }, /unknown option "flavour"/],
      [{ ...base, flavor: undefined }, /flavor is required/],
      [{ ...base, auth: undefined }, /auth is required/],
      [{ ...base, computeUrl: undefined }, /computeUrl is required with auth type "noauth"/],
      [{ ...base, computeUrl: 'ftp://x' }, /computeUrl must be an http\(s\) URL/],
      [{ ...base, computeUrl: 'https://user:pw@nova.example.org/v2.1' }, /without credentials/],
      [{ ...base, networks: 'some' }, /networks/],
      [{ ...base, metadata: { vmdb_endpoint: 'x' } }, /metadata key "vmdb_endpoint" is not allowed/],
      [{ ...base, buildWaitSeconds: 60 }, /buildWaitSeconds must be an integer from 0 to 20/],
      [{ ...base, interface: 'private' }, /interface must be/],
      [{ ...base, auth: { authUrl: 'https://keystone.example.org/v3', username: 'u', password: 'p' } }, /exactly one of projectId and projectName/],
      [{ ...base, auth: { authUrl: 'https://keystone.example.org/v3', applicationCredentialId: 'id' } }, /applicationCredentialSecret \(or auth.applicationCredentialSecretEnv\)/],
      [{ ...base, auth: { authUrl: 'https://keystone.example.org/v3', applicationCredentialId: 'id', applicationCredentialSecretEnv: 'NOPE' } }, /NOPE, which is not set/],
      [{ ...base, auth: { applicationCredentialId: 'id', applicationCredentialSecret: 's' } }, /auth.authUrl must be an http\(s\) URL/],
      [{ ...base, auth: { type: 'noauth', projectId: 'p', password: 'x' } }, /has no use with type "noauth"/],
      [{ ...base, auth: { type: 'noauth', projectId: 'p', token: 'x' } }, /unknown auth field "token"/],
    ];
    for (const [options, expected] of cases) assert.throws(() => build(options), expected, JSON.stringify(options));
    assert.throws(() => createDrivers([{ endpoint: 'CERN::openstack', driver: 'openstack', ...base, flavour: 'x' }]), /Endpoint CERN::openstack: openstack driver: unknown option "flavour"/);
  });

  it('never shows a password or an application credential secret, in errors, inspect or JSON', function () {
    const secret = 'vmdb-test-secret-do-not-print';
    const keystone = { authUrl: 'https://keystone.example.org:5000/v3/' };
    const withPassword = build({ ...base, computeUrl: undefined, auth: { ...keystone, username: 'vmdb', password: secret, projectName: 'lhcb' } });
    const withAppCred = build({ ...base, computeUrl: undefined, auth: { ...keystone, applicationCredentialId: 'abc', applicationCredentialSecretEnv: 'OS_SECRET' } }, { OS_SECRET: secret });
    for (const driver of [withPassword, withAppCred]) {
      const shown = `${inspect(driver, { depth: 10 })}\n${JSON.stringify(driver)}`;
      assert.ok(!shown.includes(secret), shown);
      assert.match(shown, /\(set\)/);
    }
    assert.equal((withPassword.toJSON().options as { auth: { authUrl: string } }).auth.authUrl, 'https://keystone.example.org:5000/v3');
    assert.throws(() => build({ ...base, auth: { ...keystone, username: 7, password: secret, projectName: 'p' } }), (err: Error) => /auth.username/.test(err.message) && !err.message.includes(secret));
  });

  it('classifies the Compute API answers this Nova does not produce by its status and fault', function () {
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      classifyComputeAnswer('CERN::openstack', 'create server', { status, body: typeof body === 'string' ? body : JSON.stringify(body), headers: new Headers(headers) });
    const cases: [Error, string][] = [
      [answer(429, { overLimit: { code: 429, message: 'Rate limit exceeded' } }, { 'Retry-After': '3' }), 'throttled'],
      [answer(413, { overLimit: { code: 413, message: 'This request was rate-limited.' } }, { 'Retry-After': '10' }), 'throttled'],
      [answer(413, { overLimit: { code: 413, message: 'Quota exceeded for instances: Requested 1, but already used 10 of 10 instances' } }), 'quota'],
      [answer(403, { forbidden: { code: 403, message: 'Quota exceeded for cores: Requested 4, but already used 18 of 20 cores' } }), 'quota'],
      [answer(403, { forbidden: { code: 403, message: 'Policy doesn\'t allow os_compute_api:servers:create to be performed.' } }), 'auth'],
      [answer(401, { error: { message: 'The request you have made requires authentication.' } }), 'auth'],
      [answer(500, { computeFault: { code: 500, message: 'Unexpected API Error.' } }), 'unavailable'],
      [answer(502, '<html><body><h1>502 Bad Gateway</h1></body></html>'), 'unavailable'],
      [answer(503, { error: 'Service Unavailable' }), 'unavailable'],
    ];
    for (const [err, reason] of cases) {
      assert.ok(err instanceof EndpointError, `${err.message} is an EndpointError`);
      assert.equal(err.reason, reason, err.message);
      assert.match(err.message, /^openstack driver \(CERN::openstack\): create server failed: HTTP \d+/);
    }
    assert.match(cases[7][0].message, /HTTP 502: 502 Bad Gateway$/);
    assert.ok(answer(400, { badRequest: { code: 400, message: 'Image 123 could not be found.' } }) instanceof InvalidRequestError);
    assert.ok(answer(404, { itemNotFound: { code: 404, message: 'Flavor 9 could not be found.' } }) instanceof InvalidRequestError);
    const conflict = answer(409, { conflictingRequest: { code: 409, message: "Cannot 'delete' instance while it is in task_state rebuilding" } }, { 'x-openstack-request-id': 'req-42' });
    assert.ok(!(conflict instanceof EndpointError) && !(conflict instanceof InvalidRequestError));
    assert.match(conflict.message, /HTTP 409 conflictingRequest: Cannot 'delete'.*\(request req-42\)$/);
  });

  it('the README example is a valid fleet whose endpoints build, with their secrets from the environment', function () {
    const fleet = validateFleet(readmeFleet('### OpenStack endpoints'));
    const names = ['CERN_OPENSTACK_SECRET', 'UNI_OPENSTACK_PASSWORD'];
    assert.throws(() => createDrivers(driverConfigs(fleet)), /Endpoint CERN::openstack: openstack driver: auth.applicationCredentialSecretEnv names CERN_OPENSTACK_SECRET, which is not set/);
    for (const name of names) process.env[name] = `secret-of-${name}`;
    try {
      const drivers = createDrivers(driverConfigs(fleet));
      assert.deepEqual([...drivers.keys()], fleet.endpoints.map((e) => e.endpoint));
      for (const driver of drivers.values()) {
        assert.ok(driver instanceof OpenStackDriver);
        assert.ok(!JSON.stringify(driver).includes('secret-of-'));
      }
    } finally {
      for (const name of names) delete process.env[name];
    }
  });
});

describe('openstack driver against a real Nova API', function () {
  this.timeout(180_000);
  let nova: Nova;
  let proxy: ComputeFaultProxy;
  const project = `vmdb-${RUN}`;
  const admin: Identity = { projectId: project, userId: 'admin', roles: ['admin', 'member', 'reader'] };
  let tinyFlavor: string;

  /** A driver for `endpoint` in `projectId`, talking to Nova through the fault proxy. */
  function driver(options: Partial<OpenStackDriverOptions> = {}, endpoint = 'CERN::openstack', projectId = project): OpenStackDriver {
    return new OpenStackDriver(endpoint, {
      auth: { type: 'noauth', projectId, userId: 'vmdb' },
      computeUrl: proxy.url,
      flavor: 'm1.tiny',
      imageId: nova.imageId,
      ...options,
    });
  }

  const show = async (id: string, who = admin) => novaCall<{ server: Server }>(nova.url, who, 'GET', `/servers/${id}`);
  const serversNamed = async (name: string, who = admin) =>
    (await novaCall<{ servers: Server[] }>(nova.url, who, 'GET', `/servers/detail?name=${encodeURIComponent(name)}`)).body.servers.filter((s) => s.name === name);
  const gone = (id: string, who = admin) => waitFor(`server ${id} gone`, async () => ((await show(id, who)).status === 404 ? true : undefined), 30_000);
  const becomes = (d: OpenStackDriver, id: string, status: string) =>
    waitFor(`server ${id} ${status}`, async () => {
      const vm = await d.getInstanceStatus(id);
      return vm.status === status ? vm : undefined;
    }, 60_000);

  before(async function () {
    this.timeout(900_000); // the first run installs Nova and Keystone (scripts/openstack-env.sh)
    nova = await startNova();
    proxy = await new ComputeFaultProxy(nova.url).start();
    const flavors = await novaCall<{ flavors: { id: string; name: string }[] }>(nova.url, admin, 'GET', '/flavors');
    tinyFlavor = flavors.body.flavors.find((f) => f.name === 'm1.tiny')!.id;
  });

  after(async function () {
    await proxy?.stop();
    await nova?.service.stop();
  });

  afterEach(function () {
    proxy.clear();
    if (this.currentTest?.state === 'failed' && nova) console.error(nova.service.tail());
  });

  it('creates a server with every option: name, metadata, flavor, image, network, key pair, security group and user data', async function () {
    const keyName = `vmdb-${RUN}`;
    const key = await novaCall(nova.url, { ...admin, userId: 'vmdb' }, 'POST', '/os-keypairs', { keypair: { name: keyName } });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const d = driver({ networks: [nova.networkId], keyName, securityGroups: ['default'], metadata: { project: 'lhcb-cloud' }, availabilityZone: 'nova' });
    const name = uniqueName('full');
    const userData = '#!/bin/sh\necho "vmdb ✓"\n\u0000binary\u00ff';
    const vm = await d.createInstance(request(name, { userData, instanceID: 4242 }));
    assert.equal(vm.instanceName, name);
    assert.equal(vm.instanceID, 4242);
    assert.ok(['pending', 'running'].includes(vm.status), vm.status);

    const { body } = await show(vm.uniqueID);
    const server = body.server;
    assert.equal(server.name, name);
    assert.equal(server.tenant_id, project);
    assert.deepEqual(server.metadata, {
      project: 'lhcb-cloud',
      [OPENSTACK_METADATA.endpoint]: 'CERN::openstack',
      [OPENSTACK_METADATA.instanceName]: name,
      [OPENSTACK_METADATA.instanceID]: '4242',
      [OPENSTACK_METADATA.runningPod]: 'lhcb',
      [OPENSTACK_METADATA.image]: 'CernVM4',
    });
    assert.equal(server.key_name, keyName);
    assert.equal(server.flavor.id, tinyFlavor);
    assert.equal(server.image.id, nova.imageId);
    assert.equal(Buffer.from(server['OS-EXT-SRV-ATTR:user_data']!, 'base64').toString('utf8'), userData);

    const running = await becomes(d, vm.uniqueID, 'running');
    assert.equal(running.instanceName, name);
    const ports = await novaCall<{ interfaceAttachments: { net_id: string }[] }>(nova.url, admin, 'GET', `/servers/${vm.uniqueID}/os-interface`);
    assert.deepEqual(ports.body.interfaceAttachments.map((p) => p.net_id), [nova.networkId]);
    await d.stopInstance(vm.uniqueID);
    await gone(vm.uniqueID);
  });

  it('answers a retried create with the first server, from this driver object and from others, and after a lost answer', async function () {
    const name = uniqueName('retry');
    const first = await driver().createInstance(request(name, { instanceID: 7 }));
    const again = await driver().createInstance(request(name, { instanceID: 7 }));
    const sameObject = driver();
    assert.equal(again.uniqueID, first.uniqueID);
    assert.equal((await sameObject.createInstance(request(name))).uniqueID, first.uniqueID);
    assert.equal((await sameObject.createInstance(request(name))).uniqueID, first.uniqueID);
    assert.equal((await serversNamed(name)).length, 1);

    // POST /servers runs, its answer is lost: the retry finds the server instead of booting another.
    const lost = uniqueName('lost');
    const postsBefore = proxy.seen.filter((s) => s.method === 'POST').length;
    proxy.inject('POST', /\/servers$/, 'lose-answer');
    await rejectsWith(sameObject.createInstance(request(lost)), isReason('unavailable'), 'create whose answer is lost');
    const servers = await serversNamed(lost);
    assert.equal(servers.length, 1, 'the lost call booted one server');
    assert.equal((await sameObject.createInstance(request(lost))).uniqueID, servers[0].id);
    assert.equal((await serversNamed(lost)).length, 1, 'the retry booted none');
    assert.equal(proxy.seen.filter((s) => s.method === 'POST').length, postsBefore + 1);

    // Same name at another endpoint, or a server of that name without vmdb's metadata: not ours.
    const other = await driver({}, 'OTHER::openstack').createInstance(request(name));
    assert.notEqual(other.uniqueID, first.uniqueID);
    for (const id of [first.uniqueID, servers[0].id, other.uniqueID]) await novaCall(nova.url, admin, 'DELETE', `/servers/${id}`);
  });

  it('lists the servers of its endpoint by their metadata, oldest first, and nobody else\'s', async function () {
    const mine = driver({}, 'LIST::openstack');
    const names = [uniqueName('list-a'), uniqueName('list-b')];
    const created = [];
    for (const [i, name] of names.entries()) {
      // Nova's creation times are to the second: a second apart, the order is theirs, not the IDs'.
      if (i > 0) await sleep(1100);
      created.push(await mine.createInstance(request(name, { instanceID: 100 + i })));
    }
    const foreign = await driver({}, 'ELSEWHERE::openstack').createInstance(request(uniqueName('list-foreign')));
    const untagged = await novaCall<{ server: { id: string } }>(nova.url, admin, 'POST', '/servers', {
      server: { name: uniqueName('untagged'), imageRef: nova.imageId, flavorRef: tinyFlavor, networks: 'none' },
    });
    assert.equal(untagged.status, 202);

    const listed = await mine.listInstances();
    assert.deepEqual(listed.map((vm) => vm.uniqueID), created.map((vm) => vm.uniqueID));
    assert.deepEqual(listed.map((vm) => [vm.instanceName, vm.instanceID]), [[names[0], 100], [names[1], 101]]);
    assert.deepEqual((await mine.getInstanceStatus(foreign.uniqueID)).status, 'unknown');
    assert.deepEqual((await mine.getInstanceStatus(untagged.body.server.id)).status, 'unknown');

    for (const vm of [...created, foreign]) await mine.stopInstance(vm.uniqueID);
    assert.equal((await show(foreign.uniqueID)).status, 200, 'another endpoint\'s server is left alone');
    await Promise.all(created.map((vm) => gone(vm.uniqueID)));
    assert.deepEqual(await mine.listInstances(), []);
    for (const id of [foreign.uniqueID, untagged.body.server.id]) await novaCall(nova.url, admin, 'DELETE', `/servers/${id}`);
  });

  it('deletes a server on stop; stopping it again, an unknown ID or an ID of the wrong shape is success', async function () {
    const d = driver();
    const vm = await d.createInstance(request(uniqueName('stop')));
    await becomes(d, vm.uniqueID, 'running');
    await d.stopInstance(vm.uniqueID);
    await gone(vm.uniqueID);
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'unknown');
    await d.stopInstance(vm.uniqueID);
    await d.stopInstance('00000000-0000-0000-0000-000000000000');
    await d.stopInstance('../../os-keypairs');
    assert.deepEqual(await d.getInstanceStatus('not a server'), { uniqueID: 'not a server', status: 'unknown', publicIP: '', privateIP: '' });
    assert.equal(proxy.seen.filter((s) => s.method === 'DELETE').length, 1, 'one DELETE, for the live server');
  });

  it('refuses a create over the project\'s quotas (instances, cores) as `quota`, with Nova\'s message', async function () {
    // Nova's default quotas: 10 instances, 20 cores. A project of its own, so that other tests count not.
    const quotaProject = `vmdb-quota-${RUN}`;
    const d = driver({}, 'CERN::openstack', quotaProject);
    const created = [];
    for (let i = 0; i < 10; i++) created.push(await d.createInstance(request(uniqueName(`quota-${i}`))));
    // Nova counts the servers its cells hold: once scheduled, the ten are counted (a create racing
    // their scheduling passes the first check and fails Nova's recheck, in ERROR).
    for (const vm of created) await becomes(d, vm.uniqueID, 'running');
    const over = uniqueName('quota-over');
    const err = await rejectsWith(d.createInstance(request(over)), isReason('quota'), 'create over the instances quota');
    assert.match(err.message, /create server failed: HTTP 403 forbidden: Quota exceeded for instances: Requested 1, but already used 10 of 10 instances/);
    assert.deepEqual(await serversNamed(over, { ...admin, projectId: quotaProject }), []);
    for (const vm of created) await d.stopInstance(vm.uniqueID);
    await Promise.all(created.map((vm) => gone(vm.uniqueID, { ...admin, projectId: quotaProject })));

    const big = await novaCall<{ flavor: { id: string } }>(nova.url, admin, 'POST', '/flavors', { flavor: { name: `vmdb-21-cores-${RUN}`, ram: 512, vcpus: 21, disk: 1 } });
    assert.equal(big.status, 200, JSON.stringify(big.body));
    const cores = await rejectsWith(driver({ flavor: `vmdb-21-cores-${RUN}` }, 'CERN::openstack', quotaProject).createInstance(request(over)), isReason('quota'), 'create over the cores quota');
    assert.match(cores.message, /Quota exceeded for cores: Requested 21, but already used 0 of 20 cores/);
  });

  it('refuses what Nova\'s policy forbids as `auth`, and a flavor, image, network or key pair that does not exist as an invalid request', async function () {
    // Placing a server on a host of one's choice is for admins.
    const forced = driver({ availabilityZone: 'nova:compute' });
    const forbidden = await rejectsWith(forced.createInstance(request(uniqueName('forced'))), isReason('auth'), 'create on a forced host');
    assert.match(forbidden.message, /HTTP 403 forbidden: Policy doesn't allow os_compute_api:servers:create:forced_host to be performed/);
    proxy.clear();

    const isInvalid = (err: Error) => err instanceof InvalidRequestError;
    const flavor = await rejectsWith(driver({ flavor: 'm9.huge' }).createInstance(request(uniqueName('flavor'))), isInvalid, 'unknown flavor');
    assert.match(flavor.message, /no flavor "m9.huge" \(known: m1.tiny, /);
    const image = await rejectsWith(driver({ imageId: '00000000-0000-0000-0000-0000000000aa' }).createInstance(request(uniqueName('image'))), isInvalid, 'unknown image');
    assert.match(image.message, /HTTP 400 badRequest: Can not find requested image/);
    await rejectsWith(driver({ networks: ['00000000-0000-0000-0000-0000000000bb'] }).createInstance(request(uniqueName('net'))), isInvalid, 'unknown network');
    const key = await rejectsWith(driver({ keyName: 'no-such-key' }).createInstance(request(uniqueName('key'))), isInvalid, 'unknown key pair');
    assert.match(key.message, /HTTP 400 badRequest: Invalid key_name provided/);
    await rejectsWith(driver().createInstance(request(uniqueName('big'), { userData: 'x'.repeat(OPENSTACK_MAX_USER_DATA + 1) })), isInvalid, 'oversized user data');
    assert.equal(proxy.seen.filter((s) => s.method === 'POST').length, 3, 'flavor and user data are refused before POST');
  });

  it('the cloud activity hands the reason on to Temporal in its failure', async function () {
    const activities = createCloudActivities(new Map([['CERN::openstack', driver({ availabilityZone: 'nova:compute' })]]));
    const err = await rejectsWith(activities.createInstance('CERN::openstack', request(uniqueName('activity'))), (e) => e instanceof ApplicationFailure, 'activity');
    const failure = err as ApplicationFailure;
    assert.equal(failure.type, 'EndpointError');
    assert.equal(failure.nonRetryable, false, 'still retried: a policy or credentials can be fixed');
    assert.deepEqual(failure.details, [{ endpoint: 'CERN::openstack', reason: 'auth' }]);
    assert.match(failure.message, /create server failed: HTTP 403 forbidden/);
  });

  describe('a server that fails to build (ERROR)', function () {
    let impossible: string;

    before(async function () {
      // More disk than any host has (and no quota on disk): the scheduler finds no valid host, and
      // the server goes to ERROR.
      const res = await novaCall<{ flavor: { id: string } }>(nova.url, admin, 'POST', '/flavors', { flavor: { name: `vmdb-huge-${RUN}`, ram: 512, vcpus: 1, disk: 10_000_000 } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      impossible = res.body.flavor.id;
    });

    it('is `stopped` with Nova\'s fault; a retried create deletes it and fails as `capacity`', async function () {
      const d = driver({ flavor: impossible });
      const name = uniqueName('error');
      const vm = await d.createInstance(request(name, { instanceID: 9 }));
      const failed = await becomes(d, vm.uniqueID, 'stopped');
      assert.match(failed.fault ?? '', /No valid host was found/);
      assert.equal(failed.instanceID, 9);
      const listed = (await d.listInstances()).find((x) => x.uniqueID === vm.uniqueID);
      assert.match(listed?.fault ?? '', /No valid host was found/);

      const err = await rejectsWith(d.createInstance(request(name, { instanceID: 9 })), isReason('capacity'), 'retry of a failed build');
      assert.match(err.message, new RegExp(`server ${vm.uniqueID} \\(${name}\\) went to ERROR: No valid host was found.*; it was deleted`));
      await gone(vm.uniqueID);
    });

    it('with buildWaitSeconds, fails the create itself as `capacity` and leaves no server', async function () {
      const d = driver({ flavor: impossible, buildWaitSeconds: 20 });
      const name = uniqueName('error-wait');
      const err = await rejectsWith(d.createInstance(request(name)), isReason('capacity'), 'create of an impossible flavor');
      assert.match(err.message, /went to ERROR: No valid host was found/);
      const id = /server (\S+) /.exec(err.message)![1];
      await gone(id);
      // A boot that works returns the running server.
      const ok = await driver({ buildWaitSeconds: 20 }).createInstance(request(uniqueName('wait-ok')));
      assert.equal(ok.status, 'running');
      await d.stopInstance(ok.uniqueID);
    });
  });

  describe('when the API fails', function () {
    it('an API that is down is `unavailable` for every call, and the driver works again when it is back', async function () {
      const port = Number(new URL(nova.url).port);
      const tcp = await TcpProxy.start('127.0.0.1', port);
      try {
        const d = driver({ computeUrl: `http://127.0.0.1:${tcp.port}/v2.1` });
        const vm = await d.createInstance(request(uniqueName('down')));
        await tcp.down();
        const calls: [string, Promise<unknown>][] = [
          ['create', d.createInstance(request(uniqueName('down-2')))],
          ['status', d.getInstanceStatus(vm.uniqueID)],
          ['list', d.listInstances()],
          ['stop', d.stopInstance(vm.uniqueID)],
        ];
        for (const [what, call] of calls) {
          const err = await rejectsWith(call, isReason('unavailable'), what);
          assert.match(err.message, /got no answer: ECONNREFUSED/);
        }
        await tcp.up();
        assert.equal((await d.getInstanceStatus(vm.uniqueID)).uniqueID, vm.uniqueID);
        await d.stopInstance(vm.uniqueID);
        await gone(vm.uniqueID);
      } finally {
        await tcp.close();
      }
    });

    it('a hung API times out as `unavailable`', async function () {
      const silent = net.createServer(() => undefined);
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const d = driver({ computeUrl: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/v2.1`, requestTimeoutMs: 300 });
        const err = await rejectsWith(d.listInstances(), isReason('unavailable'), 'list from a hung API');
        assert.match(err.message, /list servers got no answer: timed out/);
      } finally {
        silent.close();
      }
      proxy.inject('GET', /\/servers\/detail/, 'hang');
      await rejectsWith(driver({ requestTimeoutMs: 300 }).createInstance(request(uniqueName('hang'))), isReason('unavailable'), 'a hung lookup');
    });

    it('a 5xx page, a rate limit and a 401 are classified, and nothing is booted', async function () {
      const name = uniqueName('faults');
      proxy.inject('POST', /\/servers$/, { status: 502, headers: { 'content-type': 'text/html' }, body: '<html><body><h1>502 Bad Gateway</h1></body></html>' });
      await rejectsWith(driver().createInstance(request(name)), isReason('unavailable'), '502 page');
      proxy.inject('GET', /\/servers\/detail/, { status: 429, headers: { 'content-type': 'application/json', 'retry-after': '2' }, body: JSON.stringify({ overLimit: { code: 429, message: 'Rate limit exceeded' } }) });
      await rejectsWith(driver().createInstance(request(name)), isReason('throttled'), '429');
      proxy.inject('GET', /\/flavors/, { status: 401, body: '{"error": {"message": "The request you have made requires authentication."}}' });
      await rejectsWith(driver().createInstance(request(name)), isReason('auth'), '401 without Keystone');
      assert.deepEqual(await serversNamed(name), []);
    });
  });
});

describe('openstack driver with a real Keystone', function () {
  this.timeout(240_000);
  const adminPassword = `admin-${randomBytes(8).toString('hex')}`;
  const userPassword = `vmdb-${randomBytes(8).toString('hex')}`;
  const TOKEN_LIFE_SECONDS = 60;
  let keystone: Keystone;
  let nova: Nova;
  let proxy: ComputeFaultProxy;
  let projectId: string;
  let userId: string;
  let appCred: { id: string; secret: string };

  before(async function () {
    this.timeout(900_000); // the first run installs Nova and Keystone (scripts/openstack-env.sh)
    // Tokens live a minute: the driver renews its own after 30 s.
    keystone = await startKeystone(adminPassword, TOKEN_LIFE_SECONDS);
    // Nova's authtoken middleware checks every token with Keystone, as the bootstrap admin.
    nova = await startNova({ url: keystone.url, user: 'admin', password: adminPassword, project: 'admin' });
    proxy = await new ComputeFaultProxy(nova.url).start();
    const service = await keystone.admin<{ service: { id: string } }>('POST', '/services', { service: { type: 'compute', name: 'nova' } });
    for (const [iface, url] of [['public', proxy.url], ['internal', nova.url]]) {
      await keystone.admin('POST', '/endpoints', { endpoint: { service_id: service.service.id, interface: iface, url, region_id: 'RegionOne' } });
    }
    projectId = (await keystone.admin<{ project: { id: string } }>('POST', '/projects', { project: { name: 'lhcb', domain_id: 'default' } })).project.id;
    userId = (await keystone.admin<{ user: { id: string } }>('POST', '/users', { user: { name: 'vmdb', domain_id: 'default', password: userPassword } })).user.id;
    const roles = await keystone.admin<{ roles: { id: string; name: string }[] }>('GET', '/roles?name=member');
    await keystone.admin('PUT', `/projects/${projectId}/users/${userId}/roles/${roles.roles[0].id}`);
    // An application credential is made by its user, for the project of the user's token.
    const { token } = await keystoneToken(keystone.url, 'vmdb', userPassword, 'lhcb');
    const made = await keystoneCall<{ application_credential: { id: string; secret: string } }>(keystone.url, token, 'POST', `/users/${userId}/application_credentials`, {
      application_credential: { name: `vmdb-${RUN}` },
    });
    appCred = made.application_credential;
  });

  after(async function () {
    await proxy?.stop();
    await nova?.service.stop();
    await keystone?.service.stop();
  });

  afterEach(function () {
    proxy?.clear();
    if (this.currentTest?.state === 'failed') console.error(`${nova?.service.tail()}\n${keystone?.service.tail()}`);
  });

  const appCredAuth = () => ({ authUrl: keystone.url, applicationCredentialId: appCred.id, applicationCredentialSecret: appCred.secret });
  const driver = (auth: unknown, extra: Partial<OpenStackDriverOptions> = {}) => new OpenStackDriver('CERN::openstack', { auth, flavor: 'm1.tiny', imageId: nova.imageId, networks: 'none', ...extra });
  const showAsAdmin = async (id: string) => {
    const { token } = await keystoneToken(keystone.url, 'admin', adminPassword, 'admin');
    const res = await fetch(`${nova.url}/servers/${id}`, { headers: { 'X-Auth-Token': token, 'OpenStack-API-Version': 'compute 2.37' } });
    return { status: res.status, body: (await res.json()) as { server: Server } };
  };

  it('boots, lists and deletes with an application credential, at the compute endpoint of the catalog', async function () {
    const d = driver(appCredAuth());
    const name = uniqueName('appcred');
    const vm = await d.createInstance(request(name, { instanceID: 77 }));
    const { body } = await showAsAdmin(vm.uniqueID);
    assert.equal(body.server.tenant_id, projectId);
    assert.equal(body.server.user_id, userId);
    assert.equal(body.server.metadata[OPENSTACK_METADATA.instanceName], name);
    assert.ok(proxy.seen.some((s) => s.method === 'POST'), 'the public endpoint (the proxy) was used');
    assert.equal(new Set(proxy.seen.map((s) => s.token)).size, 1, 'one token for every call');
    assert.deepEqual((await d.listInstances()).map((x) => [x.uniqueID, x.instanceID]), [[vm.uniqueID, 77]]);
    assert.equal((await d.createInstance(request(name))).uniqueID, vm.uniqueID);
    await d.stopInstance(vm.uniqueID);
    await waitFor('server gone', async () => ((await showAsAdmin(vm.uniqueID)).status === 404 ? true : undefined), 30_000);
  });

  it('works with a password scoped to a project by name, and with the internal endpoint', async function () {
    const d = driver({ authUrl: keystone.url, username: 'vmdb', password: userPassword, projectName: 'lhcb' }, { interface: 'internal' });
    const vm = await d.createInstance(request(uniqueName('password')));
    assert.deepEqual(proxy.seen, [], 'the internal endpoint is Nova itself, not the proxy');
    assert.equal((await showAsAdmin(vm.uniqueID)).body.server.tenant_id, projectId);
    await d.stopInstance(vm.uniqueID);
  });

  it('gets a new token when Nova refuses a revoked one, and goes on', async function () {
    const d = driver(appCredAuth());
    assert.deepEqual(await d.listInstances(), []);
    const first = proxy.seen[0].token;
    const { token } = await keystoneToken(keystone.url, 'admin', adminPassword, 'admin');
    const revoke = await fetch(`${keystone.url}/auth/tokens`, { method: 'DELETE', headers: { 'X-Auth-Token': token, 'X-Subject-Token': first } });
    assert.equal(revoke.status, 204);
    assert.deepEqual(await d.listInstances(), []);
    assert.deepEqual(proxy.seen.map((s) => s.token === first), [true, true, false], 'the refused call is sent again with a new token');
  });

  it('renews its token at half its life, before Nova would refuse it', async function () {
    const d = driver(appCredAuth());
    assert.deepEqual(await d.listInstances(), []);
    const first = proxy.seen[0].token;
    assert.deepEqual(await d.listInstances(), []);
    await sleep((TOKEN_LIFE_SECONDS / 2 + 1) * 1000);
    assert.deepEqual(await d.listInstances(), []);
    assert.deepEqual(proxy.seen.map((s) => s.token === first), [true, true, false], 'the third call has a new token, and no call was refused');
  });

  it('refuses wrong credentials and a catalog without the region as `auth`, without showing the secret', async function () {
    const wrong = driver({ ...appCredAuth(), applicationCredentialSecret: 'not-the-secret' });
    const err = await rejectsWith(wrong.listInstances(), isReason('auth'), 'a wrong secret');
    assert.match(err.message, /Keystone refused a token: HTTP 401/);
    assert.ok(!err.message.includes('not-the-secret') && !err.message.includes(appCred.secret));
    const password = driver({ authUrl: keystone.url, username: 'vmdb', password: 'wrong', projectName: 'lhcb' });
    await rejectsWith(password.listInstances(), isReason('auth'), 'a wrong password');
    const nowhere = driver(appCredAuth(), { region: 'Nowhere' });
    const region = await rejectsWith(nowhere.listInstances(), isReason('auth'), 'no endpoint in the region');
    assert.match(region.message, /the Keystone catalog has no public compute endpoint in region Nowhere/);
    const down = driver({ ...appCredAuth(), authUrl: 'http://127.0.0.1:9/v3' });
    await rejectsWith(down.listInstances(), isReason('unavailable'), 'Keystone down');
    assert.deepEqual(proxy.seen, []);
  });
});

describe('Director launches through the openstack driver [mariadb]', function () {
  this.timeout(240_000);
  const secret = 'test-secret-for-openstack-vm-tokens';
  // README's example endpoint, pointed at the test's Nova.
  const example = validateFleet(readmeFleet('### OpenStack endpoints')).endpoints.find((e) => e.endpoint === 'CERN::openstack') as EndpointConfig;
  const ENDPOINT = example.endpoint;
  const project = `vmdb-director-${RUN}`;
  const admin: Identity = { projectId: project, userId: 'admin', roles: ['admin', 'member', 'reader'] };
  let nova: Nova;
  let proxy: ComputeFaultProxy;
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;

  const show = async (id: string) => novaCall<{ server: Server }>(nova.url, admin, 'GET', `/servers/${id}`);
  const gone = (id: string) => waitFor(`server ${id} gone`, async () => ((await show(id)).status === 404 ? true : undefined), 30_000);

  before(async function () {
    this.timeout(900_000); // the first run installs Nova and Keystone (scripts/openstack-env.sh)
    nova = await startNova();
    proxy = await new ComputeFaultProxy(nova.url).start();
    const key = await novaCall(nova.url, { ...admin, userId: 'vmdb' }, 'POST', '/os-keypairs', { keypair: { name: example.driver.keyName } });
    assert.equal(key.status, 201);
    // Flavors are the cloud operator's: make README's.
    const flavor = await novaCall(nova.url, admin, 'POST', '/flavors', { flavor: { name: example.driver.flavor, ram: 2048, vcpus: 2, disk: 20 } });
    assert.equal(flavor.status, 200);
    env = await startDevServer();
    // What must point at the test's Nova instead of the example's cloud; everything else is README's.
    rig = exampleRig(env, example, secret, {
      auth: { type: 'noauth', projectId: project },
      computeUrl: proxy.url,
      region: undefined,
      imageId: nova.imageId,
      networks: [nova.networkId],
    });
    await rig.setUp();
  });

  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
    await proxy?.stop();
    await nova?.service.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && nova) console.error(nova.service.tail());
  });

  it('fills the endpoint with servers that carry their instance, token and metadata; stop and cancel delete them', async function () {
    // The cloud rate-limits the first create: the workflow shows why, and Temporal's retry boots the server.
    proxy.inject('POST', /\/servers$/, { status: 429, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ overLimit: { code: 429, message: 'Rate limit exceeded' } }) });
    const { reserved, type, details } = await directorPassWithFailedCreate(env, rig, `director-openstack-${RUN}`);
    assert.equal(reserved.length, 2);
    assert.equal(type, 'EndpointError');
    assert.deepEqual(details, [{ endpoint: ENDPOINT, reason: 'throttled' }]);

    const servers = new Map<number, string>();
    for (const instanceID of reserved) {
      await rig.waitForStatus(instanceID, 'Submitted', 60_000);
      const uniqueID = await rig.uniqueID(instanceID);
      servers.set(instanceID, uniqueID);
      const { status, body } = await show(uniqueID);
      assert.equal(status, 200, 'the UniqueID is the Nova server ID');
      const name = ok(await rig.db.getInstanceParameter('Name', instanceID));
      assert.equal(body.server.name, name);
      assert.equal(body.server.image.id, nova.imageId);
      assert.equal(body.server.key_name, example.driver.keyName);
      assert.deepEqual(body.server.metadata, {
        project: 'lhcb-cloud',
        [OPENSTACK_METADATA.endpoint]: ENDPOINT,
        [OPENSTACK_METADATA.instanceName]: name,
        [OPENSTACK_METADATA.instanceID]: String(instanceID),
        [OPENSTACK_METADATA.runningPod]: 'testvo',
        [OPENSTACK_METADATA.image]: example.image,
      });
      // The user data is what vmdb-agent reads on the VM: its API, its InstanceID and its own token.
      const userData = JSON.parse(Buffer.from(body.server['OS-EXT-SRV-ATTR:user_data'] ?? '', 'base64').toString('utf8'));
      assert.equal(userData.vmdb.instanceID, instanceID);
      assert.ok(await tokenIsFor(rig.db, secret, userData.vmdb.token, instanceID), 'a token bound to the instance and its name');
      const history = historyToJSON(await env.client.workflow.getHandle(`vm-${instanceID}`).fetchHistory());
      assert.ok(!history.includes(userData.vmdb.token), 'the token stays out of the workflow history');
    }
    assert.equal(proxy.seen.filter((s) => s.method === 'POST').length, 3, 'two creates, one of them retried once');
    const listed = await new OpenStackDriver(ENDPOINT, { auth: { type: 'noauth', projectId: project }, computeUrl: nova.url, flavor: 'm1.tiny' }).listInstances();
    assert.deepEqual(listed.map((vm) => vm.instanceID).sort(), [...reserved].sort(), 'one server per instance');

    // The first server lives a whole life: running, a heartbeat, an operator stop, halting; then it is deleted.
    const [first, second] = reserved;
    const firstServer = servers.get(first)!;
    assert.deepEqual(await rig.lifecycle.running(firstServer, '', ''), { OK: true, Value: 'Running' });
    assert.deepEqual(await rig.heartbeat(firstServer, { load: 0.5, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 60 }), { OK: true, Value: 'ok' });
    assert.deepEqual(await rig.lifecycle.stop(first), { OK: true, Value: 'Stopping' });
    assert.deepEqual(await rig.heartbeat(firstServer, { load: 0.1, jobs: 0, transferredFiles: 0, transferredBytes: 0, uptime: 120 }), { OK: true, Value: 'stop' });
    assert.deepEqual(await rig.lifecycle.halting(firstServer, 0), { OK: true, Value: 'Halted' });
    assert.equal((await env.client.workflow.getHandle(`vm-${first}`).result()).status, 'Halted');
    await gone(firstServer);

    // Cancelling the second one's workflow (UI, CLI) deletes its server too.
    const handle = env.client.workflow.getHandle(`vm-${second}`);
    await handle.cancel();
    await assert.rejects(handle.result());
    await gone(servers.get(second)!);
  });
});
