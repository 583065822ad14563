/**
 * The content script's end of a lane (background/agents/lanes.ts): a MessagePort straight to the worker.
 *
 * Asked for after a document's first keyhole_fetch. The worker's token and one end of a
 * MessageChannel go to a hidden extension frame, which passes them to the worker; the frame is
 * removed once the worker says the lane is bound. A lane dies with the worker (a port to a stopped
 * worker does not wake it), and the page port's disconnect tells us so. Then requests the worker
 * acknowledged and never answered fail, as on the page port; the ones it never acknowledged were
 * never seen, and are handed back to go the slow way.
 */
import { LANE_OPEN_TIMEOUT_MS, LANE_PAGE, type LaneMessage } from '../core/agents/page-api.ts';

const EXTENSION_ORIGIN = new URL(chrome.runtime.getURL('')).origin;
declare const __FIREFOX__: boolean;

export type LaneRequest = { readonly id: string; readonly method: string; readonly params: unknown };
type Body = { ok: true; result: unknown } | { ok: false; error: unknown };

export class Lane {
  private state: 'none' | 'asked' | 'opening' | 'open' | 'refused' = 'none';
  private port: MessagePort | null = null;
  private cancelOpen: (() => void) | null = null;
  private readonly inflight = new Map<string, { readonly request: LaneRequest; seen: boolean }>();

  constructor(
    private readonly on: {
      answer(id: string, body: Body): void;
      /** the lane was lost with this request on it; `seen`: the worker had acknowledged it */
      lost(request: LaneRequest, seen: boolean): void;
    },
  ) {}

  /**
   * True once: the caller should now ask the worker for a token on the page port. Never in
   * Firefox: its lane frame, a web-accessible page inside a web page, has no service worker to post
   * to and no runtime.getBackgroundPage (measured in Firefox 153), so the page port carries all.
   */
  shouldAsk(): boolean {
    if (__FIREFOX__) return false;
    if (this.state !== 'none') return false;
    this.state = 'asked';
    return true;
  }

  /** The worker's answer to the ask: a token to bind a lane with, or null. */
  offered(token: string | null): void {
    if (this.state !== 'asked') return;
    if (token === null) {
      this.state = 'refused';
      return;
    }
    this.state = 'opening';
    const channel = new MessageChannel();
    const frame = document.createElement('iframe');
    frame.src = chrome.runtime.getURL(LANE_PAGE);
    frame.setAttribute('aria-hidden', 'true');
    frame.tabIndex = -1;
    frame.style.display = 'none';
    const timer = setTimeout(() => {
      this.cancelOpen?.();
      this.state = 'refused';
    }, LANE_OPEN_TIMEOUT_MS);
    const settle = () => {
      clearTimeout(timer);
      frame.remove();
      this.cancelOpen = null;
    };
    this.cancelOpen = () => {
      settle();
      channel.port1.close();
    };
    channel.port1.onmessage = (ev: MessageEvent) => {
      const m = ev.data as LaneMessage;
      if (typeof m === 'object' && m !== null && 'ready' in m && this.state === 'opening') {
        settle(); // the worker holds its end now; the frame has done its job
        this.port = channel.port1;
        this.state = 'open';
      } else this.receive(m);
    };
    frame.addEventListener('load', () => frame.contentWindow?.postMessage({ token }, EXTENSION_ORIGIN, [channel.port2]), {
      once: true,
    });
    (document.body ?? document.documentElement).append(frame);
  }

  /** Sends on the lane if it is open; false if the caller must use the page port. */
  send(request: LaneRequest): boolean {
    if (this.state !== 'open' || !this.port || this.inflight.has(request.id)) return false;
    this.inflight.set(request.id, { request, seen: false });
    this.port.postMessage(request);
    return true;
  }

  /** The worker went away: the lane went with it. A later keyhole_fetch may open a new one. */
  lose(): void {
    if (this.state === 'refused') return;
    this.cancelOpen?.();
    this.port?.close();
    this.port = null;
    this.state = 'none';
    const lost = [...this.inflight.values()];
    this.inflight.clear();
    for (const { request, seen } of lost) this.on.lost(request, seen);
  }

  private receive(m: LaneMessage): void {
    if (typeof m !== 'object' || m === null || this.state !== 'open') return;
    if ('ack' in m) {
      const f = this.inflight.get(m.ack);
      if (f) f.seen = true;
    } else if ('id' in m && this.inflight.delete(m.id)) {
      this.on.answer(m.id, m.ok ? { ok: true, result: m.result } : { ok: false, error: m.error });
    }
  }
}
