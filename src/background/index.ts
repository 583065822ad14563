/**
 * The service worker's composition root. Every listener is registered at the top level (MV3
 * wakes the worker for an event only if its listener exists at start-up); each awaits `ready`.
 */

import {
  type CredentialChangedEvent,
  LANE_PAGE,
  type LaneOffer,
  PAGE_PORT,
  PageError,
  PageErrorCode,
  STREAM_PORT,
  type StreamMessage,
} from '../core/agents/page-api.ts';
import { IMPORT_PORT, type SyncStatus } from '../core/api.ts';
import { toBase64 } from '../core/bytes.ts';
import { isCoreError } from '../core/errors.ts';
import { RateLimiter } from '../core/rate-limit.ts';
import { expiryWarning } from '../core/vault/versions.ts';
import { testRequest } from './agents/broker.ts';
import { ConsentQueue, type PromptTimes } from './agents/consent.ts';
import { GrantStore } from './agents/grant-store.ts';
import { InFlight } from './agents/inflight.ts';
import { keepAwakeUntil, stayAwake } from './agents/keepalive.ts';
import { type LaneAnswer, LaneTokens, serveLane } from './agents/lanes.ts';
import { PageApiService, type PageCaller, pageCaller } from './agents/page-api.ts';
import { emit, rememberDocument } from './agents/page-events.ts';
import { type Attribution, chromeTransparentDeps, TransparentRules } from './agents/transparent.ts';
import { AuditLog } from './audit/audit-log.ts';
import { clipboard } from './compat.ts';
import { CredentialCache } from './credentials/cache.ts';
import { type CredentialChange, Credentials, CredentialUnavailable } from './credentials/credentials.ts';
import { describeLogin, distantToken } from './credentials/distant.ts';
import { LeaseTracker } from './credentials/leases.ts';
import { TeamTier } from './credentials/team-tier.ts';
import { TokenRequestRules } from './credentials/token-origin.ts';
import { openKeyholeDB } from './db.ts';
import { RpcError } from './errors.ts';
import { dispatch, handlers, isOwnPage } from './rpc.ts';
import { TeamAdmin } from './sync/admin.ts';
import { SyncService } from './sync/sync-service.ts';
import { SyncError } from './sync/vault-client.ts';
import {
  AUTOLOCK_ALARM,
  applyIdleSettings,
  checkIdleNow,
  ensureAutolockAlarm,
  type IdleState,
  lockReasonFor,
  noWindowsLeft,
} from './vault/autolock.ts';
import { CLIPBOARD_ALARM } from './vault/clipboard.ts';
import { serveImport } from './vault/import-port.ts';
import { chromeSessionStore } from './vault/session.ts';
import { applyDeferredUpdate, chromeUpdatePending, onUpdateAvailable, type UpdateDeps } from './vault/update.ts';
import { VaultService } from './vault/vault-service.ts';

const EXTENSION_ORIGIN = new URL(chrome.runtime.getURL('')).origin;
const CONSENT_PAGE = 'src/popup/consent.html';
const LANE_URL = chrome.runtime.getURL(LANE_PAGE);
const laneTokens = new LaneTokens(() => Date.now());
const GRANT_EXPIRY_ALARM = 'keyhole.grantExpiry';
/** wakes the worker shortly before a transparent grant expires, so a timer can meet the instant */
const RULE_EXPIRY_ALARM = 'keyhole.ruleExpiry';
const RULE_EXPIRY_LEAD_MS = 50_000;
const UNSUSPEND_ALARM = 'keyhole.unsuspend';
/**
 * Backs up the refresher's timers, which die with the worker: wakes it at the next refresh point
 * of a minted credential in use (a packed extension's alarms fire at most every 30 s; the timers
 * meet the point exactly while the worker lives).
 */
const CREDENTIAL_ALARM = 'keyhole.credentials';
/** destroys values past their grace and expired secrets' values (locked or not: no key is needed to delete) */
const DESTROY_ALARM = 'keyhole.destroy';
/** re-reads expiries hourly, so the toolbar badge warns 7 days and 1 day ahead */
const EXPIRY_WARNING_ALARM = 'keyhole.expiryWarning';

/**
 * The toolbar badge: how many secrets expire within 7 days (red within 1 day). Read from the
 * expiry each stored secret keeps in clear, so it is right while locked too.
 */
