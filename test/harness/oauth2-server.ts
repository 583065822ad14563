/**
 * A real OAuth 2.0 authorization server for the tests: `oidc-provider` (pinned 9.13.3; it warns
 * on Node 20, its flows run, LIFETIMES.md), on loopback. Access tokens are JWTs (ES256) that an
 * API verifies against its JWKS with jose; client credentials for clients authenticated by Basic,
 * in the body, or by a private_key_jwt assertion; refresh tokens with rotation and reuse
 * detection (a reused one revokes its whole family); revocation. Token requests are counted, and
 * faults can be injected: an error status, or a slow answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export const RESOURCE = 'https://api.keyhole-tests.example';

export type OAuthServer = {
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly jwksUrl: string;
  /** POSTs to the token endpoint so far; tokens issued by grant type and by client */
  readonly tokenRequests: { total: number; byGrant: Record<string, number>; byClient: Record<string, number> };
  /** token requests refused, by OAuth error (`invalid_grant`: among others, a reused refresh token, which revokes its family) */
  readonly grantErrors: Record<string, number>;
  /** every access and refresh token the server handed out (for the canary search) */
  readonly issued: { readonly accessTokens: Set<string>; readonly refreshTokens: Set<string> };
  /** set to answer token requests with this status (and an OAuth-shaped error body), or slowly */
  readonly faults: { status?: number; delayMs?: number };
  /** a refresh token for `rt-client`, minted without a browser login (a grant saved by hand) */
  mintRefreshToken(): Promise<string>;
  /** the client secrets of the fixed clients (obvious fakes) */
  readonly secrets: { readonly basic: string; readonly post: string; readonly rt: string };
  readonly close: () => Promise<void>;
};

export async function startOAuthServer(opts: { accessTokenTtlSeconds?: number; clientJwks?: { keys: JWK[] } } = {}): Promise<OAuthServer> {
  const ttl = opts.accessTokenTtlSeconds ?? 60;
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const signing = await generateKeyPair('ES256', { extractable: true });
  const signingJwk = { ...(await exportJWK(signing.privateKey)), kid: 'server-es256', alg: 'ES256', use: 'sig' };
  const secrets = { basic: 'FAKE-cc-basic-secret-0001', post: 'FAKE-cc-post-secret-0002', rt: 'FAKE-rt-client-secret-0003' };
  const ccClient = (client_id: string, extra: Record<string, unknown>) => ({
    client_id,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    ...extra,
  });
  const provider = new Provider(issuer, {
    clients: [
      ccClient('cc-basic', { client_secret: secrets.basic, token_endpoint_auth_method: 'client_secret_basic' }),
      ccClient('cc-post', { client_secret: secrets.post, token_endpoint_auth_method: 'client_secret_post' }),
      ...(opts.clientJwks
        ? [
            ccClient('cc-jwt', {
              jwks: opts.clientJwks,
              token_endpoint_auth_method: 'private_key_jwt',
              token_endpoint_auth_signing_alg: 'RS256',
            }),
          ]
        : []),
      {
        client_id: 'rt-client',
        client_secret: secrets.rt,
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: ['https://app.keyhole-tests.example/cb'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingJwk] },
    // the server signs with its one ES256 key (the clients' default would be RS256)
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    scopes: ['openid', 'offline_access', 'read', 'write'],
    findAccount: async (_ctx: unknown, id: string) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    features: {
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'read write',
          audience: RESOURCE,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
    rotateRefreshToken: true,
    issueRefreshToken: async () => true,
    ttl: { AccessToken: ttl, ClientCredentials: ttl, RefreshToken: 24 * 3600, Grant: 24 * 3600 },
  } as never);
  const tokenRequests = { total: 0, byGrant: {} as Record<string, number>, byClient: {} as Record<string, number> };
  const faults: { status?: number; delayMs?: number } = {};
  const issued = { accessTokens: new Set<string>(), refreshTokens: new Set<string>() };
  provider.use(
    async (
      ctx: { path: string; method: string; status: number; body: unknown; req: unknown; request: { body?: Record<string, unknown> } },
      next: () => Promise<void>,
    ) => {
      if (ctx.path === '/token' && ctx.method === 'POST') {
        tokenRequests.total++;
        if (faults.delayMs) await new Promise((r) => setTimeout(r, faults.delayMs));
        if (faults.status) {
          ctx.status = faults.status;
          ctx.body = { error: 'temporarily_unavailable' };
          return;
        }
      }
      await next();
      if (ctx.path === '/token' && ctx.status === 200) {
        const body = ctx.body as { access_token?: unknown; refresh_token?: unknown } | undefined;
        if (typeof body?.access_token === 'string') issued.accessTokens.add(body.access_token);
        if (typeof body?.refresh_token === 'string') issued.refreshTokens.add(body.refresh_token);
      }
    },
  );
  // count by grant type once oidc-provider has parsed the body
  provider.on('grant.success', (ctx: { oidc: { params?: { grant_type?: string }; client?: { clientId: string } } }) => {
    const g = ctx.oidc.params?.grant_type ?? 'unknown';
    tokenRequests.byGrant[g] = (tokenRequests.byGrant[g] ?? 0) + 1;
    const c = ctx.oidc.client?.clientId ?? 'unknown';
    tokenRequests.byClient[c] = (tokenRequests.byClient[c] ?? 0) + 1;
  });
  const grantErrors: Record<string, number> = {};
  provider.on('grant.error', (_ctx: never, ...rest: unknown[]) => {
    const e = (rest[0] as { error?: string } | undefined)?.error ?? 'unknown';
    grantErrors[e] = (grantErrors[e] ?? 0) + 1;
  });
  server.on('request', provider.callback());
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    jwksUrl: `${issuer}/jwks`,
    tokenRequests,
    grantErrors,
    issued,
    faults,
    secrets,
    async mintRefreshToken() {
      const p = provider as unknown as {
        Client: { find(id: string): Promise<unknown> };
        Grant: new (
          o: Record<string, unknown>,
        ) => { addOIDCScope(s: string): void; addResourceScope(r: string, s: string): void; save(): Promise<string> };
        RefreshToken: new (o: Record<string, unknown>) => { save(): Promise<string> };
      };
      const client = await p.Client.find('rt-client');
      const grant = new p.Grant({ accountId: 'person-FAKE', clientId: 'rt-client' });
      grant.addOIDCScope('openid offline_access');
      grant.addResourceScope(RESOURCE, 'read write');
      const grantId = await grant.save();
      const rt = new p.RefreshToken({
        accountId: 'person-FAKE',
        client,
        grantId,
        scope: 'openid offline_access',
        resource: RESOURCE,
        gty: 'authorization_code',
        expiresWithSession: false,
        iiat: Math.floor(Date.now() / 1000),
      });
      const token = await rt.save();
      issued.refreshTokens.add(token);
      return token;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
