import { strict as assert } from 'node:assert';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateSecrets } from '../src/config/secrets-file';

describe("npm start's secrets file", function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'vmdb-secrets-'));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('is made once, whole, mode 0600, and read back the same at the next start', function () {
    const first = loadOrCreateSecrets(dir);
    assert.match(first.tokenSecret, /.{32,}/);
    assert.notEqual(first.tokenSecret, first.adminToken);
    assert.equal(statSync(join(dir, 'secrets.json')).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateSecrets(dir), first);
    assert.deepEqual(readdirSync(dir), ['secrets.json'], 'nothing left aside');
  });

  it('is refused when others can read it, with the command that fixes it', function () {
    loadOrCreateSecrets(dir);
    chmodSync(join(dir, 'secrets.json'), 0o644);
    assert.throws(() => loadOrCreateSecrets(dir), /can be read by others \(mode 644\): run chmod 600 /);
  });

  it('is refused when it is a link planted in its place', function () {
    const elsewhere = join(dir, 'planted.json');
    writeFileSync(elsewhere, JSON.stringify({ tokenSecret: 'known', adminToken: 'known' }), { mode: 0o600 });
    symlinkSync(elsewhere, join(dir, 'secrets.json'));
    assert.throws(() => loadOrCreateSecrets(dir), /is not a regular file/);
  });
});