async function updateBadge(db: Awaited<ReturnType<typeof openKeyholeDB>>): Promise<void> {
  const now = Date.now();
  const warnings = (await db.getAll('secrets')).map((s) =>
    s.expiresAt === undefined ? null : expiryWarning({ expiresAt: s.expiresAt }, now),
  );
  const soon = warnings.filter((w) => w === 'soon' || w === 'urgent');
  const urgent = soon.includes('urgent');
  await chrome.action.setBadgeText({ text: soon.length > 0 ? String(soon.length) : '' });
  if (soon.length > 0) await chrome.action.setBadgeBackgroundColor({ color: urgent ? '#b3261e' : '#a15c00' });
  await chrome.action.setTitle({
    title: soon.length > 0 ? `Keyhole — ${soon.length} secret(s) expire within ${urgent ? 'a day' : '7 days'}` : 'Keyhole',
  });
}
/** pull (and push what is pending) while the worker sleeps: an open event stream does not keep it alive */
const SYNC_ALARM = 'keyhole.sync';
/** the options page's port for live sync status */
const SYNC_PORT = 'keyhole-sync';
/** options pages watching sync, and the event stream followed for them while any is open */
const syncWatchers = new Set<chrome.runtime.Port>();
let watching: AbortController | undefined;
/** transparent grants over their rate: their rules are withdrawn until the alarm */
const suspended = new Set<string>();
/** The audit log could not commit its last write: transparent rules are withheld until it can. */
let auditFailing = false;
/** brokered calls in flight: lock and revoke end them; streams are capped per origin and grant */
/** the distant vault's leases this device holds (ids only), kept across a restart */
const LEASES_KEY = 'keyhole.leases';
const inflight = new InFlight();
let ruleExpiry: ReturnType<typeof setTimeout> | undefined;

/**
 * Transparent rules live at the top level: a navigation's withdrawal needs only what is
 * installed, never the vault, so it does not wait for `ready` (a worker just woken by the
 * navigation would otherwise open IndexedDB first).
 */
const rules = new TransparentRules({
  ...chromeTransparentDeps(),
  vault: {
    isUnlocked: async () => (await ready).vault.isUnlocked(),
    secretById: async (id) => (await ready).vault.secretById(id),
  },
  credential: async (secret, grant) => {
    const { credentials } = await ready;
    try {
      return await credentials.use(secret, undefined, grant.narrow);
    } catch (e) {
      // no rule until a token can be had (or ever, once expired); the other grants keep theirs
      if (e instanceof CredentialUnavailable || isCoreError(e, 'expired')) return null;
      throw e;
    }
  },
  grants: { all: async () => (await ready).grants.all() },
  suspended: () => suspended,
  halted: () => auditFailing,
  now: Date.now,
  scheduleExpiry: (at) => {
    clearTimeout(ruleExpiry);
    if (at === null) return;
    const delay = Math.max(0, at - Date.now());
    if (delay <= RULE_EXPIRY_LEAD_MS + 10_000) {
      ruleExpiry = setTimeout(() => void expireGrants(), delay);
      keepAwakeUntil(at + 1000);
    } else {
      void chrome.alarms.create(RULE_EXPIRY_ALARM, { when: at - RULE_EXPIRY_LEAD_MS });
    }
  },
});

/** Origins holding a live transparent grant. */
async function transparentOrigins(): Promise<ReadonlySet<string>> {
  return new Set((await (await ready).grants.all()).filter((g) => g.mode === 'transparent').map((g) => g.origin));
}

/** Expired grants: rules out first, then purged, audited and announced. */
async function expireGrants(): Promise<void> {
  const due = rules.expiredNow();
  if (due.length > 0) await rules.withdrawGrants(due);
  const { grants, audit, scheduleGrantAlarm, releaseUngranted } = await ready;
  const dropped = await grants.purge();
  for (const g of dropped)
    audit({ kind: 'grant.revoked', correlationId: g.id, origin: g.origin, secret: g.secret, mode: g.mode, reason: 'expired' });
  for (const origin of new Set(dropped.map((g) => g.origin))) void emit('grantsChanged', (o) => o === origin);
  await rules.refresh();
  await scheduleGrantAlarm();
  if (dropped.length > 0) await releaseUngranted();
}

