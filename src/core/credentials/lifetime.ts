/**
 * When a minted credential is refreshed, how long it may still be used, and how a failing token
 * endpoint is retried. Pure: the clock and the randomness are passed in.
 *
 * - Refresh at a random point between 75% and 90% of the lifetime (Vault's lifetime watcher
 *   re-fetches at 80-90%, consul-template at 85-95%): spread, so a team's devices do not all
 *   ask at once, and early enough to ride out a short outage.
 * - A token is used only until `notAfter` minus a skew (clocks differ; a request takes time): 30 s,
 *   or 5% of its life if that is less, so a 60 s token is refreshed (at 45-54 s) before it is
 *   dropped (at 57 s).
 * - A failing endpoint is retried with growing, jittered delays; after BREAKER_FAILURES in a row
 *   the breaker opens (no request) for a cool-down that doubles each time it reopens, then
 *   half-opens: one request decides.
 */

export const REFRESH_FROM = 0.75;
export const REFRESH_TO = 0.9;
/** Not used this close to its expiry (clocks differ; a request takes time)... */
export const EXPIRY_SKEW_MS = 30_000;
/** ...nor, for a short-lived token, in the last 5% of its life: the skew never reaches the refresh point. */
export const EXPIRY_SKEW_FRACTION = 0.05;

/** The skew for a token minted at `issuedAt`, valid until `notAfter`. */
export function expirySkew(issuedAt: number, notAfter: number): number {
  return Math.min(EXPIRY_SKEW_MS, Math.floor(Math.max(0, notAfter - issuedAt) * EXPIRY_SKEW_FRACTION));
}

/** When to refresh a token minted at `issuedAt` that is valid until `notAfter`. */
export function refreshAt(issuedAt: number, notAfter: number, random: () => number): number {
  const life = Math.max(0, notAfter - issuedAt);
  return issuedAt + Math.floor(life * (REFRESH_FROM + (REFRESH_TO - REFRESH_FROM) * random()));
}

/** Whether a token valid until `notAfter` may still be put on a request at `now`. */
export function usable(notAfter: number, now: number, skewMs = EXPIRY_SKEW_MS): boolean {
  return now < notAfter - skewMs;
}

export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_MS = 5 * 60_000;

/** The delay before retry number `failures` (1, 2, ...): doubling from 1 s to 5 min, jittered to 50-100%. */
export function retryDelayMs(failures: number, random: () => number): number {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.floor(ceiling * (0.5 + 0.5 * random()));
}

export const BREAKER_FAILURES = 3;
export const BREAKER_COOLDOWN_MS = 30_000;

export type Breaker = {
  readonly state: 'closed' | 'open' | 'half-open';
  /** failures in a row */
  readonly failures: number;
  /** while open: when it half-opens */
  readonly until: number;
  /** how many times it opened in a row (the cool-down doubles each time, up to RETRY_MAX_MS) */
  readonly opened: number;
};
export const CLOSED: Breaker = { state: 'closed', failures: 0, until: 0, opened: 0 };

/**
 * Whether a token request may be made now: an open breaker half-opens when its cool-down ends,
 * or at once when the person asked for it (`asked`).
 */
export function mayRequest(b: Breaker, now: number, asked = false): { allowed: boolean; breaker: Breaker } {
  if (b.state === 'open' && (asked || now >= b.until)) return { allowed: true, breaker: { ...b, state: 'half-open' } };
  return { allowed: b.state !== 'open', breaker: b };
}

/** The breaker after a request's outcome. */
export function afterRequest(b: Breaker, ok: boolean, now: number): Breaker {
  if (ok) return CLOSED;
  const failures = b.failures + 1;
  if (b.state === 'half-open' || failures >= BREAKER_FAILURES) {
    const opened = b.opened + 1;
    return { state: 'open', failures, until: now + Math.min(RETRY_MAX_MS, BREAKER_COOLDOWN_MS * 2 ** (opened - 1)), opened };
  }
  return { ...b, failures };
}
