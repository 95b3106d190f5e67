import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import {
  DescribeInstancesCommand,
  EC2Client,
  type EC2ClientConfig,
  type Filter,
  type Instance,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StopInstancesCommand,
  TerminateInstancesCommand,
  paginateDescribeInstances,
} from '@aws-sdk/client-ec2';
import {
  type CloudDriver,
  type CloudInstance,
  type CreateRequest,
  EndpointError,
  type EndpointFailureReason,
  InvalidRequestError,
  checkCreateRequest,
  optionalTextOption,
  parseEndpointName,
} from './driver';

/**
 * The `ec2` driver: VMs on Amazon EC2 or any cloud that speaks its API, through the official AWS SDK
 * (v3). Every VM it creates carries the tags below, so the driver finds its own VMs again (a retried
 * create, the listing for reconciliation) and never touches a VM it did not create.
 * docs/drivers.md describes the contract it keeps.
 */

/** The tags the driver puts on every VM. Tag filters are how it finds them; nothing is kept locally. */
export const EC2_TAGS = {
  endpoint: 'vmdb:Endpoint',
  instanceID: 'vmdb:InstanceID',
  instanceName: 'vmdb:InstanceName',
  runningPod: 'vmdb:RunningPod',
  image: 'vmdb:Image',
} as const;

export interface Ec2Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface Ec2DriverOptions {
  /** The EC2 region, e.g. "eu-west-1" (an EC2-compatible cloud names its own). */
  region: string;
  /** Base URL of an EC2-compatible API; default: AWS's endpoint for the region. */
  endpointUrl?: string;
  /** The AMI every VM boots; default: the vmdb image name of the request, taken as an AMI ID. */
  imageId?: string;
  instanceType: string;
  keyName?: string;
  securityGroupIds?: string[];
  subnetId?: string;
  /** Extra tags for every VM; not "Name" (the driver sets it), no key starting with "vmdb:" or "aws:". */
  tags?: Record<string, string>;
  /** What stopping a VM does: "terminate" (default) deletes it; "stop" keeps it stopped. */
  stopAction?: 'terminate' | 'stop';
  /** Static credentials; default: the standard AWS chain (environment, shared files with `profile`, SSO, web identity, instance role). */
  credentials?: Ec2Credentials;
  /** A profile of the shared AWS config and credentials files, for the standard chain. */
  profile?: string;
  /** Attempts of the SDK for each read or stop call (create calls make one; see createInstance). Default 3. */
  maxAttempts?: number;
  /** Time one HTTP request may take, in milliseconds. Default 30000. */
  requestTimeoutMs?: number;
}

const OPTION_NAMES = [
  'region',
  'endpointUrl',
  'imageId',
  'instanceType',
  'keyName',
  'securityGroupIds',
  'subnetId',
  'tags',
  'stopAction',
  'credentials',
  'profile',
  'maxAttempts',
  'requestTimeoutMs',
];
const CREDENTIAL_NAMES = ['accessKeyId', 'secretAccessKey', 'sessionToken'];
/** EC2 takes at most 16 KB of user data before its base64 encoding. */
export const EC2_MAX_USER_DATA = 16_384;
const INSTANCE_ID = /^i-[0-9a-zA-Z]{1,64}$/;
const LIVE_STATES = ['pending', 'running'];
const NOT_FOUND = new Set(['InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed']);

/**
 * EC2's client token for one instance name at one endpoint: at most 64 ASCII characters, the same on
 * every worker and every attempt, so EC2 answers a repeated RunInstances with the VM of the first.
 */
export function ec2ClientToken(endpoint: string, instanceName: string): string {
  return `vmdb-${createHash('sha256').update(`${endpoint}\n${instanceName}`).digest('hex').slice(0, 59)}`;
}

