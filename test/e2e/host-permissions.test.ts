/**
 * Host permissions for hosts the manifest does not name (everything but loopback) are asked of
 * Chrome by the consent window's Allow click, and Chrome's own prompt decides. Headless Chromium
 * cannot show that prompt, so this runs headed on Xvfb and answers it with xdotool, as a person
 * at the keyboard would. Chrome's prompt has Deny as its default button: Return refuses it,
 * Tab then Return allows. Non-loopback names resolve to this machine (--host-resolver-rules)
 * and are served over HTTPS with a certificate made for the run (--ignore-certificate-errors).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc, showSection } from '../harness/browser.ts';
import { approve, openConsent, request } from '../harness/provider.ts';
import { startXvfb } from '../harness/xvfb.ts';

const PASSPHRASE = 'host permissions passphrase FAKE';
const VALUE = 'sk-FAKE-remote-host-4b1e';

/** A self-signed certificate for *.keyhole.test, made with openssl for this run. */
function certificate(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=keyhole.test',
        '-addext',
        'subjectAltName=DNS:*.keyhole.test',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('host permissions asked by the Allow click (headed, Xvfb)', () => {
  let x: Awaited<ReturnType<typeof startXvfb>>;
  let h: Harness;
  let server: Server;
  let port: number;
  let options: Page;
  let agent: Page;
  const auths: string[] = [];
  const apiPattern = 'https://api.keyhole.test/*';
  const agentPattern = 'https://agent.keyhole.test/*';

  /** One HTTPS server, two names: the agent web app and the API it calls. */
  beforeAll(async () => {
    server = createServer(certificate(), (req, res) => {
      if (req.headers.host?.startsWith('agent.keyhole.test') || req.headers.host?.startsWith('byok.keyhole.test')) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<!doctype html><title>remote agent</title><p>agent');
      }
      auths.push(String(req.headers.authorization ?? ''));
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    x = await startXvfb();
    h = await launch({
      headless: false,
      env: { DISPLAY: x.display },
      extraArgs: ['--host-resolver-rules=MAP *.keyhole.test 127.0.0.1', '--ignore-certificate-errors'],
    });
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'remote',
      value: VALUE,
      rule: { hosts: [`api.keyhole.test:${port}`], header: 'Authorization', template: 'Bearer {value}' },
    });
    agent = await h.context.newPage();
    await agent.goto(`https://agent.keyhole.test:${port}/`);
  });
  afterAll(async () => {
    await h?.close();
    x?.stop();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  const holds = (pattern: string) => options.evaluate((p) => chrome.permissions.contains({ origins: [p] }), pattern) as Promise<boolean>;

  /** Keys to Chrome's permission prompt, sent once it has had time to open over the consent window. */
  async function answerChrome(keys: string[]): Promise<void> {
    await new Promise((r) => setTimeout(r, 1500));
    execFileSync('xdotool', ['key', '--delay', '200', ...keys], { env: { ...process.env, DISPLAY: x.display } });
  }

  const consentFor = (params: unknown) => openConsent(h.context, agent, params, { timeout: 10_000 });

  /** Fetches the API from `page` until a request of it arrives carrying the key (the rule is installed just after the grant). */
  async function keyReachesApiFrom(page: Page): Promise<void> {
    const before = auths.length;
    await expect
      .poll(async () => {
        await page.evaluate((u) => fetch(u).then((r) => r.text()), `https://api.keyhole.test:${port}/v1/plain`);
        return auths.slice(before).includes(`Bearer ${VALUE}`);
      })
      .toBe(true);
  }

  it('refusing Chrome’s prompt allows nothing; accepting it allows the grant, and the brokered call reaches the host', async () => {
    expect(await holds(apiPattern)).toBe(false);
    const { consent, answer } = await consentFor({ secrets: ['remote'], ttlSeconds: 3600 });

    await approve(consent, '#allow-period');
    await answerChrome(['Return']); // Chrome's default button: Deny
    await consent.getByText('Chrome did not give Keyhole access to these hosts, so nothing was allowed.').waitFor();
    expect(await holds(apiPattern)).toBe(false);
    expect((await rpc<{ result: unknown[] }>(options, 'grants.list')).result).toHaveLength(0);

    await approve(consent, '#allow-period'); // the person changes their mind
    await answerChrome(['Tab', 'Return']);
    const granted = await answer;
    expect(granted.ok && granted.result.grants.map((g) => g.mode)).toEqual(['broker']);
    expect(await holds(apiPattern)).toBe(true);
    expect(await holds(agentPattern)).toBe(false); // brokered mode needs no access to the site itself

    const res = await request<{ status: number; body: string }>(agent, 'keyhole_fetch', {
      secret: 'remote',
      url: `https://api.keyhole.test:${port}/v1/echo`,
    });
    expect(res.ok && res.result.status).toBe(200);
    expect(res.ok && res.result.body).toBe('{"auth":"Bearer [REDACTED]"}');
    expect(auths.at(-1)).toBe(`Bearer ${VALUE}`);
  });

  it('a transparent grant also asks for the site’s own origin, then the key reaches the API from its tab', async () => {
    const { consent, answer } = await consentFor({ secrets: ['remote'], mode: 'transparent', ttlSeconds: 3600 });
    await approve(consent, '#allow-period');
    await answerChrome(['Tab', 'Return']);
    const granted = await answer;
    expect(granted.ok && granted.result.grants.map((g) => g.mode)).toEqual(['transparent']);
    expect(await holds(agentPattern)).toBe(true);
    await keyReachesApiFrom(agent); // the page's own fetch carries no key
  });

  it('a site that knows nothing of Keyhole, allowed from the options page, is asked for in Chrome’s prompt too', async () => {
    const byokPattern = 'https://byok.keyhole.test/*';
    expect(await holds(byokPattern)).toBe(false);
    await options.reload();
    await showSection(options, 'sites');
    await options.getByLabel('Site', { exact: true }).fill(`https://byok.keyhole.test:${port}`);
    await options.getByLabel('Secret', { exact: true }).selectOption({ label: `remote (api.keyhole.test:${port})` });
    await options.getByRole('button', { name: 'Allow this site' }).click();
    await answerChrome(['Tab', 'Return']);
    await expect.poll(() => holds(byokPattern)).toBe(true);
    await expect
      .poll(async () => (await rpc<{ result: { origin: string }[] }>(options, 'grants.list')).result.map((g) => g.origin))
      .toContain(`https://byok.keyhole.test:${port}`);

    const byok = await h.context.newPage();
    await byok.goto(`https://byok.keyhole.test:${port}/`);
    await keyReachesApiFrom(byok);
    await byok.close();
  });
});
