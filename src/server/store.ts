/**
 * What the distant vault keeps, behind one interface with two engines (sqlite.ts, postgres.ts).
 * Everything stored is public or ciphertext: device public keys, signed log entries, sealed
 * blobs, and hashes of short-lived session tokens. No engine can decrypt anything.
 */
import type { DevicePublic, Governance, Head, Membership } from '../core/sync/log.ts';
import { LEASE_SCHEMA, type LeaseStore } from './leases/lease-store.ts';
import { TEAM_AUDIT_SCHEMA, type TeamAuditStore } from './team/audit-store.ts';
import { TEAM_CACHE_SCHEMA, type TeamCacheStore } from './team/cache-store.ts';

export type { Head };

/** A log entry as stored: its canonical JSON text and the hash the next entry chains to. */
export type StoredEntry = { readonly seq: number; readonly hash: string; readonly json: string };

export type Blob = { readonly hash: string; readonly bytes: Uint8Array };

export type CommitResult = { readonly ok: true; readonly head: Head } | { readonly ok: false; readonly head: Head };

export type CommitInput = {
  readonly vault: string;
  readonly expected: Head;
  readonly entries: readonly StoredEntry[];
  readonly after: Membership;
  readonly membersChanged: boolean;
  readonly blobs: readonly Blob[];
  readonly deleteBlobs: readonly string[];
};

export type HeadListener = (vault: string, head: Head) => void;

export interface Store {
  readonly engine: 'sqlite' | 'postgres';
  close(): Promise<void>;

  putDevice(device: DevicePublic, now: number): Promise<void>;
  getDevice(id: string): Promise<DevicePublic | undefined>;
  /** Up to two devices whose id starts with `prefix` (hex): a pairing code names one. */
  devicesByPrefix(prefix: string): Promise<DevicePublic[]>;

  /** A vault's sealed recovery device, filed under a hash of the recovery key; false if the lookup is taken. */
  putRecovery(lookup: string, vault: string, bytes: Uint8Array): Promise<boolean>;
  getRecovery(lookup: string): Promise<{ vault: string; bytes: Uint8Array } | undefined>;

  /** Challenges and sessions live in the database so stateless replicas share them. */
  putChallenge(nonce: string, device: string, expires: number): Promise<void>;
  /** Deletes and returns the challenge: a nonce is good for one login, on any replica. */
  takeChallenge(nonce: string): Promise<{ device: string; expires: number } | undefined>;
  putSession(tokenHash: string, device: string, expires: number): Promise<void>;
  /** A session is never ended early (it only expires), so a replica may keep what it read until `expires`. */
  getSession(tokenHash: string, now: number): Promise<{ device: string; expires: number } | undefined>;
  /** Drop expired challenges and sessions. */
  sweep(now: number): Promise<void>;

  /** A new vault from its checked genesis; false when the id is taken. */
  createVault(state: Membership, genesis: StoredEntry): Promise<boolean>;
  membership(vault: string): Promise<Membership | undefined>;
  head(vault: string): Promise<Head | undefined>;
  isMember(vault: string, device: string): Promise<boolean>;
  vaultsOf(device: string): Promise<string[]>;

  /**
   * Compare-and-swap on the head: append `entries` (already checked against `expected`),
   * take `after` as the new state, store `blobs` and delete `deleteBlobs`, all in one
   * transaction, only if the head is still `expected`. Otherwise nothing changes.
   */
  commit(c: CommitInput): Promise<CommitResult>;
  entries(vault: string, after: number, limit: number): Promise<StoredEntry[]>;
  blobs(vault: string, hashes: readonly string[]): Promise<Blob[]>;

  /** Head changes from any replica (PostgreSQL: LISTEN/NOTIFY; SQLite: this process). */
  subscribe(listener: HeadListener): () => void;

  /**
   * Engine records (issue 15): an engine's configuration and root credential, sealed by the key
   * provider (kms/envelope.ts); opaque here. `put` replaces the record's row.
   */
  readonly leases: LeaseStore;
  /** the team's shared credential cache (issue 16): ciphertext with its notAfter, and refresh locks */
  readonly teamCache: TeamCacheStore;
  /** the team audit (issue 16): each device's chain of sealed records */
  readonly teamAudit: TeamAuditStore;

  putEngineRecord(r: EngineRecordRow): Promise<void>;
  /**
   * Writes `r` only if the stored row's version is `expected` (0: there is no row yet): one
   * replica wins a race, the others read again. True if written.
   */
  casEngineRecord(r: EngineRecordRow, expected: number): Promise<boolean>;
  getEngineRecord(vault: string, engine: string, record: string): Promise<EngineRecordRow | undefined>;
  engineRecords(): Promise<EngineRecordRow[]>;
}

export type EngineRecordRow = {
  readonly vault: string;
  readonly engine: string;
  readonly record: string;
  readonly version: number;
  /** the SealedRecord, JSON */
  readonly sealed: string;
};

/** The tables both engines keep, in each one's column types. */
export function schema(t: { bigint: string; bytes: string; clustered: string }): string {
  return `
CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, json TEXT NOT NULL, created ${t.bigint} NOT NULL);
CREATE TABLE IF NOT EXISTS challenges (nonce TEXT PRIMARY KEY, device TEXT NOT NULL, expires ${t.bigint} NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, device TEXT NOT NULL, expires ${t.bigint} NOT NULL);
CREATE TABLE IF NOT EXISTS vaults (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, head TEXT NOT NULL, epoch INTEGER NOT NULL,
  creator TEXT NOT NULL, members TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (vault TEXT NOT NULL, device TEXT NOT NULL, PRIMARY KEY (vault, device));
CREATE INDEX IF NOT EXISTS members_by_device ON members (device);
CREATE TABLE IF NOT EXISTS entries (vault TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (vault, seq))${t.clustered};
CREATE TABLE IF NOT EXISTS recovery (lookup TEXT PRIMARY KEY, vault TEXT NOT NULL, bytes ${t.bytes} NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (vault TEXT NOT NULL, hash TEXT NOT NULL, bytes ${t.bytes} NOT NULL, PRIMARY KEY (vault, hash))${t.clustered};
${LEASE_SCHEMA(t)}
${TEAM_CACHE_SCHEMA(t)}
${TEAM_AUDIT_SCHEMA}
CREATE TABLE IF NOT EXISTS engine_records (vault TEXT NOT NULL, engine TEXT NOT NULL, record TEXT NOT NULL,
  version INTEGER NOT NULL, sealed TEXT NOT NULL, PRIMARY KEY (vault, engine, record));
`;
}

/**
 * A state's members and governance as the vaults row keeps them: `{devices, gov}` (a bare array
 * of devices in rows written before roles).
 */
export function membersJson(m: Membership): string {
  return JSON.stringify(m.gov ? { devices: [...m.members.values()], gov: m.gov } : [...m.members.values()]);
}

export function membershipFrom(
  row: { vault: string; seq: number; head: string; epoch: number; creator: string },
  membersColumn: string,
): Membership {
  const parsed = JSON.parse(membersColumn) as DevicePublic[] | { devices: DevicePublic[]; gov: Governance };
  const devices = Array.isArray(parsed) ? parsed : parsed.devices;
  return { ...row, members: new Map(devices.map((d) => [d.id, d])), ...(Array.isArray(parsed) ? {} : { gov: parsed.gov }) };
}
