/**
 * The credential cache and refresher (background/credentials) against a real OAuth 2.0 server
 * (oidc-provider, 4 s access tokens): sealed at rest under a key of its own; 50 concurrent cold
 * calls make one token request; refreshed ahead of expiry while in use and left to lapse when
 * not; a failing endpoint ridden out on the cached token until its usable end, then unavailable,
 * with the breaker keeping requests off the endpoint, and recovery when it is back. The clock is
 * the real one plus an offset the test can move (to pass the breaker's cool-down).
 */
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialCache } from '../../src/background/credentials/cache.ts';
import { CredentialUnavailable, Refresher } from '../../src/background/credentials/refresher.ts';
import { requestToken } from '../../src/background/credentials/token-client.ts';
import { openKeyholeDB } from '../../src/background/db.ts';
import { BREAKER_COOLDOWN_MS, BREAKER_FAILURES } from '../../src/core/credentials/lifetime.ts';
import { type TokenEndpoint, tokenRequest } from '../../src/core/credentials/oauth2.ts';
import { type OAuthServer, startOAuthServer } from '../harness/oauth2-server.ts';

const TTL_S = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let dbn = 0;

describe('cached, refreshed, minted once: credentials against a real OAuth 2.0 server', () => {
  let as: OAuthServer;
  let ep: TokenEndpoint;

  beforeAll(async () => {
    as = await startOAuthServer({ accessTokenTtlSeconds: TTL_S });
    ep = { url: as.tokenUrl, clientId: 'cc-basic', auth: { method: 'client_secret_basic', secret: as.secrets.basic } };
  });
  afterAll(async () => {
    await as?.close();
  });

  async function setup(random = () => 0) {
    const db = await openKeyholeDB(`refresher-${++dbn}`);
    const clock = { offset: 0, now: () => Date.now() + clock.offset };
    const state = {
      key: (await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])) as CryptoKey | null,
    };
    const cache = new CredentialCache(
      db,
      async () => (state.key ? { key: state.key, vaultId: '00000000-0000-4000-8000-000000000001' } : null),
      clock.now,
    );
    const causes: (string | undefined)[] = [];
    const mint = async (_id: string, cause?: string) => {
      causes.push(cause);
      return requestToken(
        (u, i) => fetch(u, i),
        await tokenRequest(ep, { type: 'client_credentials' }, clock.now(), crypto.randomUUID()),
        clock.now,
      );
    };
    const refresher = new Refresher({ cache, mint, now: clock.now, random });
    return { db, cache, refresher, clock, state, causes, mint };
  }
  const requests = () => as.tokenRequests.total;

  it('seals the cached token under its own key, bound to its id; an entry from another unlock is dropped', async () => {
    const { db, cache, refresher, state } = await setup();
    const token = await refresher.token('svc');
    const stored = await db.get('credentials', 'svc');
    expect(stored?.expiresAt).toBe(token.notAfter);
    expect(Buffer.from(stored?.record ?? []).includes(Buffer.from(token.accessToken))).toBe(false);
    expect(await cache.get('svc')).toEqual(token);
    // moved to another id, it does not open
    await db.put('credentials', { ...(stored as NonNullable<typeof stored>), id: 'other' });
    expect(await cache.get('other')).toBeNull();
    // after a new unlock (a new key), the old entry is of no use and goes
    state.key = (await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])) as CryptoKey;
    expect(await cache.get('svc')).toBeNull();
    expect(await db.get('credentials', 'svc')).toBeUndefined();
    refresher.forgetAll();
  });

  it('50 concurrent cold calls make one token request, and all get the same token', async () => {
    const { refresher } = await setup();
    const before = requests();
    const tokens = await Promise.all(Array.from({ length: 50 }, () => refresher.token('svc')));
    expect(requests() - before).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    refresher.forgetAll();
  });

  it('refreshes at 75-90% of the life while in use; a token nobody used lapses', async () => {
    const { refresher } = await setup(() => 0); // at 75%: 3 s of 4
    const before = requests();
    const first = await refresher.token('svc');
    expect(refresher.status('svc').state).toBe('ok');
    await sleep(TTL_S * 1000 * 0.75 + 400);
    // refreshed by its timer, with no call in between
    expect(requests() - before).toBe(2);
    const second = await refresher.token('svc');
    expect(second.accessToken).not.toBe(first.accessToken);
    // the third token is never handed out: it is not refreshed again, it lapses
    await sleep(TTL_S * 1000 * 0.75 + 400); // second's refresh point: refreshed (it was used)
    const afterSecond = requests() - before;
    expect(afterSecond).toBe(3);
    await sleep(TTL_S * 1000 + 500);
    expect(requests() - before).toBe(afterSecond);
    refresher.forgetAll();
  });

  it('rides out a failing endpoint on the cached token, then is unavailable; the breaker keeps requests off; it recovers', async () => {
    const { refresher, clock } = await setup();
    const good = await refresher.token('svc');
    as.faults.status = 503;
    // a forced refresh fails, and the cached token is still served
    for (let i = 0; i < BREAKER_FAILURES; i++) expect(await refresher.refresh('svc')).toEqual(good);
    expect(refresher.status('svc')).toMatchObject({ state: 'expiring', lastError: 'oauth-error', failures: BREAKER_FAILURES });
    // the breaker is open: no request reaches the endpoint
    const whileOpen = requests();
    expect(await refresher.refresh('svc')).toEqual(good);
    expect(requests()).toBe(whileOpen);
    // past the token's usable end (notAfter minus the skew), nothing can be had
    await sleep(good.notAfter - Date.now());
    await expect(refresher.token('svc')).rejects.toBeInstanceOf(CredentialUnavailable);
    expect(refresher.status('svc').state).toBe('unavailable');
    // the endpoint is back; once the breaker half-opens, one request decides and service resumes
    delete as.faults.status;
    clock.offset += BREAKER_COOLDOWN_MS;
    const back = await refresher.token('svc');
    expect(back.accessToken).not.toBe(good.accessToken);
    expect(refresher.status('svc')).toMatchObject({ state: 'ok', failures: 0 });
    refresher.forgetAll();
  });

  it('a token request is audited under the call that waited for it; a refresh ahead of expiry under none', async () => {
    const { refresher, causes } = await setup(() => 0);
    await Promise.all([refresher.token('svc', 'call-1'), refresher.token('svc', 'call-2')]); // one flight, the first caller's
    await refresher.token('svc', 'call-3'); // cached: no token request
    expect(causes).toEqual(['call-1']);
    await sleep(TTL_S * 1000 * 0.75 + 400); // refreshed by its timer
    expect(causes).toEqual(['call-1', undefined]);
    refresher.forgetAll();
  });

  it('the person’s refresh goes past an open breaker at once; an agent’s does not', async () => {
    const { refresher } = await setup();
    const good = await refresher.token('svc');
    as.faults.status = 503;
    try {
      for (let i = 0; i < BREAKER_FAILURES; i++) await refresher.refresh('svc');
    } finally {
      delete as.faults.status;
    }
    const open = requests();
    expect(await refresher.refresh('svc')).toEqual(good); // breaker open: served from cache, no request
    expect(requests()).toBe(open);
    const fresh = await refresher.refresh('svc', undefined, true);
    expect(requests()).toBe(open + 1);
    expect(fresh.accessToken).not.toBe(good.accessToken);
    expect(refresher.status('svc')).toMatchObject({ state: 'ok', failures: 0 });
    refresher.forgetAll();
  });

  it('the person’s refresh that joins a request already failing makes one of its own after it', async () => {
    const { refresher } = await setup();
    await refresher.token('svc');
    as.faults.status = 503;
    as.faults.delayMs = 300;
    try {
      const agents = refresher.refresh('svc'); // on its way to a failing endpoint
      await sleep(50);
      const person = refresher.refresh('svc', undefined, true); // joins it
      await sleep(320); // the first request has failed; the endpoint is fixed while the person's waits
      delete as.faults.status;
      const before = await agents;
      const fresh = await person;
      expect(fresh.accessToken).not.toBe(before.accessToken);
      expect(refresher.status('svc')).toMatchObject({ state: 'ok', failures: 0 });
    } finally {
      delete as.faults.status;
      delete as.faults.delayMs;
    }
    refresher.forgetAll();
  });

  it('a restarted worker (a new refresher, the same cache tier) serves the cached token without a request', async () => {
    const { refresher, cache, clock, mint } = await setup();
    const token = await refresher.token('svc');
    refresher.forgetAll(); // the worker stopped: its memory is gone, IndexedDB is not
    const restarted = new Refresher({ cache, mint, now: clock.now, random: () => 0 });
    const before = requests();
    expect(await restarted.token('svc')).toEqual(token);
    expect(requests()).toBe(before);
    restarted.forgetAll();
  });

  it('a token the API refused (401) is dropped: the next call mints', async () => {
    const { refresher } = await setup();
    const a = await refresher.token('svc');
    const before = requests();
    await refresher.invalidate('svc');
    const b = await refresher.token('svc');
    expect(requests() - before).toBe(1);
    expect(b.accessToken).not.toBe(a.accessToken);
    refresher.forgetAll();
  });

  it('lock wipes the cache', async () => {
    const { cache, refresher } = await setup();
    await refresher.token('svc');
    await cache.wipe();
    refresher.forgetAll();
    expect(await cache.get('svc')).toBeNull();
  });
});
