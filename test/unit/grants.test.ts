import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import {
  ConsentQueue,
  ConsentRateLimited,
  MAX_PROMPTS,
  MAX_PROMPTS_PER_ORIGIN,
  MAX_WAITING,
  memoryPromptStore,
  PROMPT_WINDOW_MS,
} from '../../src/background/agents/consent.ts';
import { GrantStore } from '../../src/background/agents/grant-store.ts';
import { openKeyholeDB } from '../../src/background/db.ts';
import type { ConsentRequest, StoredGrant } from '../../src/core/agents/grants.ts';

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
  const req = (origin: string, tabId = 1, documentId?: string): ConsentRequest => ({
    id: crypto.randomUUID(),
    origin,
    tabId,
    ...(documentId ? { documentId } : {}),
    mode: 'broker',
    ttlSeconds: 3600,
    ttlAsked: false,
    reason: '',
    secrets: [{ name: 'openai', id: 's1', hosts: ['api.openai.com'], header: 'Authorization' }],
    createdAt: 0,
  });
  function windows(active?: number) {
    const opened: string[] = [];
    const closed: number[] = [];
    const state = { active };
    return {
      opened,
      closed,
      state,
      api: {
        open: async (id: string) => opened.push(id),
        close: async (w: number) => void closed.push(w),
        activeTab: async () => state.active,
      },
    };
  }
  const settle = () => new Promise((r) => setTimeout(r, 0));
  /** asks, and once it is shown, denies it: one prompt spent */
  async function spend(q: ConsentQueue, r: ConsentRequest): Promise<void> {
    const answer = q.ask(r);
    await settle();
    await q.decide(r.id, { kind: 'deny' });
    await answer;
  }

  it('shows one prompt at a time and only the one on screen can be answered', async () => {
    const w = windows();
    const q = new ConsentQueue(w.api, memoryPromptStore(), clock().now);
    const a = req('https://a.example');
    const b = req('https://b.example');
    const pa = q.ask(a);
    const pb = q.ask(b);
    await settle();
    expect(w.opened).toEqual([a.id]);
    expect(q.current(b.id)).toBeNull();
    expect(await q.decide(b.id, { kind: 'once' })).toBe(false);
    expect(await q.decide(a.id, { kind: 'once' })).toBe(true);
    expect(await pa).toEqual({ kind: 'once' });
    await settle();
    expect(w.opened).toEqual([a.id, b.id]);
    q.windowClosed(2); // the second window, closed by the person
    expect(await pb).toEqual({ kind: 'deny' });
  });

  it('rate-limits prompts per origin, and lets one origin have only one waiting', async () => {
    const c = clock();
    const q = new ConsentQueue(windows().api, memoryPromptStore(), c.now);
    for (let i = 0; i < MAX_PROMPTS_PER_ORIGIN; i++) await spend(q, req('https://spam.example'));
    await expect(q.ask(req('https://spam.example'))).rejects.toThrow(ConsentRateLimited);
    void q.ask(req('https://fine.example')); // shown
    void q.ask(req('https://fine2.example')); // waiting
    await settle();
    void q.ask(req('https://fine3.example'));
    await settle();
    await expect(q.ask(req('https://fine3.example'))).rejects.toThrow(ConsentRateLimited); // one waiting already
    // ten minutes later the origin may ask again
    c.t += PROMPT_WINDOW_MS;
    q.denyAll();
    const again = req('https://spam.example');
    void q.ask(again);
    await settle();
    expect(q.current(again.id)).not.toBeNull();
  });

  it('rate-limits prompts in all: many origins (an attacker’s subdomains) cannot open more than MAX_PROMPTS', async () => {
    const q = new ConsentQueue(windows().api, memoryPromptStore(), clock().now);
    for (let i = 0; i < MAX_PROMPTS; i++) await spend(q, req(`https://s${i}.evil.example`));
    await expect(q.ask(req('https://s999.evil.example'))).rejects.toThrow(ConsentRateLimited);
  });

  it('keeps its limits across a worker restart', async () => {
    const c = clock();
    const store = memoryPromptStore();
    const first = new ConsentQueue(windows().api, store, c.now);
    for (let i = 0; i < MAX_PROMPTS_PER_ORIGIN; i++) await spend(first, req('https://spam.example'));
    const restarted = new ConsentQueue(windows().api, store, c.now);
    await expect(restarted.ask(req('https://spam.example'))).rejects.toThrow(ConsentRateLimited);
  });

  it('a full queue still takes a prompt from the tab the person is looking at, in place of the newest from another tab', async () => {
    const w = windows(42);
    const q = new ConsentQueue(w.api, memoryPromptStore(), clock().now);
    const flood = Array.from({ length: MAX_WAITING + 1 }, (_, i) => req(`https://f${i}.evil.example`, 100 + i));
    const answers = flood.map((r) => q.ask(r));
    await settle();
    await expect(q.ask(req('https://late.evil.example', 200))).rejects.toThrow(ConsentRateLimited);
    const mine = req('https://app.example', 42);
    const mineAnswer = q.ask(mine);
    await settle();
    expect(await answers.at(-1)).toEqual({ kind: 'deny' }); // the newest waiting one made room
    // once the one on screen is answered, the person's own tab comes first
    await q.decide(flood[0]?.id as string, { kind: 'deny' });
    await settle();
    expect(q.current(mine.id)).not.toBeNull();
    await q.decide(mine.id, { kind: 'once' });
    expect(await mineAnswer).toEqual({ kind: 'once' });
  });

  it('a prompt ends as a Deny when its tab closes, or its tab shows another document', async () => {
    const w = windows();
    const q = new ConsentQueue(w.api, memoryPromptStore(), clock().now);
    const shown = q.ask(req('https://a.example', 5, 'doc-a'));
    const waiting = q.ask(req('https://b.example', 6, 'doc-b'));
    await settle();
    q.tabGone(5); // closed
    expect(await shown).toEqual({ kind: 'deny' });
    expect(w.closed).toEqual([1]);
    await settle();
    q.tabGone(6, 'doc-b'); // the same document: nothing ends
    q.tabGone(6, 'doc-b2'); // another document now: it ends
    expect(await waiting).toEqual({ kind: 'deny' });
  });

  it('denies everything on lock', async () => {
    const w = windows();
    const q = new ConsentQueue(w.api, memoryPromptStore(), clock().now);
    const p1 = q.ask(req('https://a.example'));
    const p2 = q.ask(req('https://b.example'));
    await settle();
    q.denyAll();
    expect(await Promise.all([p1, p2])).toEqual([{ kind: 'deny' }, { kind: 'deny' }]);
    expect(w.closed).toEqual([1]);
  });
});
