/**
 * The typed RPC between the extension's own pages (popup, options) and the service worker.
 * Types only: the worker implements it (background/rpc.ts), pages call it (ui/rpc.ts).
 */

import type { ConsentDecision, ConsentRequest } from './agents/grants.ts';
import type { Grant } from './agents/page-api.ts';
import type { InjectionRule } from './agents/policy.ts';
import type { Anomaly, AuditFilter, AuditRecord, ChainCheck } from './audit/audit.ts';
import type { AwsConfig } from './credentials/aws.ts';
import type { DistantConfig, OAuth2Config, OAuth2Material, SecretKind } from './credentials/kinds.ts';
import type { KdfAlg } from './crypto/kdf.ts';
import type { EngineKind, EnginePolicy, Role } from './sync/log.ts';
import type { ValueInfo } from './vault/secrets.ts';

export type VaultState = 'uninitialized' | 'locked' | 'unlocked';

export type Settings = {
  /** lock after this many minutes without the person's input (chrome.idle) */
  readonly autoLockMinutes: number;
  /** lock when the operating system locks the screen */
  readonly lockOnSystemLock: boolean;
  /** lock when the last browser window closes */
  readonly lockOnLastWindowClosed: boolean;
  /** clear a copied value from the clipboard after this many seconds */
  readonly clipboardClearSeconds: number;
  /** each grant's request rate limit (brokered: refused with 4429; transparent: rule withdrawn for a minute) */
  readonly requestsPerMinute: number;
};

export type Status = {
  readonly state: VaultState;
  readonly version: string;
  readonly vaultId?: string;
  readonly kdf?: string;
  /** while failed unlocks are being throttled: when the next try is allowed */
  readonly retryAfterMs?: number;
};

export type SecretSummary = {
  readonly id: string;
  readonly name: string;
  readonly rule: InjectionRule;
  readonly notes: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly version: number;
  readonly kind: SecretKind;
  /** a minted kind's configuration (no secret in it) */
  readonly oauth2?: OAuth2Config;
  /** an `aws` secret's configuration (no secret in it) */
  readonly aws?: AwsConfig;
  /** a `distant` secret's engine and role at the synced vault's distant vault */
  readonly distant?: DistantConfig;
  /** its values over time: current, staged, previous (until its grace ends), destroyed */
  readonly values: readonly ValueInfo[];
  readonly expiresAt?: number;
  /** past its expiry: its values are destroyed, uses fail with 4400 */
  readonly expired: boolean;
};

/** A minted credential's state for the person (never a value). */
export type CredentialStatusView = {
  readonly state: 'ok' | 'expiring' | 'refreshing' | 'unavailable';
  /** the current token's notAfter, and the next refresh or retry */
  readonly validUntil?: number;
  readonly nextRefresh?: number;
  /** the last token request's error code (core/credentials/errors.ts), or 'breaker-open' */
  readonly lastError?: string;
  readonly failures: number;
  /** the person must act: the grant is dead (invalid-grant), the key is bad, another device spends the refresh token */
  readonly attention?: string;
  /** a refresh-token credential: whether this device holds the refresher role */
  readonly refresherHere?: boolean;
};

/** A stored item that failed to open: named so the person knows which one. */
export type DamagedSecret = { readonly id: string; readonly damaged: true; readonly reason: string };

/** A static secret has a `value`; a minted kind has `oauth2` settings and the `material` it mints with. */
export type SecretInput = {
  readonly name: string;
  readonly value?: string;
  readonly rule: InjectionRule;
  readonly notes?: string;
  readonly kind?: SecretKind;
  readonly oauth2?: OAuth2Config;
  readonly aws?: AwsConfig;
  readonly distant?: DistantConfig;
  readonly material?: OAuth2Material;
  /** when it expires (ms since the epoch) */
  readonly expiresAt?: number;
};
export type SecretPatch = {
  readonly id: string;
  readonly name?: string;
  readonly value?: string;
  readonly rule?: InjectionRule;
  readonly notes?: string;
  readonly oauth2?: OAuth2Config;
  readonly aws?: AwsConfig;
  readonly distant?: DistantConfig;
  readonly material?: OAuth2Material;
  /** a new expiry, or null to remove it */
  readonly expiresAt?: number | null;
};

