/**
 * The transparent-rules scheduler (background/agents/transparent.ts) with an in-memory stand-in for
 * chrome.declarativeNetRequest that records every update, so the order of events can be held
 * still: rebuilds coalesce, a withdrawal is dispatched at once even while a rebuild is planning,
 * and a plan made before a withdrawal is never installed. The real API is exercised by
 * test/e2e/rules-under-load.test.ts and transparent.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { type Installed, type Tab, TransparentRules } from '../../src/background/agents/transparent.ts';
import type { StoredGrant } from '../../src/core/agents/grants.ts';
import type { InjectionRule } from '../../src/core/agents/policy.ts';

type Rule = chrome.declarativeNetRequest.Rule;
const ORIGIN = 'https://agent.example';
const rule: InjectionRule = {
  hosts: ['api.example.com'],
  pathPrefixes: [],
  methods: [],
  header: 'Authorization',
  template: 'Bearer {value}',
};

function grant(id: string, origin = ORIGIN, expiresAt = Date.now() + 3_600_000): StoredGrant {
  return {
    id,
    origin,
    secret: 's',
    secretId: 'sid',
    mode: 'transparent',
    hosts: ['api.example.com'],
    methods: [],
    createdAt: 0,
    expiresAt,
    usesLeft: null,
  };
}

/** A gate a test opens when it likes. */
function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((r) => {
    open = r;
  });
  return { wait: () => p, open };
}

function setup(opts: { tabs?: Tab[]; grants?: StoredGrant[]; rule?: InjectionRule } = {}) {
  let installed: Rule[] = [];
  const history: Rule[][] = [];
  let plans = 0;
  const state = {
    unlocked: true,
    halted: false,
    grants: opts.grants ?? [grant('g1')],
    tabs: opts.tabs ?? [{ id: 7, url: `${ORIGIN}/app`, incognito: false }],
    hold: null as ReturnType<typeof gate> | null,
  };
  const rules = new TransparentRules({
    vault: {
      isUnlocked: async () => state.unlocked,
      secretById: async () => ({ id: 'sid', name: 's', rule: opts.rule ?? rule }) as never,
    },
    credential: async () => ({ value: 'FAKE-value' }),
    grants: { all: async () => state.grants },
    suspended: () => new Set(),
    halted: () => state.halted,
    dnr: {
      getSessionRules: async () => installed,
      updateSessionRules: async ({ removeRuleIds = [], addRules = [] }) => {
        installed = [...installed.filter((r) => !removeRuleIds.includes(r.id)), ...addRules];
        history.push(installed);
      },
    },
    tabs: async () => {
      plans++;
      const seen = state.tabs;
      await state.hold?.wait();
      return seen;
    },
    store: { get: async () => undefined as Installed[] | undefined, set: async () => {} },
    now: Date.now,
    scheduleExpiry: () => {},
  });
  return { rules, state, history, installed: () => installed, plans: () => plans };
}

const tabsOf = (rules: Rule[]) => rules.filter((r) => r.action.type === 'modifyHeaders').flatMap((r) => r.condition.tabIds ?? []);

