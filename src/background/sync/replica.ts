/**
 * This device's verified copy of a vault log (docs/sync.md). It trusts nothing the server
 * says: every page is checked against the highest (seq, head) already accepted before any of
 * it is applied, so a rollback, fork, dropped or reordered entry, unsigned or foreign entry,
 * or a blob that does not match its signed hash is refused whole and nothing changes.
 * Free of browser APIs, so Node tests and the bench run the same code as the worker.
 */
import {
  applyEntries,
  blobHash,
  type DevicePublic,
  entryHash,
  fingerprint,
  type Head,
  type KeyCache,
  type LogEntry,
  LogError,
  type Membership,
} from '../../core/sync/log.ts';

export type { Head };

/** One current version of an item. More than one head = a conflict the person resolves. */
export type ItemHead = { readonly entry: string; readonly seq: number; readonly blob: string; readonly author: string };

export type ReplicaSnapshot = {
  readonly vault: string;
  readonly membership: Omit<Membership, 'members'> & { readonly members: readonly DevicePublic[] };
  /** entry hash by seq - 1: what a fork is checked against */
  readonly hashes: readonly string[];
  readonly items: readonly (readonly [string, readonly ItemHead[]])[];
  readonly blobs: readonly (readonly [string, Uint8Array])[];
  readonly destroyed: readonly string[];
  /** key.wrap entries: a vault key for an epoch, sealed to one member device */
  readonly wraps: readonly KeyWrap[];
  /** every blob each live item has named, so destroying it can delete them all */
  readonly itemBlobs: readonly (readonly [string, readonly string[]])[];
};

/** A vault key for `epoch`, sealed to member `to` (core/crypto/share.ts), as the log carries it. */
export type KeyWrap = { readonly epoch: number; readonly to: string; readonly wrapped: string };

export class Replica {
  #membership: Membership | undefined;
  #hashes: string[] = [];
  readonly #items = new Map<string, ItemHead[]>();
  readonly #blobs = new Map<string, Uint8Array>();
  readonly #destroyed = new Set<string>();
  #wraps: KeyWrap[] = [];
  readonly #itemBlobs = new Map<string, string[]>();
  /** heads other member devices said they saw, beyond ours: checked as we catch up */
  readonly #told = new Map<number, string>();

  constructor(readonly vault: string) {}

