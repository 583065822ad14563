/**
 * The key hierarchy (docs/key-handling.md):
 *
 *   passphrase --KDF--> KEK (AES-256-GCM, non-extractable)
 *   KEK wraps the vault root key (32 random bytes)
 *   root --HKDF-SHA-256(salt = vault id, info = purpose)--> purpose keys, all non-extractable:
 *     items key        AES-256-GCM: wraps per-item data keys, seals item metadata
 *     credentials key  AES-256-GCM: seals cached dynamic credentials (a separate store)
 *     audit key        HMAC-SHA-256: chains audit records
 *   each item's data key (AES-256-GCM) seals its value; destroying the item shreds the key.
 */
import { abytes, utf8, uuidToBytes } from '../bytes.ts';

export const ROOT_LENGTH = 32;

export type VaultKeys = {
  readonly items: CryptoKey;
  readonly credentials: CryptoKey;
  readonly audit: CryptoKey;
};

const AES: AesKeyAlgorithm = { name: 'AES-GCM', length: 256 };

/** Import raw KEK bytes as a non-extractable key. The caller wipes the bytes. */
export function importKek(bytes: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  abytes('kek', bytes, 32);
  return crypto.subtle.importKey('raw', bytes, AES, false, ['encrypt', 'decrypt']);
}

export function newRootBytes(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(ROOT_LENGTH));
}

export async function deriveVaultKeys(root: Uint8Array<ArrayBuffer>, vaultId: string): Promise<VaultKeys> {
  abytes('root', root, ROOT_LENGTH);
  const base = await crypto.subtle.importKey('raw', root, 'HKDF', false, ['deriveKey']);
  const salt = uuidToBytes(vaultId);
  const hkdf = (purpose: string): HkdfParams => ({ name: 'HKDF', hash: 'SHA-256', salt, info: utf8(`keyhole/v1/${purpose}`) });
  const [items, credentials, audit] = await Promise.all([
    crypto.subtle.deriveKey(hkdf('items'), base, AES, false, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']),
    crypto.subtle.deriveKey(hkdf('credentials'), base, AES, false, ['encrypt', 'decrypt']),
    crypto.subtle.deriveKey(hkdf('audit'), base, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify']),
  ]);
  return { items, credentials, audit };
}

/**
 * A synced vault's items key for one epoch, from that epoch's 32-byte vault key (core/crypto/share.ts).
 * The local root never leaves the device; the vault key is what member devices share.
 */
export async function deriveItemsKey(vaultKey: Uint8Array<ArrayBuffer>, vaultId: string): Promise<CryptoKey> {
  return (await fromVaultKey(vaultKey, vaultId))('vault-items', ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']);
}

/**
 * Non-extractable AES-256-GCM keys derived from a synced vault's key of one epoch: HKDF-SHA-256,
 * salt the vault id, info `keyhole/v1/<purpose>` (items, the team cache, the team audit).
 */
export async function fromVaultKey(
  vaultKey: Uint8Array<ArrayBuffer>,
  vaultId: string,
): Promise<(purpose: string, usages: KeyUsage[]) => Promise<CryptoKey>> {
  abytes('vault key', vaultKey, ROOT_LENGTH);
  const base = await crypto.subtle.importKey('raw', vaultKey, 'HKDF', false, ['deriveKey']);
  const salt = uuidToBytes(vaultId);
  return (purpose, usages) =>
    crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info: utf8(`keyhole/v1/${purpose}`) }, base, AES, false, usages);
}

/** A fresh data key. Extractable only so it can be wrapped once; it is dropped right after. */
export function newDataKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey(AES, true, ['encrypt', 'decrypt']) as Promise<CryptoKey>;
}

/** The per-unlock session key: non-extractable, kept in IndexedDB, deleted on lock. */
export function newSessionKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey(AES, false, ['encrypt', 'decrypt']) as Promise<CryptoKey>;
}
