import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { INSTANCE_STATES } from '../entities/states';

// The rules of the tree's layout (README, "Layout"), read from the sources themselves.
const ROOT = join(__dirname, '..', '..');
const CODE = ['src', 'activities', 'workflows', 'entities'];
/** Frozen: v1 runs replay it, so it keeps its own words (workflows/lifecycle-v1.ts). */
const FROZEN = new Set(['workflows/lifecycle-v1.ts']);

function sourcesUnder(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
    }
  };
  walk(join(ROOT, folder));
  return out;
}

const files = CODE.flatMap(sourcesUnder);
const rel = (file: string) => relative(ROOT, file).split('\\').join('/');
const text = new Map(files.map((file) => [file, readFileSync(file, 'utf8')]));

/** The project files a file imports (static imports, re-exports, require and import() of relative paths). */
function importsOf(file: string): string[] {
  const found: string[] = [];
  for (const match of text.get(file)!.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]*|\.\.?)['"]/g)) {
    const base = resolve(dirname(file), match[1]);
    const target = [`${base}.ts`, join(base, 'index.ts')].find((candidate) => existsSync(candidate));
    if (target) found.push(target);
  }
  return found;
}

describe('layout', function () {
  it('no import circles in src/, activities/, workflows/ and entities/', function () {
    const graph = new Map(files.map((file) => [file, importsOf(file)]));
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      path.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === 'open') circles.push([...path.slice(path.indexOf(next)), next].map(rel).join(' -> '));
        else if (!state.has(next)) visit(next);
      }
      path.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (!state.has(file)) visit(file);
    assert.deepEqual(circles, []);
  });

  it('SQL is written in src/db/ alone (and the migrations)', function () {
    const sql = /\b(SELECT\s+[\w`*(]|INSERT\s+(OR\s+\w+\s+|IGNORE\s+)?INTO|DELETE\s+FROM|UPDATE\s+`)|\.executor\b/;
    const outside = files.filter((file) => !rel(file).startsWith('src/db/') && !rel(file).startsWith('entities/migrations/') && sql.test(text.get(file)!));
    assert.deepEqual(outside.map(rel), []);
  });

  it('entities/states.ts is the one place that groups instance states and says what a VM is told', function () {
    const name = `'(?:${INSTANCE_STATES.join('|')})'`;
    const group = new RegExp(`\\[\\s*${name}\\s*,\\s*${name}|\\(\\s*\\[\\s*${name}\\s*,|${name}\\s*\\|\\|[^\\n]*===\\s*${name}`);
    const spelled = files.filter((file) => rel(file) !== 'entities/states.ts' && !FROZEN.has(rel(file)) && group.test(text.get(file)!));
    assert.deepEqual(spelled.map(rel), [], 'use the named groups and predicates of entities/states.ts');
    const directives = files.filter((file) => /type Directive\s*=/.test(text.get(file)!)).map(rel);
    assert.deepEqual(directives, ['entities/states.ts']);
  });

  it('src/ is grouped by concern: only the entry points stay at its top', function () {
    const top = readdirSync(join(ROOT, 'src')).filter((name) => name.endsWith('.ts'));
    assert.deepEqual(top.sort(), ['demo.ts', 'healthcheck.ts', 'index.ts', 'run-worker.ts', 'start.ts']);
  });
});
