import { proxyActivities } from '@temporalio/workflow';
import type { DirectorActivities, LaunchReport, SweepReport } from '../activities/director';
import type { ReconcileReport, SafetyActivities } from '../activities/safety';

const director = proxyActivities<DirectorActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
});

const safety = proxyActivities<SafetyActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
});

/** One Director pass, run by a Schedule (overlap SKIP: never two at once). */
export async function directorPass(): Promise<LaunchReport[]> {
  return director.launchFreeSlots();
}

/** The stalled-instance safety sweep, run by its own Schedule. */
export async function stalledSweep(): Promise<SweepReport> {
  return director.sweepStalled();
}

/** Cloud listings against the database (zombies and ghosts), run by its own Schedule. */
export async function reconcilePass(): Promise<ReconcileReport[]> {
  return safety.reconcileEndpoints();
}
