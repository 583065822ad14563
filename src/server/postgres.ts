/**
 * The scale engine: PostgreSQL, for stateless server replicas over one database.
 * The head compare-and-swap is one conditional UPDATE: under READ COMMITTED a racing commit
 * waits for the row, re-checks the condition against the winner's head and matches nothing.
 * Head changes reach every replica by NOTIFY, sent inside the commit's transaction.
 */
import pg from 'pg';
import type { DevicePublic } from '../core/sync/log.ts';
import { postgresLeases } from './leases/sql-leases.ts';
import { inTransaction } from './pg-transaction.ts';
import {
  type Blob,
  type CommitInput,
  type CommitResult,
  type EngineRecordRow,
  type Head,
  type HeadListener,
  membershipFrom,
  membersJson,
  type Store,
  type StoredEntry,
  schema,
} from './store.ts';
import { postgresTeamAudit } from './team/audit-store.ts';
import { postgresTeamCache } from './team/sql-cache.ts';

const CHANNEL = 'keyhole_head';
const MIGRATION_LOCK = 0x6b657968; // "keyh"

export async function openPostgres(url: string, opts: { poolSize?: number; onError?: (e: Error) => void } = {}): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10 });
  const onError = opts.onError ?? (() => {});
  pool.on('error', onError);

  const boot = await pool.connect();
  try {
    await boot.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await boot.query(schema({ bigint: 'BIGINT', bytes: 'BYTEA', clustered: '' }));
    await boot.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  } finally {
    boot.release();
  }

  const listeners = new Set<HeadListener>();
  let closed = false;
  let listener: pg.Client | undefined;
  const listen = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (n) => {
      const [vault, seq, hash] = (n.payload ?? '').split(' ');
      if (vault === undefined || seq === undefined || hash === undefined) return;
      for (const l of listeners) l(vault, { seq: Number(seq), hash });
    });
    c.on('error', (e) => {
      onError(e);
      if (!closed) setTimeout(() => void listen().catch(onError), 1000);
    });
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    listener = c;
  };
  await listen();

  const one = async <T>(sql: string, params: unknown[]): Promise<T | undefined> => (await pool.query(sql, params)).rows[0] as T | undefined;

  return {
    engine: 'postgres',
    async close() {
      if (closed) return;
      closed = true;
      listeners.clear();
      await listener?.end().catch(() => {});
      await pool.end();
    },
    async putDevice(d, now) {
      await pool.query('INSERT INTO devices (id, json, created) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [
        d.id,
        JSON.stringify(d),
        now,
      ]);
    },
    async getDevice(id) {
      const r = await one<{ json: string }>('SELECT json FROM devices WHERE id = $1', [id]);
      return r === undefined ? undefined : (JSON.parse(r.json) as DevicePublic);
    },
    async putRecovery(lookup, vault, bytes) {
      const r = await pool.query('INSERT INTO recovery (lookup, vault, bytes) VALUES ($1, $2, $3) ON CONFLICT (lookup) DO NOTHING', [
        lookup,
        vault,
        Buffer.from(bytes),
      ]);
      return r.rowCount === 1;
    },
    async getRecovery(lookup) {
      const r = await one<{ vault: string; bytes: Buffer }>('SELECT vault, bytes FROM recovery WHERE lookup = $1', [lookup]);
      return r === undefined ? undefined : { vault: r.vault, bytes: new Uint8Array(r.bytes) };
    },
    async devicesByPrefix(prefix) {
      const r = await pool.query<{ json: string }>('SELECT json FROM devices WHERE id COLLATE "C" >= $1 AND id COLLATE "C" < $2 LIMIT 2', [
        prefix,
        `${prefix}g`,
      ]);
      return r.rows.map((x) => JSON.parse(x.json) as DevicePublic);
    },
    async putChallenge(nonce, device, expires) {
      await pool.query('INSERT INTO challenges (nonce, device, expires) VALUES ($1, $2, $3)', [nonce, device, expires]);
    },
    async takeChallenge(nonce) {
      const r = await one<{ device: string; expires: string }>('DELETE FROM challenges WHERE nonce = $1 RETURNING device, expires', [
        nonce,
      ]);
      return r === undefined ? undefined : { device: r.device, expires: Number(r.expires) };
    },
    async putSession(tokenHash, device, expires) {
      await pool.query('INSERT INTO sessions (token_hash, device, expires) VALUES ($1, $2, $3)', [tokenHash, device, expires]);
    },
    async getSession(tokenHash, now) {
      const r = await one<{ device: string; expires: string }>(
        'SELECT device, expires FROM sessions WHERE token_hash = $1 AND expires > $2',
        [tokenHash, now],
      );
      return r === undefined ? undefined : { device: r.device, expires: Number(r.expires) };
    },
    async sweep(now) {
      await pool.query('DELETE FROM challenges WHERE expires <= $1', [now]);
      await pool.query('DELETE FROM sessions WHERE expires <= $1', [now]);
    },
    async createVault(m, genesis) {
      return inTransaction(pool, async (c) => {
        const r = await c.query(
          'INSERT INTO vaults (id, seq, head, epoch, creator, members) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING',
          [m.vault, m.seq, m.head, m.epoch, m.creator, membersJson(m)],
        );
        if (r.rowCount === 0) return false; // the id is taken: nothing was written
        await c.query('INSERT INTO entries (vault, seq, hash, json) VALUES ($1, $2, $3, $4)', [
          m.vault,
          genesis.seq,
          genesis.hash,
          genesis.json,
        ]);
        await c.query('INSERT INTO members (vault, device) SELECT $1, unnest($2::text[])', [m.vault, [...m.members.keys()]]);
        await c.query('SELECT pg_notify($1, $2)', [CHANNEL, `${m.vault} ${m.seq} ${m.head}`]);
        return true;
      });
    },
    async membership(vault) {
      const r = await one<{ seq: number; head: string; epoch: number; creator: string; members: string }>(
        'SELECT seq, head, epoch, creator, members FROM vaults WHERE id = $1',
        [vault],
      );
      if (r === undefined) return undefined;
      return membershipFrom({ vault, seq: r.seq, head: r.head, epoch: r.epoch, creator: r.creator }, r.members);
    },
    async head(vault) {
      return one<Head>('SELECT seq, head AS hash FROM vaults WHERE id = $1', [vault]);
    },
    async isMember(vault, device) {
      return (await one('SELECT 1 FROM members WHERE vault = $1 AND device = $2', [vault, device])) !== undefined;
    },
    async vaultsOf(device) {
      return (await pool.query<{ vault: string }>('SELECT vault FROM members WHERE device = $1 ORDER BY vault', [device])).rows.map(
        (r) => r.vault,
      );
    },
    async commit(input: CommitInput): Promise<CommitResult> {
      const { vault, after, expected } = input;
      return inTransaction(pool, async (c): Promise<CommitResult> => {
        const r = await c.query(
          'UPDATE vaults SET seq = $1, head = $2, epoch = $3, members = $4 WHERE id = $5 AND seq = $6 AND head = $7',
          [after.seq, after.head, after.epoch, membersJson(after), vault, expected.seq, expected.hash],
        );
        if (r.rowCount === 0) {
          // the head moved: nothing was written; say where it is now
          const head = (await c.query<Head>('SELECT seq, head AS hash FROM vaults WHERE id = $1', [vault])).rows[0];
          return { ok: false, head: head ?? { seq: 0, hash: '' } };
        }
        const es = input.entries;
        await c.query('INSERT INTO entries (vault, seq, hash, json) SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])', [
          vault,
          es.map((e) => e.seq),
          es.map((e) => e.hash),
          es.map((e) => e.json),
        ]);
        if (input.blobs.length > 0) {
          await c.query(
            'INSERT INTO blobs (vault, hash, bytes) SELECT $1, * FROM unnest($2::text[], $3::bytea[]) ON CONFLICT (vault, hash) DO NOTHING',
            [
              vault,
              input.blobs.map((b) => b.hash),
              input.blobs.map((b) => Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength)),
            ],
          );
        }
        if (input.deleteBlobs.length > 0) {
          await c.query('DELETE FROM blobs WHERE vault = $1 AND hash = ANY($2::text[])', [vault, input.deleteBlobs]);
        }
        if (input.membersChanged) {
          await c.query('DELETE FROM members WHERE vault = $1', [vault]);
          await c.query('INSERT INTO members (vault, device) SELECT $1, unnest($2::text[])', [vault, [...after.members.keys()]]);
        }
        await c.query('SELECT pg_notify($1, $2)', [CHANNEL, `${vault} ${after.seq} ${after.head}`]);
        return { ok: true, head: { seq: after.seq, hash: after.head } };
      });
    },
    async entries(vault, after, limit) {
      return (
        await pool.query<StoredEntry>('SELECT seq, hash, json FROM entries WHERE vault = $1 AND seq > $2 ORDER BY seq LIMIT $3', [
          vault,
          after,
          limit,
        ])
      ).rows;
    },
    async blobs(vault, hashes) {
      if (hashes.length === 0) return [];
      const rows = (
        await pool.query<{ hash: string; bytes: Buffer }>('SELECT hash, bytes FROM blobs WHERE vault = $1 AND hash = ANY($2::text[])', [
          vault,
          hashes,
        ])
      ).rows;
      return rows.map((r): Blob => ({ hash: r.hash, bytes: r.bytes }));
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    leases: postgresLeases(pool),
    teamCache: postgresTeamCache(pool),
    teamAudit: postgresTeamAudit(pool),
    async putEngineRecord(r) {
      await pool.query(
        `INSERT INTO engine_records (vault, engine, record, version, sealed) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (vault, engine, record) DO UPDATE SET version = excluded.version, sealed = excluded.sealed`,
        [r.vault, r.engine, r.record, r.version, r.sealed],
      );
    },
    async getEngineRecord(vault, engine, record) {
      return one<EngineRecordRow>(
        'SELECT vault, engine, record, version, sealed FROM engine_records WHERE vault = $1 AND engine = $2 AND record = $3',
        [vault, engine, record],
      );
    },
    async casEngineRecord(r, expected) {
      const done =
        expected === 0
          ? await pool.query(
              'INSERT INTO engine_records (vault, engine, record, version, sealed) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (vault, engine, record) DO NOTHING',
              [r.vault, r.engine, r.record, r.version, r.sealed],
            )
          : await pool.query(
              'UPDATE engine_records SET version = $1, sealed = $2 WHERE vault = $3 AND engine = $4 AND record = $5 AND version = $6',
              [r.version, r.sealed, r.vault, r.engine, r.record, expected],
            );
      return done.rowCount === 1;
    },
    async engineRecords() {
      return (await pool.query('SELECT vault, engine, record, version, sealed FROM engine_records ORDER BY vault, engine, record'))
        .rows as EngineRecordRow[];
    },
  };
}
