/** The team cache store on each engine: one statement set (cache-store.ts SQL), bound per engine. */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { type CacheEntry, type CacheRow, SQL, type TeamCacheStore, viewOf } from './cache-store.ts';

/** `$1` … as better-sqlite3's named parameters (`@p1` …), bound from an object. */
const named = (sql: string) => sql.replace(/\$(\d+)/g, '@p$1');
const args = (...xs: unknown[]) => Object.fromEntries(xs.map((x, i) => [`p${i + 1}`, x]));

const putArgs = (vault: string, slot: string, e: CacheEntry, token: string | undefined, now: number) =>
  [vault, slot, e.epoch, e.sealed, e.notAfter, e.issuedAt, e.writer, token ?? null, now] as const;

export function sqliteTeamCache(db: Database.Database): TeamCacheStore {
  const q = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(named(sql))])) as Record<
    keyof typeof SQL,
    Database.Statement
  >;
  return {
    async get(vault, slot, epoch, now) {
      return viewOf(q.get.get(args(vault, slot)) as CacheRow | undefined, epoch, now);
    },
    async lock(vault, slot, holder, token, until, now) {
      return q.lock.run(args(vault, slot, holder, token, until, now)).changes === 1;
    },
    async unlock(vault, slot, token) {
      q.unlock.run(args(vault, slot, token));
    },
    async put(vault, slot, e, token, now) {
      return q.put.run(args(...putArgs(vault, slot, e, token, now))).changes === 1;
    },
    async dropBefore(vault, epoch) {
      q.dropBefore.run(args(vault, epoch));
    },
    async sweep(now) {
      const n = q.sweepEntries.run(args(now)).changes;
      q.sweepRows.run(args(now));
      return n;
    },
  };
}

export function postgresTeamCache(pool: pg.Pool): TeamCacheStore {
  return {
    async get(vault, slot, epoch, now) {
      return viewOf((await pool.query<CacheRow>(SQL.get, [vault, slot])).rows[0], epoch, now);
    },
    async lock(vault, slot, holder, token, until, now) {
      return (await pool.query(SQL.lock, [vault, slot, holder, token, until, now])).rowCount === 1;
    },
    async unlock(vault, slot, token) {
      await pool.query(SQL.unlock, [vault, slot, token]);
    },
    async put(vault, slot, e, token, now) {
      return (await pool.query(SQL.put, [...putArgs(vault, slot, e, token, now)])).rowCount === 1;
    },
    async dropBefore(vault, epoch) {
      await pool.query(SQL.dropBefore, [vault, epoch]);
    },
    async sweep(now) {
      const n = (await pool.query(SQL.sweepEntries, [now])).rowCount ?? 0;
      await pool.query(SQL.sweepRows, [now]);
      return n;
    },
  };
}
