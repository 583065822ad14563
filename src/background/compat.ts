/**
 * What differs between Chromium and Firefox for the worker, in one place (../shared/FIREFOX.md).
 * `__FIREFOX__` is a build-time constant (vite.config.ts: `vite build --mode firefox`), so each
 * build keeps only its own branch and Firefox's bundle holds no Chromium-only API.
 *
 *   background  Chromium: a service worker; Firefox: an event page with a DOM (crxjs emits
 *               `background.scripts` for it). Both are stopped when idle; alarms back the timers.
 *   clipboard   Chromium: an offscreen document waits and clears it (the worker has no DOM);
 *               Firefox has no offscreen documents: the event page writes it, on an alarm.
 *   idle        Firefox has no "locked" state: locking when the screen locks cannot fire there.
 *   lane        Chromium: after a page's first brokered call its requests take a MessagePort to
 *               the worker; Firefox: never asked for (content/lane.ts), the page port carries all.
 *   page bridge JSON text in CustomEvent details, in both (core/agents/page-api.ts).
 */
import { eventPageClipboard, offscreenClipboard } from './vault/clipboard.ts';

declare const __FIREFOX__: boolean;

/** How a copied value is cleared from the clipboard later, in this browser. */
export const clipboard = __FIREFOX__ ? eventPageClipboard : offscreenClipboard;
