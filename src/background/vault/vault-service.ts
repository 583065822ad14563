/**
 * The vault as the worker holds it: the only place keys live while unlocked.
 * Pure of chrome.* except through the SessionStore it is handed, so unit tests run it on
 * fake-indexeddb and the e2e tests run it in the real worker.
 */

import { checkName, checkRule, checkValue } from '../../core/agents/policy.ts';
import { compileRedaction, type RedactionSet } from '../../core/agents/redact.ts';
import {
  type DamagedSecret,
  MIN_PASSPHRASE_LENGTH,
  type SecretInput,
  type SecretPatch,
  type SecretSummary,
  type Settings,
  type Status,
} from '../../core/api.ts';
import { wipe } from '../../core/bytes.ts';
import {
  checkKind,
  checkOAuth2Config,
  checkOAuth2Material,
  decodeMaterial,
  encodeMaterial,
  isMinted,
  type MintedKind,
  type OAuth2Config,
  type OAuth2Material,
  type SecretKind,
} from '../../core/credentials/kinds.ts';
import { importSigningKeyPem } from '../../core/credentials/pem.ts';
import type { KdfAlg } from '../../core/crypto/kdf.ts';
import { deriveItemsKey, deriveVaultKeys, type VaultKeys } from '../../core/crypto/keys.ts';
import { openRecord } from '../../core/crypto/seal.ts';
import { vaultKeyPlace } from '../../core/crypto/share.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import { openSecretMeta, openSecretValue, type SecretMeta, type StoredSecret, sealSecret } from '../../core/vault/secrets.ts';
import { createVault, openVault, rewrapVault, type VaultHeader } from '../../core/vault/vault.ts';
import type { KeyholeDB } from '../db.ts';
import { RpcError } from '../errors.ts';
import { beginSession, endSession, resumeSession, type SessionStore } from './session.ts';
import { retryAfterMs } from './throttle.ts';

export const DEFAULT_SETTINGS: Settings = {
  autoLockMinutes: 15,
  lockOnSystemLock: true,
  lockOnLastWindowClosed: true,
  clipboardClearSeconds: 30,
  requestsPerMinute: 600,
};

/**
 * The keys while unlocked. `local` comes from this device's root (audit, credentials, and the
 * items key that wraps this device's keys and the vault keys). Secrets belong to `vaultId`:
 * the local vault, or the synced vault this device is a member of, whose items keys (one per
 * key epoch) come from vault keys the members share (docs/sync.md).
 */
type Open = {
  readonly header: VaultHeader;
  readonly local: VaultKeys;
  readonly vaultId: string;
  readonly epoch: number;
  readonly items: ReadonlyMap<number, CryptoKey>;
};

/** What the sync service needs while unlocked (background/sync/sync-service.ts). */
export type Keyring = {
  readonly localId: string;
  readonly local: VaultKeys;
  readonly vaultId: string;
  readonly epoch: number;
  /** the keys that seal and open secrets of one epoch */
  readonly keysFor: (epoch: number) => VaultKeys;
};
/** A secret opened for injection: its value and what to strip from what comes back (compiled once). */
export type InUse = { readonly value: string; readonly redaction: RedactionSet };
export type LockReason = 'person' | 'idle' | 'system-lock' | 'windows-closed' | 'startup';

export class VaultService {
  private open: Open | null = null;
  /** name -> summary of every readable secret, built on first use while unlocked; kept current by the person's edits, dropped on sync's */
  private byName: Map<string, SecretSummary> | null = null;
  /** values opened for injection, by secret id (memory only, this worker's lifetime, while unlocked) */
  private readonly inUse = new Map<string, InUse>();
  private queue: Promise<unknown> = Promise.resolve();
  /** called after every lock, e.g. to apply a deferred extension update */
  /**
   * Called first at lock, once nothing can be opened any more, and awaited: takes back what was
   * handed out while unlocked (transparent rules, brokered calls in flight), so nothing carries
   * a key once lock() resolves.
   */
  onLocking: () => Promise<void> = async () => {};
  onLocked: (reason: LockReason) => void = () => {};
  /** called after a successful unlock (not after a worker restart resumes a session) */
  onUnlocked: () => void = () => {};
  /** one secret changed or was deleted by the person (`id`), or all may have (sync: null) */
  onSecretChanged: (id: string | null) => void = () => {};
  /** called after settings change, e.g. to re-apply the idle detection interval */
  onSettingsChanged: (settings: Settings) => void = () => {};

