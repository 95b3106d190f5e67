import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { EndpointError } from '../../src/drivers/driver';
import type { EndpointConfig } from '../../src/config/fleet';
import { LifecycleRig } from './lifecycle-rig';

/** What the cloud driver tests share. */

/** Awaits a promise that must fail, checks the failure, and returns it. */
export async function rejectsWith(promise: Promise<unknown>, check: (err: Error) => boolean, what: string): Promise<Error> {
  let caught: Error | undefined;
  try {
    await promise;
  } catch (err) {
    caught = err as Error;
  }
  assert.ok(caught, `${what}: expected a failure`);
  assert.ok(check(caught), `${what}: got ${caught.name}: ${caught.message}`);
  return caught;
}

export const isReason = (reason: string) => (err: Error) => err instanceof EndpointError && err.reason === reason;

/** The JSON fleet of a README section ("### EC2 endpoints"), as written there. */
export function readmeFleet(heading: string): unknown {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(heading));
  const block = /```json\n([\s\S]*?)\n```/.exec(section);
  assert.ok(block, `README has a JSON fleet under "${heading}"`);
  return JSON.parse(block[1]);
}

/**
 * A Director pass, with the first create of one of its instances failing: the instances it reserved,
 * and the type and details of that failure as the workflow shows it while it waits for its retry.
 */
export async function directorPassWithFailedCreate(env: TestWorkflowEnvironment, rig: LifecycleRig, workflowId: string): Promise<{ reserved: number[]; type?: string; details: unknown[] }> {
  const reports = (await env.client.workflow.execute('directorPass', { workflowId, taskQueue: rig.taskQueue, args: [] })) as { reserved: number[] }[];
  const reserved = reports.flatMap((r) => r.reserved);
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (const id of reserved) {
      const { raw } = await env.client.workflow.getHandle(`vm-${id}`).describe();
      const failure = raw.pendingActivities?.find((a) => a.activityType?.name === 'createInstance' && a.lastFailure)?.lastFailure;
      const info = failure?.applicationFailureInfo;
      if (info) {
        const details = info.details?.payloads?.map((p) => JSON.parse(Buffer.from(p.data ?? new Uint8Array()).toString('utf8'))) ?? [];
        return { reserved, type: info.type ?? undefined, details };
      }
    }
    if (Date.now() > deadline) throw new Error('no createInstance failure seen while it waited for its retry');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A rig whose endpoint is a README example's, with the driver options that must point at the test's cloud replaced. */
export function exampleRig(env: TestWorkflowEnvironment, example: EndpointConfig, tokenSecret: string, testCloud: Record<string, unknown>): LifecycleRig {
  return new LifecycleRig(env, {
    maxInstances: 2,
    tokenSecret,
    endpoint: { endpoint: example.endpoint, image: example.image, driver: { ...example.driver, ...testCloud } },
  });
}
