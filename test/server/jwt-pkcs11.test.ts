/**
 * The jwt engine with its keys on an HSM (issue 15, PKCS#11 on SoftHSM2): tokens signed by the
 * token verify with jose through the served JWKS; the server restarts (its key provider reopened
 * on the same token) and keeps serving, with the same signing keys and engine key.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import { Pkcs11KeyProvider } from '../../src/server/kms/pkcs11-provider.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import { engineVault } from '../harness/engines.ts';
import { softhsmToken } from '../harness/softhsm.ts';
import { device, login, post } from '../harness/sync.ts';
import { type RunningServer, startVaultServer } from '../harness/vault-server.ts';

const AUDIENCE = 'https://hsm.fake.example';
const token = softhsmToken('kh-jwt-hsm');
const dir = mkdtempSync(join(tmpdir(), 'keyhole-jwt-hsm-'));
const limits = { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000 };
afterAll(() => token.remove());

async function serve(): Promise<{ srv: RunningServer; kms: Pkcs11KeyProvider }> {
  const kms = new Pkcs11KeyProvider(token);
  await kms.init();
  return { srv: await startVaultServer(openSqlite(dir), limits, { kms, sweepIntervalMs: 0 }), kms };
}

describe('the jwt engine on an HSM', () => {
  it('signs on the token, verifies with jose, and keeps serving after a restart', async () => {
    let { srv, kms } = await serve();
    const engineKey = (await kms.status()).engineKey;
    const member: VaultClient = await device(srv.origin, 'agent');
    const { vault } = await engineVault(
      srv.origin,
      engineKey,
      () => [
        { type: 'engine.config', engine: 'api', kind: 'jwt', config: { audience: AUDIENCE } },
        { type: 'engine.policy', engine: 'api', policy: { role: 'reader', members: ['*'], maxTtlSeconds: 300 } },
      ],
      [member],
    );
    const base = () => `${srv.origin}/v1/vaults/${vault}/engines/api`;
    const issue = async () => {
      const r = await post(srv.origin, `/v1/vaults/${vault}/engines/api/token`, { role: 'reader' }, await login(srv.origin, member));
      expect(r.status).toBe(200);
      return ((await r.json()) as { token: string }).token;
    };
    const verify = async (t: string) =>
      jwtVerify(t, createLocalJWKSet((await (await fetch(`${base()}/jwks.json`)).json()) as never), { issuer: base(), audience: AUDIENCE });

    const before = await issue();
    expect((await verify(before)).payload.sub).toBe(member.device.public.id);
    const kid = decodeProtectedHeader(before).kid as string;
    expect(kms.readableValue('signing', kid)).toBe(false); // the signing key cannot be read out

    await srv.close();
    await kms.close();
    ({ srv, kms } = await serve()); // restarted (a new origin: the issuer follows it)
    try {
      expect((await kms.status()).engineKey).toBe(engineKey);
      const after = await issue();
      expect(decodeProtectedHeader(after).kid).toBe(kid); // the same key, still on the token
      expect((await verify(after)).payload.aud).toBe(AUDIENCE);
    } finally {
      await srv.close();
      await kms.close();
    }
  });
});
