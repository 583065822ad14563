/**
 * What goes on a request for a secret, whatever its kind: a static secret's value, or for a
 * minted kind the access token the refresher holds (cached, refreshed ahead of expiry, minted
 * once however many wait). The broker and the transparent rules ask here and nowhere else.
 *
 * The material a token is minted with (client secret, private key, refresh token) is opened only
 * to build a token request. A private key is imported once per unlock as a non-extractable
 * WebCrypto key and kept in memory; at rest it stays sealed as the secret's value (a CryptoKey
 * stored in IndexedDB is written to the profile in raw form, docs/decisions.md).
 */

import { compileRedaction } from '../../core/agents/redact.ts';
import type { SecretSummary } from '../../core/api.ts';
import type { AuditRecord } from '../../core/audit/audit.ts';
import { assumeRoleRequest, checkAwsKeys, parseAssumeRoleResponse } from '../../core/credentials/aws.ts';
import { CredentialError, type CredentialErrorCode } from '../../core/credentials/errors.ts';
import { appJwt, installationTokenRequest, parseInstallationToken } from '../../core/credentials/github.ts';
import { googleAssertion, googleAssertionClaims } from '../../core/credentials/google.ts';
import {
  type DistantConfig,
  isMinted,
  type OAuth2Config,
  type OAuth2Material,
  sharedByTeam,
  usesMintedToken,
} from '../../core/credentials/kinds.ts';
import { expirySkew } from '../../core/credentials/lifetime.ts';
import { type Narrowing, slotId, slotSecret } from '../../core/credentials/narrowing.ts';
import {
  type ClientAuth,
  headerSafe,
  type TokenGrant,
  type TokenRequest,
  type TokenSet,
  tokenRequest,
} from '../../core/credentials/oauth2.ts';
import { importSigningKeyPem, type SigningKey } from '../../core/credentials/pem.ts';
import type { AwsCredentials } from '../../core/credentials/sigv4.ts';
import type { RefreshChain } from '../../core/crypto/team.ts';
import { CoreError } from '../../core/errors.ts';
import type { EngineToken } from '../sync/vault-client.ts';
import { type InUse, isExpired, type VaultService } from '../vault/vault-service.ts';
import type { CredentialCache } from './cache.ts';
import { type CredentialStatus, CredentialUnavailable, type Minted, Refresher } from './refresher.ts';
import type { MintedHere, TeamTier } from './team-tier.ts';
import { requestToken, type TokenFetch } from './token-client.ts';

export type CredentialsDeps = {
  readonly vault: Pick<VaultService, 'useSecret' | 'openMaterial' | 'setRefreshToken' | 'deviceId' | 'secretById'>;
  readonly cache: CredentialCache;
  readonly fetch: TokenFetch;
  readonly now: () => number;
  readonly random: () => number;
  readonly audit: (r: Omit<AuditRecord, 'time'>) => void;
  /** readies the browser for a token request to `url` (its Origin header taken off: token-origin.ts) */
  readonly beforeTokenRequest?: (url: string) => Promise<void>;
  /** the team tier (issue 16): minted credentials shared with the synced vault's other devices */
  readonly team?: TeamTier;
  /** runs a sync (pull and push) now: a rotating refresh token is spent on the newest version, and its successor pushed at once */
  readonly syncNow?: () => Promise<void>;
  /** a credential came from the team tier rather than a token request here */
  readonly onShared?: (secret: SecretSummary, cause?: string) => void;
  /** a minted credential's token or state changed (refreshed, failed, needs attention) */
  readonly onChange?: (secretId: string, what: CredentialChange) => void;
  /** the synced vault's distant vault, for the `distant` kind (absent or origin undefined: not synced) */
  readonly distant?: {
    origin(): Promise<string | undefined>;
    /** a credential of `config`'s engine and role (and its lease, if it has one), or CredentialError */
    token(config: DistantConfig): Promise<EngineToken>;
    /** extends a lease by `ttlSeconds`, as far as its maximum allows, or CredentialError */
    renew?(leaseId: string, ttlSeconds: number): Promise<{ readonly expiresAt: number; readonly maxExpiresAt: number }>;
    /** the lease is no longer needed here: revoke it after `afterMs` */
    release?(leaseId: string, afterMs: number): void;
  };
};

export type CredentialChange = 'refreshed' | 'failed' | 'attention';

/** A credential a replaced lease carried may still be on a request in flight: it is revoked this long after. */
export const REPLACED_LEASE_GRACE_MS = 30_000;

