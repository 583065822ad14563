/**
 * The page provider API (DESIGN.md section 3) as the worker serves it. The caller is the
 * origin Chrome reports for the sending frame, never anything the page says.
 */

import {
  ALLOW_ONCE_MS,
  type ConsentSecret,
  callerOrigin,
  cleanReason,
  DEFAULT_GRANT_TTL_SECONDS,
  DENIAL_MEMORY_MS,
  MAX_GRANT_TTL_SECONDS,
  newGrant,
  type StoredGrant,
} from '../../core/agents/grants.ts';
import {
  type CredentialInfo,
  type Grant,
  type GrantMode,
  PAGE_METHODS,
  PageError,
  PageErrorCode,
  type PageMethod,
} from '../../core/agents/page-api.ts';
import { normalizeHost } from '../../core/agents/policy.ts';
import type { SecretSummary } from '../../core/api.ts';
import type { AuditRecord } from '../../core/audit/audit.ts';
import { checkNarrowing, type Narrowing, narrowingFits } from '../../core/credentials/narrowing.ts';
import { CoreError } from '../../core/errors.ts';
import { type Credentials, CredentialUnavailable } from '../credentials/credentials.ts';
import type { VaultService } from '../vault/vault-service.ts';
import { type BrokerDeps, type BrokerOutcome, brokeredFetch, brokeredStream, type StreamHead } from './broker.ts';
import { type ConsentQueue, ConsentRateLimited } from './consent.ts';
import type { GrantStore } from './grant-store.ts';
import type { InFlight } from './inflight.ts';
import { whileAwake } from './keepalive.ts';

export type PageCaller = { readonly origin: string; readonly tabId: number; readonly documentId: string | undefined };

/** Who is asking, from the browser's own sender record; null when Keyhole does not talk to it. */
export function pageCaller(sender: chrome.runtime.MessageSender, extensionId: string): PageCaller | null {
  if (sender.id !== extensionId || !sender.tab || typeof sender.tab.id !== 'number' || sender.frameId !== 0) return null;
  const origin = callerOrigin(sender.origin);
  return origin ? { origin, tabId: sender.tab.id, documentId: sender.documentId } : null;
}

export type PageApiDeps = BrokerDeps & {
  readonly credentials: Pick<Credentials, 'use' | 'rejected' | 'status' | 'refreshNow'>;
  readonly inflight: InFlight;
  readonly consent: ConsentQueue;
  readonly version: string;
  /** an origin's grants changed (`revoked`: these were taken away); resolves once that is in force */
  readonly grantsChanged: (origin: string, revoked?: readonly string[]) => Promise<void>;
  /** appends an audit record (normalised by core/audit: nothing outside its type is kept) */
  readonly audit: (r: Omit<AuditRecord, 'time'>) => void;
};

const MAX_SECRETS_PER_REQUEST = 8;
/** keyhole_refresh: at most one token request per secret in this long, whoever asks */
export const REFRESH_INTERVAL_MS = 10_000;

export class PageApiService {
  /** when each secret was last refreshed at a page's request */
  private readonly refreshed = new Map<string, number>();

  constructor(
    private readonly deps: PageApiDeps,
    private readonly vault: VaultService,
    private readonly grants: GrantStore,
  ) {}

