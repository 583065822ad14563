/**
 * The service worker's composition root. Every listener is registered at the top level (MV3
 * wakes the worker for an event only if its listener exists at start-up); each awaits `ready`.
 */
import {
  AUTOLOCK_ALARM,
  applyIdleSettings,
  checkIdleNow,
  ensureAutolockAlarm,
  type IdleState,
  lockReasonFor,
  noWindowsLeft,
} from './autolock.ts';
import { clearClipboardNowIfPending, scheduleClipboardClear } from './clipboard.ts';
import { openKeyholeDB } from './db.ts';
import { dispatch, handlers, isOwnPage } from './rpc.ts';
import { chromeSessionStore } from './session.ts';
import { applyDeferredUpdate, chromeUpdatePending, onUpdateAvailable, type UpdateDeps } from './update.ts';
import { VaultService } from './vault-service.ts';

const EXTENSION_ORIGIN = new URL(chrome.runtime.getURL('')).origin;

const ready = (async () => {
  const db = await openKeyholeDB();
  const vault = new VaultService(db, chromeSessionStore(), chrome.runtime.getManifest().version);
  const update: UpdateDeps = { isUnlocked: () => vault.isUnlocked(), pending: chromeUpdatePending, reload: () => chrome.runtime.reload() };
  vault.onLocked = () => {
    void clearClipboardNowIfPending().finally(() => applyDeferredUpdate(update));
  };
  vault.onSettingsChanged = applyIdleSettings;
  const table = handlers(vault, { scheduleClipboardClear });
  await ensureAutolockAlarm();
  applyIdleSettings(await vault.getSettings());
  return { vault, table, update };
})();

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!isOwnPage(sender, chrome.runtime.id, EXTENSION_ORIGIN)) {
    sendResponse({ ok: false, error: { code: 'forbidden', message: 'not allowed' } });
    return false;
  }
  void ready
    .then(async ({ table }) => {
      sendResponse(await dispatch(table, message));
    })
    .catch(() => sendResponse({ ok: false, error: { code: 'internal', message: 'internal error' } }));
  return true;
});

// Other extensions get nothing.
chrome.runtime.onMessageExternal.addListener((_m, _s, sendResponse) => {
  sendResponse({ ok: false, error: { code: 'forbidden', message: 'not allowed' } });
  return false;
});
chrome.runtime.onConnectExternal.addListener((port) => port.disconnect());

chrome.runtime.onStartup.addListener(() => {
  void ready.then(({ vault }) => vault.endStaleSession());
});

chrome.runtime.onUpdateAvailable.addListener(() => {
  void ready.then(({ update }) => onUpdateAvailable(update));
});

chrome.idle.onStateChanged.addListener((state) => {
  void ready.then(async ({ vault }) => {
    const reason = lockReasonFor(state as IdleState, await vault.getSettings());
    if (reason && (await vault.isUnlocked())) await vault.lock(reason);
  });
});

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name !== AUTOLOCK_ALARM) return;
  void ready.then(async ({ vault }) => {
    if (!(await vault.isUnlocked())) return;
    const reason = await checkIdleNow(await vault.getSettings());
    if (reason) await vault.lock(reason);
  });
});

chrome.windows.onRemoved.addListener(() => {
  void ready.then(async ({ vault }) => {
    if (!(await vault.getSettings()).lockOnLastWindowClosed) return;
    if ((await vault.isUnlocked()) && (await noWindowsLeft())) await vault.lock('windows-closed');
  });
});
