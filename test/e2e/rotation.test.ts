/**
 * Rotation and expiry of a static secret in Chromium, while an agent page calls an API without
 * pause in both modes: a promotion switches every request from v1 to v2 with no failed call;
 * roll back switches back; a compromised rotation destroys the old value at once (its ciphertext is
 * gone from IndexedDB); at expiry calls fail with 4400, the transparent rule is gone and the values
 * are destroyed.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpcOk } from '../harness/browser.ts';
import { callContinuously } from '../harness/continuous.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { appServer, close, cors, listen } from '../harness/servers.ts';

const PASSPHRASE = 'rotation test passphrase FAKE';
const V1 = 'sk-FAKE-rotation-v1-aaaa';
const V2 = 'sk-FAKE-rotation-v2-bbbb';
const V3 = 'sk-FAKE-rotation-v3-cccc';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An API that accepts any of `valid` and records which key each request carried, and when it arrived. */
async function keyedApi(valid: Set<string>) {
  const seen: { at: number; key: string; via: string }[] = [];
  const server = await listen((req, res) => {
    const { headers, answered } = cors(req, res, 'GET, OPTIONS');
    if (answered) return;
    const key = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
    seen.push({ at: Date.now(), key, via: new URL(req.url ?? '/', 'http://x').searchParams.get('via') ?? '' });
    res.writeHead(valid.has(key) ? 200 : 401, { ...headers, 'content-type': 'application/json' });
    res.end('{}');
  });
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    close: () => close(server),
  };
}

