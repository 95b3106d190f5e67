import { type Logger, processLogger } from '../ops/log';
import { safetyGuardTripped, safetyHeld } from '../ops/metrics';
import type { VirtualMachineDB } from '../db/vmdb';
import { type SafetyConfig, deferSeconds, recoveryGraceSeconds } from './config';
import { SafetyStore } from '../db/safety-store';

/** An automatic action the guard decides on. */
export type GuardedAction = 'stall' | 'halt' | 'lifetime' | 'drain';

export interface Verdict {
  allow: boolean;
  /** Which rule held the action back: manual, outage, guard, cap. */
  rule?: string;
  reason?: string;
  /** When held back: ask again after this many seconds. */
  retryInSeconds: number;
}

/** The components that record a pulse; a missing or stale one means vmdb could not hear its VMs. */
export const PULSE_COMPONENTS = ['worker', 'api'] as const;

const ALLOW: Verdict = { allow: true, retryInSeconds: 0 };

/**
 * Decides whether vmdb may take an automatic action against one instance now. It errs on the side
 * of the VM: when silence is more likely vmdb's fault (its own outage, a mass silence) than the
 * VM's, the action waits. Everything it reads is in the database, so every worker decides alike.
 */
export class FleetGuard {
  readonly store: SafetyStore;

  constructor(
    private readonly db: VirtualMachineDB,
    private readonly config: SafetyConfig,
    private readonly log: Logger = processLogger(),
    private readonly now: () => Date = () => new Date(),
  ) {
    this.store = SafetyStore.of(db);
  }

  private hold(action: GuardedAction, rule: string, reason: string): Verdict {
    safetyHeld.inc({ action, rule });
    return { allow: false, rule, reason, retryInSeconds: deferSeconds(this.config, this.db.stallingInterval) };
  }

  /** Manual control only: what lifetime and drain deadlines obey. */
  async manualVerdict(instanceID: number, action: GuardedAction): Promise<Verdict> {
    const manual = await this.store.manual(instanceID);
    if (manual) return this.hold(action, 'manual', `instance ${instanceID} is under manual control${manual.reason ? `: ${manual.reason}` : ''}`);
    return ALLOW;
  }

  /** Stalling a silent instance, or halting a silent Stopping/Stalled one: every rule applies. */
  async silenceVerdict(instanceID: number, endpoint: string, action: 'stall' | 'halt'): Promise<Verdict> {
    const manual = await this.manualVerdict(instanceID, action);
    if (!manual.allow) return manual;
    // Both scopes are evaluated every time, so that the alert (metric, log) follows the fleet even while an outage holds.
    const endpointGuard = await this.evaluateScope(`endpoint:${endpoint}`, endpoint);
    const fleetGuard = await this.evaluateScope('fleet');
    const outage = await this.outageReason();
    if (outage) return this.hold(action, 'outage', outage);
    if (endpointGuard ?? fleetGuard) return this.hold(action, 'guard', (endpointGuard ?? fleetGuard)!);
    const cap = await this.capReason(endpoint);
    if (cap) return this.hold(action, 'cap', cap);
    return ALLOW;
  }

  /**
   * Why vmdb may have been deaf lately: a component whose pulse is stale (down now), or an outage
   * or guard trip that ended less than the recovery grace ago. Undefined when there is none.
   */
  async outageReason(): Promise<string | undefined> {
    const now = this.now().getTime();
    const { outageAfterSeconds } = this.config.pulse;
    const grace = recoveryGraceSeconds(this.config, this.db.stallingInterval) * 1000;
    for (const component of PULSE_COMPONENTS) {
      const pulse = await this.store.mark(`pulse:${component}`);
      if (pulse.at && now - pulse.at.getTime() > outageAfterSeconds * 1000) {
        return `the ${component} has not recorded a pulse since ${pulse.at.toISOString()}: VMs may not be able to report`;
      }
      const outage = await this.store.mark(`outage:${component}`);
      if (outage.at && now - outage.at.getTime() < grace) {
        return `recovery grace after an outage of the ${component} (${outage.value}) until ${new Date(outage.at.getTime() + grace).toISOString()}`;
      }
    }
    return undefined;
  }

  /** A recent end of a guard trip in `scope` holds stalls for the recovery grace too. */
  private async recoveringReason(scope: string): Promise<string | undefined> {
    const mark = await this.store.mark(`guard:${scope}`);
    const grace = recoveryGraceSeconds(this.config, this.db.stallingInterval) * 1000;
    if (mark.value === 'clear' && mark.at && this.now().getTime() - mark.at.getTime() < grace) {
      return `recovery grace after the ${scope} guard cleared, until ${new Date(mark.at.getTime() + grace).toISOString()}`;
    }
    return undefined;
  }

  /**
   * Counts the scope's Running instances and the silent ones among them; trips (or clears) the
   * scope's guard, with an alert on each change. Returns why stalls are held, or undefined.
   */
  async evaluateScope(scope: string, endpoint?: string): Promise<string | undefined> {
    const cutoff = new Date(this.now().getTime() - this.db.stallingInterval * this.config.guard.silentAfterFraction * 1000);
    const { total, silent } = await this.store.runningSilence(cutoff, endpoint);
    const { maxSilentFraction, minSilentInstances } = this.config.guard;
    const tripped = silent >= minSilentInstances && silent > total * maxSilentFraction;
    const mark = await this.store.mark(`guard:${scope}`);
    safetyGuardTripped.set({ scope }, tripped ? 1 : 0);
    if (tripped) {
      if (mark.value !== 'tripped') {
        await this.store.setMark(`guard:${scope}`, 'tripped', this.now());
        this.log.warn({ scope, silent, total, maxSilentFraction }, 'fleet-safety guard tripped: too many Running instances silent at once; stalls and halts held back');
      }
      return `${silent} of ${total} Running instances in ${scope} are silent at once (more than ${maxSilentFraction * 100}% have not reported for ${this.db.stallingInterval * this.config.guard.silentAfterFraction} s): more likely vmdb's or the network's fault than theirs`;
    }
    if (mark.value === 'tripped') {
      await this.store.setMark(`guard:${scope}`, 'clear', this.now());
      this.log.warn({ scope, silent, total, recoveryGraceSeconds: recoveryGraceSeconds(this.config, this.db.stallingInterval) }, 'fleet-safety guard cleared: heartbeats are back; stalls resume after the recovery grace');
    }
    return this.recoveringReason(scope);
  }

  /**
   * Evaluates every endpoint's scope and the fleet's, so that the alert follows the fleet (and a
   * tripped guard clears) even when no stall deadline fires; the worker's pulse calls it.
   */
  async evaluateAll(endpoints: Iterable<string>): Promise<void> {
    for (const endpoint of new Set(endpoints)) await this.evaluateScope(`endpoint:${endpoint}`, endpoint);
    await this.evaluateScope('fleet');
  }

  /** The halt cap: automatic stalls at this endpoint within the window. */
  private async capReason(endpoint: string): Promise<string | undefined> {
    const { maxPerEndpoint, windowSeconds } = this.config.halts;
    const n = await this.store.stallsSince(endpoint, new Date(this.now().getTime() - windowSeconds * 1000));
    if (n >= maxPerEndpoint) return `${n} instances of ${endpoint} were stalled within ${windowSeconds} s (cap ${maxPerEndpoint})`;
    return undefined;
  }
}
