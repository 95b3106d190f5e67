import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import {
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type Instance,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { ApplicationFailure } from '@temporalio/common';
import { createCloudActivities } from '../activities/cloud';
import { tokenIsFor } from './support/vm-tokens';
import { EndpointError, InvalidRequestError } from '../src/drivers/driver';
import { createDrivers } from '../src/drivers/registry';
import { EC2_TAGS, Ec2Driver, type Ec2DriverOptions, classifyEc2Error, ec2ClientToken } from '../src/drivers/ec2';
import { type EndpointConfig, driverConfigs, validateFleet } from '../src/config/fleet';
import { ok } from './support/backends';
import { directorPassWithFailedCreate, exampleRig, isReason, readmeFleet, rejectsWith } from './support/drivers';
import type { LifecycleRig } from './support/lifecycle-rig';
import { Ec2FaultProxy, type MotoServer, motoPython, startMoto } from './support/moto';
import { startDevServer } from './support/temporal';

const REGION = 'us-east-1';
// moto takes any key while it does not enforce auth; these never reach AWS.
const TEST_CREDENTIALS = { accessKeyId: 'AKIAVMDBTEST00000001', secretAccessKey: 'vmdb-test-secret-do-not-print' };
const RUN = randomBytes(3).toString('hex');
const uniqueName = (label: string) => `vm-${label}-${RUN}-${randomBytes(3).toString('hex')}`;

/** A client straight to moto, for set-up and for looking at what the driver did. */
function adminClient(url: string, region = REGION): EC2Client {
  // A copy: the SDK marks the credentials object it is given (a "$source" field).
  return new EC2Client({ region, endpoint: url, credentials: { ...TEST_CREDENTIALS }, maxAttempts: 1 });
}

async function instancesTagged(admin: EC2Client, key: string, value: string): Promise<Instance[]> {
  const out = await admin.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${key}`, Values: [value] }] }));
  return out.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
}

async function describeOne(admin: EC2Client, id: string): Promise<Instance> {
  const out = await admin.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const vm = out.Reservations?.[0]?.Instances?.[0];
  assert.ok(vm, `moto knows ${id}`);
  return vm;
}

const tagsOf = (vm: Instance) => Object.fromEntries((vm.Tags ?? []).map((t) => [t.Key, t.Value]));

/** What a test needs of the cloud: an AMI, a key pair, a security group and a subnet that exist. */
interface CloudFixture {
  imageId: string;
  keyName: string;
  securityGroupId: string;
  subnetId: string;
}

async function cloudFixture(admin: EC2Client): Promise<CloudFixture> {
  const images = await admin.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  const imageId = images.Images?.find((i) => i.ImageId && i.Platform !== 'Windows')?.ImageId;
  assert.ok(imageId, 'moto ships AMIs');
  const keyName = `vmdb-test-${RUN}`;
  await admin.send(new CreateKeyPairCommand({ KeyName: keyName }));
  const subnets = await admin.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }));
  const subnet = subnets.Subnets?.[0];
  assert.ok(subnet?.SubnetId && subnet.VpcId, 'moto has a default VPC');
  const group = await admin.send(new CreateSecurityGroupCommand({ GroupName: `vmdb-test-${RUN}`, Description: 'vmdb tests', VpcId: subnet.VpcId }));
  return { imageId, keyName, securityGroupId: group.GroupId!, subnetId: subnet.SubnetId };
}

const request = (instanceName: string, extra: { userData?: string; instanceID?: number } = {}) => ({ instanceName, imageName: 'CernVM4', runningPod: 'lhcb', ...extra });

describe('ec2 driver against moto', function () {
  this.timeout(120_000);
  let moto: MotoServer;
  let proxy: Ec2FaultProxy;
  let admin: EC2Client;
  let fixture: CloudFixture;

  /** A driver for `endpoint` that talks to moto through the fault proxy. */
  function driver(options: Partial<Ec2DriverOptions> = {}, endpoint = 'AWS::moto'): Ec2Driver {
    return new Ec2Driver(endpoint, {
      region: REGION,
      endpointUrl: proxy.url,
      credentials: TEST_CREDENTIALS,
      imageId: fixture.imageId,
      instanceType: 't3.micro',
      keyName: fixture.keyName,
      securityGroupIds: [fixture.securityGroupId],
      subnetId: fixture.subnetId,
      ...options,
    });
  }

  before(async function () {
    this.timeout(600_000); // the first run installs moto
    moto = await startMoto();
    proxy = await new Ec2FaultProxy(moto.url).start();
    admin = adminClient(moto.url);
    fixture = await cloudFixture(admin);
  });
  after(async function () {
    admin?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });
  beforeEach(function () {
    proxy.clear();
  });

  it('creates a VM from the AMI with its type, key pair, security group, subnet and vmdb tags', async function () {
    const d = driver({ tags: { project: 'lhcb-cloud' } });
    const name = uniqueName('create');
    const vm = await d.createInstance(request(name, { instanceID: 42 }));
    assert.match(vm.uniqueID, /^i-[0-9a-f]+$/);
    assert.ok(['pending', 'running'].includes(vm.status), vm.status);
    assert.equal(vm.instanceID, 42);
    assert.equal(vm.instanceName, name);
    assert.match(vm.privateIP, /^\d+\.\d+\.\d+\.\d+$/);

    const seen = await describeOne(admin, vm.uniqueID);
    assert.equal(seen.ImageId, fixture.imageId);
    assert.equal(seen.InstanceType, 't3.micro');
    assert.equal(seen.KeyName, fixture.keyName);
    assert.equal(seen.SubnetId, fixture.subnetId);
    assert.deepEqual(seen.SecurityGroups?.map((g) => g.GroupId), [fixture.securityGroupId]);
    assert.equal(seen.ClientToken, ec2ClientToken('AWS::moto', name), 'the client token is derived from endpoint and name');
    assert.deepEqual(tagsOf(seen), {
      project: 'lhcb-cloud',
      Name: name,
      [EC2_TAGS.endpoint]: 'AWS::moto',
      [EC2_TAGS.instanceName]: name,
      [EC2_TAGS.runningPod]: 'lhcb',
      [EC2_TAGS.image]: 'CernVM4',
      [EC2_TAGS.instanceID]: '42',
    });
    const run = proxy.seen.find((s) => s.action === 'RunInstances');
    assert.equal(run?.params.get('InstanceInitiatedShutdownBehavior'), 'terminate', 'a VM that powers itself off is terminated');
    assert.deepEqual(
      ['HttpEndpoint', 'HttpTokens', 'HttpPutResponseHopLimit'].map((name) => run?.params.get(`MetadataOptions.${name}`)),
      ['enabled', 'required', '1'],
      'IMDSv2 only, one hop',
    );
    assert.equal(seen.MetadataOptions?.HttpTokens, 'required', 'and the instance has it');
    assert.deepEqual(await d.getInstanceStatus(vm.uniqueID), { ...vm, status: 'running', publicIP: seen.PublicIpAddress ?? '', privateIP: seen.PrivateIpAddress ?? '' });
  });

  it('takes the AMI from the image name when the endpoint sets no imageId', async function () {
    const d = driver({ imageId: undefined });
    const vm = await d.createInstance({ ...request(uniqueName('ami')), imageName: fixture.imageId });
    assert.equal((await describeOne(admin, vm.uniqueID)).ImageId, fixture.imageId);
  });

  it('hands the user data over byte for byte', async function () {
    const userData = JSON.stringify({ site: 'CERN', vmdb: { apiUrl: 'https://vmdb.example.org', instanceID: 7, token: 'vm.7.abc' }, note: 'ünïcødé ✓\n' });
    const vm = await driver().createInstance(request(uniqueName('userdata'), { userData }));
    const attribute = await admin.send(new DescribeInstanceAttributeCommand({ InstanceId: vm.uniqueID, Attribute: 'userData' }));
    assert.equal(Buffer.from(attribute.UserData?.Value ?? '', 'base64').toString('utf8'), userData);
  });

  it('refuses user data over 16 KB before calling EC2', async function () {
    await rejectsWith(
      driver().createInstance(request(uniqueName('big'), { userData: 'x'.repeat(16_385) })),
      (err) => err instanceof InvalidRequestError && /userData is too large for the ec2 driver \(16385 bytes, at most 16384\)/.test(err.message),
      'oversized user data',
    );
    assert.equal(proxy.count('RunInstances'), 0);
  });

  it('a retried create returns the same VM, from this driver object or another', async function () {
    const name = uniqueName('retry');
    const first = await driver().createInstance(request(name));
    const again = await driver().createInstance(request(name));
    const third = await driver().createInstance(request(name));
    assert.equal(again.uniqueID, first.uniqueID);
    assert.equal(third.uniqueID, first.uniqueID);
    assert.equal(proxy.count('RunInstances'), 1, 'the retries found the VM and booted nothing');
    assert.equal((await instancesTagged(admin, EC2_TAGS.instanceName, name)).length, 1);
  });

  it('a retry after a lost RunInstances answer finds the VM the first attempt made', async function () {
    const d = driver();
    const name = uniqueName('lost');
    proxy.inject('RunInstances', { kind: 'lose-answer' });
    await rejectsWith(d.createInstance(request(name)), isReason('unavailable'), 'the create whose answer was lost');
    assert.equal(proxy.count('RunInstances'), 1, 'RunInstances is sent once per call, without SDK retries');
    const made = await instancesTagged(admin, EC2_TAGS.instanceName, name);
    assert.equal(made.length, 1, 'the lost call did boot a VM');
    const retried = await d.createInstance(request(name));
    assert.equal(retried.uniqueID, made[0].InstanceId);
    assert.equal(proxy.count('RunInstances'), 1);
    assert.equal((await instancesTagged(admin, EC2_TAGS.instanceName, name)).length, 1, 'still one VM');
  });

  it('uses the same client token on every attempt and every worker', function () {
    assert.equal(ec2ClientToken('AWS::moto', 'vm-1'), ec2ClientToken('AWS::moto', 'vm-1'));
    assert.notEqual(ec2ClientToken('AWS::moto', 'vm-1'), ec2ClientToken('AWS::other', 'vm-1'));
    assert.notEqual(ec2ClientToken('AWS::moto', 'vm-1'), ec2ClientToken('AWS::moto', 'vm-2'));
    assert.match(ec2ClientToken('AWS::moto', 'x'.repeat(255)), /^vmdb-[0-9a-f]{59}$/, 'at most 64 ASCII characters');
  });

  it('terminates a VM; stopping it again, or an unknown ID, is success', async function () {
    const d = driver();
    const vm = await d.createInstance(request(uniqueName('stop')));
    await d.stopInstance(vm.uniqueID);
    assert.ok(['shutting-down', 'terminated'].includes((await describeOne(admin, vm.uniqueID)).State?.Name ?? ''));
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    proxy.clear();
    await d.stopInstance(vm.uniqueID);
    assert.equal(proxy.count('TerminateInstances'), 0, 'a terminated VM is not terminated again');
    await d.stopInstance('i-0123456789abcdef0');
    await d.stopInstance('not-an-instance-id');
    assert.equal(proxy.count('TerminateInstances'), 0);
  });

  it('with stopAction "stop", stops the VM instead and keeps it', async function () {
    const d = driver({ stopAction: 'stop' });
    const vm = await d.createInstance(request(uniqueName('keep')));
    assert.equal(proxy.seen.find((s) => s.action === 'RunInstances')?.params.get('InstanceInitiatedShutdownBehavior'), 'stop');
    await d.stopInstance(vm.uniqueID);
    assert.ok(['stopping', 'stopped'].includes((await describeOne(admin, vm.uniqueID)).State?.Name ?? ''));
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    await d.stopInstance(vm.uniqueID);
    assert.equal(proxy.count('StopInstances'), 1);
    assert.equal(proxy.count('TerminateInstances'), 0);
  });

  it('knows only its own VMs: another endpoint\'s, or an untagged one, is unknown and never stopped', async function () {
    const mine = driver();
    const theirs = await driver({}, 'AWS::other').createInstance(request(uniqueName('theirs')));
    const untagged = (await admin.send(new RunInstancesCommand({ ImageId: fixture.imageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 }))).Instances![0].InstanceId!;
    for (const id of [theirs.uniqueID, untagged, 'i-0123456789abcdef0', 'bogus']) {
      assert.deepEqual(await mine.getInstanceStatus(id), { uniqueID: id, status: 'unknown', publicIP: '', privateIP: '' });
      await mine.stopInstance(id);
    }
    assert.equal(proxy.count('TerminateInstances'), 0);
    assert.equal((await describeOne(admin, theirs.uniqueID)).State?.Name, 'running');
    assert.equal((await describeOne(admin, untagged)).State?.Name, 'running');
  });

  it('lists the VMs of its endpoint by tag, with their vmdb instance', async function () {
    const endpoint = `AWS::list-${RUN}`;
    const d = driver({}, endpoint);
    const a = await d.createInstance(request(uniqueName('list-a'), { instanceID: 101 }));
    const b = await d.createInstance(request(uniqueName('list-b'), { instanceID: 102 }));
    await d.stopInstance(b.uniqueID);
    await driver({}, `AWS::elsewhere-${RUN}`).createInstance(request(uniqueName('list-c')));
    const listed = (await d.listInstances()).sort((x, y) => (x.instanceID ?? 0) - (y.instanceID ?? 0));
    assert.deepEqual(
      listed.map((vm) => [vm.uniqueID, vm.instanceID, vm.status]),
      [
        [a.uniqueID, 101, 'running'],
        [b.uniqueID, 102, 'stopped'],
      ],
    );
  });

  describe('failures, in the terms the Director backs off by', function () {
    const injected: [string, number, string, string][] = [
      ['RequestLimitExceeded', 503, 'Request limit exceeded.', 'throttled'],
      ['InstanceLimitExceeded', 400, 'You have requested more instances (21) than your current instance limit of 20 allows.', 'quota'],
      ['VcpuLimitExceeded', 400, 'You have requested more vCPU capacity than your current vCPU limit of 32 allows.', 'quota'],
      ['InsufficientInstanceCapacity', 500, 'We currently do not have sufficient t3.micro capacity in the Availability Zone you requested.', 'capacity'],
      ['Unavailable', 503, 'The server is overloaded and cannot handle the request.', 'unavailable'],
      ['InternalError', 500, 'An internal error has occurred.', 'unavailable'],
      ['UnauthorizedOperation', 403, 'You are not authorized to perform this operation.', 'auth'],
    ];
    for (const [code, status, message, reason] of injected) {
      it(`RunInstances answered ${code} is EndpointError "${reason}", sent once, and boots nothing`, async function () {
        const name = uniqueName(code.toLowerCase());
        proxy.inject('RunInstances', { kind: 'error', status, code, message });
        const err = await rejectsWith(driver().createInstance(request(name)), isReason(reason), code);
        assert.match(err.message, new RegExp(`^ec2 driver \\(AWS::moto\\): RunInstances failed: ${code}: `));
        assert.match(err.message, /\(request id fault-\d+\)/);
        assert.equal(proxy.count('RunInstances'), 1);
        assert.equal((await instancesTagged(admin, EC2_TAGS.instanceName, name)).length, 0);
      });
    }

    it('a throttled read is retried by the SDK and then succeeds', async function () {
      const d = driver();
      proxy.inject('DescribeInstances', { kind: 'error', status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' });
      await d.listInstances();
      assert.equal(proxy.count('DescribeInstances'), 2);
    });

    it('a read throttled past maxAttempts is EndpointError "throttled"', async function () {
      const d = driver({ maxAttempts: 2 });
      proxy.inject('DescribeInstances', { kind: 'error', status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' }, 2);
      await rejectsWith(d.listInstances(), isReason('throttled'), 'throttled listing');
      assert.equal(proxy.count('DescribeInstances'), 2);
    });

    it('a stop that meets an outage is EndpointError "unavailable"; the VM is stopped on the next try', async function () {
      const d = driver({ maxAttempts: 1 });
      const vm = await d.createInstance(request(uniqueName('outage')));
      proxy.inject('TerminateInstances', { kind: 'error', status: 503, code: 'ServiceUnavailable', message: 'Service unavailable.' });
      await rejectsWith(d.stopInstance(vm.uniqueID), isReason('unavailable'), 'stop during an outage');
      await d.stopInstance(vm.uniqueID);
      assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'stopped');
    });

    it('a non-EC2 answer (a 502 page from a load balancer) is "unavailable"', async function () {
      proxy.inject('DescribeInstances', { kind: 'html', status: 502 });
      await rejectsWith(driver({ maxAttempts: 1 }).listInstances(), isReason('unavailable'), 'HTML 502');
    });

    it('an endpoint nobody listens on is "unavailable"', async function () {
      const closed = await new Ec2FaultProxy(moto.url).start();
      await closed.stop();
      await rejectsWith(driver({ endpointUrl: closed.url, maxAttempts: 1 }).listInstances(), isReason('unavailable'), 'connection refused');
    });

    const invalid: [string, Partial<Ec2DriverOptions>, RegExp][] = [
      ['an AMI', { imageId: 'ami-0000000000000dead' }, /InvalidAMIID\.NotFound/],
      ['a malformed AMI', { imageId: 'CernVM4' }, /InvalidAMIID/],
      ['a key pair', { keyName: 'no-such-key' }, /InvalidKeyPair\.NotFound/],
      ['a subnet', { subnetId: 'subnet-0000dead' }, /InvalidSubnetID\.NotFound/],
      ['a security group', { securityGroupIds: ['sg-0000dead'] }, /InvalidGroup\.NotFound/],
      ['an instance type', { instanceType: 'zz9.plural' }, /InvalidInstanceType|InvalidParameterValue/],
    ];
    for (const [what, options, code] of invalid) {
      it(`moto's own refusal of ${what} that does not exist is InvalidRequestError`, async function () {
        await rejectsWith(driver(options).createInstance(request(uniqueName('invalid'))), (err) => err instanceof InvalidRequestError && code.test(err.message), what);
      });
    }

    it('the cloud activity hands the reason on to Temporal in its failure', async function () {
      const activities = createCloudActivities(new Map([['AWS::moto', driver()]]));
      proxy.inject('RunInstances', { kind: 'error', status: 400, code: 'InstanceLimitExceeded', message: 'Your quota allows for 0 more running instance(s).' });
      const err = await rejectsWith(activities.createInstance('AWS::moto', request(uniqueName('activity'))), (e) => e instanceof ApplicationFailure, 'activity');
      const failure = err as ApplicationFailure;
      assert.equal(failure.type, 'EndpointError');
      assert.equal(failure.nonRetryable, false, 'still retried: quotas and credentials can be fixed');
      assert.deepEqual(failure.details, [{ endpoint: 'AWS::moto', reason: 'quota' }]);
      assert.match(failure.message, /RunInstances failed: InstanceLimitExceeded/);
    });

    it('maps EC2 codes it cannot provoke here, and transport failures', function () {
      const cases: [unknown, string][] = [
        [{ name: 'Throttling', $fault: 'client' }, 'throttled'],
        [{ name: 'MaxSpotInstanceCountExceeded', $fault: 'client' }, 'quota'],
        [{ name: 'InsufficientHostCapacity', $fault: 'server' }, 'capacity'],
        [{ name: 'InsufficientFreeAddressesInSubnet', $fault: 'client' }, 'capacity'],
        [{ name: 'AuthFailure', $fault: 'client' }, 'auth'],
        [{ name: 'OptInRequired', $fault: 'client' }, 'auth'],
        [{ name: 'RequestExpired', $fault: 'client' }, 'auth'],
        [{ name: 'InvalidClientTokenId', $fault: 'client' }, 'auth'],
        [{ name: 'CredentialsProviderError', message: 'Could not load credentials from any providers' }, 'auth'],
        [{ name: 'SomethingNew', $fault: 'server' }, 'unavailable'],
        [{ name: 'Error', code: 'ECONNRESET', message: 'socket hang up' }, 'unavailable'],
        [{ name: 'TimeoutError', message: 'Connection timed out after 10000 ms' }, 'unavailable'],
        [{ name: 'Weird', $metadata: { httpStatusCode: 504 } }, 'unavailable'],
      ];
      for (const [err, reason] of cases) {
        const mapped = classifyEc2Error('AWS::x', 'RunInstances', err);
        assert.ok(mapped instanceof EndpointError && mapped.reason === reason, `${JSON.stringify(err)} -> ${mapped.name} ${(mapped as EndpointError).reason}`);
      }
      for (const code of ['InvalidParameterValue', 'MissingParameter', 'InvalidUserData.Malformed', 'UnsupportedOperation']) {
        assert.ok(classifyEc2Error('AWS::x', 'RunInstances', { name: code, $fault: 'client' }) instanceof InvalidRequestError, code);
      }
      const other = classifyEc2Error('AWS::x', 'RunInstances', { name: 'IdempotentParameterMismatch', $fault: 'client', message: 'mismatch' });
      assert.ok(!(other instanceof EndpointError) && !(other instanceof InvalidRequestError), 'an unknown client error stays a plain, retried Error');
    });
  });

  describe('configuration', function () {
    it('README\'s EC2 fleet is valid and builds an ec2 driver for each endpoint', function () {
      const fleet = validateFleet(readmeFleet('### EC2 endpoints'));
      const drivers = createDrivers(driverConfigs(fleet));
      assert.deepEqual([...drivers.keys()], ['AWS::eu-west-1', 'CERN::ec2']);
      for (const d of drivers.values()) assert.ok(d instanceof Ec2Driver);
    });

    it('the registry builds an ec2 driver from an endpoint configuration', function () {
      const drivers = createDrivers([
        { endpoint: 'AWS::eu-west-1', driver: 'ec2', region: 'eu-west-1', instanceType: 't3.medium', imageId: 'ami-0abc' },
        { endpoint: 'Local::here', driver: 'local', stateDir: '/tmp/vmdb-registry-ec2' },
      ]);
      assert.ok(drivers.get('AWS::eu-west-1') instanceof Ec2Driver);
      assert.equal(drivers.get('AWS::eu-west-1')!.endpoint, 'AWS::eu-west-1');
    });

    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['a missing region', { instanceType: 't3.micro' }, /region is required/],
      ['a missing instance type', { region: 'eu-west-1' }, /instanceType is required/],
      ['an unknown option', { region: 'r', instanceType: 't', image: 'ami-1' }, /unknown option "image"/],
      ['an endpoint URL that is not http(s)', { region: 'r', instanceType: 't', endpointUrl: 'ftp://x' }, /endpointUrl must be an http\(s\) URL/],
      ['an endpoint URL with credentials', { region: 'r', instanceType: 't', endpointUrl: 'https://AKIA:secret@ec2.example.org' }, /without credentials in it/],
      ['a reserved tag', { region: 'r', instanceType: 't', tags: { 'vmdb:Endpoint': 'x' } }, /tag name "vmdb:Endpoint" is not allowed/],
      ['the Name tag', { region: 'r', instanceType: 't', tags: { Name: 'x' } }, /tag name "Name" is not allowed/],
      ['a bad stopAction', { region: 'r', instanceType: 't', stopAction: 'hibernate' }, /stopAction must be "terminate" or "stop"/],
      ['credentials and a profile', { region: 'r', instanceType: 't', profile: 'p', credentials: TEST_CREDENTIALS }, /credentials or profile, not both/],
      ['incomplete credentials', { region: 'r', instanceType: 't', credentials: { accessKeyId: 'AKIA' } }, /credentials\.secretAccessKey must be a non-empty string/],
      ['a misspelt credentials field', { region: 'r', instanceType: 't', credentials: { ...TEST_CREDENTIALS, secretKey: 'vmdb-test-secret-do-not-print' } }, /unknown credentials field "secretKey"/],
      ['maxAttempts 0', { region: 'r', instanceType: 't', maxAttempts: 0 }, /maxAttempts must be an integer from 1 to 10/],
    ];
    for (const [what, options, message] of bad) {
      it(`refuses ${what}`, function () {
        assert.throws(() => createDrivers([{ endpoint: 'AWS::x', driver: 'ec2', ...options }]), (e: Error) => {
          assert.match(e.message, /^Endpoint AWS::x: ec2 driver/);
          assert.match(e.message, message);
          assert.ok(!e.message.includes(TEST_CREDENTIALS.secretAccessKey), 'no secret in the message');
          return true;
        });
      });
    }

    it('never shows its credentials: not in inspect, JSON, nor an error', async function () {
      const d = driver();
      for (const shown of [inspect(d, { depth: 10 }), JSON.stringify(d), JSON.stringify(d.describeOptions())]) {
        assert.ok(!shown.includes(TEST_CREDENTIALS.secretAccessKey), shown);
        assert.match(shown, /credentials.*\(set\)/);
      }
      proxy.inject('RunInstances', { kind: 'error', status: 401, code: 'AuthFailure', message: 'AWS was not able to validate the provided access credentials' });
      const err = await rejectsWith(d.createInstance(request(uniqueName('secret'))), isReason('auth'), 'auth failure');
      assert.ok(!inspect(err, { depth: 10 }).includes(TEST_CREDENTIALS.secretAccessKey));
    });
  });
});

