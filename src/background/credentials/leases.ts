/**
 * The leases this device holds at the distant vault (issue 15): recorded as they are issued (ids
 * only: nothing secret), revoked at lock, and revoked at the next unlock if the browser went away
 * holding some (a crash, a kill: the worker could not revoke them then; the distant vault's
 * sweeper also revokes each at its expiry). A lease that cannot be revoked now stays recorded
 * and is tried again the next time.
 */
export type LeaseIds = { get(): Promise<string[]>; set(ids: readonly string[]): Promise<void> };

export class LeaseTracker {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ids: LeaseIds,
    /** revokes one lease; rejects if it could not be done now */
    private readonly revoke: (id: string) => Promise<void>,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  add(id: string): Promise<void> {
    return this.serial(async () => {
      const held = await this.ids.get();
      if (!held.includes(id)) await this.ids.set([...held, id]);
    });
  }

  /**
   * Revokes one lease after `afterMs` (a replaced credential's requests in flight finish first);
   * if that cannot be done then, it stays recorded for the next lock or unlock.
   */
  release(id: string, afterMs = 0): void {
    const run = () =>
      void this.serial(async () => {
        try {
          await this.revoke(id);
        } catch {
          return; // kept: revoked with the rest at lock, or at the next unlock
        }
        await this.ids.set((await this.ids.get()).filter((x) => x !== id));
      });
    if (afterMs > 0) setTimeout(run, afterMs);
    else run();
  }

  /** Revokes every recorded lease (within `timeoutMs` in all); the ones that could not be stay recorded. */
  revokeAll(timeoutMs = 3000): Promise<{ revoked: number; kept: number }> {
    return this.serial(async () => {
      const held = await this.ids.get();
      if (held.length === 0) return { revoked: 0, kept: 0 };
      const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), timeoutMs));
      const results = await Promise.all(
        held.map((id) => Promise.race([this.revoke(id).then(() => 'done' as const), deadline]).catch(() => 'failed' as const)),
      );
      const kept = held.filter((_, i) => results[i] !== 'done');
      await this.ids.set(kept);
      return { revoked: held.length - kept.length, kept: kept.length };
    });
  }
}