// EC2's error codes (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html) and the
// SDK's own, in the terms the Director backs off by.
const REASONS: Readonly<Record<string, EndpointFailureReason>> = {
  RequestLimitExceeded: 'throttled',
  Throttling: 'throttled',
  ThrottlingException: 'throttled',
  RequestThrottled: 'throttled',
  RequestThrottledException: 'throttled',
  TooManyRequestsException: 'throttled',
  SlowDown: 'throttled',
  BandwidthLimitExceeded: 'throttled',

  InstanceLimitExceeded: 'quota',
  VcpuLimitExceeded: 'quota',
  MaxSpotInstanceCountExceeded: 'quota',
  ResourceLimitExceeded: 'quota',
  VolumeLimitExceeded: 'quota',
  AddressLimitExceeded: 'quota',
  NetworkInterfaceLimitExceeded: 'quota',
  ServiceQuotaExceededException: 'quota',

  AuthFailure: 'auth',
  UnauthorizedOperation: 'auth',
  AccessDenied: 'auth',
  AccessDeniedException: 'auth',
  Blocked: 'auth',
  OptInRequired: 'auth',
  PendingVerification: 'auth',
  SignatureDoesNotMatch: 'auth',
  IncompleteSignature: 'auth',
  InvalidClientTokenId: 'auth',
  InvalidAccessKeyId: 'auth',
  MissingAuthenticationToken: 'auth',
  UnrecognizedClientException: 'auth',
  ExpiredToken: 'auth',
  ExpiredTokenException: 'auth',
  RequestExpired: 'auth',
  // The SDK's: the credential chain found nothing, or a provider failed.
  CredentialsProviderError: 'auth',

  InsufficientInstanceCapacity: 'capacity',
  InsufficientHostCapacity: 'capacity',
  InsufficientReservedInstanceCapacity: 'capacity',
  InsufficientCapacity: 'capacity',
  InsufficientCapacityOnHost: 'capacity',
  InsufficientAddressCapacity: 'capacity',
  InsufficientFreeAddressesInSubnet: 'capacity',

  ServiceUnavailable: 'unavailable',
  ServiceUnavailableException: 'unavailable',
  Unavailable: 'unavailable',
  InternalError: 'unavailable',
  InternalFailure: 'unavailable',
  InternalServerError: 'unavailable',
  RequestTimeout: 'unavailable',
  RequestTimeoutException: 'unavailable',
  PriorRequestNotComplete: 'unavailable',
  // The SDK's: its request timeout.
  TimeoutError: 'unavailable',
};
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ESOCKETTIMEDOUT']);
// A request the cloud refuses as malformed or naming what does not exist (an AMI, a subnet, a key
// pair): retrying it changes nothing until the configuration is fixed.
const INVALID_PREFIXES = ['Invalid', 'Missing', 'Malformed', 'Unsupported', 'UnknownParameter', 'ValidationError', 'TagLimitExceeded'];

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/**
 * An error of an EC2 call as vmdb sees it: EndpointError with the Director's reason, InvalidRequestError
 * for what no retry fixes, or else a plain Error (retried). Its message names the endpoint, the call,
 * EC2's code and request id, never the credentials.
 */
export function classifyEc2Error(endpoint: string, operation: string, err: unknown): Error {
  const e = (err ?? {}) as SdkError;
  const code = typeof e.name === 'string' && e.name !== 'Error' ? e.name : (e.code ?? 'Error');
  const status = e.$metadata?.httpStatusCode;
  const requestId = e.$metadata?.requestId;
  const detail = `${code}: ${e.message ?? String(err)}${requestId ? ` (request id ${requestId})` : ''}`;
  const message = `ec2 driver (${endpoint}): ${operation} failed: ${detail}`;
  const reason: EndpointFailureReason | undefined = Object.hasOwn(REASONS, code)
    ? REASONS[code]
    : (e.code !== undefined && NETWORK_CODES.has(e.code)) || e.$fault === 'server' || (status !== undefined && status >= 500)
      ? 'unavailable'
      : undefined;
  if (reason) return new EndpointError(reason, message, { cause: err });
  if (INVALID_PREFIXES.some((prefix) => code.startsWith(prefix))) return new InvalidRequestError(message, { cause: err });
  return new Error(message, { cause: err });
}

function isNotFound(err: unknown): boolean {
  return NOT_FOUND.has((err as SdkError | null)?.name ?? '');
}

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

function statusOf(state: string | undefined): CloudInstance['status'] {
  switch (state) {
    case 'pending':
      return 'pending';
    case 'running':
      return 'running';
    case 'stopping':
    case 'stopped':
    case 'shutting-down':
    case 'terminated':
      return 'stopped';
    default:
      return 'unknown';
  }
}

function launchOrder(a: Instance, b: Instance): number {
  return (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0) || (a.InstanceId ?? '').localeCompare(b.InstanceId ?? '');
}

const TEXT = /^[^\u0000-\u001f\u007f]+$/;

const optionalText = (name: string, value: unknown) => optionalTextOption('ec2', name, value);

/** The options with their defaults filled in. */
type CheckedOptions = Ec2DriverOptions & Required<Pick<Ec2DriverOptions, 'securityGroupIds' | 'tags' | 'stopAction' | 'maxAttempts' | 'requestTimeoutMs'>>;