describe('ec2 driver against moto with IAM auth enforced', function () {
  this.timeout(120_000);
  let moto: MotoServer;
  let fixture: CloudFixture;
  let users: Record<'allowed' | 'denied', { accessKeyId: string; secretAccessKey: string }>;
  const saved: Record<string, string | undefined> = {};

  before(async function () {
    this.timeout(600_000); // the first run installs moto
    moto = await startMoto();
    const admin = adminClient(moto.url);
    fixture = await cloudFixture(admin);
    admin.destroy();
    // Two IAM users through moto's IAM API (boto3 from moto's venv): one may use EC2, one may not.
    const script = `
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
out = {}
for name, allow in (("allowed", True), ("denied", False)):
    iam.create_user(UserName="vmdb-" + name)
    if allow:
        iam.put_user_policy(UserName="vmdb-" + name, PolicyName="ec2", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="vmdb-" + name)["AccessKey"]
    out[name] = {"accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}
print(json.dumps(out))
`;
    users = JSON.parse(execFileSync(motoPython(), ['-c', script, moto.url], { encoding: 'utf8' }));
    await moto.enforceAuth();
    for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) saved[key] = process.env[key];
  });
  after(async function () {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await moto?.stop();
  });

  function driver(credentials?: { accessKeyId: string; secretAccessKey: string }): Ec2Driver {
    return new Ec2Driver('AWS::iam', {
      region: REGION,
      endpointUrl: moto.url,
      imageId: fixture.imageId,
      instanceType: 't3.micro',
      maxAttempts: 1,
      ...(credentials ? { credentials } : {}),
    });
  }

  it('works with the endpoint\'s own credentials of a user that may use EC2', async function () {
    const d = driver(users.allowed);
    const vm = await d.createInstance(request(uniqueName('iam')));
    assert.equal((await d.getInstanceStatus(vm.uniqueID)).status, 'running');
    await d.stopInstance(vm.uniqueID);
  });

  it('takes credentials from the standard AWS chain (environment) when the endpoint gives none', async function () {
    process.env.AWS_ACCESS_KEY_ID = users.allowed.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = users.allowed.secretAccessKey;
    const vms = await driver().listInstances();
    assert.ok(Array.isArray(vms));
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret-from-the-environment';
    const err = await rejectsWith(driver().listInstances(), isReason('auth'), 'a wrong secret in the environment');
    assert.ok(!err.message.includes('wrong-secret-from-the-environment'));
  });

  it('an unknown access key is EndpointError "auth"', async function () {
    const err = await rejectsWith(driver({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'unknown-secret-value' }).createInstance(request(uniqueName('unknown'))), isReason('auth'), 'unknown key');
    assert.match(err.message, /AuthFailure/);
    assert.ok(!inspect(err, { depth: 10 }).includes('unknown-secret-value'), 'the secret is not in the error');
  });

  it('a wrong secret for a known key is EndpointError "auth"', async function () {
    await rejectsWith(driver({ ...users.allowed, secretAccessKey: 'not-the-secret' }).listInstances(), isReason('auth'), 'wrong secret');
  });

  it('a user without EC2 permissions is EndpointError "auth"', async function () {
    const err = await rejectsWith(driver(users.denied).createInstance(request(uniqueName('denied'))), isReason('auth'), 'denied user');
    assert.match(err.message, /AccessDenied|UnauthorizedOperation/);
  });
});

