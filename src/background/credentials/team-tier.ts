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
 * minting spends nothing another device needs; a rotating refresh token is never spent outside the
 * lock (a device cut off from the vault while another reaches it would spend the same one): the
 * device serves its cached token until it expires, then has none.
 *
 * A rotating refresh token's successor is kept at the team in a chain entry of its own
 * (`chainSlot`), sealed like the rest and kept long after the access token it came with: the next
 * holder spends it even if the log has not brought it the new version yet. A holder that cannot
 * store it keeps the lock until it lapses, by when its push to the log has landed.
 */
import { CredentialError } from '../../core/credentials/errors.ts';
import { refreshAt } from '../../core/credentials/lifetime.ts';
import type { TokenSet } from '../../core/credentials/oauth2.ts';
import {
  chainSlot,
  openChain,
  openShared,
  type RefreshChain,
  type SharedCredential,
  sealChain,
  sealShared,
  type TeamKeys,
} from '../../core/crypto/team.ts';
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
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** how often a device waiting for another's refresh looks again */
  readonly pollMs?: number;
  /** how long the refresh lock holds (default LOCK_SECONDS) */
  readonly lockSeconds?: number;
};

/** A lock outlives any one token request (bounded at 10 s), and no more than that by much. */
export const LOCK_SECONDS = 15;
/**
 * A refresh-token chain is kept this long after its last spend: long past any access token, so
 * the next holder finds it however late it refreshes; by then the log holds it too.
 */
export const CHAIN_KEEP_MS = 24 * 3600_000;

/**
 * A credential, minted here or taken from the team: when it was minted and when the team
 * refreshes it (the minter's draw, so the devices sharing it refresh it once, not at the earliest
 * of their own draws).
 */
export type Obtained = TokenSet & { readonly from: 'team' | 'minted'; readonly issuedAt: number; readonly refreshAt: number };

/** A token set minted here; a rotated refresh token comes with the secret version that now holds it. */
export type MintedHere = TokenSet & { readonly rtVersion?: number };

/** Mints here; `chain`: the team's newest refresh token, read under the lock (rotating credentials). */
export type Mint = (chain?: RefreshChain) => Promise<MintedHere>;

export class TeamTier {
  constructor(private readonly d: TeamTierDeps) {}

  private sleep(ms: number): Promise<void> {
    return this.d.sleep ? this.d.sleep(ms) : new Promise((r) => setTimeout(r, ms));
  }

  private draw(issuedAt: number, notAfter: number): number {
    return refreshAt(issuedAt, notAfter, this.d.random ?? Math.random);
  }

  /**
   * A credential for `slot` that ends later than `held` (the notAfter of the one this device has,
   * if any): the team's if it has one, else minted here by `mint` under the team's lock and shared.
   * `rotating`: minting spends a refresh token the team shares, so it happens only under the lock,
   * with the team's newest refresh token, never alone.
   */
  async obtain(slot: string, held: number | undefined, mint: Mint, opts: { rotating?: boolean } = {}): Promise<Obtained> {
    const rotating = opts.rotating ?? false;
    let team: TeamHandle | undefined;
    try {
      team = await this.d.team();
    } catch {
      team = undefined;
    }
    if (!team) return this.mintedAlone(mint); // not synced: nobody to share with
    const t = team;
    const place = { vault: t.vault, slot, epoch: t.keys.epoch };
    /** the team's entry, if it is newer than ours and still good for a while */
    const newer = async (view: CacheView): Promise<Obtained | undefined> => {
      const e = view.entry;
      if (!e || e.epoch !== t.keys.epoch || (held !== undefined && e.notAfter <= held)) return undefined;
      const c = await openShared(t.keys.cache, place, e.sealed).catch(() => undefined);
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
        issuedAt: c.issuedAt,
        refreshAt: c.refreshAt ?? this.draw(c.issuedAt, c.notAfter),
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
          const chain = rotating ? await this.chain(t, slot) : undefined;
          return await this.mintAndShare(t, place, token, () => mint(chain));
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
    if (rotating) throw new CredentialError('network'); // a rotating token is spent only under the team's lock
    return this.mintedAlone(mint);
  }

  private async mintedAlone(mint: Mint): Promise<Obtained> {
    const issuedAt = this.d.now();
    const { rtVersion: _, ...token } = await mint();
    return { ...token, from: 'minted', issuedAt, refreshAt: this.draw(issuedAt, token.notAfter) };
  }

  /** The team's refresh-token chain of `slot` (read under its lock), if it has one that opens here. */
  private async chain(t: TeamHandle, slot: string): Promise<RefreshChain | undefined> {
    const place = { vault: t.vault, slot: chainSlot(slot), epoch: t.keys.epoch };
    const e = (await t.client.cacheGet(t.vault, place.slot)).entry;
    if (!e || e.epoch !== t.keys.epoch) return undefined;
    return openChain(t.keys.cache, place, e.sealed).catch(() => undefined);
  }

  private async mintAndShare(
    t: TeamHandle,
    place: { vault: string; slot: string; epoch: number },
    lockToken: string,
    mint: () => Promise<MintedHere>,
  ): Promise<Obtained> {
    let minted: MintedHere;
    const issuedAt = this.d.now();
    try {
      minted = await mint();
    } catch (e) {
      await t.client.cacheUnlock(t.vault, place.slot, lockToken).catch(() => {});
      throw new MintFailed(e);
    }
    const { rtVersion, refreshToken, ...token } = minted;
    const obtained: Obtained = { ...token, from: 'minted', issuedAt, refreshAt: this.draw(issuedAt, minted.notAfter) };
    if (refreshToken !== undefined && rtVersion !== undefined && !(await this.keepChain(t, place, { refreshToken, rtVersion }))) {
      // the successor is not at the team: the lock is kept until it lapses, by when the log has it
      return obtained;
    }
    const shared: SharedCredential = {
      accessToken: minted.accessToken,
      notAfter: minted.notAfter,
      issuedAt,
      refreshAt: obtained.refreshAt,
      ...(minted.scope ? { scope: minted.scope } : {}),
    };
    const sealed = await sealShared(t.keys.cache, place, shared);
    // shared if the vault takes it; the token is good here either way
    await t.client
      .cachePut(t.vault, place.slot, { epoch: place.epoch, sealed, notAfter: minted.notAfter, issuedAt }, lockToken)
      .catch(() => {});
    return obtained;
  }

  /** Stores a rotated refresh token as the team's newest (retried a little: the next holder depends on it); whether it landed. */
  private async keepChain(t: TeamHandle, place: { vault: string; slot: string; epoch: number }, chain: RefreshChain): Promise<boolean> {
    const at = { ...place, slot: chainSlot(place.slot) };
    const sealed = await sealChain(t.keys.cache, at, chain);
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = this.d.now();
      const stored = await t.client
        .cachePut(t.vault, at.slot, { epoch: at.epoch, sealed, notAfter: now + CHAIN_KEEP_MS, issuedAt: now })
        .catch(() => false);
      if (stored) return true;
      await this.sleep(200);
    }
    return false;
  }
}

/** The mint itself failed (not the team tier): its error goes to the caller as it is. */
class MintFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('mint failed');
  }
}
