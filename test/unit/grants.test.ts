import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { ConsentQueue, ConsentRateLimited, MAX_PROMPTS_PER_ORIGIN } from '../../src/background/consent.ts';
import { openKeyholeDB } from '../../src/background/db.ts';
import { GrantStore } from '../../src/background/grant-store.ts';
import type { ConsentRequest, StoredGrant } from '../../src/core/grants.ts';

let dbn = 0;
const clock = () => {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
};

const grant = (over: Partial<StoredGrant> = {}): StoredGrant => ({
  id: crypto.randomUUID(),
  origin: 'https://agent.example',
  secret: 'openai',
  secretId: 's1',
  mode: 'broker',
  hosts: ['api.openai.com'],
  methods: [],
  createdAt: 1_000_000,
  expiresAt: 1_000_000 + 60_000,
  usesLeft: null,
  ...over,
});

describe('grant store', () => {
  it('expires grants on the clock, and purges them', async () => {
    const c = clock();
    const store = new GrantStore(await openKeyholeDB(`grants-${++dbn}`), c.now);
    const g = grant();
    await store.add([g]);
    expect(await store.forSecret('https://agent.example', 's1')).toHaveLength(1);
    expect(await store.forSecret('https://other.example', 's1')).toHaveLength(0);
    c.t += 60_000; // expiresAt is exclusive
    expect(await store.forSecret('https://agent.example', 's1')).toHaveLength(0);
    expect(await store.use(g.id)).toBe(false);
    expect((await store.purge()).map((x) => x.id)).toEqual([g.id]);
  });

  it('counts uses atomically and stops at zero', async () => {
    const store = new GrantStore(await openKeyholeDB(`grants-${++dbn}`), clock().now);
    const g = grant({ usesLeft: 3 });
    await store.add([g]);
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => store.use(g.id)));
    expect(results.filter(Boolean)).toHaveLength(3);
    expect(await store.forOrigin(g.origin)).toHaveLength(0);
  });

  it('lets a page revoke only its own grants', async () => {
    const store = new GrantStore(await openKeyholeDB(`grants-${++dbn}`), clock().now);
    const g = grant();
    await store.add([g]);
    expect(await store.revoke(g.id, 'https://other.example')).toBeNull();
    expect(await store.revoke(g.id, g.origin)).toMatchObject({ id: g.id });
    expect(await store.forOrigin(g.origin)).toHaveLength(0);
  });

  it('remembers denials until they lapse', async () => {
    const c = clock();
    const store = new GrantStore(await openKeyholeDB(`grants-${++dbn}`), c.now);
    await store.deny([{ origin: 'https://agent.example', secret: 'openai', until: c.t + 1000 }]);
    expect(await store.isDenied('https://agent.example', 'openai')).toBe(true);
    expect(await store.isDenied('https://agent.example', 'github')).toBe(false);
    c.t += 1000;
    expect(await store.isDenied('https://agent.example', 'openai')).toBe(false);
  });
});

describe('consent queue', () => {
  const req = (origin: string, id = crypto.randomUUID()): ConsentRequest => ({
    id,
    origin,
    mode: 'broker',
    ttlSeconds: 3600,
    reason: '',
    secrets: [{ name: 'openai', id: 's1', hosts: ['api.openai.com'], header: 'Authorization' }],
    createdAt: 0,
  });
  function windows() {
    const opened: string[] = [];
    const closed: number[] = [];
    return { opened, closed, api: { open: async (id: string) => opened.push(id), close: async (w: number) => void closed.push(w) } };
  }

  it('shows one prompt at a time and only the one on screen can be answered', async () => {
    const w = windows();
    const q = new ConsentQueue(w.api, clock().now);
    const a = req('https://a.example');
    const b = req('https://b.example');
    const pa = q.ask(a);
    const pb = q.ask(b);
    await Promise.resolve();
    expect(w.opened).toEqual([a.id]);
    expect(q.current(b.id)).toBeNull();
    expect(await q.decide(b.id, { kind: 'once' })).toBe(false);
    expect(await q.decide(a.id, { kind: 'once' })).toBe(true);
    expect(await pa).toEqual({ kind: 'once' });
    await Promise.resolve();
    expect(w.opened).toEqual([a.id, b.id]);
    q.windowClosed(2); // the second window, closed by the person
    expect(await pb).toEqual({ kind: 'deny' });
  });

  it('rate-limits prompts per origin, not across origins', async () => {
    const c = clock();
    const q = new ConsentQueue(windows().api, c.now);
    const answered: Promise<unknown>[] = [];
    for (let i = 0; i < MAX_PROMPTS_PER_ORIGIN; i++) {
      const r = req('https://spam.example');
      answered.push(q.ask(r));
      await Promise.resolve();
      await q.decide(r.id, { kind: 'deny' });
    }
    expect(() => q.ask(req('https://spam.example'))).toThrow(ConsentRateLimited);
    expect(() => q.ask(req('https://fine.example'))).not.toThrow();
    c.t += 10 * 60 * 1000;
    expect(() => q.ask(req('https://spam.example'))).not.toThrow();
  });

  it('denies everything on lock', async () => {
    const w = windows();
    const q = new ConsentQueue(w.api, clock().now);
    const p1 = q.ask(req('https://a.example'));
    const p2 = q.ask(req('https://b.example'));
    await Promise.resolve();
    q.denyAll();
    expect(await Promise.all([p1, p2])).toEqual([{ kind: 'deny' }, { kind: 'deny' }]);
    expect(w.closed).toEqual([1]);
  });
});
