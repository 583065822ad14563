/**
 * The team tier (issue 16): the second cache, at the distant vault, shared by every member
 * device of the synced vault. A device that needs a credential it does not hold (or whose own is
 * due for refresh) looks there first; if the team has a newer one, it takes it and mints nothing.
 * Otherwise it takes the slot's refresh lock, mints, and shares the result, sealed under the team
 * cache key (core/crypto/team.ts); devices that find the lock held wait for that result, or keep
 * serving their own valid token meanwhile (their refresh is ahead of expiry). One mint per
 * lifetime for the whole team.
 *
 * The lock lapses by itself: a holder that dies (a killed browser) holds it at most its TTL, and
 * the next device refreshes then. With the distant vault unreachable, a device mints alone when
 * minting spends nothing another device needs (`alone`); a rotating refresh token is never spent
 * outside the lock (a device cut off from the vault while another reaches it would spend the same
 * one): the device serves its cached token until it expires, then has none.
 */
import { CredentialError } from '../../core/credentials/errors.ts';
import type { TokenSet } from '../../core/credentials/oauth2.ts';
import { openShared, type SharedCredential, sealShared, type TeamKeys } from '../../core/crypto/team.ts';
import type { CacheView, VaultClient } from '../sync/vault-client.ts';

/** What the tier needs of the synced vault: its client, id, and the current epoch's team keys. */
export type TeamHandle = {
  readonly vault: string;
  readonly keys: TeamKeys;
  readonly client: Pick<VaultClient, 'cacheGet' | 'cacheLock' | 'cachePut' | 'cacheUnlock'>;
};

export type TeamTierDeps = {
  /** the synced vault now (undefined: not synced, or locked) */
  readonly team: () => Promise<TeamHandle | undefined>;
  readonly now: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** how often a device waiting for another's refresh looks again */
  readonly pollMs?: number;
  /** how long the refresh lock holds (default LOCK_SECONDS) */
  readonly lockSeconds?: number;
};

/** A lock outlives any one token request (bounded at 10 s), and no more than that by much. */
export const LOCK_SECONDS = 15;

export type Obtained = TokenSet & { readonly from: 'team' | 'minted' };

/** Mints here; `shared` is the team's entry as the lock holder found it (its refresh token is the newest). */
export type Mint = (shared?: SharedCredential) => Promise<TokenSet & { readonly rtVersion?: number }>;

export class TeamTier {
  constructor(private readonly d: TeamTierDeps) {}

  private sleep(ms: number): Promise<void> {
    return this.d.sleep ? this.d.sleep(ms) : new Promise((r) => setTimeout(r, ms));
  }

  /**
   * A credential for `slot` that ends later than `held` (the notAfter of the one this device has,
   * if any): the team's if it has one, else minted here by `mint` under the team's lock and shared.
   */
  async obtain(slot: string, held: number | undefined, mint: Mint, opts: { alone?: boolean } = {}): Promise<Obtained> {
    const alone = opts.alone ?? true;
    let team: TeamHandle | undefined;
    try {
      team = await this.d.team();
    } catch {
      team = undefined;
    }
    if (!team) return { ...(await mint()), from: 'minted' }; // not synced: nobody to share with
    const t = team;
    const place = { vault: t.vault, slot, epoch: t.keys.epoch };
    const open = async (view: CacheView): Promise<SharedCredential | undefined> =>
      view.entry?.epoch === t.keys.epoch ? openShared(t.keys.cache, place, view.entry.sealed).catch(() => undefined) : undefined;
    /** the team's entry, if it is newer than ours and still good for a while */
    const newer = async (view: CacheView): Promise<Obtained | undefined> => {
      const e = view.entry;
      if (!e || e.epoch !== t.keys.epoch || (held !== undefined && e.notAfter <= held)) return undefined;
      const c = await open(view);
      const now = this.d.now();
      if (!c || c.notAfter <= now + Math.min(30_000, (c.notAfter - c.issuedAt) / 10) || (held !== undefined && c.notAfter <= held))
        return undefined;
      return {
        accessToken: c.accessToken,
        tokenType: 'Bearer',
        expiresIn: Math.floor((c.notAfter - now) / 1000),
        notAfter: c.notAfter,
        ...(c.scope ? { scope: c.scope } : {}),
        from: 'team',
      };
    };
    try {
      const first = await newer(await t.client.cacheGet(t.vault, slot));
      if (first) return first;
      for (let round = 0; round < 3; round++) {
        const got = await t.client.cacheLock(t.vault, slot, this.d.lockSeconds ?? LOCK_SECONDS);
        const theirs = await newer(got);
        if (got.lockToken) {
          const token = got.lockToken;
          if (theirs) {
            await t.client.cacheUnlock(t.vault, slot, token).catch(() => {});
            return theirs;
          }
          return await this.mintAndShare(t, place, token, () => open(got).then((seen) => mint(seen)));
        }
        if (theirs) return theirs;
        // another device is refreshing: its result, or the lock back once it lapses
        const until = (got.lock?.until ?? this.d.now()) + 1000;
        while (this.d.now() < until) {
          await this.sleep(this.d.pollMs ?? 250);
          const view = await t.client.cacheGet(t.vault, slot);
          const done = await newer(view);
          if (done) return done;
          if (!view.lock) break;
        }
      }
    } catch (e) {
      if (e instanceof MintFailed) throw e.cause;
      // the distant vault cannot be asked now
    }
    if (!alone) throw new CredentialError('network'); // a rotating token is spent only under the team's lock
    return { ...(await mint()), from: 'minted' };
  }

  private async mintAndShare(
    t: TeamHandle,
    place: { vault: string; slot: string; epoch: number },
    lockToken: string,
    mint: () => Promise<TokenSet & { readonly rtVersion?: number }>,
  ): Promise<Obtained> {
    let minted: TokenSet & { readonly rtVersion?: number };
    const issuedAt = this.d.now();
    try {
      minted = await mint();
    } catch (e) {
      await t.client.cacheUnlock(t.vault, place.slot, lockToken).catch(() => {});
      throw new MintFailed(e);
    }
    const shared: SharedCredential = {
      accessToken: minted.accessToken,
      notAfter: minted.notAfter,
      issuedAt,
      ...(minted.scope ? { scope: minted.scope } : {}),
      ...(minted.refreshToken ? { refreshToken: minted.refreshToken } : {}),
      ...(minted.rtVersion !== undefined ? { rtVersion: minted.rtVersion } : {}),
    };
    const sealed = await sealShared(t.keys.cache, place, shared);
    // shared if the vault takes it; the token is good here either way
    await t.client
      .cachePut(t.vault, place.slot, { epoch: place.epoch, sealed, notAfter: minted.notAfter, issuedAt }, lockToken)
      .catch(() => {});
    const { rtVersion: _, refreshToken: __, ...token } = minted;
    return { ...token, from: 'minted' };
  }
}

/** The mint itself failed (not the team tier): its error goes to the caller as it is. */
class MintFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('mint failed');
  }
}
