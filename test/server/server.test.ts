/**
 * The distant vault over real HTTP, the same suite on both engines: embedded SQLite and a
 * PostgreSQL cluster this file starts. Clients are the real VaultClient with real keys.
 */
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replica } from '../../src/background/sync/replica.ts';
import { VaultClient } from '../../src/background/sync/vault-client.ts';
import { newDevice } from '../../src/core/crypto/device.ts';
import { blobHash, nextEntry, signEntry } from '../../src/core/sync/log.ts';
import { signLogin } from '../../src/core/sync/login.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import type { Store } from '../../src/server/store.ts';
import { type Postgres, startPostgres } from '../harness/postgres.ts';
import { device, login, post, putItem, values, vaultKeys, waitFor } from '../harness/sync.ts';
import { type Engine, openStore, type RunningServer, startVaultServer } from '../harness/vault-server.ts';

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

describe.each<Engine>(['sqlite', 'postgres'])('distant vault on %s', (engine) => {
  let store: Store;
  let srv: RunningServer;
  beforeAll(async () => {
    store = await openStore(engine, pg.url);
    srv = await startVaultServer(store, { loginsPerMinute: 100_000, requestsPerMinute: 1_000_000 });
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('answers health with its engine', async () => {
    const r = await fetch(`${srv.origin}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true, engine });
  });

  it('syncs a sealed secret from one device to another that a member added', async () => {
    const a = await device(srv.origin, 'laptop');
    const b = await device(srv.origin, 'desktop');
    const ra = await a.createVault();
    const keys = await vaultKeys(ra.vault);
    await a.push(ra, [await putItem(keys, ra, 'openai', 'sk-FAKE-one')]);

    // Not a member yet: the vault does not exist for b.
    await expect(b.pull(new Replica(ra.vault))).rejects.toMatchObject({ code: 'not-found' });
    expect(await b.vaults()).toEqual([]);

    await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
    expect(await b.vaults()).toEqual([ra.vault]);
    const rb = new Replica(ra.vault);
    await b.pull(rb);
    expect(rb.head).toEqual(ra.head);
    expect(rb.headFingerprint).toBe(ra.headFingerprint);
    expect(await values(keys, rb, 'openai')).toEqual(['sk-FAKE-one']);
  });

  it('pairing lookup and recovery filing: signed-in lookups by code, recovery filed by members and fetched by lookup only', async () => {
    const a = await device(srv.origin, 'laptop');
    const b = await device(srv.origin, 'phone');
    const ra = await a.createVault();
    const prefix = b.device.public.id.slice(0, 20);
    expect((await fetch(`${srv.origin}/v1/devices/${prefix}`)).status).toBe(401);
    expect(await a.pairingDevice(prefix)).toEqual(b.device.public);
    await expect(a.pairingDevice('f'.repeat(20))).rejects.toMatchObject({ code: 'not-found' });

    const lookup = 'ab'.repeat(32);
    const blob = btoa('sealed recovery device (FAKE)');
    const body = { vault: ra.vault, lookup, blob };
    expect((await post(srv.origin, '/v1/recovery', body, await login(srv.origin, b))).status).toBe(404); // not a member
    expect((await post(srv.origin, '/v1/recovery', body)).status).toBe(401);
    expect((await post(srv.origin, '/v1/recovery', { ...body, lookup: 'nope' }, await login(srv.origin, a))).status).toBe(400);
    await a.putRecovery(ra.vault, lookup, new TextEncoder().encode('sealed recovery device (FAKE)'));
    expect((await post(srv.origin, '/v1/recovery', body, await login(srv.origin, a))).status).toBe(409); // filed once
    const got = await fetch(`${srv.origin}/v1/recovery/${lookup}`); // no session needed
    expect(await got.json()).toEqual({ vault: ra.vault, blob });
    expect((await fetch(`${srv.origin}/v1/recovery/${'cd'.repeat(32)}`)).status).toBe(404);
  });

  it('compare-and-swap: of two commits on one head exactly one wins; the loser learns what it missed and lands after', async () => {
    const a = await device(srv.origin, 'a');
    const b = await device(srv.origin, 'b');
    const ra = await a.createVault();
    const keys = await vaultKeys(ra.vault);
    await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
    const rb = new Replica(ra.vault);
    await b.pull(rb);

    // Both edit the same item from the same head (offline), then both push at once.
    const [ea, eb] = [await putItem(keys, ra, 'shared', 'sk-FAKE-from-a'), await putItem(keys, rb, 'shared', 'sk-FAKE-from-b')];
    const base = ra.head;
    // The real race, through the client: both pushes start on the same base.
    const results = await Promise.allSettled([a.push(ra, [ea]), b.push(rb, [eb])]);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    await a.pull(ra);
    await b.pull(rb);
    expect(ra.head).toEqual(rb.head);
    expect(ra.seq).toBe(base.seq + 2);
    // Neither edit was lost: the item has two heads, a conflict for the person to resolve.
    expect(ra.conflicts()).toEqual(['shared']);
    expect(await values(keys, rb, 'shared')).toEqual(['sk-FAKE-from-a', 'sk-FAKE-from-b']);

    // Resolving names both heads as parents: one version again.
    await a.push(ra, [await putItem(keys, ra, 'shared', 'sk-FAKE-merged', 2)]);
    await b.pull(rb);
    expect(rb.conflicts()).toEqual([]);
    expect(await values(keys, rb, 'shared')).toEqual(['sk-FAKE-merged']);
  });

  it('races commits at the HTTP level: exactly one 200 per head, the rest 409 with the winner', async () => {
    const devices = await Promise.all([0, 1, 2, 3].map((i) => device(srv.origin, `racer-${i}`)));
    const [first] = devices;
    const r0 = await (first as VaultClient).createVault();
    for (const d of devices.slice(1)) await (first as VaultClient).push(r0, [{ body: { type: 'member.add', device: d.device.public } }]);
    const replicas = await Promise.all(
      devices.map(async (d) => {
        const r = new Replica(r0.vault);
        await d.pull(r);
        return r;
      }),
    );
    const tokens = await Promise.all(devices.map((d) => login(srv.origin, d)));
    const keys = await vaultKeys(r0.vault);
    for (let round = 0; round < 5; round++) {
      const attempts = await Promise.all(
        devices.map(async (d, i) => {
          const r = replicas[i] as Replica;
          await d.pull(r);
          const p = await putItem(keys, r, `item-${round}-${i}`, 'sk-FAKE-race');
          const e = await signEntry(
            nextEntry(r.membership as NonNullable<Replica['membership']>, d.device.public.id, p.body),
            d.device.sign,
          );
          return {
            expect: r.head,
            entries: [e],
            blobs: { [p.body.type === 'item.put' ? p.body.blob : '']: Buffer.from(p.blob as Uint8Array).toString('base64') },
          };
        }),
      );
      expect(new Set(attempts.map((x) => x.expect.hash)).size).toBe(1);
      const statuses = await Promise.all(
        attempts.map((x, i) => post(srv.origin, `/v1/vaults/${r0.vault}/commits`, x, tokens[i]).then((r) => r.status)),
      );
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(devices.length - 1);
    }
  });

  it('refuses entries that are not the session device’s own, badly signed, unchained, or with a wrong blob', async () => {
    const a = await device(srv.origin, 'a');
    const b = await device(srv.origin, 'b');
    const ra = await a.createVault();
    await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
    const keys = await vaultKeys(ra.vault);
    const m = ra.membership as NonNullable<Replica['membership']>;
    const tokenA = await login(srv.origin, a);
    const tokenB = await login(srv.origin, b);
    const p = await putItem(keys, ra, 'x', 'sk-FAKE-x');
    const blob = Buffer.from(p.blob as Uint8Array).toString('base64');
    const hash = (p.body as { blob: string }).blob;
    const good = await signEntry(nextEntry(m, a.device.public.id, p.body), a.device.sign);
    const commit = (entries: unknown[], blobs: Record<string, string>, token: string) =>
      post(srv.origin, `/v1/vaults/${ra.vault}/commits`, { expect: ra.head, entries, blobs }, token);
    const code = async (r: Response) => [r.status, ((await r.json()) as { error?: { code: string } }).error?.code];

    expect(await code(await commit([good], { [hash]: blob }, tokenB))).toEqual([403, 'forbidden']); // a's entry on b's session
    expect(
      await code(
        await commit(
          [{ ...good, sig: (await signEntry(nextEntry(m, a.device.public.id, p.body), b.device.sign)).sig }],
          { [hash]: blob },
          tokenA,
        ),
      ),
    ).toEqual([400, 'bad-signature']);
    expect(await code(await commit([{ ...good, prev: '1'.repeat(64) }], { [hash]: blob }, tokenA))).toEqual([400, 'bad-chain']);
    const other = Buffer.from('not the sealed item').toString('base64');
    expect(await code(await commit([good], { [hash]: other }, tokenA))).toEqual([400, 'bad-blob']);
    expect(await code(await commit([good], {}, tokenA))).toEqual([400, 'missing-blob']);
    expect(await code(await commit([{ ...good, extra: 1 }], { [hash]: blob }, tokenA))).toEqual([400, 'bad-entry']);
    const stranger = await device(srv.origin, 'stranger');
    expect((await commit([good], { [hash]: blob }, await login(srv.origin, stranger))).status).toBe(404);
    expect((await commit([good], { [hash]: blob }, 'A'.repeat(43))).status).toBe(401);
    // Nothing above moved the head; the good commit still lands.
    expect((await commit([good], { [hash]: blob }, tokenA)).status).toBe(200);
  });

  it('logins: a challenge is good once, for this origin, in time, for its device only', async () => {
    const a = await device(srv.origin, 'a');
    const b = await device(srv.origin, 'b');
    const id = a.device.public.id;
    const challenge = async (dev = id) =>
      ((await (await post(srv.origin, '/v1/auth/challenge', { device: dev })).json()) as { nonce: string }).nonce;
    const tryLogin = async (claim: { origin: string; device: string; nonce: string; time: number }, key: CryptoKey) =>
      (
        await post(srv.origin, '/v1/auth/login', {
          device: claim.device,
          nonce: claim.nonce,
          time: claim.time,
          sig: await signLogin(claim, key),
        })
      ).status;

    const nonce = await challenge();
    const claim = { origin: srv.origin, device: id, nonce, time: Date.now() };
    const sig = await signLogin(claim, a.device.sign);
    expect((await post(srv.origin, '/v1/auth/login', { device: id, nonce, time: claim.time, sig })).status).toBe(200);
    // Replayed: the same signed login again.
    expect((await post(srv.origin, '/v1/auth/login', { device: id, nonce, time: claim.time, sig })).status).toBe(401);
    // Signed for another origin (an impostor relaying our challenge).
    expect(await tryLogin({ origin: 'https://evil.test', device: id, nonce: await challenge(), time: Date.now() }, a.device.sign)).toBe(
      401,
    );
    // Stale time.
    expect(
      await tryLogin({ origin: srv.origin, device: id, nonce: await challenge(), time: Date.now() - 10 * 60_000 }, a.device.sign),
    ).toBe(401);
    // Someone else's key for a's challenge.
    expect(await tryLogin({ origin: srv.origin, device: id, nonce: await challenge(), time: Date.now() }, b.device.sign)).toBe(401);
    // a's challenge used by b.
    expect(
      await tryLogin({ origin: srv.origin, device: b.device.public.id, nonce: await challenge(id), time: Date.now() }, b.device.sign),
    ).toBe(401);
    // An unregistered device.
    const ghost = await newDevice('ghost');
    expect(
      await tryLogin(
        { origin: srv.origin, device: ghost.public.id, nonce: await challenge(ghost.public.id), time: Date.now() },
        ghost.sign,
      ),
    ).toBe(401);
  });

  it('a session ends when it expires though a replica remembered it; one made on another replica is known here', async () => {
    let shift = 0;
    const clock = () => Date.now() + shift;
    // two replicas, each with its own connection to one database (closing a server closes its store)
    const dir = mkdtempSync(join(tmpdir(), 'keyhole-replicas-'));
    const open = () => (engine === 'sqlite' ? openSqlite(dir) : openStore(engine, pg.url));
    const one = await startVaultServer(await open(), { sessionMs: 60_000 }, { now: clock });
    const two = await startVaultServer(await open(), { sessionMs: 60_000 }, { now: clock });
    try {
      const token = await login(one.origin, await device(one.origin, 'a'));
      const vaults = (origin: string) =>
        fetch(`${origin}/v1/vaults`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
      expect(await vaults(one.origin)).toBe(200);
      expect(await vaults(two.origin)).toBe(200);
      expect(await vaults(one.origin)).toBe(200); // now from each replica's memory
      shift = 61_000;
      expect(await vaults(one.origin)).toBe(401);
      expect(await vaults(two.origin)).toBe(401);
      expect(await fetch(`${one.origin}/v1/vaults`, { headers: { authorization: 'Bearer forged' } }).then((r) => r.status)).toBe(401);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('pages a long log and every page is verified', async () => {
    const a = await device(srv.origin, 'a', {});
    const ra = await a.createVault();
    const keys = await vaultKeys(ra.vault);
    const batch = [];
    for (let i = 0; i < 1200; i++) batch.push(await putItem(keys, ra, `k${i}`, `sk-FAKE-${i}`));
    await a.push(ra, batch.slice(0, 1000));
    await a.push(ra, batch.slice(1000));
    const small = new VaultClient(srv.origin, a.device, { pageSize: 250 });
    const r = new Replica(ra.vault);
    const progress: number[] = [];
    await small.pull(r, (seq) => progress.push(seq));
    expect(progress).toEqual([250, 500, 750, 1000, 1201]);
    expect(r.head).toEqual(ra.head);
    expect(await values(keys, r, 'k777')).toEqual(['sk-FAKE-777']);
  });

  it('destroying an item deletes its blobs from the server; the log keeps their hashes', async () => {
    const a = await device(srv.origin, 'a');
    const ra = await a.createVault();
    const keys = await vaultKeys(ra.vault);
    const p = await putItem(keys, ra, 'doomed', 'sk-FAKE-doomed');
    await a.push(ra, [p]);
    const hash = blobHash(p.blob as Uint8Array);
    expect((await store.blobs(ra.vault, [hash])).length).toBe(1);
    await a.push(ra, [{ body: { type: 'item.destroy', item: 'doomed', blobs: [hash] } }]);
    expect(await store.blobs(ra.vault, [hash])).toEqual([]);
    const r = new Replica(ra.vault);
    await a.pull(r);
    expect(r.isDestroyed('doomed')).toBe(true);
    expect(r.heads('doomed')).toEqual([]);
    const entries = await store.entries(ra.vault, 0, 10);
    expect(entries.some((e) => e.json.includes(hash))).toBe(true);
  });

  it('live updates: an open event stream hears about another device’s commit', async () => {
    const a = await device(srv.origin, 'a');
    const b = await device(srv.origin, 'b');
    const ra = await a.createVault();
    await a.push(ra, [{ body: { type: 'member.add', device: b.device.public } }]);
    const heard: number[] = [];
    const ctl = new AbortController();
    const stream = b.events(ra.vault, (h) => heard.push(h.seq), ctl.signal);
    await waitFor(() => heard.includes(2));
    const keys = await vaultKeys(ra.vault);
    await a.push(ra, [await putItem(keys, ra, 'live', 'sk-FAKE-live')]);
    await waitFor(() => heard.includes(3));
    ctl.abort();
    await stream;
  });

  it('logs are structured and carry no payload, token or value', async () => {
    const a = await device(srv.origin, 'canary');
    const ra = await a.createVault();
    const keys = await vaultKeys(ra.vault);
    const p = await putItem(keys, ra, 'canary', 'sk-FAKE-CANARY-LOG');
    await a.push(ra, [p]);
    const token = await login(srv.origin, a);
    const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.route === 'commit' && l.status === 200)).toBe(true);
    const all = srv.logs.join('\n');
    for (const needle of [
      'sk-FAKE-CANARY-LOG',
      token,
      Buffer.from(p.blob as Uint8Array)
        .toString('base64')
        .slice(0, 40),
      a.device.public.sign,
    ]) {
      expect(all.includes(needle)).toBe(false);
    }
  });

  it('bounds bodies and rates with typed errors, and a valid request still works after', async () => {
    const limited = await startVaultServer(store, { bodyBytes: 64 * 1024, loginsPerMinute: 10 });
    try {
      const big = await fetch(`${limited.origin}/v1/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: 'x'.repeat(100_000),
      });
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe('too-large');
      // the same without a declared length (chunked): counted as it arrives
      const chunked = await new Promise<number>((resolve, reject) => {
        const u = new URL(`${limited.origin}/v1/devices`);
        const req = request(
          { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        for (let i = 0; i < 10; i++) req.write('x'.repeat(10_000));
        req.end();
      });
      expect(chunked).toBe(413);
      const junk = await post(limited.origin, '/v1/auth/challenge', 'not an object');
      expect(junk.status).toBe(400);
      const statuses: number[] = [];
      for (let i = 0; i < 15; i++) statuses.push((await post(limited.origin, '/v1/auth/challenge', { device: 'a'.repeat(64) })).status);
      expect(statuses).toContain(429);
      expect((await fetch(`${limited.origin}/healthz`)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