function checkOptions(options: unknown): CheckedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error('ec2 driver options must be an object');
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!OPTION_NAMES.includes(key)) throw new Error(`ec2 driver: unknown option ${JSON.stringify(key)} (known: ${OPTION_NAMES.join(', ')})`);
  }
  const region = optionalText('region', given.region);
  if (region === undefined || !/^[A-Za-z0-9._-]+$/.test(region)) throw new Error('ec2 driver: region is required: letters, digits, ".", "_" and "-" (e.g. "eu-west-1")');
  const instanceType = optionalText('instanceType', given.instanceType);
  if (instanceType === undefined) throw new Error('ec2 driver: instanceType is required (e.g. "t3.medium")');
  let endpointUrl: string | undefined;
  if (given.endpointUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = typeof given.endpointUrl === 'string' ? new URL(given.endpointUrl) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.username || url.password) {
      throw new Error('ec2 driver: endpointUrl must be an http(s) URL without credentials in it');
    }
    endpointUrl = given.endpointUrl as string;
  }
  const securityGroupIds = given.securityGroupIds ?? [];
  if (!Array.isArray(securityGroupIds) || !securityGroupIds.every((id) => typeof id === 'string' && TEXT.test(id))) {
    throw new Error('ec2 driver: securityGroupIds must be an array of security group IDs');
  }
  const tags = given.tags ?? {};
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) throw new Error('ec2 driver: tags must be an object of tag names and values');
  for (const [key, value] of Object.entries(tags)) {
    if (key === '' || key.length > 128 || /^(vmdb|aws):/i.test(key) || key === 'Name') {
      throw new Error(`ec2 driver: tag name ${JSON.stringify(key)} is not allowed (1 to 128 characters, not "Name", not starting with "vmdb:" or "aws:")`);
    }
    if (typeof value !== 'string' || value.length > 256) throw new Error(`ec2 driver: the value of tag ${JSON.stringify(key)} must be a string of at most 256 characters`);
  }
  if (Object.keys(tags).length > 40) throw new Error('ec2 driver: at most 40 extra tags (EC2 allows 50 per resource, vmdb uses 6)');
  const stopAction = given.stopAction ?? 'terminate';
  if (stopAction !== 'terminate' && stopAction !== 'stop') throw new Error('ec2 driver: stopAction must be "terminate" or "stop"');
  const maxAttempts = given.maxAttempts ?? 3;
  if (typeof maxAttempts !== 'number' || !Number.isSafeInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 10) {
    throw new Error('ec2 driver: maxAttempts must be an integer from 1 to 10');
  }
  const requestTimeoutMs = given.requestTimeoutMs ?? 30_000;
  if (typeof requestTimeoutMs !== 'number' || !Number.isSafeInteger(requestTimeoutMs) || requestTimeoutMs < 100) {
    throw new Error('ec2 driver: requestTimeoutMs must be an integer of at least 100 (milliseconds)');
  }
  let credentials: Ec2Credentials | undefined;
  if (given.credentials !== undefined) {
    // Messages name the fields, never their values.
    const c = given.credentials as Record<string, unknown>;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('ec2 driver: credentials must be an object { accessKeyId, secretAccessKey, sessionToken? }');
    for (const key of Object.keys(c)) {
      if (!CREDENTIAL_NAMES.includes(key)) throw new Error(`ec2 driver: unknown credentials field ${JSON.stringify(key)} (known: ${CREDENTIAL_NAMES.join(', ')})`);
    }
    for (const key of ['accessKeyId', 'secretAccessKey']) {
      if (typeof c[key] !== 'string' || c[key] === '') throw new Error(`ec2 driver: credentials.${key} must be a non-empty string`);
    }
    if (c.sessionToken !== undefined && (typeof c.sessionToken !== 'string' || c.sessionToken === '')) throw new Error('ec2 driver: credentials.sessionToken must be a non-empty string');
    credentials = { accessKeyId: c.accessKeyId as string, secretAccessKey: c.secretAccessKey as string, ...(c.sessionToken ? { sessionToken: c.sessionToken as string } : {}) };
  }
  const profile = optionalText('profile', given.profile);
  if (credentials && profile) throw new Error('ec2 driver: give credentials or profile, not both');
  return {
    region,
    endpointUrl,
    imageId: optionalText('imageId', given.imageId),
    instanceType,
    keyName: optionalText('keyName', given.keyName),
    securityGroupIds: [...securityGroupIds] as string[],
    subnetId: optionalText('subnetId', given.subnetId),
    tags: { ...(tags as Record<string, string>) },
    stopAction,
    credentials,
    profile,
    maxAttempts,
    requestTimeoutMs,
  };
}

