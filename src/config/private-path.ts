import { lstatSync } from 'node:fs';

export type PrivatePathProblem = { problem: 'kind' } | { problem: 'owner'; owner: number; uid: number } | { problem: 'open'; mode: string };

/**
 * Why `path` is not a private file or folder of this user's: not that kind (a link counts as
 * neither), another user's, or open to others (mode in octal). Undefined when it is private.
 */
export function privatePathProblem(path: string, kind: 'file' | 'folder'): PrivatePathProblem | undefined {
  const stat = lstatSync(path);
  if (kind === 'file' ? !stat.isFile() : !stat.isDirectory()) return { problem: 'kind' };
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (uid !== undefined && stat.uid !== uid) return { problem: 'owner', owner: stat.uid, uid };
  if ((stat.mode & 0o077) !== 0) return { problem: 'open', mode: (stat.mode & 0o777).toString(8) };
  return undefined;
}
