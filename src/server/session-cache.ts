/**
 * Sessions this replica has read, kept until they expire. A session is only ever created and
 * expired, never ended early (a removed member is refused by its vault's membership, which every
 * route checks), so a hit answers exactly as the database would. Misses are not kept: another
 * replica may have just made that session. Bounded: the oldest entry leaves first.
 */
export class SessionCache {
  private readonly entries = new Map<string, { readonly device: string; readonly expires: number }>();

  constructor(private readonly max = 10_000) {}

  get(tokenHash: string, now: number): string | undefined {
    const e = this.entries.get(tokenHash);
    if (e === undefined) return undefined;
    if (e.expires > now) return e.device;
    this.entries.delete(tokenHash);
    return undefined;
  }

  put(tokenHash: string, session: { readonly device: string; readonly expires: number }): void {
    if (!this.entries.has(tokenHash) && this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(tokenHash, session);
  }

  /** Drops expired entries (the periodic sweep). */
  sweep(now: number): void {
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
  }
}
