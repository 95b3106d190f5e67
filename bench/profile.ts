/**
 * CPU profiles of one benchmark phase (V8's sampling profiler through the inspector, in this
 * process only), and a summary of where the time went: by package or source folder, and by function.
 *
 *   node dist/bench/profile.js <file.cpuprofile> [--top N]
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Runs `fn` under the profiler and writes the profile to `file`. */
export async function profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  }
}

/** Where a frame's code lives: a package, a folder of this project, node's own code, or V8's. */
function place(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const own = /\/dist\/([^/]+(?:\/[^/]+)?)\//.exec(url);
  return own ? own[1] : url;
}

export function summariseProfile(profile: CpuProfile, top = 25) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  // Each sample's delta is the time up to it; a profile without samples falls back to hit counts.
  if (profile.samples && profile.timeDeltas) {
    profile.samples.forEach((id, i) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas![i] ?? 0) / 1000));
  } else {
    const perHit = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0));
    for (const n of profile.nodes) selfMs.set(n.id, (n.hitCount ?? 0) * perHit);
  }
  const totalMs = [...selfMs.values()].reduce((a, b) => a + b, 0);
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const { callFrame } = byId.get(id)!;
    const where = place(callFrame.url, callFrame.functionName);
    byPlace.set(where, (byPlace.get(where) ?? 0) + ms);
    const name = `${callFrame.functionName || '(anonymous)'} ${callFrame.url ? `${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}` : ''}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  }
  const share = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), percent: Number(((100 * ms) / totalMs).toFixed(1)) }));
  return { totalMs: Math.round(totalMs), byPlace: share(byPlace), byFunction: share(byFunction) };
}

if (require.main === module) {
  const [file, flag, n] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/profile.js <file.cpuprofile> [--top N]');
    process.exit(2);
  }
  const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, flag === '--top' ? Number(n) : 25);
  console.log(JSON.stringify(summary, null, 2));
}