/**
 * The alarm backstop: every minted credential a live grant holds is asked for, which refreshes
 * it if due (a restarted worker reads its token from the cache tier and learns its refresh point),
 * and the transparent rules are rebuilt with what is current.
 */
async function wakeCredentials({ vault, grants, credentials }: Awaited<typeof ready>): Promise<void> {
  if (!(await vault.isUnlocked())) return;
  // brokered grants' credentials are minted on their next use; a transparent rule holds its token now
  for (const g of (await grants.all()).filter((g) => g.mode === 'transparent')) {
    const secret = await vault.secretById(g.secretId);
    if (secret && secret.kind !== 'static') await credentials.use(secret, undefined, g.narrow).catch(() => {});
  }
  await rules.refresh();
  const next = credentials.nextRefresh();
  if (next !== undefined) await chrome.alarms.create(CREDENTIAL_ALARM, { when: Math.max(next, Date.now() + 1000) });
}

/** when consent prompts were opened, so a restarted worker keeps the limits */
const PROMPTS_KEY = 'keyhole.prompts';
const consent = new ConsentQueue(
  {
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
    // the last focused browser window's active tab (a consent popup has focus while it is shown)
    activeTab: async () => {
      const w = await chrome.windows.getLastFocused({ windowTypes: ['normal'] });
      return w.id === undefined ? undefined : (await chrome.tabs.query({ active: true, windowId: w.id }))[0]?.id;
    },
  },
  {
    get: async () => (await chrome.storage.session.get(PROMPTS_KEY))[PROMPTS_KEY] as PromptTimes | undefined,
    set: (times) => chrome.storage.session.set({ [PROMPTS_KEY]: times }),
  },
);

