/** What the Director asks an endpoint to boot. */
export interface CreateRequest {
  instanceName: string;
  imageName: string;
  runningPod: string;
  userData?: string;
  /** The vmdb InstanceID, for drivers that label their VMs with it (EC2 tags). */
  instanceID?: number;
}

/** One VM as its endpoint sees it. */
export interface CloudInstance {
  uniqueID: string;
  status: 'pending' | 'running' | 'stopped' | 'unknown';
  publicIP: string;
  privateIP: string;
  /** The vmdb instance the VM was created for, where the endpoint keeps it (EC2 tags); for reconciliation. */
  instanceName?: string;
  instanceID?: number;
  /** Why the cloud gave up on the VM, where it says (an OpenStack server in ERROR, which is 'stopped'). */
  fault?: string;
}

/**
 * A cloud endpoint. Activities call it and Temporal retries them, so each call must be safe to repeat.
 */
export interface CloudDriver {
  /** DIRAC style "Site::CE". */
  readonly endpoint: string;
  /** Idempotent by instanceName: a retry returns the same VM while it lives. */
  createInstance(req: CreateRequest): Promise<CloudInstance>;
  /** Stopping a stopped or unknown VM is success. */
  stopInstance(uniqueID: string): Promise<void>;
  /** An ID this endpoint never issued answers status 'unknown'; it does not throw. */
  getInstanceStatus(uniqueID: string): Promise<CloudInstance>;
  listInstances(): Promise<CloudInstance[]>;
}

/**
 * A request no retry can fix (bad name, oversized user data). Its `name` is stable so the activity's
 * retry policy can list it under nonRetryableErrorTypes.
 */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

const MAX_NAME = 255;

function checkText(name: string, value: unknown, { allowEmpty }: { allowEmpty: boolean }): string {
  if (typeof value !== 'string') throw new InvalidRequestError(`${name} must be a string, got ${typeof value}`);
  if (!allowEmpty && value === '') throw new InvalidRequestError(`${name} must not be empty`);
  if (value.length > MAX_NAME) throw new InvalidRequestError(`${name} is too long (${value.length} characters, at most ${MAX_NAME})`);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new InvalidRequestError(`${name} contains control characters`);
  return value;
}

const OPTION_TEXT = /^[^\u0000-\u001f\u007f]+$/;

/** An optional text option of a driver's configuration: 1 to 255 characters without control characters; throws naming it. */
export function optionalTextOption(driver: string, name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !OPTION_TEXT.test(value) || value.length > MAX_NAME) {
    throw new Error(`${driver} driver: ${name} must be a non-empty string without control characters`);
  }
  return value;
}

/** A create request every driver can rely on: names of at most 255 characters without control characters. */
export type CheckedCreateRequest = Required<Omit<CreateRequest, 'instanceID'>> & Pick<CreateRequest, 'instanceID'>;

/**
 * Checks a create request for a driver whose user data may hold at most `maxUserDataBytes` bytes
 * (and, with `allowNul: false`, no NUL character); throws InvalidRequestError saying what is wrong.
 */
export function checkCreateRequest(req: unknown, limits: { driver: string; maxUserDataBytes: number; allowNul: boolean }): CheckedCreateRequest {
  if (typeof req !== 'object' || req === null) throw new InvalidRequestError('create request must be an object');
  const { instanceName, imageName, runningPod, userData = '', instanceID } = req as Record<string, unknown>;
  checkText('instanceName', instanceName, { allowEmpty: false });
  checkText('imageName', imageName, { allowEmpty: true });
  checkText('runningPod', runningPod, { allowEmpty: true });
  if (typeof userData !== 'string') throw new InvalidRequestError(`userData must be a string, got ${typeof userData}`);
  if (!limits.allowNul && userData.includes('\0')) throw new InvalidRequestError('userData must not contain NUL characters');
  const bytes = Buffer.byteLength(userData);
  if (bytes > limits.maxUserDataBytes) {
    throw new InvalidRequestError(`userData is too large for the ${limits.driver} driver (${bytes} bytes, at most ${limits.maxUserDataBytes})`);
  }
  if (instanceID !== undefined && !(Number.isSafeInteger(instanceID) && (instanceID as number) > 0)) {
    throw new InvalidRequestError(`instanceID must be a positive integer, got ${JSON.stringify(instanceID)}`);
  }
  return { instanceName, imageName, runningPod, userData, instanceID } as CheckedCreateRequest;
}

/**
 * Why an endpoint call failed, in the terms the Director backs off by. Drivers map their cloud's own
 * error codes onto these; a request no retry can fix is an InvalidRequestError instead.
 */
export const ENDPOINT_FAILURE_REASONS = ['throttled', 'quota', 'auth', 'capacity', 'unavailable'] as const;
export type EndpointFailureReason = (typeof ENDPOINT_FAILURE_REASONS)[number];

/** A classified endpoint failure. Retryable: the cloud may recover, or an operator may fix quota or credentials. */
export class EndpointError extends Error {
  override readonly name = 'EndpointError';
  constructor(
    readonly reason: EndpointFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EndpointName {
  site: string;
  ce: string;
  /** The validated "Site::CE" text. */
  name: string;
}

const PART = /^[A-Za-z0-9._-]+$/;
const PART_HINT = "letters, digits, '.', '_' and '-'";

/** Checks a DIRAC endpoint name "Site::CE" and splits it; throws an Error that says what is wrong. */
export function parseEndpointName(name: unknown): EndpointName {
  if (typeof name !== 'string') throw new Error(`Endpoint name must be a string "Site::CE", got ${typeof name}`);
  const parts = name.split('::');
  if (parts.length !== 2) {
    throw new Error(`Endpoint name ${JSON.stringify(name)} must be "Site::CE" with exactly one "::"`);
  }
  const [site, ce] = parts;
  for (const [label, part] of [['site', site], ['CE', ce]] as const) {
    if (part.length === 0) throw new Error(`Endpoint name ${JSON.stringify(name)}: the ${label} part is empty`);
    if (part.length > 120) throw new Error(`Endpoint name ${JSON.stringify(name)}: the ${label} part is too long (at most 120 characters)`);
    if (!PART.test(part)) {
      throw new Error(`Endpoint name ${JSON.stringify(name)}: the ${label} part ${JSON.stringify(part)} may only contain ${PART_HINT}`);
    }
  }
  return { site, ce, name };
}
