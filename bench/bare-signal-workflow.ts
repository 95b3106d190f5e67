/**
 * Temporal's own floor for the heartbeat benchmark: a workflow whose signal handler does nothing.
 * Bundled on its own (bench/heartbeats.ts), so that none of vmdb's workflow code is loaded with it.
 */
import { condition, defineSignal, setHandler } from '@temporalio/workflow';

export const bareSignal = defineSignal<[unknown]>('bare');

/** Takes `bare` signals and ignores them; it never ends (the benchmark's server is thrown away). */
export async function bareSignalTarget(): Promise<void> {
  setHandler(bareSignal, () => undefined);
  await condition(() => false);
}