/** The lease behind a distant credential cached now. */
type HeldLease = { readonly id: string; readonly token: string; expiresAt: number; readonly maxExpiresAt: number; readonly ttlMs: number };

/**
 * What goes on a request; a minted token also says until when it may (notAfter minus the skew).
 * An `aws` secret hands the keys the worker signs the request with (its `value` never goes on a
 * request; the redaction covers each key).
 */
export type Handed = InUse & { readonly usableUntil?: number; readonly aws?: AwsCredentials };

/** A credential's state as the person and the agent see it (never a value). */
export type CredentialView = CredentialStatus & {
  /** the token endpoint said the grant is dead, or another device holds the refresh token: the person must act */
  readonly attention?: CredentialErrorCode;
};

export class Credentials {
  private readonly refresher: Refresher;
  /** imported private keys (non-extractable), by secret id and version */
  private readonly keys = new Map<string, Promise<SigningKey>>();
  /** the compiled redaction of the token last handed out, by slot (secret id, and narrowing) */
  private readonly compiled = new Map<string, Handed>();
  /** an AWS access key without a role, opened and compiled, by `secretId@version` */
  private readonly accessKeys = new Map<string, Handed>();
  /** the narrowed slots in use: what each mints for */
  private readonly slots = new Map<string, Narrowing>();
  /** how far AWS's clock is from ours, learned from a clock-skew answer (ms to add to ours) */
  private awsClockOffset = 0;
  /** credentials the person must look at before another token request is made */
  private readonly attention = new Map<string, CredentialErrorCode>();
  /** a rotated refresh token being stored: the vault's change notice for it is ours */
  private readonly storing = new Set<string>();
  /** by slot: the leases behind distant credentials, renewed rather than asked for again while they may be */
  private readonly leased = new Map<string, HeldLease>();

  constructor(private readonly deps: CredentialsDeps) {
    this.refresher = new Refresher({
      cache: deps.cache,
      mint: (id, cause) => this.mint(id, cause),
      now: deps.now,
      random: deps.random,
      onChange: (id) => {
        const status = this.refresher.status(id);
        if (status.state !== 'refreshing') this.deps.onChange?.(id, status.lastError ? 'failed' : 'refreshed'); // a request ended
      },
    });
  }

  /**
   * The value to put on one request for `secret`, narrowed as its grant says. `cause` is the
   * request's correlation id, which a token request made for it is audited under. Minted:
   * CredentialUnavailable when no token can be had now.
   */
  async use(secret: SecretSummary, cause?: string, narrowing?: Narrowing): Promise<Handed> {
    if (!isMinted(secret.kind)) {
      const use = await this.deps.vault.useSecret(secret.id);
      return secret.expiresAt === undefined ? use : { ...use, usableUntil: secret.expiresAt };
    }
    if (isExpired(secret, this.deps.now())) throw new CoreError('expired', 'the secret has expired', secret.id);
    const attention = this.attention.get(secret.id);
    if (attention) throw new CredentialUnavailable(attention);
    if (!usesMintedToken(secret)) return this.accessKey(secret);
    const slot = await this.slot(secret.id, narrowing);
    const token = await this.refresher.token(slot, cause);
    const usableUntil = Math.min(token.notAfter - expirySkew(token.issuedAt, token.notAfter), secret.expiresAt ?? Number.POSITIVE_INFINITY);
    const hit = this.compiled.get(slot);
    if (hit?.value === token.accessToken && hit.usableUntil === usableUntil) return hit; // a renewed lease: same value, later end
    const aws = secret.kind === 'aws' ? sessionKeys(token.accessToken) : undefined;
    const use = {
      value: token.accessToken,
      redaction: compileRedaction(aws ? awsValues(aws) : [token.accessToken]),
      usableUntil,
      ...(aws ? { aws } : {}),
    };
    this.compiled.set(slot, use);
    return use;
  }

  /** An `aws` secret without a role: its own access key signs (opened once per version and unlock). */
  private async accessKey(secret: SecretSummary): Promise<Handed> {
    const at = `${secret.id}@${secret.version}`;
    const hit = this.accessKeys.get(at);
    if (hit) return hit;
    const aws = checkAwsKeys(await this.deps.vault.openMaterial(secret.id));
    const use = {
      value: aws.accessKeyId,
      redaction: compileRedaction(awsValues(aws)),
      aws,
      ...(secret.expiresAt !== undefined ? { usableUntil: secret.expiresAt } : {}),
    };
    this.accessKeys.set(at, use);
    return use;
  }

