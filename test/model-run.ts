import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * `npm run test:model -- [--seed N | --seeds COUNT] [--from FIRST]`: the life-cycle model on the
 * seeds asked for (one to replay a failure, many to search for one), through mocha.
 */
function main(argv: string[]): number {
  // Failed creates and stops are the point here: the SDK's and vmdb's warnings about them would drown the report.
  const env: NodeJS.ProcessEnv = { ...process.env, VMDB_TEST_SDK_LOG_LEVEL: process.env.VMDB_TEST_SDK_LOG_LEVEL ?? 'ERROR', VMDB_LOG_LEVEL: process.env.VMDB_LOG_LEVEL ?? 'error' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const number = () => {
      if (!/^\d+$/.test(value ?? '')) throw new Error(`${flag} takes a whole number, got ${JSON.stringify(value)}`);
      i++;
      return value;
    };
    if (flag === '--seed') env.VMDB_MODEL_SEED = number();
    else if (flag === '--seeds') env.VMDB_MODEL_SEEDS = number();
    else if (flag === '--from') env.VMDB_MODEL_FIRST_SEED = number();
    else throw new Error(`unknown option ${flag} (use --seed N, --seeds COUNT, --from FIRST)`);
  }
  const mocha = require.resolve('mocha/bin/mocha.js');
  const runSeeds = (chunkEnv: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [mocha, join(__dirname, 'lifecycle-model.js')], { stdio: 'inherit', env: chunkEnv }).status ?? 1;
  if (env.VMDB_MODEL_SEED) return runSeeds(env);
  // Each chunk gets a fresh time-skipping server: after some 840 runs it has failed continue-as-new
  // with an internal error ("... missing method getNamespace"), whatever the seed.
  const first = Number(env.VMDB_MODEL_FIRST_SEED ?? 1);
  const count = Number(env.VMDB_MODEL_SEEDS ?? 200);
  let status = 0;
  for (let from = first; from < first + count; from += SEEDS_PER_SERVER) {
    const seeds = Math.min(SEEDS_PER_SERVER, first + count - from);
    status = Math.max(status, runSeeds({ ...env, VMDB_MODEL_FIRST_SEED: String(from), VMDB_MODEL_SEEDS: String(seeds) }));
  }
  return status;
}

const SEEDS_PER_SERVER = 500;

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 2;
}
