/**
 * Keeps this device's secrets and a distant vault in step (docs/sync.md).
 *
 * State-based, not a queue of operations: every run pulls and verifies the log (replica.ts),
 * then compares each local secret with where it stood when this device last agreed with the
 * log (its heads, and the local version then). Changed here: pushed, naming the heads it was based on. Changed there:
 * taken. Changed on both: both versions stay in the log as two heads, a conflict the person
 * resolves; nothing is dropped. Because the comparison is of stored state, an edit made
 * offline, or before a crash, or while a push was unanswered, is found again by the next run,
 * and a version already in the log (same blob) is never sent twice.
 *
 * Free of chrome.*: the Node tests run it on fake-indexeddb against the real server.
 */

import { unwrap } from 'idb';
import { isLoopbackHost } from '../../core/agents/policy.ts';
import type { SyncConflict, SyncStatus } from '../../core/api.ts';
import { wipe } from '../../core/bytes.ts';
import { newDevice, openDevice, pairingCode, parsePairingCode, sealDevice } from '../../core/crypto/device.ts';
import { deriveItemsKey, type VaultKeys } from '../../core/crypto/keys.ts';
import { openRecord, sealRecord } from '../../core/crypto/seal.ts';
import { newVaultKey, unwrapVaultKey, vaultKeyPlace, wrapVaultKey } from '../../core/crypto/share.ts';
import { deriveTeamKeys, type TeamKeys } from '../../core/crypto/team.ts';
import { decodeItemBlob, encodeItemBlob } from '../../core/sync/item-blob.ts';
import { blobHash, type EntryBody, governance, hasRole, isLogError, LIMITS, type Membership } from '../../core/sync/log.ts';
import {
  decodeSealedDevice,
  encodeSealedDevice,
  formatRecoveryKey,
  newRecoverySecret,
  parseRecoveryKey,
  recoveryLookup,
  recoverySealKey,
} from '../../core/sync/recovery.ts';
import { openSecretMeta, resealSecret, type StoredSecret } from '../../core/vault/secrets.ts';
import { type DeviceChain, pushTeamAudit, readTeamAudit, type TeamAuditEntry } from '../audit/team-audit.ts';
import type { TeamHandle } from '../credentials/team-tier.ts';
import type { KeyholeDB, SyncedItem, SyncLink, SyncState } from '../db.ts';
import { RpcError } from '../errors.ts';
import type { Keyring, VaultService } from '../vault/vault-service.ts';
import { Replica, type ReplicaSnapshot } from './replica.ts';
import { type EngineToken, fetchRecovery, type Pending, SyncError, VaultClient } from './vault-client.ts';

const FRESH: SyncState = { failures: 0, nextAttemptAt: 0 };
const MAX_BACKOFF_MS = 5 * 60_000;
const COMMIT_CHUNK = 500;

/** An edit to send: the entry (and blob), and the local version it stands for. */
type Outgoing = { readonly item: string; readonly pending: Pending; readonly version?: number };

export type SyncOptions = { readonly fetch?: typeof fetch; readonly now?: () => number; readonly random?: () => number };

/** The distant vault's origin, or RpcError: https, or http on a loopback host only. */
export function serverOrigin(x: unknown): string {
  let u: URL;
  try {
    u = new URL(String(x));
  } catch {
    throw new RpcError('bad-input', 'server must be a URL');
  }
  if (u.username || u.password || !(u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname)))) {
    throw new RpcError('bad-input', 'server must be https (or http on a loopback host), without user info');
  }
  return u.origin;
}

/** Backoff after `failures` failed runs: 2 s doubling to 5 minutes, with jitter so devices spread out. */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  return Math.round(Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(failures, 16)) * (0.5 + random() / 2));
}

export class SyncService {
  #client: { key: string; client: VaultClient } | undefined;
  #replica: Replica | undefined;
  /** the seq of the replica last written to IndexedDB (a run that learned nothing writes nothing big) */
  #savedSeq: number | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #progress: { seq: number; head: number } | undefined;
  /** talking to the server and changing the replica happen one at a time (runs, approvals, removals) */
  #netQueue: Promise<unknown> = Promise.resolve();
  readonly #fetch: typeof fetch | undefined;
  readonly #now: () => number;
  readonly #random: () => number;
  /** the status may have changed (progress, a finished run): e.g. tell open options pages */
  onChange: () => void = () => {};

  constructor(
    private readonly db: KeyholeDB,
    private readonly vault: VaultService,
    opts: SyncOptions = {},
  ) {
    this.#fetch = opts.fetch;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
  }

  /** On lock: drop the unwrapped device keys, the session, the in-memory replica and the team keys. */
  forget(): void {
    this.#team = undefined;
    this.#teamKeysByEpoch.clear();
    this.#client = undefined;
    this.#replica = undefined;
    this.#savedSeq = undefined;
  }

  // --- setting up -------------------------------------------------------------------------

