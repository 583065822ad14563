/**
 * The `jwt` engine over real HTTP, on both store engines (issue 15): an admin pins the engine key,
 * configures the engine and a policy in the signed log; a member device gets ES256 tokens that jose
 * verifies through the JWKS and discovery the distant vault serves; what the policy does not give is
 * refused; a non-admin cannot configure an engine (the server refuses the commit). Signing keys
 * rotate with the next key published before it signs, and an old key stays published while its
 * tokens live. The server's clock is the test's, moved forward.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Replica } from '../../src/background/sync/replica.ts';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import { type EntryBody, nextEntry, signEntry } from '../../src/core/sync/log.ts';
import { FileKeyProvider } from '../../src/server/kms/file-provider.ts';
import type { Store } from '../../src/server/store.ts';
import { engineVault } from '../harness/engines.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { device, login, post } from '../harness/sync.ts';
import { type Engine, openStore, type RunningServer, startVaultServer } from '../harness/vault-server.ts';

const AUDIENCE = 'https://api.fake.example';
let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

describe.each<Engine>(['sqlite', 'postgres'])('the jwt engine on %s', (engine) => {
  let store: Store;
  let srv: RunningServer;
  let offset = 0;
  const now = () => Date.now() + offset;
  let admin: VaultClient;
  let member: VaultClient;
  let outsider: VaultClient;
  let replica: Replica;
  let base: string;

  beforeAll(async () => {
    store = await openStore(engine, pg.url);
    const kms = new FileKeyProvider(join(mkdtempSync(join(tmpdir(), 'keyhole-jwt-')), 'keys.json'), { create: true });
    await kms.init();
    srv = await startVaultServer(store, { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000, clockSkewMs: 3_600_000 }, { kms, now });
    [member, outsider] = await Promise.all([device(srv.origin, 'agent'), device(srv.origin, 'stranger')]);
    ({ admin, replica } = await engineVault(
      srv.origin,
      (await kms.status()).engineKey,
      () => [
        {
          type: 'engine.config',
          engine: 'api-tokens',
          kind: 'jwt',
          config: { audience: AUDIENCE, rotationSeconds: 60, tokenMaxSeconds: 30, roles: { reader: { scope: 'orders:read' } } },
        },
        { type: 'engine.policy', engine: 'api-tokens', policy: { role: 'reader', members: [member.device.public.id], maxTtlSeconds: 20 } },
      ],
      [member],
    ));
    base = `${srv.origin}/v1/vaults/${replica.vault}/engines/api-tokens`;
  });
  afterAll(async () => {
    await srv?.close();
  });

  const ask = async (who: VaultClient, body: unknown, path = base) =>
    post(srv.origin, `${path.slice(srv.origin.length)}/token`, body, await login(srv.origin, who));
  const jwks = async () => (await (await fetch(`${base}/jwks.json`)).json()) as { keys: { kid: string }[] };
  const verify = async (token: string, keys: { keys: unknown[] }) =>
    jwtVerify(token, createLocalJWKSet(keys as never), { issuer: base, audience: AUDIENCE, currentDate: new Date(now()) });

  it('a member in the policy gets an ES256 token that verifies through the served JWKS and discovery', async () => {
    const discovery = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe(base);
    expect(discovery.jwks_uri).toBe(`${base}/jwks.json`);
    const r = await ask(member, { role: 'reader', ttlSeconds: 3600 });
    expect(r.status).toBe(200);
    const { token, ttlSeconds } = (await r.json()) as { token: string; ttlSeconds: number };
    expect(ttlSeconds).toBe(20); // capped at the policy's maximum
    const { payload, protectedHeader } = await verify(token, await jwks());
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: member.device.public.id, scope: 'orders:read', aud: AUDIENCE, iss: base });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(20);
    expect(typeof payload.jti).toBe('string');
  });

  it('refuses what the policy does not give, and answers strangers as if nothing were there', async () => {
    expect((await ask(admin, { role: 'reader' })).status).toBe(403); // a member, but not in the policy
    expect((await ask(member, { role: 'writer' })).status).toBe(403);
    expect((await ask(outsider, { role: 'reader' })).status).toBe(404);
    expect((await ask(member, { role: 'reader' }, `${srv.origin}/v1/vaults/${replica.vault}/engines/nope`)).status).toBe(404);
    expect((await post(srv.origin, `${base.slice(srv.origin.length)}/token`, { role: 'reader' })).status).toBe(401);
    expect((await ask(member, { role: 'Bad Role' })).status).toBe(400);
    expect((await ask(member, { role: 'reader', ttlSeconds: -5 })).status).toBe(400);
  });

  it('a member who is not an admin cannot configure an engine: the server refuses the commit', async () => {
    // signed by the member itself and sent as raw HTTP: the client's own check is not what stops it
    const { Replica } = await import('../../src/background/sync/replica.ts');
    const theirs = new Replica(replica.vault);
    await member.pull(theirs);
    const state = theirs.membership;
    if (!state) throw new Error('no state');
    const body: EntryBody = { type: 'engine.policy', engine: 'api-tokens', policy: { role: 'reader', members: ['*'], maxTtlSeconds: 30 } };
    const entry = await signEntry(nextEntry(state, member.device.public.id, body), member.device.sign);
    const r = await post(
      srv.origin,
      `/v1/vaults/${replica.vault}/commits`,
      { expect: theirs.head, entries: [entry] },
      await login(srv.origin, member),
    );
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('bad-membership');
    expect((await ask(admin, { role: 'reader' })).status).toBe(403); // the policy is as the admin signed it
  });

  it('an admin’s configuration that does not hold is refused at commit, saying why, and nothing of it lands', async () => {
    const refusal = (body: EntryBody) =>
      admin.push(replica, [{ body }]).then(
        () => 'landed',
        (e: unknown) => (e as Error).message,
      );
    expect(
      await refusal({ type: 'engine.policy', engine: 'api-tokens', policy: { role: 'reader', members: ['*'], maxTtlSeconds: 31 } }),
    ).toBe("bad-engine-config: engine api-tokens: role reader: maxTtlSeconds 31 is above the engine's tokenMaxSeconds 30");
    expect(await refusal({ type: 'engine.config', engine: 'api-tokens', kind: 'jwt', config: { rotationSeconds: 60 } })).toBe(
      'bad-engine-config: jwt engine: audience is required',
    );
    expect((await ask(admin, { role: 'reader' })).status).toBe(403); // the policy and the configuration are as they were
    expect((await ask(member, { role: 'reader' })).status).toBe(200);
  });

  it('rotates: the next key is published before it signs; an old key stays while its tokens live, then goes', async () => {
    const before = await jwks();
    expect(before.keys).toHaveLength(2); // the current key and the next one
    const first = (await (await ask(member, { role: 'reader' })).json()) as { token: string };
    const firstKid = decodeProtectedHeader(first.token).kid;
    offset += 61_000; // the next key's turn
    const second = (await (await ask(member, { role: 'reader' })).json()) as { token: string };
    const secondKid = decodeProtectedHeader(second.token).kid;
    expect(secondKid).not.toBe(firstKid);
    expect(before.keys.map((k) => k.kid)).toContain(secondKid); // it was published a rotation ahead
    const during = await jwks();
    expect(during.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([firstKid, secondKid]));
    expect(during.keys).toHaveLength(3); // the old, the current, and a new next
    await verify(second.token, during);
    offset += 31_000; // every token of the old key has expired
    const after = await jwks();
    expect(after.keys.map((k) => k.kid)).not.toContain(firstKid);
    expect(after.keys.map((k) => k.kid)).toContain(secondKid);
  });

  it('a device removed from the vault is refused, as a stranger is', async () => {
    const leaving = await device(srv.origin, 'leaving');
    await admin.push(replica, [{ body: { type: 'member.add', device: leaving.device.public } }]);
    await admin.push(replica, [
      {
        body: {
          type: 'engine.policy',
          engine: 'api-tokens',
          policy: { role: 'reader', members: [member.device.public.id, leaving.device.public.id], maxTtlSeconds: 20 },
        },
      },
    ]);
    expect((await ask(leaving, { role: 'reader' })).status).toBe(200);
    await admin.push(replica, [{ body: { type: 'member.remove', device: leaving.device.public.id } }]);
    expect((await ask(leaving, { role: 'reader' })).status).toBe(404);
    expect((await ask(member, { role: 'reader' })).status).toBe(200);
  });
});
