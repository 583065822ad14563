/**
 * Routes the extension pages' RPC to the vault. Only the extension's own pages may call:
 * a content script, a web page or another extension gets 'forbidden' and nothing else.
 */

import { type ConsentDecision, callerOrigin, MAX_GRANT_TTL_SECONDS, newGrant } from '../core/agents/grants.ts';
import type { CredentialStatusView, LeaseView, Method, RpcRequest, RpcResponse, SecretSummary } from '../core/api.ts';
import { type AuditFilter, toCsv, toJsonl } from '../core/audit/audit.ts';
import { CoreError } from '../core/errors.ts';
import type { EnginePolicy } from '../core/sync/log.ts';
import type { ConsentQueue } from './agents/consent.ts';
import type { GrantStore } from './agents/grant-store.ts';
import { publicGrant } from './agents/page-api.ts';
import type { AuditLog } from './audit/audit-log.ts';
import { type Credentials, CredentialUnavailable } from './credentials/credentials.ts';
import { RpcError, toErrorBody } from './errors.ts';
import type { TeamAdmin } from './sync/admin.ts';
import type { SyncService } from './sync/sync-service.ts';
import { exportBackup } from './vault/backup.ts';
import type { VaultService } from './vault/vault-service.ts';

type Handler = (params: unknown) => Promise<unknown>;
type P = Record<string, unknown>;

const MAX_MESSAGE_BYTES = 64 * 1024;

function obj(params: unknown): P {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new RpcError('bad-input', 'params must be an object');
  return params as P;
}
const str = (p: P, k: string): string => {
  const v = p[k];
  if (typeof v !== 'string') throw new RpcError('bad-input', `${k} must be a string`);
  return v;
};
const kdfOf = (p: P) => {
  const k = p.kdf;
  if (k === undefined) return undefined;
  if (k !== 'argon2id' && k !== 'pbkdf2-sha256') throw new RpcError('bad-input', 'kdf must be argon2id or pbkdf2-sha256');
  return k;
};

export type Effects = {
  /** start the countdown that clears the clipboard (an offscreen document in the browser) */
  readonly scheduleClipboardClear: (seconds: number) => Promise<void>;
  readonly consent: ConsentQueue;
  readonly grants: GrantStore;
  /**
   * An origin's grants changed (`revoked`: these were taken away). Resolves once the change is in
   * force: transparent rules installed or withdrawn, a revoked grant's calls in flight ended.
   */
  readonly grantsChanged: (origin: string, revoked?: readonly string[]) => Promise<void>;
  readonly auditLog: AuditLog;
  readonly audit: (r: Parameters<AuditLog['append']>[0]) => void;
  readonly sync: SyncService;
  readonly admin: TeamAdmin;
  readonly credentials: Pick<Credentials, 'status' | 'refreshNow'>;
  /** a secret's current value changed (promotion, roll back): rules swapped, granted pages told */
  readonly valuesChanged: (secretId: string, change: 'rotated') => Promise<void>;
  /** one request with `value` on `secret`'s rule to `url`: its status (testing a staged value) */
  readonly testValue: (secret: SecretSummary, value: string, url: string) => Promise<number>;
  /** the person changed a secret: sync it soon */
  readonly secretsChanged: () => void;
  /** a distant secret's credential minted now for the person to read (its lease recorded, ended at lock) */
  readonly distantLogin: (secret: SecretSummary) => Promise<string>;
};

function auditFilter(x: unknown): AuditFilter {
  const p = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
  const f: Record<string, unknown> = {};
  for (const k of ['origin', 'secret', 'kind', 'decision'] as const) if (typeof p[k] === 'string' && p[k] !== '') f[k] = p[k];
  for (const k of ['since', 'until'] as const) if (typeof p[k] === 'number') f[k] = p[k];
  return f as AuditFilter;
}

function decisionOf(x: unknown): ConsentDecision {
  const d = x as { kind?: unknown; ttlSeconds?: unknown } | null;
  if (d?.kind === 'deny' || d?.kind === 'once') return { kind: d.kind };
  if (
    d?.kind === 'period' &&
    Number.isInteger(d.ttlSeconds) &&
    (d.ttlSeconds as number) >= 60 &&
    (d.ttlSeconds as number) <= MAX_GRANT_TTL_SECONDS
  ) {
    return { kind: 'period', ttlSeconds: d.ttlSeconds as number };
  }
  throw new RpcError('bad-input', 'decision must be deny, once or a period of 60 s to 30 days');
}

