/**
 * The lane (background/agents/lanes.ts, content/lane.ts): after a document's first brokered call, its
 * requests travel on a MessagePort straight to the worker, set up through a hidden extension
 * frame. Shown here: the frame comes and goes once; calls keep working on the lane; a worker stop
 * loses it and the next call still succeeds and opens a new one (which only a bound lane does); a
 * site that frames the lane page itself, or posts to a page's lane frame from a third-party
 * iframe, gets nothing. How much faster it is: `npm run bench -- --only fetch`
 * (fetch.messaging_noop).
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LANE_PAGE } from '../../src/core/agents/page-api.ts';
import { type Harness, launch, OPTIONS, rpc } from '../harness/browser.ts';
import { grantForPeriod, request } from '../harness/provider.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const SECRET_VALUE = 'sk-FAKE-lane-7319';

type FrameEvent = { what: 'added' | 'removed'; src: string; hidden: boolean; at: number };

describe('lane', () => {
  let h: Harness;
  let api: ApiServer;
  let app: Awaited<ReturnType<typeof appServer>>;

  beforeAll(async () => {
    [api, app] = await Promise.all([apiServer(), appServer()]);
    h = await launch();
    const options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: 'lane test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await rpc(options, 'settings.set', { requestsPerMinute: 100_000 }); // calls back to back below: not a rate-limit test
    await rpc(options, 'secrets.create', {
      name: 'lane-fake',
      value: SECRET_VALUE,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    await options.close();
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), app?.close()]);
  });

  const laneUrl = () => `chrome-extension://${h.extensionId}/${LANE_PAGE}`;

  /** Records every extension frame added to or removed from the page's DOM. */
  async function watchFrames(page: Page): Promise<void> {
    await page.evaluate(() => {
      const log: FrameEvent[] = [];
      (window as unknown as { frameLog: FrameEvent[] }).frameLog = log;
      const note = (what: FrameEvent['what'], n: Node) => {
        if (n instanceof HTMLIFrameElement && n.src.startsWith('chrome-extension://'))
          log.push({
            what,
            src: n.src,
            hidden: getComputedStyle(n).display === 'none' || n.style.display === 'none',
            at: performance.now(),
          });
      };
      new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) note('added', n);
          for (const n of r.removedNodes) note('removed', n);
        }
      }).observe(document, { childList: true, subtree: true });
    });
  }
  const frameLog = (page: Page) => page.evaluate(() => (window as unknown as { frameLog: FrameEvent[] }).frameLog);

  const fetchEcho = (page: Page) =>
    request<{ status: number; body: string }>(page, 'keyhole_fetch', { secret: 'lane-fake', url: `http://${api.host}/v1/echo` });

  /** The answers carry the redacted credential; the API got the real one. */
  async function expectBrokered(page: Page, calls: number): Promise<void> {
    const before = api.received.length;
    for (let i = 0; i < calls; i++) {
      const r = await fetchEcho(page);
      expect(r.ok).toBe(true);
      if (r.ok) expect(JSON.parse(r.result.body).auth).toBe('Bearer [REDACTED]');
    }
    const got = api.received.slice(before);
    expect(got).toHaveLength(calls);
    expect(got.every((x) => x.headers.authorization === `Bearer ${SECRET_VALUE}`)).toBe(true);
  }

  /** Waits until the log holds `n` frames added and removed, and returns what was added. */
  async function lanesOpened(page: Page, n: number): Promise<FrameEvent[]> {
    await expect.poll(async () => (await frameLog(page)).filter((e) => e.what === 'removed').length, { timeout: 10_000 }).toBe(n);
    const added = (await frameLog(page)).filter((e) => e.what === 'added');
    expect(added).toHaveLength(n);
    return added;
  }

  /**
   * Proves the page's lane was bound, not given up: a worker stop loses a bound lane, and the next
   * call (which must still succeed, and wakes the worker) opens a new one; a lane given up after
   * LANE_OPEN_TIMEOUT_MS is never asked for again in that document.
   */
  async function expectLaneBoundThenLost(page: Page, lanesSoFar: number): Promise<void> {
    const stop = await h.stopWorker();
    await expectBrokered(page, 1);
    expect(await stop.restarted()).toBe(true);
    await lanesOpened(page, lanesSoFar + 1);
  }

  it('after the first brokered call, a hidden frame binds a lane and is removed; calls keep working on it', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://127.0.0.1:${app.port}/`);
    await watchFrames(page);
    expect((await grantForPeriod(h.context, page, { secrets: ['lane-fake'] })).ok).toBe(true);
    expect(await frameLog(page)).toEqual([]); // no frame for pages that have not made a brokered call
    await expectBrokered(page, 1);
    const [opened] = await lanesOpened(page, 1);
    expect(opened).toMatchObject({ src: laneUrl(), hidden: true });
    await expectBrokered(page, 20);
    expect(await frameLog(page)).toHaveLength(2); // one lane per document
    // refusals travel the lane too, and are as typed as ever
    expect(await request(page, 'keyhole_fetch', { secret: 'nope', url: `http://${api.host}/v1/echo` })).toMatchObject({
      ok: false,
      error: { code: 4100 },
    });
    expect(await request(page, 'keyhole_noSuchMethod')).toMatchObject({ ok: false, error: { code: 4200 } });
    // A worker stop loses the lane; the next call still succeeds and a new lane is bound.
    await expectLaneBoundThenLost(page, 1);
    await expectBrokered(page, 5);
    await page.close();
  });

  it('calls in flight when the worker is stopped all settle, answered or -32603, and the next call succeeds', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://inflight.localhost:${app.port}/`);
    await watchFrames(page);
    expect((await grantForPeriod(h.context, page, { secrets: ['lane-fake'] })).ok).toBe(true);
    await expectBrokered(page, 1);
    await lanesOpened(page, 1);
    // four loops of calls back to back, on the lane, while the worker is stopped under them
    const outcomes = page.evaluate(
      ([url]) =>
        new Promise<Record<string, number>>((resolve) => {
          window.addEventListener(
            'keyhole:announceProvider',
            (e) => {
              const { provider } = (e as CustomEvent).detail;
              const tally: Record<string, number> = {};
              const until = performance.now() + 2000;
              const loop = async () => {
                while (performance.now() < until) {
                  const key = await provider.request({ method: 'keyhole_fetch', params: { secret: 'lane-fake', url } }).then(
                    () => 'ok',
                    (err: { code: number }) => String(err.code),
                  );
                  tally[key] = (tally[key] ?? 0) + 1;
                }
              };
              void Promise.all([loop(), loop(), loop(), loop()]).then(() => resolve(tally));
            },
            { once: true },
          );
          window.dispatchEvent(new Event('keyhole:requestProvider'));
        }),
      [`http://${api.host}/v1/echo`] as const,
    );
    await new Promise((r) => setTimeout(r, 500));
    const stop = await h.stopWorker();
    // every call settles: none is left waiting on a lost lane (the loops stop calling after 2 s)
    const tally = await Promise.race([outcomes, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
    if (tally === 'hung') throw new Error('a call on the lost lane never settled');
    expect(await stop.restarted()).toBe(true);
    expect(Object.entries(tally).filter(([k]) => k !== 'ok' && k !== '-32603')).toEqual([]);
    expect(tally.ok ?? 0).toBeGreaterThan(0);
    await expectBrokered(page, 2);
    await page.close();
  });

  it('a page whose CSP forbids frames still gets a lane (the page CSP does not cover extension frames)', async () => {
    const page = await h.context.newPage();
    const csp = `<meta http-equiv="Content-Security-Policy" content="frame-src 'none'; child-src 'none'">`;
    await page.goto(`http://strict.localhost:${app.port}/?html=${encodeURIComponent(`<!doctype html>${csp}<h1>strict</h1>`)}`);
    await watchFrames(page);
    expect((await grantForPeriod(h.context, page, { secrets: ['lane-fake'] })).ok).toBe(true);
    await expectBrokered(page, 1);
    await lanesOpened(page, 1);
    await expectBrokered(page, 5);
    await expectLaneBoundThenLost(page, 1);
    await page.close();
  });

  it('a site that frames the lane page itself gets nothing for a made-up token', async () => {
    const page = await h.context.newPage();
    const html = `<!doctype html><iframe id="lane" src="${laneUrl()}"></iframe>`;
    await page.goto(`http://localhost:${app.port}/?html=${encodeURIComponent(html)}`);
    const before = api.received.length;
    const heard = await page.evaluate(
      ([url]) =>
        new Promise<unknown[]>((resolve) => {
          const frame = document.getElementById('lane') as HTMLIFrameElement;
          const go = () => {
            const heard: unknown[] = [];
            const channel = new MessageChannel();
            channel.port1.onmessage = (e) => heard.push(e.data);
            (frame.contentWindow as Window).postMessage({ token: crypto.randomUUID() }, '*', [channel.port2]);
            // as if bound: a request, then listen for anything at all
            channel.port1.postMessage({ id: 'x1', method: 'keyhole_fetch', params: { secret: 'lane-fake', url } });
            setTimeout(() => resolve(heard), 1500);
          };
          if (frame.contentDocument === null) go();
          else frame.addEventListener('load', go, { once: true });
        }),
      [`http://${api.host}/v1/echo`] as const,
    );
    expect(heard).toEqual([]);
    expect(api.received.length).toBe(before);
    await page.close();
  });

  it("a third-party iframe in a page with a lane cannot bind one through the page's lane frame", async () => {
    const page = await h.context.newPage();
    const third = `http://localhost:${app.port}/`;
    await page.goto(`http://racing.localhost:${app.port}/?html=${encodeURIComponent(`<!doctype html><iframe src="${third}"></iframe>`)}`);
    await watchFrames(page);
    expect((await grantForPeriod(h.context, page, { secrets: ['lane-fake'] })).ok).toBe(true);
    await expect.poll(() => page.frames().length).toBe(2);
    const child = page.frames()[1] as NonNullable<ReturnType<Page['frames']>[number]>;
    await child.waitForLoadState();
    // The third party posts a made-up token to every sibling frame, again and again, racing the
    // content script for the lane frame's one message (the frame takes only its parent's).
    await child.evaluate(() => {
      const heard: unknown[] = [];
      (window as unknown as { heard: unknown[] }).heard = heard;
      const spam = () => {
        for (let i = 0; i < parent.frames.length; i++) {
          const f = parent.frames[i] as Window;
          if (f === window) continue;
          const channel = new MessageChannel();
          channel.port1.onmessage = (e) => heard.push(e.data);
          f.postMessage({ token: crypto.randomUUID() }, '*', [channel.port2]);
        }
      };
      setInterval(spam, 0);
    });
    await expectBrokered(page, 1);
    await lanesOpened(page, 1);
    await expectBrokered(page, 3);
    await expectLaneBoundThenLost(page, 1); // the page's own lane was bound all the same
    expect(await child.evaluate(() => (window as unknown as { heard: unknown[] }).heard)).toEqual([]);
    await page.close();
  });
});
