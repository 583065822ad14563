/**
 * Clears a copied value from the clipboard after the person's chosen delay, even if the page
 * that copied it has closed. The worker may be stopped long before the delay ends, so the
 * countdown does not live in its timers:
 *
 * - Chromium: an offscreen document (reason CLIPBOARD) waits, clears, then closes itself;
 * - Firefox (no offscreen documents): an alarm wakes the event page, which has a DOM and the
 *   clipboardWrite permission, and writes the empty string itself.
 *
 * Without `clipboardRead` neither can tell whether the person copied something else since; they
 * clear unconditionally, as Bitwarden does (docs/decisions.md). compat.ts picks one per build.
 */
const PAGE = 'src/background/vault/offscreen.html';
export const CLIPBOARD_ALARM = 'keyhole.clipboard';

export type ClipboardClearer = {
  /** (Re)start the countdown: a later copy replaces an earlier pending clear. */
  schedule(seconds: number): Promise<void>;
  /** On lock: if a clear is pending, do it now rather than when the countdown ends. */
  clearNowIfPending(): Promise<void>;
  /** CLIPBOARD_ALARM fired (Firefox's countdown ended). */
  onAlarm(): Promise<void>;
};

const delayMs = (seconds: number) => Math.max(0, Math.round(seconds * 1000));

export const offscreenClipboard: ClipboardClearer = {
  async schedule(seconds) {
    if (await chrome.offscreen.hasDocument()) await chrome.offscreen.closeDocument();
    await chrome.offscreen.createDocument({
      url: `${PAGE}?clearAfterMs=${delayMs(seconds)}`,
      reasons: [chrome.offscreen.Reason.CLIPBOARD],
      justification: 'Clear a copied secret from the clipboard after a short time.',
    });
  },
  async clearNowIfPending() {
    if (await chrome.offscreen.hasDocument()) await this.schedule(0);
  },
  async onAlarm() {
    // never set in Chromium: the offscreen document keeps the time
  },
};

export const eventPageClipboard: ClipboardClearer = {
  async schedule(seconds) {
    const ms = delayMs(seconds);
    if (ms === 0) {
      await chrome.alarms.clear(CLIPBOARD_ALARM);
      return navigator.clipboard.writeText('');
    }
    await chrome.alarms.create(CLIPBOARD_ALARM, { when: Date.now() + ms });
  },
  async clearNowIfPending() {
    if (await chrome.alarms.get(CLIPBOARD_ALARM)) await this.schedule(0);
  },
  onAlarm() {
    return navigator.clipboard.writeText('');
  },
};