  async handle(caller: PageCaller, method: unknown, params: unknown): Promise<unknown> {
    if (typeof method !== 'string' || !(PAGE_METHODS as readonly string[]).includes(method))
      throw new PageError(PageErrorCode.unsupportedMethod);
    switch (method as PageMethod) {
      case 'keyhole_status': {
        const { state } = await this.vault.status();
        return { state, version: this.deps.version };
      }
      case 'keyhole_getGrants': {
        await this.requireUnlocked();
        const out: Grant[] = [];
        for (const g of await this.grants.forOrigin(caller.origin)) {
          const secret = await this.vault.secretById(g.secretId);
          out.push(secret ? { ...publicGrant(g), credential: this.credentialInfo(secret) } : publicGrant(g));
        }
        return out;
      }
      case 'keyhole_refresh':
        return this.refresh(caller, params);
      case 'keyhole_revokeGrant': {
        await this.requireUnlocked();
        const id = (params as { grantId?: unknown } | null)?.grantId;
        if (typeof id !== 'string' || id.length > 64) throw new PageError(PageErrorCode.invalidParams, { field: 'grantId' });
        const g = await this.grants.revoke(id, caller.origin);
        if (!g) throw new PageError(PageErrorCode.unauthorized);
        this.deps.audit({
          kind: 'grant.revoked',
          correlationId: crypto.randomUUID(),
          origin: caller.origin,
          tabId: caller.tabId,
          secret: g.secret,
          mode: g.mode,
          reason: 'page',
        });
        await this.deps.grantsChanged(caller.origin, [g.id]);
        return true;
      }
      case 'keyhole_requestGrant':
        return this.requestGrant(caller, params);
      case 'keyhole_fetch': {
        const call = this.deps.inflight.open(caller.origin, false);
        return this.audited(caller, params, async (cause) => {
          const { result, outcome, status } = await whileAwake(() => brokeredFetch(this.deps, caller.origin, params, call, cause));
          return { value: result, outcome, status };
        }).finally(call.end);
      }
    }
  }

  /** keyhole_fetch with a streamed body, over a port (the provider's fetchStream). */
  async stream(
    caller: PageCaller,
    params: unknown,
    signal: AbortSignal,
    emit: { head(h: StreamHead): void; chunk(b: Uint8Array): void },
  ): Promise<void> {
    const call = this.deps.inflight.open(caller.origin, true, signal);
    await this.audited(caller, params, async (cause) => {
      const { outcome, status } = await whileAwake(() => brokeredStream(this.deps, caller.origin, params, call, emit, cause));
      return { value: undefined, outcome, status };
    }).finally(call.end);
  }

  /** Runs one brokered request and audits its outcome, allowed or not. */
  private async audited<T>(
    caller: PageCaller,
    params: unknown,
    run: (correlationId: string) => Promise<{ value: T; outcome: BrokerOutcome; status: number }>,
  ): Promise<T> {
    const started = this.deps.now();
    const correlationId = crypto.randomUUID();
    const base = { kind: 'request' as const, correlationId, origin: caller.origin, tabId: caller.tabId, mode: 'broker' as const };
    try {
      const { value, outcome, status } = await run(correlationId);
      this.deps.audit({ ...base, ...outcome, decision: 'allowed', status, latencyMs: this.deps.now() - started });
      return value;
    } catch (e) {
      const code = e instanceof PageError ? e.code : PageErrorCode.internal;
      const failed = code === PageErrorCode.upstreamFailed || code === PageErrorCode.responseTooLarge || code === PageErrorCode.internal;
      this.deps.audit({
        ...base,
        ...describeAttempt(params),
        decision: failed ? 'failed' : 'denied',
        status: code,
        latencyMs: this.deps.now() - started,
      });
      throw e;
    }
  }

  private credentialInfo(secret: SecretSummary): CredentialInfo {
    const s = this.deps.credentials.status(secret);
    // not minted yet, and nothing failed: it will be minted on first use
    const state = !s ? 'ok' : s.state === 'unavailable' && !s.lastError && !s.attention ? 'ok' : s.state;
    return { kind: secret.kind, version: secret.version, state, ...(s?.validUntil ? { validUntil: s.validUntil } : {}) };
  }

  /** keyhole_refresh: a fresh token for a secret this origin holds a grant for. */
  private async refresh(caller: PageCaller, raw: unknown): Promise<CredentialInfo> {
    const name = (raw as { secret?: unknown } | null)?.secret;
    if (typeof name !== 'string' || name.length > 64) throw new PageError(PageErrorCode.invalidParams, { field: 'secret' });
    await this.requireUnlocked();
    const secret = await this.vault.findSecret(name);
    // "no grant" and "no such secret" answer alike
    if (!secret || (await this.grants.forSecret(caller.origin, secret.id)).length === 0) throw new PageError(PageErrorCode.unauthorized);
    const now = this.deps.now();
    if (now - (this.refreshed.get(secret.id) ?? Number.NEGATIVE_INFINITY) < REFRESH_INTERVAL_MS)
      throw new PageError(PageErrorCode.rateLimited);
    this.refreshed.set(secret.id, now);
    try {
      await this.deps.credentials.refreshNow(secret, crypto.randomUUID());
    } catch (e) {
      if (e instanceof CredentialUnavailable) throw new PageError(PageErrorCode.credentialUnavailable, { reason: e.reason });
      throw e;
    }
    return this.credentialInfo(secret);
  }

