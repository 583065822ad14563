/**
 * The team cache (issue 16) over real HTTP, on SQLite and on PostgreSQL: the distant vault keeps
 * only ciphertext with its notAfter, lets one device at a time refresh a slot, and forgets a
 * removed member's epoch. Then the team tier of three member devices (real VaultClients, the
 * real TeamTier) in front of a real OAuth 2.0 server (oidc-provider): one token request per
 * lifetime for all three, and a refresher that dies holding the lock is replaced once it lapses.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TeamHandle, TeamTier } from '../../src/background/credentials/team-tier.ts';
import { requestToken } from '../../src/background/credentials/token-client.ts';
import type { Replica } from '../../src/background/sync/replica.ts';
import type { VaultClient } from '../../src/background/sync/vault-client.ts';
import { tokenRequest } from '../../src/core/credentials/oauth2.ts';
import { newVaultKey } from '../../src/core/crypto/share.ts';
import { chainSlot, deriveTeamKeys, type RefreshChain, sealShared } from '../../src/core/crypto/team.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import type { Store } from '../../src/server/store.ts';
import { type OAuthServer, startOAuthServer } from '../harness/oauth2-server.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { device } from '../harness/sync.ts';
import { type Engine, openStore, type RunningServer, startVaultServer } from '../harness/vault-server.ts';

let pgServer: Postgres;
beforeAll(async () => {
  pgServer = await startPostgres();
});
afterAll(async () => {
  await pgServer?.stop();
});

const SLOT = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe.each<Engine>(['sqlite', 'postgres'])('the team cache on %s', (engine) => {
  let srv: RunningServer;
  let store: Store;
  let dir: string;
  let shift = 0;
  let as: OAuthServer;
  let devices: VaultClient[];
  let replica: Replica;
  let handles: TeamHandle[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyhole-team-'));
    store = engine === 'sqlite' ? openSqlite(dir) : await openStore(engine, pgServer.url);
    srv = await startVaultServer(
      store,
      { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000 },
      {
        now: () => Date.now() + shift,
        sweepIntervalMs: 0,
      },
    );
    as = await startOAuthServer({ accessTokenTtlSeconds: 60 });
    devices = await Promise.all(['one', 'two', 'three'].map((n) => device(srv.origin, n)));
    const [first, ...others] = devices as [VaultClient, ...VaultClient[]];
    replica = await first.createVault();
    await first.push(
      replica,
      others.map((d) => ({ body: { type: 'member.add', device: d.device.public } })),
    );
    // the vault key all three hold (key.wrap's job, core/crypto/share.ts; not what this tests)
    const keys = await deriveTeamKeys(newVaultKey(), replica.vault, 1);
    handles = devices.map((client) => ({ vault: replica.vault, keys, client }));
  });
  afterAll(async () => {
    await srv?.close();
    await as?.close();
  });

  const mint = () =>
    tokenRequest(
      { url: as.tokenUrl, clientId: 'cc-basic', auth: { method: 'client_secret_basic', secret: as.secrets.basic } },
      { type: 'client_credentials' },
      Date.now(),
      crypto.randomUUID(),
    ).then((req) => requestToken((u, i) => fetch(u, i), req, Date.now));
  const tier = (lockSeconds = 15) => handles.map((h) => new TeamTier({ team: async () => h, now: Date.now, pollMs: 50, lockSeconds }));

  it('three devices asking at once for a credential none holds: one token request, the same token for all', async () => {
    const before = as.tokenRequests.total;
    const got = await Promise.all(tier().map((t) => t.obtain(SLOT, undefined, mint)));
    expect(as.tokenRequests.total - before).toBe(1);
    expect(new Set(got.map((g) => g.accessToken)).size).toBe(1);
    expect(got.map((g) => g.from).sort()).toEqual(['minted', 'team', 'team']);
  });

  it('all three due for refresh at the same moment: one more token request, and every device takes the new token', async () => {
    const [t1] = tier();
    const current = await (t1 as TeamTier).obtain(SLOT, undefined, mint); // from the team
    const before = as.tokenRequests.total;
    const got = await Promise.all(tier().map((t) => t.obtain(SLOT, current.notAfter, mint)));
    expect(as.tokenRequests.total - before).toBe(1);
    expect(new Set(got.map((g) => g.accessToken)).size).toBe(1);
    expect(got[0]?.accessToken).not.toBe(current.accessToken);
  });

  it('a device taking the team’s token refreshes it when its minter does: one refresh point per token, not the earliest draw', async () => {
    const slot = '1b4e28ba-2fa1-41d2-883f-0016d3cca427';
    const got = await Promise.all(tier().map((t) => t.obtain(slot, undefined, mint)));
    const minted = got.find((g) => g.from === 'minted');
    expect(minted?.refreshAt).toBeGreaterThan((minted?.issuedAt ?? 0) + 0.74 * ((minted?.notAfter ?? 0) - (minted?.issuedAt ?? 0)));
    for (const g of got)
      expect({ issuedAt: g.issuedAt, refreshAt: g.refreshAt }).toEqual({ issuedAt: minted?.issuedAt, refreshAt: minted?.refreshAt });
  });

  it('a rotating refresh token is spent from the team’s chain, even after its access token expired and by devices whose own copy is old', async () => {
    const rtServer = await startOAuthServer({ accessTokenTtlSeconds: 1 });
    try {
      const slot = '6fa459ea-ee8a-4ca4-894e-db77e160355e';
      const first = await rtServer.mintRefreshToken();
      // each device's copy of the secret, as its log would give it: never updated here (a log that lags)
      const copies = handles.map(() => ({ refreshToken: first, version: 1 }));
      const spend = (i: number) => async (chain?: RefreshChain) => {
        const own = copies[i] as { refreshToken: string; version: number };
        const rt = chain && chain.rtVersion >= own.version ? chain.refreshToken : own.refreshToken;
        const req = await tokenRequest(
          { url: rtServer.tokenUrl, clientId: 'rt-client', auth: { method: 'client_secret_basic', secret: rtServer.secrets.rt } },
          { type: 'refresh_token', refreshToken: rt },
          Date.now(),
          crypto.randomUUID(),
        );
        const minted = await requestToken((u, init) => fetch(u, init), req, Date.now);
        return { ...minted, rtVersion: Math.max(own.version, chain?.rtVersion ?? 0) + 1 };
      };
      const tiers = tier();
      let held: number | undefined;
      for (let round = 0; round < 6; round++) {
        const i = round % 3;
        const got = await (tiers[i] as TeamTier).obtain(slot, held, spend(i), { rotating: true });
        expect(got.from).toBe('minted');
        held = got.notAfter;
        await new Promise((r) => setTimeout(r, Math.max(0, got.notAfter + 100 - Date.now()))); // its entry is gone; the chain is not
        expect((await (handles[0] as TeamHandle).client.cacheGet((handles[0] as TeamHandle).vault, slot)).entry).toBeUndefined();
      }
      expect(rtServer.grantErrors).toEqual({}); // no refresh token was spent twice
      expect(rtServer.tokenRequests.byGrant.refresh_token).toBe(6);
      const chainEntry = (await (handles[0] as TeamHandle).client.cacheGet((handles[0] as TeamHandle).vault, chainSlot(slot))).entry;
      expect(chainEntry?.notAfter).toBeGreaterThan(Date.now() + 3600_000);
    } finally {
      await rtServer.close();
    }
  });

  it('the refresher dies holding the lock: the others keep waiting until it lapses, then one of them refreshes', async () => {
    const h = handles[0] as TeamHandle;
    const held = (await h.client.cacheGet(h.vault, SLOT)).entry?.notAfter as number;
    const dead = await h.client.cacheLock(h.vault, SLOT, 2); // and never shares a result
    expect(dead.lockToken).toBeDefined();
    const before = as.tokenRequests.total;
    const started = Date.now();
    const [, t2, t3] = tier(2);
    const got = await Promise.all([t2, t3].map((t) => (t as TeamTier).obtain(SLOT, held, mint)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(as.tokenRequests.total - before).toBe(1);
    expect(new Set(got.map((g) => g.accessToken)).size).toBe(1);
  });

  it('the lock is one device’s at a time; a write that is not the holder’s, or older, is refused', async () => {
    const [a, b] = handles as [TeamHandle, TeamHandle];
    const slot = '7c9e6679-7425-40de-944b-e07fc1f90ae7#0123456789abcdef0123456789abcdef';
    const locks = await Promise.all([a, b, a, b].map((h) => h.client.cacheLock(h.vault, slot, 5)));
    expect(locks.filter((l) => l.lockToken).length).toBe(1);
    const holder = locks.find((l) => l.lockToken) as { lockToken: string };
    const other = locks.find((l) => !l.lockToken);
    expect(other?.lock?.holder).toBeDefined();
    const entry = async (notAfter: number) => ({
      epoch: 1,
      sealed: await sealShared(
        a.keys.cache,
        { vault: a.vault, slot, epoch: 1 },
        { accessToken: 'FAKE-shared', notAfter, issuedAt: Date.now() },
      ),
      notAfter,
      issuedAt: Date.now(),
    });
    const later = Date.now() + 60_000;
    expect(await b.client.cachePut(b.vault, slot, await entry(later))).toBe(false); // a holds the lock
    expect(await a.client.cachePut(a.vault, slot, await entry(later), holder.lockToken)).toBe(true); // and frees it
    expect(await b.client.cachePut(b.vault, slot, await entry(later - 1000))).toBe(false); // older than what is there
    expect((await b.client.cacheGet(b.vault, slot)).entry?.notAfter).toBe(later);
  });

  it('bad input is refused with a reason; strangers hear there is no vault', async () => {
    const [a] = handles as [TeamHandle];
    const put = (body: unknown, slot = SLOT) =>
      fetch(`${srv.origin}/v1/vaults/${a.vault}/cache/${encodeURIComponent(slot)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${session}` },
        body: JSON.stringify(body),
      });
    const { login } = await import('../harness/sync.ts');
    const session = await login(srv.origin, a.client as VaultClient);
    const now = Date.now();
    const good = { epoch: 1, sealed: 'AAAA', notAfter: now + 60_000, issuedAt: now };
    expect((await put({ ...good, sealed: 'x'.repeat(20_000) })).status).toBe(400);
    expect((await put({ ...good, notAfter: now + 72 * 3600_000 })).status).toBe(400);
    expect((await put({ ...good, issuedAt: now + 3600_000 })).status).toBe(400);
    expect((await put({ ...good, epoch: 2 })).status).toBe(409);
    expect((await put(good, 'not-a-slot')).status).toBe(404);
    const stranger = await device(srv.origin, 'stranger');
    await expect(stranger.cacheGet(a.vault, SLOT)).rejects.toMatchObject({ code: 'not-found' });
  });

  it('a member removed: a new epoch, the old entries dropped, and the removed device refused', async () => {
    const [a, , c] = handles as [TeamHandle, TeamHandle, TeamHandle];
    await Promise.all(tier().map((t) => t.obtain(SLOT, undefined, mint)));
    expect((await a.client.cacheGet(a.vault, SLOT)).entry).toBeDefined();
    const first = devices[0] as VaultClient;
    await first.pull(replica);
    await first.push(replica, [{ body: { type: 'member.remove', device: (devices[2] as VaultClient).device.public.id } }]);
    expect((await a.client.cacheGet(a.vault, SLOT)).entry).toBeUndefined(); // epoch 2 now: nothing of epoch 1
    expect((await rawRows()).filter((r) => r.includes('"epoch":1'))).toEqual([]);
    await expect(c.client.cacheGet(c.vault, SLOT)).rejects.toMatchObject({ code: 'not-found' });
  });

  it('holds no token in clear; an entry past its notAfter is never returned and the sweep deletes it', async () => {
    // epoch 2 now (the member removed above): the two left share its key
    const keys = await deriveTeamKeys(newVaultKey(), replica.vault, 2);
    const [a, b] = (handles.slice(0, 2) as TeamHandle[]).map((h) => ({ ...h, keys }));
    await Promise.all([a, b].map((h) => new TeamTier({ team: async () => h, now: Date.now, pollMs: 50 }).obtain(SLOT, undefined, mint)));
    if (!a) throw new Error('no device');
    const tokens = [...as.issued.accessTokens];
    expect(tokens.length).toBeGreaterThan(0);
    const rows = await rawRows();
    expect(rows.length).toBeGreaterThan(0);
    for (const t of tokens) expect(rows.some((r) => r.includes(t))).toBe(false);
    shift = 65_000; // past every notAfter here (tokens of 60 s), within the sessions' 10 minutes; last: the clock only moves on
    expect((await a.client.cacheGet(a.vault, SLOT)).entry).toBeUndefined();
    expect(await (srv.team as { sweep(): Promise<number> }).sweep()).toBeGreaterThan(0);
    expect((await rawRows()).filter((r) => r.includes('"sealed":"') && !r.includes('"sealed":null'))).toEqual([]);
  });

  /** Every team_cache row as JSON text, straight from the database. */
  async function rawRows(): Promise<string[]> {
    if (engine === 'sqlite') {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(dir, 'keyhole.sqlite'), { readonly: true });
      try {
        return db
          .prepare('SELECT * FROM team_cache')
          .all()
          .map((r) => JSON.stringify(r));
      } finally {
        db.close();
      }
    }
    const c = new pg.Client({ connectionString: pgServer.url });
    await c.connect();
    try {
      return (await c.query('SELECT * FROM team_cache')).rows.map((r) => JSON.stringify(r));
    } finally {
      await c.end();
    }
  }
});
