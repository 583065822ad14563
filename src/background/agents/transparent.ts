/**
 * Transparent mode: declarativeNetRequest session rules that set the secret's header on
 * fetch/XHR from the granted origin's tabs to the bound hosts, so unmodified SDKs work.
 * Each rule is scoped as tightly as DNR allows: tabIds (kept current as tabs navigate),
 * initiatorDomains, resourceTypes xmlhttprequest, requestMethods and an anchored urlFilter.
 * Rules exist only while unlocked.
 *
 * Two kinds of change, kept apart so the urgent one never waits (issue 12):
 * - a **rebuild** recomputes every rule from the grants and open tabs (it reads storage and opens
 *   secrets). One runs at a time and at most one more waits; every caller meanwhile joins that one.
 * - a **withdrawal** (lock, revoke, expiry, a used-up grant, a granted tab navigating away) takes
 *   rules or tabs out at once, from what is installed, in one `updateSessionRules` call. It bumps
 *   a generation counter first, and a rebuild planned under an older generation is thrown away and
 *   planned again, never installed: nothing a withdrawal took out can come back from a stale plan.
 *
 * Every update is computed synchronously from the rules this module last installed (kept in
 * memory, read once from Chrome by a fresh worker) and dispatched at once, so updates take effect
 * in the order they were made.
 */

import type { StoredGrant } from '../../core/agents/grants.ts';
import { isLoopbackHost, renderHeaderValue } from '../../core/agents/policy.ts';
import type { SecretSummary } from '../../core/api.ts';
import { TOKEN_RULE_BASE } from '../credentials/token-origin.ts';
import type { VaultService } from '../vault/vault-service.ts';
import type { GrantStore } from './grant-store.ts';

type Rule = chrome.declarativeNetRequest.Rule;
type RuleMethod = chrome.declarativeNetRequest.RequestMethod;
const ALL_METHODS: RuleMethod[] = ['get', 'head', 'post', 'put', 'patch', 'delete'] as RuleMethod[];
/** Method-override requests (`?_method=`) are let through without the key, ahead of the header rule. */
const OVERRIDE_PRIORITY = 2;
const HEADER_PRIORITY = 1;
/** Headers a page could use to ask the server for another method; removed where the rule restricts methods. */
const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];
const OVERRIDE_QUERIES = ['_method=', 'method-override='];

/** What is installed for one grant, kept so webRequest observations can be attributed to it. */
export type Installed = {
  readonly grantId: string;
  /** the granted origin, exactly (scheme, host and port) */
  readonly origin: string;
  /** the secret's name, for the audit */
  readonly secret: string;
  readonly tabIds: number[];
  readonly initiatorHost: string;
  readonly prefixes: string[];
  readonly methods: string[];
  readonly ruleIds: number[];
  readonly expiresAt: number;
};
const INSTALLED_KEY = 'keyhole.transparentRules';

/** The part of chrome.declarativeNetRequest this module uses. */
export type SessionRules = {
  getSessionRules(): Promise<Rule[]>;
  updateSessionRules(options: { removeRuleIds?: number[]; addRules?: Rule[] }): Promise<void>;
};

export type Tab = { readonly id?: number; readonly url?: string; readonly incognito: boolean };

export type TransparentDeps = {
  readonly vault: Pick<VaultService, 'isUnlocked' | 'secretById'>;
  /**
   * The value for a secret's rule: a static value, or a minted credential's current token (the
   * rules are rebuilt, in one atomic swap, each time it is refreshed). Null: none can be had now,
   * and the grant gets no rule until one can. `usableUntil`: the rule is withdrawn then, as at
   * its grant's expiry, unless a refresh replaced it first.
   */
  readonly credential: (
    secret: SecretSummary,
    grant: StoredGrant,
  ) => Promise<{ readonly value: string; readonly usableUntil?: number } | null>;
  readonly grants: Pick<GrantStore, 'all'>;
  /** grants withheld for now (a transparent rate limit was exceeded) */
  readonly suspended: () => ReadonlySet<string>;
  /**
   * The audit cannot commit records: no rule at all until it can (fail-closed; a transparent
   * request cannot wait for its record the way a brokered one does).
   */
  readonly halted: () => boolean;
  readonly dnr: SessionRules;
  readonly tabs: () => Promise<Tab[]>;
  /** where the attribution list is kept for a restarted worker (chrome.storage.session) */
  readonly store: { get(): Promise<Installed[] | undefined>; set(installed: Installed[]): Promise<void> };
  readonly now: () => number;
  /** the earliest installed expiry changed: withdraw that grant at that instant (timer, alarm backstop) */
  readonly scheduleExpiry: (at: number | null) => void;
};

