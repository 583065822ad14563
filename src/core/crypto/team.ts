/**
 * The team tier's keys and seals (issue 16). From a synced vault's key of one epoch (the 32 bytes
 * member devices share, core/crypto/share.ts), HKDF-SHA-256 (salt: the vault id) with a purpose
 * of its own derives:
 *
 *   team cache key   AES-256-GCM  "keyhole/v1/team-cache": minted credentials the team shares
 *   team audit key   AES-256-GCM  "keyhole/v1/team-audit": audit records the team reads
 *
 * neither of which is the items key, so a cached token never opens a secret, nor the reverse. A
 * member removed (a new epoch) cannot open what is sealed after.
 *
 * A shared credential is sealed with associated data binding the vault, the slot and the epoch,
 * and carries its own notAfter and issuedAt: what the server says of them is only a hint for its
 * sweep; the device believes the sealed ones.
 */

import { abytes, fromBase64, fromUtf8, randomBytes, toBase64, utf8, uuidToBytes } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';
import { CoreError } from '../errors.ts';
import { ROOT_LENGTH } from './keys.ts';

export type TeamKeys = { readonly epoch: number; readonly cache: CryptoKey; readonly audit: CryptoKey };

const AES: AesKeyAlgorithm = { name: 'AES-GCM', length: 256 };

export async function deriveTeamKeys(vaultKey: Uint8Array<ArrayBuffer>, vaultId: string, epoch: number): Promise<TeamKeys> {
  abytes('vault key', vaultKey, ROOT_LENGTH);
  const base = await crypto.subtle.importKey('raw', vaultKey, 'HKDF', false, ['deriveKey']);
  const derive = (purpose: string) =>
    crypto.subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: uuidToBytes(vaultId), info: utf8(`keyhole/v1/${purpose}`) },
      base,
      AES,
      false,
      ['encrypt', 'decrypt'],
    );
  const [cache, audit] = await Promise.all([derive('team-cache'), derive('team-audit')]);
  return { epoch, cache, audit };
}

/**
 * A minted credential as the team shares it. A rotating refresh token travels with the access
 * token it was minted beside (the newest, and the secret version that holds it): the device that
 * refreshes next spends that one, even before the log brings it the new version.
 */
export type SharedCredential = {
  readonly accessToken: string;
  readonly notAfter: number;
  readonly issuedAt: number;
  readonly scope?: string;
  readonly refreshToken?: string;
  readonly rtVersion?: number;
};

export type CachePlace = { readonly vault: string; readonly slot: string; readonly epoch: number };

const aad = (p: CachePlace) => utf8(`keyhole/v1/team-cache\n${canonicalJson({ vault: p.vault, slot: p.slot, epoch: p.epoch })}`);

/** The credential sealed for `place`: base64 of a 12-byte nonce and the AES-GCM ciphertext. */
export async function sealShared(key: CryptoKey, place: CachePlace, c: SharedCredential): Promise<string> {
  const iv = randomBytes(12);
  const plain = utf8(canonicalJson({ ...c }));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(place) }, key, plain));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return toBase64(out);
}

/** Opens what `sealShared` made for this place; CoreError 'decrypt-failed' for anything else. */
export async function openShared(key: CryptoKey, place: CachePlace, sealed: string): Promise<SharedCredential> {
  const fail = () => new CoreError('decrypt-failed', 'a team cache entry that does not open here');
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = fromBase64(sealed);
  } catch {
    throw fail();
  }
  if (bytes.length < 12 + 16) throw fail();
  let plain: Uint8Array;
  try {
    plain = new Uint8Array(
      await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.slice(0, 12), additionalData: aad(place) }, key, bytes.slice(12)),
    );
  } catch {
    throw fail();
  }
  const c = JSON.parse(fromUtf8(plain)) as Partial<SharedCredential>;
  if (typeof c.accessToken !== 'string' || typeof c.notAfter !== 'number' || typeof c.issuedAt !== 'number') throw fail();
  return {
    accessToken: c.accessToken,
    notAfter: c.notAfter,
    issuedAt: c.issuedAt,
    ...(typeof c.scope === 'string' ? { scope: c.scope } : {}),
    ...(typeof c.refreshToken === 'string' ? { refreshToken: c.refreshToken } : {}),
    ...(typeof c.rtVersion === 'number' ? { rtVersion: c.rtVersion } : {}),
  };
}

/** Where an audit record sits in the team audit: whose chain, which link, under which epoch's key. */
export type AuditPlace = { readonly vault: string; readonly device: string; readonly seq: number; readonly epoch: number };

const auditAad = (p: AuditPlace) =>
  utf8(`keyhole/v1/team-audit\n${canonicalJson({ vault: p.vault, device: p.device, seq: p.seq, epoch: p.epoch })}`);

/** An audit record (plain JSON, never a value: core/audit/audit.ts) sealed for its link. */
export async function sealAuditRecord(key: CryptoKey, place: AuditPlace, record: unknown): Promise<string> {
  const iv = randomBytes(12);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: auditAad(place) }, key, utf8(canonicalJson(record))),
  );
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return toBase64(out);
}

/** Opens a record sealed for exactly this link; CoreError 'decrypt-failed' otherwise (moved, changed, another key). */
export async function openAuditRecord(key: CryptoKey, place: AuditPlace, sealed: string): Promise<unknown> {
  try {
    const bytes = fromBase64(sealed);
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: bytes.slice(0, 12), additionalData: auditAad(place) },
      key,
      bytes.slice(12),
    );
    return JSON.parse(fromUtf8(new Uint8Array(plain)));
  } catch {
    throw new CoreError('decrypt-failed', 'a team audit record that does not open here');
  }
}