const ready = (async () => {
  const db = await openKeyholeDB();
  const version = chrome.runtime.getManifest().version;
  const vault = new VaultService(db, chromeSessionStore(), version);
  const grants = new GrantStore(db);
  const auditLog = new AuditLog(db, () => vault.auditKey());
  auditLog.onHealth((healthy) => {
    auditFailing = !healthy;
    console.error(healthy ? 'keyhole: the audit writes again' : 'keyhole: the audit cannot write; requests are refused until it can');
    void rules.refresh();
  });
  const audit = (r: Parameters<AuditLog['append']>[0]) => {
    void auditLog.append(r).catch((e: unknown) => console.error('keyhole: audit append failed', e instanceof Error ? e.name : typeof e));
  };
  const hasGrant = async (origin: string) => (await grants.forOrigin(origin)).length > 0;
  const tokenRules = new TokenRequestRules({ dnr: chrome.declarativeNetRequest, extensionId: chrome.runtime.id });
  const credentials = new Credentials({
    vault,
    cache: new CredentialCache(db, () => vault.credentialsKey()),
    fetch: (url, init) => fetch(url, init),
    now: Date.now,
    random: Math.random,
    audit,
    beforeTokenRequest: (url) => tokenRules.ensure(url),
    // `sync` is made below; the team tier asks it only once a shared credential is minted
    team: new TeamTier({ team: () => sync.teamHandle(), now: Date.now }),
    syncNow: async () => {
      await sync.syncNow();
    },
    // taken from the team tier: audited as a token request answered by the distant vault's cache
    onShared: (secret, cause) =>
      void sync.server().then((server) =>
        audit({
          kind: 'token.request',
          correlationId: cause ?? crypto.randomUUID(),
          secret: secret.name,
          host: server ? new URL(server).host : '',
          decision: 'allowed',
          reason: 'team-cache',
        }),
      ),
    onChange: (id, what) => void credentialChanged(id, what),
    // `sync` is made below; these run only once a distant credential is used
    distant: {
      origin: () => sync.server(),
      token: (c) =>
        distantToken(async () => {
          const t = await sync.engineToken(c.engine, c.role, c.ttlSeconds);
          if (t.lease) await leases.add(t.lease.id); // revoked when replaced or ungranted, at lock, or at the next unlock after a crash
          return t;
        }),
      renew: (id, ttlSeconds) => distantToken(() => sync.renewLease(id, ttlSeconds)),
      release: (id, afterMs) => leases.release(id, afterMs),
    },
  });
  // one notice per change, however many secrets it touched (an import of thousands is one)
  vault.onSecretChanged = (ids) => {
    if (ids === null) void credentials.changed(null);
    else for (const id of ids) void credentials.changed(id);
    const touched = ids === null ? null : new Set(ids);
    // a new current value (a promotion, a roll back, an edit) goes on the rules in one swap
    void grants.all().then((all) => {
      if (all.some((g) => g.mode === 'transparent' && (touched === null || touched.has(g.secretId)))) void rules.refresh();
    });
    void scheduleDestruction();
  };
  /** values past their grace and expired secrets are destroyed at the time, by an alarm (and a timer when it is near) */
  let destroyTimer: ReturnType<typeof setTimeout> | undefined;
  const scheduleDestruction = async () => {
    await updateBadge(db);
    const at = await vault.nextDestruction();
    clearTimeout(destroyTimer);
    if (at === undefined) return void chrome.alarms.clear(DESTROY_ALARM);
    await chrome.alarms.create(DESTROY_ALARM, { when: Math.max(at, Date.now() + 1000) });
    if (at - Date.now() < 60_000) destroyTimer = setTimeout(() => void destroyNow(), Math.max(0, at - Date.now()));
  };
  const destroyNow = async () => {
    for (const d of await vault.destroyDue()) {
      const name = (await vault.secretById(d.id).catch(() => null))?.name;
      const base = { correlationId: crypto.randomUUID(), ...(name ? { secret: name } : {}) };
      for (const n of d.values) audit({ kind: 'secret.destroyed', ...base, reason: `v${n}.grace-ended` });
      if (d.expired) {
        audit({ kind: 'secret.expired', ...base });
        void tellGranted(d.id, 'expired');
      }
    }
    // the rules of what was destroyed were rebuilt by the vault's change notice (onSecretChanged)
    await scheduleDestruction();
  };
  /** a minted credential changed: transparent rules carry the new token (one atomic swap); granted pages hear of a failure */
  const credentialChanged = async (secretId: string, what: CredentialChange) => {
    const mine = (await grants.all()).filter((g) => g.secretId === secretId);
    if (mine.some((g) => g.mode === 'transparent')) void rules.refresh();
    const next = credentials.nextRefresh();
    if (next !== undefined) void chrome.alarms.create(CREDENTIAL_ALARM, { when: Math.max(next, Date.now() + 1000) });
    if (what !== 'refreshed') void tellGranted(secretId, what);
  };
  /** the origins holding a grant for a secret hear that its credential changed (a routine refresh is not announced) */
  const tellGranted = async (secretId: string, change: CredentialChangedEvent['change']) => {
    const mine = (await grants.all()).filter((g) => g.secretId === secretId);
    const origins = new Set(mine.map((g) => g.origin));
    if (mine[0]) await emit('credentialChanged', (o) => origins.has(o), { secret: mine[0].secret, change });
  };
  /** the alarm that purges and audits expired grants (transparent rules have their own timer) */
  /** a distant credential no live grant holds any more: its lease is revoked (a leaked key dies with it) */
  const releaseUngranted = async () => {
    const held = new Set((await grants.all()).map((g) => g.secretId));
    await credentials.releaseUngranted((id) => held.has(id));
  };
  const scheduleGrantAlarm = async () => {
    const next = Math.min(...(await grants.all()).map((g) => g.expiresAt));
    if (Number.isFinite(next)) await chrome.alarms.create(GRANT_EXPIRY_ALARM, { when: Math.max(next, Date.now() + 1000) });
  };
  const grantsChanged = async (origin: string, revoked: readonly string[] = []) => {
    if (revoked.length > 0) {
      inflight.endGrants(new Set(revoked));
      await rules.withdrawGrants(revoked); // in force before the caller hears back
      void rules.refresh();
      void releaseUngranted();
    } else {
      await rules.refresh(); // a new transparent grant's rules are installed before the caller hears back
    }
    void emit('grantsChanged', (o) => o === origin);
    void scheduleGrantAlarm();
  };
  const update: UpdateDeps = { isUnlocked: () => vault.isUnlocked(), pending: chromeUpdatePending, reload: () => chrome.runtime.reload() };
  const sync = new SyncService(db, vault);
  const leases = new LeaseTracker(
    {
      get: async () => ((await chrome.storage.local.get(LEASES_KEY))[LEASES_KEY] as string[] | undefined) ?? [],
      set: (ids) => chrome.storage.local.set({ [LEASES_KEY]: [...ids] }),
    },
    (id) =>
      sync.revokeLease(id).catch((e: unknown) => {
        if (e instanceof SyncError && e.code === 'not-found') return; // gone already
        throw e;
      }),
  );
  sync.onChange = () => {
    if (syncWatchers.size > 0) void sync.status().then(broadcastSync);
  };
  let retry: ReturnType<typeof setTimeout> | undefined;
  const runSync = async () => {
    clearTimeout(retry);
    const s = await sync.syncNow();
    // while the worker lives, retry at the backoff; the alarm covers a worker that has gone
    if (s.nextAttemptAt !== undefined) retry = setTimeout(() => void runSync(), Math.max(1000, s.nextAttemptAt - Date.now()));
  };
  let soon: ReturnType<typeof setTimeout> | undefined;
  const secretsChanged = () => {
    clearTimeout(soon);
    soon = setTimeout(() => void runSync(), 300);
  };
  vault.onLocking = async () => {
    inflight.endAll();
    await rules.clearAll(); // ahead of anything queued: no request carries a key once lock resolves
    await credentials.forget(); // minted tokens: the cache tier is wiped at lock
    await leases.revokeAll(); // the distant vault's leases end with the session (at most 3 s; else at the next unlock)
  };
  vault.onLocked = (reason) => {
    sync.forget();
    clearTimeout(retry);
    audit({ kind: 'lock', correlationId: crypto.randomUUID(), reason });
    consent.denyAll();
    void emit('lock', hasGrant);
    void clipboard.clearNowIfPending().finally(() => applyDeferredUpdate(update));
  };
  vault.onUnlocked = () => {
    // records written while locked join the chain now, then the unlock itself
    void auditLog.chainPending().then(() => audit({ kind: 'unlock', correlationId: crypto.randomUUID() }));
    void rules.refresh();
    void emit('unlock', hasGrant);
    void runSync();
    void leases.revokeAll(10_000); // leases a crash left behind
  };
  const limiter = RateLimiter.perMinute((await vault.getSettings()).requestsPerMinute);
  vault.onSettingsChanged = (settings) => {
    applyIdleSettings(settings);
    limiter.setPerMinute(settings.requestsPerMinute);
  };
  const table = handlers(vault, {
    scheduleClipboardClear: (seconds) => clipboard.schedule(seconds),
    consent,
    grants,
    grantsChanged,
    auditLog,
    audit,
    sync,
    admin: new TeamAdmin(sync),
    distantLogin: async (s) => {
      const c = s.distant;
      if (!c) throw new RpcError('bad-input', 'not a distant secret');
      const got = await sync.engineCredential(c.engine, c.role, c.ttlSeconds);
      if (typeof got.leaseId === 'string') await leases.add(got.leaseId);
      return describeLogin(got);
    },
    credentials,
    secretsChanged,
    testValue: (secret, value, url) => testRequest((r, i) => fetch(r, i), secret, value, url),
    valuesChanged: async (secretId, change) => {
      await rules.refresh(); // the new current value is on the rules when the person hears back
      void tellGranted(secretId, change);
    },
  });
  const pageApi = new PageApiService(
    {
      vault,
      grants,
      credentials,
      consent,
      version,
      grantsChanged,
      audit,
      commitAudit: (r) => auditLog.commit(r),
      limiter,
      inflight,
      fetch: (r) => fetch(r),
      now: Date.now,
    },
    vault,
    grants,
  );
  await ensureAutolockAlarm();
  applyIdleSettings(await vault.getSettings());
  // a restarted worker restores the rules while unlocked (and clears them while locked)
  void rules.refresh().then(scheduleGrantAlarm);
  if (!(await chrome.alarms.get(SYNC_ALARM))) await chrome.alarms.create(SYNC_ALARM, { periodInMinutes: 1 });
  if (!(await chrome.alarms.get(EXPIRY_WARNING_ALARM))) await chrome.alarms.create(EXPIRY_WARNING_ALARM, { periodInMinutes: 60 });
  void sync.due().then((due) => {
    if (due) void runSync();
  }); // pull when the worker wakes
  void destroyNow(); // what came due while the worker slept, then the next alarm
  return {
    vault,
    grants,
    credentials,
    table,
    update,
    pageApi,
    limiter,
    audit,
    sync,
    runSync,
    scheduleGrantAlarm,
    releaseUngranted,
    destroyNow,
    secretsChanged,
  };
})();

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
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

