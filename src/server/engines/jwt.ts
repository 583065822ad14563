/**
 * The `jwt` engine (issue 15): ES256 tokens for an organisation's own APIs, signed by keys in the
 * key provider, verifiable by anyone through the JWKS the distant vault serves.
 *
 * Claims: `iss` (the engine's issuer URL), `sub` (the member device), `aud`, `scope` (the role's),
 * `iat`, `exp` (at most the policy's maximum TTL and the engine's `tokenMaxSeconds`), `jti`.
 * Stateless: a token needs no lease row; it dies at `exp`.
 *
 * Signing keys rotate every `rotationSeconds`. There is always a current key and a next one; the
 * next is published in the JWKS a whole rotation period before it signs anything, so a verifier
 * that cached the JWKS knows it already; a key no longer current stays published until every
 * token it signed has expired (superseded + tokenMaxSeconds), then is deleted from the key
 * provider. The schedule lives in one engine record, updated by compare-and-swap, so replicas
 * agree on it and a race creates no extra signing key that is ever used.
 */
import { randomUUID } from 'node:crypto';
import { checkJwtConfig, type JwtConfig } from '../../core/sync/engine-config.ts';
import type { EngineDef, EnginePolicy } from '../../core/sync/log.ts';
import { openEngineRecord, type SealedRecord, sealEngineRecord } from '../kms/envelope.ts';
import type { KeyProvider } from '../kms/provider.ts';
import type { Store } from '../store.ts';

/** An engine could not answer: its configuration does not hold, the policy refuses, or its backend is down. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly code: 'bad-config' | 'not-allowed' | 'unavailable',
    message: string,
    /** a credential's making failed before the target made anything (refused, or never reached) */
    readonly nothingMade = false,
  ) {
    super(message);
  }
}

type KeySlot = { readonly kid: string; readonly activeAt: number; readonly retireAt?: number };
type Schedule = { readonly keys: readonly KeySlot[] };
const RECORD = 'signing-keys';
/** How often a replica re-reads the schedule (another replica may have changed it). */
const FRESH_MS = 5_000;
/** How long a replica signs by a schedule it could not re-read. */
const STALE_MS = 60_000;

export type JwtEngineDeps = {
  readonly kms: KeyProvider;
  readonly store: Store;
  readonly vault: string;
  readonly engine: string;
  /** the server's public origin; the default issuer is `${origin}/v1/vaults/{vault}/engines/{engine}` */
  readonly origin: string;
  readonly now: () => number;
};

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
let lastHeader = { kid: '', encoded: '' };
/** The encoded JOSE header for `kid` (the same for every token a key signs). */
function header(kid: string): string {
  if (lastHeader.kid !== kid) lastHeader = { kid, encoded: b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid })) };
  return lastHeader.encoded;
}

export class JwtEngine {
  private schedule: { s: Schedule; version: number; loadedAt: number } | null = null;
  private loading: Promise<Schedule> | null = null;

  constructor(private readonly d: JwtEngineDeps) {}

  private checked: { seq: number; config: JwtConfig } | null = null;

  /** The engine's configuration, checked once per configuring entry. */
  private config(def: EngineDef): JwtConfig {
    if (this.checked?.seq !== def.seq) this.checked = { seq: def.seq, config: checkJwtConfig(def.config) };
    return this.checked.config;
  }

  defaultIssuer(): string {
    return `${this.d.origin}/v1/vaults/${this.d.vault}/engines/${this.d.engine}`;
  }

  issuer(config: JwtConfig): string {
    return config.issuer ?? this.defaultIssuer();
  }

  /** A token for member `device` in `role`, as the policy allows; the TTL asked is capped (as Vault caps max_ttl). */
  async issue(
    def: EngineDef,
    policy: EnginePolicy,
    device: string,
    role: string,
    ttlAsked?: number,
  ): Promise<{ token: string; expiresAt: number; ttlSeconds: number; kid: string }> {
    const config = this.config(def);
    const s = await this.current(config);
    const now = this.d.now();
    const signing = currentKey(s, now);
    if (!signing) throw new EngineError('unavailable', 'no signing key is active');
    const ttl = Math.max(1, Math.min(ttlAsked ?? policy.maxTtlSeconds, policy.maxTtlSeconds, config.tokenMaxSeconds));
    const iat = Math.floor(now / 1000);
    const r = config.roles[role] ?? {};
    const claims = {
      iss: this.issuer(config),
      sub: device,
      aud: r.audience ?? config.audience,
      ...(r.scope ? { scope: r.scope } : {}),
      iat,
      exp: iat + ttl,
      jti: randomUUID(),
    };
    const input = `${header(signing.kid)}.${b64url(JSON.stringify(claims))}`;
    const sig = await this.d.kms.sign(signing.kid, Buffer.from(input));
    return { token: `${input}.${b64url(sig)}`, expiresAt: claims.exp * 1000, ttlSeconds: ttl, kid: signing.kid };
  }

  /** Every key a verifier may meet: the current one, the next one, and old ones whose tokens may still live. */
  async jwks(def: EngineDef): Promise<{ keys: JsonWebKey[] }> {
    const config = this.config(def);
    const s = await this.current(config);
    const now = this.d.now();
    const live = s.keys.filter((k) => k.retireAt === undefined || k.retireAt > now);
    const keys = await Promise.all(
      live.map(async (k) => ({ ...(await this.d.kms.signingPublicKey(k.kid)), kid: k.kid, use: 'sig', alg: 'ES256' }) as JsonWebKey),
    );
    return { keys };
  }

