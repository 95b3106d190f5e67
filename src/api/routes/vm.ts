import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HeartbeatFigures } from '../../../entities/heartbeat';
import { DIRECTIVES, type Directive } from '../../../entities/states';
import type { HeartbeatReply } from '../../../workflows/definitions';
import { instanceFields } from '../../ops/log';
import { heartbeats } from '../../ops/metrics';
import { requireVm } from '../auth';
import { ApiError, badRequest, unwrap } from '../errors';
import { count, errorReplies, figure, instanceIDParams } from '../schemas';
import type { ApiDeps } from '../deps';

/** A heartbeat's body: the figures, and the number the agent gives it (both or neither). */
type HeartbeatBody = HeartbeatFigures & { bootId?: string; seq?: number };

const IP_WIDTH = 32; // vm_Instances.PublicIP / PrivateIP are VARCHAR(32)

/** An address as the VM reports it; schema-checked, so that the OpenAPI document says what is accepted. */
const ip = () =>
  ({
    anyOf: [
      { type: 'string', maxLength: 0 },
      { type: 'string', format: 'ipv4' },
      { type: 'string', format: 'ipv6', maxLength: IP_WIDTH },
    ],
    description: `an IPv4 or IPv6 address (at most ${IP_WIDTH} characters), or empty`,
  }) as const;

const statusReply = { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } as const;