  constructor(
    private readonly db: KeyholeDB,
    private readonly session: SessionStore,
    private readonly version: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** State changes run one at a time, so an unlock and a lock cannot interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  async status(): Promise<Status> {
    const header = await this.db.get('header', 'vault');
    if (!header) return { state: 'uninitialized', version: this.version };
    const open = await this.resume(header);
    const base = { version: this.version, vaultId: header.vaultId, kdf: header.kdf.split('$')[0] ?? '' };
    if (open) return { state: 'unlocked', ...base };
    const wait = retryAfterMs(await this.db.get('throttle', 'unlock'), this.now());
    return { state: 'locked', ...base, ...(wait > 0 ? { retryAfterMs: wait } : {}) };
  }

  /** Throws RpcError 'locked' unless unlocked: for callers that guard data other than secrets. */
  async requireUnlocked(): Promise<void> {
    if (!(await this.isUnlocked())) throw new RpcError('locked', 'vault is locked');
  }

  /** Unlocked now (resuming a session a stopped worker left behind), without building a Status. */
  async isUnlocked(): Promise<boolean> {
    if (this.open) return true;
    const header = await this.db.get('header', 'vault');
    return header !== undefined && (await this.resume(header)) !== null;
  }

  create(passphrase: string, kdf?: KdfAlg): Promise<Status> {
    return this.serial(async () => {
      checkNewPassphrase(passphrase);
      if (await this.db.get('header', 'vault')) throw new RpcError('already-initialized', 'a vault already exists');
      const { header, root } = await createVault(passphrase, { ...(kdf ? { alg: kdf } : {}), now: this.now() });
      // header and settings in one transaction: either both exist or neither does
      const tx = this.db.transaction(['header', 'settings'], 'readwrite');
      await Promise.all([
        tx.objectStore('header').add(header, 'vault'),
        tx.objectStore('settings').put(DEFAULT_SETTINGS, 'settings'),
        tx.done,
      ]);
      await this.start(header, root);
      return this.status();
    });
  }

  unlock(passphrase: string): Promise<Status> {
    return this.serial(async () => {
      const header = await this.requireHeader();
      if (this.open) return this.status();
      const root = await this.checkPassphrase(header, passphrase);
      await this.start(header, root);
      this.onUnlocked();
      return this.status();
    });
  }

  lock(reason: LockReason = 'person'): Promise<Status> {
    return this.serial(async () => {
      this.open = null;
      this.forget();
      await this.onLocking().catch((e: unknown) =>
        console.error('keyhole: withdrawing at lock failed', e instanceof Error ? e.name : typeof e),
      );
      await endSession(this.db, this.session);
      this.onLocked(reason);
      return this.status();
    });
  }

  changePassphrase(current: string, next: string, kdf?: KdfAlg): Promise<Status> {
    return this.serial(async () => {
      const { header } = await this.unlocked();
      checkNewPassphrase(next);
      const root = await this.checkPassphrase(header, current);
      try {
        const rewrapped = await rewrapVault(header, root, next, kdf ? { alg: kdf } : {});
        await this.db.put('header', rewrapped, 'vault'); // one put: the old or the new header, never half
        this.open = { ...(this.open as Open), header: rewrapped };
      } finally {
        wipe(root);
      }
      return this.status();
    });
  }

  async listSecrets(): Promise<{ secrets: SecretSummary[]; damaged: DamagedSecret[] }> {
    const open = await this.unlocked();
    const secrets: SecretSummary[] = [];
    const damaged: DamagedSecret[] = [];
    // opened together, not one await after another (measured about 5% faster on 10,000)
    const stored = await this.db.getAll('secrets');
    const opened = await Promise.allSettled(
      stored.map(async (s) => summary(s, await openSecretMeta(keysFor(open, s.epoch), open.vaultId, s))),
    );
    for (const [i, r] of opened.entries()) {
      if (r.status === 'fulfilled') secrets.push(r.value);
      else
        damaged.push({ id: (stored[i] as StoredSecret).id, damaged: true, reason: isCoreError(r.reason) ? r.reason.code : 'unreadable' });
    }
    secrets.sort((a, b) => a.name.localeCompare(b.name));
    return { secrets, damaged };
  }

  createSecret(input: SecretInput): Promise<SecretSummary> {
    return this.serial(async () => {
      const open = await this.unlocked();
      const name = checkName(input.name);
      await this.assertNameFree(name);
      const t = this.now();
      const kind = checkKind(input.kind);
      // a refresh token is spent by the device that created it until another takes the role over
      const config = isMinted(kind) ? checkOAuth2Config(kind, { refresher: open.header.vaultId, ...input.oauth2 }) : undefined;
      const value = config ? await checkedMaterial(kind as MintedKind, config, input.material) : checkValue(input.value);
      const meta: SecretMeta = {
        name,
        rule: checkRule(input.rule),
        notes: input.notes ?? '',
        createdAt: t,
        updatedAt: t,
        ...(config ? { kind, oauth2: config } : {}),
      };
      const place = { vaultId: open.vaultId, id: crypto.randomUUID(), version: 1, epoch: open.epoch };
      const stored = await sealSecret(keysFor(open, open.epoch), place, meta, value);
      await this.db.add('secrets', stored);
      const s = summary(stored, meta);
      this.changed(s.id, s);
      return s;
    });
  }

  /** Any change re-seals all three records at version + 1 under a fresh data key. */
  updateSecret(patch: SecretPatch): Promise<SecretSummary> {
    return this.serial(() => this.rewrite(patch));
  }

  /**
   * A refresh token the token endpoint rotated: stored over the old one at once (version + 1,
   * synced like any change), before the access token minted with it is used. The old one is
   * never sent again: it is gone from the vault when this resolves.
   */
  setRefreshToken(id: string, refreshToken: string): Promise<SecretSummary> {
    return this.serial(async () => {
      const open = await this.unlocked();
      const old = await this.getStored(id);
      const material = decodeMaterial(await openSecretValue(keysFor(open, old.epoch), open.vaultId, old));
      return this.rewrite({ id, material: { ...material, refreshToken } });
    });
  }

  /** Makes this device the one that spends the refresh token of `id` (shown, transferable). */
  takeRefresherRole(id: string): Promise<SecretSummary> {
    return this.serial(async () => {
      const open = await this.unlocked();
      const s = await this.secretById(id);
      if (!s?.oauth2 || s.kind !== 'oauth2-refresh-token')
        throw new RpcError('bad-input', 'only a refresh-token credential has a refresher');
      return this.rewrite({ id, oauth2: { ...s.oauth2, refresher: open.header.vaultId } });
    });
  }

  /** This device's id for the refresher role: its local vault id (exists with or without sync). */
  async deviceId(): Promise<string> {
    return (await this.unlocked()).header.vaultId;
  }

  private async rewrite(patch: SecretPatch): Promise<SecretSummary> {
    const open = await this.unlocked();
    const old = await this.getStored(patch.id);
    const oldMeta = await openSecretMeta(keysFor(open, old.epoch), open.vaultId, old);
    const kind = oldMeta.kind ?? 'static';
    const name = patch.name === undefined ? oldMeta.name : checkName(patch.name);
    if (name !== oldMeta.name) await this.assertNameFree(name);
    const config = isMinted(kind) ? checkOAuth2Config(kind, { ...oldMeta.oauth2, ...patch.oauth2 }) : undefined;
    let value: string;
    if (config) {
      if (patch.value !== undefined) throw new RpcError('bad-input', 'a minted credential has no value of its own: change its material');
      const material = patch.material ?? decodeMaterial(await openSecretValue(keysFor(open, old.epoch), open.vaultId, old));
      value = await checkedMaterial(kind as MintedKind, config, material);
    } else {
      value = patch.value === undefined ? await openSecretValue(keysFor(open, old.epoch), open.vaultId, old) : checkValue(patch.value);
    }
    const meta: SecretMeta = {
      name,
      rule: patch.rule === undefined ? oldMeta.rule : checkRule(patch.rule),
      notes: patch.notes ?? oldMeta.notes,
      createdAt: oldMeta.createdAt,
      updatedAt: this.now(),
      ...(config ? { kind, oauth2: config } : {}),
    };
    const place = { vaultId: open.vaultId, id: old.id, version: old.version + 1, epoch: open.epoch };
    const stored = await sealSecret(keysFor(open, open.epoch), place, meta, value);
    // compare-and-swap on the version inside one transaction
    const tx = this.db.transaction('secrets', 'readwrite');
    const current = await tx.store.get(old.id);
    if (!current || current.version !== old.version) {
      tx.done.catch(() => {}); // the abort below rejects it; that is the expected outcome
      tx.abort();
      throw new RpcError('not-found', 'secret changed or was deleted; reload and try again');
    }
    await tx.store.put(stored);
    await tx.done;
    const s = summary(stored, meta);
    this.changed(s.id, s);
    return s;
  }

  deleteSecret(id: string): Promise<true> {
    return this.serial(async () => {
      await this.unlocked();
      await this.getStored(id);
      // Deleting the record deletes its wrapped data key with it: the value cannot be opened again.
      await this.db.delete('secrets', id);
      this.changed(id, null);
      return true as const;
    });
  }

  /** The secret a page names (for grants and the broker): metadata only, or null. */
  async findSecret(name: string): Promise<SecretSummary | null> {
    return (await this.nameIndex()).get(name) ?? null;
  }

  /**
   * One secret changed (null: deleted): its opened value is dropped and the name index, if
   * built, is updated in place, so a vault of thousands is not re-read after every edit.
   */
  private changed(id: string, now: SecretSummary | null): void {
    this.inUse.delete(id);
    this.onSecretChanged(id);
    if (!this.byName) return;
    for (const [name, s] of this.byName) if (s.id === id) this.byName.delete(name);
    if (now) this.byName.set(now.name, now);
  }

  /** Drops what is derived from the stored secrets: the name index and opened values. */
  private forget(): void {
    this.byName = null;
    this.inUse.clear();
  }

  /** The audit chain key while unlocked (a non-extractable HMAC key), else null. */
  async auditKey(): Promise<CryptoKey | null> {
    if (this.open) return this.open.local.audit;
    const header = await this.db.get('header', 'vault');
    return header ? ((await this.resume(header))?.local.audit ?? null) : null;
  }

  /**
   * The key that seals cached minted credentials (its own purpose, derived from this device's root
   * apart from the items key) and the local vault id they are bound to, while unlocked; else null.
   */
  async credentialsKey(): Promise<{ readonly key: CryptoKey; readonly vaultId: string } | null> {
    let open = this.open;
    if (!open) {
      const header = await this.db.get('header', 'vault');
      open = header ? await this.resume(header) : null;
    }
    return open ? { key: open.local.credentials, vaultId: open.header.vaultId } : null;
  }

  /** A secret's metadata by id, or null (a grant outliving its secret). */
  async secretById(id: string): Promise<SecretSummary | null> {
    for (const s of (await this.nameIndex()).values()) if (s.id === id) return s;
    return null;
  }

  /**
   * The value to put on one request. Only the broker and the transparent-mode rules call this;
   * what it returns never goes to a page, a log or an audit record.
   */
  async useSecret(id: string): Promise<InUse> {
    const open = await this.unlocked();
    const hit = this.inUse.get(id);
    if (hit) return hit;
    // a minted kind's value is the material it mints with: it never goes on a request
    if (isMinted((await this.secretById(id))?.kind)) throw new RpcError('bad-input', 'a minted credential is used through its tokens');
    const stored = await this.getStored(id);
    const value = await openSecretValue(keysFor(open, stored.epoch), open.vaultId, stored);
    const use = { value, redaction: compileRedaction([value]) };
    // Kept in memory while unlocked, as the keys that open it are; dropped on lock and on any write.
    if (this.open === open) this.inUse.set(id, use);
    return use;
  }

  /**
   * A minted credential's material (client secret, private key, refresh token), for the token
   * request only (background/credentials): never to a page, a log, an audit record or a header
   * of an API request.
   */
  async openMaterial(id: string): Promise<OAuth2Material> {
    const open = await this.unlocked();
    const stored = await this.getStored(id);
    return decodeMaterial(await openSecretValue(keysFor(open, stored.epoch), open.vaultId, stored));
  }

  /** The value, for the person only, after they type the passphrase again. */
  reveal(id: string, passphrase: string): Promise<{ value: string }> {
    return this.serial(async () => {
      const open = await this.unlocked();
      wipe(await this.checkPassphrase(open.header, passphrase));
      const s = await this.getStored(id);
      return { value: await openSecretValue(keysFor(open, s.epoch), open.vaultId, s) };
    });
  }

  async getSettings(): Promise<Settings> {
    return { ...DEFAULT_SETTINGS, ...(await this.db.get('settings', 'settings')) };
  }

  setSettings(patch: Partial<Settings>): Promise<Settings> {
    return this.serial(async () => {
      await this.unlocked();
      const next = checkSettings({ ...(await this.getSettings()), ...patch });
      await this.db.put('settings', next, 'settings');
      this.onSettingsChanged(next);
      return next;
    });
  }

  /** After a browser start: a session key left by a crash is deleted; the vault starts locked. */
  async endStaleSession(): Promise<void> {
    this.open = null;
    this.forget();
    await endSession(this.db, this.session);
  }

  // --- for the sync service ---------------------------------------------------------------

  /** Run `fn` between the person's own changes, never interleaved with them. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial(fn);
  }

  async keyring(): Promise<Keyring> {
    const open = await this.unlocked();
    return {
      localId: open.header.vaultId,
      local: open.local,
      vaultId: open.vaultId,
      epoch: open.epoch,
      keysFor: (epoch) => keysFor(open, epoch),
    };
  }

  /** The sync link or stored secrets changed underneath: rebuild keys and caches on next use. */
  reload(): void {
    if (this.open) this.open = null;
    this.forget();
    this.onSecretChanged(null);
  }

  // --- internals -------------------------------------------------------------------------

  /** The keys for a root: local ones, and the synced vault's if this device is linked to one. */
  private async openWith(header: VaultHeader, root: Uint8Array<ArrayBuffer>): Promise<Open> {
    const local = await deriveVaultKeys(root, header.vaultId);
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault || link.keys.length === 0) {
      return { header, local, vaultId: header.vaultId, epoch: header.epoch, items: new Map([[header.epoch, local.items]]) };
    }
    const items = new Map<number, CryptoKey>();
    for (const k of link.keys) {
      const bytes = await openRecord(local.items, vaultKeyPlace(link.vault, k.epoch), k.sealed);
      try {
        items.set(k.epoch, await deriveItemsKey(bytes, link.vault));
      } finally {
        wipe(bytes);
      }
    }
    return { header, local, vaultId: link.vault, epoch: Math.max(...items.keys()), items };
  }

