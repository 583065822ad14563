/**
 * Minted credentials on demand: the cached token while it is good, one token request at a time
 * per credential however many callers wait (single flight), a refresh ahead of expiry, and a
 * failing token endpoint ridden out on the cached token. The rules are core/credentials/
 * lifetime.ts's; this holds the state per credential and the timers.
 *
 * - Refreshed at a random 75-90% of the token's life, while the credential is in use: a token
 *   nobody used during its life lapses, and the next use mints anew (docs/decisions.md).
 * - A refresh that fails leaves the cached token in use until notAfter minus the skew; retries
 *   back off; after 3 failures in a row the breaker opens and no request is made until it
 *   half-opens. Past the cached token's use, callers get CredentialUnavailable (page code 4402).
 * - Timers die with the worker; the alarm backstop comes with the worker's use of this.
 */
import { CredentialError, type CredentialErrorCode } from '../../core/credentials/errors.ts';
import {
  afterRequest,
  type Breaker,
  CLOSED,
  expirySkew,
  mayRequest,
  refreshAt,
  retryDelayMs,
  usable,
} from '../../core/credentials/lifetime.ts';
import type { TokenSet } from '../../core/credentials/oauth2.ts';
import type { CachedToken, CredentialCache } from './cache.ts';

/** No credential can be had now: the endpoint failed (or the breaker is open) and no cached token is usable. */
export class CredentialUnavailable extends Error {
  override readonly name = 'CredentialUnavailable';
  constructor(readonly reason: CredentialErrorCode | 'breaker-open') {
    super('no credential can be had now');
  }
}

export type CredentialState = 'ok' | 'expiring' | 'refreshing' | 'unavailable';

/** What the person and the agent see of a credential (never a value). */
export type CredentialStatus = {
  readonly state: CredentialState;
  readonly validUntil?: number;
  readonly nextRefresh?: number;
  readonly lastError?: CredentialErrorCode | 'breaker-open';
  readonly failures: number;
};

type Entry = {
  breaker: Breaker;
  failures: number;
  lastError?: CredentialErrorCode | 'breaker-open';
  /** when the cached token is due for refresh, and until when it is good */
  refreshAt?: number;
  notAfter?: number;
  issuedAt?: number;
  /** last time a caller asked for it */
  lastUsed: number;
  /** the next attempt after a failure */
  retryAt?: number;
  /**
   * The cached token, kept in memory while unlocked as an opened static value is (the worker
   * holds it whenever it is used anyway); the IndexedDB tier is what a restarted worker reads.
   */
  token?: CachedToken;
  timer?: ReturnType<typeof setTimeout>;
};

/**
 * What a mint gives: a token set; one taken from the team also says when it was minted and when
 * the team refreshes it (the devices sharing a token refresh it once, at its minter's draw).
 */
export type Minted = TokenSet & { readonly issuedAt?: number; readonly refreshAt?: number };

export type RefresherDeps = {
  readonly cache: CredentialCache;
  /** makes one token request for credential `id`; `cause`: the agent request waiting for it (its audit correlation id) */
  readonly mint: (id: string, cause?: string) => Promise<Minted>;
  readonly now: () => number;
  readonly random: () => number;
  /** the status of `id` changed (the options page, granted pages) */
  readonly onChange?: (id: string) => void;
};

