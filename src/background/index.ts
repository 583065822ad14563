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
import { openKeyholeDB } from './db.ts';
import { dispatch, handlers, isOwnPage } from './rpc.ts';
import { chromeSessionStore } from './session.ts';
import { VaultService } from './vault-service.ts';

const EXTENSION_ORIGIN = new URL(chrome.runtime.getURL('')).origin;
const UPDATE_PENDING = 'keyhole.updatePending';

const ready = (async () => {
  const db = await openKeyholeDB();
  const vault = new VaultService(db, chromeSessionStore(), chrome.runtime.getManifest().version);
  vault.onLocked = () => {
    // An update waits while the vault is unlocked (a reload would drop the session); apply it now.
    void chrome.storage.local.get(UPDATE_PENDING).then((got) => {
      if (got[UPDATE_PENDING]) void chrome.storage.local.remove(UPDATE_PENDING).then(() => chrome.runtime.reload());
    });
  };
  vault.onSettingsChanged = applyIdleSettings;
  const table = handlers(vault);
  await ensureAutolockAlarm();
  applyIdleSettings(await vault.getSettings());
  return { vault, table };
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
  void ready.then(async ({ vault }) => {
    if ((await vault.status()).state === 'unlocked') await chrome.storage.local.set({ [UPDATE_PENDING]: true });
    else chrome.runtime.reload();
  });
});

chrome.idle.onStateChanged.addListener((state) => {
  void ready.then(async ({ vault }) => {
    const reason = lockReasonFor(state as IdleState, await vault.getSettings());
    if (reason && (await vault.status()).state === 'unlocked') await vault.lock(reason);
  });
});

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name !== AUTOLOCK_ALARM) return;
  void ready.then(async ({ vault }) => {
    if ((await vault.status()).state !== 'unlocked') return;
    const reason = await checkIdleNow(await vault.getSettings());
    if (reason) await vault.lock(reason);
  });
});

chrome.windows.onRemoved.addListener(() => {
  void ready.then(async ({ vault }) => {
    if (!(await vault.getSettings()).lockOnLastWindowClosed) return;
    if ((await vault.status()).state === 'unlocked' && (await noWindowsLeft())) await vault.lock('windows-closed');
  });
});
