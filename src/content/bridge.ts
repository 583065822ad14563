/**
 * The content-script bridge between the page provider (inpage/provider.ts) and the worker.
 * It takes only messages from its own window and origin, checks their shape and size, and
 * forwards them; the worker learns the caller from Chrome's sender record, not from here.
 */
import { fromBase64 } from '../core/bytes.ts';
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
} from '../core/page-api.ts';
import { Lane } from './lane.ts';

const origin = location.origin;

function reply(id: string, body: { ok: true; result: unknown } | { ok: false; error: unknown }) {
  window.postMessage({ target: INPAGE_TARGET, id, ...body }, origin);
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
    const method = typeof m?.id === 'string' ? waiting.get(m.id) : undefined;
    if (typeof m.id !== 'string' || method === undefined) return;
    waiting.delete(m.id);
    if (m.ok === true) reply(m.id, { ok: true, result: m.result });
    else reply(m.id, { ok: false, error: m.error });
    // after the first brokered call is answered, not during it: opening the lane costs a frame load
    if (method === 'keyhole_fetch' && lane.shouldAsk()) port.postMessage({ lane: true } satisfies LaneAsk);
  });
  port.onDisconnect.addListener(() => {
    if (pagePort === port) pagePort = null;
    for (const w of waiting.keys()) fail(w, PageErrorCode.internal); // the worker went away mid-call
    waiting.clear();
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
    else if ('chunk' in m) {
      const bytes = fromBase64(m.chunk);
      window.postMessage({ target: INPAGE_TARGET, stream: id, chunk: bytes }, origin, [bytes.buffer]);
    } else if ('end' in m) {
      finished = true;
      window.postMessage({ target: INPAGE_TARGET, stream: id, end: true }, origin);
    } else if ('error' in m) {
      finished = true;
      // before the head the call itself fails; after it, the body stream errors
      reply(id, { ok: false, error: m.error });
      window.postMessage({ target: INPAGE_TARGET, stream: id, error: m.error }, origin);
    }
  });
  port.onDisconnect.addListener(() => {
    streams.delete(id);
    if (!finished) {
      const error = { code: PageErrorCode.internal, message: PAGE_ERROR_MESSAGES[PageErrorCode.internal] };
      reply(id, { ok: false, error });
      window.postMessage({ target: INPAGE_TARGET, stream: id, error }, origin);
    }
  });
  port.postMessage({ params });
}

window.addEventListener('message', (ev: MessageEvent) => {
  if (ev.source !== window || ev.origin !== origin) return;
  const m = ev.data as { target?: unknown; id?: unknown; method?: unknown; params?: unknown; stream?: unknown; cancel?: unknown } | null;
  if (typeof m !== 'object' || m === null || m.target !== CONTENT_TARGET) return;
  if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 64) return;
  const id = m.id;
  if (m.cancel === true) {
    streams.get(id)?.disconnect();
    streams.delete(id);
    return;
  }
  if (typeof m.method !== 'string' || m.method.length > 64) return fail(id, PageErrorCode.invalidParams);
  let size: number;
  try {
    size = JSON.stringify(m.params ?? null).length;
  } catch {
    return fail(id, PageErrorCode.invalidParams); // cycles, BigInt: not a JSON value
  }
  if (size > MAX_PAGE_MESSAGE_BYTES) return fail(id, PageErrorCode.invalidParams);
  if (m.stream === true) {
    if (m.method !== 'keyhole_fetch') return fail(id, PageErrorCode.unsupportedMethod);
    return startStream(id, m.params ?? null);
  }
  if (!send(id, m.method, m.params ?? null)) fail(id, PageErrorCode.locked); // the extension was reloaded or removed
});

// Events from the worker (sent only to documents whose origin holds a grant).
chrome.runtime.onMessage.addListener((message, sender) => {
  if (sender.id !== chrome.runtime.id || sender.tab) return;
  const m = message as { kh?: unknown; event?: unknown; data?: unknown };
  if (m?.kh !== 'event' || typeof m.event !== 'string') return;
  window.postMessage({ target: INPAGE_TARGET, event: m.event, data: m.data ?? null }, origin);
});