/** One page request, from the page port or a lane, answered through `answer`. */
function servePage(caller: PageCaller | null, method: unknown, params: unknown, answer: LaneAnswer): void {
  if (!caller) {
    answer({ ok: false, error: new PageError(PageErrorCode.unauthorized).toBody() });
    return;
  }
  void ready
    .then(async ({ pageApi }) => {
      await rememberDocument(caller);
      answer({ ok: true, result: await pageApi.handle(caller, method, params) });
    })
    .catch((e: unknown) => {
      if (!(e instanceof PageError)) console.error('keyhole: internal error in page API', e instanceof Error ? e.name : typeof e);
      const error = e instanceof PageError ? e : new PageError(PageErrorCode.internal);
      // keyhole_fetch audits its own outcome and a refused grant is a grant.denied record; the rest land here
      if (method !== 'keyhole_fetch' && error.code !== PageErrorCode.rejected) {
        void ready.then(({ audit }) =>
          audit({
            kind: 'error',
            correlationId: crypto.randomUUID(),
            origin: caller.origin,
            tabId: caller.tabId,
            status: error.code,
            decision: 'denied',
          }),
        );
      }
      answer({ ok: false, error: error.toBody() });
    });
}

// Web pages, through the content-script bridge: the page provider API on a long-lived port.
chrome.runtime.onConnect.addListener((port) => {
  if (port.name === SYNC_PORT) {
    watchSync(port);
    return;
  }
  if (port.name === IMPORT_PORT) {
    if (!port.sender || !isOwnPage(port.sender, chrome.runtime.id, EXTENSION_ORIGIN)) return port.disconnect();
    void ready.then(({ vault, secretsChanged }) => serveImport(port, vault, secretsChanged));
    return;
  }
  if (port.name !== PAGE_PORT) {
    if (port.name !== STREAM_PORT) port.disconnect(); // nothing else talks to the worker on a port
    return;
  }
  const caller = port.sender ? pageCaller(port.sender, chrome.runtime.id) : null;
  const post = (m: unknown) => {
    try {
      port.postMessage(m);
    } catch {
      // the page went away before the answer
    }
  };
  port.onMessage.addListener((message: { id?: unknown; method?: unknown; params?: unknown; lane?: unknown }) => {
    if (message?.lane === true) return post({ lane: caller ? laneTokens.mint(caller) : null } satisfies LaneOffer);
    const id = message?.id;
    if (typeof id !== 'string' || id.length > 64) return;
    servePage(caller, message.method, message.params, (body) => post({ id, ...body }));
  });
});

