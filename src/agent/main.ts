#!/usr/bin/env node
/**
 * `vmdb-agent`: the VM monitor agent. Configured by VMDB_USER_DATA and the environment (see
 * src/agent/config.ts). Exit codes: 0 halted (the halt command ran) or stopped by SIGTERM/SIGINT;
 * 1 the halt command failed, or an unexpected error; 2 the configuration is not usable.
 */
import { VmAgent } from './agent';
import { AgentConfigError, loadAgentConfig } from './config';

async function main(): Promise<number> {
  let config;
  try {
    config = loadAgentConfig(process.env);
  } catch (err) {
    if (err instanceof AgentConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }

  const controller = new AbortController();
  const agent = new VmAgent(config);
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      // A second signal: the user means it.
      process.stderr.write(`vmdb-agent: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    process.stdout.write(`${new Date().toISOString()} vmdb-agent[${config.instanceID}] received ${signal}; stopping\n`);
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const outcome = await agent.run(controller.signal);
  if (outcome.reason === 'halted' && outcome.haltCommand && !outcome.haltCommand.ok) return 1;
  return 0;
}

main().then(
  // Exit explicitly: idle keep-alive connections must not hold the process after the agent is done.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`vmdb-agent: unexpected error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