  private async requireHeader(): Promise<VaultHeader> {
    const header = await this.db.get('header', 'vault');
    if (!header) throw new RpcError('uninitialized', 'no vault yet');
    return header;
  }

  private async resume(header: VaultHeader): Promise<Open | null> {
    if (this.open) return this.open;
    const root = await resumeSession(this.db, this.session, header.vaultId);
    if (!root) return null;
    try {
      this.open = await this.openWith(header, root);
    } finally {
      wipe(root);
    }
    return this.open;
  }

  private async unlocked(): Promise<Open> {
    if (this.open) return this.open; // the hot path: no storage read while unlocked
    const open = await this.resume(await this.requireHeader());
    if (!open) throw new RpcError('locked', 'vault is locked');
    return open;
  }

  private async start(header: VaultHeader, root: Uint8Array<ArrayBuffer>): Promise<void> {
    try {
      await beginSession(this.db, this.session, header.vaultId, root, this.now());
      this.open = await this.openWith(header, root);
    } finally {
      wipe(root);
    }
  }

  /** Opens the root with a passphrase, under the growing delay for failed tries. */
  private async checkPassphrase(header: VaultHeader, passphrase: string): Promise<Uint8Array<ArrayBuffer>> {
    if (typeof passphrase !== 'string' || passphrase.length === 0) throw new RpcError('bad-input', 'passphrase is required');
    const t = await this.db.get('throttle', 'unlock');
    const wait = retryAfterMs(t, this.now());
    if (wait > 0) throw new RpcError('throttled', 'too many wrong passphrases; wait before trying again', { retryAfterMs: wait });
    try {
      const root = await openVault(header, passphrase);
      if (t) await this.db.delete('throttle', 'unlock');
      return root;
    } catch (e) {
      if (!isCoreError(e, 'wrong-passphrase')) throw e;
      const failures = (t?.failures ?? 0) + 1;
      const next = { failures, lastFailureAt: this.now() };
      await this.db.put('throttle', next, 'unlock');
      throw new RpcError('wrong-passphrase', 'wrong passphrase', { retryAfterMs: retryAfterMs(next, this.now()) });
    }
  }