export class Refresher {
  private readonly flights = new Map<string, Promise<CachedToken>>();
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly deps: RefresherDeps) {}

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      e = { breaker: CLOSED, failures: 0, lastUsed: 0 };
      this.entries.set(id, e);
    }
    return e;
  }

  /**
   * A token to put on a request now: the cached one while usable (refreshed behind it when due),
   * else a fresh one. `cause`: the request asking, named in the audit of a token request it waits for.
   */
  async token(id: string, cause?: string): Promise<CachedToken> {
    const e = this.entry(id);
    const now = this.deps.now();
    const cached = await this.cached(e, id);
    if (cached && usable(cached.notAfter, now, expirySkew(cached.issuedAt, cached.notAfter))) {
      e.token = cached;
      e.notAfter = cached.notAfter;
      e.issuedAt = cached.issuedAt;
      e.refreshAt ??= cached.refreshAt ?? refreshAt(cached.issuedAt, cached.notAfter, this.deps.random);
      e.lastUsed = this.deps.now(); // handed out: in use (a refresh starting now makes a token not used yet)
      if (now >= e.refreshAt && (e.retryAt === undefined || now >= e.retryAt)) void this.refresh(id).catch(() => {});
      return cached;
    }
    const fresh = await this.refresh(id, cause);
    e.lastUsed = this.deps.now();
    return fresh;
  }

  /** The token in memory while it is not past notAfter, else the cache tier's (a restarted worker). */
  private async cached(e: Entry, id: string): Promise<CachedToken | null> {
    if (e.token && e.token.notAfter > this.deps.now()) return e.token;
    e.token = undefined;
    return this.deps.cache.get(id);
  }

  /**
   * Mints anew; concurrent calls for one id share one token request (audited under the first
   * caller's cause). `pastBreaker`: the person asked, so an open breaker lets this one through
   * (as its half-open request; one more failure opens it again, for longer), and a request
   * already under way that fails (it may have left before the endpoint was fixed) is followed by
   * one of the person's own.
   */
  refresh(id: string, cause?: string, pastBreaker = false): Promise<CachedToken> {
    const flying = this.flights.get(id);
    if (flying && pastBreaker) {
      const again = () => this.flights.get(id) ?? this.start(id, cause, true);
      return flying.then((t) => (this.entry(id).lastError ? again() : t), again);
    }
    return flying ?? this.start(id, cause, pastBreaker);
  }

  private start(id: string, cause: string | undefined, pastBreaker: boolean): Promise<CachedToken> {
    const flight = this.mintOnce(id, cause, pastBreaker).finally(() => {
      this.flights.delete(id);
      this.deps.onChange?.(id);
    });
    this.flights.set(id, flight);
    this.deps.onChange?.(id);
    return flight;
  }

  private async mintOnce(id: string, cause: string | undefined, pastBreaker = false): Promise<CachedToken> {
    const e = this.entry(id);
    const gate = mayRequest(e.breaker, this.deps.now(), pastBreaker);
    e.breaker = gate.breaker;
    if (!gate.allowed) return this.fallBack(id, 'breaker-open');
    let minted: Minted;
    try {
      minted = await this.deps.mint(id, cause);
    } catch (err) {
      const now = this.deps.now();
      e.breaker = afterRequest(e.breaker, false, now);
      e.failures++;
      e.lastError = err instanceof CredentialError ? err.code : 'network';
      e.retryAt = now + retryDelayMs(e.failures, this.deps.random);
      this.arm(id, e.retryAt);
      return this.fallBack(id, e.lastError);
    }
    const now = this.deps.now();
    e.breaker = afterRequest(e.breaker, true, now);
    e.failures = 0;
    e.lastError = undefined;
    e.retryAt = undefined;
    const issuedAt = minted.issuedAt ?? now;
    const due = minted.refreshAt ?? refreshAt(issuedAt, minted.notAfter, this.deps.random);
    const token: CachedToken = {
      accessToken: minted.accessToken,
      issuedAt,
      notAfter: minted.notAfter,
      refreshAt: due,
      ...(minted.scope ? { scope: minted.scope } : {}),
    };
    await this.deps.cache.put(id, token);
    e.token = token;
    e.issuedAt = issuedAt;
    e.notAfter = token.notAfter;
    e.refreshAt = due;
    this.arm(id, due);
    return token;
  }

  /** After a failed (or refused) request: the cached token while it is still usable, else unavailable. */
  private async fallBack(id: string, reason: CredentialErrorCode | 'breaker-open'): Promise<CachedToken> {
    const cached = await this.cached(this.entry(id), id);
    if (cached && usable(cached.notAfter, this.deps.now(), expirySkew(cached.issuedAt, cached.notAfter))) return cached;
    throw new CredentialUnavailable(reason);
  }

  /**
   * A timer for `id` at `at`: a refresh (or a retry) then, if the credential was used since its
   * token was minted; otherwise it lapses.
   */
  private arm(id: string, at: number): void {
    const e = this.entry(id);
    clearTimeout(e.timer);
    e.timer = setTimeout(() => void this.tick(id), Math.max(0, at - this.deps.now()));
  }

  private async tick(id: string): Promise<void> {
    const e = this.entries.get(id);
    if (!e) return;
    if (e.issuedAt !== undefined && e.lastUsed < e.issuedAt) return; // unused since minted: let it lapse
    await this.refresh(id).catch(() => {});
  }

  /** The API answered 401 with the cached token: it is dropped, and the next token() mints. */
  async invalidate(id: string): Promise<void> {
    await this.deps.cache.delete(id);
    const e = this.entries.get(id);
    if (e) {
      e.token = undefined;
      e.refreshAt = undefined;
      e.notAfter = undefined;
    }
  }

  /** A request went out with the cached token without asking here (a transparent rule): it is in use. */
  touch(id: string): void {
    const e = this.entries.get(id);
    if (e) e.lastUsed = this.deps.now();
  }

  /**
   * The earliest refresh (or retry) still to come of a credential in use, for the alarm that
   * backs up the timers a stopped worker loses; undefined when none is due.
   */
  nextRefresh(): number | undefined {
    let next: number | undefined;
    for (const e of this.entries.values()) {
      if (e.issuedAt !== undefined && e.lastUsed < e.issuedAt && e.retryAt === undefined) continue; // left to lapse
      const at = e.retryAt ?? e.refreshAt;
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    return next;
  }

  status(id: string): CredentialStatus {
    const e = this.entries.get(id);
    const now = this.deps.now();
    if (!e) return { state: 'unavailable', failures: 0 };
    const base = {
      failures: e.failures,
      ...(e.notAfter !== undefined ? { validUntil: e.notAfter } : {}),
      ...((e.retryAt ?? e.refreshAt) ? { nextRefresh: (e.retryAt ?? e.refreshAt) as number } : {}),
      ...(e.lastError ? { lastError: e.lastError } : {}),
    };
    if (this.flights.has(id)) return { state: 'refreshing', ...base };
    const good = e.notAfter !== undefined && e.issuedAt !== undefined && usable(e.notAfter, now, expirySkew(e.issuedAt, e.notAfter));
    if (!good) return { state: 'unavailable', ...base };
    return { state: e.lastError || (e.refreshAt !== undefined && now >= e.refreshAt) ? 'expiring' : 'ok', ...base };
  }

  /** At lock: timers stop and the state goes (the cache itself is wiped by its owner). */
  forgetAll(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }
}