  /**
   * Start syncing this device's vault to `server`: a new distant vault with this device as its
   * creator, and a recovery key, returned here once and never stored on this device.
   */
  async enable(server: string, deviceName: string): Promise<SyncStatus & { recoveryKey: string }> {
    const origin = serverOrigin(server);
    let recoveryKey = '';
    await this.vault.exclusive(() =>
      this.#guard(async () => {
        if (await this.db.get('syncLink', 'link')) throw new RpcError('already-initialized', 'this device already syncs');
        const ring = await this.vault.keyring();
        const { sealed, client } = await this.#newDevice(origin, deviceName, ring);
        const vault = crypto.randomUUID();
        const replica = await client.createVault(vault);
        const key = newVaultKey();
        try {
          // the recovery key is a member device of its own, its private keys sealed under the key
          const secret = newRecoverySecret();
          const rec = await newDevice('recovery key', { extractable: true });
          await new VaultClient(origin, rec, this.#clientOptions()).register();
          const wrap = async (to: typeof rec.public) => wrapVaultKey(key, to, { vault, epoch: 1 });
          await client.push(replica, [
            { body: { type: 'key.wrap', to: client.device.public.id, wrapped: await wrap(client.device.public) } },
            { body: { type: 'member.add', device: rec.public } },
            { body: { type: 'key.wrap', to: rec.public.id, wrapped: await wrap(rec.public) } },
          ]);
          const sealedRec = await sealDevice(rec, await recoverySealKey(secret), vault);
          await client.putRecovery(vault, await recoveryLookup(secret), encodeSealedDevice(sealedRec));
          recoveryKey = formatRecoveryKey(secret);
          wipe(secret);
          // Every secret moves to the synced vault: re-sealed under its items key, at the next version.
          const target: VaultKeys = { ...ring.local, items: await deriveItemsKey(key, vault) };
          const moved: StoredSecret[] = [];
          for (const s of await this.db.getAll('secrets'))
            moved.push(await reseal(ring, s, { id: s.id, version: s.version + 1 }, { keys: target, vaultId: vault, epoch: 1 }));
          const sealedKey = await sealRecord(ring.local.items, vaultKeyPlace(vault, 1), key);
          const link: SyncLink = { server: origin, device: sealed, vault, keys: [{ epoch: 1, sealed: sealedKey }] };
          // the link, the sync state and the re-sealed secrets in one transaction: all or none
          const tx = this.db.transaction(['syncLink', 'syncState', 'syncReplica', 'secrets'], 'readwrite');
          await Promise.all([
            tx.objectStore('syncLink').put(link, 'link'),
            tx.objectStore('syncState').put(FRESH, 'state'),
            tx.objectStore('syncReplica').put(replica.snapshot(), 'replica'),
            ...moved.map((s) => tx.objectStore('secrets').put(s)),
            tx.done,
          ]);
        } finally {
          wipe(key);
        }
        this.vault.reload();
        this.#replica = replica;
      }),
    );
    return { ...(await this.syncNow()), recoveryKey };
  }

  /**
   * Join with the recovery key instead of another device's approval: fetch the sealed recovery
   * device, open it with the key, and as that member add this device and send it the vault key.
   */
  async recover(server: string, recoveryKey: string, deviceName: string): Promise<SyncStatus> {
    const origin = serverOrigin(server);
    const secret = parseRecoveryKey(recoveryKey);
    if (secret === null) throw new RpcError('bad-input', 'a recovery key looks like KH1- and 33 letters and digits');
    try {
      await this.vault.exclusive(() =>
        this.#guard(async () => {
          await this.#assertCanJoin();
          const found = await fetchRecovery(origin, await recoveryLookup(secret), this.#fetch);
          const vault = found.vault;
          let rec: Awaited<ReturnType<typeof openDevice>>;
          try {
            rec = await openDevice(decodeSealedDevice(found.sealed), await recoverySealKey(secret), vault);
          } catch {
            throw new RpcError('bad-input', 'this recovery key does not open what the server holds for it');
          }
          const ring = await this.vault.keyring();
          const { sealed, client } = await this.#newDevice(origin, deviceName, ring);
          const recClient = new VaultClient(origin, rec, this.#clientOptions());
          const replica = new Replica(vault);
          await recClient.pull(replica).catch((e: unknown) => {
            // a removed member is answered as if the vault did not exist
            if (e instanceof SyncError && e.code === 'not-found')
              throw new RpcError('not-found', 'this recovery key was removed from the vault');
            throw e;
          });
          const m = replica.membership;
          const wrap = m && replica.wrapsFor(rec.public.id).find((w) => w.epoch === m.epoch);
          if (!m || !wrap) throw new RpcError('not-found', 'this recovery key was removed from the vault');
          const key = await unwrapVaultKey(wrap.wrapped, rec, { vault, epoch: m.epoch });
          try {
            const wrapped = await wrapVaultKey(key, client.device.public, { vault, epoch: m.epoch });
            await recClient.push(replica, [
              { body: { type: 'member.add', device: client.device.public } },
              { body: { type: 'key.wrap', to: client.device.public.id, wrapped } },
            ]);
          } finally {
            wipe(key);
          }
          await this.#saveLink({ server: origin, device: sealed, vault: null, keys: [] });
        }),
      );
    } finally {
      wipe(secret);
    }
    return this.syncNow(); // takes the vault as a joined device does
  }

  /**
   * Make this device ready to be added to a vault another device syncs: its keys are made and
   * registered, and the pairing code shown to the person, who types it on that other device.
   * The vault here must be empty: the synced vault replaces it.
   */
  async join(server: string, deviceName: string): Promise<SyncStatus> {
    const origin = serverOrigin(server);
    await this.vault.exclusive(async () => {
      await this.#assertCanJoin();
      const ring = await this.vault.keyring();
      const { sealed } = await this.#newDevice(origin, deviceName, ring);
      await this.#saveLink({ server: origin, device: sealed, vault: null, keys: [] });
    });
    return this.status();
  }

  /** On a member device: add the device whose pairing code the person typed, and send it the vault key. */
  async approve(code: string): Promise<{ id: string; name: string }> {
    const prefix = parsePairingCode(code);
    if (prefix === null) throw new RpcError('bad-input', 'a pairing code is 20 hexadecimal digits');
    await this.syncNow();
    return this.#net(() =>
      this.#guard(async () => {
        const { link, client, replica } = await this.#ready();
        const d = await client.pairingDevice(prefix);
        const m = replica.membership;
        if (m === undefined) throw new RpcError('not-found', 'the vault is not synced yet');
        if (!m.members.has(d.id)) {
          const key = await this.#vaultKey(link, m.epoch);
          try {
            const wrapped = await wrapVaultKey(key, d, { vault: replica.vault, epoch: m.epoch });
            await client.push(replica, [{ body: { type: 'member.add', device: d } }, { body: { type: 'key.wrap', to: d.id, wrapped } }]);
          } finally {
            wipe(key);
          }
          await this.#saveReplica(replica);
        }
        return { id: d.id, name: d.name };
      }),
    );
  }

  /**
   * Remove a member device. A new key epoch starts: a fresh vault key goes to the remaining
   * members only, every secret is re-sealed under it, and the person is asked to rotate the
   * values the removed device could read (they are listed in the status until changed).
   */
  async removeMember(device: string): Promise<SyncStatus> {
    await this.syncNow();
    await this.#net(() =>
      this.#guard(async () => {
        const { link, client, replica } = await this.#ready();
        const m = replica.membership;
        if (m === undefined || !m.members.has(device)) throw new RpcError('not-found', 'no such member');
        if (device === client.device.public.id) throw new RpcError('bad-input', 'a device cannot remove itself');
        const epoch = m.epoch + 1;
        const key = newVaultKey();
        try {
          const out: Pending[] = [{ body: { type: 'member.remove', device } }];
          for (const d of m.members.values()) {
            if (d.id !== device)
              out.push({ body: { type: 'key.wrap', to: d.id, wrapped: await wrapVaultKey(key, d, { vault: replica.vault, epoch }) } });
          }
          await client.push(replica, out);
          await this.#saveReplica(replica);
          await this.#keepKey(link, epoch, key);
        } finally {
          wipe(key);
        }
      }),
    );
    await this.vault.exclusive(async () => {
      const ring = await this.vault.keyring();
      const state = await this.#state();
      const rotate: { item: string; version: number }[] = [];
      const resealed: StoredSecret[] = [];
      for (const s of await this.db.getAll('secrets')) {
        if (s.epoch >= ring.epoch) continue;
        const n = await reseal(ring, s, { id: s.id, version: s.version + 1 });
        resealed.push(n);
        rotate.push({ item: s.id, version: n.version });
      }
      const tx = this.db.transaction(['secrets', 'syncState'], 'readwrite');
      await Promise.all([
        ...resealed.map((s) => tx.objectStore('secrets').put(s)),
        tx.objectStore('syncState').put({ ...state, rotate: [...(state.rotate ?? []), ...rotate] }, 'state'),
        tx.done,
      ]);
      this.vault.reload();
    });
    return this.syncNow();
  }

  /** Keep one version of a conflicted item: it becomes the next version, replacing all heads. */
  async resolve(item: string, keep: string): Promise<SyncStatus> {
    await this.vault.exclusive(async () => {
      const replica = await this.#loadReplica();
      const heads = replica?.heads(item) ?? [];
      const chosen = heads.find((h) => h.entry === keep);
      const bytes = chosen && replica?.blob(chosen.blob);
      if (!chosen || !bytes) throw new RpcError('not-found', 'no such version');
      const ring = await this.vault.keyring();
      const versions = heads.map((h) => {
        const b = replica?.blob(h.blob);
        return b ? decodeItemBlob(b, item).version : 0;
      });
      const local = await this.db.get('secrets', item);
      const next = Math.max(local?.version ?? 0, ...versions) + 1;
      await this.db.put('secrets', await reseal(ring, decodeItemBlob(bytes, item), { id: item, version: next }));
      this.vault.reload();
    });
    return this.syncNow();
  }

  /**
   * Fork check by hand: the head fingerprint another member device shows (`seq:` and 40 hex
   * digits), typed here. A different entry at that seq means the server showed the two devices
   * different histories; a seq this device cannot reach means it withholds entries. Either
   * becomes the warning that stops sync.
   */
  async compareHead(text: string): Promise<{ result: 'same' | 'fork' | 'withheld'; seq: number }> {
    const m = /^\s*(\d{1,12})\s*:\s*([0-9a-fA-F\s]+)$/.exec(text);
    const seq = Number(m?.[1]);
    const prefix = (m?.[2] ?? '').replace(/\s/g, '').toLowerCase();
    if (!m || prefix.length !== 40 || seq < 1)
      throw new RpcError('bad-input', 'a head fingerprint looks like 12:9158 db85 … (seq, colon, 40 hex digits)');
    let replica = await this.#loadReplica();
    if (!replica || seq > replica.seq) {
      await this.syncNow();
      replica = await this.#loadReplica();
    }
    const ours = replica?.hashAt(seq);
    const at = this.#now();
    if (ours === undefined) {
      await this.#patch({
        warning: { code: 'rollback', message: `another device saw entry ${seq}, which this server does not deliver`, at },
      });
      return { result: 'withheld', seq };
    }
    if (!ours.startsWith(prefix)) {
      await this.#patch({
        warning: { code: 'fork', message: `another device saw a different entry ${seq}: the server shows you different histories`, at },
      });
      return { result: 'fork', seq };
    }
    return { result: 'same', seq };
  }

  /** The person read a warning, or rotated (or chose not to rotate) the listed values. */
  async dismiss(what: 'warning' | 'rotation'): Promise<SyncStatus> {
    const s = await this.#state();
    if (what === 'warning') await this.db.put('syncState', { ...s, warning: undefined }, 'state');
    else await this.db.put('syncState', { ...s, rotate: [] }, 'state');
    return this.status();
  }

  // --- running ----------------------------------------------------------------------------

  /** One sync run at a time; a call during a run makes one more run after it. */
  async syncNow(): Promise<SyncStatus> {
    if (this.#running) {
      this.#again = true;
      await this.#running;
    } else {
      this.#running = (async () => {
        do {
          this.#again = false;
          await this.#net(() => this.#run());
        } while (this.#again);
      })().finally(() => {
        this.#running = undefined;
      });
      await this.#running;
    }
    return this.status();
  }

  /** Whether a run is due now (the alarm's question): linked, unlocked, and past any backoff. */
  async due(): Promise<boolean> {
    if (!(await this.db.get('syncLink', 'link'))) return false;
    if (!(await this.vault.isUnlocked())) return false;
    const s = await this.#state();
    return s.warning === undefined && this.#now() >= s.nextAttemptAt;
  }

  async #run(): Promise<void> {
    const link0 = await this.db.get('syncLink', 'link');
    if (!link0 || !(await this.vault.isUnlocked())) return;
    const state = await this.#state();
    if (state.warning) return; // a lying server: nothing more until the person has read why
    try {
      const client = await this.#clientFor(link0);
      let link = link0;
      if (link.vault === null) {
        const joined = await this.#finishJoin(link, client);
        if (!joined) return await this.#patch({ lastSyncAt: this.#now(), failures: 0, nextAttemptAt: 0, lastError: undefined });
        link = joined;
      }
      const replica = (await this.#loadReplica()) ?? new Replica(link.vault as string);
      await client
        .pull(replica, (seq, head) => this.#report(seq, head))
        .catch((e: unknown) => {
          // the server answers a non-member as if the vault did not exist
          if (e instanceof SyncError && e.code === 'not-found') throw new SyncError('not-found', 'this device was removed from the vault');
          throw e;
        });
      this.#replica = replica;
      const m = replica.membership;
      if (m !== undefined && !m.members.has(client.device.public.id))
        throw new SyncError('refused', 'this device was removed from the vault');
      await this.#learnEpoch(link, client, replica);
      const out = await this.vault.exclusive(() => this.#reconcile(replica));
      for (let i = 0; i < out.length; i += COMMIT_CHUNK) {
        const chunk = out.slice(i, i + COMMIT_CHUNK);
        await client.push(
          replica,
          chunk.map((o) => o.pending),
        );
        await this.vault.exclusive(() => this.#afterPush(replica, chunk));
      }
      // the team audit rides along; a failure there is retried next run and never holds up the items
      await this.#pushAudit(link, client, replica).catch(() => {});
      await this.#patch({ lastSyncAt: this.#now(), failures: 0, nextAttemptAt: 0, lastError: undefined });
    } catch (e) {
      await this.#failed(e);
    } finally {
      this.#progress = undefined;
      this.onChange();
    }
  }

  async #failed(e: unknown): Promise<void> {
    const at = this.#now();
    if (isLogError(e)) {
      // The server lied. The replica refused the page whole; keep the last good state and stop.
      this.#replica = undefined;
      await this.#patch({ warning: { code: e.code, message: e.message, at } });
      return;
    }
    if (e instanceof RpcError && e.code === 'locked') return;
    const s = await this.#state();
    const failures = s.failures + 1;
    const problem = e instanceof SyncError ? { code: e.code, message: e.message, at } : { code: 'internal', message: 'sync failed', at };
    if (!(e instanceof SyncError)) console.error('keyhole: sync failed', e instanceof Error ? e.name : typeof e);
    await this.#patch({ lastError: problem, failures, nextAttemptAt: at + backoffMs(failures, this.#random) });
  }

  /** A joining device: has a member added it and sent it the key yet? Then take the vault. */
  async #finishJoin(link: SyncLink, client: VaultClient): Promise<SyncLink | null> {
    const vaults = await client.vaults();
    const vault = vaults[0];
    if (vault === undefined) return null;
    const replica = new Replica(vault);
    await client.pull(replica, (seq, head) => this.#report(seq, head));
    const m = replica.membership;
    const wrap = m && replica.wrapsFor(client.device.public.id).find((w) => w.epoch === m.epoch);
    if (!m || !wrap) return null;
    const key = await unwrapVaultKey(wrap.wrapped, client.device, { vault, epoch: m.epoch });
    try {
      const ring = await this.vault.keyring();
      const joined: SyncLink = {
        ...link,
        vault,
        keys: [{ epoch: m.epoch, sealed: await sealRecord(ring.local.items, vaultKeyPlace(vault, m.epoch), key) }],
      };
      // The replica stays in memory and is written with the secrets it brings (in #reconcile):
      // a worker stopped in between pulls again rather than holding a replica without its items.
      await this.vault.exclusive(async () => {
        await this.db.put('syncLink', joined, 'link');
        this.vault.reload();
      });
      this.#replica = replica;
      return joined;
    } finally {
      wipe(key);
    }
  }

  /** A member removal elsewhere started a new epoch: take its key, which was wrapped to this device. */
  async #learnEpoch(link: SyncLink, client: VaultClient, replica: Replica): Promise<void> {
    const m = replica.membership;
    if (m === undefined || link.keys.some((k) => k.epoch === m.epoch)) return;
    const wrap = replica.wrapsFor(client.device.public.id).find((w) => w.epoch === m.epoch);
    if (!wrap) throw new SyncError('refused', 'no key for the current epoch has been sent to this device yet');
    const key = await unwrapVaultKey(wrap.wrapped, client.device, { vault: replica.vault, epoch: m.epoch });
    try {
      await this.#keepKey(link, m.epoch, key);
    } finally {
      wipe(key);
    }
  }

  async #keepKey(link: SyncLink, epoch: number, key: Uint8Array<ArrayBuffer>): Promise<void> {
    await this.vault.exclusive(async () => {
      const ring = await this.vault.keyring();
      const current = (await this.db.get('syncLink', 'link')) ?? link;
      if (current.keys.some((k) => k.epoch === epoch)) return;
      const sealed = await sealRecord(ring.local.items, vaultKeyPlace(current.vault as string, epoch), key);
      await this.db.put('syncLink', { ...current, keys: [...current.keys, { epoch, sealed }] }, 'link');
      this.vault.reload();
    });
  }

  /**
   * Compare every item here with the log; take what changed there, return what changed here.
   * Runs inside the vault's exclusive section, so no edit by the person interleaves.
   */
  async #reconcile(replica: Replica): Promise<Outgoing[]> {
    const ring = await this.vault.keyring();
    const synced: ReadonlyMap<string, SyncedItem> = (await this.db.get('syncItems', 'items')) ?? new Map();
    const locals = new Map((await this.db.getAll('secrets')).map((s) => [s.id, s]));
    const ids = new Set([...replica.itemIds(), ...locals.keys(), ...synced.keys(), ...replica.destroyedIds()]);
    const writes: StoredSecret[] = [];
    const deletes: string[] = [];
    const agreed = new Map<string, SyncedItem | null>(); // null: forget the item
    const out: Outgoing[] = [];
    const take = (id: string): boolean => {
      const heads = replica.heads(id);
      const newest = [...heads].sort((a, b) => b.seq - a.seq)[0];
      const bytes = newest && replica.blob(newest.blob);
      if (!newest || !bytes) return false;
      let stored: StoredSecret;
      try {
        stored = decodeItemBlob(bytes, id);
      } catch {
        return false; // a member wrote something unreadable: leave ours alone
      }
      writes.push(stored);
      agreed.set(id, { heads: heads.map((h) => h.entry), version: stored.version });
      return true;
    };

    for (const id of ids) {
      const local = locals.get(id);
      const base = synced.get(id);
      // Every local change (edit, resolve, re-seal) writes a new version, so comparing versions
      // finds changes without hashing every item on every run.
      const changedHere = base === undefined ? local !== undefined : local?.version !== base.version;
      if (replica.isDestroyed(id)) {
        if (local && base && changedHere) {
          // edited here while destroyed elsewhere: the edit survives as a new item
          const copy = await reseal(ring, local, { id: crypto.randomUUID(), version: 1 });
          const b = encodeItemBlob(copy);
          writes.push(copy);
          out.push({ item: copy.id, version: copy.version, pending: { body: put(copy.id, blobHash(b), []), blob: b } });
        }
        if (local) deletes.push(id);
        if (base) agreed.set(id, null);
        continue;
      }
      const heads = replica.heads(id);
      const headIds = heads.map((h) => h.entry);
      const changedThere = base === undefined ? heads.length > 0 : !sameSet(headIds, base.heads);
      if (!changedHere) {
        if (changedThere) take(id);
        continue;
      }
      if (local === undefined) {
        // deleted here: edited there wins over the delete (nothing lost); else destroy it everywhere
        if (changedThere && take(id)) continue;
        out.push({
          item: id,
          pending: { body: { type: 'item.destroy', item: id, blobs: replica.blobsOf(id).slice(-LIMITS.blobsPerDestroy) } },
        });
        continue;
      }
      const blob = encodeItemBlob(local);
      const mine = blobHash(blob);
      if (heads.some((h) => h.blob === mine)) {
        agreed.set(id, { heads: headIds, version: local.version }); // in the log already (its answer was lost)
        continue;
      }
      const parents = base?.heads ?? [];
      out.push({ item: id, version: local.version, pending: { body: put(id, mine, parents), blob } });
      // Every earlier version of the item the put replaces goes from the server too: a value
      // destroyed here (grace ended, compromised, expired) must not live on in an old blob. A
      // head of another device's concurrent edit is kept (it is not among the parents).
      const others = new Set(heads.filter((h) => !parents.includes(h.entry)).map((h) => h.blob));
      const superseded = replica.blobsOf(id).filter((h) => h !== mine && !others.has(h));
      for (let i = 0; i < superseded.length; i += LIMITS.blobsPerDestroy)
        out.push({ item: id, pending: { body: { type: 'item.prune', item: id, blobs: superseded.slice(i, i + LIMITS.blobsPerDestroy) } } });
    }
    await this.#write(replica, agreed, { writes, deletes });
    if (writes.length > 0 || deletes.length > 0) this.vault.reload();
    return out;
  }

  /** After a push landed: those items now stand where the log is. */
  async #afterPush(replica: Replica, pushed: readonly Outgoing[]): Promise<void> {
    const agreed = new Map<string, SyncedItem | null>();
    for (const o of pushed) {
      if (o.pending.body.type === 'item.destroy') agreed.set(o.item, null);
      else if (o.version !== undefined) agreed.set(o.item, { heads: replica.heads(o.item).map((h) => h.entry), version: o.version });
    }
    await this.#write(replica, agreed);
  }

  /**
   * One transaction: secrets taken from the log, the per-item agreements that changed, and the
   * replica if it learned anything since it was last written. Blobs are kept only for
   * conflicted items: every other version is in `secrets` already.
   */
  async #write(
    replica: Replica,
    agreed: ReadonlyMap<string, SyncedItem | null>,
    local: { writes: readonly StoredSecret[]; deletes: readonly string[] } = { writes: [], deletes: [] },
  ): Promise<void> {
    const saveReplica = replica.seq !== this.#savedSeq;
    let items: Map<string, SyncedItem> | undefined;
    if (agreed.size > 0) {
      items = new Map((await this.db.get('syncItems', 'items')) ?? []);
      for (const [id, a] of agreed) {
        if (a === null) items.delete(id);
        else items.set(id, a);
      }
    }
    if (!saveReplica && !items && local.writes.length === 0 && local.deletes.length === 0) return; // a quiet run
    let snapshot: ReplicaSnapshot | undefined;
    if (saveReplica) {
      const keep = new Set(replica.conflicts().flatMap((id) => replica.heads(id).map((h) => h.blob)));
      snapshot = replica.snapshot((h) => keep.has(h));
    }
    const tx = this.db.transaction(['secrets', 'syncItems', 'syncReplica'], 'readwrite');
    // thousands of puts on an initial sync: plain requests, not a promise each; tx.done reports any failure
    const secrets = unwrap(tx.objectStore('secrets'));
    for (const s of local.writes) secrets.put(s);
    for (const id of local.deletes) secrets.delete(id);
    await Promise.all([
      items ? tx.objectStore('syncItems').put(items, 'items') : undefined,
      snapshot ? tx.objectStore('syncReplica').put(snapshot, 'replica') : undefined,
      tx.done,
    ]);
    if (saveReplica) this.#savedSeq = replica.seq;
  }

  // --- reading ----------------------------------------------------------------------------

  async status(): Promise<SyncStatus> {
    const progress = this.#progress; // as it is when asked (a pull goes on while the rest is read)
    const link = await this.db.get('syncLink', 'link');
    const state = await this.#state();
    if (!link) return { enabled: false, conflicts: [], members: [], rotate: [] };
    const base = {
      enabled: true as const,
      server: link.server,
      device: { id: link.device.public.id, name: link.device.public.name, pairingCode: pairingCode(link.device.public) },
      joining: link.vault === null,
      ...(link.vault ? { vault: link.vault } : {}),
      ...(state.lastSyncAt ? { lastSyncAt: state.lastSyncAt } : {}),
      ...(state.lastError ? { lastError: state.lastError } : {}),
      ...(state.warning ? { warning: state.warning } : {}),
      ...(state.failures ? { nextAttemptAt: state.nextAttemptAt } : {}),
      ...(progress ? { progress } : {}),
    };
    const replica = await this.#loadReplica();
    const m = replica?.membership;
    if (!replica || !m) return { ...base, conflicts: [], members: [], rotate: [] };
    const members = [...m.members.values()].map((d) => ({ id: d.id, name: d.name, pairingCode: pairingCode(d) }));
    const head = { seq: replica.seq, fingerprint: replica.headFingerprint, epoch: m.epoch };
    if (!(await this.vault.isUnlocked())) return { ...base, head, members, conflicts: [], rotate: [] };
    const ring = await this.vault.keyring();
    const conflicts: SyncConflict[] = [];
    for (const item of replica.conflicts()) {
      const versions: SyncConflict['versions'][number][] = [];
      for (const h of replica.heads(item)) {
        const bytes = replica.blob(h.blob);
        const author = m.members.get(h.author)?.name ?? h.author.slice(0, 8);
        try {
          const stored = decodeItemBlob(bytes ?? new Uint8Array(), item);
          const meta = await openSecretMeta(ring.keysFor(stored.epoch), replica.vault, stored);
          versions.push({ entry: h.entry, name: meta.name, updatedAt: meta.updatedAt, author, seq: h.seq });
        } catch {
          versions.push({ entry: h.entry, name: '(unreadable)', updatedAt: 0, author, seq: h.seq });
        }
      }
      conflicts.push({ item, versions });
    }
    const rotate: string[] = [];
    for (const r of state.rotate ?? []) {
      const s = await this.db.get('secrets', r.item);
      if (!s || s.version !== r.version) continue; // changed since: rotated
      try {
        rotate.push((await openSecretMeta(ring.keysFor(s.epoch), replica.vault, s)).name);
      } catch {
        // unreadable here: nothing to name
      }
    }
    return { ...base, head, members, conflicts, rotate };
  }

  /**
   * Live updates while a page watches: the server's event stream, a run on each new head.
   * Ends when `signal` aborts or the stream ends. It does not keep the worker alive.
   * A joining device has no stream yet: each call asks whether another device has added it,
   * and takes the vault when one has, so the person need not press "Check now".
   */
  async watch(signal: AbortSignal): Promise<boolean> {
    const link = await this.db.get('syncLink', 'link');
    if (!link || !(await this.vault.isUnlocked())) return false; // nothing to watch yet
    const client = await this.#clientFor(link);
    if (link.vault === null) {
      // only a listed vault is worth a run: a run redraws the page, and the pairing code on it
      if ((await this.#net(() => client.vaults())).length > 0) await this.syncNow();
      return false;
    }
    await client.events(
      link.vault,
      (h) => {
        if (h.seq !== this.#replica?.seq) void this.syncNow();
      },
      signal,
    );
    return true;
  }

  // --- internals --------------------------------------------------------------------------

  #net<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#netQueue.then(fn, fn);
    this.#netQueue = run.catch(() => {});
    return run;
  }

  /** Progress of a long pull, for the options page. */
  #report(seq: number, head: number): void {
    this.#progress = { seq, head };
    this.onChange();
  }

  async #assertCanJoin(): Promise<void> {
    if (await this.db.get('syncLink', 'link')) throw new RpcError('already-initialized', 'this device already syncs');
    if ((await this.db.count('secrets')) > 0)
      throw new RpcError('bad-input', 'joining replaces this vault: only a vault without secrets can join');
  }

  /** A joining device's link (no vault yet) and a fresh sync state, together. */
  async #saveLink(link: SyncLink): Promise<void> {
    const tx = this.db.transaction(['syncLink', 'syncState', 'syncItems', 'syncReplica'], 'readwrite');
    await Promise.all([
      tx.objectStore('syncLink').put(link, 'link'),
      tx.objectStore('syncState').put(FRESH, 'state'),
      tx.objectStore('syncItems').clear(),
      tx.objectStore('syncReplica').clear(),
      tx.done,
    ]);
  }

  async #newDevice(origin: string, name: string, ring: Keyring) {
    if (typeof name !== 'string' || name.trim() === '' || name.length > LIMITS.name)
      throw new RpcError('bad-input', `device name must be 1 to ${LIMITS.name} characters`);
    // made extractable once, only to be wrapped; the working copy is the unwrapped, non-extractable one
    const fresh = await newDevice(name.trim(), { extractable: true });
    const sealed = await sealDevice(fresh, ring.local.items, ring.localId);
    const client = new VaultClient(origin, await openDevice(sealed, ring.local.items, ring.localId), this.#clientOptions());
    await this.#guard(() => client.register());
    this.#client = { key: `${origin} ${sealed.public.id}`, client };
    return { sealed, client };
  }

  #clientOptions() {
    return { ...(this.#fetch ? { fetch: this.#fetch } : {}), now: this.#now };
  }

  async #clientFor(link: SyncLink): Promise<VaultClient> {
    const key = `${link.server} ${link.device.public.id}`;
    if (this.#client?.key === key) return this.#client.client;
    const ring = await this.vault.keyring();
    const device = await openDevice(link.device, ring.local.items, ring.localId);
    const client = new VaultClient(link.server, device, this.#clientOptions());
    this.#client = { key, client };
    return client;
  }

  /**
   * Entries of this device's own that are not items (roles, engines: background/sync/admin.ts),
   * signed and pushed after a pull; the state after them. The log's rules refuse what this device
   * may not write before anything is sent.
   */
  async commitEntries(bodies: readonly EntryBody[]): Promise<{ state: Membership; me: string }> {
    await this.syncNow();
    return this.#net(() =>
      this.#guard(async () => {
        const { client, replica } = await this.#ready();
        await client.push(
          replica,
          bodies.map((body) => ({ body })),
        );
        await this.#saveReplica(replica);
        this.onChange();
        return { state: replica.membership as Membership, me: client.device.public.id };
      }),
    );
  }

  /** The synced vault's verified state and this device's id in it (after a pull), for the team's views. */
  async team(): Promise<{ state: Membership; me: string; server: string }> {
    await this.syncNow();
    const { link, client, replica } = await this.#ready();
    if (!replica.membership) throw new RpcError('not-found', 'the vault is not synced yet');
    return { state: replica.membership, me: client.device.public.id, server: link.server };
  }

  /** The distant vault this device syncs with (undefined: it does not). */
  async server(): Promise<string | undefined> {
    const link = await this.db.get('syncLink', 'link');
    return link?.vault ? link.server : undefined;
  }

  /** A credential from an engine of the synced vault, asked for with this device's login. */
  async engineToken(engine: string, role: string, ttlSeconds?: number): Promise<EngineToken> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) throw new RpcError('not-found', 'this device is not a member of a synced vault');
    return (await this.#clientFor(link)).engineToken(link.vault, engine, role, ttlSeconds);
  }

  /** An engine's credential as it is (a database login, to be shown on reveal). */
  async engineCredential(engine: string, role: string, ttlSeconds?: number): Promise<Record<string, unknown>> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) throw new RpcError('not-found', 'this device is not a member of a synced vault');
    return (await this.#clientFor(link)).engineCredential(link.vault, engine, role, ttlSeconds);
  }

  async renewLease(id: string, ttlSeconds?: number): Promise<{ expiresAt: number; maxExpiresAt: number }> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) throw new RpcError('not-found', 'this device is not a member of a synced vault');
    return (await this.#clientFor(link)).renewLease(id, ttlSeconds);
  }

  async revokeLease(id: string): Promise<void> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) return;
    await (await this.#clientFor(link)).revokeLease(id);
  }

  /** This device's leases at the distant vault (an admin's: the vault's). */
  async leases(): Promise<Record<string, unknown>[]> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) return [];
    return (await this.#clientFor(link)).leases(link.vault);
  }

  async #ready(): Promise<{ link: SyncLink; client: VaultClient; replica: Replica }> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault) throw new RpcError('not-found', 'this device is not a member of a synced vault');
    const replica = await this.#loadReplica();
    if (!replica) throw new RpcError('not-found', 'the vault is not synced yet');
    return { link, client: await this.#clientFor(link), replica };
  }

  /** One epoch's vault key, opened from its sealed record. The caller wipes it. */
  #team: { vault: string; keys: TeamKeys } | undefined;
  /** team keys of older epochs, for reading the team audit */
  #teamKeysByEpoch = new Map<string, Promise<TeamKeys>>();

  async #teamKeys(link: SyncLink, epoch: number): Promise<TeamKeys | undefined> {
    if (!link.vault || !link.keys.some((k) => k.epoch === epoch)) return undefined;
    const id = `${link.vault}/${epoch}`;
    let k = this.#teamKeysByEpoch.get(id);
    if (!k) {
      const vault = link.vault;
      k = this.#vaultKey(link, epoch).then(async (key) => {
        try {
          return await deriveTeamKeys(key, vault, epoch);
        } finally {
          wipe(key);
        }
      });
      this.#teamKeysByEpoch.set(id, k);
      k.catch(() => this.#teamKeysByEpoch.delete(id));
    }
    return k;
  }

  /** This device's audit records not yet in the team audit, pushed; its chain head signed into the log now and then. */
  async #pushAudit(link: SyncLink, client: VaultClient, replica: Replica): Promise<void> {
    if (!link.vault || link.keys.length === 0) return;
    const vault = link.vault;
    const epoch = Math.max(...link.keys.map((k) => k.epoch));
    await pushTeamAudit({
      client,
      vault,
      device: client.device.public.id,
      epoch,
      keyFor: async (e) => (await this.#teamKeys(link, e))?.audit,
      records: async (after, limit) =>
        (await this.db.getAll('audit', IDBKeyRange.lowerBound(after, true), limit)).map((r) => ({ seq: r.seq, record: r.record })),
      pointer: {
        get: async () => (await this.#state()).teamAudit,
        set: (teamAudit) => this.#patch({ teamAudit }),
      },
      anchor: async (head) => {
        await client.push(replica, [{ body: { type: 'audit.head', seq: head.seq, hash: head.hash } }]);
        await this.#saveReplica(replica);
      },
      now: this.#now,
    });
  }

  /** The team audit as a member with the `audit` role reads it: every device's records, checked, newest first. */
  async teamAudit(): Promise<{ entries: TeamAuditEntry[]; chains: DeviceChain[]; names: Record<string, string> }> {
    await this.syncNow();
    return this.#net(() =>
      this.#guard(async () => {
        const { link, client, replica } = await this.#ready();
        const state = replica.membership as Membership;
        if (!hasRole(state, client.device.public.id, 'audit'))
          throw new RpcError('forbidden', 'reading the team audit needs the audit role');
        const read = await readTeamAudit({
          client,
          vault: state.vault,
          keyFor: async (e) => (await this.#teamKeys(link, e))?.audit,
          signed: governance(state).auditHeads ?? {},
        });
        const names = Object.fromEntries([...state.members.values()].map((d) => [d.id, d.name]));
        return { ...read, names };
      }),
    );
  }

  /**
   * The team tier of the synced vault (issue 16): its client, id, and the team keys of the newest
   * epoch this device holds a key for (derived once per unlock and epoch). Undefined when not synced.
   */
  async teamHandle(): Promise<TeamHandle | undefined> {
    const link = await this.db.get('syncLink', 'link');
    if (!link?.vault || link.keys.length === 0) return undefined;
    const epoch = Math.max(...link.keys.map((k) => k.epoch));
    if (this.#team?.vault !== link.vault || this.#team.keys.epoch !== epoch) {
      const key = await this.#vaultKey(link, epoch);
      try {
        this.#team = { vault: link.vault, keys: await deriveTeamKeys(key, link.vault, epoch) };
      } finally {
        wipe(key);
      }
    }
    return { ...this.#team, client: await this.#clientFor(link) };
  }

  async #vaultKey(link: SyncLink, epoch: number): Promise<Uint8Array<ArrayBuffer>> {
    const sealed = link.keys.find((k) => k.epoch === epoch);
    if (!sealed || !link.vault) throw new RpcError('not-found', 'no key for the current epoch');
    const ring = await this.vault.keyring();
    return openRecord(ring.local.items, vaultKeyPlace(link.vault, epoch), sealed.sealed);
  }

  async #loadReplica(): Promise<Replica | undefined> {
    if (this.#replica) return this.#replica;
    const snap = await this.db.get('syncReplica', 'replica');
    if (!snap) return undefined;
    this.#savedSeq = snap.hashes.length;
    return Replica.fromSnapshot(snap);
  }

  async #saveReplica(replica: Replica): Promise<void> {
    this.#replica = replica;
    await this.#write(replica, new Map());
  }

  async #state(): Promise<SyncState> {
    return (await this.db.get('syncState', 'state')) ?? FRESH;
  }

  async #patch(p: Partial<SyncState>): Promise<void> {
    const tx = this.db.transaction('syncState', 'readwrite');
    const cur = (await tx.store.get('state')) ?? FRESH;
    await tx.store.put({ ...cur, ...p }, 'state');
    await tx.done;
  }

  /** Transport and log errors as typed RPC errors for the page. */
  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof SyncError) throw new RpcError('sync-failed', e.message, { reason: e.code });
      if (isLogError(e)) throw new RpcError('sync-failed', e.message, { reason: e.code });
      throw e;
    }
  }
}

const put = (item: string, blob: string, parents: readonly string[]): EntryBody => ({ type: 'item.put', item, blob, parents });

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

/** A secret opened with this device's keys and sealed again as `as`: under the current epoch's keys, or `into` others. */
async function reseal(
  ring: Keyring,
  s: StoredSecret,
  as: { id: string; version: number },
  into: { keys: VaultKeys; vaultId: string; epoch: number } = { keys: ring.keysFor(ring.epoch), vaultId: ring.vaultId, epoch: ring.epoch },
): Promise<StoredSecret> {
  return resealSecret({ keys: ring.keysFor(s.epoch), vaultId: ring.vaultId }, s, into.keys, {
    vaultId: into.vaultId,
    id: as.id,
    version: as.version,
    epoch: into.epoch,
  });
}