// A lane: our web-accessible frame hands over a MessagePort and the token the content script got
// on its page port (lanes.ts). Only that frame's messages are taken.
addEventListener('message', (event: Event) => {
  const ev = event as MessageEvent & { source: { url?: unknown } | null };
  const port = ev.ports[0];
  if (!port || ev.ports.length !== 1) return;
  const caller = ev.source?.url === LANE_URL ? laneTokens.claim(ev.data) : null;
  if (!caller) return port.close();
  serveLane(port, (method, params, answer) => servePage(caller, method, params, answer), stayAwake);
});

// Streamed keyhole_fetch: one port per call, opened by the content-script bridge.
chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== STREAM_PORT) return;
  if (!port.sender) {
    port.disconnect();
    return;
  }
  const caller = pageCaller(port.sender, chrome.runtime.id);
  const post = (m: StreamMessage) => port.postMessage(m);
  if (!caller) {
    post({ error: new PageError(PageErrorCode.unauthorized).toBody() });
    port.disconnect();
    return;
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
  if (alarm.name === CLIPBOARD_ALARM) {
    void clipboard.onAlarm();
    return;
  }
  if (alarm.name === GRANT_EXPIRY_ALARM || alarm.name === UNSUSPEND_ALARM || alarm.name === RULE_EXPIRY_ALARM) {
    if (alarm.name === UNSUSPEND_ALARM) suspended.clear();
    void expireGrants(); // and a refresh, which sets the timer for an expiry that is now near
    return;
  }
  if (alarm.name === DESTROY_ALARM || alarm.name === EXPIRY_WARNING_ALARM) {
    void ready.then(({ destroyNow }) => destroyNow());
    return;
  }
  if (alarm.name === CREDENTIAL_ALARM) {
    void ready.then(wakeCredentials);
    return;
  }
  if (alarm.name === SYNC_ALARM) {
    void ready.then(async ({ sync, runSync }) => {
      if (await sync.due()) await runSync();
    });
    return;
  }
  if (alarm.name !== AUTOLOCK_ALARM) return;
  void ready.then(async ({ vault }) => {
    if (!(await vault.isUnlocked())) return;
    const reason = await checkIdleNow(await vault.getSettings());
    if (reason) await vault.lock(reason);
  });
});

