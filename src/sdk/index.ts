/**
 * @keyhole/sdk: what a web app imports to use secrets through the Keyhole extension without
 * ever holding them.
 *
 *   const keyhole = await connect();
 *   await keyhole.requestGrant({ secrets: ['openai'], reason: 'Summarise your inbox' });
 *   const res = await keyhole.fetch('openai', 'https://api.openai.com/v1/models');
 *
 * `fetch` returns a real Response whose body streams as it arrives (server-sent events too).
 * Errors are KeyholeError with the provider's numeric code (DESIGN.md section 3).
 */

import type { CredentialInfo, FetchResult, Grant, PageApi, PageEvent, RequestGrantParams } from '../core/agents/page-api.ts';
import { toBase64 } from '../core/bytes.ts';

export type {
  CredentialChangedEvent,
  CredentialInfo,
  CredentialState,
  Grant,
  GrantMode,
  NarrowingParams,
  PageEvent,
  RequestGrantParams,
} from '../core/agents/page-api.ts';
export { PageErrorCode as ErrorCode } from '../core/agents/page-api.ts';
export type { SecretKind } from '../core/credentials/kinds.ts';
export type { Narrowing } from '../core/credentials/narrowing.ts';

export type ProviderInfo = { readonly uuid: string; readonly name: string; readonly icon: string; readonly rdns: string };

type StreamHead = { status: number; statusText: string; headers: Record<string, string>; body: ReadableStream<Uint8Array> };
type Provider = {
  request(args: { method: string; params?: unknown }): Promise<unknown>;
  fetchStream(params: unknown): Promise<StreamHead>;
  on(event: PageEvent, fn: (data: unknown) => void): unknown;
  removeListener(event: PageEvent, fn: (data: unknown) => void): unknown;
};