/** A conflicted item: two or more versions written concurrently, each kept until the person picks one. */
export type SyncConflict = {
  readonly item: string;
  readonly versions: readonly {
    readonly entry: string;
    readonly name: string;
    readonly updatedAt: number;
    readonly author: string;
    readonly seq: number;
  }[];
};

export type SyncProblemView = { readonly code: string; readonly message: string; readonly at: number };

export type SyncStatus = {
  readonly enabled: boolean;
  readonly server?: string;
  readonly vault?: string;
  /** this device; `pairingCode` is what the person types on a member device to add it */
  readonly device?: { readonly id: string; readonly name: string; readonly pairingCode: string };
  /** enabled, waiting for a member device to add this one */
  readonly joining?: boolean;
  /** the accepted head: seq and a fingerprint people compare across devices */
  readonly head?: { readonly seq: number; readonly fingerprint: string; readonly epoch: number };
  readonly members: readonly { readonly id: string; readonly name: string; readonly pairingCode: string }[];
  readonly lastSyncAt?: number;
  readonly lastError?: SyncProblemView;
  /** the server lied (rollback, fork, dropped or foreign entry...): sync stops until dismissed */
  readonly warning?: SyncProblemView;
  readonly nextAttemptAt?: number;
  readonly progress?: { readonly seq: number; readonly head: number };
  readonly conflicts: readonly SyncConflict[];
  /** names of secrets a removed member could read: change them at their provider */
  readonly rotate: readonly string[];
};

/** A Keyhole backup file's `format` (core/vault/backup.ts): how the import form tells one from other files. */
export const BACKUP_FORMAT = 'keyhole-backup';
/** The runtime port an import travels on (options page <-> worker, background/vault/import-port.ts). */
export const IMPORT_PORT = 'keyhole-import';
/** Page -> worker on the import port: the secrets to create, or a backup file's text to restore; all or none. */
export type ImportMessage = { readonly items: readonly SecretInput[] } | { readonly backup: string; readonly passphrase: string };
/** Worker -> page: how many are sealed so far, then how many were created, or why none were. */
export type ImportReply =
  | { readonly sealed: number; readonly total: number }
  | { readonly done: number }
  | { readonly error: RpcErrorBody };

/** A passkey that unlocks the vault: its credential id (base64url), name, and PRF salt (base64). No secret. */
export type PasskeyView = { readonly id: string; readonly name: string; readonly createdAt: number; readonly salt: string };