  /** The slot a secret's tokens are cached under for this narrowing (registered: the mint needs it). */
  private async slot(secretId: string, narrowing: Narrowing | undefined): Promise<string> {
    const slot = await slotId(secretId, narrowing);
    if (narrowing) this.slots.set(slot, narrowing);
    return slot;
  }

  /** Now, as AWS's clock says (ours, corrected by what a clock-skew answer taught). */
  awsNow(): number {
    return this.deps.now() + this.awsClockOffset;
  }

  /** The API answered 401 to `token`: it is dropped (unless a newer one replaced it), so the next use mints. */
  async rejected(secret: SecretSummary, token: string): Promise<void> {
    if (!isMinted(secret.kind)) return;
    for (const [slot, handed] of this.compiled)
      if (slotSecret(slot) === secret.id && handed.value === token) {
        this.compiled.delete(slot);
        await this.refresher.invalidate(slot);
      }
  }

  /**
   * A fresh token now (keyhole_refresh; the person's "Refresh now", `byPerson`, which an open
   * breaker lets through): resolves when it is cached. Every narrowing of it in use is refreshed.
   */
  async refreshNow(secret: SecretSummary, cause?: string, byPerson = false): Promise<void> {
    if (!usesMintedToken(secret)) return;
    const attention = this.attention.get(secret.id);
    if (attention) throw new CredentialUnavailable(attention);
    const narrowed = [...this.slots.keys()].filter((slot) => slotSecret(slot) === secret.id);
    await Promise.all([secret.id, ...narrowed].map((slot) => this.refresher.refresh(slot, cause, byPerson)));
  }

  /** A transparent request went out with `secret`'s token: it is in use, so it is refreshed ahead of expiry. */
  async touched(secret: SecretSummary, narrowing?: Narrowing): Promise<void> {
    if (isMinted(secret.kind)) this.refresher.touch(await slotId(secret.id, narrowing));
  }

  /** When the alarm backstop should next wake the worker to refresh (undefined: nothing due). */
  nextRefresh(): number | undefined {
    return this.refresher.nextRefresh();
  }

  /** A credential's state: its own slot's, or the narrowing last minted for when it has none. */
  status(secret: SecretSummary): CredentialView | null {
    if (!isMinted(secret.kind)) return null;
    if (!usesMintedToken(secret)) return { state: 'ok', failures: 0 };
    const attention = this.attention.get(secret.id);
    const all = [secret.id, ...[...this.slots.keys()].filter((slot) => slotSecret(slot) === secret.id)].map((slot) =>
      this.refresher.status(slot),
    );
    const failing = all.find((x) => x.lastError);
    const s = failing ?? all.reduce((a, b) => ((b.validUntil ?? 0) > (a.validUntil ?? 0) ? b : a));
    return attention ? { ...s, state: 'unavailable', attention } : s;
  }

  /**
   * The person changed secret `id` (or sync, any secret: null): what was derived from the old
   * material goes. A changed secret's cached tokens go too (its endpoint or client may differ).
   */
  async changed(id: string | null): Promise<void> {
    if (id === null) {
      this.keys.clear();
      this.compiled.clear();
      this.accessKeys.clear();
      this.attention.clear();
      return;
    }
    if (this.storing.has(id)) return;
    for (const k of this.keys.keys()) if (k.startsWith(`${id}/`)) this.keys.delete(k);
    for (const slot of this.compiled.keys()) if (slotSecret(slot) === id) this.compiled.delete(slot);
    for (const at of this.accessKeys.keys()) if (at.startsWith(`${id}@`)) this.accessKeys.delete(at);
    this.attention.delete(id);
    for (const [slot, held] of [...this.leased])
      if (slotSecret(slot) === id) {
        this.leased.delete(slot);
        this.deps.distant?.release?.(held.id, REPLACED_LEASE_GRACE_MS);
      }
    const narrowed = [...this.slots.keys()].filter((slot) => slotSecret(slot) === id);
    for (const slot of narrowed) this.slots.delete(slot);
    await Promise.all([id, ...narrowed].map((slot) => this.refresher.invalidate(slot)));
  }

