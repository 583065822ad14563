import { describe, expect, it } from 'vitest';
import { fromHex, randomBytes, toHex } from '../../src/core/bytes.ts';
import { associatedData, encodeRecord, parseRecord, type RecordContext, RecordKind } from '../../src/core/crypto/record.ts';
import { openRecord, sealRecord } from '../../src/core/crypto/seal.ts';
import { isCoreError } from '../../src/core/errors.ts';
import vectors from '../vectors/record-v1.json' with { type: 'json' };

const importKey = (hex: string) => crypto.subtle.importKey('raw', fromHex(hex), 'AES-GCM', false, ['encrypt', 'decrypt']);
const ctxOf = (v: (typeof vectors.records)[number]): RecordContext => ({
  kind: v.kind as RecordKind,
  vaultId: vectors.vaultId,
  itemId: v.itemId,
  epoch: v.epoch,
  version: v.version,
});

describe('record format v1 vectors', () => {
  for (const v of vectors.records) {
    it(`${v.description}: associated data, parse/encode, open`, async () => {
      const bytes = fromHex(v.record);
      expect(toHex(associatedData(ctxOf(v)))).toBe(v.aad);
      const parsed = parseRecord(bytes);
      expect(parsed).toMatchObject({ kind: v.kind, epoch: v.epoch, version: v.version });
      expect(toHex(parsed.nonce)).toBe(v.nonce);
      expect(toHex(encodeRecord(parsed))).toBe(v.record); // re-encodes to the exact bytes
      const key = await importKey(vectors.key);
      expect(toHex(await openRecord(key, ctxOf(v), bytes))).toBe(v.plaintext);
    });

    it(`${v.description}: every truncation is refused`, () => {
      const bytes = fromHex(v.record);
      for (let n = 0; n < 40; n++) {
        expect(() => parseRecord(bytes.subarray(0, n))).toThrow(expect.objectContaining({ code: 'bad-record' }));
      }
    });
  }
});

describe('parseRecord refuses what is not a v1 record', () => {
  const good = fromHex(vectors.records[0]?.record ?? '');
  const mutate = (i: number, x: number) => {
    const b = good.slice();
    b[i] = x;
    return b;
  };
  it('bad magic', () => expect(() => parseRecord(mutate(0, 0))).toThrow(expect.objectContaining({ code: 'bad-record' })));
  it('other format version', () =>
    expect(() => parseRecord(mutate(2, 2))).toThrow(expect.objectContaining({ code: 'unsupported-version' })));
  it('unknown kind', () => expect(() => parseRecord(mutate(3, 99))).toThrow(expect.objectContaining({ code: 'bad-record' })));
  it('not bytes', () => expect(() => parseRecord('KH' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'bad-record' })));
});

describe('seal/open properties', () => {
  const vaultId = crypto.randomUUID();
  const base: RecordContext = { kind: RecordKind.itemValue, vaultId, itemId: 'item-1', epoch: 2, version: 5 };
  const newKey = () => crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']) as Promise<CryptoKey>;

  it('open undoes seal for random plaintexts and places', async () => {
    const key = await newKey();
    for (let i = 0; i < 50; i++) {
      const pt = randomBytes(i * 7);
      const ctx = { ...base, itemId: `i-${i}`, version: i, epoch: i * 3 };
      const rec = await sealRecord(key, ctx, pt);
      expect(toHex(await openRecord(key, ctx, rec))).toBe(toHex(pt));
    }
  });

  it('two seals of one plaintext differ (fresh nonce)', async () => {
    const key = await newKey();
    const pt = randomBytes(32);
    expect(toHex(await sealRecord(key, base, pt))).not.toBe(toHex(await sealRecord(key, base, pt)));
  });

  it('any flipped bit fails with a typed error naming the item', async () => {
    const key = await newKey();
    const rec = await sealRecord(key, base, randomBytes(20));
    for (let bit = 0; bit < rec.length * 8; bit++) {
      const t = rec.slice();
      t[bit >> 3] = (t[bit >> 3] as number) ^ (1 << (bit & 7));
      const err = await openRecord(key, base, t).catch((e: unknown) => e);
      expect(isCoreError(err), `bit ${bit}`).toBe(true);
      expect((err as { item?: string }).item).toBe('item-1');
    }
  });

  const swaps: [string, Partial<RecordContext>][] = [
    ['vault id', { vaultId: crypto.randomUUID() }],
    ['item id', { itemId: 'item-2' }],
    ['item version', { version: 6 }],
    ['key epoch', { epoch: 3 }],
    ['kind', { kind: RecordKind.itemMeta }],
  ];
  for (const [what, change] of swaps) {
    it(`a record moved to another ${what} fails`, async () => {
      const key = await newKey();
      const rec = await sealRecord(key, base, randomBytes(16));
      await expect(openRecord(key, { ...base, ...change }, rec)).rejects.toMatchObject({ code: 'decrypt-failed' });
    });
  }

  it('a record whose header is rewritten to the new place still fails (AAD binds it)', async () => {
    const key = await newKey();
    const rec = await sealRecord(key, base, randomBytes(16));
    const moved = rec.slice();
    new DataView(moved.buffer).setUint32(8, 6); // claim version 6
    await expect(openRecord(key, { ...base, version: 6 }, moved)).rejects.toMatchObject({ code: 'decrypt-failed' });
  });

  it('the wrong key fails', async () => {
    const rec = await sealRecord(await newKey(), base, randomBytes(16));
    await expect(openRecord(await newKey(), base, rec)).rejects.toMatchObject({ code: 'decrypt-failed' });
  });
});
