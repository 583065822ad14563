/**
 * The canary search of the agents suite, extended to everything minted (issue 13): three minted
 * credentials (client secret in Basic, a private_key_jwt key pasted as PEM, a rotating refresh
 * token) against the real OAuth 2.0 server, over several token lifetimes. The page calls endpoints
 * that echo the access token in every encoding, asks for grants, refreshes, hears events, and
 * meets a token endpoint that is down. Then every access token and refresh token the server
 * issued, both client secrets and the private key are searched for, in every form, everywhere
 * the page could observe and in the audit export. The API must have received the access tokens
 * and nothing else of the material.
 */
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK } from 'jose';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpcOk } from '../harness/browser.ts';
import { type OAuthServer, RESOURCE, startOAuthServer } from '../harness/oauth2-server.ts';
import { grantForPeriod, request, stream } from '../harness/provider.ts';
import { findAnyForm } from '../harness/scan.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const TTL_S = 4;
const ECHOES = [
  '/v1/echo',
  '/v1/echo-encoded',
  '/v1/echo-gzip',
  '/v1/echo-sized',
  '/v1/echo-json-slashes',
  '/v1/echo-html',
  '/v1/echo-form',
  '/v1/echo-utf16',
  '/v1/echo-binary',
  '/v1/echo-split',
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('canary: minted credentials show the page nothing', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  let h: Harness;
  let as: OAuthServer;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let page: Page;
  let options: Page;
  const observed: string[] = [];
  const consoleLines: string[] = [];
  const pageRequests: string[] = [];
  const rule = () => ({ hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' });

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);
  async function see(method: string, params?: unknown) {
    const answer = await request(page, method, params);
    observed.push(JSON.stringify(answer));
    return answer;
  }

  beforeAll(async () => {
    const publicJwk = { ...(await exportJWK(rsa.publicKey)), alg: 'RS256', use: 'sig', kid: 'client-key' };
    as = await startOAuthServer({ accessTokenTtlSeconds: TTL_S, clientJwks: { keys: [publicJwk] } });
    [api, app] = await Promise.all([apiServer(), appServer()]);
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: 'minted canary passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    const oauth2 = (clientId: string, clientAuth: string) => ({ tokenEndpoint: as.tokenUrl, clientId, clientAuth, resource: RESOURCE });
    await ok('secrets.create', {
      name: 'm-basic',
      kind: 'oauth2-client-credentials',
      rule: rule(),
      oauth2: oauth2('cc-basic', 'client_secret_basic'),
      material: { clientSecret: as.secrets.basic },
    });
    await ok('secrets.create', {
      name: 'm-jwt',
      kind: 'oauth2-client-credentials',
      rule: rule(),
      oauth2: { ...oauth2('cc-jwt', 'private_key_jwt'), issuer: as.issuer },
      material: { privateKeyPem: pem },
    });
    await ok('secrets.create', {
      name: 'm-rt',
      kind: 'oauth2-refresh-token',
      rule: rule(),
      oauth2: { tokenEndpoint: as.tokenUrl, clientId: 'rt-client', clientAuth: 'client_secret_basic' },
      material: { clientSecret: as.secrets.rt, refreshToken: await as.mintRefreshToken() },
    });
    page = await h.context.newPage();
    page.on('console', (m) => consoleLines.push(m.text()));
    page.on('request', (r) => pageRequests.push(`${r.method()} ${r.url()} ${JSON.stringify(r.headers())} ${r.postData() ?? ''}`));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    observed.push(JSON.stringify(await grantForPeriod(h.context, page, { secrets: ['m-basic', 'm-jwt', 'm-rt'], mode: 'broker' })));
    observed.push(JSON.stringify(await grantForPeriod(h.context, page, { secrets: ['m-basic'], mode: 'transparent' })));
    // the page listens to every event the provider sends
    await page.evaluate(() => {
      const w = window as unknown as { heard: unknown[] };
      w.heard = [];
      window.addEventListener('keyhole:announceProvider', (e) => {
        const provider = (e as CustomEvent).detail.provider as { on(n: string, f: (x: unknown) => void): void };
        for (const name of ['credentialChanged', 'grantsChanged', 'lock', 'unlock']) provider.on(name, (x) => w.heard.push({ name, x }));
      });
      window.dispatchEvent(new Event('keyhole:requestProvider'));
    });
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([as?.close(), api?.close(), app?.close()]);
  });

  it('over three token lifetimes, every echo of a minted token comes back stripped, brokered; the transparent rule carries it', async () => {
    const end = Date.now() + 3 * TTL_S * 1000;
    let rounds = 0;
    while (Date.now() < end) {
      for (const secret of ['m-basic', 'm-jwt', 'm-rt']) {
        for (const path of ECHOES) {
          const answer = await see('keyhole_fetch', { secret, url: `http://${api.host}${path}` });
          expect(answer.ok).toBe(true);
        }
        observed.push(JSON.stringify(await stream(page, { secret, url: `http://${api.host}/v1/stream?n=3&gap=5` })));
      }
      // transparent: the page's own fetch (no CORS from this API: an opaque answer) to a path that echoes nothing
      observed.push(
        await page.evaluate(async (u) => {
          const r = await fetch(u, { mode: 'no-cors' });
          return `${r.type} ${r.status}`;
        }, `http://${api.host}/v1/none`),
      );
      observed.push(JSON.stringify(await see('keyhole_getGrants')));
      rounds++;
      await sleep(300);
    }
    expect(rounds).toBeGreaterThan(2);
    // refreshes the page asked for, and the refresh token rotated with each
    for (const secret of ['m-basic', 'm-jwt', 'm-rt']) expect((await see('keyhole_refresh', { secret })).ok).toBe(true);
    expect(as.issued.refreshTokens.size).toBeGreaterThan(2);
    // transparent calls carried a minted token
    expect(api.received.some((r) => r.url === '/v1/none' && String(r.headers.authorization).startsWith('Bearer ey'))).toBe(true);
  });

  it('with the token endpoint down, the page hears of it in codes and events, never in values', async () => {
    as.faults.status = 503;
    try {
      await sleep(TTL_S * 1000); // every cached token is past its usable end
      for (const secret of ['m-basic', 'm-jwt', 'm-rt']) {
        const answer = await see('keyhole_fetch', { secret, url: `http://${api.host}/v1/echo` });
        expect(answer).toMatchObject({ ok: false, error: { code: 4402 } });
      }
      observed.push(JSON.stringify(await see('keyhole_getGrants')));
    } finally {
      delete as.faults.status;
    }
    // the person's "Refresh now" goes past the open breaker; the agent's calls work again
    const ids = (await ok<{ secrets: { id: string; name: string }[] }>('secrets.list')).secrets;
    for (const s of ids)
      expect({ name: s.name, view: await ok<{ state: string }>('credentials.refresh', { id: s.id }) }).toMatchObject({
        name: s.name,
        view: { state: 'ok' },
      });
    for (const secret of ['m-basic', 'm-jwt'])
      expect((await see('keyhole_fetch', { secret, url: `http://${api.host}/v1/echo` })).ok).toBe(true);
    expect((await see('keyhole_fetch', { secret: 'm-rt', url: `http://${api.host}/v1/echo-encoded` })).ok).toBe(true);
    observed.push(JSON.stringify(await page.evaluate(() => (window as unknown as { heard: unknown[] }).heard)));
  });

  it('no access token, refresh token, client secret or private key is anywhere the page can observe, nor in the audit export', async () => {
    const dom = await page.content();
    const storage = await page.evaluate(async () =>
      JSON.stringify({
        local: { ...localStorage },
        session: { ...sessionStorage },
        cookie: document.cookie,
        dbs: await indexedDB.databases(),
      }),
    );
    const exports = await Promise.all(['jsonl', 'csv'].map((format) => ok<{ text: string }>('audit.export', { format })));
    const haystacks: Record<string, string> = {
      answers: observed.join('\n'),
      console: consoleLines.join('\n'),
      dom,
      storage,
      pageRequests: pageRequests.join('\n'),
      auditJsonl: exports[0]?.text ?? '',
      auditCsv: exports[1]?.text ?? '',
    };
    expect(haystacks.answers?.length).toBeGreaterThan(50_000); // the flows really ran
    expect(haystacks.auditJsonl).toContain('token.request');

    const pemBody = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const material = [as.secrets.basic, as.secrets.rt, pem, pemBody, ...(pem.match(/^[A-Za-z0-9+/]{64}$/gm) ?? []).slice(0, 4)];
    const accessTokens = [...as.issued.accessTokens];
    const refreshTokens = [...as.issued.refreshTokens];
    expect(accessTokens.length).toBeGreaterThan(6);
    const needles = [...accessTokens, ...refreshTokens, ...material];
    for (const [where, text] of Object.entries(haystacks))
      for (const needle of needles) expect({ where, hits: findAnyForm(text, needle) }).toEqual({ where, hits: [] });

    // the API got access tokens (the oracle finds them there), and never any of the material
    const atApi = JSON.stringify(api.received);
    expect(accessTokens.filter((t) => findAnyForm(atApi, t).length > 0).length).toBeGreaterThan(3);
    for (const needle of [...refreshTokens, ...material]) expect(findAnyForm(atApi, needle)).toEqual([]);
  });
});