  /**
   * Distant credentials whose secret no live grant holds any more (`granted` says which do): their
   * leases are revoked now and their cached credentials dropped; a new grant asks for a new one.
   */
  async releaseUngranted(granted: (secretId: string) => boolean): Promise<void> {
    for (const [slot, held] of [...this.leased]) {
      if (granted(slotSecret(slot))) continue;
      this.leased.delete(slot);
      this.compiled.delete(slot);
      await this.refresher.invalidate(slot);
      this.deps.distant?.release?.(held.id, 0);
    }
  }

  /** At lock: every token, key and state goes; the cache is wiped (the leases are revoked by their tracker). */
  async forget(): Promise<void> {
    this.leased.clear();
    this.refresher.forgetAll();
    this.keys.clear();
    this.compiled.clear();
    this.accessKeys.clear();
    this.slots.clear();
    this.attention.clear();
    await this.deps.cache.wipe();
  }

  /**
   * The credential of `slot` the refresher asked for (one at a time per slot): from the team tier
   * when the secret's tokens are shared there (a newer one another device minted, or minted here
   * under the team's lock and shared), else minted here.
   */
  private async mint(slot: string, cause?: string): Promise<Minted> {
    const team = this.deps.team;
    const secret = team ? await this.deps.vault.secretById(slotSecret(slot)) : null;
    if (!team || !secret || !sharedByTeam(secret)) return this.mintHere(slot, cause);
    const rotating = secret.kind === 'oauth2-refresh-token';
    const { from, ...token } = await team.obtain(
      slot,
      this.refresher.status(slot).validUntil,
      (chain) => this.mintHere(slot, cause, { chain }),
      { rotating },
    );
    if (from === 'team') this.deps.onShared?.(secret, cause);
    return token;
  }

  /**
   * One token request for the credential of `slot`, from this device. `underLock`: the team
   * tier's lock is held; a rotating refresh token is then spent here whichever device holds the
   * refresher role: the newest one (the log pulled first, or the team's chain if it is as new),
   * and its successor is stored, at a version above both, and pushed before the lock is let go.
   */
  private async mintHere(slot: string, cause?: string, underLock?: { readonly chain?: RefreshChain | undefined }): Promise<MintedHere> {
    const id = slotSecret(slot);
    const narrowing = this.slots.get(slot);
    if (underLock) await this.deps.syncNow?.().catch(() => {}); // the newest version of the secret first
    const secret = await this.deps.vault.secretById(id);
    const endpoint =
      secret?.kind === 'aws'
        ? secret.aws?.assumeRole?.endpoint
        : secret?.kind === 'distant'
          ? await this.deps.distant?.origin()
          : secret?.oauth2?.tokenEndpoint;
    if (secret?.kind === 'distant' && !endpoint) throw new CredentialError('not-synced');
    if (!secret || !endpoint || !isMinted(secret.kind)) throw new CredentialError('bad-endpoint');
    if (!underLock && secret.kind === 'oauth2-refresh-token' && secret.oauth2?.refresher !== (await this.deps.vault.deviceId())) {
      this.flag(id, 'not-refresher');
      throw new CredentialError('not-refresher');
    }
    const chain = underLock?.chain;
    const opened = await this.deps.vault.openMaterial(id);
    // the team's refresh token is the newest unless this device holds a later version of the secret
    // (the person pasted a new one)
    const material = chain && chain.rtVersion >= secret.version ? { ...opened, refreshToken: chain.refreshToken } : opened;
    const started = this.deps.now();
    const host = new URL(endpoint).host;
    const record = { kind: 'token.request' as const, correlationId: cause ?? crypto.randomUUID(), secret: secret.name, host };
    try {
      let minted: TokenSet;
      let status = 200;
      if (secret.kind === 'aws') minted = await this.assumeRole(secret, material, narrowing);
      else if (secret.kind === 'distant') minted = await this.fromDistant(secret, slot);
      else {
        const made = await this.tokenRequestFor(secret, secret.oauth2 as OAuth2Config, material, narrowing);
        status = made.status;
        await this.deps.beforeTokenRequest?.(made.req.url);
        minted = await requestToken(this.deps.fetch, made.req, this.deps.now, undefined, made.parse);
      }
      let rtVersion: number | undefined;
      if (minted.refreshToken && secret.kind === 'oauth2-refresh-token') {
        const above = Math.max(secret.version, chain?.rtVersion ?? 0) + 1;
        rtVersion = (await this.storeRefreshToken(id, minted.refreshToken, above)).version;
        if (underLock) await this.deps.syncNow?.().catch(() => {}); // in the log before the lock is let go
      }
      this.deps.audit({ ...record, decision: 'allowed', status, latencyMs: this.deps.now() - started });
      return rtVersion === undefined ? minted : { ...minted, rtVersion };
    } catch (e) {
      const code = e instanceof CredentialError ? e.code : 'network';
      this.deps.audit({
        ...record,
        decision: 'failed',
        ...(e instanceof CredentialError && e.detail.status ? { status: e.detail.status } : {}),
        reason: code,
        latencyMs: this.deps.now() - started,
      });
      if (code === 'invalid-grant' || code === 'bad-key' || code === 'bad-aws-key') this.flag(id, code);
      throw e;
    }
  }

