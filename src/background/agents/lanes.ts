/**
 * Lanes: a MessagePort from a page's content script straight to this worker.
 *
 * Page requests first travel on a runtime port, which Chrome routes through the browser process:
 * about 1.0/1.7 ms a round trip here (p50/p95). A MessagePort goes from the page's renderer to the
 * worker's without that detour: about 0.1/0.2 ms. That difference is what puts a brokered call
 * below a local forward proxy (docs/decisions.md, "Broker hot path").
 *
 * Binding, so the caller is still the one Chrome reported: the content script asks for a token on
 * its runtime port; the token is minted for that port's sender (origin, tab, document; top frame
 * only), is good once and for LANE_TOKEN_TTL_MS. The content script hands the token and one end
 * of a MessageChannel to a web-accessible extension frame, which passes both to this worker; the
 * worker binds the port to the token's caller. The page never holds the token or the port (both
 * stay in the content script's isolated world and our frame), and the frame's own report of its
 * parent's origin must name the same caller.
 */
import { LANE_TOKEN_TTL_MS } from '../../core/agents/page-api.ts';
import type { PageCaller } from './page-api.ts';

/** tokens waiting to be claimed, at most; the oldest goes first */
const MAX_PENDING = 64;

export class LaneTokens {
  private readonly pending = new Map<string, { readonly caller: PageCaller; readonly expires: number }>();

  constructor(private readonly now: () => number) {}

  mint(caller: PageCaller): string {
    const now = this.now();
    for (const [token, p] of this.pending) if (p.expires <= now) this.pending.delete(token);
    const oldest = this.pending.keys().next();
    if (this.pending.size >= MAX_PENDING && !oldest.done) this.pending.delete(oldest.value);
    const token = crypto.randomUUID();
    this.pending.set(token, { caller, expires: now + LANE_TOKEN_TTL_MS });
    return token;
  }

  /** The caller a frame's claim is for, or null. A token is spent by any claim, good or not. */
  claim(data: unknown): PageCaller | null {
    const d = data as { kh?: unknown; token?: unknown; ancestor?: unknown } | null;
    if (typeof d !== 'object' || d === null || d.kh !== 'lane' || typeof d.token !== 'string') return null;
    const p = this.pending.get(d.token);
    this.pending.delete(d.token);
    if (!p || p.expires <= this.now() || d.ancestor !== p.caller.origin) return null;
    return p.caller;
  }
}

export type LaneAnswer = (body: { ok: true; result: unknown } | { ok: false; error: unknown }) => void;

/**
 * Serves page requests arriving on a bound lane. Each request is acknowledged on arrival, so the
 * content script knows which ones a stopped worker never saw (those it may send again) from the
 * ones it saw and could not answer (those fail).
 */
export function serveLane(
  port: MessagePort,
  serve: (method: unknown, params: unknown, answer: LaneAnswer) => void,
  onRequest: () => void,
): void {
  port.onmessage = (ev: MessageEvent) => {
    const m = ev.data as { id?: unknown; method?: unknown; params?: unknown } | null;
    const id = m?.id;
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) return;
    port.postMessage({ ack: id });
    onRequest();
    serve(m?.method, m?.params, (body) => port.postMessage({ id, ...body }));
  };
  port.postMessage({ ready: true });
}
