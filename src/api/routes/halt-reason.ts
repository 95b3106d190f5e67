import type { FastifyInstance } from 'fastify';
import { isReportingState } from '../../../entities/states';
import { HALT_REASONS, type HaltReason, HaltStore } from '../../db/halt-store';
import { instanceFields } from '../../ops/log';
import { requireVm } from '../auth';
import { ApiError, unwrap } from '../errors';
import { errorReplies, instanceIDParams } from '../schemas';
import type { ApiDeps } from '../deps';

/**
 * `POST /vms/{instanceID}/halt-reason`: a VM's stop policy found it idle and it is about to declare
 * halting. The reason is kept in vm_InstanceHalts (the seed's tables stay as they are); the halting
 * call that follows records the Halted row with the load the policy judged.
 */
export default async function haltReasonRoutes(app: FastifyInstance, { deps }: { deps: ApiDeps }): Promise<void> {
  const halts = HaltStore.of(deps.db);

  app.post<{ Params: { instanceID: number }; Body: { reason: HaltReason; load: number; uptime: number; detail?: string } }>(
    '/vms/:instanceID/halt-reason',
    {
      onRequest: requireVm(),
      schema: {
        tags: ['vm'],
        summary: 'The VM is about to halt itself: record why (its stop policy found it idle)',
        params: instanceIDParams,
        body: {
          type: 'object',
          properties: {
            reason: { type: 'string', enum: [...HALT_REASONS] },
            load: { type: 'number', minimum: 0, maximum: 1e6, description: 'the load the policy averaged' },
            uptime: { type: 'integer', minimum: 0, maximum: 4294967295, description: 'seconds since the VM booted' },
            detail: { type: 'string', maxLength: 255, pattern: '^[^\\u0000-\\u001f\\u007f]*$', description: 'the policy\'s verdict, one line' },
          },
          required: ['reason', 'load', 'uptime'],
          additionalProperties: false,
        },
        response: { 200: { type: 'object', properties: { recorded: { type: 'boolean', description: 'false when a reason was already on record' } }, required: ['recorded'] }, ...errorReplies(404, 409) },
      },
    },
    async (request) => {
      const { instanceID } = request.params;
      const status = String(unwrap(await deps.db.getInstanceParameter('Status', instanceID)));
      if (!isReportingState(status)) throw new ApiError(409, 'refused', `Instance ${instanceID} is ${status}: only a live VM records why it halts`, status);
      const { reason, load, uptime, detail } = request.body;
      const recorded = await halts.record(instanceID, reason, detail ?? `${reason}: load ${load}`, uptime);
      request.log.info({ ...instanceFields({ instanceID }), reason, load, uptime }, 'VM halts itself');
      return { recorded };
    },
  );
}
