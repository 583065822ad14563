/**
 * Passkey unlock: a second way to open the vault root, beside the passphrase (which stays the
 * recovery path). A WebAuthn credential's PRF output for a random per-passkey salt goes through
 * HKDF-SHA-256 into a non-extractable AES-256-GCM key, which seals the root as a
 * RecordKind.rootPasskey record bound to the vault and the credential. Only the authenticator
 * can give that PRF output again; the salt, credential id and sealed root stored here are useless
 * without it.
 */
import { abytes, utf8, uuidToBytes } from '../bytes.ts';
import { ROOT_LENGTH } from '../crypto/keys.ts';
import { type RecordContext, RecordKind } from '../crypto/record.ts';
import { openRecord, sealRecord } from '../crypto/seal.ts';
import { CoreError, isCoreError } from '../errors.ts';

/** the PRF output (WebAuthn's `prf.results.first`) and the salt it is asked for: 32 bytes each */
export const PRF_LENGTH = 32;
export const MAX_PASSKEYS = 10;
const MAX_CREDENTIAL_ID = 1023; // WebAuthn: credential ids are at most 1023 bytes
const MAX_NAME = 64;

/** One passkey's unlock path, as stored (IndexedDB `passkeys`): public data and one sealed record. */
export type StoredPasskey = {
  /** the credential id, base64url as WebAuthn's `PublicKeyCredential.id` */
  readonly id: string;
  readonly name: string;
  readonly createdAt: number;
  /** asked of the authenticator's PRF at unlock (the first input) */
  readonly salt: Uint8Array;
  /** the vault root under the passkey's key, a RecordKind.rootPasskey record */
  readonly wrappedRoot: Uint8Array;
};

function context(vaultId: string, id: string): RecordContext {
  return { kind: RecordKind.rootPasskey, vaultId, itemId: `passkey:${id}`, epoch: 1, version: 1 };
}

async function passkeyKey(prf: Uint8Array<ArrayBuffer>, vaultId: string): Promise<CryptoKey> {
  abytes('prf output', prf, PRF_LENGTH);
  const base = await crypto.subtle.importKey('raw', prf, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: uuidToBytes(vaultId), info: utf8('keyhole/v1/passkey-unlock') },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/** A credential id as WebAuthn gives it: base64url, 1 to 1023 bytes. */
export function checkCredentialId(id: unknown): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{2,1364}$/.test(id) || Math.floor((id.length * 3) / 4) > MAX_CREDENTIAL_ID)
    throw new CoreError('bad-input', 'a passkey credential id is base64url, at most 1023 bytes');
  return id;
}

export function checkPasskeyName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_NAME || /[\p{Cc}]/u.test(name))
    throw new CoreError('bad-input', `a passkey name is 1 to ${MAX_NAME} printable characters`);
  return name.trim();
}

/** The root sealed for one passkey. The caller wipes `root` and `prf`. */
export async function sealRootForPasskey(
  root: Uint8Array<ArrayBuffer>,
  prf: Uint8Array<ArrayBuffer>,
  p: { vaultId: string; id: string; name: string; salt: Uint8Array; now: number },
): Promise<StoredPasskey> {
  abytes('root', root, ROOT_LENGTH);
  abytes('salt', p.salt, PRF_LENGTH);
  const id = checkCredentialId(p.id);
  const name = checkPasskeyName(p.name);
  const wrappedRoot = await sealRecord(await passkeyKey(prf, p.vaultId), context(p.vaultId, id), root);
  return { id, name, createdAt: p.now, salt: p.salt, wrappedRoot };
}

/**
 * The root bytes from a passkey's PRF output, or CoreError 'wrong-passkey' when the output is not
 * the one the root was sealed under (another credential, another salt, a tampered record).
 */
export async function openRootWithPasskey(
  vaultId: string,
  stored: StoredPasskey,
  prf: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await openRecord(await passkeyKey(prf, vaultId), context(vaultId, stored.id), stored.wrappedRoot);
  } catch (e) {
    if (isCoreError(e, 'decrypt-failed')) throw new CoreError('wrong-passkey', 'this passkey does not open the vault');
    throw e;
  }
}
