import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { HISTORIES_DIR } from './support/lifecycle-rig';
import { workflowBundle } from './support/temporal';

// Histories recorded from real runs (VMDB_RECORD_HISTORIES=1 npm run test:lifecycle) and committed:
// a change to the workflow code that would break a running workflow fails here.
describe('replay of recorded instanceLifecycle histories', function () {
  this.timeout(60_000);
  const files = readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json')).sort();

  it('has recorded histories to replay', function () {
    assert.ok(files.length >= 4, `found ${files.length}`);
  });

  it('replays every history without a determinism error', async function () {
    const histories = files.map((file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, file), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.deepEqual(failures, []);
  });
});
