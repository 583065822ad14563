/**
 * Keeps the MV3 worker awake while a brokered call is in flight: Chrome stops an idle worker
 * after 30 s, and an API call (any extension API) resets that timer. Counted, so overlapping
 * calls share one timer.
 */
const INTERVAL_MS = 20_000;
let active = 0;
let timer: ReturnType<typeof setInterval> | undefined;

export async function whileAwake<T>(work: () => Promise<T>): Promise<T> {
  if (active++ === 0) timer = setInterval(() => void chrome.runtime.getPlatformInfo(), INTERVAL_MS);
  try {
    return await work();
  } finally {
    if (--active === 0) clearInterval(timer);
  }
}
