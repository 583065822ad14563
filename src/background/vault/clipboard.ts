/**
 * Clears a copied value from the clipboard after the person's chosen delay, even if the page
 * that copied it has closed. The worker may be stopped long before the delay ends, so the
 * timer lives in an offscreen document (reason CLIPBOARD) that clears and then closes itself.
 *
 * Without `clipboardRead` the document cannot tell whether the person copied something else
 * since; it clears unconditionally, as Bitwarden does (docs/decisions.md).
 */
const PAGE = 'src/background/vault/offscreen.html';

async function closeClipboardDocument(): Promise<void> {
  if (await chrome.offscreen.hasDocument()) await chrome.offscreen.closeDocument();
}

/** (Re)start the countdown: a later copy replaces an earlier pending clear. */
export async function scheduleClipboardClear(seconds: number): Promise<void> {
  const afterMs = Math.max(0, Math.round(seconds * 1000));
  await closeClipboardDocument();
  await chrome.offscreen.createDocument({
    url: `${PAGE}?clearAfterMs=${afterMs}`,
    reasons: [chrome.offscreen.Reason.CLIPBOARD],
    justification: 'Clear a copied secret from the clipboard after a short time.',
  });
}

/** On lock: if a clear is pending, do it now rather than when the countdown ends. */
export async function clearClipboardNowIfPending(): Promise<void> {
  if (await chrome.offscreen.hasDocument()) await scheduleClipboardClear(0);
}
