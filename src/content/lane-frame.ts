/**
 * The lane frame: a web-accessible extension page the content script loads, hidden, for a moment.
 * It takes one message from its parent (the content script, carrying a lane token and a
 * MessagePort) and passes both to the worker, which only an extension page can reach. It tells the
 * worker which origin its parent has, as the browser reports it; the worker checks that against
 * the caller the token was minted for (background/agents/lanes.ts). It has no other behaviour: a site that
 * frames it without a token gets nothing.
 */
import type { LaneClaim } from '../core/agents/page-api.ts';

const ancestors = location.ancestorOrigins;
let used = false;

addEventListener('message', (ev: MessageEvent) => {
  // Only a top-level page's own content script: our parent, with the origin the browser reports for it.
  if (used || ev.source !== parent || parent === window || ancestors.length !== 1 || ev.origin !== ancestors[0]) return;
  const token = (ev.data as { token?: unknown } | null)?.token;
  const port = ev.ports[0];
  if (typeof token !== 'string' || token.length > 64 || !port || ev.ports.length !== 1) return;
  used = true;
  const claim: LaneClaim = { kh: 'lane', token, ancestor: ev.origin };
  void navigator.serviceWorker.ready.then((registration) => registration.active?.postMessage(claim, [port]));
});
