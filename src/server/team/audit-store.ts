/**
 * The team audit (issue 16): each member device's chain of sealed audit records
 * (core/audit/team-chain.ts), appended by that device only, read by devices with the `audit` role
 * (and each device its own). The server checks that an append continues the chain (seq and prev)
 * and that each hash is the link's; it cannot open a record.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { AuditLink } from '../../core/audit/team-chain.ts';
import { inTransaction } from '../pg-transaction.ts';

export type StoredLink = AuditLink & { readonly hash: string };

export interface TeamAuditStore {
  /** The last link of `device`'s chain in `vault` (seq 0 and the chain start if none). */
  last(vault: string, device: string): Promise<{ seq: number; hash: string } | undefined>;
  /** Appends links that continue the chain, all or none; false if the chain moved (another append won). */
  append(vault: string, links: readonly StoredLink[], expected: { seq: number; hash: string } | undefined): Promise<boolean>;
  list(vault: string, device: string, after: number, limit: number): Promise<StoredLink[]>;
  /** Every device with a chain in `vault`, and its last link. */
  heads(vault: string): Promise<{ device: string; seq: number; hash: string }[]>;
}

export const TEAM_AUDIT_SCHEMA = `
CREATE TABLE IF NOT EXISTS team_audit (vault TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL, prev TEXT NOT NULL,
  hash TEXT NOT NULL, epoch INTEGER NOT NULL, sealed TEXT NOT NULL, PRIMARY KEY (vault, device, seq));
`;

type Row = { device: string; seq: number; prev: string; hash: string; epoch: number; sealed: string };
const linkOf = (r: Row): StoredLink => ({
  device: r.device,
  seq: Number(r.seq),
  prev: r.prev,
  hash: r.hash,
  epoch: Number(r.epoch),
  sealed: r.sealed,
});
const same = (a: { seq: number; hash: string } | undefined, b: { seq: number; hash: string } | undefined) =>
  (a?.seq ?? 0) === (b?.seq ?? 0) && (a?.hash ?? '') === (b?.hash ?? '');

export function sqliteTeamAudit(db: Database.Database): TeamAuditStore {
  const q = {
    last: db.prepare<[string, string], { seq: number; hash: string }>(
      'SELECT seq, hash FROM team_audit WHERE vault = ? AND device = ? ORDER BY seq DESC LIMIT 1',
    ),
    insert: db.prepare('INSERT INTO team_audit (vault, device, seq, prev, hash, epoch, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    list: db.prepare<[string, string, number, number], Row>(
      'SELECT device, seq, prev, hash, epoch, sealed FROM team_audit WHERE vault = ? AND device = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    heads: db.prepare<[string, string], { device: string; seq: number; hash: string }>(
      'SELECT t.device, t.seq, t.hash FROM team_audit t JOIN (SELECT device, MAX(seq) AS seq FROM team_audit WHERE vault = ? GROUP BY device) m ON t.device = m.device AND t.seq = m.seq WHERE t.vault = ?',
    ),
  };
  const append = db.transaction((vault: string, links: readonly StoredLink[], expected: { seq: number; hash: string } | undefined) => {
    const device = links[0]?.device ?? '';
    if (!same(q.last.get(vault, device), expected)) return false;
    for (const l of links) q.insert.run(vault, l.device, l.seq, l.prev, l.hash, l.epoch, l.sealed);
    return true;
  });
  return {
    async last(vault, device) {
      return q.last.get(vault, device);
    },
    async append(vault, links, expected) {
      return append(vault, links, expected);
    },
    async list(vault, device, after, limit) {
      return q.list.all(vault, device, after, limit).map(linkOf);
    },
    async heads(vault) {
      return q.heads.all(vault, vault);
    },
  };
}

export function postgresTeamAudit(pool: pg.Pool): TeamAuditStore {
  const last = async (c: pg.Pool | pg.PoolClient, vault: string, device: string) => {
    const r = (
      await c.query<{ seq: string; hash: string }>(
        'SELECT seq, hash FROM team_audit WHERE vault = $1 AND device = $2 ORDER BY seq DESC LIMIT 1',
        [vault, device],
      )
    ).rows[0];
    return r ? { seq: Number(r.seq), hash: r.hash } : undefined;
  };
  return {
    last: (vault, device) => last(pool, vault, device),
    append(vault, links, expected) {
      const device = links[0]?.device ?? '';
      return inTransaction(pool, async (c) => {
        // one appender per chain at a time: the advisory lock is the chain's, held to the commit
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${vault}/${device}`]);
        if (!same(await last(c, vault, device), expected)) return false; // the chain moved: nothing written
        for (const l of links)
          await c.query('INSERT INTO team_audit (vault, device, seq, prev, hash, epoch, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
            vault,
            l.device,
            l.seq,
            l.prev,
            l.hash,
            l.epoch,
            l.sealed,
          ]);
        return true;
      });
    },
    async list(vault, device, after, limit) {
      return (
        await pool.query<Row>(
          'SELECT device, seq, prev, hash, epoch, sealed FROM team_audit WHERE vault = $1 AND device = $2 AND seq > $3 ORDER BY seq LIMIT $4',
          [vault, device, after, limit],
        )
      ).rows.map(linkOf);
    },
    async heads(vault) {
      return (
        await pool.query<{ device: string; seq: string; hash: string }>(
          'SELECT DISTINCT ON (device) device, seq, hash FROM team_audit WHERE vault = $1 ORDER BY device, seq DESC',
          [vault],
        )
      ).rows.map((r) => ({ device: r.device, seq: Number(r.seq), hash: r.hash }));
    },
  };
}