  private async getStored(id: unknown): Promise<StoredSecret> {
    const s = typeof id === 'string' && id.length <= 64 ? await this.db.get('secrets', id) : undefined;
    if (!s) throw new RpcError('not-found', 'no such secret');
    return s;
  }

  private async assertNameFree(name: string): Promise<void> {
    if ((await this.nameIndex()).has(name)) throw new RpcError('name-taken', 'a secret with this name exists');
  }

  private async nameIndex(): Promise<Map<string, SecretSummary>> {
    if (this.byName) return this.byName;
    const { secrets } = await this.listSecrets();
    const index = new Map(secrets.map((x) => [x.name, x]));
    if (this.open) this.byName = index; // only kept while unlocked
    return index;
  }
}

/** The keys for secrets sealed in `epoch`; CoreError 'decrypt-failed' for an epoch this device has no key for. */
function keysFor(open: Open, epoch: number): VaultKeys {
  const items = open.items.get(epoch);
  if (items === undefined) throw new CoreError('decrypt-failed', 'no key for this key epoch');
  return { ...open.local, items };
}

function summary(s: StoredSecret, m: SecretMeta): SecretSummary {
  const kind: SecretKind = m.kind ?? 'static';
  return {
    id: s.id,
    name: m.name,
    rule: m.rule,
    notes: m.notes,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
    version: s.version,
    kind,
    ...(m.oauth2 ? { oauth2: m.oauth2 } : {}),
  };
}

