/**
 * The team's shared credential cache (issue 16): per vault and slot (a secret id, and the digest
 * of a narrowing), one sealed credential with its `notAfter`, and one short lock that lets a
 * single device refresh it for the whole team. The server keeps only ciphertext: entries are
 * sealed by member devices under a key derived from the vault key of their epoch, which it never
 * has (core/crypto/team.ts).
 *
 *   entry  epoch, sealed (opaque JSON), not_after, issued_at, writer (a device)
 *   lock   holder (a device), token (random, the holder's proof), until (it lapses by itself)
 *
 * An entry past `not_after` is never returned and is deleted by the sweep; a lock past `until` is
 * free for the next device (a holder that died does not hold it). Compare-and-swap on one row:
 * SQLite and PostgreSQL both take `INSERT … ON CONFLICT DO UPDATE … WHERE`, which changes the row
 * only if the condition holds, atomically.
 */

export type CacheEntry = {
  readonly epoch: number;
  readonly sealed: string;
  readonly notAfter: number;
  readonly issuedAt: number;
  readonly writer: string;
};

export type CacheLock = { readonly holder: string; readonly until: number };

export type CacheView = { readonly entry?: CacheEntry; readonly lock?: CacheLock };

export interface TeamCacheStore {
  /** The live entry (epoch `epoch`, before its notAfter) and the live lock of a slot. */
  get(vault: string, slot: string, epoch: number, now: number): Promise<CacheView>;
  /** Takes the lock if it is free or lapsed; true if taken. */
  lock(vault: string, slot: string, holder: string, token: string, until: number, now: number): Promise<boolean>;
  /** Frees the lock if `token` holds it. */
  unlock(vault: string, slot: string, token: string): Promise<void>;
  /**
   * Writes an entry and frees the writer's lock, if the writer holds the lock (`token`) or no one
   * holds it, and the entry ends later than the one stored. True if written.
   */
  put(vault: string, slot: string, e: CacheEntry, token: string | undefined, now: number): Promise<boolean>;
  /** Drops what a vault cached before `epoch` (a member was removed). */
  dropBefore(vault: string, epoch: number): Promise<void>;
  /** Deletes entries past their notAfter (keeping live locks); the number of entries deleted. */
  sweep(now: number): Promise<number>;
}

export const TEAM_CACHE_SCHEMA = (t: { bigint: string }) => `
CREATE TABLE IF NOT EXISTS team_cache (vault TEXT NOT NULL, slot TEXT NOT NULL, epoch INTEGER, sealed TEXT,
  not_after ${t.bigint}, issued_at ${t.bigint}, writer TEXT, lock_holder TEXT, lock_token TEXT, lock_until ${t.bigint},
  PRIMARY KEY (vault, slot));
CREATE INDEX IF NOT EXISTS team_cache_by_expiry ON team_cache (not_after);
`;

export type CacheRow = {
  epoch: number | null;
  sealed: string | null;
  not_after: number | string | null;
  issued_at: number | string | null;
  writer: string | null;
  lock_holder: string | null;
  lock_until: number | string | null;
};

/** What a row says at `now` for `epoch`: nothing expired, nothing of another epoch, no lapsed lock. */
export function viewOf(r: CacheRow | undefined, epoch: number, now: number): CacheView {
  if (!r) return {};
  const notAfter = Number(r.not_after);
  const until = Number(r.lock_until);
  return {
    ...(r.sealed !== null && r.epoch === epoch && notAfter > now && r.writer !== null
      ? { entry: { epoch, sealed: r.sealed, notAfter, issuedAt: Number(r.issued_at), writer: r.writer } }
      : {}),
    ...(r.lock_holder !== null && until > now ? { lock: { holder: r.lock_holder, until } } : {}),
  };
}

/** The statements, in PostgreSQL's placeholders; SQLite's are the same with `?` in order (see sql-cache.ts). */
export const SQL = {
  get: 'SELECT epoch, sealed, not_after, issued_at, writer, lock_holder, lock_until FROM team_cache WHERE vault = $1 AND slot = $2',
  lock: `INSERT INTO team_cache (vault, slot, lock_holder, lock_token, lock_until) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (vault, slot) DO UPDATE SET lock_holder = excluded.lock_holder, lock_token = excluded.lock_token, lock_until = excluded.lock_until
    WHERE team_cache.lock_until IS NULL OR team_cache.lock_until <= $6`,
  unlock:
    'UPDATE team_cache SET lock_holder = NULL, lock_token = NULL, lock_until = NULL WHERE vault = $1 AND slot = $2 AND lock_token = $3',
  put: `INSERT INTO team_cache (vault, slot, epoch, sealed, not_after, issued_at, writer) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (vault, slot) DO UPDATE SET epoch = excluded.epoch, sealed = excluded.sealed, not_after = excluded.not_after,
      issued_at = excluded.issued_at, writer = excluded.writer, lock_holder = NULL, lock_token = NULL, lock_until = NULL
    WHERE (team_cache.lock_token = $8 OR team_cache.lock_until IS NULL OR team_cache.lock_until <= $9)
      AND (team_cache.sealed IS NULL OR team_cache.not_after <= $9 OR team_cache.epoch < excluded.epoch OR team_cache.not_after < excluded.not_after)`,
  dropBefore: 'DELETE FROM team_cache WHERE vault = $1 AND epoch < $2',
  sweepEntries:
    'UPDATE team_cache SET sealed = NULL, epoch = NULL, not_after = NULL, issued_at = NULL, writer = NULL WHERE not_after <= $1',
  sweepRows: 'DELETE FROM team_cache WHERE sealed IS NULL AND (lock_until IS NULL OR lock_until <= $1)',
} as const;