describe('Director launches through the ec2 driver [mariadb]', function () {
  this.timeout(180_000);
  const secret = 'test-secret-for-ec2-vm-tokens';
  // README's example endpoint, pointed at moto.
  const example = validateFleet(readmeFleet('### EC2 endpoints')).endpoints.find((e) => e.endpoint === 'AWS::eu-west-1') as EndpointConfig;
  const ENDPOINT = example.endpoint;
  let moto: MotoServer;
  let proxy: Ec2FaultProxy;
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let admin: EC2Client;
  let fixture: CloudFixture;

  before(async function () {
    this.timeout(600_000); // the first run installs moto
    moto = await startMoto();
    proxy = await new Ec2FaultProxy(moto.url).start();
    // moto keeps each region apart, as EC2 does: look and set up in the example's region.
    admin = adminClient(moto.url, example.driver.region as string);
    fixture = await cloudFixture(admin);
    env = await startDevServer();
    // What must point at moto instead of AWS; everything else is README's.
    rig = exampleRig(env, example, secret, {
      endpointUrl: proxy.url,
      credentials: TEST_CREDENTIALS,
      imageId: fixture.imageId,
      keyName: fixture.keyName,
      securityGroupIds: [fixture.securityGroupId],
      subnetId: fixture.subnetId,
    });
    await rig.setUp();
  });
  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
    admin?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  it('fills the endpoint with EC2 VMs that carry their instance, token and tags; stop and cancel terminate them', async function () {
    // The cloud throttles the first create: the workflow shows why, and Temporal's retry boots the VM.
    proxy.inject('RunInstances', { kind: 'error', status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' });
    const { reserved, type, details } = await directorPassWithFailedCreate(env, rig, `director-ec2-${RUN}`);
    assert.equal(reserved.length, 2);
    assert.equal(type, 'EndpointError');
    assert.deepEqual(details, [{ endpoint: ENDPOINT, reason: 'throttled' }]);

    const vms = new Map<number, Instance>();
    for (const instanceID of reserved) {
      await rig.waitForStatus(instanceID, 'Submitted');
      const uniqueID = await rig.uniqueID(instanceID);
      assert.match(uniqueID, /^i-[0-9a-f]+$/, 'the UniqueID is the EC2 instance ID');
      const vm = await describeOne(admin, uniqueID);
      vms.set(instanceID, vm);
      assert.equal(vm.InstanceType, example.driver.instanceType);
      assert.equal(vm.ImageId, fixture.imageId);
      const tags = tagsOf(vm);
      assert.equal(tags.project, 'lhcb-cloud');
      assert.equal(tags[EC2_TAGS.image], example.image);
      assert.equal(tags[EC2_TAGS.instanceID], String(instanceID));
      assert.equal(tags[EC2_TAGS.endpoint], ENDPOINT);
      assert.equal(tags[EC2_TAGS.runningPod], 'testvo');
      const name = ok(await rig.db.getInstanceParameter('Name', instanceID));
      assert.equal(tags[EC2_TAGS.instanceName], name);
      // The user data is what vmdb-agent reads on the VM: its API, its InstanceID and its own token.
      const attribute = await admin.send(new DescribeInstanceAttributeCommand({ InstanceId: uniqueID, Attribute: 'userData' }));
      const userData = JSON.parse(Buffer.from(attribute.UserData?.Value ?? '', 'base64').toString('utf8'));
      assert.equal(userData.vmdb.instanceID, instanceID);
      assert.equal(userData.vmdb.apiUrl, 'http://127.0.0.1:8080');
      assert.ok(await tokenIsFor(rig.db, secret, userData.vmdb.token, instanceID), 'a token bound to the instance and its name');
      const history = historyToJSON(await env.client.workflow.getHandle(`vm-${instanceID}`).fetchHistory());
      assert.ok(!history.includes(userData.vmdb.token), 'the token stays out of the workflow history');
    }
    const again = (await env.client.workflow.execute('directorPass', { workflowId: `director-ec2-again-${RUN}`, taskQueue: rig.taskQueue, args: [] })) as { reserved: number[] }[];
    assert.deepEqual(again.flatMap((r) => r.reserved), [], 'no free slot left');
    assert.equal((await instancesTagged(admin, EC2_TAGS.endpoint, ENDPOINT)).length, 2, 'one VM per instance');

    assert.equal(proxy.count('RunInstances'), 3, 'two creates, one of them retried once');

    // The first VM lives a whole life: running, heartbeats, an operator stop, halting; then it is terminated.
    const [first, second] = reserved;
    const firstVm = vms.get(first)!;
    assert.deepEqual(await rig.lifecycle.running(firstVm.InstanceId!, firstVm.PublicIpAddress ?? '', firstVm.PrivateIpAddress ?? ''), { OK: true, Value: 'Running' });
    assert.deepEqual(await rig.heartbeat(firstVm.InstanceId!, { load: 0.5, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 60 }), { OK: true, Value: 'ok' });
    assert.deepEqual(await rig.lifecycle.stop(first), { OK: true, Value: 'Stopping' });
    assert.deepEqual(await rig.heartbeat(firstVm.InstanceId!, { load: 0.1, jobs: 0, transferredFiles: 0, transferredBytes: 0, uptime: 120 }), { OK: true, Value: 'stop' });
    assert.deepEqual(await rig.lifecycle.halting(firstVm.InstanceId!, 0), { OK: true, Value: 'Halted' });
    const final = await env.client.workflow.getHandle(`vm-${first}`).result();
    assert.equal(final.status, 'Halted');
    assert.ok(['shutting-down', 'terminated'].includes((await describeOne(admin, firstVm.InstanceId!)).State?.Name ?? ''), 'terminated at EC2');

    // Cancelling the second one's workflow (UI, CLI) terminates its VM too.
    const handle = env.client.workflow.getHandle(`vm-${second}`);
    await handle.cancel();
    await assert.rejects(handle.result());
    assert.ok(['shutting-down', 'terminated'].includes((await describeOne(admin, vms.get(second)!.InstanceId!)).State?.Name ?? ''), 'terminated at EC2');
  });

});
