import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/server';
import { VmTokenKeys, isVmToken, makeVmToken, newSecret, tokenKeyId } from '../src/auth/tokens';
import type { LifecycleClient } from '../src/temporal/lifecycle-client';
import { forceStatus, ok, onEveryBackend } from './support/backends';

const OLD = newSecret();
const NEW = newSecret();
const BEAT = { load: 1, jobs: 1, transferredFiles: 0, transferredBytes: 0, uptime: 60 };

/** A token as vmdb made them before key ids: `vm.<InstanceID>.<HMAC of the id>`, bound to no name. */
const legacyToken = (secret: string, instanceID: number) => `vm.${instanceID}.${createHmac('sha256', secret).update(`vm:${instanceID}`).digest('base64url')}`;

describe('VM token keys (src/auth/tokens.ts)', function () {
  it('a token carries its key id and holds for its instance and name only', function () {
    const keys = new VmTokenKeys([NEW, OLD]);
    const token = keys.make(42, 'vmdb-0a1b2c');
    assert.match(token, new RegExp(`^vm2\\.${tokenKeyId(NEW)}\\.42\\.[A-Za-z0-9_-]+$`));
    assert.ok(isVmToken(token));
    const claim = keys.read(token)!;
    assert.deepEqual([claim.instanceID, claim.keyId], [42, tokenKeyId(NEW)]);
    assert.ok(claim.boundTo('vmdb-0a1b2c'));
    assert.ok(!claim.boundTo('vmdb-0a1b2d'), 'another name');
    assert.equal(keys.read(token.replace('.42.', '.43.'))?.boundTo('vmdb-0a1b2c'), false, 'another id');
  });

  it('the previous secrets still check tokens; a secret left out of the ring does not', function () {
    const before = makeVmToken(OLD, 7, 'n');
    assert.ok(new VmTokenKeys([NEW, OLD]).read(before)?.boundTo('n'), 'rotation: the old secret is still accepted');
    assert.equal(new VmTokenKeys([NEW]).read(before), undefined, 'rotation done: the old secret is gone');
    assert.notEqual(tokenKeyId(NEW), tokenKeyId(OLD));
    assert.ok(!NEW.includes(tokenKeyId(NEW)), 'the key id is a digest, not a part of the secret');
  });

  it('malformed and forged tokens are refused', function () {
    const keys = new VmTokenKeys([NEW]);
    const good = keys.make(5, 'x');
    for (const token of ['vm2.', `vm2.${tokenKeyId(NEW)}.5`, `vm2.${tokenKeyId(NEW)}.5.`, `vm2.${tokenKeyId(NEW)}.x.sig`, `${good}.more`, `vm2.AAAAAAAA.5.${good.split('.')[3]}`, 'vm.5', 'vm.5.forged']) {
      const claim = keys.read(token);
      assert.ok(claim === undefined || !claim.boundTo('x'), token);
    }
    assert.ok(keys.read(legacyToken(NEW, 5))?.boundTo('any name'), 'a token made before key ids: accepted, bound to no name');
    assert.equal(keys.read(legacyToken(OLD, 5)), undefined);
  });
});

onEveryBackend('VM tokens at the API: bound to the instance, ended with it, rotated without a break', (fx) => {
  let app: FastifyInstance;
  const lifecycle = { heartbeatOf: async () => ({ OK: true, Value: { directive: 'ok' } }) } as unknown as LifecycleClient;

  before(async function () {
    // NEW signs new tokens; OLD's are still accepted (VMDB_TOKEN_SECRETS=NEW,OLD).
    app = await buildApi({ db: fx.db, lifecycle, operators: [], tokenSecret: NEW, previousTokenSecrets: [OLD], logger: false });
  });
  after(async () => app?.close());

  const beat = (instanceID: number, token: string) =>
    app.inject({ method: 'POST', url: `/api/v1/vms/${instanceID}/heartbeat`, headers: { authorization: `Bearer ${token}` }, payload: BEAT });

  async function liveInstance(name: string): Promise<number> {
    const id = ok(await fx.db.insertInstance(`u-${name}`, 'img', name, 'Site::ce', 'pod'));
    await forceStatus(fx.db, id, 'Running');
    return id;
  }

  it("a token of the current or a previous secret, for the instance's own name: accepted", async function () {
    const id = await liveInstance('tok-live');
    for (const secret of [NEW, OLD]) {
      const res = await beat(id, makeVmToken(secret, id, 'tok-live'));
      assert.deepEqual([res.statusCode, res.json()], [200, { directive: 'ok' }]);
    }
    assert.equal((await beat(id, legacyToken(OLD, id))).statusCode, 200, 'a token made before key ids');
  });

  it('a token made for another name, or signed with a secret the API no longer holds: 401', async function () {
    const id = await liveInstance('tok-named');
    for (const token of [makeVmToken(NEW, id, 'tok-other'), makeVmToken(newSecret(), id, 'tok-named'), legacyToken(newSecret(), id)]) {
      const res = await beat(id, token);
      assert.deepEqual([res.statusCode, res.json().error], [401, 'unauthorized']);
    }
  });

  it('once the instance is Halted or Error, its token is refused and the VM told to halt', async function () {
    for (const status of ['Halted', 'Error']) {
      const id = await liveInstance(`tok-${status}`);
      await forceStatus(fx.db, id, status);
      for (const token of [makeVmToken(NEW, id, `tok-${status}`), legacyToken(NEW, id)]) {
        for (const route of ['heartbeat', 'running', 'halting']) {
          const res = await app.inject({ method: 'POST', url: `/api/v1/vms/${id}/${route}`, headers: { authorization: `Bearer ${token}` }, payload: route === 'halting' ? { load: 0 } : route === 'running' ? {} : BEAT });
          assert.deepEqual([res.statusCode, res.json().error, res.json().state], [409, 'ended', 'halt'], `${status} ${route}`);
        }
        // Elsewhere the token is what it always was: a method no route has is 405, an operator route 403.
        const put = await app.inject({ method: 'PUT', url: `/api/v1/vms/${id}/heartbeat`, headers: { authorization: `Bearer ${token}` } });
        assert.equal(put.statusCode, 405);
        const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${token}` } });
        assert.equal(me.statusCode, 403);
      }
    }
  });
});
