/**
 * The embedded engine: one SQLite file under the data directory (better-sqlite3).
 * WAL with synchronous=FULL: a commit the server acknowledged survives a crash or power loss,
 * because a lost acknowledged commit would look to clients exactly like a rollback attack.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { DevicePublic, Membership } from '../core/sync/log.ts';
import { sqliteLeases } from './leases/sql-leases.ts';
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
import { sqliteTeamAudit } from './team/audit-store.ts';
import { sqliteTeamCache } from './team/sql-cache.ts';

type VaultRow = { id: string; seq: number; head: string; epoch: number; creator: string; members: string };

export function openSqlite(dataDir: string): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dataDir, 'keyhole.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(schema({ bigint: 'INTEGER', bytes: 'BLOB', clustered: ' WITHOUT ROWID' }));

  const q = {
    putDevice: db.prepare('INSERT INTO devices (id, json, created) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING'),
    getDevice: db.prepare<[string], { json: string }>('SELECT json FROM devices WHERE id = ?'),
    putRecovery: db.prepare('INSERT INTO recovery (lookup, vault, bytes) VALUES (?, ?, ?) ON CONFLICT (lookup) DO NOTHING'),
    getRecovery: db.prepare<[string], { vault: string; bytes: Buffer }>('SELECT vault, bytes FROM recovery WHERE lookup = ?'),
    devicesByPrefix: db.prepare<[string, string], { json: string }>('SELECT json FROM devices WHERE id >= ? AND id < ? LIMIT 2'),
    putChallenge: db.prepare('INSERT INTO challenges (nonce, device, expires) VALUES (?, ?, ?)'),
    takeChallenge: db.prepare<[string], { device: string; expires: number }>(
      'DELETE FROM challenges WHERE nonce = ? RETURNING device, expires',
    ),
    putSession: db.prepare('INSERT INTO sessions (token_hash, device, expires) VALUES (?, ?, ?)'),
    getSession: db.prepare<[string, number], { device: string; expires: number }>(
      'SELECT device, expires FROM sessions WHERE token_hash = ? AND expires > ?',
    ),
    sweepChallenges: db.prepare('DELETE FROM challenges WHERE expires <= ?'),
    sweepSessions: db.prepare('DELETE FROM sessions WHERE expires <= ?'),
    insertVault: db.prepare(
      'INSERT INTO vaults (id, seq, head, epoch, creator, members) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
    ),
    vault: db.prepare<[string], VaultRow>('SELECT * FROM vaults WHERE id = ?'),
    head: db.prepare<[string], Head>('SELECT seq, head AS hash FROM vaults WHERE id = ?'),
    cas: db.prepare('UPDATE vaults SET seq = ?, head = ?, epoch = ?, members = ? WHERE id = ? AND seq = ? AND head = ?'),
    isMember: db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM members WHERE vault = ? AND device = ?'),
    vaultsOf: db.prepare<[string], { vault: string }>('SELECT vault FROM members WHERE device = ? ORDER BY vault'),
    clearMembers: db.prepare('DELETE FROM members WHERE vault = ?'),
    addMember: db.prepare('INSERT INTO members (vault, device) VALUES (?, ?)'),
    insertEntry: db.prepare('INSERT INTO entries (vault, seq, hash, json) VALUES (?, ?, ?, ?)'),
    entries: db.prepare<[string, number, number], StoredEntry>(
      'SELECT seq, hash, json FROM entries WHERE vault = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    putBlob: db.prepare('INSERT INTO blobs (vault, hash, bytes) VALUES (?, ?, ?) ON CONFLICT (vault, hash) DO NOTHING'),
    blob: db.prepare<[string, string], { bytes: Buffer }>('SELECT bytes FROM blobs WHERE vault = ? AND hash = ?'),
    deleteBlob: db.prepare('DELETE FROM blobs WHERE vault = ? AND hash = ?'),
    putEngineRecord: db.prepare(
      `INSERT INTO engine_records (vault, engine, record, version, sealed) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (vault, engine, record) DO UPDATE SET version = excluded.version, sealed = excluded.sealed`,
    ),
    getEngineRecord: db.prepare<[string, string, string], EngineRecordRow>(
      'SELECT vault, engine, record, version, sealed FROM engine_records WHERE vault = ? AND engine = ? AND record = ?',
    ),
    insertEngineRecord: db.prepare(
      'INSERT INTO engine_records (vault, engine, record, version, sealed) VALUES (?, ?, ?, ?, ?) ON CONFLICT (vault, engine, record) DO NOTHING',
    ),
    updateEngineRecord: db.prepare(
      'UPDATE engine_records SET version = ?, sealed = ? WHERE vault = ? AND engine = ? AND record = ? AND version = ?',
    ),
    engineRecords: db.prepare<[], EngineRecordRow>(
      'SELECT vault, engine, record, version, sealed FROM engine_records ORDER BY vault, engine, record',
    ),
  };

  const setMembers = (m: Membership) => {
    q.clearMembers.run(m.vault);
    for (const id of m.members.keys()) q.addMember.run(m.vault, id);
  };

  const createVault = db.transaction((m: Membership, genesis: StoredEntry): boolean => {
    const r = q.insertVault.run(m.vault, m.seq, m.head, m.epoch, m.creator, membersJson(m));
    if (r.changes === 0) return false;
    q.insertEntry.run(m.vault, genesis.seq, genesis.hash, genesis.json);
    setMembers(m);
    return true;
  });

  const commit = db.transaction((c: CommitInput): CommitResult => {
    const { vault, after } = c;
    const r = q.cas.run(after.seq, after.head, after.epoch, membersJson(after), vault, c.expected.seq, c.expected.hash);
    if (r.changes === 0) return { ok: false, head: q.head.get(vault) ?? { seq: 0, hash: '' } };
    for (const e of c.entries) q.insertEntry.run(vault, e.seq, e.hash, e.json);
    for (const b of c.blobs) q.putBlob.run(vault, b.hash, b.bytes);
    for (const h of c.deleteBlobs) q.deleteBlob.run(vault, h);
    if (c.membersChanged) setMembers(after);
    return { ok: true, head: { seq: after.seq, hash: after.head } };
  });

  const listeners = new Set<HeadListener>();
  const notify = (vault: string, head: Head) => {
    for (const l of listeners) l(vault, head);
  };

  return {
    engine: 'sqlite',
    async close() {
      listeners.clear();
      if (db.open) db.close();
    },
    async putDevice(d, now) {
      q.putDevice.run(d.id, JSON.stringify(d), now);
    },
    async getDevice(id) {
      const r = q.getDevice.get(id);
      return r === undefined ? undefined : (JSON.parse(r.json) as DevicePublic);
    },
    async putRecovery(lookup, vault, bytes) {
      return q.putRecovery.run(lookup, vault, bytes).changes === 1;
    },
    async getRecovery(lookup) {
      const r = q.getRecovery.get(lookup);
      return r === undefined ? undefined : { vault: r.vault, bytes: new Uint8Array(r.bytes) };
    },
    async devicesByPrefix(prefix) {
      return q.devicesByPrefix.all(prefix, `${prefix}g`).map((r) => JSON.parse(r.json) as DevicePublic);
    },
    async putChallenge(nonce, device, expires) {
      q.putChallenge.run(nonce, device, expires);
    },
    async takeChallenge(nonce) {
      return q.takeChallenge.get(nonce);
    },
    async putSession(tokenHash, device, expires) {
      q.putSession.run(tokenHash, device, expires);
    },
    async getSession(tokenHash, now) {
      return q.getSession.get(tokenHash, now);
    },
    async sweep(now) {
      q.sweepChallenges.run(now);
      q.sweepSessions.run(now);
    },
    async createVault(m, genesis) {
      const ok = createVault(m, genesis);
      if (ok) notify(m.vault, { seq: m.seq, hash: m.head });
      return ok;
    },
    async membership(vault) {
      const r = q.vault.get(vault);
      if (r === undefined) return undefined;
      return membershipFrom({ vault, seq: r.seq, head: r.head, epoch: r.epoch, creator: r.creator }, r.members);
    },
    async head(vault) {
      return q.head.get(vault);
    },
    async isMember(vault, device) {
      return q.isMember.get(vault, device) !== undefined;
    },
    async vaultsOf(device) {
      return q.vaultsOf.all(device).map((r) => r.vault);
    },
    async commit(c) {
      const r = commit(c);
      if (r.ok) notify(c.vault, r.head);
      return r;
    },
    async entries(vault, after, limit) {
      return q.entries.all(vault, after, limit);
    },
    async blobs(vault, hashes) {
      const out: Blob[] = [];
      for (const hash of hashes) {
        const r = q.blob.get(vault, hash);
        if (r !== undefined) out.push({ hash, bytes: r.bytes });
      }
      return out;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    leases: sqliteLeases(db),
    teamCache: sqliteTeamCache(db),
    teamAudit: sqliteTeamAudit(db),
    async putEngineRecord(r) {
      q.putEngineRecord.run(r.vault, r.engine, r.record, r.version, r.sealed);
    },
    async getEngineRecord(vault, engine, record) {
      return q.getEngineRecord.get(vault, engine, record);
    },
    async engineRecords() {
      return q.engineRecords.all();
    },
    async casEngineRecord(r, expected) {
      const done =
        expected === 0
          ? q.insertEngineRecord.run(r.vault, r.engine, r.record, r.version, r.sealed)
          : q.updateEngineRecord.run(r.version, r.sealed, r.vault, r.engine, r.record, expected);
      return done.changes === 1;
    },
  };
}
