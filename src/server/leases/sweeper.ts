/**
 * The lease sweeper (issue 15): revokes expired leases and revocations asked for, on every
 * replica at once, each lease exactly once. The claim is the store's short transaction
 * (lease-store.ts claimDue); revocation runs outside it with a per-call timeout and capped
 * concurrency, so a slow or down backend neither holds database locks nor starves the API. A
 * failed revocation backs off (1 s, 2 s, 4 s, ... up to 10 min); after `maxAttempts` the lease is
 * `irrevocable`, still retried hourly and shown to admins (HashiCorp Vault users asked for exactly
 * that: hashicorp/vault#8602). Revocation must be idempotent: "already gone" is revoked.
 */
import type { Lease, LeaseStore } from './lease-store.ts';

export type Revoke = (lease: Lease, signal: AbortSignal) => Promise<void>;

export type SweeperOptions = {
  readonly leases: LeaseStore;
  readonly revoke: Revoke;
  readonly now?: () => number;
  readonly batch?: number;
  readonly concurrency?: number;
  readonly callTimeoutMs?: number;
  /** how long a claim hides a lease from other replicas (longer than a revocation can take) */
  readonly visibilityMs?: number;
  readonly maxAttempts?: number;
  readonly onOutcome?: (lease: Lease, outcome: 'revoked' | 'retry' | 'irrevocable', error?: string) => void;
};

export const IRREVOCABLE_RETRY_MS = 3_600_000;
export const backoffMs = (attempts: number): number => Math.min(2 ** Math.max(0, attempts - 1) * 1000, 600_000);

export class LeaseSweeper {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<unknown> | null = null;
  private readonly o: Required<Omit<SweeperOptions, 'onOutcome'>> & Pick<SweeperOptions, 'onOutcome'>;

  constructor(opts: SweeperOptions) {
    this.o = {
      now: Date.now,
      batch: 50,
      concurrency: 8,
      callTimeoutMs: 10_000,
      visibilityMs: 60_000,
      maxAttempts: 6,
      ...opts,
    };
  }

  /** One pass: claims what is due, a batch at a time, until nothing is; how many ended how. */
  async sweepOnce(): Promise<{ revoked: number; retried: number; irrevocable: number }> {
    const out = { revoked: 0, retried: 0, irrevocable: 0 };
    for (;;) {
      const claimed = await this.o.leases.claimDue(this.o.now(), this.o.batch, this.o.visibilityMs);
      if (claimed.length === 0) return out;
      await runCapped(claimed, this.o.concurrency, async (lease) => {
        const r = await this.revokeOne(lease);
        out[r]++;
      });
    }
  }

  private async revokeOne(lease: Lease): Promise<'revoked' | 'retried' | 'irrevocable'> {
    const signal = AbortSignal.timeout(this.o.callTimeoutMs);
    try {
      await Promise.race([
        this.o.revoke(lease, signal),
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('timed out')), { once: true })),
      ]);
      await this.o.leases.finish(lease.id, { state: 'revoked', nextAttempt: this.o.now() });
      this.o.onOutcome?.(lease, 'revoked');
      return 'revoked';
    } catch (e) {
      const error = (e instanceof Error ? e.message : 'failed').slice(0, 200);
      const irrevocable = lease.attempts >= this.o.maxAttempts;
      const nextAttempt = this.o.now() + (irrevocable ? IRREVOCABLE_RETRY_MS : backoffMs(lease.attempts));
      await this.o.leases.finish(lease.id, { state: irrevocable ? 'irrevocable' : 'revoking', nextAttempt, lastError: error });
      this.o.onOutcome?.(lease, irrevocable ? 'irrevocable' : 'retry', error);
      return irrevocable ? 'irrevocable' : 'retried';
    }
  }

  /** Sweeps every `intervalMs` (one pass at a time). */
  start(intervalMs = 5000): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.sweepOnce()
        .catch(() => {})
        .finally(() => {
          this.running = null;
        });
    }, intervalMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}

async function runCapped<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
