import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/core/bytes.ts';
import { deriveVaultKeys } from '../../src/core/crypto/keys.ts';
import { openSecretMeta, openSecretValue, type SecretMeta, type StoredSecret, sealSecret } from '../../src/core/vault/secrets.ts';
import { createVault, openVault, rewrapVault, type VaultHeader } from '../../src/core/vault/vault.ts';
import vectors from '../vectors/vault-v1.json' with { type: 'json' };

const headerOf = (h: (typeof vectors.vaults)[number]['header']): VaultHeader => ({ ...h, format: 1, wrappedRoot: fromHex(h.wrappedRoot) });
const storedOf = (s: typeof vectors.secret.stored): StoredSecret => ({
  ...s,
  meta: fromHex(s.meta),
  key: fromHex(s.key),
  value: fromHex(s.value),
});
const PBKDF2 = 'pbkdf2-sha256' as const;

describe('vault vectors (independent implementation)', () => {
  for (const v of vectors.vaults) {
    it(`${v.kdf.split('$')[0]}: the passphrase opens the root`, async () => {
      const root = await openVault(headerOf(v.header), vectors.passphrase);
      expect(toHex(root)).toBe(vectors.root);
    });
  }

  it('purpose keys, data key and value open through the whole chain', async () => {
    const v = vectors.vaults[0];
    if (!v) throw new Error('no vector');
    const root = await openVault(headerOf(v.header), vectors.passphrase);
    const keys = await deriveVaultKeys(root, v.header.vaultId);
    const stored = storedOf(vectors.secret.stored);
    expect(await openSecretMeta(keys, v.header.vaultId, stored)).toEqual(vectors.secret.meta);
    expect(await openSecretValue(keys, v.header.vaultId, stored)).toBe(vectors.secret.value);
  });
});

describe('vault header', () => {
  it('wrong passphrase gives wrong-passphrase and nothing else', async () => {
    const v = vectors.vaults[0];
    if (!v) throw new Error('no vector');
    await expect(openVault(headerOf(v.header), 'not the passphrase')).rejects.toMatchObject({ code: 'wrong-passphrase' });
  });

  it('a header edited to weaker KDF parameters does not open', async () => {
    const v = vectors.vaults[0];
    if (!v) throw new Error('no vector');
    const edited = { ...headerOf(v.header), kdf: v.kdf.replace('i=600000', 'i=600001') };
    await expect(openVault(edited, vectors.passphrase)).rejects.toMatchObject({ code: 'wrong-passphrase' });
  });

  it('create -> open gives the same root; change passphrase keeps the root and drops the old passphrase', async () => {
    const { header, root } = await createVault('first passphrase (FAKE)', { alg: PBKDF2 });
    expect(toHex(await openVault(header, 'first passphrase (FAKE)'))).toBe(toHex(root));
    const next = await rewrapVault(header, root, 'second passphrase (FAKE)');
    expect(next.vaultId).toBe(header.vaultId);
    expect(next.rootVersion).toBe(header.rootVersion + 1);
    expect(toHex(await openVault(next, 'second passphrase (FAKE)'))).toBe(toHex(root));
    await expect(openVault(next, 'first passphrase (FAKE)')).rejects.toMatchObject({ code: 'wrong-passphrase' });
  });

  it('refuses a header from an unknown format', async () => {
    const { header } = await createVault('p (FAKE)', { alg: PBKDF2 });
    await expect(openVault({ ...header, format: 2 as 1 }, 'p (FAKE)')).rejects.toMatchObject({ code: 'unsupported-version' });
  });
});

describe('secrets', () => {
  const meta: SecretMeta = {
    name: 'github-fake',
    rule: { hosts: ['api.github.com'], pathPrefixes: ['/repos/'], methods: ['GET'], header: 'Authorization', template: 'Bearer {value}' },
    notes: 'test',
    createdAt: 1,
    updatedAt: 2,
  };

  it('seal -> open round-trips; each item has its own data key', async () => {
    const { header, root } = await createVault('p (FAKE)', { alg: PBKDF2 });
    const keys = await deriveVaultKeys(root, header.vaultId);
    const a = await sealSecret(keys, { vaultId: header.vaultId, id: 'a', version: 1, epoch: 1 }, meta, 'ghp_FAKE_value_a');
    const b = await sealSecret(keys, { vaultId: header.vaultId, id: 'b', version: 1, epoch: 1 }, meta, 'ghp_FAKE_value_b');
    expect(await openSecretMeta(keys, header.vaultId, a)).toEqual(meta);
    expect(await openSecretValue(keys, header.vaultId, a)).toBe('ghp_FAKE_value_a');
    expect(await openSecretValue(keys, header.vaultId, b)).toBe('ghp_FAKE_value_b');
    // b's value under a's key: refused, because the data keys differ and the AAD names the item
    await expect(openSecretValue(keys, header.vaultId, { ...b, key: a.key })).rejects.toMatchObject({ code: 'decrypt-failed', item: 'b' });
  });

  it('swapping records between items or versions fails, naming the item', async () => {
    const { header, root } = await createVault('p (FAKE)', { alg: PBKDF2 });
    const keys = await deriveVaultKeys(root, header.vaultId);
    const place = { vaultId: header.vaultId, id: 'x', version: 1, epoch: 1 };
    const x1 = await sealSecret(keys, place, meta, 'FAKE-1');
    const x2 = await sealSecret(keys, { ...place, version: 2 }, meta, 'FAKE-2');
    const y = await sealSecret(keys, { ...place, id: 'y' }, meta, 'FAKE-3');
    await expect(openSecretValue(keys, header.vaultId, { ...x2, value: x1.value, key: x1.key })).rejects.toMatchObject({ item: 'x' });
    await expect(openSecretMeta(keys, header.vaultId, { ...x1, meta: y.meta })).rejects.toMatchObject({ code: 'decrypt-failed' });
    await expect(openSecretValue(keys, crypto.randomUUID(), x1)).rejects.toMatchObject({ code: 'decrypt-failed' });
  });

  it('refuses bad metadata and values with bad-input, without echoing them', async () => {
    const { header, root } = await createVault('p (FAKE)', { alg: PBKDF2 });
    const keys = await deriveVaultKeys(root, header.vaultId);
    const place = { vaultId: header.vaultId, id: 'z', version: 1, epoch: 1 };
    const err = await sealSecret(keys, place, meta, 'FAKE\r\nInjected: yes').catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'bad-input' });
    expect(String((err as Error).message)).not.toContain('FAKE');
    await expect(sealSecret(keys, place, { ...meta, name: '../etc' }, 'FAKE')).rejects.toMatchObject({ code: 'bad-input' });
  });
});
