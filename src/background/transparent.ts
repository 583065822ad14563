/**
 * Transparent mode: declarativeNetRequest session rules that set the secret's header on
 * fetch/XHR from the granted origin's tabs to the bound hosts, so unmodified SDKs work.
 * Each rule is scoped as tightly as DNR allows: tabIds (kept current as tabs navigate),
 * initiatorDomains, resourceTypes xmlhttprequest, requestMethods and an anchored urlFilter.
 * Rules exist only while unlocked. `syncRules` recomputes them all from the grants and open
 * tabs and swaps them in one call; everything that changes the inputs calls it.
 */

import type { StoredGrant } from '../core/grants.ts';
import { isLoopbackHost, renderHeaderValue } from '../core/policy.ts';
import type { GrantStore } from './grant-store.ts';
import type { VaultService } from './vault-service.ts';

type RuleMethod = chrome.declarativeNetRequest.RequestMethod;
const ALL_METHODS: RuleMethod[] = ['get', 'head', 'post', 'put', 'patch', 'delete'] as RuleMethod[];

/** What is installed, kept so webRequest observations can be attributed to a grant. */
export type Installed = {
  readonly grantId: string;
  readonly tabIds: number[];
  readonly initiatorHost: string;
  readonly prefixes: string[];
  readonly methods: string[];
};
const INSTALLED_KEY = 'keyhole.transparentRules';

export type TransparentDeps = {
  readonly vault: VaultService;
  readonly grants: GrantStore;
  /** grants withheld for now (a transparent rate limit was exceeded) */
  readonly suspended: () => ReadonlySet<string>;
};

function urlPrefixes(host: string, pathPrefixes: readonly string[]): string[] {
  const hostname = new URL(`https://${host}`).hostname;
  const schemes = isLoopbackHost(hostname) ? ['http', 'https'] : ['https'];
  const paths = pathPrefixes.length > 0 ? pathPrefixes : ['/'];
  return schemes.flatMap((s) => paths.map((p) => `${s}://${host}${p}`));
}

/** The tabs whose top document is the granted origin. */
async function tabsOf(origin: string): Promise<number[]> {
  const tabs = await chrome.tabs.query({});
  return tabs.flatMap((t) => {
    if (t.id === undefined || !t.url) return [];
    try {
      return new URL(t.url).origin === origin ? [t.id] : [];
    } catch {
      return [];
    }
  });
}

let queue: Promise<void> = Promise.resolve();

/** Recomputes every session rule; calls are serialised so two syncs never interleave. */
export function syncRules(deps: TransparentDeps): Promise<void> {
  queue = queue
    .then(() => doSync(deps))
    .catch((e: unknown) => console.error('keyhole: transparent rules', e instanceof Error ? e.name : typeof e));
  return queue;
}

async function doSync(deps: TransparentDeps): Promise<void> {
  const existing = (await chrome.declarativeNetRequest.getSessionRules()).map((r) => r.id);
  const addRules: chrome.declarativeNetRequest.Rule[] = [];
  const installed: Installed[] = [];
  if (await deps.vault.isUnlocked()) {
    const suspended = deps.suspended();
    const grants = (await deps.grants.all()).filter((g) => g.mode === 'transparent' && !suspended.has(g.id));
    for (const g of grants) {
      const entry = await rulesFor(deps.vault, g, addRules.length + 1);
      if (!entry) continue;
      addRules.push(...entry.rules);
      installed.push(entry.installed);
    }
  }
  await chrome.declarativeNetRequest.updateSessionRules({ removeRuleIds: existing, addRules });
  await chrome.storage.session.set({ [INSTALLED_KEY]: installed });
  memo = installed;
}

async function rulesFor(
  vault: VaultService,
  g: StoredGrant,
  firstId: number,
): Promise<{ rules: chrome.declarativeNetRequest.Rule[]; installed: Installed } | null> {
  const tabIds = await tabsOf(g.origin);
  if (tabIds.length === 0) return null;
  const secret = await vault.secretById(g.secretId);
  if (!secret) return null;
  const hosts = g.hosts.filter((h) => secret.rule.hosts.includes(h));
  const methods = (g.methods.length > 0 ? g.methods : secret.rule.methods.length > 0 ? secret.rule.methods : []).map((m) =>
    m.toLowerCase(),
  );
  const prefixes = hosts.flatMap((h) => urlPrefixes(h, secret.rule.pathPrefixes));
  const value = renderHeaderValue(secret.rule.template, (await vault.useSecret(g.secretId)).value);
  const initiatorHost = new URL(g.origin).hostname;
  const rules = prefixes.map((prefix, i) => ({
    id: firstId + i,
    priority: 1,
    action: {
      type: 'modifyHeaders' as chrome.declarativeNetRequest.RuleActionType,
      requestHeaders: [{ header: secret.rule.header, operation: 'set' as chrome.declarativeNetRequest.HeaderOperation, value }],
    },
    condition: {
      urlFilter: `|${prefix}`,
      tabIds,
      initiatorDomains: [initiatorHost],
      resourceTypes: ['xmlhttprequest' as chrome.declarativeNetRequest.ResourceType],
      requestMethods: methods.length > 0 ? (methods as RuleMethod[]) : ALL_METHODS,
    },
  }));
  return { rules, installed: { grantId: g.id, tabIds, initiatorHost, prefixes, methods: methods.length > 0 ? methods : ALL_METHODS } };
}

/** What is installed, as this worker last wrote or read it (a restarted worker reads storage.session once). */
let memo: Installed[] | undefined;

async function installedNow(): Promise<Installed[]> {
  memo ??= ((await chrome.storage.session.get(INSTALLED_KEY))[INSTALLED_KEY] as Installed[] | undefined) ?? [];
  return memo;
}

/**
 * False only when it is certain no installed rule covers this request (its tab and URL): lets
 * the webRequest listener drop other requests synchronously, without waking any async work,
 * including the granted tab's requests to other hosts. Unknown (a fresh worker) is true.
 */
export function mayBeCovered(details: { tabId: number; url: string }): boolean {
  if (memo === undefined) return true;
  const url = details.url.toLowerCase();
  return memo.some((i) => coversTabAndUrl(i, details.tabId, url));
}

/** An installed grant's rule reaches this tab and this URL (lowercased) by its tab ids and URL prefixes. */
function coversTabAndUrl(i: Installed, tabId: number, url: string): boolean {
  return i.tabIds.includes(tabId) && i.prefixes.some((p) => url.startsWith(p.toLowerCase()));
}

/** Which installed grant (if any) a request observed by webRequest went out under. */
export async function attribute(details: { tabId: number; initiator?: string; url: string; method: string }): Promise<Installed | null> {
  const installed = await installedNow();
  if (installed.length === 0 || !details.initiator) return null;
  let initiatorHost: string;
  try {
    initiatorHost = new URL(details.initiator).hostname;
  } catch {
    return null;
  }
  const url = details.url.toLowerCase();
  const method = details.method.toLowerCase();
  return (
    installed.find(
      (i) =>
        coversTabAndUrl(i, details.tabId, url) &&
        (initiatorHost === i.initiatorHost || initiatorHost.endsWith(`.${i.initiatorHost}`)) &&
        i.methods.includes(method),
    ) ?? null
  );
}

/** True while any transparent rule is installed (cheap check before work on tab events). */
export async function anyInstalled(): Promise<boolean> {
  return (await installedNow()).length > 0;
}
