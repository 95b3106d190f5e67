import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { ROLES, type Role, hashToken, newSecret } from '../src/auth/tokens';
import { vmTokenOf } from './support/vm-tokens';
import { LifecycleRig } from './support/lifecycle-rig';
import { startDevServer } from './support/temporal';

const ROOT = join(__dirname, '..', '..');
const SECRET = newSecret();
const TOKENS: Record<Role, string> = { read: newSecret(), operate: newSecret(), admin: newSecret() };
const OPERATORS = ROLES.map((role) => ({ name: `${role}-fuzz`, role, sha256: hashToken(TOKENS[role]) }));
/** Test cases per operation and phase: enough to find schema and validation gaps, small enough for CI. */
const MAX_EXAMPLES = 25;

let cli: string | undefined;

/** The schemathesis CLI from the project's venv (scripts/schemathesis-env.sh), installed on first use. */
function schemathesis(): string {
  if (!cli) {
    const out = execFileSync('bash', [join(ROOT, 'scripts', 'schemathesis-env.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    cli = /^SCHEMATHESIS=(.*)$/m.exec(out)?.[1]?.trim();
    if (!cli) throw new Error('scripts/schemathesis-env.sh printed no SCHEMATHESIS');
  }
  return cli;
}

/**
 * `after` is an opaque cursor: only the server can tell a malformed one, as only it can tell an id
 * that does not exist. A string the schema allows is then a 400, which this check must accept there.
 */
const OPAQUE_CURSOR = `[[operations]]
include-name = "GET /api/v1/instances"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]
`;

/**
 * Runs schemathesis against the API's own /openapi.json with every check on.
 * The token reaches it through the environment (the config file names the
 * variable), never on a command line. Resolves with the exit code and output.
 */
function fuzz(apiUrl: string, dir: string, name: string, token: string, config: string, extraArgs: string[] = []): Promise<{ code: number; output: string }> {
  const configFile = join(dir, `${name}.toml`);
  writeFileSync(configFile, `headers = { Authorization = "Bearer \${VMDB_TEST_FUZZ_TOKEN}" }\n${config}`);
  const args = [
    '--config-file', configFile,
    'run', `${apiUrl}/openapi.json`,
    '--checks', 'all',
    '--max-examples', String(MAX_EXAMPLES),
    '--phases', 'examples,coverage,fuzzing',
    '--workers', '1',
    '--request-timeout', '20',
    '--no-color',
    ...extraArgs,
  ];
  return new Promise((resolve) => {
    // Asynchronous: the API answering it runs in this very process.
    execFile(schemathesis(), args, { env: { ...process.env, VMDB_TEST_FUZZ_TOKEN: token }, maxBuffer: 64 * 1024 * 1024, cwd: dir }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** The end of schemathesis' report: the errors and failures it found, and the summary. */
function summary(output: string): string {
  const found = ['ERRORS', 'FAILURES'].map((marker) => output.indexOf(marker)).filter((at) => at >= 0);
  return found.length ? output.slice(Math.min(...found), Math.min(...found) + 16_000) : output.slice(-6000);
}

/** Prints how much was tried; a run that generated nothing would prove nothing. */
function report(who: string, output: string): void {
  const generated = /(\d+) generated/.exec(output);
  assert.ok(generated && Number(generated[1]) > 50, `schemathesis generated too few test cases:\n${output.slice(-3000)}`);
  assert.doesNotMatch(output, /Errored: [1-9]/, summary(output));
  console.log(`      schemathesis (${who}): ${/Test cases:\s*\n\s*(.*)/.exec(output)?.[1] ?? `${generated[1]} generated`}`);
}

describe('API fuzzing with schemathesis against /openapi.json, with real data', function () {
  this.timeout(600_000);
  let env: TestWorkflowEnvironment;
  let rig: LifecycleRig;
  let app: FastifyInstance;
  let apiUrl: string;
  let vmInstance: number;
  const dir = mkdtempSync(join(tmpdir(), 'vmdb-fuzz-'));

  before(async function () {
    schemathesis(); // installed outside the timed part
    env = await startDevServer();
    rig = new LifecycleRig(env, { tokenSecret: SECRET, maxInstances: 4 });
    await rig.setUp();
    // Rate limits off, on purpose: schemathesis sends thousands of requests from one address, many
    // without a token or with a bad one (its authentication checks), and would meet 429s that say
    // nothing about the routes. test/rate-limits.test.ts tests the limits.
    app = await rig.api(OPERATORS, SECRET, { rateLimits: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    apiUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    // Real data: instances with workflows, one of them Running with heartbeats and history.
    const launched = [await rig.launch(), await rig.launch(), await rig.launch()];
    for (const { instanceID } of launched) await rig.waitForStatus(instanceID, 'Submitted');
    vmInstance = launched[0].instanceID;
    const uniqueID = await rig.uniqueID(vmInstance);
    assert.ok((await rig.lifecycle.running(uniqueID, '10.0.0.7')).OK);
    for (let i = 1; i <= 3; i++) assert.ok((await rig.heartbeat(uniqueID, { load: i, jobs: i, transferredFiles: i, transferredBytes: i, uptime: 60 * i })).OK);
  });

  after(async function () {
    await rig?.tearDown();
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with an operator (admin) token, every operation: no server error, every answer as documented', async function () {
    const { code, output } = await fuzz(apiUrl, dir, 'operator', TOKENS.admin, OPAQUE_CURSOR);
    assert.equal(code, 0, summary(output));
    report('operator token', output);
  });

  it("with a VM token, the VM routes of its instance: no server error, every answer as documented", async function () {
    const { code, output } = await fuzz(apiUrl, dir, 'vm', await vmTokenOf(rig.db, SECRET, vmInstance), `[parameters]\n"path.instanceID" = ${vmInstance}\n`, ['--include-tag', 'vm']);
    assert.equal(code, 0, summary(output));
    report('VM token', output);
  });
});
