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
  type PasskeyView,
  type SecretInput,
  type SecretPatch,
  type SecretSummary,
  type Settings,
  type Status,
} from '../../core/api.ts';
import { fromBase64, toBase64, wipe } from '../../core/bytes.ts';
import {
  type CredentialConfig,
  checkCredentialConfig,
  checkKind,
  checkMaterial,
  decodeMaterial,
  encodeMaterial,
  isMinted,
  type MintedKind,
  type OAuth2Material,
  type SecretKind,
} from '../../core/credentials/kinds.ts';
import { importSigningKeyPem } from '../../core/credentials/pem.ts';
import type { KdfAlg } from '../../core/crypto/kdf.ts';
import { deriveItemsKey, deriveVaultKeys, type VaultKeys } from '../../core/crypto/keys.ts';
import { openRecord } from '../../core/crypto/seal.ts';
import { vaultKeyPlace } from '../../core/crypto/share.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import {
  checkCredentialId,
  MAX_PASSKEYS,
  openRootWithPasskey,
  PRF_LENGTH,
  type StoredPasskey,
  sealRootForPasskey,
} from '../../core/vault/passkey.ts';
import {
  destroyDue,
  nextDestruction as nextDestructionOf,
  openOtherValue,
  openSecretMeta,
  openSecretValue,
  type SecretMeta,
  type StoredSecret,
  sealSecret,
  type ValueInfo,
  valuesOf,
} from '../../core/vault/secrets.ts';
import { createVault, openVault, rewrapVault, type VaultHeader } from '../../core/vault/vault.ts';
import * as versions from '../../core/vault/versions.ts';
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