export type Api = {
  status: { params: undefined; result: Status };
  'vault.create': { params: { passphrase: string; kdf?: KdfAlg }; result: Status };
  'vault.unlock': { params: { passphrase: string }; result: Status };
  'vault.lock': { params: undefined; result: Status };
  'vault.changePassphrase': { params: { current: string; next: string; kdf?: KdfAlg }; result: Status };
  /** the PRF output (base64) of passkey `id` for its salt */
  'vault.unlockPasskey': { params: { id: string; prf: string }; result: Status };
  /** the passkeys that unlock this vault (answered while locked too: the unlock needs ids and salts) */
  'passkeys.list': { params: undefined; result: { passkeys: PasskeyView[] } };
  /** a second unlock path: the passphrase opens the root, the passkey's PRF output seals it again */
  'passkeys.add': {
    params: { passphrase: string; id: string; name: string; salt: string; prf: string };
    result: { passkeys: PasskeyView[] };
  };
  'passkeys.remove': { params: { id: string }; result: { passkeys: PasskeyView[] } };
  /** an encrypted backup file's text: the vault's passphrase again, and one for the backup */
  'backup.export': { params: { passphrase: string; backupPassphrase: string }; result: { text: string; count: number; left: number } };
  'secrets.list': { params: undefined; result: { secrets: SecretSummary[]; damaged: DamagedSecret[] } };
  'secrets.create': { params: SecretInput; result: SecretSummary };
  'secrets.update': { params: SecretPatch; result: SecretSummary };
  'secrets.delete': { params: { id: string }; result: true };
  'secrets.reveal': { params: { id: string; passphrase: string }; result: { value: string } };
  /** a new value for a secret, staged: not used until promoted */
  /** a minted kind's `material` is merged over the current one: name only what changes */
  'secrets.rotate': { params: { id: string; value?: string; material?: Partial<OAuth2Material> }; result: SecretSummary };
  /** one request with the staged value to `url` (within the secret's rule); the answer's status */
  'secrets.testStaged': { params: { id: string; url: string }; result: { status: number; ok: boolean } };
  /** the staged value becomes current; the old one stays `graceSeconds` (default 24 h) for roll back, or is destroyed at once if compromised */
  'secrets.promote': { params: { id: string; graceSeconds?: number; compromised?: boolean }; result: SecretSummary };
  'secrets.rollBack': { params: { id: string }; result: SecretSummary };
  /** a staged or previous value destroyed now */
  'secrets.destroyValue': { params: { id: string; n: number }; result: SecretSummary };
  /** this device becomes the one that spends a refresh-token credential's refresh token */
  'secrets.takeRefresher': { params: { id: string }; result: SecretSummary };
  /** each minted credential's state, by secret id */
  'credentials.status': { params: undefined; result: Record<string, CredentialStatusView> };
  /** a fresh token for a minted credential now */
  'credentials.refresh': { params: { id: string }; result: CredentialStatusView };
  'settings.get': { params: undefined; result: Settings };
  'settings.set': { params: Partial<Settings>; result: Settings };
  /** after the person copies a value: clear the clipboard in `clipboardClearSeconds` */
  'clipboard.scheduleClear': { params: undefined; result: { clearsInSeconds: number } };
  /** the consent window reads the request it was opened for (null once answered or gone) */
  'consent.get': { params: { request: string }; result: ConsentRequest | null };
  'consent.decide': { params: { request: string; decision: ConsentDecision }; result: true };
  'grants.list': { params: undefined; result: Grant[] };
  'grants.revoke': { params: { id: string }; result: true };
  /** the person lets a site use a secret in transparent mode, from the options page */
  'grants.create': { params: { origin: string; secretId: string; ttlSeconds: number }; result: Grant };
  /** newest first, a page at a time (`before`: the `next` of the previous page) */
  'audit.view': {
    params: { filter?: AuditFilter; limit?: number; before?: number };
    result: {
      entries: { seq: number; record: AuditRecord; chained: boolean }[];
      more: boolean;
      next?: number;
      /** null while the chain is still being verified up to the newest record (then ask audit.verify) */
      check: ChainCheck | null;
      anomalies: Anomaly[];
    };
  };
  /** verifies the chain up to the newest record (incrementally; the worker keeps serving meanwhile) */
  'audit.verify': { params: undefined; result: { check: ChainCheck; anomalies: Anomaly[] } };
  'sync.status': { params: undefined; result: SyncStatus };
  /** the result carries the recovery key, shown once and never stored by the extension */
  'sync.enable': { params: { server: string; deviceName: string }; result: SyncStatus & { recoveryKey: string } };
  'sync.recover': { params: { server: string; recoveryKey: string; deviceName: string }; result: SyncStatus };
  'sync.join': { params: { server: string; deviceName: string }; result: SyncStatus };
  'sync.approve': { params: { code: string }; result: { id: string; name: string } };
  'sync.now': { params: undefined; result: SyncStatus };
  'sync.resolve': { params: { item: string; keep: string }; result: SyncStatus };
  'sync.removeMember': { params: { device: string }; result: SyncStatus };
  'sync.dismiss': { params: { what: 'warning' | 'rotation' }; result: SyncStatus };
  /** compare the head fingerprint another member device shows (fork check by hand) */
  'sync.compareHead': { params: { fingerprint: string }; result: { result: 'same' | 'fork' | 'withheld'; seq: number } };
  'audit.export': { params: { filter?: AuditFilter; format: 'jsonl' | 'csv' }; result: { text: string; mime: string } };
  /** the synced vault's members, their roles, and the distant vault's engines (issue 15) */
  'team.view': { params: undefined; result: TeamView };
  /** the team audit (issue 16), for a member with the `audit` role: every device's records, each chain checked */
  'team.audit': { params: undefined; result: TeamAuditView };
  /** an admin gives or takes back a role */
  'team.setRole': { params: { device: string; role: Role; granted: boolean }; result: TeamView };
  /** an admin pins the distant vault's engine key, if its fingerprint is the one given (from the operator) */
  'engines.pinKey': { params: { fingerprint: string }; result: TeamView };
  /** an admin configures an engine; a root credential is sealed on this device to the pinned key */
  'engines.configure': {
    params: { engine: string; kind: EngineKind; config: Record<string, unknown>; rootCredential?: unknown };
    result: TeamView;
  };
  'engines.setPolicy': { params: { engine: string; policy: EnginePolicy }; result: TeamView };
  'engines.remove': { params: { engine: string }; result: TeamView };
  /** this device's leases at the distant vault (an admin: the vault's); never a credential */
  'leases.list': { params: undefined; result: { leases: LeaseView[] } };
  /** ends one of them now */
  'leases.revoke': { params: { id: string }; result: { leases: LeaseView[] } };
};

