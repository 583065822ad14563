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
import { type EngineDef, governance, type Membership, policyFor, UUID } from '../../core/sync/log.ts';
import { HttpError } from '../http.ts';
import type { KeyProvider } from '../kms/provider.ts';
import type { Store } from '../store.ts';
import { EngineError, JwtEngine } from './jwt.ts';

export type EngineRouteDeps = {
  readonly store: Store;
  readonly kms: KeyProvider;
  readonly origin: string;
  readonly now: () => number;
  /** the member device a request's session names, or 401 */
  readonly device: (req: IncomingMessage) => Promise<string>;
  readonly readJson: (req: IncomingMessage) => Promise<Record<string, unknown>>;
  readonly send: (res: ServerResponse, status: number, body: unknown) => void;
};

const PATH = /^\/v1\/vaults\/([^/]+)\/engines\/([a-z][a-z0-9-]{0,31})\/(token|jwks\.json|\.well-known\/openid-configuration)$/;
const notFound = () => new HttpError(404, 'not-found', 'no such engine');

export class EngineRoutes {
  private readonly jwt = new Map<string, JwtEngine>();
  /** verified states by vault, dropped when its head moves (any replica: the store's subscription) */
  private readonly states = new Map<string, Promise<Membership | undefined>>();
  private readonly unsubscribe: () => void;

  constructor(private readonly d: EngineRouteDeps) {
    this.unsubscribe = d.store.subscribe((vault) => this.states.delete(vault));
  }

  close(): void {
    this.unsubscribe();
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
    let s = this.states.get(vault);
    if (!s) {
      s = this.d.store.membership(vault);
      this.states.set(vault, s);
      s.catch(() => this.states.delete(vault));
    }
    return s;
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
    const { def } = await this.engineOf(vault, engine, 'jwt');
    const policy = policyFor(state, engine, role, device);
    if (!policy) throw new HttpError(403, 'not-allowed', 'no policy of this engine gives this device that role');
    try {
      const t = await this.jwtEngine(vault, engine).issue(def, policy, device, role, ttlSeconds as number | undefined);
      this.d.send(res, 200, { token: t.token, expiresAt: t.expiresAt, ttlSeconds: t.ttlSeconds });
    } catch (e) {
      throw engineFailure(e);
    }
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
  if (e instanceof EngineError) return new HttpError(e.code === 'not-allowed' ? 403 : 503, `engine-${e.code}`, e.message);
  return e;
}
