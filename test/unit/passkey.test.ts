/**
 * Passkey unlock in the worker (issue 17, item 3), with the authenticator's PRF output played by
 * random bytes: the browser ceremony itself is tested with Chromium's virtual authenticator
 * (test/e2e/passkey.test.ts).
 */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openKeyholeDB } from '../../src/background/db.ts';
import { VaultService } from '../../src/background/vault/vault-service.ts';
import { randomBytes, toBase64 } from '../../src/core/bytes.ts';
import { openRootWithPasskey, sealRootForPasskey } from '../../src/core/vault/passkey.ts';
import { memorySession } from '../harness/session.ts';

const PASS = 'a long enough passphrase (FAKE)';
const ID = 'cGFzc2tleS1vbmUtRkFLRQ'; // base64url, as WebAuthn gives credential ids
const b64 = (n = 32) => toBase64(randomBytes(n));

async function setup() {
  const db = await openKeyholeDB(`kh-${crypto.randomUUID()}`);
  const clock = { t: 1_700_000_000_000 };
  const vault = new VaultService(db, memorySession(), 'test', () => clock.t);
  await vault.create(PASS, 'pbkdf2-sha256');
  await vault.createSecret({
    name: 'openai',
    value: 'sk-FAKE-passkey',
    rule: { hosts: ['api.openai.com'], header: 'Authorization', template: 'Bearer {value}' },
  } as never);
  return { db, vault, clock };
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code?: string; message?: string }) => e.code ?? 'no code',
  );

describe('passkey unlock', () => {
  it('a passkey added with the passphrase unlocks the vault with its PRF output, and the passphrase still does', async () => {
    const { vault } = await setup();
    const [salt, prf] = [b64(), b64()];
    const list = await vault.addPasskey(PASS, { id: ID, name: 'Laptop key', salt, prf });
    expect(list).toEqual([{ id: ID, name: 'Laptop key', createdAt: 1_700_000_000_000, salt }]);
    await vault.lock();
    // listed while locked: the page needs ids and salts to ask the authenticator
    expect((await vault.listPasskeys()).map((p) => p.id)).toEqual([ID]);
    expect((await vault.unlockWithPasskey(ID, prf)).state).toBe('unlocked');
    expect((await vault.listSecrets()).secrets.map((s) => s.name)).toEqual(['openai']);
    await vault.lock();
    expect((await vault.unlock(PASS)).state).toBe('unlocked');
  });

  it('another PRF output fails as wrong-passkey and counts toward the same delay as wrong passphrases', async () => {
    const { vault, db } = await setup();
    const prf = b64();
    await vault.addPasskey(PASS, { id: ID, name: 'Laptop key', salt: b64(), prf });
    await vault.lock();
    expect(await errorOf(vault.unlockWithPasskey(ID, b64()))).toBe('wrong-passkey');
    expect((await db.get('throttle', 'unlock'))?.failures).toBe(1);
    expect(await errorOf(vault.unlock('not the passphrase FAKE'))).toBe('wrong-passphrase');
    expect((await db.get('throttle', 'unlock'))?.failures).toBe(2);
    // under the delay even the right passkey waits
    expect(await errorOf(vault.unlockWithPasskey(ID, prf))).toBe('throttled');
    expect((await vault.status()).state).toBe('locked');
  });

  it('a removed passkey fails clearly; an unknown one the same way', async () => {
    const { vault } = await setup();
    const prf = b64();
    await vault.addPasskey(PASS, { id: ID, name: 'Laptop key', salt: b64(), prf });
    expect(await vault.removePasskey(ID)).toEqual([]);
    await vault.lock();
    const e = await vault.unlockWithPasskey(ID, prf).catch((x: { code: string; message: string }) => x);
    expect(e).toMatchObject({ code: 'wrong-passkey', message: expect.stringContaining('removed') });
    expect(await errorOf(vault.unlockWithPasskey('b3RoZXItRkFLRQ', prf))).toBe('wrong-passkey');
  });

  it('adding needs the right passphrase and an unlocked vault, and bad input changes nothing', async () => {
    const { vault, db } = await setup();
    expect(await errorOf(vault.addPasskey('not the passphrase FAKE', { id: ID, name: 'k', salt: b64(), prf: b64() }))).toBe(
      'wrong-passphrase',
    );
    expect(await errorOf(vault.addPasskey(PASS, { id: ID, name: 'k', salt: b64(16), prf: b64() }))).toBe('bad-input');
    expect(await errorOf(vault.addPasskey(PASS, { id: ID, name: 'k', salt: b64(), prf: 'not base64 at all!' }))).toBe('bad-input');
    expect(await errorOf(vault.addPasskey(PASS, { id: 'has spaces', name: 'k', salt: b64(), prf: b64() }))).toBe('bad-input');
    expect(await errorOf(vault.addPasskey(PASS, { id: ID, name: 'line\nbreak', salt: b64(), prf: b64() }))).toBe('bad-input');
    expect(await db.count('passkeys')).toBe(0);
    await vault.lock();
    expect(await errorOf(vault.addPasskey(PASS, { id: ID, name: 'k', salt: b64(), prf: b64() }))).toBe('locked');
    expect(await errorOf(vault.unlockWithPasskey(ID, 'short'))).toBe('bad-input');
  });

  it('a passphrase change keeps the passkey working (the root is the same)', async () => {
    const { vault } = await setup();
    const prf = b64();
    await vault.addPasskey(PASS, { id: ID, name: 'Laptop key', salt: b64(), prf });
    await vault.changePassphrase(PASS, 'another long passphrase FAKE');
    await vault.lock();
    expect((await vault.unlockWithPasskey(ID, prf)).state).toBe('unlocked');
  });

  it('the sealed root is bound to its vault and its credential: moved to either, it does not open', async () => {
    const root = randomBytes(32);
    const prf = randomBytes(32);
    const vaultId = crypto.randomUUID();
    const stored = await sealRootForPasskey(root, prf, { vaultId, id: ID, name: 'k', salt: randomBytes(32), now: 1 });
    expect(await openRootWithPasskey(vaultId, stored, prf)).toEqual(root);
    const wrong = (p: Promise<unknown>) =>
      p.then(
        () => 'opened',
        (e: { code: string }) => e.code,
      );
    expect(await wrong(openRootWithPasskey(crypto.randomUUID(), stored, prf))).toBe('wrong-passkey');
    expect(await wrong(openRootWithPasskey(vaultId, { ...stored, id: 'b3RoZXItRkFLRQ' }, prf))).toBe('wrong-passkey');
    const flipped = Uint8Array.from(stored.wrappedRoot);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1;
    expect(await wrong(openRootWithPasskey(vaultId, { ...stored, wrappedRoot: flipped }, prf))).toBe('wrong-passkey');
  });
});
