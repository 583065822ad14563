/**
 * The lease store on each engine: SQLite (one process; its transactions are the claim) and
 * PostgreSQL (stateless replicas: a claim is one UPDATE over a `FOR UPDATE SKIP LOCKED` select,
 * so two replicas never claim one lease and neither waits on the other's rows).
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import { type Lease, type LeaseRow, type LeaseStore, leaseFrom, leaseParams } from './lease-store.ts';

const COLUMNS =
  'id, vault, engine, role, device, issued, expires, max_expires, renewable, state, attempts, next_attempt, last_error, revoke_data';
const LIVE = "state <> 'revoked'";

export function sqliteLeases(db: Database.Database): LeaseStore {
  const q = {
    insert: db.prepare(`INSERT INTO leases (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    get: db.prepare<[string], LeaseRow>(`SELECT ${COLUMNS} FROM leases WHERE id = ?`),
    countDevice: db.prepare<[string, string], { n: number }>(`SELECT COUNT(*) AS n FROM leases WHERE vault = ? AND device = ? AND ${LIVE}`),
    countVault: db.prepare<[string], { n: number }>(`SELECT COUNT(*) AS n FROM leases WHERE vault = ? AND ${LIVE}`),
    listDevice: db.prepare<[string, string], LeaseRow>(`SELECT ${COLUMNS} FROM leases WHERE vault = ? AND device = ? ORDER BY issued`),
    listVault: db.prepare<[string], LeaseRow>(`SELECT ${COLUMNS} FROM leases WHERE vault = ? ORDER BY issued`),
    renew: db.prepare(
      "UPDATE leases SET expires = ?, next_attempt = ? WHERE id = ? AND device = ? AND state = 'active' AND renewable = 1 AND expires > ? AND ? <= max_expires",
    ),
    activate: db.prepare(
      "UPDATE leases SET state = 'active', next_attempt = ?, revoke_data = ? WHERE id = ? AND state = 'revoking' AND attempts = 0",
    ),
    markRevoking: db.prepare("UPDATE leases SET state = 'revoking', next_attempt = ? WHERE id = ? AND state = 'active'"),
    due: db.prepare<[number, number], LeaseRow>(
      `SELECT ${COLUMNS} FROM leases WHERE ${LIVE} AND next_attempt <= ? ORDER BY next_attempt LIMIT ?`,
    ),
    claim: db.prepare(
      "UPDATE leases SET next_attempt = ?, attempts = attempts + 1, state = CASE WHEN state = 'active' THEN 'revoking' ELSE state END WHERE id = ?",
    ),
    finish: db.prepare('UPDATE leases SET state = ?, next_attempt = ?, last_error = ? WHERE id = ?'),
    counts: db.prepare<[], { engine: string; state: string; n: number }>(
      'SELECT engine, state, COUNT(*) AS n FROM leases GROUP BY engine, state',
    ),
  };
  const claim = db.transaction((now: number, limit: number, visibilityMs: number): Lease[] => {
    const rows = q.due.all(now, limit);
    for (const r of rows) q.claim.run(now + visibilityMs, r.id);
    return rows.map((r) =>
      leaseFrom({ ...r, next_attempt: now + visibilityMs, attempts: r.attempts + 1, state: r.state === 'active' ? 'revoking' : r.state }),
    );
  });
  return {
    async insert(l) {
      q.insert.run(...leaseParams(l));
    },
    async get(id) {
      const r = q.get.get(id);
      return r ? leaseFrom(r) : undefined;
    },
    async countLive(vault, device) {
      return (device === undefined ? q.countVault.get(vault) : q.countDevice.get(vault, device))?.n ?? 0;
    },
    async list(vault, device) {
      return (device === undefined ? q.listVault.all(vault) : q.listDevice.all(vault, device)).map(leaseFrom);
    },
    async renew(id, device, expires, now) {
      return q.renew.run(expires, expires, id, device, now, expires).changes === 1;
    },
    async activate(id, expires, revokeData) {
      return q.activate.run(expires, revokeData, id).changes === 1;
    },
    async markRevoking(id, now) {
      return q.markRevoking.run(now, id).changes === 1;
    },
    async claimDue(now, limit, visibilityMs) {
      return claim(now, limit, visibilityMs);
    },
    async finish(id, o) {
      q.finish.run(o.state, o.nextAttempt, o.lastError ?? null, id);
    },
    async counts() {
      return q.counts.all().map((r) => ({ engine: r.engine, state: r.state as Lease['state'], n: r.n }));
    },
  };
}

export function postgresLeases(pool: pg.Pool): LeaseStore {
  const rows = async (sql: string, params: unknown[]) => (await pool.query<LeaseRow>(sql, params)).rows.map(leaseFrom);
  return {
    async insert(l) {
      await pool.query(
        `INSERT INTO leases (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        leaseParams(l),
      );
    },
    async get(id) {
      return (await rows(`SELECT ${COLUMNS} FROM leases WHERE id = $1`, [id]))[0];
    },
    async countLive(vault, device) {
      const r =
        device === undefined
          ? await pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM leases WHERE vault = $1 AND ${LIVE}`, [vault])
          : await pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM leases WHERE vault = $1 AND device = $2 AND ${LIVE}`, [
              vault,
              device,
            ]);
      return Number(r.rows[0]?.n ?? 0);
    },
    async list(vault, device) {
      return device === undefined
        ? rows(`SELECT ${COLUMNS} FROM leases WHERE vault = $1 ORDER BY issued`, [vault])
        : rows(`SELECT ${COLUMNS} FROM leases WHERE vault = $1 AND device = $2 ORDER BY issued`, [vault, device]);
    },
    async renew(id, device, expires, now) {
      const r = await pool.query(
        "UPDATE leases SET expires = $1, next_attempt = $1 WHERE id = $2 AND device = $3 AND state = 'active' AND renewable = 1 AND expires > $4 AND $1 <= max_expires",
        [expires, id, device, now],
      );
      return r.rowCount === 1;
    },
    async activate(id, expires, revokeData) {
      const r = await pool.query(
        "UPDATE leases SET state = 'active', next_attempt = $1, revoke_data = $2 WHERE id = $3 AND state = 'revoking' AND attempts = 0",
        [expires, revokeData, id],
      );
      return r.rowCount === 1;
    },
    async markRevoking(id, now) {
      const r = await pool.query("UPDATE leases SET state = 'revoking', next_attempt = $1 WHERE id = $2 AND state = 'active'", [now, id]);
      return r.rowCount === 1;
    },
    async claimDue(now, limit, visibilityMs) {
      return rows(
        `UPDATE leases SET next_attempt = $1 + $3, attempts = attempts + 1,
           state = CASE WHEN state = 'active' THEN 'revoking' ELSE state END
         WHERE id IN (SELECT id FROM leases WHERE ${LIVE} AND next_attempt <= $1 ORDER BY next_attempt LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING ${COLUMNS}`,
        [now, limit, visibilityMs],
      );
    },
    async finish(id, o) {
      await pool.query('UPDATE leases SET state = $1, next_attempt = $2, last_error = $3 WHERE id = $4', [
        o.state,
        o.nextAttempt,
        o.lastError ?? null,
        id,
      ]);
    },
    async counts() {
      const r = await pool.query<{ engine: string; state: string; n: string }>(
        'SELECT engine, state, COUNT(*) AS n FROM leases GROUP BY engine, state',
      );
      return r.rows.map((x) => ({ engine: x.engine, state: x.state as Lease['state'], n: Number(x.n) }));
    },
  };
}
