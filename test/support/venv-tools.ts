import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');
const printed = new Map<string, string>();

/**
 * What one of the scripts/*-env.sh installers prints as `KEY=<path>`, the tool installed into its
 * project venv on first use (the installer is quick when it is there).
 */
export function venvTool(script: string, key: string): string {
  const known = printed.get(`${script} ${key}`);
  if (known) return known;
  const out = execFileSync('bash', [join(ROOT, 'scripts', script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const line = out.split('\n').find((l) => l.startsWith(`${key}=`));
  if (!line) throw new Error(`scripts/${script} printed no ${key}`);
  const path = line.slice(key.length + 1).trim();
  printed.set(`${script} ${key}`, path);
  return path;
}
