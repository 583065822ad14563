/**
 * AES-256-GCM over the record format. The one place that picks nonces and builds
 * associated data, so no caller can get either wrong.
 *
 * Nonces are 96 random bits. NIST SP 800-38D §8.3 caps random-nonce use at 2^32 messages per
 * key; every record here gets a fresh key or is one of a vault's few thousand under the
 * items key, far below that.
 */
import { randomBytes } from './bytes.ts';
import { CoreError } from './errors.ts';
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

/** Wrap an extractable AES key as a record; its raw bytes stay inside WebCrypto. */
export async function wrapKeyRecord(key: CryptoKey, wrappingKey: CryptoKey, ctx: RecordContext): Promise<Uint8Array<ArrayBuffer>> {
  const nonce = randomBytes(NONCE_LENGTH);
  const sealed = new Uint8Array(await crypto.subtle.wrapKey('raw', key, wrappingKey, gcm(ctx, nonce)));
  return encodeRecord({ kind: ctx.kind, epoch: ctx.epoch, version: ctx.version, nonce, sealed });
}

/** Unwrap straight into a non-extractable AES-GCM key: the raw bytes never reach JS. */
export async function unwrapKeyRecord(wrappingKey: CryptoKey, ctx: RecordContext, bytes: Uint8Array): Promise<CryptoKey> {
  const r = checkPlace(ctx, bytes);
  try {
    return await crypto.subtle.unwrapKey(
      'raw',
      new Uint8Array(r.sealed),
      wrappingKey,
      gcm(ctx, new Uint8Array(r.nonce)),
      { name: 'AES-GCM', length: 256 },
      false,
      ['encrypt', 'decrypt'],
    );
  } catch {
    throw new CoreError('decrypt-failed', 'record failed authentication', ctx.itemId);
  }
}

/** Wrap an extractable private key (pkcs8) as a record; its bytes stay inside WebCrypto. */
export async function wrapPrivateKeyRecord(key: CryptoKey, wrappingKey: CryptoKey, ctx: RecordContext): Promise<Uint8Array<ArrayBuffer>> {
  const nonce = randomBytes(NONCE_LENGTH);
  const sealed = new Uint8Array(await crypto.subtle.wrapKey('pkcs8', key, wrappingKey, gcm(ctx, nonce)));
  return encodeRecord({ kind: ctx.kind, epoch: ctx.epoch, version: ctx.version, nonce, sealed });
}

/** Unwrap a private key record straight into a non-extractable key of `alg`. */
export async function unwrapPrivateKeyRecord(
  wrappingKey: CryptoKey,
  ctx: RecordContext,
  bytes: Uint8Array,
  alg: EcKeyImportParams,
  usages: KeyUsage[],
): Promise<CryptoKey> {
  const r = checkPlace(ctx, bytes);
  try {
    return await crypto.subtle.unwrapKey(
      'pkcs8',
      new Uint8Array(r.sealed),
      wrappingKey,
      gcm(ctx, new Uint8Array(r.nonce)),
      alg,
      false,
      usages,
    );
  } catch {
    throw new CoreError('decrypt-failed', 'record failed authentication', ctx.itemId);
  }
}
