import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { FleetConfig } from '../config/fleet';

export const DIRECTOR_SCHEDULE_ID = 'vmdb-director';
export const SWEEP_SCHEDULE_ID = 'vmdb-stalled-sweep';
export const RECONCILE_SCHEDULE_ID = 'vmdb-reconcile';

/**
 * Creates (or updates) the Director, stalled-sweep and reconciliation Schedules. Overlap SKIP:
 * a pass never runs beside another, so one slot cannot be launched twice; a
 * short catch-up window: passes missed during downtime are not replayed.
 */
export async function ensureSchedules(client: Client, fleet: FleetConfig, taskQueue: string): Promise<void> {
  const plans = [
    { scheduleId: DIRECTOR_SCHEDULE_ID, workflowType: 'directorPass', every: fleet.directorEverySeconds },
    { scheduleId: SWEEP_SCHEDULE_ID, workflowType: 'stalledSweep', every: fleet.sweepEverySeconds },
    { scheduleId: RECONCILE_SCHEDULE_ID, workflowType: 'reconcilePass', every: fleet.safety.reconcile.everySeconds },
  ];
  for (const plan of plans) {
    const options = {
      scheduleId: plan.scheduleId,
      spec: { intervals: [{ every: `${plan.every} seconds` }] },
      action: { type: 'startWorkflow' as const, workflowType: plan.workflowType, taskQueue, args: [] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    };
    try {
      await client.schedule.create(options);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(plan.scheduleId).update((previous) => ({ ...previous, spec: options.spec, action: options.action, policies: { ...previous.policies, ...options.policies } }));
    }
  }
  // A first Director pass now rather than at the next interval (SKIP still applies).
  await client.schedule.getHandle(DIRECTOR_SCHEDULE_ID).trigger();
}
