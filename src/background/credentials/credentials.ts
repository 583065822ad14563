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
import { CredentialError, type CredentialErrorCode } from '../../core/credentials/errors.ts';
import { appJwt, installationTokenRequest, parseInstallationToken } from '../../core/credentials/github.ts';
import { googleAssertion, googleAssertionClaims } from '../../core/credentials/google.ts';
import { isMinted, type OAuth2Config, type OAuth2Material } from '../../core/credentials/kinds.ts';
import { expirySkew } from '../../core/credentials/lifetime.ts';
import { type ClientAuth, type TokenGrant, type TokenRequest, type TokenSet, tokenRequest } from '../../core/credentials/oauth2.ts';
import { importSigningKeyPem, type SigningKey } from '../../core/credentials/pem.ts';
import { CoreError } from '../../core/errors.ts';
import { type InUse, isExpired, type VaultService } from '../vault/vault-service.ts';
import type { CredentialCache } from './cache.ts';
import { type CredentialStatus, CredentialUnavailable, Refresher } from './refresher.ts';
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
  /** a minted credential's token or state changed (refreshed, failed, needs attention) */
  readonly onChange?: (secretId: string, what: CredentialChange) => void;
};

export type CredentialChange = 'refreshed' | 'failed' | 'attention';

/** What goes on a request; a minted token also says until when it may (notAfter minus the skew). */
export type Handed = InUse & { readonly usableUntil?: number };

/** A credential's state as the person and the agent see it (never a value). */
export type CredentialView = CredentialStatus & {
  /** the token endpoint said the grant is dead, or another device holds the refresh token: the person must act */
  readonly attention?: CredentialErrorCode;
};

export class Credentials {
  private readonly refresher: Refresher;
  /** imported private keys (non-extractable), by secret id and version */
  private readonly keys = new Map<string, Promise<SigningKey>>();
  /** the compiled redaction of the token last handed out, by secret id */
  private readonly compiled = new Map<string, Handed>();
  /** credentials the person must look at before another token request is made */
  private readonly attention = new Map<string, CredentialErrorCode>();
  /** a rotated refresh token being stored: the vault's change notice for it is ours */
  private readonly storing = new Set<string>();

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
   * The value to put on one request for `secret`. `cause` is the request's correlation id, which
   * a token request made for it is audited under. Minted: CredentialUnavailable when no token
   * can be had now.
   */
  async use(secret: SecretSummary, cause?: string): Promise<Handed> {
    if (!isMinted(secret.kind)) {
      const use = await this.deps.vault.useSecret(secret.id);
      return secret.expiresAt === undefined ? use : { ...use, usableUntil: secret.expiresAt };
    }
    if (isExpired(secret, this.deps.now())) throw new CoreError('expired', 'the secret has expired', secret.id);
    const attention = this.attention.get(secret.id);
    if (attention) throw new CredentialUnavailable(attention);
    const token = await this.refresher.token(secret.id, cause);
    const hit = this.compiled.get(secret.id);
    if (hit?.value === token.accessToken) return hit;
    const use = {
      value: token.accessToken,
      redaction: compileRedaction([token.accessToken]),
      usableUntil: Math.min(token.notAfter - expirySkew(token.issuedAt, token.notAfter), secret.expiresAt ?? Number.POSITIVE_INFINITY),
    };
    this.compiled.set(secret.id, use);
    return use;
  }

  /** The API answered 401 to `token`: it is dropped (unless a newer one replaced it), so the next use mints. */
  async rejected(secret: SecretSummary, token: string): Promise<void> {
    if (!isMinted(secret.kind) || this.compiled.get(secret.id)?.value !== token) return;
    this.compiled.delete(secret.id);
    await this.refresher.invalidate(secret.id);
  }

  /**
   * A fresh token now (keyhole_refresh; the person's "Refresh now", `byPerson`, which an open
   * breaker lets through): resolves when it is cached.
   */
  async refreshNow(secret: SecretSummary, cause?: string, byPerson = false): Promise<void> {
    if (!isMinted(secret.kind)) return;
    const attention = this.attention.get(secret.id);
    if (attention) throw new CredentialUnavailable(attention);
    await this.refresher.refresh(secret.id, cause, byPerson);
  }