/** A VM's own routes: each goes through its instance's workflow, and answers once the change is committed. */
export default async function vmRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const { db, lifecycle } = deps;

  // Every line of a VM's request (Fastify's own included) names the instance and its workflow.
  app.setChildLoggerFactory((logger, bindings, options, rawRequest) => {
    const instanceID = instanceIDInUrl(rawRequest.url);
    return logger.child({ ...bindings, ...(instanceID !== undefined ? instanceFields({ instanceID }) : {}) }, options);
  });

  /** The UniqueID the workflow knows the VM by; an instance that has no VM yet cannot speak for it. */
  async function uniqueIDOf(instanceID: number, request: FastifyRequest, reply: FastifyReply): Promise<string> {
    const uniqueID = unwrap(await db.getUniqueID(instanceID));
    if (uniqueID) {
      // From now on the request's lines carry the UniqueID too.
      request.log = request.log.child({ uniqueID });
      reply.log = request.log;
      return uniqueID;
    }
    const status = await db.getInstanceParameter('Status', instanceID);
    const state = status.OK ? String(status.Value) : undefined;
    throw new ApiError(409, 'not_ready', `Instance ${instanceID} has no VM yet${state ? ` (status ${state})` : ''}`, state);
  }

  function checkIP(name: string, value: string): string {
    if (value !== '' && isIP(value) === 0) throw badRequest(`${name} is not an IP address (body)`);
    return value;
  }

  /** The caller's address as the public IP, when it is one that fits the column. */
  function remoteIP(address: string | undefined): string {
    if (!address) return ''; // a socket that is already gone has no address
    const stripped = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
    return isIP(stripped) !== 0 && stripped.length <= IP_WIDTH ? stripped : '';
  }

  app.post<{ Params: { instanceID: number }; Body: { publicIP?: string; privateIP?: string } }>(
    '/vms/:instanceID/running',
    {
      onRequest: requireVm(),
      // The body is optional: an empty POST declares Running from the caller's address.
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
      schema: {
        tags: ['vm'],
        summary: 'The VM is up: declare it Running with its addresses',
        description: "publicIP defaults to the request's remote address (::ffff: stripped), privateIP to empty.",
        params: instanceIDParams,
        body: {
          type: 'object',
          properties: { publicIP: ip(), privateIP: ip() },
          additionalProperties: false,
        },
        response: { 200: statusReply, ...errorReplies(404, 409) },
      },
    },
    async (request, reply) => {
      const { instanceID } = request.params;
      const publicIP = checkIP('publicIP', request.body.publicIP ?? remoteIP(request.ip));
      const privateIP = checkIP('privateIP', request.body.privateIP ?? '');
      const uniqueID = await uniqueIDOf(instanceID, request, reply);
      const status = unwrap(await lifecycle.running(uniqueID, publicIP, privateIP));
      request.log.info({ status, publicIP, privateIP }, 'VM reported running');
      return { status };
    },
  );

  app.post<{ Params: { instanceID: number }; Body: HeartbeatBody }>(
    '/vms/:instanceID/heartbeat',
    {
      onRequest: requireVm(),
      schema: {
        tags: ['vm'],
        summary: 'A heartbeat; the answer tells the VM to carry on, drain (stop) or power off (halt), and when it is planned to be shut down',
        params: instanceIDParams,
        body: {
          type: 'object',
          properties: {
            load: figure('load average'),
            jobs: count('jobs running'),
            transferredFiles: count('files transferred'),
            transferredBytes: count('bytes transferred', Number.MAX_SAFE_INTEGER),
            uptime: count('seconds up (0: unknown)'),
            bootId: {
              type: 'string',
              minLength: 1,
              maxLength: 64,
              pattern: '^[A-Za-z0-9_.:@/+=,~#-]+$',
              description: "the agent's boot id: with seq, numbers the heartbeat so that a retry is recorded once",
            },
            seq: count('the heartbeat\'s sequence number since boot; a retry reuses it'),
          },
          required: ['load', 'jobs', 'transferredFiles', 'transferredBytes', 'uptime'],
          additionalProperties: false,
          // Said in the schema, so that the OpenAPI document tells clients too.
          description: 'the figures, with bootId and seq together or neither',
          anyOf: [{ required: ['bootId', 'seq'] }, { not: { anyOf: [{ required: ['bootId'] }, { required: ['seq'] }] } }],
        },
        response: {
          200: {
            type: 'object',
            properties: {
              directive: { type: 'string', enum: [...DIRECTIVES] },
              shutdownAt: {
                type: 'string',
                format: 'date-time',
                description: 'When the VM is planned to be shut down (end of its lifetime plus its drain deadline, or the drain deadline once stopping); absent when none is planned',
              },
            },
            required: ['directive'],
          },
          ...errorReplies(404, 409),
        },
      },
    },
    async (request, reply) => {
      let directive: Directive | undefined;
      try {
        const answer = await answerHeartbeat(request.params.instanceID, request.body);
        directive = answer.directive;
        // ok is the steady state (debug); stop and halt change what the VM does.
        request.log[directive === 'ok' ? 'debug' : 'info']({ ...answer, load: request.body.load, jobs: request.body.jobs }, 'heartbeat answered');
        return answer;
      } finally {
        heartbeats.inc({ directive: directive ?? 'none' });
      }
    },
  );

  async function answerHeartbeat(instanceID: number, body: HeartbeatBody): Promise<HeartbeatReply> {
    // The hot path: one transaction, then the workflow's signal; the answer comes from the record.
    const { bootId, seq, ...figures } = body;
    if ((bootId === undefined) !== (seq === undefined)) throw badRequest('bootId and seq go together: send both or neither (body)');
    const mark = bootId === undefined || seq === undefined ? undefined : { bootId, seq };
    const result = await lifecycle.heartbeatOf(instanceID, figures, mark);
    return unwrap(result);
  }

  app.post<{ Params: { instanceID: number }; Body: { load: number } }>(
    '/vms/:instanceID/halting',
    {
      onRequest: requireVm(),
      schema: {
        tags: ['vm'],
        summary: 'The VM is powering off: record it Halted with its last load',
        params: instanceIDParams,
        body: { type: 'object', properties: { load: figure('load average') }, required: ['load'], additionalProperties: false },
        response: { 200: statusReply, ...errorReplies(404, 409) },
      },
    },
    async (request, reply) => {
      const uniqueID = await uniqueIDOf(request.params.instanceID, request, reply);
      const status = unwrap(await lifecycle.halting(uniqueID, request.body.load));
      request.log.info({ status, load: request.body.load }, 'VM reported halting');
      return { status };
    },
  );
}

/** The InstanceID a VM route names in its path, for the request's log lines (the route checks it properly). */
function instanceIDInUrl(url: string | undefined): number | undefined {
  const match = /\/vms\/(\d{1,15})(?:[/?]|$)/.exec(url ?? '');
  return match ? Number(match[1]) : undefined;
}