/** The browser's own pieces, for the worker. */
export function chromeTransparentDeps(): Pick<TransparentDeps, 'dnr' | 'tabs' | 'store'> {
  return {
    dnr: chrome.declarativeNetRequest,
    tabs: () => chrome.tabs.query({}),
    store: {
      get: async () => (await chrome.storage.session.get(INSTALLED_KEY))[INSTALLED_KEY] as Installed[] | undefined,
      set: (installed) => chrome.storage.session.set({ [INSTALLED_KEY]: installed }),
    },
  };
}

function urlPrefixes(host: string, pathPrefixes: readonly string[]): string[] {
  const hostname = new URL(`https://${host}`).hostname;
  const schemes = isLoopbackHost(hostname) ? ['http', 'https'] : ['https'];
  const paths = pathPrefixes.length > 0 ? pathPrefixes : ['/'];
  return schemes.flatMap((s) => paths.map((p) => `${s}://${host}${p}`));
}

function originOf(url: string | undefined): string | null {
  if (!url) return null;
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

/** A planned rule set: what a rebuild would install. */
type Plan = { readonly rules: Rule[]; readonly installed: Installed[] };

/** How long withdrawn rules stay known for attributing requests that went out just before. */
const RETIRED_FOR_MS = 10_000;

/** How many times a rebuild is planned again when withdrawals keep overtaking it, before it waits a little. */
const MAX_REPLANS = 8;

export class TransparentRules {
  /** what is installed now, as this worker dispatched it (null until read from Chrome once) */
  private rules: Rule[] | null = null;
  private installed: Installed[] = [];
  private loading: Promise<void> | null = null;
  private generation = 0;
  /** the last rebuild in the chain, and the one waiting to start (which every new caller joins) */
  private tail: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  /** tabs withdrawn as they started navigating elsewhere, left out of rebuilds until they commit */
  private readonly leaving = new Set<number>();
  /**
   * What was installed before a change, until Chrome confirmed the change (`until`): a request
   * whose headers went out before then may have carried the key, and its webRequest event can
   * arrive after this worker's own view moved on. Kept RETIRED_FOR_MS for such late events.
   */
  private retired: { readonly installed: Installed; until: number }[] = [];

  constructor(private readonly deps: TransparentDeps) {}

  /** Reads what a previous worker installed, once. */
  private load(): Promise<void> {
    this.loading ??= (async () => {
      const [rules, installed] = await Promise.all([this.deps.dnr.getSessionRules(), this.deps.store.get()]);
      this.rules ??= rules.filter((r) => r.id < TOKEN_RULE_BASE); // the token requests' rules are not these

      if (this.installed.length === 0) this.installed = installed ?? [];
    })();
    return this.loading;
  }

  /**
   * Recomputes every rule. Resolves once a rebuild that started after this call has installed
   * its rules (or found nothing to change). Calls while one waits join it.
   */
  refresh(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.tail.then(() => {
      this.queued = null; // from here on, a new call waits for the next one
      return this.rebuild();
    });
    this.queued = next;
    this.tail = next;
    return next;
  }

  private async rebuild(): Promise<void> {
    try {
      await this.load();
      for (let attempt = 0; attempt < MAX_REPLANS; attempt++) {
        const generation = this.generation;
        const plan = await this.plan();
        if (generation !== this.generation) continue; // a withdrawal overtook this plan: plan again
        await this.install(plan.rules, plan.installed);
        return;
      }
      // withdrawals keep coming (a tab navigating in a loop): try again once they pause
      setTimeout(() => void this.refresh(), 100);
    } catch (e) {
      console.error('keyhole: transparent rules', e instanceof Error ? e.name : typeof e);
    }
  }

  private async plan(): Promise<Plan> {
    const rules: Rule[] = [];
    const installed: Installed[] = [];
    if (this.deps.halted() || !(await this.deps.vault.isUnlocked())) return { rules, installed };
    const suspended = this.deps.suspended();
    const now = this.deps.now();
    const grants = (await this.deps.grants.all()).filter((g) => g.mode === 'transparent' && !suspended.has(g.id) && g.expiresAt > now);
    if (grants.length === 0) return { rules, installed };
    const tabs = await this.deps.tabs();
    for (const g of grants) {
      const entry = await this.rulesFor(g, tabs, rules.length + 1);
      if (!entry) continue;
      rules.push(...entry.rules);
      installed.push(entry.installed);
    }
    return { rules, installed };
  }

  private async rulesFor(g: StoredGrant, tabs: readonly Tab[], firstId: number): Promise<{ rules: Rule[]; installed: Installed } | null> {
    // A grant made in a normal window never reaches an incognito tab (Keyhole is not allowed there
    // at all, docs/decisions.md; this holds even if someone enables it).
    const tabIds = tabs.flatMap((t) =>
      t.id !== undefined && !t.incognito && !this.leaving.has(t.id) && originOf(t.url) === g.origin ? [t.id] : [],
    );
    if (tabIds.length === 0) return null;
    const secret = await this.deps.vault.secretById(g.secretId);
    // an AWS request is signed as a whole by the worker: no header rule can carry it (brokered only)
    if (!secret || secret.kind === 'aws') return null;
    const hosts = g.hosts.filter((h) => secret.rule.hosts.includes(h));
    const restricted = g.methods.length > 0 ? g.methods : secret.rule.methods;
    const methods = (restricted.length > 0 ? restricted.map((m) => m.toLowerCase()) : ALL_METHODS) as RuleMethod[];
    const prefixes = hosts.flatMap((h) => urlPrefixes(h, secret.rule.pathPrefixes));
    const credential = await this.deps.credential(secret, g);
    if (credential === null) return null;
    const value = renderHeaderValue(secret.rule.template, credential.value);
    const initiatorHost = new URL(g.origin).hostname;
    const condition = (urlFilter: string) => ({
      urlFilter,
      tabIds,
      initiatorDomains: [initiatorHost],
      resourceTypes: ['xmlhttprequest' as chrome.declarativeNetRequest.ResourceType],
      requestMethods: methods,
    });
    const remove = (header: string) => ({ header, operation: 'remove' as chrome.declarativeNetRequest.HeaderOperation });
    const requestHeaders: chrome.declarativeNetRequest.ModifyHeaderInfo[] = [
      { header: secret.rule.header, operation: 'set' as chrome.declarativeNetRequest.HeaderOperation, value },
      ...(secret.rule.removeHeaders ?? []).map(remove),
      ...(restricted.length > 0 ? OVERRIDE_HEADERS.map(remove) : []),
    ];
    const rules: Rule[] = [];
    for (const prefix of prefixes) {
      rules.push({
        id: firstId + rules.length,
        priority: HEADER_PRIORITY,
        action: { type: 'modifyHeaders' as chrome.declarativeNetRequest.RuleActionType, requestHeaders },
        condition: condition(`|${prefix}`),
      });
      // A method override in the query gets no key where the rule restricts methods (the broker
      // refuses it outright; DNR cannot refuse, and cannot see a body at all: docs/threat-model.md).
      if (restricted.length > 0) {
        for (const q of OVERRIDE_QUERIES) {
          rules.push({
            id: firstId + rules.length,
            priority: OVERRIDE_PRIORITY,
            action: { type: 'allow' as chrome.declarativeNetRequest.RuleActionType },
            condition: condition(`|${prefix}*${q}`),
          });
        }
      }
    }
    return {
      rules,
      installed: {
        grantId: g.id,
        origin: g.origin,
        secret: g.secret,
        tabIds,
        initiatorHost,
        prefixes,
        methods,
        ruleIds: rules.map((r) => r.id),
        expiresAt: Math.min(g.expiresAt, credential.usableUntil ?? Number.POSITIVE_INFINITY),
      },
    };
  }

  /** Swaps every rule for `rules`, in one call dispatched now. */
  private install(rules: Rule[], installed: Installed[]): Promise<void> {
    const removeRuleIds = (this.rules ?? []).map((r) => r.id);
    if (removeRuleIds.length === 0 && rules.length === 0) return this.remember(installed);
    this.rules = rules;
    const retiring = this.retire(this.installed);
    const update = this.deps.dnr.updateSessionRules({ removeRuleIds, addRules: rules }).then(retiring);
    return Promise.all([update, this.remember(installed)]).then(() => {});
  }

  /** Keeps `before` for attribution until the update replacing it is confirmed; call the result then. */
  private retire(before: readonly Installed[]): () => void {
    const now = this.deps.now();
    this.retired = this.retired.filter((r) => now - r.until < RETIRED_FOR_MS);
    const entries = before.map((installed) => ({ installed, until: Number.POSITIVE_INFINITY }));
    this.retired.push(...entries);
    return () => {
      const at = this.deps.now();
      for (const e of entries) e.until = at;
    };
  }

  private remember(installed: Installed[]): Promise<void> {
    this.installed = installed;
    const next = installed.length === 0 ? null : Math.min(...installed.map((i) => i.expiresAt));
    this.deps.scheduleExpiry(next);
    return this.deps.store.set(installed);
  }

  /**
   * Takes out at once the rules of the grants `which` selects, or the tabs it names, from what
   * is installed; a rebuild planned before this is thrown away. Resolves when Chrome has them out.
   */
  private async withdraw(which: { all?: true; grants?: ReadonlySet<string>; tab?: number }): Promise<void> {
    if (this.rules === null) await this.load(); // a fresh worker only
    // From here to the dispatch below is synchronous: a rebuild still planning will see this and
    // plan again; one that dispatched before is already in effect, and this removes after it.
    this.generation++;
    const before = this.rules ?? [];
    const keep: Installed[] = [];
    const drop = new Set<number>();
    const changed = new Map<number, number[]>(); // rule id -> its tabs without the withdrawn one
    for (const i of this.installed) {
      if (which.all || which.grants?.has(i.grantId)) {
        for (const id of i.ruleIds) drop.add(id);
        continue;
      }
      if (which.tab !== undefined && i.tabIds.includes(which.tab)) {
        const tabIds = i.tabIds.filter((t) => t !== which.tab);
        if (tabIds.length === 0) {
          for (const id of i.ruleIds) drop.add(id);
          continue;
        }
        for (const id of i.ruleIds) changed.set(id, tabIds);
        keep.push({ ...i, tabIds });
        continue;
      }
      keep.push(i);
    }
    if (which.all) for (const r of before) drop.add(r.id); // rules no grant accounts for (a crash between writes)
    if (drop.size === 0 && changed.size === 0) return;
    const addRules = before.flatMap((r) => {
      if (drop.has(r.id)) return [];
      const tabIds = changed.get(r.id);
      return tabIds ? [{ ...r, condition: { ...r.condition, tabIds } }] : [];
    });
    this.rules = before.flatMap((r) => (drop.has(r.id) ? [] : [addRules.find((a) => a.id === r.id) ?? r]));
    const removeRuleIds = [...drop, ...changed.keys()];
    const retiring = this.retire(this.installed);
    await Promise.all([this.deps.dnr.updateSessionRules({ removeRuleIds, addRules }).then(retiring), this.remember(keep)]);
  }

  /** Lock: every rule out, before anything else. */
  clearAll(): Promise<void> {
    return this.withdraw({ all: true });
  }

  /** Revoked, expired, used up or suspended grants: their rules out at once. */
  withdrawGrants(ids: Iterable<string>): Promise<void> {
    return this.withdraw({ grants: new Set(ids) });
  }

  /** Installed grants whose expiry has come. */
  expiredNow(): string[] {
    const now = this.deps.now();
    return this.installed.filter((i) => i.expiresAt <= now).map((i) => i.grantId);
  }

  /**
   * A tab's top frame starts navigating to `url` (webNavigation.onBeforeNavigate). A tab holding
   * a grant's rule that is leaving that grant's origin is taken out now, before its new document
   * can make a request, and stays out of rebuilds until the navigation commits or fails (until
   * then Chrome still reports the old URL for it). Most navigations, and a page changing its own
   * URL in a loop (not a navigation at all), change nothing and cost nothing.
   */
  async navigating(tabId: number, url: string): Promise<void> {
    if (this.rules === null) await this.load();
    const origin = originOf(url);
    if (!this.installed.some((i) => i.tabIds.includes(tabId) && i.origin !== origin)) return;
    this.leaving.add(tabId);
    await this.withdraw({ tab: tabId });
  }

  /**
   * A tab's top frame committed a document of `url` (onCommitted): a tab whose rule is for
   * another origin (a server redirect elsewhere) is taken out; a tab arriving at a granted
   * origin is added by a rebuild.
   */
  async committed(tabId: number, url: string, grantedOrigins: () => Promise<ReadonlySet<string>>): Promise<void> {
    if (this.rules === null) await this.load();
    const wasLeaving = this.leaving.delete(tabId);
    const origin = originOf(url);
    const holding = this.installed.filter((i) => i.tabIds.includes(tabId));
    if (holding.some((i) => i.origin !== origin)) await this.withdraw({ tab: tabId });
    if (origin === null || holding.some((i) => i.origin === origin)) return;
    if (wasLeaving || (await grantedOrigins()).has(origin)) await this.refresh();
  }

  /** A navigation that started did not commit (aborted, failed): the tab still shows its document. */
  async navigationFailed(tabId: number): Promise<void> {
    if (this.leaving.delete(tabId)) await this.refresh();
  }

  /** A tab closed: out of the rules that name it. */
  async tabClosed(tabId: number): Promise<void> {
    if (this.rules === null) await this.load();
    this.leaving.delete(tabId);
    if (this.installed.some((i) => i.tabIds.includes(tabId))) await this.withdraw({ tab: tabId });
  }

  /**
   * False only when it is certain no installed rule covers this request (its tab and URL): lets
   * the webRequest listener drop other requests synchronously, without waking any async work,
   * including the granted tab's requests to other hosts. Unknown (a fresh worker) is true.
   */
  mayBeCovered(details: { tabId: number; url: string }): boolean {
    if (this.rules === null) return true;
    const url = details.url.toLowerCase();
    const now = this.deps.now();
    return (
      this.installed.some((i) => coversTabAndUrl(i, details.tabId, url)) ||
      this.retired.some((r) => now - r.until < RETIRED_FOR_MS && coversTabAndUrl(r.installed, details.tabId, url))
    );
  }

  /**
   * Which installed grant (if any) a request observed by webRequest went out under, from what is
   * installed at this instant: call it synchronously in the listener, before any await, since a
   * withdrawal a moment later (the grant used up by the request before) must not hide a request
   * that already went out. Undefined while this worker has not yet read what is installed.
   *
   * DNR cannot tell ports or subdomains of the initiator apart, so a request from another
   * document in a granted tab (a frame of the same host on another port) also carried the key:
   * it is attributed too, with `foreign` set, so the audit names the document that really sent it.
   */
  attributeNow(details: AttributedRequest): Attribution | null | undefined {
    if (this.rules === null) return undefined;
    if (!details.initiator) return null;
    let initiator: URL;
    try {
      initiator = new URL(details.initiator);
    } catch {
      return null;
    }
    const url = details.url.toLowerCase();
    const method = details.method.toLowerCase();
    const covers = (i: Installed) =>
      coversTabAndUrl(i, details.tabId, url) &&
      (initiator.hostname === i.initiatorHost || initiator.hostname.endsWith(`.${i.initiatorHost}`)) &&
      i.methods.includes(method);
    // what is installed now; else what was, if the request went out before Chrome had it out
    const sent = details.timeStamp ?? this.deps.now();
    const hit = this.installed.find(covers) ?? this.retired.find((r) => sent <= r.until && covers(r.installed))?.installed;
    return hit ? { installed: hit, foreign: initiator.origin !== hit.origin } : null;
  }

  /** attributeNow, reading what is installed first in a fresh worker. */
  async attribute(details: AttributedRequest): Promise<Attribution | null> {
    if (this.rules === null) await this.load();
    return this.attributeNow(details) ?? null;
  }
}

export type Attribution = { readonly installed: Installed; readonly foreign: boolean };
/** A request as webRequest reports it; `timeStamp` is when it started (when Chrome chose its DNR actions). */
export type AttributedRequest = { tabId: number; initiator?: string; url: string; method: string; timeStamp?: number };

/** An installed grant's rule reaches this tab and this URL (lowercased) by its tab ids and URL prefixes. */
function coversTabAndUrl(i: Installed, tabId: number, url: string): boolean {
  return i.tabIds.includes(tabId) && i.prefixes.some((p) => url.startsWith(p.toLowerCase()));
}
