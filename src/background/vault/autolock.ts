/**
 * When the vault locks by itself: the person's input idle for N minutes (chrome.idle, checked
 * by event and by a one-minute chrome.alarms tick, since events may be missed while the
 * worker sleeps), the system screen lock, and the last browser window closing.
 */
import type { Settings } from '../../core/api.ts';
import type { LockReason } from './vault-service.ts';

export const AUTOLOCK_ALARM = 'keyhole.autolock';

export type IdleState = 'active' | 'idle' | 'locked';

/** The decision, apart from the browser APIs so it can be tested on its own. */
export function lockReasonFor(state: IdleState, settings: Settings): LockReason | null {
  if (state === 'locked' && settings.lockOnSystemLock) return 'system-lock';
  if (state === 'idle') return 'idle';
  return null;
}

/** chrome.idle takes seconds and refuses less than 15. */
const idleSeconds = (settings: Settings) => Math.max(15, settings.autoLockMinutes * 60);

export function applyIdleSettings(settings: Settings): void {
  chrome.idle.setDetectionInterval(idleSeconds(settings));
}

export async function ensureAutolockAlarm(): Promise<void> {
  if (!(await chrome.alarms.get(AUTOLOCK_ALARM))) await chrome.alarms.create(AUTOLOCK_ALARM, { periodInMinutes: 1 });
}

export async function checkIdleNow(settings: Settings): Promise<LockReason | null> {
  const state = (await chrome.idle.queryState(idleSeconds(settings))) as IdleState;
  return lockReasonFor(state, settings);
}

export async function noWindowsLeft(): Promise<boolean> {
  const windows = await chrome.windows.getAll({ windowTypes: ['normal', 'popup', 'app'] });
  return windows.length === 0;
}
