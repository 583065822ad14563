/**
 * The public page provider API, v1 (DESIGN.md section 3): the contract web apps code against.
 * Method names, event names and error codes here must not change meaning. Types only, plus the
 * fixed error messages; the worker implements it (background/agents/page-api.ts), the SDK wraps it.
 */
import type { SecretKind } from '../credentials/kinds.ts';
import type { Narrowing } from '../credentials/narrowing.ts';
import type { HttpMethod } from './policy.ts';

export const PAGE_METHODS = [
  'keyhole_status',
  'keyhole_requestGrant',
  'keyhole_getGrants',
  'keyhole_revokeGrant',
  'keyhole_fetch',
  'keyhole_refresh',
] as const;
export type PageMethod = (typeof PAGE_METHODS)[number];

export const PAGE_EVENTS = ['lock', 'unlock', 'grantsChanged', 'credentialChanged'] as const;
export type PageEvent = (typeof PAGE_EVENTS)[number];

export type GrantMode = 'broker' | 'transparent';

/** What a page learns about a grant: names and scopes, never a value. */
export type Grant = {
  readonly id: string;
  readonly origin: string;
  readonly secret: string;
  readonly mode: GrantMode;
  readonly hosts: readonly string[];
  readonly methods: readonly HttpMethod[];
  readonly createdAt: number;
  readonly expiresAt: number;
  /** uses left, or null for unlimited until expiry */
  readonly usesLeft: number | null;
  /** the credential behind the grant, as it stands (never a value); absent if the secret is gone */
  readonly credential?: CredentialInfo;
  /** what the grant narrows the credential to (GitHub repositories and permissions, an AWS session policy) */
  readonly narrow?: Narrowing;
};

/**
 * `ok`: usable (a minted one not yet minted is minted on first use); `expiring`: a minted token
 * is due for refresh, or its refresh is failing while the cached token still serves;
 * `refreshing`: a token request is under way; `unavailable`: no credential can be had now (4402).
 */
export type CredentialState = 'ok' | 'expiring' | 'refreshing' | 'unavailable';

export type CredentialInfo = {
  readonly kind: SecretKind;
  /** the secret's record version: it changes with every change to the secret, rotation included */
  readonly version: number;
  readonly state: CredentialState;
  /** a minted credential: until when its current token is valid (ms since the epoch) */
  readonly validUntil?: number;
};

/** The `credentialChanged` event's data: which secret, and what happened to it. */
export type CredentialChangedEvent = {
  readonly secret: string;
  /** rotated: a new value is current (promotion or roll back); failed: a token request failed; attention: the person must act; expired */
  readonly change: 'rotated' | 'failed' | 'attention' | 'expired';
};

export type BodyEncoding = 'utf8' | 'base64';

export type FetchParams = {
  readonly secret: string;
  readonly url: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly bodyEncoding?: BodyEncoding;
  /**
   * A header of the page's own that Keyhole sets (an SDK's placeholder key): refused with 4300
   * (the default), or dropped and set by Keyhole (`replace`, what the SDK's fetchFor sends).
   */
  readonly credentialHeaders?: 'refuse' | 'replace';
};

export type FetchResult = {
  readonly status: number;
  readonly statusText: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly bodyEncoding: BodyEncoding;
};

export type RequestGrantParams = {
  readonly secrets: readonly string[];
  readonly mode?: GrantMode;
  readonly hosts?: readonly string[];
  readonly ttlSeconds?: number;
  readonly reason?: string;
  /**
   * Least privilege: narrow the credential for this grant. A GitHub App's installation token to
   * `repositories` and `permissions` (a subset of the installation's); an AWS role's session to
   * `sessionPolicy` (an IAM policy document). A secret of another kind is not offered.
   */
  readonly narrow?: NarrowingParams;
};

/** A narrowing as a page asks for it: the session policy as JSON text or as the document itself. */
export type NarrowingParams = Omit<Narrowing, 'sessionPolicy'> & { readonly sessionPolicy?: string | Readonly<Record<string, unknown>> };

export type PageApi = {
  keyhole_status: { params: undefined; result: { state: 'uninitialized' | 'locked' | 'unlocked'; version: string } };
  keyhole_requestGrant: { params: RequestGrantParams; result: { grants: Grant[] } };
  keyhole_getGrants: { params: undefined; result: Grant[] };
  keyhole_revokeGrant: { params: { grantId: string }; result: true };
  keyhole_fetch: { params: FetchParams; result: FetchResult };
  /** a fresh credential for a granted secret, now (rate limited: 4429) */
  keyhole_refresh: { params: { secret: string }; result: CredentialInfo };
};

/**
 * Error codes. EIP-1193's meanings are kept (4001, 4100, 4200, 4900, JSON-RPC's -326xx);
 * the 43xx/44xx codes are Keyhole's own, documented in docs/page-api.md.
 */