  get seq(): number {
    return this.#membership?.seq ?? 0;
  }
  get head(): Head {
    return { seq: this.seq, hash: this.#membership?.head ?? '' };
  }
  get membership(): Membership | undefined {
    return this.#membership;
  }
  /** What people compare out of band: the same on every honest member device at one seq. */
  get headFingerprint(): string {
    return `${this.seq}:${fingerprint(this.head.hash)}`;
  }
  hashAt(seq: number): string | undefined {
    return this.#hashes[seq - 1];
  }
  itemIds(): string[] {
    return [...this.#items.keys()];
  }
  heads(item: string): readonly ItemHead[] {
    return this.#items.get(item) ?? [];
  }
  conflicts(): string[] {
    return [...this.#items].filter(([, h]) => h.length > 1).map(([id]) => id);
  }
  blob(hash: string): Uint8Array | undefined {
    return this.#blobs.get(hash);
  }
  isDestroyed(item: string): boolean {
    return this.#destroyed.has(item);
  }
  destroyedIds(): string[] {
    return [...this.#destroyed];
  }
  /** The vault keys sealed to one device, by epoch. */
  wrapsFor(device: string): KeyWrap[] {
    return this.#wraps.filter((w) => w.to === device);
  }
  /** Every blob a live item has named (all its versions) and not pruned, for item.destroy and item.prune. */
  blobsOf(item: string): readonly string[] {
    return this.#itemBlobs.get(item) ?? [];
  }

  /**
   * Check a head the server reports. Behind ours is a rollback; the same seq with another
   * hash, or a seq we hold with another hash, is a fork.
   */
  checkServerHead(h: Head): void {
    if (h.seq < this.seq) throw new LogError('rollback', `server head ${h.seq} is behind the accepted head ${this.seq}`);
    const ours = this.hashAt(h.seq);
    if (h.seq > 0 && ours !== undefined && ours !== h.hash)
      throw new LogError('fork', 'server head differs from the accepted entry', h.seq);
  }

  /** A head another member device says it saw (fork consistency): it must lie on our chain. */
  checkToldHead(h: Head): void {
    const ours = this.hashAt(h.seq);
    if (ours !== undefined) {
      if (ours !== h.hash) throw new LogError('fork', 'another device saw a different entry here', h.seq);
      return;
    }
    this.#told.set(h.seq, h.hash);
  }

  /** The highest head a member device told us about that we have not reached yet. */
  toldAhead(): Head | undefined {
    let best: Head | undefined;
    for (const [seq, hash] of this.#told) if (seq > this.seq && (best === undefined || seq > best.seq)) best = { seq, hash };
    return best;
  }

  /**
   * Verify and apply one page from the server: its head, its entries after ours and their
   * blobs. All or nothing. Returns the entries applied.
   */
  async accept(
    page: { head: Head; entries: readonly LogEntry[]; blobs: ReadonlyMap<string, Uint8Array> },
    keys: KeyCache,
  ): Promise<LogEntry[]> {
    this.checkServerHead(page.head);
    const fresh: LogEntry[] = [];
    for (const e of page.entries) {
      if (e.seq <= this.seq) {
        // An entry we already hold must be the same entry.
        if (entryHash(e) !== this.hashAt(e.seq)) throw new LogError('fork', 'server rewrote an accepted entry', e.seq);
      } else fresh.push(e);
    }
    if (fresh.length === 0) return [];
    const before = this.#membership;
    const hashes: string[] = [];
    const applying = applyEntries(before, fresh, keys, hashes);
    applying.catch(() => {}); // awaited below; this only keeps an early rejection from going unhandled

    // Blobs: each must match the hash its signed entry names. A missing one (destroyed later,
    // or withheld) leaves that version unreadable but the log intact. Hashed while the
    // signatures are verified (WebCrypto works off this thread); a mismatch is reported after
    // the log's own errors, so what is refused first does not depend on the order of work.
    const blobs = new Map<string, Uint8Array>();
    let badBlob: number | undefined;
    for (const e of fresh) {
      if (e.body.type !== 'item.put') continue;
      const b = page.blobs.get(e.body.blob);
      if (b === undefined) continue;
      if (blobHash(b) !== e.body.blob) {
        badBlob ??= e.seq;
        continue;
      }
      blobs.set(e.body.blob, b);
    }

    const after = await applying;
    if (after.vault !== this.vault) throw new LogError('wrong-vault', 'entries of another vault');
    if (after.seq > page.head.seq) throw new LogError('fork', 'entries run past the head the server reported', page.head.seq);
    if (after.seq === page.head.seq && after.head !== page.head.hash)
      throw new LogError('fork', 'entries do not end at the reported head', after.seq);
    if (badBlob !== undefined) throw new LogError('bad-entry', 'blob does not match the hash its entry signs', badBlob);

    // Every check passed: now change state.
    for (const [seq, hash] of this.#told) {
      const i = seq - 1 - this.seq;
      if (i >= 0 && i < hashes.length && hashes[i] !== hash)
        throw new LogError('fork', 'the server shows a different entry than another device saw', seq);
    }
    this.#membership = after;
    this.#hashes.push(...hashes);
    for (const [seq] of this.#told) if (seq <= after.seq) this.#told.delete(seq);
    for (const [h, b] of blobs) this.#blobs.set(h, b);
    for (const [i, e] of fresh.entries()) this.#applyItem(e, hashes[i] as string);
    return fresh;
  }

  #applyItem(e: LogEntry, hash: string): void {
    const b = e.body;
    if (b.type === 'item.put') {
      if (this.#destroyed.has(b.item)) return;
      const kept = (this.#items.get(b.item) ?? []).filter((h) => !b.parents.includes(h.entry));
      this.#items.set(b.item, [...kept, { entry: hash, seq: e.seq, blob: b.blob, author: e.author }]);
      this.#itemBlobs.set(b.item, [...(this.#itemBlobs.get(b.item) ?? []), b.blob]);
    } else if (b.type === 'item.destroy') {
      for (const h of this.#items.get(b.item) ?? []) this.#blobs.delete(h.blob);
      for (const h of b.blobs) this.#blobs.delete(h);
      this.#items.delete(b.item);
      this.#itemBlobs.delete(b.item);
      this.#destroyed.add(b.item);
    } else if (b.type === 'item.prune') {
      // never a version that is still a head (a member's mistake must not lose the current value)
      const live = new Set((this.#items.get(b.item) ?? []).map((h) => h.blob));
      const pruned = new Set(b.blobs.filter((h) => !live.has(h)));
      for (const h of pruned) this.#blobs.delete(h);
      this.#itemBlobs.set(
        b.item,
        (this.#itemBlobs.get(b.item) ?? []).filter((h) => !pruned.has(h)),
      );
    } else if (b.type === 'key.wrap') {
      this.#wraps.push({ epoch: e.epoch, to: b.to, wrapped: b.wrapped });
    }
  }

  /** What to persist. `keepBlob` picks the blobs to include (default: all). */
  snapshot(keepBlob: (hash: string) => boolean = () => true): ReplicaSnapshot {
    const m = this.#membership;
    if (m === undefined) throw new LogError('gap', 'nothing accepted yet');
    return {
      vault: this.vault,
      membership: { ...m, members: [...m.members.values()] },
      hashes: [...this.#hashes],
      items: [...this.#items].map(([k, v]) => [k, [...v]] as const),
      blobs: [...this.#blobs].filter(([h]) => keepBlob(h)),
      destroyed: [...this.#destroyed],
      wraps: [...this.#wraps],
      itemBlobs: [...this.#itemBlobs].map(([k, v]) => [k, [...v]] as const),
    };
  }

  static fromSnapshot(s: ReplicaSnapshot): Replica {
    const r = new Replica(s.vault);
    r.#membership = { ...s.membership, members: new Map(s.membership.members.map((d) => [d.id, d])) };
    r.#hashes = [...s.hashes];
    for (const [k, v] of s.items) r.#items.set(k, [...v]);
    for (const [k, v] of s.blobs) r.#blobs.set(k, v);
    for (const d of s.destroyed) r.#destroyed.add(d);
    r.#wraps = [...s.wraps];
    for (const [k, v] of s.itemBlobs) r.#itemBlobs.set(k, [...v]);
    return r;
  }
}