  /**
   * A credential from an engine of the distant vault, asked for with this device's own login. One
   * under a lease is renewed while its maximum allows (the same credential, a later end: nothing
   * new is minted at the provider); then a new one is asked for, and the old lease revoked once
   * requests in flight with it are done.
   */
  private async fromDistant(secret: SecretSummary, slot: string): Promise<TokenSet> {
    const distant = this.deps.distant;
    if (!secret.distant || !distant) throw new CredentialError('not-synced');
    const tokenSet = (token: string, expiresAt: number): TokenSet => {
      const now = this.deps.now();
      if (!(expiresAt > now)) throw new CredentialError('bad-expires-in');
      return { accessToken: token, tokenType: 'Bearer', expiresIn: Math.floor((expiresAt - now) / 1000), notAfter: expiresAt };
    };
    const held = this.leased.get(slot);
    if (held && distant.renew && held.expiresAt > this.deps.now() && held.maxExpiresAt > held.expiresAt) {
      const renewed = await distant.renew(held.id, Math.max(1, Math.round(held.ttlMs / 1000))).catch(() => undefined);
      if (renewed && renewed.expiresAt > held.expiresAt) {
        held.expiresAt = renewed.expiresAt;
        return tokenSet(held.token, renewed.expiresAt);
      }
      // refused (at its maximum, revoked meanwhile) or unreachable: a new lease below
    }
    const t = await distant.token(secret.distant);
    if (held) {
      this.leased.delete(slot);
      distant.release?.(held.id, REPLACED_LEASE_GRACE_MS);
    }
    if (!headerSafe(t.token)) throw new CredentialError('bad-token');
    const minted = tokenSet(t.token, t.expiresAt);
    if (t.lease?.renewable)
      this.leased.set(slot, {
        id: t.lease.id,
        token: t.token,
        expiresAt: t.expiresAt,
        maxExpiresAt: t.lease.maxExpiresAt,
        ttlMs: t.expiresAt - this.deps.now(),
      });
    return minted;
  }

  /**
   * STS AssumeRole with the secret's access key: session credentials, cached as one token (their
   * three parts in JSON). A clock-skew answer teaches AWS's time (its Date), and the request is
   * signed once more with it; the session's expiry is then read in our own clock.
   */
  private async assumeRole(secret: SecretSummary, m: OAuth2Material, narrowing: Narrowing | undefined): Promise<TokenSet> {
    const aws = secret.aws;
    const role = aws?.assumeRole;
    if (!aws || !role) throw new CredentialError('bad-endpoint');
    const keys = checkAwsKeys(m);
    const ask = async (): Promise<TokenSet> => {
      const signedAt = this.awsNow();
      const offset = this.awsClockOffset;
      const policy = narrowing?.sessionPolicy ? { policy: narrowing.sessionPolicy } : {};
      const req = await assumeRoleRequest({ ...role, region: aws.region, ...policy }, keys, signedAt);
      await this.deps.beforeTokenRequest?.(req.url);
      return requestToken(this.deps.fetch, req, this.deps.now, undefined, (status, body, _now, date) => {
        const c = parseAssumeRoleResponse(status, body, signedAt, date);
        const notAfter = c.notAfter - offset;
        const token = JSON.stringify({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken });
        return { accessToken: token, tokenType: 'Bearer', expiresIn: Math.floor((notAfter - this.deps.now()) / 1000), notAfter };
      });
    };
    try {
      return await ask();
    } catch (e) {
      if (!(e instanceof CredentialError && e.code === 'clock-skew' && e.detail.serverTime !== undefined)) throw e;
      this.awsClockOffset = e.detail.serverTime - this.deps.now();
      return ask();
    }
  }