// Transparent rules follow the granted origin's tabs. A tab leaving a granted origin is taken out
// as its navigation starts; one arriving is added when it commits. Same-document URL changes
// (history.replaceState in a loop) are not navigations and cost nothing.
chrome.webNavigation.onBeforeNavigate.addListener((d) => {
  if (d.frameId === 0) void rules.navigating(d.tabId, d.url);
});
chrome.webNavigation.onCommitted.addListener((d) => {
  if (d.frameId !== 0) return;
  consent.tabGone(d.tabId, d.documentId); // the document that asked is gone: its prompt cannot grant to this one
  void rules.committed(d.tabId, d.url, transparentOrigins);
});
chrome.webNavigation.onErrorOccurred.addListener((d) => {
  if (d.frameId === 0) void rules.navigationFailed(d.tabId);
});
chrome.tabs.onRemoved.addListener((tabId) => {
  consent.tabGone(tabId);
  void rules.tabClosed(tabId);
});
chrome.tabs.onReplaced.addListener(() => void rules.refresh());

// Transparent requests are observed (DNR cannot count or audit). A request is a use the moment it
// starts under a rule (onBeforeRequest: Chrome decides a request's DNR actions then, and one
// that waits for a connection still carries the key of a rule withdrawn meanwhile; measured),
// whatever becomes of it after: a page aborting its requests still spent them.
// Its audit record is written when it ends, with its status, or after TRANSPARENT_RECORD_MS if
// it is still running, so a long stream cannot outlive its record.
const TRANSPARENT_RECORD_MS = 20_000;
const TRANSPARENT_FILTER = { urls: ['http://*/*', 'https://*/*'], types: ['xmlhttprequest' as chrome.webRequest.ResourceType] };
type TransparentRecord = Parameters<AuditLog['append']>[0];
const transparentRequests = new Map<string, { record: TransparentRecord; started: number; written: boolean }>();
let transparentSweep: ReturnType<typeof setInterval> | undefined;

chrome.webRequest.onBeforeRequest.addListener((details) => {
  if (details.tabId < 0 || !details.initiator) return; // the worker's own brokered calls, navigations
  if (!rules.mayBeCovered(details)) return; // most requests: no transparent rule covers them
  // attributed now, from the rules as they were when it went out: the request before it may
  // use the grant up and withdraw them in a moment
  const hit = rules.attributeNow(details);
  if (hit === null) return;
  void (hit ? Promise.resolve(hit) : rules.attribute(details)).then((h) => (h ? transparentUse(details, h) : undefined));
}, TRANSPARENT_FILTER);
chrome.webRequest.onCompleted.addListener((d) => void transparentEnd(d, d.statusCode), TRANSPARENT_FILTER);
chrome.webRequest.onErrorOccurred.addListener((d) => void transparentEnd(d, undefined, d.error), TRANSPARENT_FILTER);

/** What the audit records of a transparent request that went out under a grant's rule. */
/** The fields of a webRequest event the transparent audit reads. */
type ObservedRequest = Pick<chrome.webRequest.WebRequestDetails, 'requestId' | 'url' | 'tabId' | 'method' | 'initiator' | 'timeStamp'>;

function transparentRecord(details: ObservedRequest, hit: Attribution): TransparentRecord {
  const url = new URL(details.url);
  return {
    kind: 'request',
    correlationId: details.requestId,
    // a document of another port or subdomain in a granted tab got the key too (DNR cannot tell them apart): named as itself
    origin: hit.foreign ? details.initiator : hit.installed.origin,
    tabId: details.tabId,
    secret: hit.installed.secret,
    mode: 'transparent',
    method: details.method,
    host: url.host,
    path: url.pathname,
    decision: 'allowed',
    ...(hit.foreign ? { reason: 'other-document' } : {}),
  };
}