  /** The OpenID discovery document (the parts a resource server uses). */
  discovery(def: EngineDef): Record<string, unknown> {
    const config = this.config(def);
    const issuer = this.issuer(config);
    return {
      issuer,
      jwks_uri: `${this.defaultIssuer()}/jwks.json`,
      id_token_signing_alg_values_supported: ['ES256'],
      token_endpoint_auth_methods_supported: ['none'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
      claims_supported: ['iss', 'sub', 'aud', 'scope', 'iat', 'exp', 'jti'],
    };
  }

  /**
   * The schedule, rotated if due; changed by compare-and-swap. A schedule with no change due is the
   * one every replica would plan from it (`plan` changes nothing before then), so it signs while it
   * is re-read behind the request, every FRESH_MS; a request waits for the store only when a change
   * is due, when none was read yet, or when re-reading has failed for STALE_MS (then it fails, saying
   * why, rather than sign by a schedule this replica can no longer check).
   */
  private async current(config: JwtConfig): Promise<Schedule> {
    const now = this.d.now();
    const c = this.schedule;
    if (c && !dueForChange(c.s, now)) {
      const age = now - c.loadedAt;
      if (age < FRESH_MS) return c.s;
      if (age < STALE_MS) {
        this.reload(config).catch(() => {}); // a failure is met by the request that waits at STALE_MS
        return c.s;
      }
    }
    return this.reload(config);
  }

  /** One refresh at a time, shared by whoever asks meanwhile. */
  private reload(config: JwtConfig): Promise<Schedule> {
    this.loading ??= this.refresh(config).finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async refresh(config: JwtConfig): Promise<Schedule> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { s, version } = await this.read();
      const now = this.d.now();
      const planned = plan(s, now, config);
      if (planned === s) {
        this.schedule = { s, version, loadedAt: now };
        return s;
      }
      // keys this plan adds are made first; if another replica wins the race they are deleted unused
      const made: string[] = [];
      const keys = await Promise.all(
        planned.keys.map(async (k) => {
          if (k.kid !== 'new') return k;
          const kid = await this.d.kms.createSigningKey();
          made.push(kid);
          return { ...k, kid };
        }),
      );
      const next: Schedule = { keys: keys.filter((k) => k.retireAt === undefined || k.retireAt > now) };
      const place = { vault: this.d.vault, engine: this.d.engine, record: RECORD, version: version + 1 };
      const sealed = await sealEngineRecord(this.d.kms, place, Buffer.from(JSON.stringify(next)));
      const row = { vault: this.d.vault, engine: this.d.engine, record: RECORD, version: version + 1, sealed: JSON.stringify(sealed) };
      if (await this.d.store.casEngineRecord(row, version)) {
        const dropped = s.keys.filter((k) => !next.keys.some((n) => n.kid === k.kid));
        for (const k of dropped) await this.d.kms.deleteSigningKey(k.kid).catch(() => {});
        this.schedule = { s: next, version: version + 1, loadedAt: now };
        return next;
      }
      for (const kid of made) await this.d.kms.deleteSigningKey(kid).catch(() => {});
    }
    throw new EngineError('unavailable', 'the signing key schedule keeps changing under this replica');
  }

  private async read(): Promise<{ s: Schedule; version: number }> {
    const row = await this.d.store.getEngineRecord(this.d.vault, this.d.engine, RECORD);
    if (!row) return { s: { keys: [] }, version: 0 };
    const place = { vault: row.vault, engine: row.engine, record: row.record, version: row.version };
    const plain = await openEngineRecord(this.d.kms, place, JSON.parse(row.sealed) as SealedRecord);
    return { s: JSON.parse(Buffer.from(plain).toString('utf8')) as Schedule, version: row.version };
  }
}

function currentKey(s: Schedule, now: number): KeySlot | undefined {
  return s.keys.filter((k) => k.activeAt <= now && k.retireAt === undefined).sort((a, b) => b.activeAt - a.activeAt)[0];
}

/** Whether the schedule must change at `now`: the next key's turn came, or an old key's tokens have all expired. */
function dueForChange(s: Schedule, now: number): boolean {
  const next = s.keys.find((k) => k.activeAt > now);
  const activeUnretired = s.keys.filter((k) => k.activeAt <= now && k.retireAt === undefined);
  return !next || activeUnretired.length !== 1 || s.keys.some((k) => k.retireAt !== undefined && k.retireAt <= now);
}

/**
 * The schedule at `now`: exactly one current key, one next (active a rotation after the current
 * one became active, and not sooner than a rotation from now when just made), superseded keys
 * retired once their tokens have expired. `kid: 'new'` marks keys to create. Unchanged: the same object.
 */
export function plan(s: Schedule, now: number, config: JwtConfig): Schedule {
  if (!dueForChange(s, now)) return s;
  const rotation = config.rotationSeconds * 1000;
  const keys = s.keys.filter((k) => k.retireAt === undefined || k.retireAt > now).map((k) => ({ ...k }));
  const active = keys.filter((k) => k.activeAt <= now && k.retireAt === undefined).sort((a, b) => b.activeAt - a.activeAt);
  let current = active[0];
  if (!current) {
    current = { kid: 'new', activeAt: now };
    keys.push(current);
  }
  // the keys the current one superseded sign no more: kept until their last token expires
  for (const k of active.slice(1)) Object.assign(k, { retireAt: current.activeAt + config.tokenMaxSeconds * 1000 });
  if (!keys.some((k) => k.activeAt > now)) keys.push({ kid: 'new', activeAt: Math.max(current.activeAt + rotation, now + rotation / 2) });
  return { keys };
}
