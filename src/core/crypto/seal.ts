/**
 * AES-256-GCM over the record format. The one place that picks nonces and builds
 * associated data, so no caller can get either wrong.
 *
 * Nonces are 96 random bits. NIST SP 800-38D §8.3 caps random-nonce use at 2^32 messages per
 * key; every record here gets a fresh key or is one of a vault's few thousand under the
 * items key, far below that.
 */
import { randomBytes } from '../bytes.ts';
import { CoreError } from '../errors.ts';
import { associatedData, encodeRecord, NONCE_LENGTH, parseRecord, type RecordContext } from './record.ts';

function gcm(ctx: RecordContext, nonce: Uint8Array<ArrayBuffer>): AesGcmParams {
  return { name: 'AES-GCM', iv: nonce, additionalData: associatedData(ctx), tagLength: 128 };
}

function checkPlace(ctx: RecordContext, bytes: Uint8Array) {
  const r = parseRecord(bytes, ctx.itemId);
  // The associated data would catch a mismatch too; checking first gives a clearer error.
  if (r.kind !== ctx.kind || r.epoch !== ctx.epoch || r.version !== ctx.version) {
    throw new CoreError('decrypt-failed', 'record does not belong here', ctx.itemId);
  }
  return r;
}

export async function sealRecord(key: CryptoKey, ctx: RecordContext, plaintext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const nonce = randomBytes(NONCE_LENGTH);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(gcm(ctx, nonce), key, plaintext));
  return encodeRecord({ kind: ctx.kind, epoch: ctx.epoch, version: ctx.version, nonce, sealed });
}

export async function openRecord(key: CryptoKey, ctx: RecordContext, bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const r = checkPlace(ctx, bytes);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(gcm(ctx, new Uint8Array(r.nonce)), key, new Uint8Array(r.sealed)));
  } catch {
    throw new CoreError('decrypt-failed', 'record failed authentication', ctx.itemId);
  }
}

/** What a wrapped key record holds and becomes when unwrapped (non-extractable, always). */
export type KeyShape = {
  readonly format: 'raw' | 'pkcs8';
  readonly alg: AesKeyAlgorithm | EcKeyImportParams;
  readonly usages: KeyUsage[];
};

/** An item's data key: raw AES-256-GCM. */
export const DATA_KEY: KeyShape = { format: 'raw', alg: { name: 'AES-GCM', length: 256 }, usages: ['encrypt', 'decrypt'] };

/** Wrap an extractable key (a data key, or a device's private key) as a record; its bytes stay inside WebCrypto. */
export async function wrapKeyRecord(
  key: CryptoKey,
  wrappingKey: CryptoKey,
  ctx: RecordContext,
  format: KeyShape['format'] = DATA_KEY.format,
): Promise<Uint8Array<ArrayBuffer>> {
  const nonce = randomBytes(NONCE_LENGTH);
  const sealed = new Uint8Array(await crypto.subtle.wrapKey(format, key, wrappingKey, gcm(ctx, nonce)));
  return encodeRecord({ kind: ctx.kind, epoch: ctx.epoch, version: ctx.version, nonce, sealed });
}

/** Unwrap straight into a non-extractable key of `shape`: the key bytes never reach JS. */
export async function unwrapKeyRecord(
  wrappingKey: CryptoKey,
  ctx: RecordContext,
  bytes: Uint8Array,
  shape: KeyShape = DATA_KEY,
): Promise<CryptoKey> {
  const r = checkPlace(ctx, bytes);
  try {
    return await crypto.subtle.unwrapKey(
      shape.format,
      new Uint8Array(r.sealed),
      wrappingKey,
      gcm(ctx, new Uint8Array(r.nonce)),
      shape.alg,
      false,
      shape.usages,
    );
  } catch {
    throw new CoreError('decrypt-failed', 'record failed authentication', ctx.itemId);
  }
}