/** Leases as the distant vault lists them, checked field by field (it is not trusted to shape them). */
function leaseViews(rows: readonly Record<string, unknown>[]): LeaseView[] {
  const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : '');
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return rows.slice(0, 1000).map((r) => ({
    id: str(r.id),
    engine: str(r.engine),
    role: str(r.role),
    device: str(r.device),
    issued: num(r.issued),
    expires: num(r.expires),
    state: str(r.state),
    attempts: num(r.attempts),
    ...(typeof r.lastError === 'string' ? { lastError: str(r.lastError) } : {}),
  }));
}

export function handlers(vault: VaultService, effects: Effects): Record<Method, Handler> {
  const changing = async <T>(p: Promise<T>): Promise<T> => {
    const r = await p;
    effects.secretsChanged();
    return r;
  };
  const { sync } = effects;
  return {
    'sync.status': () => sync.status(),
    'sync.enable': (x) => sync.enable(str(obj(x), 'server'), str(obj(x), 'deviceName')),
    'sync.join': (x) => sync.join(str(obj(x), 'server'), str(obj(x), 'deviceName')),
    'sync.approve': (x) => sync.approve(str(obj(x), 'code')),
    'sync.recover': (x) => sync.recover(str(obj(x), 'server'), str(obj(x), 'recoveryKey'), str(obj(x), 'deviceName')),
    'sync.now': async () => {
      await vault.requireUnlocked();
      return sync.syncNow();
    },
    'sync.resolve': (x) => sync.resolve(str(obj(x), 'item'), str(obj(x), 'keep')),
    'sync.removeMember': (x) => sync.removeMember(str(obj(x), 'device')),
    'sync.compareHead': (x) => sync.compareHead(str(obj(x), 'fingerprint')),
    'sync.dismiss': (x) => {
      const what = obj(x).what;
      if (what !== 'warning' && what !== 'rotation') throw new RpcError('bad-input', 'what must be warning or rotation');
      return sync.dismiss(what);
    },
    'team.view': () => effects.admin.view(),
    'team.audit': async () => {
      const { entries, chains, names } = await sync.teamAudit();
      const name = (d: string) => names[d] ?? d.slice(0, 8);
      return {
        entries: entries.map((e) => ({ ...e, deviceName: name(e.device) })),
        chains: chains.map((c) => ({ device: c.device, deviceName: name(c.device), ...c.check })),
      };
    },
    'team.setRole': (x) => effects.admin.setRole(str(obj(x), 'device'), str(obj(x), 'role'), obj(x).granted === true),
    'engines.pinKey': (x) => effects.admin.pinEngineKey(str(obj(x), 'fingerprint')),
    'engines.configure': (x) => effects.admin.configure(str(obj(x), 'engine'), str(obj(x), 'kind'), obj(x).config, obj(x).rootCredential),
    'engines.setPolicy': (x) => effects.admin.setPolicy(str(obj(x), 'engine'), obj(x).policy as EnginePolicy),
    'engines.remove': (x) => effects.admin.remove(str(obj(x), 'engine')),
    'leases.list': async () => ({ leases: leaseViews(await sync.leases()) }),
    'leases.revoke': async (x) => {
      await sync.revokeLease(str(obj(x), 'id'));
      return { leases: leaseViews(await sync.leases()) };
    },
    status: () => vault.status(),
    'vault.create': (x) => vault.create(str(obj(x), 'passphrase'), kdfOf(obj(x))),
    'vault.unlock': (x) => vault.unlock(str(obj(x), 'passphrase')),
    'vault.lock': () => vault.lock('person'),
    'vault.changePassphrase': (x) => vault.changePassphrase(str(obj(x), 'current'), str(obj(x), 'next'), kdfOf(obj(x))),
    'vault.unlockPasskey': (x) => vault.unlockWithPasskey(str(obj(x), 'id'), str(obj(x), 'prf')),
    'passkeys.list': async () => ({ passkeys: await vault.listPasskeys() }),
    'passkeys.add': async (x) => {
      const p = obj(x);
      const passkey = { id: str(p, 'id'), name: str(p, 'name'), salt: str(p, 'salt'), prf: str(p, 'prf') };
      return { passkeys: await vault.addPasskey(str(p, 'passphrase'), passkey) };
    },
    'passkeys.remove': async (x) => ({ passkeys: await vault.removePasskey(str(obj(x), 'id')) }),
    'backup.export': (x) => exportBackup(vault, str(obj(x), 'passphrase'), str(obj(x), 'backupPassphrase'), Date.now()),
    'secrets.list': () => vault.listSecrets(),
    'secrets.create': (x) => changing(vault.createSecret(obj(x) as never)),
    'secrets.update': (x) => changing(vault.updateSecret(obj(x) as never)),
    'secrets.delete': (x) => changing(vault.deleteSecret(str(obj(x), 'id'))),
    'secrets.reveal': async (x) => {
      const id = str(obj(x), 'id');
      const revealed = await vault.reveal(id, str(obj(x), 'passphrase')); // the passphrase, checked again
      const s = await vault.secretById(id);
      // a distant login (a database role) is never injected: the person sees a fresh one here, under a lease
      return s?.kind === 'distant' && s.distant ? { value: await effects.distantLogin(s) } : revealed;
    },
    'secrets.rotate': async (x) => {
      const p = obj(x);
      const s = await changing(vault.rotate(str(p, 'id'), { value: p.value as string, material: p.material as never }));
      effects.audit({ kind: 'secret.rotated', correlationId: crypto.randomUUID(), secret: s.name, reason: `v${stagedOf(s)}` });
      return s;
    },
    'secrets.testStaged': async (x) => {
      const p = obj(x);
      const secret = await vault.secretById(str(p, 'id'));
      if (!secret) throw new RpcError('not-found', 'no such secret');
      const status = await effects.testValue(secret, await vault.stagedValue(secret.id), str(p, 'url'));
      effects.audit({
        kind: 'request',
        correlationId: crypto.randomUUID(),
        secret: secret.name,
        status,
        reason: 'test-staged',
        decision: 'allowed',
      });
      return { status, ok: status >= 200 && status < 300 };
    },
    'secrets.promote': async (x) => {
      const p = obj(x);
      const before = await vault.secretById(str(p, 'id'));
      const s = await changing(
        vault.promote(str(p, 'id'), {
          ...(p.graceSeconds !== undefined ? { graceSeconds: p.graceSeconds as number } : {}),
          ...(p.compromised === true ? { compromised: true } : {}),
        }),
      );
      const old = before?.values.find((v) => v.state === 'current')?.n;
      const id = crypto.randomUUID();
      effects.audit({ kind: 'secret.promoted', correlationId: id, secret: s.name, reason: `v${currentOf(s)}` });
      if (p.compromised === true && old !== undefined)
        effects.audit({ kind: 'secret.destroyed', correlationId: id, secret: s.name, reason: `v${old}.compromised` });
      await effects.valuesChanged(s.id, 'rotated');
      return s;
    },
    'secrets.rollBack': async (x) => {
      const s = await changing(vault.rollBack(str(obj(x), 'id')));
      effects.audit({ kind: 'secret.rolledBack', correlationId: crypto.randomUUID(), secret: s.name, reason: `v${currentOf(s)}` });
      await effects.valuesChanged(s.id, 'rotated');
      return s;
    },
    'secrets.destroyValue': async (x) => {
      const p = obj(x);
      if (!Number.isSafeInteger(p.n)) throw new RpcError('bad-input', 'n must be a value number');
      const s = await changing(vault.destroyValue(str(p, 'id'), p.n as number));
      effects.audit({ kind: 'secret.destroyed', correlationId: crypto.randomUUID(), secret: s.name, reason: `v${p.n}.person` });
      return s;
    },
    'secrets.takeRefresher': (x) => changing(vault.takeRefresherRole(str(obj(x), 'id'))),
    'credentials.status': async () => {
      const device = await vault.deviceId();
      const out: Record<string, CredentialStatusView> = {};
      for (const s of (await vault.listSecrets()).secrets) {
        const view = credentialView(effects.credentials, s, device);
        if (view) out[s.id] = view;
      }
      return out;
    },
    'credentials.refresh': async (x) => {
      const secret = await vault.secretById(str(obj(x), 'id'));
      if (!secret) throw new RpcError('not-found', 'no such secret');
      await effects.credentials.refreshNow(secret, crypto.randomUUID(), true).catch((e: unknown) => {
        if (!(e instanceof CredentialUnavailable)) throw e; // the state below says why
      });
      return credentialView(effects.credentials, secret, await vault.deviceId()) ?? { state: 'ok', failures: 0 };
    },
    'settings.get': () => vault.getSettings(),
    'settings.set': (x) => vault.setSettings(obj(x) as never),
    'clipboard.scheduleClear': async () => {
      const { clipboardClearSeconds } = await vault.getSettings();
      await effects.scheduleClipboardClear(clipboardClearSeconds);
      return { clearsInSeconds: clipboardClearSeconds };
    },
    'consent.get': async (x) => effects.consent.current(str(obj(x), 'request')),
    'consent.decide': async (x) => {
      const p = obj(x);
      if (!(await effects.consent.decide(str(p, 'request'), decisionOf(p.decision))))
        throw new RpcError('not-found', 'this request is no longer waiting');
      return true;
    },
    'grants.list': async () => {
      await vault.requireUnlocked();
      return (await effects.grants.all()).map(publicGrant);
    },
    'grants.create': async (x) => {
      const p = obj(x);
      const origin = callerOrigin(str(p, 'origin'));
      if (!origin) throw new RpcError('bad-input', 'site must be an https origin (or http on a loopback host)');
      const ttl = p.ttlSeconds;
      if (!Number.isInteger(ttl) || (ttl as number) < 60 || (ttl as number) > MAX_GRANT_TTL_SECONDS)
        throw new RpcError('bad-input', 'ttlSeconds must be 60 s to 30 days');
      const secret = await vault.secretById(str(p, 'secretId'));
      if (!secret) throw new RpcError('not-found', 'no such secret');
      const grant = newGrant({
        origin,
        secret,
        mode: 'transparent',
        hosts: secret.rule.hosts,
        now: Date.now(),
        ttlMs: (ttl as number) * 1000,
        uses: null,
      });
      await effects.grants.add([grant]);
      effects.audit({
        kind: 'grant.given',
        correlationId: grant.id,
        origin,
        secret: secret.name,
        mode: 'transparent',
        reason: 'options-page',
      });
      await effects.grantsChanged(origin);
      return publicGrant(grant);
    },
    'audit.view': async (x) => {
      await vault.requireUnlocked();
      const p = obj(x ?? {});
      const limit = typeof p.limit === 'number' && p.limit > 0 && p.limit <= 5000 ? p.limit : 500;
      const before = typeof p.before === 'number' && Number.isInteger(p.before) && p.before > 0 ? p.before : undefined;
      const view = await effects.auditLog.view(auditFilter(p.filter), limit, before);
      // MACs stay in the worker; the page learns whether each entry is chained
      return { ...view, entries: view.entries.map((e) => ({ seq: e.seq, record: e.record, chained: e.mac !== null })) };
    },
    'audit.verify': async () => {
      await vault.requireUnlocked();
      const check = await effects.auditLog.verify();
      return { check, anomalies: effects.auditLog.anomalies() };
    },
    'audit.export': async (x) => {
      await vault.requireUnlocked();
      const p = obj(x);
      const entries = await effects.auditLog.export(auditFilter(p.filter));
      if (p.format === 'csv') return { text: toCsv(entries), mime: 'text/csv' };
      if (p.format === 'jsonl') return { text: toJsonl(entries), mime: 'application/x-ndjson' };
      throw new RpcError('bad-input', 'format must be jsonl or csv');
    },
    'grants.revoke': async (x) => {
      await vault.requireUnlocked();
      const g = await effects.grants.revoke(str(obj(x), 'id'));
      if (!g) throw new RpcError('not-found', 'no such grant');
      effects.audit({
        kind: 'grant.revoked',
        correlationId: crypto.randomUUID(),
        origin: g.origin,
        secret: g.secret,
        mode: g.mode,
        reason: 'person',
      });
      await effects.grantsChanged(g.origin, [g.id]);
      return true;
    },
  };
}