describe('transparent rules', () => {
  it('installs a rule for the granted origin’s tab, with the header set', async () => {
    const t = setup();
    await t.rules.refresh();
    expect(tabsOf(t.installed())).toEqual([7]);
    expect(t.installed()[0]?.action.requestHeaders?.[0]).toMatchObject({ header: 'Authorization', operation: 'set' });
  });

  it('installs no rule while the audit cannot write, and puts them back once it can', async () => {
    const t = setup();
    await t.rules.refresh();
    expect(tabsOf(t.installed())).toEqual([7]);
    t.state.halted = true;
    await t.rules.refresh();
    expect(t.installed()).toEqual([]);
    t.state.halted = false;
    await t.rules.refresh();
    expect(tabsOf(t.installed())).toEqual([7]);
  });

  it('coalesces: 100 refreshes during one rebuild make one more rebuild, and all of them resolve', async () => {
    const t = setup();
    t.state.hold = gate();
    const first = t.rules.refresh();
    await new Promise((r) => setTimeout(r, 0));
    const rest = Array.from({ length: 100 }, () => t.rules.refresh());
    t.state.hold.open();
    await Promise.all([first, ...rest]);
    expect(t.plans()).toBe(2);
    expect(t.history.length).toBeLessThanOrEqual(2);
  });

  it('a withdrawal is dispatched at once while a rebuild is planning, and the stale plan is never installed', async () => {
    const t = setup();
    await t.rules.refresh(); // g1 installed
    t.state.hold = gate();
    const rebuilding = t.rules.refresh(); // plans with g1 still granted, then waits
    await new Promise((r) => setTimeout(r, 0));
    // the person revokes g1: the store forgets it, then its rules are withdrawn
    t.state.grants = [];
    await t.rules.withdrawGrants(['g1']); // resolves although the rebuild is still held
    expect(t.installed()).toEqual([]);
    const after = t.history.length;
    t.state.hold.open();
    await rebuilding;
    // whatever the rebuild did after, it never put g1's rule back
    for (const state of t.history.slice(after)) expect(tabsOf(state)).toEqual([]);
    expect(t.installed()).toEqual([]);
  });

  it('lock (clearAll) during a rebuild: everything out, nothing comes back', async () => {
    const t = setup();
    await t.rules.refresh();
    t.state.hold = gate();
    const rebuilding = t.rules.refresh();
    await new Promise((r) => setTimeout(r, 0));
    t.state.unlocked = false;
    await t.rules.clearAll();
    expect(t.installed()).toEqual([]);
    t.state.hold.open();
    await rebuilding;
    expect(t.installed()).toEqual([]);
  });

  it('a granted tab leaving its origin is out at navigation start, stays out while Chrome still reports its old URL, and comes back on return', async () => {
    const t = setup();
    await t.rules.refresh();
    const origins = async () => new Set([ORIGIN]);
    // a reload or a same-origin navigation changes nothing
    await t.rules.navigating(7, `${ORIGIN}/other`);
    expect(t.history.length).toBe(1);
    // leaving for another port of the same host: out at once
    await t.rules.navigating(7, 'https://agent.example:8443/');
    expect(tabsOf(t.installed())).toEqual([]);
    // a rebuild before the commit sees the tab's old URL, and still leaves it out
    await t.rules.refresh();
    expect(tabsOf(t.installed())).toEqual([]);
    t.state.tabs = [{ id: 7, url: 'https://agent.example:8443/', incognito: false }];
    await t.rules.committed(7, 'https://agent.example:8443/', origins);
    expect(tabsOf(t.installed())).toEqual([]);
    // back at the granted origin
    t.state.tabs = [{ id: 7, url: `${ORIGIN}/`, incognito: false }];
    await t.rules.navigating(7, `${ORIGIN}/`);
    await t.rules.committed(7, `${ORIGIN}/`, origins);
    expect(tabsOf(t.installed())).toEqual([7]);
  });

  it('a navigation that fails puts the tab back', async () => {
    const t = setup();
    await t.rules.refresh();
    await t.rules.navigating(7, 'https://elsewhere.example/');
    expect(tabsOf(t.installed())).toEqual([]);
    await t.rules.navigationFailed(7);
    expect(tabsOf(t.installed())).toEqual([7]);
  });

  it('withdrawing one tab keeps the grant’s other tabs', async () => {
    const t = setup({
      tabs: [
        { id: 7, url: `${ORIGIN}/`, incognito: false },
        { id: 8, url: `${ORIGIN}/`, incognito: false },
      ],
    });
    await t.rules.refresh();
    await t.rules.tabClosed(7);
    expect(tabsOf(t.installed())).toEqual([8]);
  });

  it('never puts an incognito tab in a rule', async () => {
    const t = setup({
      tabs: [
        { id: 7, url: `${ORIGIN}/`, incognito: true },
        { id: 8, url: `${ORIGIN}/`, incognito: false },
      ],
    });
    await t.rules.refresh();
    expect(tabsOf(t.installed())).toEqual([8]);
  });

  it('where the rule restricts methods: override headers removed, and ?_method= requests let through without the key', async () => {
    const t = setup({ rule: { ...rule, methods: ['POST'] } });
    await t.rules.refresh();
    const header = t.installed().find((r) => r.action.type === 'modifyHeaders');
    expect(header?.condition.requestMethods).toEqual(['post']);
    expect(header?.action.requestHeaders?.filter((x) => x.operation === 'remove').map((x) => x.header)).toEqual([
      'x-http-method-override',
      'x-http-method',
      'x-method-override',
    ]);
    const allow = t.installed().filter((r) => r.action.type === 'allow');
    expect(allow.map((r) => r.condition.urlFilter)).toEqual([
      '|https://api.example.com/*_method=',
      '|https://api.example.com/*method-override=',
    ]);
    expect(allow.every((r) => (r.priority ?? 1) > (header?.priority ?? 1))).toBe(true);
  });

  it('attributes a request from another port of the granted host in a granted tab as foreign', async () => {
    const t = setup();
    await t.rules.refresh();
    const base = { tabId: 7, url: 'https://api.example.com/v1/x', method: 'POST' };
    expect(await t.rules.attribute({ ...base, initiator: ORIGIN })).toMatchObject({ foreign: false });
    expect(await t.rules.attribute({ ...base, initiator: 'https://agent.example:8443' })).toMatchObject({ foreign: true });
    expect(await t.rules.attribute({ ...base, initiator: 'https://other.test' })).toBeNull();
    expect(await t.rules.attribute({ ...base, tabId: 9, initiator: ORIGIN })).toBeNull();
  });

  it('reports the installed grants whose expiry has come', async () => {
    const t = setup({ grants: [grant('soon', ORIGIN, Date.now() + 30), grant('later')] });
    await t.rules.refresh();
    expect(t.rules.expiredNow()).toEqual([]);
    await new Promise((r) => setTimeout(r, 40));
    expect(t.rules.expiredNow()).toEqual(['soon']);
  });
});