async function transparentUse(details: ObservedRequest, hit: Attribution): Promise<void> {
  const grantId = hit.installed.grantId;
  transparentRequests.set(details.requestId, { record: transparentRecord(details, hit), started: Date.now(), written: false });
  transparentSweep ??= setInterval(sweepTransparent, TRANSPARENT_RECORD_MS / 4);
  const { grants, limiter, vault, credentials } = await ready;
  const secret = await vault.findSecret(hit.installed.secret);
  const narrow = (await grants.all()).find((g) => g.id === grantId)?.narrow;
  if (secret) await credentials.touched(secret, narrow); // a minted token in use is refreshed ahead of its expiry
  const live = await grants.use(grantId);
  if (!limiter.take(grantId, Date.now())) {
    suspended.add(grantId);
    await rules.withdrawGrants([grantId]);
    await chrome.alarms.create(UNSUSPEND_ALARM, { when: Date.now() + 60_000 });
  } else if (!live || !(await grants.all()).some((g) => g.id === grantId)) {
    await rules.withdrawGrants([grantId]); // that was its last use (or it had none left)
  }
}

async function transparentEnd(details: ObservedRequest, status?: number, error?: string): Promise<void> {
  let entry = transparentRequests.get(details.requestId);
  transparentRequests.delete(details.requestId);
  if (entry?.written) return;
  if (!entry) {
    // a worker stopped while the request ran forgot it; the use was counted then, the record is written now
    if (details.tabId < 0 || !details.initiator || !rules.mayBeCovered(details)) return;
    const hit = await rules.attribute(details);
    if (!hit) return;
    entry = { record: transparentRecord(details, hit), started: details.timeStamp, written: false };
  }
  const { audit } = await ready;
  const failed = error !== undefined;
  audit({
    ...entry.record,
    ...(status !== undefined ? { status } : {}),
    latencyMs: Date.now() - entry.started,
    ...(failed ? { decision: 'failed', reason: error.includes('ABORTED') ? 'aborted' : 'net-error' } : {}),
  });
}

/** Records of transparent requests still running after TRANSPARENT_RECORD_MS are written now, without a status. */
function sweepTransparent(): void {
  const now = Date.now();
  for (const [id, entry] of transparentRequests) {
    // written long ago and never heard of again (an end event that did not come): forgotten
    if (entry.written && now - entry.started > 10 * 60_000) transparentRequests.delete(id);
    if (entry.written || now - entry.started < TRANSPARENT_RECORD_MS) continue;
    entry.written = true;
    void ready.then(({ audit }) => audit({ ...entry.record, reason: entry.record.reason ?? 'in-flight' }));
  }
  if (transparentRequests.size === 0) {
    clearInterval(transparentSweep);
    transparentSweep = undefined;
  }
}

chrome.windows.onRemoved.addListener((windowId) => {
  consent.windowClosed(windowId);
  void ready.then(async ({ vault }) => {
    if (!(await vault.getSettings()).lockOnLastWindowClosed) return;
    if ((await vault.isUnlocked()) && (await noWindowsLeft())) await vault.lock('windows-closed');
  });
});

/**
 * Open options pages watching sync: each gets the status on every change, and while any is
 * open the worker follows the distant vault's event stream (one stream, a run on each new head).
 */
function watchSync(port: chrome.runtime.Port): void {
  if (!port.sender || !isOwnPage(port.sender, chrome.runtime.id, EXTENSION_ORIGIN)) {
    port.disconnect();
    return;
  }
  syncWatchers.add(port);
  port.onDisconnect.addListener(() => {
    syncWatchers.delete(port);
    if (syncWatchers.size === 0) watching?.abort();
  });
  void ready.then(async ({ sync }) => {
    broadcastSync(await sync.status()); // the new page's first status (the others lose nothing by it)
    if (watching && !watching.signal.aborted) return; // the stream is already followed
    const stop = new AbortController();
    watching = stop;
    // the stream ends when the server restarts or the session expires: open it again while watched
    while (!stop.signal.aborted) {
      // not linked or locked yet: look again soon; a stream that failed: back off a little
      const wait = await sync.watch(stop.signal).then(
        () => 1000,
        () => 5000,
      );
      if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, wait));
    }
  });
}

/** Every open options page hears of a status change. */
function broadcastSync(status: SyncStatus): void {
  for (const p of syncWatchers) {
    try {
      p.postMessage(status);
    } catch {
      syncWatchers.delete(p);
    }
  }
}
