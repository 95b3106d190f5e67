import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newSecret } from '../auth/tokens';
import { privatePathProblem } from './private-path';

export interface GeneratedSecrets {
  tokenSecret: string;
  adminToken: string;
}

/**
 * The secrets `npm start` makes on its first start and keeps in `<dir>/secrets.json`, mode 0600.
 * The file appears whole or not at all (written aside, then linked in, which fails if it exists),
 * and an existing one is used only if it is a regular file of ours that nobody else can read.
 */
export function loadOrCreateSecrets(dir: string): GeneratedSecrets {
  const file = join(dir, 'secrets.json');
  const made = { tokenSecret: newSecret(), adminToken: newSecret() };
  const aside = `${file}.new-${randomBytes(6).toString('hex')}`;
  writeFileSync(aside, `${JSON.stringify(made, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(aside, file);
    return made;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(aside);
  }
  return readPrivate(file);
}

function readPrivate(file: string): GeneratedSecrets {
  const found = privatePathProblem(file, 'file');
  if (found?.problem === 'kind') throw new Error(`${file} is not a regular file: remove it, and a new one is made at the next start`);
  if (found?.problem === 'owner') throw new Error(`${file} belongs to uid ${found.owner}, not to this user (${found.uid}): refusing its secrets`);
  if (found?.problem === 'open') throw new Error(`${file} can be read by others (mode ${found.mode}): run chmod 600 ${file}, or remove it to make new secrets`);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<GeneratedSecrets>;
  if (typeof parsed.tokenSecret !== 'string' || typeof parsed.adminToken !== 'string') throw new Error(`${file} lacks tokenSecret or adminToken`);
  return { tokenSecret: parsed.tokenSecret, adminToken: parsed.adminToken };
}
