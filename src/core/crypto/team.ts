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

import { concat, fromBase64, fromUtf8, randomBytes, toBase64, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';
import { CoreError } from '../errors.ts';
import { fromVaultKey } from './keys.ts';

export type TeamKeys = { readonly epoch: number; readonly cache: CryptoKey; readonly audit: CryptoKey };

export async function deriveTeamKeys(vaultKey: Uint8Array<ArrayBuffer>, vaultId: string, epoch: number): Promise<TeamKeys> {
  const derive = await fromVaultKey(vaultKey, vaultId);
  const [cache, audit] = await Promise.all([derive('team-cache', ['encrypt', 'decrypt']), derive('team-audit', ['encrypt', 'decrypt'])]);
  return { epoch, cache, audit };
}

/** A minted credential as the team shares it, until its notAfter. */
export type SharedCredential = {
  readonly accessToken: string;
  readonly notAfter: number;
  readonly issuedAt: number;
  readonly scope?: string;
  /** when the team refreshes it: drawn once by the device that minted it, so the others agree */
  readonly refreshAt?: number;
};

/**
 * The newest refresh token of a rotating credential, and the version of the secret that holds
 * it. Kept apart from the access token (its own slot, `chainSlot`), because it must outlive it:
 * the next device to refresh spends this one even if the log has not brought it there yet.
 */
export type RefreshChain = { readonly refreshToken: string; readonly rtVersion: number };

/** The slot of a rotating credential's refresh-token chain, beside the slot of its access token. */
export const chainSlot = (slot: string) => `${slot}#rt`;

export type CachePlace = { readonly vault: string; readonly slot: string; readonly epoch: number };

const aad = (p: CachePlace) => utf8(`keyhole/v1/team-cache\n${canonicalJson({ vault: p.vault, slot: p.slot, epoch: p.epoch })}`);

/** JSON sealed under `key` with `aad`: base64 of a 12-byte nonce and the AES-GCM ciphertext. */
async function sealJson(key: CryptoKey, additionalData: Uint8Array<ArrayBuffer>, value: unknown): Promise<string> {
  const iv = randomBytes(12);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData }, key, utf8(canonicalJson(value))));
  return toBase64(concat(iv, sealed));
}

/** What `sealJson` sealed with this `aad`; CoreError 'decrypt-failed' (`what` does not open here) for anything else. */
async function openJson(key: CryptoKey, additionalData: Uint8Array<ArrayBuffer>, sealed: string, what: string): Promise<unknown> {
  try {
    const bytes = fromBase64(sealed);
    if (bytes.length < 12 + 16) throw new Error('short');
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.slice(0, 12), additionalData }, key, bytes.slice(12));
    return JSON.parse(fromUtf8(new Uint8Array(plain)));
  } catch {
    throw new CoreError('decrypt-failed', `${what} that does not open here`);
  }
}

/** The credential sealed for `place`. */
export function sealShared(key: CryptoKey, place: CachePlace, c: SharedCredential): Promise<string> {
  return sealJson(key, aad(place), c);
}

/** Opens what `sealShared` made for this place; CoreError 'decrypt-failed' for anything else. */
export async function openShared(key: CryptoKey, place: CachePlace, sealed: string): Promise<SharedCredential> {
  const c = (await openJson(key, aad(place), sealed, 'a team cache entry')) as Partial<SharedCredential> | null;
  if (typeof c?.accessToken !== 'string' || typeof c.notAfter !== 'number' || typeof c.issuedAt !== 'number')
    throw new CoreError('decrypt-failed', 'a team cache entry that does not open here');
  return {
    accessToken: c.accessToken,
    notAfter: c.notAfter,
    issuedAt: c.issuedAt,
    ...(typeof c.scope === 'string' ? { scope: c.scope } : {}),
    ...(typeof c.refreshAt === 'number' ? { refreshAt: c.refreshAt } : {}),
  };
}

/** A refresh-token chain sealed for its place (`chainSlot` of the credential's slot). */
export function sealChain(key: CryptoKey, place: CachePlace, c: RefreshChain): Promise<string> {
  return sealJson(key, aad(place), c);
}

/** Opens what `sealChain` made for this place; CoreError 'decrypt-failed' for anything else. */
export async function openChain(key: CryptoKey, place: CachePlace, sealed: string): Promise<RefreshChain> {
  const c = (await openJson(key, aad(place), sealed, 'a refresh-token chain')) as Partial<RefreshChain> | null;
  if (typeof c?.refreshToken !== 'string' || typeof c.rtVersion !== 'number')
    throw new CoreError('decrypt-failed', 'a refresh-token chain that does not open here');
  return { refreshToken: c.refreshToken, rtVersion: c.rtVersion };
}

/** Where an audit record sits in the team audit: whose chain, which link, under which epoch's key. */
export type AuditPlace = { readonly vault: string; readonly device: string; readonly seq: number; readonly epoch: number };

const auditAad = (p: AuditPlace) =>
  utf8(`keyhole/v1/team-audit\n${canonicalJson({ vault: p.vault, device: p.device, seq: p.seq, epoch: p.epoch })}`);

/** An audit record (plain JSON, never a value: core/audit/audit.ts) sealed for its link. */
export function sealAuditRecord(key: CryptoKey, place: AuditPlace, record: unknown): Promise<string> {
  return sealJson(key, auditAad(place), record);
}

/** Opens a record sealed for exactly this link; CoreError 'decrypt-failed' otherwise (moved, changed, another key). */
export function openAuditRecord(key: CryptoKey, place: AuditPlace, sealed: string): Promise<unknown> {
  return openJson(key, auditAad(place), sealed, 'a team audit record');
}
