/**
 * Envelope encryption of engine records (issue 15): one fresh data key per record version,
 * AES-256-GCM over the record, the data key wrapped by the key provider's current master key. The
 * associated data of both binds the vault, the engine, the record and its version, so a record
 * cannot be moved to another name or replayed as another version. Rotation re-wraps the data key
 * only; the record's ciphertext stays as it is.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type KeyProvider, KmsError, type WrappedKey } from './provider.ts';

export type RecordPlace = { readonly vault: string; readonly engine: string; readonly record: string; readonly version: number };
export type SealedRecord = { readonly v: 1; readonly key: WrappedKey; readonly iv: string; readonly data: string };

/** The associated data: length-prefixed parts, so no choice of names can collide with another. */
export function recordAad(p: RecordPlace): Uint8Array {
  const parts = ['keyhole/v1/engine-record', p.vault, p.engine, p.record, String(p.version)].map((s) => Buffer.from(s, 'utf8'));
  return Buffer.concat(parts.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));
}

export async function sealEngineRecord(kms: KeyProvider, place: RecordPlace, plaintext: Uint8Array): Promise<SealedRecord> {
  const aad = recordAad(place);
  const dataKey = randomBytes(32);
  try {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', dataKey, iv).setAAD(aad);
    const data = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    return { v: 1, key: await kms.wrapDataKey(dataKey, aad), iv: iv.toString('base64'), data: data.toString('base64') };
  } finally {
    dataKey.fill(0);
  }
}

export async function openEngineRecord(kms: KeyProvider, place: RecordPlace, sealed: SealedRecord): Promise<Uint8Array> {
  const aad = recordAad(place);
  const dataKey = Buffer.from(await kms.unwrapDataKey(sealed.key, aad));
  try {
    const all = Buffer.from(sealed.data, 'base64');
    const d = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(sealed.iv, 'base64')).setAAD(aad);
    d.setAuthTag(all.subarray(all.length - 16));
    return new Uint8Array(Buffer.concat([d.update(all.subarray(0, all.length - 16)), d.final()]));
  } catch {
    throw new KmsError('unwrap-failed', 'record');
  } finally {
    dataKey.fill(0);
  }
}

/** The same record with its data key wrapped under the current master key (unchanged if it already is). */
export async function rewrapEngineRecord(kms: KeyProvider, place: RecordPlace, sealed: SealedRecord): Promise<SealedRecord> {
  const current = (await kms.status()).masterKey;
  if (sealed.key.keyId === current) return sealed;
  const aad = recordAad(place);
  const dataKey = await kms.unwrapDataKey(sealed.key, aad);
  try {
    return { ...sealed, key: await kms.wrapDataKey(dataKey, aad) };
  } finally {
    dataKey.fill(0);
  }
}