/** A lease as the options page shows it. */
export type LeaseView = {
  readonly id: string;
  readonly engine: string;
  readonly role: string;
  readonly device: string;
  readonly issued: number;
  readonly expires: number;
  readonly state: string;
  readonly attempts: number;
  readonly lastError?: string;
};

/** What the options page shows of the team and its engines (never a root credential). */
export type TeamView = {
  readonly me: string;
  readonly members: readonly { readonly id: string; readonly name: string; readonly roles: readonly Role[] }[];
  readonly engineKeyFingerprint?: string;
  readonly engines: readonly {
    readonly name: string;
    readonly kind: EngineKind;
    readonly config: Readonly<Record<string, unknown>>;
    readonly hasRootCredential: boolean;
    readonly policies: readonly EnginePolicy[];
  }[];
};

export type TeamAuditView = {
  readonly entries: readonly {
    readonly device: string;
    readonly deviceName: string;
    readonly seq: number;
    /** at or before the head the device signed in the log */
    readonly anchored: boolean;
    readonly record: AuditRecord;
  }[];
  /** how each device's chain stands: checked through `through`, under its signature through `anchored`, and what is wrong */
  readonly chains: readonly {
    readonly device: string;
    readonly deviceName: string;
    readonly through: number;
    readonly anchored: number;
    readonly findings: readonly { readonly kind: 'gap' | 'broken' | 'not-signed' | 'withheld'; readonly seq: number }[];
  }[];
};

export type Method = keyof Api;
export type Params<M extends Method> = Api[M]['params'];
export type Result<M extends Method> = Api[M]['result'];

export type RpcErrorCode =
  | 'uninitialized'
  | 'already-initialized'
  | 'locked'
  | 'wrong-passphrase'
  | 'wrong-passkey'
  | 'throttled'
  | 'weak-passphrase'
  | 'bad-input'
  | 'not-found'
  | 'name-taken'
  | 'expired'
  | 'damaged'
  | 'forbidden'
  | 'unknown-method'
  | 'sync-failed'
  | 'internal';

export type RpcErrorBody = { readonly code: RpcErrorCode; readonly message: string; readonly data?: Record<string, string | number> };

export type RpcRequest = { readonly kh: 1; readonly method: Method; readonly params?: unknown };
export type RpcResponse = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: RpcErrorBody };

export const MIN_PASSPHRASE_LENGTH = 12;