describe('rotation and expiry under continuous calls', () => {
  let h: Harness;
  let api: Awaited<ReturnType<typeof keyedApi>>;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;
  let agent: Page;
  const valid = new Set([V1, V2, V3]);

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);

  /** What the worker's IndexedDB holds for secret `id`: the value numbers with ciphertext, and the current ciphertext's size. */
  async function stored(id: string): Promise<{ others: number[]; value: number; hex: string[] }> {
    return (await h.worker()).evaluate(
      (sid) =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open('keyhole');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const get = open.result.transaction('secrets').objectStore('secrets').get(sid);
            get.onsuccess = () => {
              const s = get.result as { value: Uint8Array; others?: { n: number; value: Uint8Array }[] };
              const hex = (b: Uint8Array) => Array.from(b.slice(0, 48), (x) => x.toString(16).padStart(2, '0')).join('');
              resolve({
                others: (s.others ?? []).map((o) => o.n),
                value: s.value.length,
                hex: [hex(s.value), ...(s.others ?? []).map((o) => hex(o.value))],
              });
              open.result.close();
            };
          };
        }),
      id,
    );
  }

  beforeAll(async () => {
    [api, app] = await Promise.all([keyedApi(valid), appServer()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  it('promotion, roll back and a compromised rotation, with calls going on: no failure, v1 then v2, v1 gone from IndexedDB', async () => {
    const s = await ok<{ id: string }>('secrets.create', {
      name: 'rot',
      value: V1,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    for (const mode of ['broker', 'transparent'] as const) {
      const r = await grantForPeriod(h.context, agent, { secrets: ['rot'], mode });
      expect(r.ok).toBe(true);
    }
    const calls = callContinuously(agent, api.host, 'rot', 9000, ['broker', 'transparent']);
    await sleep(1500);
    await ok('secrets.rotate', { id: s.id, value: V2 });
    // a staged value is not used, and can be tested first
    expect(await ok('secrets.testStaged', { id: s.id, url: `http://${api.host}/v1/test` })).toEqual({ status: 200, ok: true });
    await sleep(1000);
    const promoteAsked = Date.now();
    await ok('secrets.promote', { id: s.id, graceSeconds: 3600 });
    const promoted = Date.now();
    await sleep(2500);
    const backAsked = Date.now();
    await ok('secrets.rollBack', { id: s.id });
    const back = Date.now();
    const outcomes = await calls;
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    const during = api.seen.filter((x) => x.via === 'broker' || x.via === 'transparent');
    for (const via of ['broker', 'transparent']) {
      const mine = during.filter((x) => x.via === via);
      // v1 until the promotion answered, v2 from then until the roll back, v1 again after
      expect(mine.filter((x) => x.key === V2 && x.at < promoteAsked)).toEqual([]);
      expect(mine.filter((x) => x.key === V1 && x.at > promoted + 50 && x.at < backAsked)).toEqual([]);
      expect(mine.filter((x) => x.key === V2 && x.at > back + 50)).toEqual([]);
      expect(mine.some((x) => x.key === V2)).toBe(true);
    }
    // compromised: v1 (current again) is destroyed at once when v3 is promoted
    const before = await stored(s.id);
    expect(before.others).toEqual([2]); // v2, staged by the roll back
    await ok('secrets.rotate', { id: s.id, value: V3 });
    const summary = await ok<{ values: { n: number; state: string; compromised?: boolean }[] }>('secrets.promote', {
      id: s.id,
      compromised: true,
    });
    expect(summary.values.find((v) => v.n === 1)).toMatchObject({ state: 'destroyed', compromised: true });
    const after = await stored(s.id);
    expect(after.others).not.toContain(1);
    expect(after.hex).not.toContain(before.hex[0]); // v1's ciphertext is gone, not hidden
    const r = await request<{ status: number }>(agent, 'keyhole_fetch', { secret: 'rot', url: `http://${api.host}/v1/x?via=after` });
    expect(r.ok && r.result.status).toBe(200);
    expect(api.seen.filter((x) => x.via === 'after').map((x) => x.key)).toEqual([V3]);
    const audit = await ok<{ entries: { record: { kind: string; reason?: string } }[] }>('audit.view', {});
    const kinds = audit.entries.map((e) => `${e.record.kind}:${e.record.reason ?? ''}`);
    for (const k of ['secret.rotated:v2', 'secret.promoted:v2', 'secret.rolledBack:v1', 'secret.destroyed:v1.compromised'])
      expect(kinds).toContain(k);
  }, 60_000);

  it('at expiry calls fail with 4400, the transparent rule goes, and the values are destroyed', async () => {
    const own = await keyedApi(valid); // a host no other secret's rule covers
    const expiresAt = Date.now() + 5000;
    const s = await ok<{ id: string }>('secrets.create', {
      name: 'exp',
      value: V1,
      expiresAt,
      rule: { hosts: [own.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    for (const mode of ['broker', 'transparent'] as const)
      expect((await grantForPeriod(h.context, agent, { secrets: ['exp'], mode })).ok).toBe(true);
    const fetchBoth = async () => {
      const b = await request<{ status: number }>(agent, 'keyhole_fetch', { secret: 'exp', url: `http://${own.host}/b` });
      const t = await agent.evaluate(async (u) => (await fetch(u)).status, `http://${own.host}/t`);
      return { broker: b.ok ? b.result.status : b.error.code, transparent: t };
    };
    expect(await fetchBoth()).toEqual({ broker: 200, transparent: 200 });
    await sleep(Math.max(0, expiresAt - Date.now()) + 500);
    expect(await fetchBoth()).toEqual({ broker: 4400, transparent: 401 });
    await expect.poll(async () => (await stored(s.id)).value, { timeout: 5000 }).toBe(0);
    const listed = (await ok<{ secrets: { name: string; expired: boolean }[] }>('secrets.list')).secrets.find((x) => x.name === 'exp');
    expect(listed?.expired).toBe(true);
    const audit = await ok<{ entries: { record: { kind: string; secret?: string } }[] }>('audit.view', {});
    expect(audit.entries.some((e) => e.record.kind === 'secret.expired' && e.record.secret === 'exp')).toBe(true);
    expect(own.seen.filter((x) => x.at > expiresAt + 50).map((x) => x.key)).not.toContain(V1);
    await own.close();
  }, 60_000);
});