  private async requireUnlocked(): Promise<void> {
    if (!(await this.vault.isUnlocked())) throw new PageError(PageErrorCode.locked);
  }

  private async requestGrant(caller: PageCaller, raw: unknown): Promise<{ grants: Grant[] }> {
    const p = parseGrantRequest(raw);
    await this.requireUnlocked();
    // A remembered Deny answers at once, without a prompt.
    for (const name of p.secrets) {
      if (await this.grants.isDenied(caller.origin, name)) {
        this.deps.audit({
          kind: 'grant.denied',
          correlationId: crypto.randomUUID(),
          origin: caller.origin,
          tabId: caller.tabId,
          secret: name,
          reason: 'remembered',
        });
        throw new PageError(PageErrorCode.rejected);
      }
    }
    // Only what this site could be given is shown. A name that does not exist, or whose secret is
    // not bound to the hosts asked for, is left out without a word, and with nothing left the
    // window offers only Deny: the page hears the same 4001, after a person's answer, either way.
    const secrets: ConsentSecret[] = [];
    const brokeredOnly: string[] = [];
    for (const name of p.secrets) {
      const s = await this.vault.findSecret(name);
      if (!s) continue;
      // a narrowing the credential cannot take: not offered (GitHub's, AWS's session policy)
      if (p.narrow && !narrowingFits(s.kind, s.aws?.assumeRole !== undefined, p.narrow)) continue;
      // The grant's hosts: what the page asked for, within the secret's rule; all of them by default.
      const hosts = p.hosts ? p.hosts.filter((h) => s.rule.hosts.includes(h)) : [...s.rule.hosts];
      if (hosts.length === 0) continue;
      // an AWS request is signed by the worker as a whole: no header rule can carry it
      if (s.kind === 'aws' && p.mode === 'transparent') {
        brokeredOnly.push(name);
        continue;
      }
      const tokenEndpoint = s.oauth2?.tokenEndpoint ?? s.aws?.assumeRole?.endpoint;
      const minted = s.kind !== 'static' ? { kind: s.kind, ...(tokenEndpoint ? { tokenHost: new URL(tokenEndpoint).host } : {}) } : {};
      secrets.push({ name, id: s.id, hosts, header: s.rule.header, ...minted });
    }
    const correlationId = crypto.randomUUID();
    const audit = (kind: 'grant.asked' | 'grant.given' | 'grant.denied', secret: string, reason?: string) =>
      this.deps.audit({
        kind,
        correlationId,
        origin: caller.origin,
        tabId: caller.tabId,
        secret,
        mode: p.mode,
        ...(reason ? { reason } : {}),
      });
    for (const name of p.secrets) audit('grant.asked', name);
    let decision: Awaited<ReturnType<ConsentQueue['ask']>>;
    try {
      decision = await this.deps.consent.ask({
        id: crypto.randomUUID(),
        origin: caller.origin,
        tabId: caller.tabId,
        ...(caller.documentId ? { documentId: caller.documentId } : {}),
        mode: p.mode,
        ttlSeconds: p.ttlSeconds,
        ttlAsked: p.ttlAsked,
        reason: p.reason,
        secrets,
        ...(p.narrow ? { narrow: p.narrow } : {}),
        ...(brokeredOnly.length > 0 ? { brokeredOnly } : {}),
        createdAt: this.deps.now(),
      });
    } catch (e) {
      if (e instanceof ConsentRateLimited) throw new PageError(PageErrorCode.rateLimited);
      throw e;
    }
    const now = this.deps.now();
    if (decision.kind === 'deny' || secrets.length === 0) {
      for (const name of p.secrets) audit('grant.denied', name, 'person');
      await this.grants.deny(p.secrets.map((secret) => ({ origin: caller.origin, secret, until: now + DENIAL_MEMORY_MS })));
      // the person saw why (the window named them): the agent hears it too, to ask again brokered
      if (secrets.length === 0 && brokeredOnly.length > 0) throw new PageError(PageErrorCode.rejected, { reason: 'brokered-only' });
      throw new PageError(PageErrorCode.rejected);
    }
    const ttlMs = decision.kind === 'once' ? ALLOW_ONCE_MS : Math.min(decision.ttlSeconds, MAX_GRANT_TTL_SECONDS) * 1000;
    const uses = decision.kind === 'once' ? 1 : null;
    const made: StoredGrant[] = secrets.map((s) =>
      newGrant({
        origin: caller.origin,
        secret: { id: s.id, name: s.name },
        mode: p.mode,
        hosts: s.hosts,
        now,
        ttlMs,
        uses,
        ...(p.narrow ? { narrow: p.narrow } : {}),
      }),
    );
    await this.grants.add(made);
    for (const g of made) audit('grant.given', g.secret, decision.kind);
    await this.deps.grantsChanged(caller.origin); // a transparent grant's rules are in place when this resolves
    return { grants: made.map(publicGrant) };
  }
}

