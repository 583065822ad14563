/** Vault keys sent to member devices, and device keys kept only wrapped (core/crypto/share.ts, core/crypto/device.ts). */
import { describe, expect, it } from 'vitest';
import { toBase64 } from '../../src/core/bytes.ts';
import { newDevice, openDevice, pairingCode, parsePairingCode, sealDevice } from '../../src/core/crypto/device.ts';
import { deriveVaultKeys, newRootBytes } from '../../src/core/crypto/keys.ts';
import { newVaultKey, unwrapVaultKey, wrapVaultKey } from '../../src/core/crypto/share.ts';
import { isCoreError } from '../../src/core/errors.ts';
import { importSigningPublic } from '../../src/core/sync/log.ts';
import { signLogin, verifyLogin } from '../../src/core/sync/login.ts';

const VAULT = '6f1c2a8e-0b3d-4c5e-9f70-112233445566';
const OTHER = '6f1c2a8e-0b3d-4c5e-9f70-665544332211';

describe('a vault key wrapped to a device', () => {
  it('opens for that device, vault and epoch only', async () => {
    const [bob, eve] = await Promise.all([newDevice('bob'), newDevice('eve')]);
    const key = newVaultKey();
    const wrapped = await wrapVaultKey(key, bob.public, { vault: VAULT, epoch: 2 });
    expect(await unwrapVaultKey(wrapped, bob, { vault: VAULT, epoch: 2 })).toEqual(key);

    const refused = async (p: Promise<unknown>) =>
      expect(
        await p.then(
          () => 'opened',
          (e) => isCoreError(e, 'decrypt-failed'),
        ),
      ).toBe(true);
    await refused(unwrapVaultKey(wrapped, eve, { vault: VAULT, epoch: 2 })); // another device
    await refused(unwrapVaultKey(wrapped, bob, { vault: VAULT, epoch: 1 })); // another epoch
    await refused(unwrapVaultKey(wrapped, bob, { vault: OTHER, epoch: 2 })); // another vault
    // Bob's keys under Eve's id: the id (fingerprint) is bound, not only the ECDH key
    await refused(unwrapVaultKey(wrapped, { ...bob, public: eve.public }, { vault: VAULT, epoch: 2 }));
    const bytes = Uint8Array.from(atob(wrapped), (c) => c.charCodeAt(0));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
    await refused(unwrapVaultKey(toBase64(bytes), bob, { vault: VAULT, epoch: 2 }));
  });

  it('refuses what is not a wrapped key with a typed error', async () => {
    const bob = await newDevice('bob');
    for (const bad of ['', 'not base64!', toBase64(new Uint8Array(126))]) {
      const e = await unwrapVaultKey(bad, bob, { vault: VAULT, epoch: 1 }).catch((x: unknown) => x);
      expect(isCoreError(e, 'bad-record') || isCoreError(e, 'decrypt-failed')).toBe(true);
    }
  });

  it('is fresh each time (an ephemeral key per wrap)', async () => {
    const bob = await newDevice('bob');
    const key = newVaultKey();
    const [a, b] = await Promise.all([0, 1].map(() => wrapVaultKey(key, bob.public, { vault: VAULT, epoch: 1 })));
    expect(a).not.toBe(b);
  });
});

describe('a device kept wrapped', () => {
  it('is stored only wrapped and opens non-extractable under the right key and place', async () => {
    const local = await deriveVaultKeys(newRootBytes(), VAULT);
    const fresh = await newDevice('laptop', { extractable: true });
    const sealed = await sealDevice(fresh, local.items, VAULT);
    // the stored form holds no usable key: pkcs8 import of it fails
    await expect(
      crypto.subtle.importKey('pkcs8', sealed.sign as Uint8Array<ArrayBuffer>, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']),
    ).rejects.toThrow();

    const opened = await openDevice(sealed, local.items, VAULT);
    expect(opened.sign.extractable).toBe(false);
    expect(opened.ecdh.extractable).toBe(false);
    await expect(crypto.subtle.exportKey('pkcs8', opened.sign)).rejects.toThrow();
    // it is the same device: it signs logins its public key verifies
    const claim = { origin: 'https://vault.example.test', device: fresh.public.id, nonce: 'n'.repeat(43), time: 1 };
    expect(await verifyLogin(claim, await signLogin(claim, opened.sign), await importSigningPublic(fresh.public.sign))).toBe(true);

    const other = await deriveVaultKeys(newRootBytes(), VAULT);
    expect(
      await openDevice(sealed, other.items, VAULT).then(
        () => 'opened',
        (e) => isCoreError(e, 'decrypt-failed'),
      ),
    ).toBe(true);
    expect(
      await openDevice(sealed, local.items, OTHER).then(
        () => 'opened',
        (e) => isCoreError(e, 'decrypt-failed'),
      ),
    ).toBe(true);
    const swapped = { ...sealed, sign: sealed.ecdh, ecdh: sealed.sign };
    expect(
      await openDevice(swapped, local.items, VAULT).then(
        () => 'opened',
        (e) => isCoreError(e, 'decrypt-failed'),
      ),
    ).toBe(true);
  });

  it('has a pairing code that round-trips to its id prefix', async () => {
    const d = await newDevice('phone');
    const code = pairingCode(d.public);
    expect(code).toMatch(/^[0-9A-F]{4}(-[0-9A-F]{4}){4}$/);
    expect(parsePairingCode(code.toLowerCase().replaceAll('-', ' '))).toBe(d.public.id.slice(0, 20));
    expect(parsePairingCode('1234-5678')).toBeNull();
    expect(parsePairingCode('ZZZZ-5678-9ABC-DEF0-1234')).toBeNull();
  });
});

describe('the recovery key text', () => {
  it('round-trips 160 bits through a readable, typo-resistant form, and refuses what is not one', async () => {
    const { formatRecoveryKey, newRecoverySecret, parseRecoveryKey, recoveryLookup } = await import('../../src/core/sync/recovery.ts');
    for (let i = 0; i < 50; i++) {
      const secret = newRecoverySecret();
      const text = formatRecoveryKey(secret);
      expect(text).toMatch(/^KH1(-[A-HJ-NP-Z2-9]{1,5}){7}$/);
      expect(parseRecoveryKey(text)).toEqual(secret);
      expect(parseRecoveryKey(` ${text.toLowerCase().replaceAll('-', ' ')} `)).toEqual(secret);
    }
    const max = formatRecoveryKey(new Uint8Array(20).fill(255));
    expect(parseRecoveryKey(max)).toEqual(new Uint8Array(20).fill(255));
    for (const bad of [
      '',
      'KH1-',
      'KH2-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAA',
      'KH1-00000-00000-00000-00000-00000-00000-000',
      'KH1-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZ',
    ])
      expect(parseRecoveryKey(bad)).toBeNull();
    // the lookup the server files it under is a hash: the same for the same key, nothing of it
    const secret = newRecoverySecret();
    expect(await recoveryLookup(secret)).toMatch(/^[0-9a-f]{64}$/);
    expect(await recoveryLookup(secret)).toBe(await recoveryLookup(new Uint8Array(secret)));
  });
});