  /**
   * The token request for a secret, and how to read its answer: a GitHub App asks GitHub's own
   * endpoint (201, its own answer shape), narrowed as the grant says; every other kind makes an
   * OAuth 2.0 token request (200).
   */
  private async tokenRequestFor(
    secret: SecretSummary,
    config: OAuth2Config,
    m: OAuth2Material,
    narrowing: Narrowing | undefined,
  ): Promise<{ req: TokenRequest; parse?: typeof parseInstallationToken; status: number }> {
    if (secret.kind === 'github-app') {
      const jwt = await appJwt(await this.signingKey(secret, m), config.clientId, this.deps.now());
      const narrow = {
        ...(narrowing?.repositories ? { repositories: narrowing.repositories } : {}),
        ...(narrowing?.permissions ? { permissions: narrowing.permissions } : {}),
      };
      return { req: installationTokenRequest(config.tokenEndpoint, jwt, narrow), parse: parseInstallationToken, status: 201 };
    }
    const auth = await this.clientAuth(secret, config, m);
    const grant = await this.grant(secret, config, m);
    const endpoint = { url: config.tokenEndpoint, clientId: config.clientId, auth, ...(config.issuer ? { issuer: config.issuer } : {}) };
    return { req: await tokenRequest(endpoint, grant, this.deps.now(), crypto.randomUUID()), status: 200 };
  }

  /** What the token request asks for, by kind. */
  private async grant(secret: SecretSummary, config: OAuth2Config, m: OAuth2Material): Promise<TokenGrant> {
    switch (secret.kind) {
      case 'oauth2-refresh-token':
        return { type: 'refresh_token', refreshToken: m.refreshToken ?? '', ...(config.scope ? { scope: config.scope } : {}) };
      case 'google-service-account': {
        const claims = googleAssertionClaims({
          clientEmail: config.clientId,
          scopes: (config.scope ?? '').split(' ').filter(Boolean),
          tokenUri: config.tokenEndpoint,
          now: this.deps.now(),
          ...(config.subject ? { subject: config.subject } : {}),
        });
        return { type: 'jwt-bearer', assertion: await googleAssertion(await this.signingKey(secret, m), claims) };
      }
      default:
        return {
          type: 'client_credentials',
          ...(config.scope ? { scope: config.scope } : {}),
          ...(config.resource ? { resource: config.resource } : {}),
          ...(config.audience ? { audience: config.audience } : {}),
        };
    }
  }

  /** A secret's private key, imported once per version and unlock as a non-extractable key. */
  private async signingKey(secret: SecretSummary, m: OAuth2Material): Promise<SigningKey> {
    const slot = `${secret.id}/${secret.version}`;
    let key = this.keys.get(slot);
    if (!key) {
      key = importSigningKeyPem(m.privateKeyPem ?? '');
      this.keys.set(slot, key);
      key.catch(() => this.keys.delete(slot));
    }
    return key;
  }

  /** Stored before the access token is used: the old refresh token is gone from the vault once this resolves. */
  private async storeRefreshToken(id: string, refreshToken: string, atVersion?: number): Promise<SecretSummary> {
    this.storing.add(id);
    try {
      return await this.deps.vault.setRefreshToken(id, refreshToken, atVersion);
    } finally {
      this.storing.delete(id);
    }
  }

  private flag(id: string, code: CredentialErrorCode): void {
    this.attention.set(id, code);
    this.deps.onChange?.(id, 'attention');
  }

  private async clientAuth(secret: SecretSummary, config: OAuth2Config, m: OAuth2Material): Promise<ClientAuth> {
    switch (config.clientAuth) {
      case 'client_secret_basic':
      case 'client_secret_post':
        return { method: config.clientAuth, secret: m.clientSecret ?? '' };
      case 'private_key_jwt':
        return { method: 'private_key_jwt', key: await this.signingKey(secret, m) };
      case 'none':
        return { method: 'none' };
    }
  }
}

/** An AWS session as cached: its three parts, in JSON. */
function sessionKeys(token: string): AwsCredentials {
  const k = JSON.parse(token) as AwsCredentials;
  return { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey, ...(k.sessionToken ? { sessionToken: k.sessionToken } : {}) };
}

/** What an answer must never show of AWS keys: each part (the key id too: AWS echoes it in errors). */
const awsValues = (k: AwsCredentials): string[] => [k.accessKeyId, k.secretAccessKey, ...(k.sessionToken ? [k.sessionToken] : [])];

export { CredentialUnavailable };