export function publicGrant(g: StoredGrant): Grant {
  const { secretId: _, ...pub } = g;
  return pub;
}

type GrantRequest = {
  secrets: string[];
  mode: GrantMode;
  hosts: string[] | null;
  ttlSeconds: number;
  ttlAsked: boolean;
  reason: string;
  narrow: Narrowing | undefined;
};

function parseGrantRequest(raw: unknown): GrantRequest {
  const bad = (field: string) => new PageError(PageErrorCode.invalidParams, { field });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('params');
  const p = raw as Record<string, unknown>;
  const secrets = p.secrets;
  if (!Array.isArray(secrets) || secrets.length === 0 || secrets.length > MAX_SECRETS_PER_REQUEST) throw bad('secrets');
  if (!secrets.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 64)) throw bad('secrets');
  const mode = p.mode ?? 'broker';
  if (mode !== 'broker' && mode !== 'transparent') throw bad('mode');
  let hosts: string[] | null = null;
  if (p.hosts !== undefined) {
    if (!Array.isArray(p.hosts) || p.hosts.length === 0 || p.hosts.length > 16) throw bad('hosts');
    try {
      hosts = p.hosts.map((h) => normalizeHost(h as string));
    } catch {
      throw bad('hosts');
    }
  }
  const ttl = p.ttlSeconds ?? DEFAULT_GRANT_TTL_SECONDS;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 60 || ttl > MAX_GRANT_TTL_SECONDS) throw bad('ttlSeconds');
  if (p.reason !== undefined && typeof p.reason !== 'string') throw bad('reason');
  let narrow: Narrowing | undefined;
  try {
    narrow = checkNarrowing(p.narrow);
  } catch (e) {
    if (e instanceof CoreError) throw new PageError(PageErrorCode.invalidParams, { field: 'narrow', reason: e.message });
    throw e;
  }
  return {
    narrow,
    secrets: [...new Set(secrets as string[])],
    mode,
    hosts,
    ttlSeconds: ttl,
    ttlAsked: p.ttlSeconds !== undefined,
    reason: cleanReason(p.reason),
  };
}

/** What a refused request tried to do, from its (untrusted, then normalised) params: no query, no body. */
function describeAttempt(params: unknown): { secret?: string; method?: string; host?: string; path?: string } {
  const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
  const out: { secret?: string; method?: string; host?: string; path?: string } = {};
  if (typeof p.secret === 'string') out.secret = p.secret;
  out.method = typeof p.method === 'string' ? p.method.toUpperCase() : 'GET';
  if (typeof p.url === 'string') {
    try {
      const u = new URL(p.url);
      out.host = u.host;
      out.path = u.pathname;
    } catch {
      // not a URL: nothing to record
    }
  }
  return out;
}
