/**
 * The content-script bridge between the page provider (inpage/provider.ts) and the worker.
 * It takes only events dispatched on its own window, checks their shape and size, and
 * forwards them; the worker learns the caller from Chrome's sender record, not from here.
 */

import {
  CONTENT_TARGET,
  INPAGE_TARGET,
  type LaneAsk,
  MAX_PAGE_MESSAGE_BYTES,
  PAGE_ERROR_MESSAGES,
  PAGE_PORT,
  PageErrorCode,
  STREAM_PORT,
  type StreamMessage,
  TO_CONTENT_EVENT,
  TO_PAGE_EVENT,
} from '../core/agents/page-api.ts';
import { Lane } from './lane.ts';

/**
 * To the page, at once (a synchronous event: page listeners run inside this call, so callers
 * change their own state first).
 */
function toPage(m: object): void {
  window.dispatchEvent(new CustomEvent(TO_PAGE_EVENT, { detail: JSON.stringify(m) }));
}

function reply(id: string, body: { ok: true; result: unknown } | { ok: false; error: unknown }) {
  toPage({ target: INPAGE_TARGET, id, ...body });
}

const fail = (id: string, code: keyof typeof PAGE_ERROR_MESSAGES) =>
  reply(id, { ok: false, error: { code, message: PAGE_ERROR_MESSAGES[code] } });

const streams = new Map<string, chrome.runtime.Port>();

// Requests travel on one long-lived port (one IPC hop each way, not a new channel per call).
// The worker closes it when it stops; the next request opens a new one, which wakes it.
// After a document's first keyhole_fetch they travel on a lane (lane.ts) while the worker runs.
let pagePort: chrome.runtime.Port | null = null;
/** requests on the page port not yet answered, and their methods */
const waiting = new Map<string, string>();

const lane = new Lane({
  answer: (id, body) => reply(id, body),
  // a request the stopped worker never saw goes again the slow way (which wakes it); a seen one failed
  lost: (r, seen) => {
    if (seen) fail(r.id, PageErrorCode.internal);
    else if (!send(r.id, r.method, r.params)) fail(r.id, PageErrorCode.locked);
  },
});

function openPagePort(): chrome.runtime.Port {
  const port = chrome.runtime.connect({ name: PAGE_PORT });
  port.onMessage.addListener((m: { id?: unknown; ok?: unknown; result?: unknown; error?: unknown; lane?: unknown }) => {
    if ('lane' in m) return lane.offered(typeof m.lane === 'string' ? m.lane : null);
    const id = m.id;
    const method = typeof id === 'string' ? waiting.get(id) : undefined;
    if (typeof id !== 'string' || method === undefined) return;
    waiting.delete(id);
    if (m.ok === true) reply(id, { ok: true, result: m.result });
    else reply(id, { ok: false, error: m.error });
    // after the first brokered call is answered, not during it: opening the lane costs a frame load
    if (method === 'keyhole_fetch' && lane.shouldAsk()) port.postMessage({ lane: true } satisfies LaneAsk);
  });
  port.onDisconnect.addListener(() => {
    if (pagePort === port) pagePort = null;
    const unanswered = [...waiting.keys()];
    waiting.clear();
    for (const w of unanswered) fail(w, PageErrorCode.internal); // the worker went away mid-call
    lane.lose();
  });
  return port;
}

function send(id: string, method: string, params: unknown): boolean {
  if (lane.send({ id, method, params })) return true;
  try {
    pagePort ??= openPagePort();
    waiting.set(id, method);
    pagePort.postMessage({ id, method, params });
    return true;
  } catch {
    waiting.delete(id);
    pagePort = null;
    return false;
  }
}

/** A streamed keyhole_fetch: a port to the worker; the head, chunks and end go back to the page. */
function startStream(id: string, params: unknown): void {
  if (streams.has(id)) {
    fail(id, PageErrorCode.invalidParams);
    return;
  }
  let port: chrome.runtime.Port;
  try {
    port = chrome.runtime.connect({ name: STREAM_PORT });
  } catch {
    fail(id, PageErrorCode.locked);
    return;
  }
  streams.set(id, port);
  let finished = false;
  port.onMessage.addListener((m: StreamMessage) => {
    if ('head' in m) reply(id, { ok: true, result: m.head });
    else if ('chunk' in m) toPage({ target: INPAGE_TARGET, stream: id, chunk: m.chunk });
    else if ('end' in m) {
      finished = true;
      toPage({ target: INPAGE_TARGET, stream: id, end: true });
    } else if ('error' in m) {
      finished = true;
      // before the head the call itself fails; after it, the body stream errors
      reply(id, { ok: false, error: m.error });
      toPage({ target: INPAGE_TARGET, stream: id, error: m.error });
    }
  });
  port.onDisconnect.addListener(() => {
    streams.delete(id);
    if (!finished) {
      const error = { code: PageErrorCode.internal, message: PAGE_ERROR_MESSAGES[PageErrorCode.internal] };
      reply(id, { ok: false, error });
      toPage({ target: INPAGE_TARGET, stream: id, error });
    }
  });
  port.postMessage({ params });
}

// Requests from the page: only this window's scripts can dispatch this event on it.
window.addEventListener(TO_CONTENT_EVENT, (ev: Event) => {
  // JSON text (page-api.ts); anything else, or longer than a message may be, is not taken
  if (!(ev instanceof CustomEvent) || typeof ev.detail !== 'string' || ev.detail.length > MAX_PAGE_MESSAGE_BYTES) return;
  let m: { target?: unknown; id?: unknown; method?: unknown; params?: unknown; stream?: unknown; cancel?: unknown } | null;
  try {
    m = JSON.parse(ev.detail);
  } catch {
    return;
  }
  if (typeof m !== 'object' || m === null || m.target !== CONTENT_TARGET) return;
  if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 64) return;
  ev.preventDefault(); // taken: the answer comes back as a TO_PAGE_EVENT
  const id = m.id;
  if (m.cancel === true) {
    streams.get(id)?.disconnect();
    streams.delete(id);
    return;
  }
  if (typeof m.method !== 'string' || m.method.length > 64) return fail(id, PageErrorCode.invalidParams);
  if (m.stream === true) {
    if (m.method !== 'keyhole_fetch') return fail(id, PageErrorCode.unsupportedMethod);
    return startStream(id, m.params ?? null);
  }
  if (!send(id, m.method, m.params ?? null)) fail(id, PageErrorCode.locked); // the extension was reloaded or removed
});

// Requests the provider sent before this script listened wait for this.
toPage({ target: INPAGE_TARGET, ready: true });

// Events from the worker (sent only to documents whose origin holds a grant).
chrome.runtime.onMessage.addListener((message, sender) => {
  if (sender.id !== chrome.runtime.id || sender.tab) return;
  const m = message as { kh?: unknown; event?: unknown; data?: unknown };
  if (m?.kh !== 'event' || typeof m.event !== 'string') return;
  toPage({ target: INPAGE_TARGET, event: m.event, data: m.data ?? null });
});
