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

const STAY_AWAKE_EVERY_MS = 5_000;
let lastStayAwake = 0;

/**
 * A lane's messages are not extension events, so they do not reset the idle timer; a request
 * arriving on one calls this, so the worker is not stopped under it. At most one call per 5 s.
 */
export function stayAwake(): void {
  const now = Date.now();
  if (now - lastStayAwake < STAY_AWAKE_EVERY_MS) return;
  lastStayAwake = now;
  void chrome.runtime.getPlatformInfo();
}

let awakeUntil = 0;
let awakeTimer: ReturnType<typeof setInterval> | undefined;

/**
 * Keeps the worker from being stopped until `at` (a grant's expiry, which a timer must meet to
 * the millisecond: an alarm in a packed extension fires at most every 30 s).
 */
export function keepAwakeUntil(at: number): void {
  awakeUntil = Math.max(awakeUntil, at);
  if (awakeTimer !== undefined) return;
  awakeTimer = setInterval(() => {
    if (Date.now() >= awakeUntil) {
      clearInterval(awakeTimer);
      awakeTimer = undefined;
      return;
    }
    void chrome.runtime.getPlatformInfo();
  }, INTERVAL_MS);
}
