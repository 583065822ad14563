/** The item blob that carries a sealed secret to the distant vault: staged and previous values travel with it. */
import { describe, expect, it } from 'vitest';
import { deriveVaultKeys } from '../../src/core/crypto/keys.ts';
import { decodeItemBlob, encodeItemBlob } from '../../src/core/sync/item-blob.ts';
import { openOtherValue, openSecretValue, sealSecret } from '../../src/core/vault/secrets.ts';

const VAULT = '00000000-0000-4000-8000-00000000b10b';
const rule = { hosts: ['api.example.com'], pathPrefixes: [], methods: [], header: 'Authorization', template: 'Bearer {value}' };

describe('item blobs', () => {
  it('round-trip a secret with a staged value, its expiry and its history; a value cannot stand in for another', async () => {
    const keys = await deriveVaultKeys(crypto.getRandomValues(new Uint8Array(32)), VAULT);
    const meta = {
      name: 'k',
      rule,
      notes: '',
      createdAt: 1,
      updatedAt: 2,
      expiresAt: 9_000_000_000_000,
      values: [
        { n: 1, state: 'previous' as const, createdAt: 1, destroyAt: 5 },
        { n: 2, state: 'current' as const, createdAt: 2 },
        { n: 3, state: 'staged' as const, createdAt: 2 },
      ],
    };
    const place = { vaultId: VAULT, id: 'item-1', version: 4, epoch: 1 };
    const s = await sealSecret(keys, place, meta, 'FAKE-current', [
      { n: 1, value: 'FAKE-previous', destroyAt: 5 },
      { n: 3, value: 'FAKE-staged' },
    ]);
    const back = decodeItemBlob(encodeItemBlob(s), 'item-1');
    expect(back.expiresAt).toBe(9_000_000_000_000);
    expect(back.others?.map((o) => [o.n, o.destroyAt])).toEqual([
      [1, 5],
      [3, undefined],
    ]);
    expect(await openSecretValue(keys, VAULT, back)).toBe('FAKE-current');
    expect(await openOtherValue(keys, VAULT, back, 3)).toBe('FAKE-staged');
    // value 1's ciphertext served as value 3: its associated data names 1, so it does not open
    const swapped = {
      ...back,
      others: back.others?.map((o) =>
        o.n === 3 ? { ...o, key: s.others?.[0]?.key as Uint8Array, value: s.others?.[0]?.value as Uint8Array } : o,
      ),
    };
    await expect(openOtherValue(keys, VAULT, swapped, 3)).rejects.toMatchObject({ code: 'decrypt-failed' });
    expect(() =>
      decodeItemBlob(
        new TextEncoder().encode(
          JSON.stringify({ f: 'keyhole-item/1', id: 'item-1', version: 1, epoch: 1, meta: '', key: '', value: '', others: 'x' }),
        ),
        'item-1',
      ),
    ).toThrow(/malformed/);
  });
});