/** A secret opened whole for a change: its metadata, current value, history and live other values by number. */
type Opened = {
  readonly meta: SecretMeta;
  readonly current: string;
  readonly values: readonly ValueInfo[];
  readonly others: ReadonlyMap<number, string>;
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
  /** a lock is under way: the session still exists in storage but must not be resumed */
  private locking = false;
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
  /** these secrets changed or were deleted (one notice for an edit, an import or a destruction run), or all may have (sync: null) */
  onSecretChanged: (ids: readonly string[] | null) => void = () => {};
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

  /** The root from a passkey's PRF output (base64), under the same growing delay as the passphrase. */
  unlockWithPasskey(id: string, prf: string): Promise<Status> {
    return this.serial(async () => {
      const header = await this.requireHeader();
      if (this.open) return this.status();
      const output = prfBytes(prf);
      try {
        const stored = await this.db.get('passkeys', checkCredentialId(id));
        if (!stored) throw new RpcError('wrong-passkey', 'this passkey was removed from the vault; unlock with the passphrase');
        const root = await this.throttled('wrong-passkey', () => openRootWithPasskey(header.vaultId, stored, output));
        await this.start(header, root);
      } finally {
        wipe(output);
      }
      this.onUnlocked();
      return this.status();
    });
  }

  /** The passkeys that unlock the vault: no secret, so answered while locked (the unlock needs them). */
  async listPasskeys(): Promise<PasskeyView[]> {
    await this.requireHeader();
    return (await this.db.getAll('passkeys')).map(passkeyView).sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * A passkey as a second unlock path. The passphrase is asked again: it opens the root, which is
   * sealed again under the passkey's PRF output (`salt` is what the page asked the PRF for).
   */
  addPasskey(passphrase: string, p: { id: string; name: string; salt: string; prf: string }): Promise<PasskeyView[]> {
    return this.serial(async () => {
      const { header } = await this.unlocked();
      const id = checkCredentialId(p.id);
      const all = await this.db.getAllKeys('passkeys');
      if (!all.includes(id) && all.length >= MAX_PASSKEYS) throw new RpcError('bad-input', `at most ${MAX_PASSKEYS} passkeys`);
      const salt = prfBytes(p.salt, 'salt');
      const output = prfBytes(p.prf);
      try {
        const root = await this.checkPassphrase(header, passphrase);
        try {
          const stored = await sealRootForPasskey(root, output, { vaultId: header.vaultId, id, name: p.name, salt, now: this.now() });
          await this.db.put('passkeys', stored);
        } finally {
          wipe(root);
        }
      } finally {
        wipe(output);
      }
      return this.listPasskeys();
    });
  }

  removePasskey(id: string): Promise<PasskeyView[]> {
    return this.serial(async () => {
      await this.unlocked();
      const key = checkCredentialId(id);
      if (!(await this.db.get('passkeys', key))) throw new RpcError('not-found', 'no such passkey');
      await this.db.delete('passkeys', key);
      return this.listPasskeys();
    });
  }

  lock(reason: LockReason = 'person'): Promise<Status> {
    return this.serial(async () => {
      this.open = null;
      this.forget();
      // until the session is ended below, nothing may resume it (a rules rebuild asking "unlocked?" meanwhile)
      this.locking = true;
      try {
        await this.onLocking().catch((e: unknown) =>
          console.error('keyhole: withdrawing at lock failed', e instanceof Error ? e.name : typeof e),
        );
        await endSession(this.db, this.session);
      } finally {
        this.locking = false;
      }
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
      stored.map(async (s) => summary(s, await openSecretMeta(keysFor(open, s.epoch), open.vaultId, s), this.now())),
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
      const { stored, meta } = await this.prepare(open, input, await this.nameIndex());
      await this.db.add('secrets', stored);
      const s = summary(stored, meta, meta.createdAt);
      this.changed(s.id, s);
      return s;
    });
  }

  /**
   * Many secrets at once, all or none (an import, a restored backup): every one is checked and
   * sealed as createSecret would, before one transaction writes them all. A problem with any of
   * them writes nothing, and says which entry it was. `progress` hears how many are sealed so far.
   */
  importSecrets(inputs: readonly SecretInput[], progress: (sealed: number) => void = () => {}): Promise<SecretSummary[]> {
    return this.serial(async () => {
      const open = await this.unlocked();
      const taken = new Set((await this.nameIndex()).keys());
      const sealed: { stored: StoredSecret; meta: SecretMeta }[] = [];
      for (const [i, input] of inputs.entries()) {
        let one: { stored: StoredSecret; meta: SecretMeta };
        try {
          one = await this.prepare(open, input, taken);
        } catch (e) {
          const code = e instanceof RpcError ? e.code : 'bad-input';
          throw new RpcError(code, `entry ${i + 1}: ${e instanceof Error ? e.message : 'not valid'}`);
        }
        sealed.push(one);
        taken.add(one.meta.name);
        if (sealed.length % 100 === 0) progress(sealed.length);
      }
      const tx = this.db.transaction('secrets', 'readwrite');
      await Promise.all([...sealed.map((x) => tx.store.add(x.stored)), tx.done]);
      progress(sealed.length);
      // new ids: nothing opened or indexed under them to drop; the worker hears once, not per secret
      const made = sealed.map(({ stored, meta }) => summary(stored, meta, meta.createdAt));
      for (const s of made) this.byName?.set(s.name, s);
      this.onSecretChanged(made.map((s) => s.id));
      return made;
    });
  }

  /** A new secret checked and sealed, not yet stored. `taken`: the names it must not have. */
  private async prepare(
    open: Open,
    input: SecretInput,
    taken: { has(name: string): boolean },
  ): Promise<{ stored: StoredSecret; meta: SecretMeta }> {
    const name = checkName(input.name);
    if (taken.has(name)) throw new RpcError('name-taken', 'a secret with this name exists');
    const t = this.now();
    const kind = checkKind(input.kind);
    // a refresh token is spent by the device that created it until another takes the role over
    const config = checkCredentialConfig(kind, {
      oauth2: { refresher: open.header.vaultId, ...input.oauth2 },
      aws: input.aws,
      distant: input.distant,
    });
    const value = isMinted(kind) ? await checkedMaterial(kind, config, input.material) : checkValue(input.value);
    const meta: SecretMeta = {
      name,
      rule: checkRule(input.rule),
      notes: input.notes ?? '',
      createdAt: t,
      updatedAt: t,
      ...(isMinted(kind) ? { kind, ...config } : {}),
      ...(input.expiresAt ? { expiresAt: checkExpiry(input.expiresAt, t) as number } : {}),
      values: [{ n: 1, state: 'current', createdAt: t }],
    };
    const place = { vaultId: open.vaultId, id: crypto.randomUUID(), version: 1, epoch: open.epoch };
    return { stored: await sealSecret(keysFor(open, open.epoch), place, meta, value), meta };
  }

  /** Any change re-seals all three records at version + 1 under a fresh data key. */
  updateSecret(patch: SecretPatch): Promise<SecretSummary> {
    return this.serial(() => this.rewrite(patch));
  }

  /**
   * A refresh token the token endpoint rotated: stored over the old one at once (version + 1,
   * synced like any change), before the access token minted with it is used. The old one is
   * never sent again: it is gone from the vault when this resolves. `atVersion`: at least this
   * version (the team's refresh-token chain may be ahead of this device's copy).
   */
  setRefreshToken(id: string, refreshToken: string, atVersion?: number): Promise<SecretSummary> {
    return this.serial(async () => {
      const open = await this.unlocked();
      const old = await this.getStored(id);
      const material = decodeMaterial(await openSecretValue(keysFor(open, old.epoch), open.vaultId, old));
      // the old one is dead at the server once rotated: destroyed, not kept for roll back
      return this.rewrite({ id, material: { ...material, refreshToken } }, { compromised: true, atVersion });
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

  /**
   * The person's edit. A new value (or material) becomes current at once and the old one is kept
   * as previous for the default grace, as a promotion would; `replaceAt` (a rotated refresh token:
   * the old one is dead at the server) destroys the old one instead.
   */
  private async rewrite(patch: SecretPatch, opts: { compromised?: boolean; atVersion?: number } = {}): Promise<SecretSummary> {
    return this.transform(
      patch.id,
      async (o) => {
        const kind = o.meta.kind ?? 'static';
        const name = patch.name === undefined ? o.meta.name : checkName(patch.name);
        if (name !== o.meta.name) await this.assertNameFree(name);
        const config = checkCredentialConfig(kind, {
          oauth2: { ...o.meta.oauth2, ...patch.oauth2 },
          aws: patch.aws === undefined ? o.meta.aws : { ...o.meta.aws, ...patch.aws },
          distant: patch.distant === undefined ? o.meta.distant : { ...o.meta.distant, ...patch.distant },
        });
        let value: string | undefined;
        if (isMinted(kind)) {
          if (patch.value !== undefined)
            throw new RpcError('bad-input', 'a minted credential has no value of its own: change its material');
          // new material, or the stored one re-checked against a changed configuration
          if (patch.material !== undefined || patch.oauth2 !== undefined || patch.aws !== undefined || patch.distant !== undefined)
            value = await checkedMaterial(kind, config, patch.material ?? decodeMaterial(o.current));
          if (value === o.current) value = undefined;
        } else if (patch.value !== undefined) value = checkValue(patch.value);
        const meta: SecretMeta = {
          ...o.meta,
          name,
          rule: patch.rule === undefined ? o.meta.rule : checkRule(patch.rule),
          notes: patch.notes ?? o.meta.notes,
          ...config,
        };
        const expiresAt = patch.expiresAt === undefined ? o.meta.expiresAt : checkExpiry(patch.expiresAt, this.now());
        const withExpiry = { ...meta, expiresAt } as SecretMeta;
        if (expiresAt === undefined || expiresAt === null) delete (withExpiry as { expiresAt?: number }).expiresAt;
        if (value === undefined) return { ...o, meta: withExpiry };
        const staged = versions.stage(o.values, this.now());
        const others = new Map(o.others);
        if (staged.dropped !== undefined) others.delete(staged.dropped);
        others.set(staged.n, value);
        return this.promoted({ ...o, meta: withExpiry, values: staged.values, others }, opts.compromised ? { compromised: true } : {});
      },
      opts.atVersion,
    );
  }

  // --- rotation ---------------------------------------------------------------------------

  /**
   * Stages a new value (a minted kind: new material, merged over the current one) beside the
   * current one; it is not used until promoted.
   */
  rotate(id: string, input: { value?: string; material?: Partial<OAuth2Material> }): Promise<SecretSummary> {
    return this.serial(() =>
      this.transform(id, async (o) => {
        const kind = o.meta.kind ?? 'static';
        // new material replaces what it names (a new refresh token keeps the client secret); an
        // AWS access key is replaced whole (an old session token never outlives its key)
        const m = input.material as unknown;
        const mergeable = kind !== 'aws' && typeof m === 'object' && m !== null && !Array.isArray(m);
        const merged = mergeable ? { ...decodeMaterial(o.current), ...m } : m;
        const value = isMinted(kind) ? await checkedMaterial(kind, o.meta, merged) : checkValue(input.value);
        const staged = versions.stage(o.values, this.now());
        const others = new Map(o.others);
        if (staged.dropped !== undefined) others.delete(staged.dropped);
        others.set(staged.n, value);
        return { ...o, values: staged.values, others };
      }),
    );
  }

  /**
   * The staged value becomes current for every request from now on (one record write; the
   * caller swaps rules and caches). The old one stays for roll back for `graceSeconds` (default
   * 24 h), or is destroyed at once if `compromised`.
   */
  promote(id: string, p: versions.Promotion = {}): Promise<SecretSummary> {
    return this.serial(() => this.transform(id, async (o) => this.promoted(o, p)));
  }

  /** The previous value is current again (within its grace); the one rolled back from is staged. */
  rollBack(id: string): Promise<SecretSummary> {
    return this.serial(() =>
      this.transform(id, async (o) => {
        const r = versions.rollBack(o.values, this.now());
        const prev = versions.current(r.values).n;
        const others = new Map(o.others);
        const value = others.get(prev);
        if (value === undefined) throw new CoreError('not-found', 'the previous value is destroyed');
        others.delete(prev);
        others.set(versions.current(o.values).n, o.current);
        for (const n of r.destroyed) others.delete(n);
        return { ...o, current: value, values: r.values, others };
      }),
    );
  }

  /** Value `n` (staged or previous) destroyed now: its ciphertext and data key are deleted. */
  destroyValue(id: string, n: number): Promise<SecretSummary> {
    return this.serial(() =>
      this.transform(id, async (o) => {
        const others = new Map(o.others);
        others.delete(n);
        return { ...o, values: versions.destroy(o.values, n, this.now()), others };
      }),
    );
  }

  /** The staged value of `id`, to test before promotion (the caller makes one request with it). */
  async stagedValue(id: string): Promise<string> {
    const open = await this.unlocked();
    const s = await this.getStored(id);
    const meta = await openSecretMeta(keysFor(open, s.epoch), open.vaultId, s);
    if (isMinted(meta.kind)) throw new RpcError('bad-input', 'a minted credential is tested by minting: promote it and refresh');
    const staged = versions.staged(valuesOf(meta));
    if (!staged) throw new RpcError('bad-input', 'nothing is staged');
    return openOtherValue(keysFor(open, s.epoch), open.vaultId, s, staged.n);
  }

  /**
   * Destroys what is due at `now`, locked or not (no key is needed to delete ciphertext): values
   * past their grace, and every value of an expired secret. Returns what it destroyed.
   */
  async destroyDue(): Promise<{ id: string; expired: boolean; values: number[] }[]> {
    const now = this.now();
    const done: { id: string; expired: boolean; values: number[] }[] = [];
    const tx = this.db.transaction('secrets', 'readwrite');
    for (const s of await tx.store.getAll()) {
      const after = destroyDue(s, now);
      if (!after) continue;
      await tx.store.put(after);
      const expired = s.value.length > 0 && after.value.length === 0;
      const kept = new Set((after.others ?? []).map((o) => o.n));
      done.push({ id: s.id, expired, values: (s.others ?? []).filter((o) => !kept.has(o.n)).map((o) => o.n) });
    }
    await tx.done;
    for (const d of done) this.inUse.delete(d.id);
    if (done.length > 0) {
      this.byName = null; // rebuilt on next use, with the new states
      this.onSecretChanged(done.map((d) => d.id));
    }
    return done;
  }

  /** When destroyDue next has something to do (for the alarm), or undefined. */
  async nextDestruction(): Promise<number | undefined> {
    const times = (await this.db.getAll('secrets')).flatMap((s) => {
      const t = nextDestructionOf(s);
      return t === undefined ? [] : [t];
    });
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  /** A promotion applied to opened state: the staged value current, the old one previous or gone. */
  private promoted(o: Opened, p: versions.Promotion): Opened {
    const r = versions.promote(o.values, this.now(), p);
    const n = versions.current(r.values).n;
    const value = o.others.get(n);
    if (value === undefined) throw new CoreError('not-found', 'the staged value is destroyed');
    const others = new Map(o.others);
    others.delete(n);
    const old = versions.current(o.values).n;
    if (!r.destroyed.includes(old)) others.set(old, o.current);
    for (const d of r.destroyed) others.delete(d);
    return { ...o, current: value, values: r.values, others };
  }

  /**
   * Opens secret `id` whole (metadata, current value, live other values), applies `change`, and
   * stores the result at version + 1 under fresh data keys, compare-and-swap on the version.
   */
  private async transform(id: string, change: (o: Opened) => Promise<Opened>, atVersion?: number): Promise<SecretSummary> {
    const open = await this.unlocked();
    const old = await this.getStored(id);
    const keys = keysFor(open, old.epoch);
    const meta = await openSecretMeta(keys, open.vaultId, old);
    const now = this.now();
    const held = new Set((old.others ?? []).map((o) => o.n));
    const values = versions.asOf(valuesOf(meta), now, (n) => held.has(n));
    const others = new Map<number, string>();
    for (const v of values)
      if (v.state === 'staged' || v.state === 'previous') others.set(v.n, await openOtherValue(keys, open.vaultId, old, v.n));
    const current = await openSecretValue(keys, open.vaultId, old);
    const next = await change({ meta, current, values, others });
    const live = next.values.filter((v) => v.state === 'staged' || v.state === 'previous');
    const newMeta: SecretMeta = { ...next.meta, updatedAt: now, values: next.values };
    const place = { vaultId: open.vaultId, id: old.id, version: Math.max(old.version + 1, atVersion ?? 0), epoch: open.epoch };
    const stored = await sealSecret(
      keysFor(open, open.epoch),
      place,
      newMeta,
      next.current,
      live.map((v) => ({
        n: v.n,
        value: next.others.get(v.n) as string,
        ...(v.destroyAt !== undefined ? { destroyAt: v.destroyAt } : {}),
      })),
    );
    const tx = this.db.transaction('secrets', 'readwrite');
    const latest = await tx.store.get(old.id);
    if (!latest || latest.version !== old.version) {
      tx.done.catch(() => {}); // the abort below rejects it; that is the expected outcome
      tx.abort();
      throw new RpcError('not-found', 'secret changed or was deleted; reload and try again');
    }
    await tx.store.put(stored);
    await tx.done;
    const s = summary(stored, newMeta, now);
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
    this.onSecretChanged([id]);
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
    const meta = await this.secretById(id);
    if (meta && isExpired(meta, this.now())) throw new CoreError('expired', 'the secret has expired', id);
    const hit = this.inUse.get(id);
    if (hit) return hit;
    // a minted kind's value is the material it mints with: it never goes on a request
    if (isMinted(meta?.kind)) throw new RpcError('bad-input', 'a minted credential is used through its tokens');
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

  /**
   * Every secret's settings and current value, after the passphrase is checked again: what a
   * backup holds. Expired secrets (their values are destroyed) and damaged records are counted, not returned.
   */
  exportable(passphrase: string): Promise<{ secrets: { meta: SecretMeta; value: string }[]; left: number }> {
    return this.serial(async () => {
      const open = await this.unlocked();
      wipe(await this.checkPassphrase(open.header, passphrase));
      const secrets: { meta: SecretMeta; value: string }[] = [];
      let left = 0;
      for (const s of await this.db.getAll('secrets')) {
        try {
          const keys = keysFor(open, s.epoch);
          const meta = await openSecretMeta(keys, open.vaultId, s);
          if (meta.expiresAt !== undefined && meta.expiresAt <= this.now()) left++;
          else secrets.push({ meta, value: await openSecretValue(keys, open.vaultId, s) });
        } catch {
          left++; // damaged: listed as such in the secrets section
        }
      }
      return { secrets: secrets.sort((a, b) => a.meta.name.localeCompare(b.meta.name)), left };
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
    if (this.locking) return null;
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
    return this.throttled('wrong-passphrase', () => openVault(header, passphrase));
  }

  /**
   * Opens the root one way or another under one growing delay: wrong passphrases and wrong
   * passkeys count together, so switching between them gains an attacker nothing.
   */
  private async throttled(
    wrong: 'wrong-passphrase' | 'wrong-passkey',
    open: () => Promise<Uint8Array<ArrayBuffer>>,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const t = await this.db.get('throttle', 'unlock');
    const wait = retryAfterMs(t, this.now());
    if (wait > 0) throw new RpcError('throttled', 'too many failed unlocks; wait before trying again', { retryAfterMs: wait });
    try {
      const root = await open();
      if (t) await this.db.delete('throttle', 'unlock');
      return root;
    } catch (e) {
      if (!isCoreError(e, wrong)) throw e;
      const failures = (t?.failures ?? 0) + 1;
      const next = { failures, lastFailureAt: this.now() };
      await this.db.put('throttle', next, 'unlock');
      throw new RpcError(wrong, e.message, { retryAfterMs: retryAfterMs(next, this.now()) });
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

function summary(s: StoredSecret, m: SecretMeta, now: number): SecretSummary {
  const kind: SecretKind = m.kind ?? 'static';
  const held = new Set((s.others ?? []).map((o) => o.n));
  return {
    values: versions.asOf(valuesOf(m), now, (n) => held.has(n)),
    expired: s.value.length === 0 || (m.expiresAt !== undefined && m.expiresAt <= now),
    ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}),
    id: s.id,
    name: m.name,
    rule: m.rule,
    notes: m.notes,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
    version: s.version,
    kind,
    ...(m.oauth2 ? { oauth2: m.oauth2 } : {}),
    ...(m.aws ? { aws: m.aws } : {}),
    ...(m.distant ? { distant: m.distant } : {}),
  };
}

/** The material of a minted kind, checked and encoded as its stored value; a private key must import. */
async function checkedMaterial(kind: MintedKind, config: CredentialConfig, raw: unknown): Promise<string> {
  const material = checkMaterial(kind, config, raw);
  if (material.privateKeyPem) {
    let alg: string;
    try {
      alg = (await importSigningKeyPem(material.privateKeyPem)).alg;
    } catch (e) {
      throw new RpcError('bad-input', e instanceof Error ? e.message : 'the private key does not import');
    }
    if ((kind === 'google-service-account' || kind === 'github-app') && alg !== 'RS256')
      throw new RpcError('bad-input', kind === 'github-app' ? 'a GitHub App key is an RSA key' : 'a service account key is an RSA key');
  }
  return checkValue(encodeMaterial(material));
}

function checkNewPassphrase(p: unknown): asserts p is string {
  if (typeof p !== 'string' || [...p].length < MIN_PASSPHRASE_LENGTH) {
    throw new RpcError('weak-passphrase', `passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
}

/** Whether `s` may no longer be used at `now` (its values may not be destroyed yet: the sweep runs after). */
export function isExpired(s: Pick<SecretSummary, 'expired' | 'expiresAt'>, now: number): boolean {
  return s.expired || (s.expiresAt !== undefined && s.expiresAt <= now);
}

/** Ten years: an expiry beyond that is no expiry worth the name. */
const MAX_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;

/** An expiry a person sets: a time in the future (null clears it). */
function checkExpiry(t: unknown, now: number): number | null {
  if (t === null) return null;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t <= now || t > now + MAX_EXPIRY_MS)
    throw new RpcError('bad-input', 'expiry must be a time in the next ten years');
  return t;
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

/** 32 bytes from base64 (a PRF output or salt), or a typed error that does not repeat the input. */
function prfBytes(b64: unknown, what = 'prf'): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    if (typeof b64 === 'string' && b64.length <= 64) bytes = fromBase64(b64);
  } catch {
    // reported below
  }
  if (bytes?.length !== PRF_LENGTH) throw new RpcError('bad-input', `${what} must be ${PRF_LENGTH} bytes, base64`);
  return bytes;
}

function passkeyView(p: StoredPasskey): PasskeyView {
  return { id: p.id, name: p.name, createdAt: p.createdAt, salt: toBase64(p.salt) };
}
