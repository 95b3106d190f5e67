import { hostname } from 'node:os';
import { type Logger, processLogger } from '../ops/log';
import type { VirtualMachineDB } from '../db/vmdb';
import { type SafetyConfig, recoveryGraceSeconds } from './config';
import type { PULSE_COMPONENTS } from './guard';
import { SafetyStore } from '../db/safety-store';

export type PulseComponent = (typeof PULSE_COMPONENTS)[number];

export interface Pulse {
  /** Records one pulse now (also done every `everySeconds`). */
  beat(): Promise<void>;
  /** Stops beating; a graceful stop removes the pulse so that nothing waits for this component. */
  stop(options?: { graceful?: boolean }): Promise<void>;
}

/**
 * A component's pulse: every `everySeconds` it checks that it can do its work (`probe`: reach
 * Temporal, for the worker) and records the time in the database. A pulse that finds the previous
 * one older than `outageAfterSeconds`, or none, records an outage of the component that ends now:
 * the guard then holds stalls for the recovery grace, since VMs could not report meanwhile.
 */
export function startPulse(
  component: PulseComponent,
  db: VirtualMachineDB,
  config: SafetyConfig,
  options: {
    probe?: () => Promise<unknown>;
    /** Runs after each recorded pulse (the worker evaluates the mass-silence guard there). */
    onBeat?: () => Promise<unknown>;
    log?: Logger;
    now?: () => Date;
  } = {},
): Pulse {
  const store = SafetyStore.of(db);
  const log = options.log ?? processLogger();
  const now = options.now ?? (() => new Date());
  const me = `${hostname()}:${process.pid}`;
  let failing = false;
  let stopped = false;

  async function beat(): Promise<void> {
    try {
      await options.probe?.();
      const at = now();
      const previous = await store.mark(`pulse:${component}`);
      const gap = previous.at ? (at.getTime() - previous.at.getTime()) / 1000 : undefined;
      if (gap === undefined || gap > config.pulse.outageAfterSeconds) {
        const since = previous.at ? `down since ${previous.at.toISOString()}` : 'starting';
        await store.setMark(`outage:${component}`, since, at);
        log.warn({ component, since: previous.at?.toISOString(), recoveryGraceSeconds: recoveryGraceSeconds(config, db.stallingInterval) }, `the ${component} was down or is starting: stalls are held for the recovery grace`);
      }
      await store.setMark(`pulse:${component}`, me, at);
      if (failing) log.info({ component }, 'pulse recorded again');
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ component, err }, 'cannot record a pulse (dependency unreachable?)');
      failing = true;
      return;
    }
    try {
      await options.onBeat?.();
    } catch (err) {
      log.warn({ component, err }, 'the work after a pulse failed');
    }
  }

  const timer = setInterval(() => void beat(), config.pulse.everySeconds * 1000);
  timer.unref();
  return {
    beat,
    async stop({ graceful = true } = {}) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (graceful) await store.deleteMark(`pulse:${component}`).catch(() => undefined);
    },
  };
}