export class Ec2Driver implements CloudDriver {
  readonly endpoint: string;
  private readonly options: CheckedOptions;
  /** Reads and stops, with the SDK's retries. */
  private readonly client: EC2Client;
  /** RunInstances, one attempt per call: a retry goes back through the lookup (see createInstance). */
  private readonly createClient: EC2Client;

  constructor(endpoint: string, options: Ec2DriverOptions) {
    this.endpoint = parseEndpointName(endpoint).name;
    this.options = checkOptions(options);
    const { region, endpointUrl, credentials, profile, maxAttempts, requestTimeoutMs } = this.options;
    const config: EC2ClientConfig = {
      region,
      ...(endpointUrl ? { endpoint: endpointUrl } : {}),
      ...(credentials ? { credentials } : {}),
      ...(profile ? { profile } : {}),
      requestHandler: { connectionTimeout: Math.min(requestTimeoutMs, 10_000), requestTimeout: requestTimeoutMs, throwOnRequestTimeout: true },
      // No logger: the SDK's would print requests. Errors reach vmdb through classifyEc2Error.
    };
    this.client = new EC2Client({ ...config, maxAttempts });
    this.createClient = new EC2Client({ ...config, maxAttempts: 1 });
  }

  /**
   * Boots one VM for the request, or returns the live VM an earlier attempt made for the same
   * instance name. Two guards make a retry safe:
   * - first a lookup by this endpoint's tags, which finds the VM of an earlier attempt on any cloud
   *   whose listing shows it;
   * - then RunInstances with a client token derived from endpoint and instance name, so EC2 itself
   *   answers a repeat with the first VM, even when its eventually consistent listing does not show
   *   that VM yet.
   * RunInstances is sent once per call (no SDK retries): a retry comes back through the lookup, so a
   * cloud that ignores client tokens still makes no second VM for a sequential retry.
   */
  async createInstance(req: CreateRequest): Promise<CloudInstance> {
    const request = checkCreateRequest(req, { driver: 'ec2', maxUserDataBytes: EC2_MAX_USER_DATA, allowNul: true });
    const live = await this.describe([
      { Name: `tag:${EC2_TAGS.endpoint}`, Values: [this.endpoint] },
      { Name: `tag:${EC2_TAGS.instanceName}`, Values: [request.instanceName] },
      { Name: 'instance-state-name', Values: LIVE_STATES },
    ]);
    if (live.length > 0) return this.toInstance(live[0]);

    const imageId = this.options.imageId ?? request.imageName;
    if (imageId === '') throw new InvalidRequestError(`ec2 driver (${this.endpoint}): no AMI: set the endpoint's imageId, or name the image by its AMI ID`);
    const tags = [
      ...Object.entries(this.options.tags).map(([Key, Value]) => ({ Key, Value })),
      { Key: 'Name', Value: request.instanceName },
      { Key: EC2_TAGS.endpoint, Value: this.endpoint },
      { Key: EC2_TAGS.instanceName, Value: request.instanceName },
      { Key: EC2_TAGS.runningPod, Value: request.runningPod },
      { Key: EC2_TAGS.image, Value: request.imageName },
      ...(request.instanceID === undefined ? [] : [{ Key: EC2_TAGS.instanceID, Value: String(request.instanceID) }]),
    ];
    const input: RunInstancesCommandInput = {
      ImageId: imageId,
      InstanceType: this.options.instanceType as RunInstancesCommandInput['InstanceType'],
      MinCount: 1,
      MaxCount: 1,
      ClientToken: ec2ClientToken(this.endpoint, request.instanceName),
      // A VM that powers itself off (vmdb-agent's halt) goes the way vmdb stops it.
      InstanceInitiatedShutdownBehavior: this.options.stopAction,
      // IMDSv2 only, one hop: the user data (with the VM's token) is not readable by a plain GET
      // from the VM, nor through a container or an SSRF one hop further.
      MetadataOptions: { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
      ...(request.userData ? { UserData: Buffer.from(request.userData, 'utf8').toString('base64') } : {}),
      ...(this.options.keyName ? { KeyName: this.options.keyName } : {}),
      ...(this.options.securityGroupIds.length > 0 ? { SecurityGroupIds: this.options.securityGroupIds } : {}),
      ...(this.options.subnetId ? { SubnetId: this.options.subnetId } : {}),
    };
    let created: Instance | undefined;
    try {
      created = (await this.createClient.send(new RunInstancesCommand(input))).Instances?.[0];
    } catch (err) {
      throw classifyEc2Error(this.endpoint, 'RunInstances', err);
    }
    if (!created?.InstanceId) throw new Error(`ec2 driver (${this.endpoint}): RunInstances answered without an instance`);
    return this.toInstance(created);
  }

  /** Terminates (or stops) a VM of this endpoint. A VM that is gone, going, or not this endpoint's is left alone: success. */
  async stopInstance(uniqueID: string): Promise<void> {
    const vm = await this.own(uniqueID);
    if (!vm) return;
    const state = vm.State?.Name;
    if (state === 'terminated' || state === 'shutting-down') return;
    if (this.options.stopAction === 'stop' && (state === 'stopped' || state === 'stopping')) return;
    const operation = this.options.stopAction === 'stop' ? 'StopInstances' : 'TerminateInstances';
    try {
      await this.client.send(operation === 'StopInstances' ? new StopInstancesCommand({ InstanceIds: [uniqueID] }) : new TerminateInstancesCommand({ InstanceIds: [uniqueID] }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw classifyEc2Error(this.endpoint, operation, err);
    }
  }

  /** An ID that is not a VM of this endpoint answers 'unknown'. */
  async getInstanceStatus(uniqueID: string): Promise<CloudInstance> {
    const vm = await this.own(uniqueID);
    return vm ? this.toInstance(vm) : { uniqueID, status: 'unknown', publicIP: '', privateIP: '' };
  }

  /** Every VM carrying this endpoint's tag, terminated ones too while EC2 still lists them, by launch time (to the second), then ID. */
  async listInstances(): Promise<CloudInstance[]> {
    return (await this.describe([{ Name: `tag:${EC2_TAGS.endpoint}`, Values: [this.endpoint] }])).map((vm) => this.toInstance(vm));
  }

  /** Options as they may be shown: the credentials are replaced by whether there are any. */
  describeOptions(): Record<string, unknown> {
    const { credentials, ...rest } = this.options;
    return { ...rest, credentials: credentials ? '(set)' : '(standard AWS chain)' };
  }

  toJSON(): Record<string, unknown> {
    return { driver: 'ec2', endpoint: this.endpoint, options: this.describeOptions() };
  }

  [inspect.custom](): string {
    return `Ec2Driver ${inspect(this.toJSON(), { depth: 4, breakLength: Infinity })}`;
  }

  /** The VM of that ID if it carries this endpoint's tag; undefined for any other ID. */
  private async own(uniqueID: string): Promise<Instance | undefined> {
    if (typeof uniqueID !== 'string' || !INSTANCE_ID.test(uniqueID)) return undefined;
    let found: Instance[];
    try {
      found = (await this.client.send(new DescribeInstancesCommand({ InstanceIds: [uniqueID] }))).Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classifyEc2Error(this.endpoint, 'DescribeInstances', err);
    }
    return found.find((vm) => vm.InstanceId === uniqueID && tagOf(vm, EC2_TAGS.endpoint) === this.endpoint);
  }

  /** Every VM that passes the filters, by launch time, then ID. */
  private async describe(filters: Filter[]): Promise<Instance[]> {
    const found: Instance[] = [];
    try {
      for await (const page of paginateDescribeInstances({ client: this.client, pageSize: 1000 }, { Filters: filters })) {
        for (const reservation of page.Reservations ?? []) found.push(...(reservation.Instances ?? []));
      }
    } catch (err) {
      throw classifyEc2Error(this.endpoint, 'DescribeInstances', err);
    }
    return found.sort(launchOrder);
  }

  private toInstance(vm: Instance): CloudInstance {
    const instanceID = Number(tagOf(vm, EC2_TAGS.instanceID));
    const instanceName = tagOf(vm, EC2_TAGS.instanceName);
    return {
      uniqueID: vm.InstanceId ?? '',
      status: statusOf(vm.State?.Name),
      publicIP: vm.PublicIpAddress ?? '',
      privateIP: vm.PrivateIpAddress ?? '',
      ...(instanceName === undefined ? {} : { instanceName }),
      ...(Number.isSafeInteger(instanceID) && instanceID > 0 ? { instanceID } : {}),
    };
  }
}

/** The registry's factory: options come straight from the endpoint configuration. */
export function ec2DriverFromConfig(endpoint: string, options: Record<string, unknown>): Ec2Driver {
  return new Ec2Driver(endpoint, options as unknown as Ec2DriverOptions);
}
