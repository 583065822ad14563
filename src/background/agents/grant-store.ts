/**
 * Grants and remembered denials in IndexedDB. Every decision about them is in core/agents/grants.ts;
 * this only stores, lists and counts uses (atomically, in one transaction per use).
 */
import { type Denial, isLive, type StoredGrant } from '../../core/agents/grants.ts';
import type { KeyholeDB } from '../db.ts';

export class GrantStore {
  /** every stored grant, read once; this worker is the only writer, and every write drops it */
  private cache: Promise<StoredGrant[]> | null = null;

  constructor(
    private readonly db: KeyholeDB,
    private readonly now: () => number = Date.now,
  ) {}

  private stored(): Promise<StoredGrant[]> {
    this.cache ??= this.db.getAll('grants');
    return this.cache;
  }

  private changed(): void {
    this.cache = null;
  }

  async all(): Promise<StoredGrant[]> {
    const t = this.now();
    return (await this.stored()).filter((g) => isLive(g, t));
  }

  async forOrigin(origin: string): Promise<StoredGrant[]> {
    const t = this.now();
    return (await this.stored()).filter((g) => g.origin === origin && isLive(g, t));
  }

  /** Live grants of this origin for this secret (by id: a renamed secret keeps its grants). */
  async forSecret(origin: string, secretId: string): Promise<StoredGrant[]> {
    return (await this.forOrigin(origin)).filter((g) => g.secretId === secretId);
  }

  async add(grants: readonly StoredGrant[]): Promise<void> {
    this.changed();
    const tx = this.db.transaction('grants', 'readwrite');
    await Promise.all([...grants.map((g) => tx.store.put(g)), tx.done]);
    this.changed();
  }

  /** Removes a grant; with `origin`, only if it belongs to that origin (a page revoking its own). */
  async revoke(id: string, origin?: string): Promise<StoredGrant | null> {
    const tx = this.db.transaction('grants', 'readwrite');
    const g = await tx.store.get(id);
    if (!g || (origin !== undefined && g.origin !== origin)) {
      await tx.done;
      return null;
    }
    await tx.store.delete(id);
    await tx.done;
    this.changed();
    return g;
  }

  /** Counts one use. False when the grant is gone, expired or used up (the caller refuses). */
  async use(id: string): Promise<boolean> {
    // an unlimited grant has nothing to count: no write on the hot path
    const cached = (await this.stored()).find((g) => g.id === id);
    if (cached && cached.usesLeft === null) return isLive(cached, this.now());
    this.changed();
    const tx = this.db.transaction('grants', 'readwrite');
    const g = await tx.store.get(id);
    if (!g || !isLive(g, this.now())) {
      await tx.done;
      return false;
    }
    if (g.usesLeft !== null) await tx.store.put({ ...g, usesLeft: g.usesLeft - 1 });
    await tx.done;
    this.changed();
    return true;
  }

  async isDenied(origin: string, secret: string): Promise<boolean> {
    const d = await this.db.get('denials', [origin, secret]);
    return d !== undefined && d.until > this.now();
  }

  async deny(denials: readonly Denial[]): Promise<void> {
    const tx = this.db.transaction('denials', 'readwrite');
    await Promise.all([...denials.map((d) => tx.store.put(d)), tx.done]);
  }

  /** Drops expired and used-up grants and stale denials; returns the grants dropped. */
  async purge(): Promise<StoredGrant[]> {
    const t = this.now();
    const tx = this.db.transaction(['grants', 'denials'], 'readwrite');
    const dead = (await tx.objectStore('grants').getAll()).filter((g) => !isLive(g, t));
    for (const g of dead) await tx.objectStore('grants').delete(g.id);
    for (const d of await tx.objectStore('denials').getAll())
      if (d.until <= t) await tx.objectStore('denials').delete([d.origin, d.secret]);
    await tx.done;
    return dead;
  }
}
