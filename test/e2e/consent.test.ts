/**
 * The consent window against a page that tries to get a grant without the person meaning it
 * (issue 12, items 4 and 5): input that was already going on when the window appeared (clicks
 * under a resting pointer, Tab then Space, Enter) never approves, only a fresh press held until
 * the button fills does; names the page made up and hosts a secret is not bound to are answered
 * exactly as a denial, with nothing of them shown; the site's period is not preselected when it
 * is long; a prompt ends with the tab that asked; limits survive a worker restart; and a flood of
 * prompts from other tabs does not keep the person's own tab waiting.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { approve, request } from '../harness/provider.ts';
import { appServer } from '../harness/servers.ts';

const PASSPHRASE = 'consent test passphrase FAKE';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('consent that cannot be hijacked', () => {
  let h: Harness;
  let app: Awaited<ReturnType<typeof appServer>>;
  let options: Page;

  beforeAll(async () => {
    app = await appServer();
    h = await launch();
    options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: PASSPHRASE, kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'llm',
      value: 'sk-FAKE-consent-1234',
      rule: { hosts: ['127.0.0.1:9'], header: 'Authorization', template: 'Bearer {value}' },
    });
  });
  afterAll(async () => {
    await h?.close();
    await app?.close();
  });

  async function site(name: string): Promise<Page> {
    const page = await h.context.newPage();
    await page.goto(`http://${name}.localhost:${app.port}/`);
    return page;
  }

  /** Asks for a grant from `page`; resolves with the consent window once it shows, and the page's answer. */
  async function ask(page: Page, params: unknown) {
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') });
    const answer = request<{ grants: { id: string }[] }>(page, 'keyhole_requestGrant', params);
    const consent = await shown;
    await consent.waitForSelector('#deny');
    return { consent, answer };
  }

  /** The page's answer, if it came within `ms`. */
  const settled = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => 'pending' as const)]);

  it('clicks under a pointer resting where Allow appears never approve, however many and however late', async () => {
    const page = await site('clicks');
    const { consent, answer } = await ask(page, { secrets: ['llm'] });
    // the person's pointer is where the button will be, clicking away at a game
    const box = await consent.locator('#allow-period').boundingBox();
    if (!box) throw new Error('no Allow button');
    await consent.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (let i = 0; i < 25; i++) {
      await consent.mouse.down();
      await sleep(40);
      await consent.mouse.up();
      await sleep(60);
    }
    expect(await consent.locator('#allow-period').isDisabled()).toBe(false); // armed all the while
    expect(await settled(answer, 200)).toBe('pending');
    await consent.click('#deny');
    expect(await answer).toMatchObject({ ok: false, error: { code: 4001 } });
    await page.close();
  });

  it('Tab then Space, Enter, and Space taps on Allow never approve; a held press does', async () => {
    const page = await site('keys');
    const { consent, answer } = await ask(page, { secrets: ['llm'] });
    await consent.waitForSelector('#allow-once:not([disabled])');
    await consent.keyboard.press('Tab'); // Deny -> Allow once
    expect(await consent.evaluate(() => document.activeElement?.id)).toBe('allow-once');
    await consent.keyboard.press('Space');
    for (let i = 0; i < 5; i++) await consent.keyboard.press('Enter');
    for (let i = 0; i < 5; i++) await consent.keyboard.press('Space', { delay: 100 });
    expect(await settled(answer, 300)).toBe('pending');
    // a press held until the button fills is a decision
    await consent.keyboard.down('Space');
    await sleep(1100);
    if (!consent.isClosed()) await consent.keyboard.up('Space').catch(() => {});
    expect(await answer).toMatchObject({ ok: true });
    await page.close();
  });

  it('a genuine pointer hold approves', async () => {
    const page = await site('hold');
    const { consent, answer } = await ask(page, { secrets: ['llm'] });
    await approve(consent, '#allow-period');
    expect(await answer).toMatchObject({ ok: true });
    await page.close();
  });

  it('made-up names and unbound hosts get the same window, showing nothing of them, and the same 4001', async () => {
    const page = await site('oracle');
    for (const params of [
      { secrets: ['✔ Verified publisher: OpenAI, Inc.'] },
      { secrets: ['no-such-secret'] },
      { secrets: ['llm'], hosts: ['api.elsewhere.example'] },
    ]) {
      const { consent, answer } = await ask(page, params);
      const text = (await consent.locator('#app').textContent()) ?? '';
      expect(text).toContain('Nothing can be allowed');
      expect(text).not.toContain('Verified publisher');
      expect(text).not.toContain('no-such-secret');
      expect(text).not.toContain('llm');
      expect(await consent.locator('#allow-once, #allow-period').count()).toBe(0);
      await consent.click('#deny');
      expect(await answer).toEqual({ ok: false, error: { code: 4001, message: 'The person rejected the request.' } });
    }
    await page.close();
  });

  it('a long period the site asks for is labelled as its ask and not preselected', async () => {
    const page = await site('period');
    const { consent, answer } = await ask(page, { secrets: ['llm'], ttlSeconds: 30 * 24 * 3600 });
    expect(await consent.locator('#period option:checked').textContent()).toBe('1 hour');
    expect(await consent.locator('#period option', { hasText: '30 days (asked by the site)' }).count()).toBe(1);
    expect(await consent.locator('#asked-period').textContent()).toContain('The site asked for 30 days');
    await consent.click('#deny');
    expect(await answer).toMatchObject({ ok: false, error: { code: 4001 } });
    await page.close();
  });

  it('a prompt ends when the tab that asked closes: it can no longer grant', async () => {
    const page = await site('closing');
    const { consent, answer } = await ask(page, { secrets: ['llm'] });
    answer.catch(() => {}); // the page is closed below: it hears nothing back
    const closed = consent.waitForEvent('close');
    await page.close();
    await closed;
    const list = await rpc<{ result: { origin: string }[] }>(options, 'grants.list');
    expect(list.result.filter((g) => g.origin.startsWith('http://closing.'))).toEqual([]);
  });

  it('keeps the per-origin prompt limit across a worker restart', async () => {
    const page = await site('limited');
    for (let i = 0; i < 5; i++) {
      // a closed window is a denial, remembered per name (asked again, it answers at once): a new name each time
      const { consent, answer } = await ask(page, { secrets: [`probe-${i}`] });
      await consent.close();
      await answer;
    }
    const stop = await h.stopWorker();
    await rpc(options, 'status');
    expect(await stop.restarted()).toBe(true);
    // a remembered denial would answer 4001 at once; ask for a name not denied yet
    expect(await request(page, 'keyhole_requestGrant', { secrets: ['other-name'] })).toMatchObject({ ok: false, error: { code: 4429 } });
    await page.close();
  });

  it('a flood of prompts from other tabs does not keep the person’s own tab waiting', async () => {
    const flooders = await Promise.all(Array.from({ length: 6 }, (_, i) => site(`flood${i}`)));
    const first = ask(flooders[0] as Page, { secrets: ['llm'] });
    const { consent: floodConsent } = await first;
    const rest = flooders.slice(1).map((p) => request(p, 'keyhole_requestGrant', { secrets: ['llm'] }));
    await sleep(300);
    // the person is on their own tab, which asks last
    const mine = await site('mine');
    await mine.bringToFront();
    const next = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') });
    const myAnswer = request<{ grants: { id: string }[] }>(mine, 'keyhole_requestGrant', { secrets: ['llm'] });
    await sleep(300);
    await floodConsent.click('#deny');
    const shownNext = await next;
    await shownNext.waitForSelector('#origin');
    expect(await shownNext.locator('#origin').textContent()).toBe(`http://mine.localhost:${app.port}`);
    await approve(shownNext, '#allow-period');
    expect(await myAnswer).toMatchObject({ ok: true });
    // the flood's other prompts were refused for want of room, or wait their turn
    await rpc(options, 'vault.lock');
    for (const r of await Promise.all(rest)) expect(r).toMatchObject({ ok: false });
    await rpc(options, 'vault.unlock', { passphrase: PASSPHRASE });
    await Promise.all([...flooders, mine].map((p) => p.close()));
  });
});
