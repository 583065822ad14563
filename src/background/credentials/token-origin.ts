/**
 * Token requests go out as a server's would: without the `Origin: chrome-extension://…` header
 * Chrome puts on the worker's POSTs. Authorization servers refuse a confidential client's token
 * request that carries an Origin (oidc-provider's default CORS policy; Azure AD's "cross-origin
 * token redemption is permitted only for the Single-Page Application client-type"), because a
 * browser page must never hold a client secret. Keyhole's worker is not a page, and its client
 * secret never reaches one, so a session rule takes the header off exactly these requests: POSTs
 * to the token endpoint's URL, from this extension's own worker (no tab).
 *
 * The rule needs host access to the endpoint, as the broker's requests do. Rule ids from
 * TOKEN_RULE_BASE up are this module's; the transparent rules stay below it.
 */

export const TOKEN_RULE_BASE = 1_000_000;

type Rule = chrome.declarativeNetRequest.Rule;
export type TokenRuleDeps = {
  readonly dnr: {
    getSessionRules(): Promise<Rule[]>;
    updateSessionRules(options: { removeRuleIds?: number[]; addRules?: Rule[] }): Promise<void>;
  };
  readonly extensionId: string;
};

/** A URL Chrome's urlFilter can match literally, anchored at both ends; null if it holds a pattern character. */
export function exactUrlFilter(url: string): string | null {
  return /[*^|]/.test(url) ? null : `|${url}|`;
}

export class TokenRequestRules {
  private readonly done = new Map<string, Promise<void>>();

  constructor(private readonly deps: TokenRuleDeps) {}

  /** Resolves once requests to `url` from the worker go out without an Origin header. */
  ensure(url: string): Promise<void> {
    const filter = exactUrlFilter(url);
    if (filter === null) return Promise.resolve(); // sent as the browser makes it
    let p = this.done.get(filter);
    if (!p) {
      p = this.add(filter).catch((e: unknown) => {
        this.done.delete(filter); // try again on the next request
        console.error('keyhole: token request rule', e instanceof Error ? e.name : typeof e);
      });
      this.done.set(filter, p);
    }
    return p;
  }

  private async add(urlFilter: string): Promise<void> {
    const mine = (await this.deps.dnr.getSessionRules()).filter((r) => r.id >= TOKEN_RULE_BASE);
    if (mine.some((r) => r.condition.urlFilter === urlFilter)) return; // a previous worker added it
    const id = Math.max(TOKEN_RULE_BASE - 1, ...mine.map((r) => r.id)) + 1;
    await this.deps.dnr.updateSessionRules({
      addRules: [
        {
          id,
          priority: 1,
          action: {
            type: 'modifyHeaders' as chrome.declarativeNetRequest.RuleActionType,
            requestHeaders: [{ header: 'origin', operation: 'remove' as chrome.declarativeNetRequest.HeaderOperation }],
          },
          condition: {
            urlFilter,
            initiatorDomains: [this.deps.extensionId],
            tabIds: [-1], // chrome.tabs.TAB_ID_NONE: not a page's request
            requestMethods: ['post' as chrome.declarativeNetRequest.RequestMethod],
            resourceTypes: ['xmlhttprequest', 'other'] as chrome.declarativeNetRequest.ResourceType[],
          },
        },
      ],
    });
  }
}