  /** A transparent request went out with `secret`'s token: it is in use, so it is refreshed ahead of expiry. */
  touched(secret: SecretSummary): void {
    if (isMinted(secret.kind)) this.refresher.touch(secret.id);
  }

  /** When the alarm backstop should next wake the worker to refresh (undefined: nothing due). */
  nextRefresh(): number | undefined {
    return this.refresher.nextRefresh();
  }

  status(secret: SecretSummary): CredentialView | null {
    if (!isMinted(secret.kind)) return null;
    const attention = this.attention.get(secret.id);
    const s = this.refresher.status(secret.id);
    return attention ? { ...s, state: 'unavailable', attention } : s;
  }

  /**
   * The person changed secret `id` (or sync, any secret: null): what was derived from the old
   * material goes. A changed secret's cached token goes too (its endpoint or client may differ).
   */
  async changed(id: string | null): Promise<void> {
    if (id === null) {
      this.keys.clear();
      this.compiled.clear();
      this.attention.clear();
      return;
    }
    if (this.storing.has(id)) return;
    for (const k of this.keys.keys()) if (k.startsWith(`${id}/`)) this.keys.delete(k);
    this.compiled.delete(id);
    this.attention.delete(id);
    await this.refresher.invalidate(id);
  }

  /** At lock: every token, key and state goes; the cache is wiped. */
  async forget(): Promise<void> {
    this.refresher.forgetAll();
    this.keys.clear();
    this.compiled.clear();
    this.attention.clear();
    await this.deps.cache.wipe();
  }

  /** One token request for credential `id` (the refresher calls this, one at a time per id). */
  private async mint(id: string, cause?: string): Promise<TokenSet> {
    const secret = await this.deps.vault.secretById(id);
    if (!secret?.oauth2 || !isMinted(secret.kind)) throw new CredentialError('bad-endpoint');
    const config = secret.oauth2;
    if (secret.kind === 'oauth2-refresh-token' && config.refresher !== (await this.deps.vault.deviceId())) {
      this.flag(id, 'not-refresher');
      throw new CredentialError('not-refresher');
    }
    const material = await this.deps.vault.openMaterial(id);
    const started = this.deps.now();
    const host = new URL(config.tokenEndpoint).host;
    const record = { kind: 'token.request' as const, correlationId: cause ?? crypto.randomUUID(), secret: secret.name, host };
    try {
      const { req, parse, status } = await this.tokenRequestFor(secret, config, material);
      await this.deps.beforeTokenRequest?.(req.url);
      const minted = await requestToken(this.deps.fetch, req, this.deps.now, undefined, parse);
      if (minted.refreshToken && secret.kind === 'oauth2-refresh-token') await this.storeRefreshToken(id, minted.refreshToken);
      this.deps.audit({ ...record, decision: 'allowed', status, latencyMs: this.deps.now() - started });
      return minted;
    } catch (e) {
      const code = e instanceof CredentialError ? e.code : 'network';
      this.deps.audit({
        ...record,
        decision: 'failed',
        ...(e instanceof CredentialError && e.detail.status ? { status: e.detail.status } : {}),
        reason: code,
        latencyMs: this.deps.now() - started,
      });
      if (code === 'invalid-grant' || code === 'bad-key') this.flag(id, code);
      throw e;
    }
  }

  /**
   * The token request for a secret, and how to read its answer: a GitHub App asks GitHub's own
   * endpoint (201, its own answer shape); every other kind makes an OAuth 2.0 token request (200).
   */
  private async tokenRequestFor(
    secret: SecretSummary,
    config: OAuth2Config,
    m: OAuth2Material,
  ): Promise<{ req: TokenRequest; parse?: typeof parseInstallationToken; status: number }> {
    if (secret.kind === 'github-app') {
      const jwt = await appJwt(await this.signingKey(secret, m), config.clientId, this.deps.now());
      return { req: installationTokenRequest(config.tokenEndpoint, jwt), parse: parseInstallationToken, status: 201 };
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
  private async storeRefreshToken(id: string, refreshToken: string): Promise<void> {
    this.storing.add(id);
    try {
      await this.deps.vault.setRefreshToken(id, refreshToken);
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

export { CredentialUnavailable };