/** The material of a minted kind, checked and encoded as its stored value; a private key must import. */
async function checkedMaterial(kind: MintedKind, config: OAuth2Config, raw: unknown): Promise<string> {
  const material = checkOAuth2Material(kind, config, raw);
  if (material.privateKeyPem) {
    try {
      await importSigningKeyPem(material.privateKeyPem);
    } catch (e) {
      throw new RpcError('bad-input', e instanceof Error ? e.message : 'the private key does not import');
    }
  }
  return checkValue(encodeMaterial(material));
}

function checkNewPassphrase(p: unknown): asserts p is string {
  if (typeof p !== 'string' || [...p].length < MIN_PASSPHRASE_LENGTH) {
    throw new RpcError('weak-passphrase', `passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
}

export function checkSettings(s: Settings): Settings {
  const int = (x: unknown, lo: number, hi: number) => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  if (!int(s.autoLockMinutes, 1, 1440)) throw new CoreError('bad-input', 'autoLockMinutes must be 1 to 1440');
  if (!int(s.clipboardClearSeconds, 5, 300)) throw new CoreError('bad-input', 'clipboardClearSeconds must be 5 to 300');
  if (typeof s.lockOnSystemLock !== 'boolean' || typeof s.lockOnLastWindowClosed !== 'boolean') {
    throw new CoreError('bad-input', 'lock options must be true or false');
  }
  if (!int(s.requestsPerMinute, 1, 100_000)) throw new CoreError('bad-input', 'requestsPerMinute must be 1 to 100000');
  return {
    autoLockMinutes: s.autoLockMinutes,
    lockOnSystemLock: s.lockOnSystemLock,
    lockOnLastWindowClosed: s.lockOnLastWindowClosed,
    clipboardClearSeconds: s.clipboardClearSeconds,
    requestsPerMinute: s.requestsPerMinute,
  };
}
