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
  const run = spawnSync(process.execPath, [mocha, join(__dirname, 'lifecycle-model.js')], { stdio: 'inherit', env });
  return run.status ?? 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 2;
}
