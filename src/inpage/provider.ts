/**
 * The page provider, in the page's own JavaScript world (DESIGN.md section 3). It holds nothing
 * secret: it forwards `request()` calls to the content-script bridge as synchronous events on
 * window (core/agents/page-api.ts, TO_CONTENT_EVENT) and relays answers and events back. Discovery
 * follows EIP-6963: it answers `keyhole:requestProvider` with a `keyhole:announceProvider` event
 * carrying a frozen `{ info, provider }`, and announces once when it loads.
 */
import {
  CONTENT_TARGET,
  INPAGE_TARGET,
  MAX_PAGE_MESSAGE_BYTES,
  PAGE_EVENTS,
  type PageEvent,
  TO_CONTENT_EVENT,
  TO_PAGE_EVENT,
} from '../core/agents/page-api.ts';
import { fromBase64 } from '../core/bytes.ts';

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

class ProviderRpcError extends Error {
  override readonly name = 'ProviderRpcError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const ICON =
  'data:image/svg+xml,' +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f3a5f"/><circle cx="16" cy="13" r="5" fill="#fff"/><rect x="14" y="16" width="4" height="10" rx="1" fill="#fff"/></svg>',
  );

(() => {
  const w = window as Window & { __keyholeProvider?: true };
  if (w.__keyholeProvider) return; // injected twice (e.g. a reload of the extension)
  Object.defineProperty(w, '__keyholeProvider', { value: true });

  const pending = new Map<string, Pending>();
  const bodies = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
  const listeners = new Map<PageEvent, Set<(data: unknown) => void>>();
  let next = 0;

  // the page's later scripts may replace JSON's methods: keep the ones it started with
  const { stringify, parse } = JSON;
  const notJson = (_key: string, v: unknown) => {
    if (typeof v === 'function' || typeof v === 'symbol') throw new TypeError('not JSON');
    return v;
  };
  const dispatch = (text: string): boolean => !window.dispatchEvent(new CustomEvent(TO_CONTENT_EVENT, { detail: text, cancelable: true }));
  /** messages sent before the content script listened; it says when it does */
  let early: string[] = [];

  /**
   * Sends to the content script. False only for a message it can never take (not JSON: a cycle,
   * a BigInt, a function; or longer than the bridge takes); one sent before the content script
   * runs waits for it.
   */
  const toContent = (m: object): boolean => {
    let text: string;
    try {
      text = stringify(m, notJson);
    } catch {
      return false;
    }
    if (text.length > MAX_PAGE_MESSAGE_BYTES) return false;
    if (!dispatch(text)) early.push(text);
    return true;
  };

  /** Sends a call whose answer `pending` waits for; one the content script can never take is refused now. */
  const call = (id: string, m: object): void => {
    if (toContent(m)) return;
    const p = pending.get(id);
    pending.delete(id);
    p?.reject(new ProviderRpcError(-32602, 'Invalid params.'));
  };

  window.addEventListener(TO_PAGE_EVENT, (ev: Event) => {
    if (!(ev instanceof CustomEvent) || typeof ev.detail !== 'string') return;
    let data: unknown;
    try {
      data = parse(ev.detail);
    } catch {
      return;
    }
    if ((data as { ready?: unknown } | null)?.ready === true) {
      const waiting = early;
      early = [];
      for (const m of waiting) dispatch(m);
      return;
    }
    const m = data as {
      target?: unknown;
      id?: unknown;
      ok?: unknown;
      result?: unknown;
      error?: unknown;
      event?: unknown;
      data?: unknown;
    };
    if (!m || m.target !== INPAGE_TARGET) return;
    const s = data as { stream?: unknown; chunk?: unknown; end?: unknown; error?: { code?: unknown; message?: unknown } };
    if (typeof s.stream === 'string') {
      const body = bodies.get(s.stream);
      if (!body) return;
      if (typeof s.chunk === 'string') body.enqueue(fromBase64(s.chunk));
      else if (s.end === true) {
        bodies.delete(s.stream);
        body.close();
      } else if (s.error) {
        bodies.delete(s.stream);
        body.error(
          new ProviderRpcError(typeof s.error.code === 'number' ? s.error.code : -32603, String(s.error.message ?? 'Internal error.')),
        );
      }
      return;
    }
    if (typeof m.event === 'string') {
      for (const fn of listeners.get(m.event as PageEvent) ?? []) {
        try {
          fn(m.data);
        } catch (e) {
          console.error(e);
        }
      }
      return;
    }
    if (typeof m.id !== 'string') return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok === true) p.resolve(m.result);
    else {
      const e = (m.error ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
      p.reject(
        new ProviderRpcError(
          typeof e.code === 'number' ? e.code : -32603,
          typeof e.message === 'string' ? e.message : 'Internal error.',
          e.data,
        ),
      );
    }
  });

  const provider = Object.freeze({
    isKeyhole: true,
    request(args: { method: string; params?: unknown }): Promise<unknown> {
      if (typeof args !== 'object' || args === null || typeof args.method !== 'string') {
        return Promise.reject(new ProviderRpcError(-32602, 'Invalid params.'));
      }
      const id = `${Date.now().toString(36)}-${(next++).toString(36)}`;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        call(id, { target: CONTENT_TARGET, id, method: args.method, params: args.params });
      });
    },
    /**
     * keyhole_fetch with a streamed body: resolves with the response head and a ReadableStream
     * of the (redacted) body as it arrives. Cancelling the stream cancels the request.
     */
    fetchStream(
      params: unknown,
    ): Promise<{ status: number; statusText: string; headers: Record<string, string>; body: ReadableStream<Uint8Array> }> {
      const id = `${Date.now().toString(36)}-s${(next++).toString(36)}`;
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => void bodies.set(id, controller),
        cancel: () => {
          bodies.delete(id);
          toContent({ target: CONTENT_TARGET, id, cancel: true });
        },
      });
      return new Promise((resolve, reject) => {
        pending.set(id, {
          resolve: (head) => resolve({ ...(head as { status: number; statusText: string; headers: Record<string, string> }), body }),
          reject: (e) => {
            bodies.delete(id);
            reject(e);
          },
        });
        call(id, { target: CONTENT_TARGET, id, stream: true, method: 'keyhole_fetch', params });
      });
    },
    on(event: PageEvent, fn: (data: unknown) => void) {
      if (!(PAGE_EVENTS as readonly string[]).includes(event) || typeof fn !== 'function') return provider;
      const set = listeners.get(event) ?? new Set();
      set.add(fn);
      listeners.set(event, set);
      return provider;
    },
    removeListener(event: PageEvent, fn: (data: unknown) => void) {
      listeners.get(event)?.delete(fn);
      return provider;
    },
  });

  const detail = Object.freeze({
    info: Object.freeze({ uuid: crypto.randomUUID(), name: 'Keyhole', icon: ICON, rdns: 'dev.keyhole' }),
    provider,
  });
  const announce = () => window.dispatchEvent(new CustomEvent('keyhole:announceProvider', { detail }));
  window.addEventListener('keyhole:requestProvider', announce);
  announce();
})();
