/**
 * A vault key sent to one member device (a `key.wrap` log entry's `wrapped` field).
 *
 *   byte 0       format (1)
 *   1..65        ephemeral ECDH P-256 public key, raw uncompressed
 *   66..77       AES-GCM nonce
 *   78..125      the 32-byte vault key, AES-256-GCM sealed (with its tag)
 *
 * key = HKDF-SHA-256(ECDH(ephemeral, recipient), salt = ephemeral public key,
 *                    info = "keyhole/v1/key.wrap\n" || canonical({vault, epoch, to}))
 * and the same info is the associated data. So a wrapped key opens only for the device whose
 * id (the hash of its keys: its fingerprint) it names, only as that vault's key, and only for
 * that epoch. Who sent it is the log entry's signature's job.
 */

import { abytes, concat, fromBase64, randomBytes, toBase64, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';
import { CoreError } from '../errors.ts';
import type { DevicePublic } from '../sync/log.ts';
import type { DeviceKeys } from './device.ts';
import { type RecordContext, RecordKind } from './record.ts';

export const VAULT_KEY_LENGTH = 32;
const FORMAT = 1;
const POINT = 65;
const NONCE = 12;
const ECDH: EcKeyImportParams = { name: 'ECDH', namedCurve: 'P-256' };

/** Where a vault key belongs: the vault, the key epoch, and the recipient device id. */
export type WrapPlace = { readonly vault: string; readonly epoch: number; readonly to: string };

export function newVaultKey(): Uint8Array<ArrayBuffer> {
  return randomBytes(VAULT_KEY_LENGTH);
}

async function wrappingKey(shared: ArrayBuffer, salt: Uint8Array<ArrayBuffer>, info: Uint8Array<ArrayBuffer>, usage: KeyUsage) {
  const ikm = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info }, ikm, { name: 'AES-GCM', length: 256 }, false, [usage]);
}

const infoOf = (p: WrapPlace) => utf8(`keyhole/v1/key.wrap\n${canonicalJson({ vault: p.vault, epoch: p.epoch, to: p.to })}`);

export async function wrapVaultKey(key: Uint8Array<ArrayBuffer>, to: DevicePublic, place: Omit<WrapPlace, 'to'>): Promise<string> {
  abytes('vault key', key, VAULT_KEY_LENGTH);
  const recipient = await crypto.subtle.importKey('spki', fromBase64(to.ecdh), ECDH, false, []);
  const eph = (await crypto.subtle.generateKey(ECDH, false, ['deriveBits'])) as CryptoKeyPair;
  const ephPublic = new Uint8Array(await crypto.subtle.exportKey('raw', eph.publicKey));
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: recipient }, eph.privateKey, 256);
  const info = infoOf({ ...place, to: to.id });
  const k = await wrappingKey(shared, ephPublic, info, 'encrypt');
  const nonce = randomBytes(NONCE);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: info }, k, key));
  return toBase64(concat(new Uint8Array([FORMAT]), ephPublic, nonce, sealed));
}

/** The vault key, or CoreError 'decrypt-failed' (another recipient, vault or epoch; or tampered). */
export async function unwrapVaultKey(wrapped: string, me: DeviceKeys, place: Omit<WrapPlace, 'to'>): Promise<Uint8Array<ArrayBuffer>> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = fromBase64(wrapped);
  } catch {
    throw new CoreError('bad-record', 'wrapped key is not base64');
  }
  if (bytes.length !== 1 + POINT + NONCE + VAULT_KEY_LENGTH + 16 || bytes[0] !== FORMAT)
    throw new CoreError('bad-record', 'wrapped key malformed');
  const ephPublic = bytes.slice(1, 1 + POINT);
  const nonce = bytes.slice(1 + POINT, 1 + POINT + NONCE);
  const sealed = bytes.slice(1 + POINT + NONCE);
  const info = infoOf({ ...place, to: me.public.id });
  try {
    const eph = await crypto.subtle.importKey('raw', ephPublic, ECDH, false, []);
    const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: eph }, me.ecdh, 256);
    const k = await wrappingKey(shared, ephPublic, info, 'decrypt');
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: info }, k, sealed));
  } catch {
    throw new CoreError('decrypt-failed', 'the vault key does not open for this device, vault and epoch');
  }
}

/** Where a synced vault's key for one epoch is kept on a device: under the local items key. */
export function vaultKeyPlace(vault: string, epoch: number): RecordContext {
  return { kind: RecordKind.vaultKey, vaultId: vault, itemId: 'vault-key', epoch, version: 1 };
}
