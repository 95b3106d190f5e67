import { proxyActivities } from '@temporalio/workflow';
import type { DirectorActivities, LaunchReport } from '../activities/director';

const director = proxyActivities<DirectorActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

/** One Director pass, run by a Schedule (overlap SKIP: never two at once). */
export async function directorPass(): Promise<LaunchReport[]> {
  return director.launchFreeSlots();
}

/** The stalled-instance safety sweep, run by its own Schedule. */
export async function stalledSweep(): Promise<{ stalled: number[]; halted: number[] }> {
  return director.sweepStalled();
}
