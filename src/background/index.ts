/**
 * The service worker's composition root. Every listener is registered at the top level (MV3
 * wakes the worker for an event only if its listener exists at start-up); each awaits `ready`.
 */
import { toBase64 } from '../core/bytes.ts';
import { PageError, PageErrorCode, STREAM_PORT, type StreamMessage } from '../core/page-api.ts';
import { RateLimiter } from '../core/rate-limit.ts';
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
import { ConsentQueue } from './consent.ts';
import { openKeyholeDB } from './db.ts';
import { GrantStore } from './grant-store.ts';
import { PageApiService, pageCaller } from './page-api.ts';
import { emit, rememberDocument } from './page-events.ts';
import { dispatch, handlers, isOwnPage } from './rpc.ts';
import { chromeSessionStore } from './session.ts';
import { applyDeferredUpdate, chromeUpdatePending, onUpdateAvailable, type UpdateDeps } from './update.ts';
import { VaultService } from './vault-service.ts';

const EXTENSION_ORIGIN = new URL(chrome.runtime.getURL('')).origin;
const CONSENT_PAGE = 'src/popup/consent.html';

const consent = new ConsentQueue({
  open: async (requestId) => {
    const w = await chrome.windows.create({
      url: `${CONSENT_PAGE}?request=${requestId}`,
      type: 'popup',
      width: 460,
      height: 560,
      focused: true,
    });
    return w?.id ?? -1;
  },
  close: (windowId) => chrome.windows.remove(windowId),
});

const ready = (async () => {
  const db = await openKeyholeDB();
  const version = chrome.runtime.getManifest().version;
  const vault = new VaultService(db, chromeSessionStore(), version);
  const grants = new GrantStore(db);
  const hasGrant = async (origin: string) => (await grants.forOrigin(origin)).length > 0;
  const grantsChanged = (origin: string) => void emit('grantsChanged', (o) => o === origin);
  const update: UpdateDeps = { isUnlocked: () => vault.isUnlocked(), pending: chromeUpdatePending, reload: () => chrome.runtime.reload() };
  vault.onLocked = () => {
    consent.denyAll();
    void emit('lock', hasGrant);
    void clearClipboardNowIfPending().finally(() => applyDeferredUpdate(update));
  };
  vault.onUnlocked = () => void emit('unlock', hasGrant);
  vault.onSettingsChanged = applyIdleSettings;
  const table = handlers(vault, { scheduleClipboardClear, consent, grants, grantsChanged });
  const pageApi = new PageApiService(
    { vault, grants, consent, version, grantsChanged, limiter: new RateLimiter(20, 10), fetch: (r) => fetch(r), now: Date.now },
    vault,
    grants,
  );
  await ensureAutolockAlarm();
  applyIdleSettings(await vault.getSettings());
  return { vault, table, update, pageApi };
})();

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  // Web pages, through the content-script bridge: the page provider API.
  if ((message as { kh?: unknown } | null)?.kh === 'page') {
    const caller = pageCaller(sender, chrome.runtime.id);
    if (!caller) {
      sendResponse({ ok: false, error: new PageError(PageErrorCode.unauthorized).toBody() });
      return false;
    }
    const { method, params } = message as { method?: unknown; params?: unknown };
    void ready
      .then(async ({ pageApi }) => {
        await rememberDocument(caller);
        sendResponse({ ok: true, result: await pageApi.handle(caller, method, params) });
      })
      .catch((e: unknown) => {
        if (!(e instanceof PageError)) console.error('keyhole: internal error in page API', e instanceof Error ? e.name : typeof e);
        sendResponse({ ok: false, error: (e instanceof PageError ? e : new PageError(PageErrorCode.internal)).toBody() });
      });
    return true;
  }
  // The extension's own pages: the typed RPC.
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

// Streamed keyhole_fetch: one port per call, opened by the content-script bridge.
chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== STREAM_PORT || !port.sender) return port.disconnect();
  const caller = pageCaller(port.sender, chrome.runtime.id);
  const post = (m: StreamMessage) => port.postMessage(m);
  if (!caller) {
    post({ error: new PageError(PageErrorCode.unauthorized).toBody() });
    return port.disconnect();
  }
  const abort = new AbortController();
  port.onDisconnect.addListener(() => abort.abort());
  let started = false;
  port.onMessage.addListener((message: { params?: unknown }) => {
    if (started) return;
    started = true;
    void ready
      .then(async ({ pageApi }) => {
        await rememberDocument(caller);
        await pageApi.stream(caller, message?.params, abort.signal, {
          head: (head) => post({ head }),
          chunk: (bytes) => post({ chunk: toBase64(bytes) }),
        });
        post({ end: true });
      })
      .catch((e: unknown) => {
        if (abort.signal.aborted) return; // the page went away; nobody to tell
        post({ error: (e instanceof PageError ? e : new PageError(PageErrorCode.internal)).toBody() });
      })
      .finally(() => {
        if (!abort.signal.aborted) port.disconnect();
      });
  });
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

chrome.windows.onRemoved.addListener((windowId) => {
  consent.windowClosed(windowId);
  void ready.then(async ({ vault }) => {
    if (!(await vault.getSettings()).lockOnLastWindowClosed) return;
    if ((await vault.isUnlocked()) && (await noWindowsLeft())) await vault.lock('windows-closed');
  });
});