/** A refusal or failure from Keyhole: `code` is the provider's error code (4001, 4100, 4900, ...). */
export class KeyholeError extends Error {
  override readonly name: string = 'KeyholeError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** No Keyhole extension answered discovery in time. */
export class KeyholeNotInstalledError extends KeyholeError {
  override readonly name = 'KeyholeNotInstalledError';
  constructor() {
    super(0, 'The Keyhole extension is not installed or not enabled in this browser.');
  }
}

function wrap(e: unknown): KeyholeError {
  if (e instanceof KeyholeError) return e;
  const x = e as { code?: unknown; message?: unknown; data?: unknown };
  return new KeyholeError(
    typeof x?.code === 'number' ? x.code : -32603,
    typeof x?.message === 'string' ? x.message : 'Internal error.',
    x?.data,
  );
}

export type FetchInit = {
  readonly method?: string;
  readonly headers?: HeadersInit;
  readonly body?: string | Uint8Array | ArrayBuffer | null;
  readonly signal?: AbortSignal;
};

export type KeyholeClient = {
  readonly info: ProviderInfo;
  status(): Promise<PageApi['keyhole_status']['result']>;
  requestGrant(params: RequestGrantParams): Promise<Grant[]>;
  getGrants(): Promise<Grant[]>;
  revokeGrant(grantId: string): Promise<void>;
  /**
   * A fresh credential for a granted secret now (a minted one: a new token; a static one: as it
   * is). Resolves with its state, never a value. At most one per secret per 10 s (4429); 4402 when
   * no credential can be had.
   */
  refresh(secret: string): Promise<CredentialInfo>;
  /** A brokered request: Keyhole adds the credential; the app gets the response, credential stripped. */
  fetch(secret: string, url: string | URL, init?: FetchInit): Promise<Response>;
  /** The raw buffered form of keyhole_fetch, as the page API defines it. */
  fetchBuffered(secret: string, url: string | URL, init?: FetchInit): Promise<FetchResult>;
  /**
   * A `fetch` for one secret, to hand to an unmodified vendor SDK (`new OpenAI({ apiKey:
   * 'placeholder', fetch: keyhole.fetchFor('openai') })`): every request goes through the broker,
   * the placeholder key the SDK adds is dropped and the real one set by Keyhole. A Keyhole refusal
   * comes back as an HTTP error response (403, 429, 423 for locked, ...) whose JSON body and
   * `x-keyhole-error` header carry Keyhole's code and message, so the SDK reports it as an API
   * error saying what happened, not as a connection error.
   */
  fetchFor(secret: string): typeof fetch;
  on(event: PageEvent, fn: (data: unknown) => void): () => void;
};

/** Finds the extension by its discovery events; rejects with KeyholeNotInstalledError after `timeoutMs`. */
export function connect(opts: { timeoutMs?: number } = {}): Promise<KeyholeClient> {
  const timeoutMs = opts.timeoutMs ?? 1500;
  return new Promise((resolve, reject) => {
    const onAnnounce = (ev: Event) => {
      const detail = (ev as CustomEvent<{ info: ProviderInfo; provider: Provider }>).detail;
      if (!detail?.provider || detail.info?.rdns !== 'dev.keyhole') return;
      clearTimeout(timer);
      window.removeEventListener('keyhole:announceProvider', onAnnounce);
      resolve(client(detail.info, detail.provider));
    };
    const timer = setTimeout(() => {
      window.removeEventListener('keyhole:announceProvider', onAnnounce);
      reject(new KeyholeNotInstalledError());
    }, timeoutMs);
    window.addEventListener('keyhole:announceProvider', onAnnounce);
    window.dispatchEvent(new Event('keyhole:requestProvider'));
  });
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** The HTTP status fetchFor answers a refusal with (an SDK's retry rules then do the right thing: only 429 and 5xx retry). */
const REFUSAL_STATUS: Readonly<Record<number, number>> = {
  4001: 403,
  4100: 403,
  4200: 400,
  4300: 403,
  4301: 502,
  4302: 502,
  4303: 502,
  4304: 502,
  4400: 401,
  4402: 503,
  4429: 429,
  4900: 423,
  [-32602]: 400,
  [-32603]: 500,
};

/** A refusal as an HTTP error response an SDK reads as an API error. */
function refusalResponse(e: KeyholeError): Response {
  const message = `Keyhole ${e.code}: ${e.message}`;
  return new Response(JSON.stringify({ type: 'error', error: { type: 'keyhole_error', code: e.code, message } }), {
    status: REFUSAL_STATUS[e.code] ?? 500,
    statusText: 'Keyhole',
    headers: { 'content-type': 'application/json', 'x-keyhole-error': String(e.code) },
  });
}

function bodyParams(body: FetchInit['body']): { body?: string; bodyEncoding?: 'utf8' | 'base64' } {
  if (body === undefined || body === null) return {};
  if (typeof body === 'string') return { body, bodyEncoding: 'utf8' };
  return { body: toBase64(body instanceof Uint8Array ? body : new Uint8Array(body)), bodyEncoding: 'base64' };
}

/** A stream head as a real Response; aborting `signal` cancels the body. */
function toResponse(head: StreamHead, signal?: AbortSignal | null): Response {
  signal?.addEventListener('abort', () => void head.body.cancel(), { once: true });
  const nullBody = NULL_BODY_STATUS.has(head.status);
  if (nullBody) void head.body.cancel();
  return new Response(nullBody ? null : head.body, { status: head.status, statusText: head.statusText, headers: head.headers });
}

/** `p`, or the abort reason if `signal` aborts first (a head that comes later is cancelled). */
function untilAborted(p: Promise<StreamHead>, signal: AbortSignal): Promise<StreamHead> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      void p.then(
        (head) => head.body.cancel(),
        () => {},
      );
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (head) => {
        signal.removeEventListener('abort', onAbort);
        resolve(head);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function client(info: ProviderInfo, provider: Provider): KeyholeClient {
  const call = async <T>(method: string, params?: unknown): Promise<T> => {
    try {
      return (await provider.request({ method, params })) as T;
    } catch (e) {
      throw wrap(e);
    }
  };
  const fetchParams = (secret: string, url: string | URL, init: FetchInit = {}) => ({
    secret,
    url: String(url),
    method: init.method ?? 'GET',
    headers: Object.fromEntries(new Headers(init.headers).entries()),
    ...bodyParams(init.body),
  });
  return Object.freeze({
    info,
    status: () => call<PageApi['keyhole_status']['result']>('keyhole_status'),
    requestGrant: async (params: RequestGrantParams) => (await call<{ grants: Grant[] }>('keyhole_requestGrant', params)).grants,
    getGrants: () => call<Grant[]>('keyhole_getGrants'),
    revokeGrant: async (grantId: string) => {
      await call('keyhole_revokeGrant', { grantId });
    },
    refresh: (secret: string) => call<CredentialInfo>('keyhole_refresh', { secret }),
    fetchBuffered: (secret: string, url: string | URL, init?: FetchInit) =>
      call<FetchResult>('keyhole_fetch', fetchParams(secret, url, init)),
    async fetch(secret: string, url: string | URL, init?: FetchInit): Promise<Response> {
      init?.signal?.throwIfAborted();
      let head: StreamHead;
      try {
        head = await provider.fetchStream(fetchParams(secret, url, init));
      } catch (e) {
        throw wrap(e);
      }
      return toResponse(head, init?.signal);
    },
    fetchFor(secret: string): typeof fetch {
      return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
        // what fetch would send: method, headers (a FormData body's content type too), body, signal
        const req = new Request(input, init);
        req.signal.throwIfAborted();
        const bodyless = req.method === 'GET' || req.method === 'HEAD';
        const body = bodyless ? null : new Uint8Array(await req.arrayBuffer());
        const params = {
          secret,
          url: req.url,
          method: req.method,
          headers: Object.fromEntries(req.headers.entries()),
          ...bodyParams(body && body.length > 0 ? body : null),
          credentialHeaders: 'replace',
        };
        let head: StreamHead;
        try {
          head = await untilAborted(provider.fetchStream(params), req.signal);
        } catch (e) {
          if (req.signal.aborted) throw req.signal.reason;
          return refusalResponse(wrap(e));
        }
        return toResponse(head, req.signal);
      };
    },
    on(event: PageEvent, fn: (data: unknown) => void) {
      provider.on(event, fn);
      return () => void provider.removeListener(event, fn);
    },
  });
}