const currentOf = (s: SecretSummary) => s.values.find((v) => v.state === 'current')?.n ?? 0;
const stagedOf = (s: SecretSummary) => s.values.find((v) => v.state === 'staged')?.n ?? 0;

function credentialView(credentials: Pick<Credentials, 'status'>, s: SecretSummary, device: string): CredentialStatusView | null {
  const view = credentials.status(s);
  if (!view) return null;
  return { ...view, ...(s.kind === 'oauth2-refresh-token' ? { refresherHere: s.oauth2?.refresher === device } : {}) };
}

/** True only for this extension's own pages (popup, options, and later the consent window). */
export function isOwnPage(sender: chrome.runtime.MessageSender, extensionId: string, extensionOrigin: string): boolean {
  if (sender.id !== extensionId) return false;
  // Our pages run as top-level documents; an extension page inside a frame (the web-accessible
  // lane frame, in a web page) has no business here.
  if (sender.frameId !== undefined && sender.frameId !== 0) return false;
  if (typeof sender.url !== 'string' || !sender.url.startsWith(`${extensionOrigin}/`)) return false;
  return sender.origin === undefined || sender.origin === extensionOrigin;
}

export async function dispatch(table: Record<Method, Handler>, message: unknown): Promise<RpcResponse> {
  try {
    const req = message as RpcRequest;
    if (typeof message !== 'object' || message === null || req.kh !== 1 || typeof req.method !== 'string') {
      throw new RpcError('bad-input', 'not a keyhole request');
    }
    if (JSON.stringify(message).length > MAX_MESSAGE_BYTES) throw new RpcError('bad-input', 'request too large');
    if (!Object.hasOwn(table, req.method)) throw new RpcError('unknown-method', 'unknown method');
    return { ok: true, result: await table[req.method](req.params) };
  } catch (e) {
    if (!(e instanceof RpcError) && !(e instanceof CoreError)) {
      console.error('keyhole: internal error in RPC', e instanceof Error ? e.name : typeof e);
    }
    return { ok: false, error: toErrorBody(e) };
  }
}