export const PageErrorCode = {
  rejected: 4001,
  unauthorized: 4100,
  unsupportedMethod: 4200,
  hostNotAllowed: 4300,
  redirectRefused: 4301,
  upstreamFailed: 4302,
  responseTooLarge: 4303,
  responseRefused: 4304,
  secretExpired: 4400,
  credentialUnavailable: 4402,
  rateLimited: 4429,
  locked: 4900,
  invalidParams: -32602,
  internal: -32603,
} as const;
export type PageErrorCodeValue = (typeof PageErrorCode)[keyof typeof PageErrorCode];

export type PageErrorBody = {
  readonly code: PageErrorCodeValue;
  readonly message: string;
  readonly data?: Record<string, string | number>;
};

/** Fixed messages: an error never carries text that could hold a secret value. */
export const PAGE_ERROR_MESSAGES: Record<PageErrorCodeValue, string> = {
  4001: 'The person rejected the request.',
  4100: 'No grant for this origin and secret.',
  4200: 'Unsupported method.',
  4300: 'The request is outside what the grant and the secret allow.',
  4301: 'The server answered with a redirect; Keyhole does not follow redirects with a credential.',
  4302: 'The request to the API failed.',
  4303: 'The response is larger than Keyhole allows.',
  4304: 'The response holds the credential in a form Keyhole cannot remove, so it was not passed on.',
  4400: 'The secret has expired.',
  4402: 'No credential can be had now: the token endpoint failed and no valid cached token remains.',
  4429: 'Too many requests; try again later.',
  4900: 'The Keyhole vault is locked.',
  [-32602]: 'Invalid params.',
  [-32603]: 'Internal error.',
};

/**
 * The bridge between the inpage provider and the content script: CustomEvents on window,
 * dispatched synchronously, so no task hop each way (window.postMessage costs one). Only this
 * window's own scripts can dispatch them. The detail is JSON text, in both browsers: an object
 * made in one world is unreadable in the other in Firefox (Xray wrappers), a string is not, and
 * everything past the content script is JSON anyway (runtime ports). A message is at most
 * MAX_PAGE_MESSAGE_BYTES of text; the provider refuses a longer one or one that is not JSON at
 * once, and the bridge ignores it. The content script calls preventDefault() on a request it
 * takes, so the provider knows at once when it did not. Body chunks stay base64 to the page.
 */
export const TO_CONTENT_EVENT = 'keyhole:bridge:content';
export const TO_PAGE_EVENT = 'keyhole:bridge:page';
export const INPAGE_TARGET = 'keyhole:inpage';
export const CONTENT_TARGET = 'keyhole:content';
export const MAX_PAGE_MESSAGE_BYTES = 2 * 1024 * 1024;
/** The long-lived runtime port page requests travel on (content script <-> worker). */
export const PAGE_PORT = 'keyhole-page';
/** The runtime port a streamed keyhole_fetch travels on, one per call. */
export const STREAM_PORT = 'keyhole-stream';

/**
 * The lane: a MessagePort from the content script straight to the worker, for page requests
 * after the first keyhole_fetch (background/agents/lanes.ts says why and how it is bound to the caller).
 * The web-accessible page that hands the port over, relative to the extension's root:
 */
export const LANE_PAGE = 'src/content/lane.html';
/** A lane not bound by then is given up for the document, which keeps the page port (a page CSP can block the frame). */
export const LANE_OPEN_TIMEOUT_MS = 5_000;
/** How long a lane token, minted over the page port, may wait to be claimed. */
export const LANE_TOKEN_TTL_MS = 10_000;
/** Content script -> worker on the page port: asks for a lane token. */
export type LaneAsk = { readonly lane: true };
/** Worker -> content script on the page port: the token, or null when no lane is offered. */
export type LaneOffer = { readonly lane: string | null };
/** Lane frame -> worker (ServiceWorker.postMessage, with the port transferred). */
export type LaneClaim = { readonly kh: 'lane'; readonly token: string; readonly ancestor: string };
/** Worker -> content script on a lane: bound; a request arrived (so it will be answered); an answer. */
export type LaneMessage =
  | { readonly ready: true }
  | { readonly ack: string }
  | { readonly id: string; readonly ok: true; readonly result: unknown }
  | { readonly id: string; readonly ok: false; readonly error: unknown };

/** Worker -> content script messages on a stream port. Chunks are base64: ports carry JSON. */
export type StreamMessage =
  | { readonly head: { readonly status: number; readonly statusText: string; readonly headers: Record<string, string> } }
  | { readonly chunk: string }
  | { readonly end: true }
  | { readonly error: PageErrorBody };

/** An error for a page: a code and its fixed message, plus optional non-secret detail. */
export class PageError extends Error {
  override readonly name = 'PageError';
  constructor(
    readonly code: PageErrorCodeValue,
    readonly data?: Record<string, string | number>,
  ) {
    super(PAGE_ERROR_MESSAGES[code]);
  }

  toBody(): PageErrorBody {
    return { code: this.code, message: this.message, ...(this.data ? { data: this.data } : {}) };
  }
}
