/**
 * Growing delay between failed unlocks, kept in IndexedDB so a worker restart does not reset it.
 * After n failures the next try waits delayAfter(n): 0, 0, 1 s, 2 s, 4 s ... capped at 5 minutes.
 */
import type { Throttle } from '../db.ts';

export const MAX_DELAY_MS = 5 * 60_000;

export function delayAfter(failures: number): number {
  if (failures < 2) return 0;
  return Math.min(1000 * 2 ** (failures - 2), MAX_DELAY_MS);
}

export function retryAfterMs(t: Throttle | undefined, now: number): number {
  if (!t) return 0;
  return Math.max(0, t.lastFailureAt + delayAfter(t.failures) - now);
}
