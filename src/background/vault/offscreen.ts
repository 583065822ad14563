/**
 * The offscreen document behind background/vault/clipboard.ts: waits `clearAfterMs`, overwrites the
 * clipboard with an empty string and closes. It never receives or holds a secret value.
 */
const MAX_DELAY_MS = 10 * 60 * 1000;

function clearClipboard(): void {
  // An offscreen document never has focus, so navigator.clipboard is unavailable; the
  // `copy` command with clipboardWrite permission works without a gesture, but only with a
  // selection: select a placeholder, then replace what is copied with the empty string.
  const area = document.createElement('textarea');
  area.value = ' ';
  document.body.append(area);
  area.select();
  const onCopy = (ev: ClipboardEvent) => {
    ev.clipboardData?.setData('text/plain', '');
    ev.preventDefault();
  };
  document.addEventListener('copy', onCopy);
  try {
    document.execCommand('copy');
  } finally {
    document.removeEventListener('copy', onCopy);
    area.remove();
  }
}

const requested = Number(new URLSearchParams(location.search).get('clearAfterMs'));
const delay = Number.isFinite(requested) ? Math.min(Math.max(requested, 0), MAX_DELAY_MS) : 0;
// Chromium occasionally drops a write from this unfocused document (execCommand still reports
// success; seen in about 1 run in 5 of test/e2e/clipboard.test.ts), so clear a second time.
const RECHECK_MS = 1000;
setTimeout(() => {
  clearClipboard();
  setTimeout(() => {
    clearClipboard();
    window.close();
  }, RECHECK_MS);
}, delay);
