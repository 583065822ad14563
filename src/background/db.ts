/**
 * IndexedDB schema. One interface per schema version; migrations are `oldVersion < N` steps.
 * Every store holds only ciphertext, public data or non-extractable keys (docs/storage.md).
 */
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';
import type { Denial, StoredGrant } from '../core/agents/grants.ts';
import type { Settings } from '../core/api.ts';
import type { AuditRecord } from '../core/audit/audit.ts';
import type { SealedDevice } from '../core/crypto/device.ts';
import type { StoredPasskey } from '../core/vault/passkey.ts';
import type { StoredSecret } from '../core/vault/secrets.ts';
import type { VaultHeader } from '../core/vault/vault.ts';
import type { TeamAuditPointer } from './audit/team-audit.ts';
import type { ReplicaSnapshot } from './sync/replica.ts';

export type Throttle = { readonly failures: number; readonly lastFailureAt: number };

/** A cached dynamic credential: one sealed record (RecordKind.credential) and its expiry. */
export type StoredCredential = { readonly id: string; readonly expiresAt: number; readonly record: Uint8Array };
/** An audit entry as stored: the record (metadata only, core/audit) and its chain MAC, null until chained. */
export type StoredAudit = { readonly seq: number; readonly record: AuditRecord; readonly mac: Uint8Array | null };
/** A device's key pair, the private key stored only wrapped under the vault key. */
export type StoredDeviceKey = { readonly id: string; readonly publicKey: Uint8Array; readonly wrappedPrivateKey: Uint8Array };

export interface KeyholeDBv1 extends DBSchema {
  header: { key: 'vault'; value: VaultHeader };
  secrets: { key: string; value: StoredSecret };
  credentials: { key: string; value: StoredCredential };
  audit: { key: number; value: StoredAudit };
  deviceKeys: { key: string; value: StoredDeviceKey };
  /** the per-unlock session key (non-extractable CryptoKey); deleted on lock */
  session: { key: 'key'; value: CryptoKey };
  settings: { key: 'settings'; value: Settings };
  throttle: { key: 'unlock'; value: Throttle };
}

/** v2: grants (origin x secret x hosts) and remembered denials; scopes and names, no values. */
export interface KeyholeDBv2 extends KeyholeDBv1 {
  grants: { key: string; value: StoredGrant; indexes: { origin: string } };
  denials: { key: [string, string]; value: Denial };
}

/**
 * This device's tie to a distant vault (docs/sync.md). The device's private keys and the
 * vault's keys are stored only wrapped under the local items key, which only the passphrase opens.
 */
export type SyncLink = {
  /** the distant vault's origin */
  readonly server: string;
  readonly device: SealedDevice;
  /** the vault this device is a member of; null while a joining device waits to be added */
  readonly vault: string | null;
  /** each key epoch's vault key, a RecordKind.vaultKey record under the local items key */
  readonly keys: readonly { readonly epoch: number; readonly sealed: Uint8Array }[];
};

/** Where an item stood when this device last agreed with the log: the heads, and the local version then. */
export type SyncedItem = { readonly heads: readonly string[]; readonly version: number };

export type SyncProblem = { readonly code: string; readonly message: string; readonly at: number };

/** Small and rewritten after every run; the replica and per-item records live in their own stores. */
export type SyncState = {
  readonly lastSyncAt?: number;
  readonly lastError?: SyncProblem;
  /** a server that lied (rollback, fork, bad signature...): kept until the person dismisses it */
  readonly warning?: SyncProblem;
  readonly failures: number;
  readonly nextAttemptAt: number;
  /** after a member removal: the items (and their re-sealed version) whose values that member could read */
  readonly rotate?: readonly { readonly item: string; readonly version: number }[];
  /** how far this device's audit records have gone to the team audit (issue 16) */
  readonly teamAudit?: TeamAuditPointer;
};

/** v3: sync with a distant vault. */
export interface KeyholeDBv3 extends KeyholeDBv2 {
  syncLink: { key: 'link'; value: SyncLink };
  syncState: { key: 'state'; value: SyncState };
  /** the verified replica of the log; blobs only of conflicted items (the others are in `secrets`) */
  syncReplica: { key: 'replica'; value: ReplicaSnapshot };
  /** by item id: where each stood at the last agreement with the log (one record: one put per change, not per item) */
  syncItems: { key: 'items'; value: Map<string, SyncedItem> };
}

/** v4: passkeys, each a second way to open the root (core/vault/passkey.ts). */
export interface KeyholeDBv4 extends KeyholeDBv3 {
  passkeys: { key: string; value: StoredPasskey };
}

export type KeyholeDB = IDBPDatabase<KeyholeDBv4>;
export const DB_NAME = 'keyhole';
export const DB_VERSION = 4;

export function openKeyholeDB(name = DB_NAME): Promise<KeyholeDB> {
  return openDB<KeyholeDBv4>(name, DB_VERSION, {
    upgrade(db, oldVersion) {
      if (oldVersion < 1) {
        db.createObjectStore('header');
        db.createObjectStore('secrets', { keyPath: 'id' });
        db.createObjectStore('credentials', { keyPath: 'id' });
        db.createObjectStore('audit', { keyPath: 'seq', autoIncrement: true });
        db.createObjectStore('deviceKeys', { keyPath: 'id' });
        db.createObjectStore('session');
        db.createObjectStore('settings');
        db.createObjectStore('throttle');
      }
      if (oldVersion < 2) {
        const grants = db.createObjectStore('grants', { keyPath: 'id' });
        grants.createIndex('origin', 'origin');
        db.createObjectStore('denials', { keyPath: ['origin', 'secret'] });
      }
      if (oldVersion < 3) {
        db.createObjectStore('syncLink');
        db.createObjectStore('syncState');
        db.createObjectStore('syncReplica');
        db.createObjectStore('syncItems');
      }
      if (oldVersion < 4) db.createObjectStore('passkeys', { keyPath: 'id' });
    },
  });
}
