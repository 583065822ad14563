/**
 * The cache tier for minted credentials (DESIGN.md section 1: "secrets and cached dynamic
 * credentials live in separate stores under separate keys"). Each entry is one record
 * (RecordKind.credential) in the IndexedDB `credentials` store, sealed under the credentials key
 * (derived from this device's root for that purpose alone, apart from the items key), with
 * associated data binding the local vault and the entry's id, so an entry cannot be moved to
 * another id. Beside it, in clear, only its id and `expiresAt` (= the token's notAfter), so
 * expired entries can be dropped while locked too.
 *
 * An entry past its notAfter is never used: it is deleted when read. The cache lives in IndexedDB,
 * so it survives a worker stop while unlocked; lock wipes it. Refresh tokens are not cached here:
 * they are versions of their secret, in the vault.
 */
import { utf8 } from '../../core/bytes.ts';
import { RecordKind } from '../../core/crypto/record.ts';
import { openRecord, sealRecord } from '../../core/crypto/seal.ts';
import type { KeyholeDB } from '../db.ts';

/** A minted access token as cached: never a refresh token or a client secret. */
export type CachedToken = {
  readonly accessToken: string;
  /** when it was minted, and until when the issuer said it is valid (ms since the epoch) */
  readonly issuedAt: number;
  readonly notAfter: number;
  /** when it is refreshed, if it is in use then (its minter's draw, for a token the team shares) */
  readonly refreshAt?: number;
  readonly scope?: string;
};

export type CacheKey = () => Promise<{ readonly key: CryptoKey; readonly vaultId: string } | null>;

const context = (vaultId: string, id: string) => ({
  kind: RecordKind.credential,
  vaultId,
  itemId: `credential:${id}`,
  epoch: 1,
  version: 1,
});

export class CredentialCache {
  constructor(
    private readonly db: KeyholeDB,
    private readonly key: CacheKey,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached token for `id` while it is valid and the vault unlocked; an expired or unreadable entry is deleted. */
  async get(id: string): Promise<CachedToken | null> {
    const entry = await this.db.get('credentials', id);
    if (!entry) return null;
    if (entry.expiresAt <= this.now()) {
      await this.db.delete('credentials', id);
      return null;
    }
    const k = await this.key();
    if (!k) return null;
    try {
      const plain = await openRecord(k.key, context(k.vaultId, id), entry.record);
      const token = JSON.parse(new TextDecoder().decode(plain)) as CachedToken;
      if (token.notAfter !== entry.expiresAt) throw new Error('mismatch');
      return token;
    } catch {
      // sealed under a key of an earlier unlock, or tampered with: it is of no use
      await this.db.delete('credentials', id);
      return null;
    }
  }

  /** Caches `token` for `id` (replacing what was there). Locked: nothing is written. */
  async put(id: string, token: CachedToken): Promise<void> {
    const k = await this.key();
    if (!k) return;
    const record = await sealRecord(k.key, context(k.vaultId, id), utf8(JSON.stringify(token)));
    await this.db.put('credentials', { id, expiresAt: token.notAfter, record });
  }

  async delete(id: string): Promise<void> {
    await this.db.delete('credentials', id);
  }

  /** At lock: every entry goes. */
  async wipe(): Promise<void> {
    await this.db.clear('credentials');
  }
}
