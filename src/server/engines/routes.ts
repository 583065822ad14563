/**
 * The engines' HTTP routes (issue 15). `GET /v1/engine-key` (public): the engine key admins pin
 * after comparing its fingerprint. Under `/v1/vaults/{vault}/engines/{engine}/`:
 *
 *   POST token                              a member device asks for a credential of a role (session login)
 *   GET  jwks.json                          the jwt engine's public keys (public)
 *   GET  .well-known/openid-configuration   its discovery document (public)
 *
 * What a device may ask for is what the vault's signed log says (core/sync/log.ts policyFor):
 * the server reads the governance from the state it verified at commit, never from the request.
 * "No such vault", "not a member" and "no such engine" answer alike (404).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EngineConfigError } from '../../core/sync/engine-config.ts';
import { type EngineDef, governance, hasRole, type Membership, policyFor, UUID } from '../../core/sync/log.ts';
import { HttpError } from '../http.ts';
import type { KeyProvider } from '../kms/provider.ts';
import { LeaseSweeper } from '../leases/sweeper.ts';
import type { RouteDeps } from '../route-deps.ts';
import { EngineError, JwtEngine } from './jwt.ts';
import { LeasedEngines } from './leased.ts';

export type EngineRouteDeps = RouteDeps & {
  readonly kms: KeyProvider;
  readonly origin: string;
  readonly leaseClaimMs?: number;
  readonly maxLeasesPerVault?: number;
};

const PATH = /^\/v1\/vaults\/([^/]+)\/engines\/([a-z][a-z0-9-]{0,31})\/(token|jwks\.json|\.well-known\/openid-configuration)$/;
const notFound = () => new HttpError(404, 'not-found', 'no such engine');

export class EngineRoutes {
  private readonly jwt = new Map<string, JwtEngine>();
  readonly leased: LeasedEngines;
  readonly sweeper: LeaseSweeper;

  constructor(private readonly d: EngineRouteDeps) {
    this.leased = new LeasedEngines({
      kms: d.kms,
      store: d.store,
      now: d.now,
      ...(d.maxLeasesPerVault ? { maxLeasesPerVault: d.maxLeasesPerVault } : {}),
    });
    this.sweeper = new LeaseSweeper({
      leases: d.store.leases,
      revoke: this.leased.revoke,
      now: d.now,
      ...(d.leaseClaimMs !== undefined ? { visibilityMs: d.leaseClaimMs } : {}),
      onOutcome: (lease, outcome) => {
        const engine = lease.engine;
        if (outcome === 'revoked') d.metrics?.count('keyhole_lease_revocations_total', 'Leases revoked', { engine });
        else d.metrics?.count('keyhole_lease_revocation_failures_total', 'Revocation attempts that failed', { engine, outcome });
      },
    });
    if (d.sweepIntervalMs !== 0) this.sweeper.start(d.sweepIntervalMs ?? 5000);
  }

  async close(): Promise<void> {
    await this.sweeper.stop();
  }

  /** The handler for this request, or undefined if it is not an engine route. */
  pick(method: string, path: string, req: IncomingMessage, res: ServerResponse): [string, () => Promise<void>] | undefined {
    if (path === '/v1/engine-key' && method === 'GET')
      return [
        'engine.key',
        async () => {
          // public: an admin pins it only after comparing its fingerprint with the operator's
          const { engineKey, engineFingerprint } = await this.d.kms.status();
          this.d.send(res, 200, { spki: engineKey, fingerprint: engineFingerprint });
        },
      ];
    const lease = /^\/v1\/leases\/([0-9a-f-]{36})\/(renew|revoke)$/.exec(path);
    if (lease && method === 'POST') {
      const [, id = '', what] = lease;
      return what === 'renew' ? ['lease.renew', () => this.renew(req, res, id)] : ['lease.revoke', () => this.revoke(req, res, id)];
    }
    const listed = /^\/v1\/vaults\/([^/]+)\/leases$/.exec(path)?.[1];
    if (listed !== undefined && UUID.test(listed) && method === 'GET') return ['lease.list', () => this.list(req, res, listed)];
    const m = PATH.exec(path);
    if (!m) return undefined;
    const [, vault = '', engine = '', what] = m;
    if (!UUID.test(vault)) return undefined;
    if (what === 'token' && method === 'POST') return ['engine.token', () => this.token(req, res, vault, engine)];
    if (what === 'jwks.json' && method === 'GET') return ['engine.jwks', () => this.jwks(res, vault, engine)];
    if (what !== 'token' && method === 'GET') return ['engine.discovery', () => this.discovery(res, vault, engine)];
    return undefined;
  }

  private state(vault: string): Promise<Membership | undefined> {
    return this.d.states.get(vault);
  }

  private async engineOf(vault: string, engine: string, kind: EngineDef['kind']): Promise<{ state: Membership; def: EngineDef }> {
    const state = await this.state(vault);
    const def = state ? governance(state).engines[engine] : undefined;
    if (!state || !def || def.kind !== kind) throw notFound();
    return { state, def };
  }

  private jwtEngine(vault: string, engine: string): JwtEngine {
    const key = `${vault}/${engine}`;
    let e = this.jwt.get(key);
    if (!e) {
      e = new JwtEngine({ kms: this.d.kms, store: this.d.store, vault, engine, origin: this.d.origin, now: this.d.now });
      this.jwt.set(key, e);
    }
    return e;
  }

  private async token(req: IncomingMessage, res: ServerResponse, vault: string, engine: string): Promise<void> {
    const device = await this.d.device(req);
    const body = await this.d.readJson(req);
    const { role, ttlSeconds } = body;
    if (typeof role !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(role)) throw new HttpError(400, 'bad-request', 'role malformed');
    if (ttlSeconds !== undefined && (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1))
      throw new HttpError(400, 'bad-request', 'ttlSeconds must be a positive integer');
    const state = await this.state(vault);
    if (!state?.members.has(device)) throw notFound();
    const def = governance(state).engines[engine];
    if (!def) throw notFound();
    const policy = policyFor(state, engine, role, device);
    if (!policy) throw new HttpError(403, 'not-allowed', 'no policy of this engine gives this device that role');
    try {
      this.d.metrics?.count('keyhole_engine_mints_total', 'Credentials issued by the engines', { kind: def.kind });
      if (def.kind === 'jwt') {
        const t = await this.jwtEngine(vault, engine).issue(def, policy, device, role, ttlSeconds as number | undefined);
        this.d.send(res, 200, { token: t.token, expiresAt: t.expiresAt, ttlSeconds: t.ttlSeconds });
        return;
      }
      const issued = await this.leased.issue(state, engine, def, policy, device, role, ttlSeconds as number | undefined);
      this.d.send(res, 200, issued);
    } catch (e) {
      throw engineFailure(e);
    }
  }

  /** A lease of the caller's own (another device's answers as if there were none). */
  private async ownLease(device: string, id: string) {
    const l = await this.d.store.leases.get(id);
    if (!l || l.device !== device || !(await this.state(l.vault))?.members.has(device))
      throw new HttpError(404, 'not-found', 'no such lease');
    return l;
  }

  private async renew(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const device = await this.d.device(req);
    const { ttlSeconds } = await this.d.readJson(req);
    if (ttlSeconds !== undefined && (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1))
      throw new HttpError(400, 'bad-request', 'ttlSeconds must be a positive integer');
    const l = await this.ownLease(device, id);
    const now = this.d.now();
    if (l.state !== 'active' || l.expires <= now) throw new HttpError(409, 'not-active', 'the lease is not active');
    const wanted = now + ((ttlSeconds as number | undefined) ?? Math.round((l.expires - l.issued) / 1000)) * 1000;
    const expires = Math.min(wanted, l.maxExpires);
    if (expires <= l.expires) throw new HttpError(409, 'max-ttl', 'the lease is at its maximum TTL: ask for a new one');
    try {
      await this.leased.renew(l, expires);
    } catch (e) {
      throw engineFailure(e);
    }
    if (!(await this.d.store.leases.renew(id, device, expires, now))) throw new HttpError(409, 'not-active', 'the lease is not active');
    this.d.send(res, 200, { leaseId: id, expiresAt: expires, maxExpiresAt: l.maxExpires, capped: expires < wanted });
  }

  /** Revoked by its device or by an admin of its vault, at once (200); if the target cannot be reached now, the sweeper retries (202). */
  private async revoke(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const device = await this.d.device(req);
    const l = await this.d.store.leases.get(id);
    const state = l ? await this.state(l.vault) : undefined;
    const mayRevoke = l && state?.members.has(device) && (l.device === device || hasRole(state, device, 'admin'));
    if (!l || !mayRevoke) throw new HttpError(404, 'not-found', 'no such lease');
    await this.d.store.leases.markRevoking(id, this.d.now());
    await this.sweeper.sweepOnce().catch(() => {}); // now, bounded by the per-call timeout; else the sweeper retries
    const now = (await this.d.store.leases.get(id))?.state ?? 'revoking';
    this.d.send(res, now === 'revoked' ? 200 : 202, { leaseId: id, state: now });
  }

  /** A member's own leases; an admin sees the vault's. Never a credential. */
  private async list(req: IncomingMessage, res: ServerResponse, vault: string): Promise<void> {
    const device = await this.d.device(req);
    const state = await this.state(vault);
    if (!state?.members.has(device)) throw notFound();
    const all = await this.d.store.leases.list(vault, hasRole(state, device, 'admin') ? undefined : device);
    this.d.send(res, 200, {
      leases: all.map(({ revokeData: _, ...l }) => l),
    });
  }

  private async jwks(res: ServerResponse, vault: string, engine: string): Promise<void> {
    const { def } = await this.engineOf(vault, engine, 'jwt');
    try {
      const body = JSON.stringify(await this.jwtEngine(vault, engine).jwks(def));
      // verifiers may cache it briefly: the next key is published a rotation ahead
      res.writeHead(200, {
        'content-type': 'application/json',
        'cache-control': 'public, max-age=60',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    } catch (e) {
      throw engineFailure(e);
    }
  }

  private async discovery(res: ServerResponse, vault: string, engine: string): Promise<void> {
    const { def } = await this.engineOf(vault, engine, 'jwt');
    try {
      this.d.send(res, 200, this.jwtEngine(vault, engine).discovery(def));
    } catch (e) {
      throw engineFailure(e);
    }
  }
}

function engineFailure(e: unknown): unknown {
  if (e instanceof EngineConfigError) return new HttpError(503, 'engine-bad-config', e.message);
  if (e instanceof EngineError) return new HttpError(e.code === 'not-allowed' ? 403 : 503, `engine-${e.code}`, e.message);
  return e;
}
