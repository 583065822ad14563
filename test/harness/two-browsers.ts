/**
 * One face for Chromium (Playwright, browser.ts) and Firefox ESR (puppeteer-core over WebDriver
 * BiDi, firefox.ts), so the e2e core (test/e2e/core.test.ts) is one test source run in both. Only
 * what that core needs: extension pages and web pages to evaluate in, the consent window, a
 * pointer held on a button, and the background stopped as the browser would stop it.
 */
import type { Page as PlaywrightPage } from 'playwright';
import type { Page as PuppeteerPage } from 'puppeteer-core';
import { type Harness, launch } from './browser.ts';
import { ADDON_UUID, type FirefoxHarness, launchFirefox } from './firefox.ts';
import { holdPointer } from './provider.ts';

export type BrowserName = 'chromium' | 'firefox';

export type AnyPage = {
  /** `fn(arg)` in the page; a promise is awaited. */
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  waitFor(selector: string): Promise<void>;
  click(selector: string): Promise<void>;
  /** the pointer moves onto `selector` from outside, presses, holds `ms`, and lets go if the page is still open */
  hold(selector: string, ms: number): Promise<void>;
  isClosed(): boolean;
  close(): Promise<void>;
};

export type AnyBrowser = {
  readonly name: BrowserName;
  extensionPage(path: string): Promise<AnyPage>;
  webPage(url: string): Promise<AnyPage>;
  /** the next consent window the extension opens */
  nextConsent(): Promise<AnyPage>;
  /**
   * Stops the background as the browser does when idle (Chromium: the service worker stopped over
   * CDP; Firefox: the event page left idle past its timeout, 3 s here). Resolves to whether the
   * next answer came from a background started again.
   */
  suspend(): Promise<() => Promise<boolean>>;
  close(): Promise<void>;
};

/** Firefox's event-page idle timeout in these tests (ms; 30 s by default) */
const FIREFOX_IDLE_MS = 3000;

/** `extension`: the unpacked build to load (dist/ or dist-firefox/ unless told, e.g. a store zip extracted). */
export async function launchBrowser(name: BrowserName, opts: { extension?: string } = {}): Promise<AnyBrowser> {
  const at = opts.extension === undefined ? {} : { extension: opts.extension };
  return name === 'chromium'
    ? chromium(await launch(at))
    : firefox(
        await launchFirefox({
          prefs: { 'extensions.background.idle.timeout': FIREFOX_IDLE_MS },
          ...(opts.extension === undefined ? {} : { addon: opts.extension }),
        }),
      );
}

/** The background's RPC from an extension page, as the popup calls it: `{ ok, result }` or `{ ok: false, error }`. */
export function rpc<T>(
  page: AnyPage,
  method: string,
  params?: unknown,
): Promise<{ ok: boolean; result: T; error?: { code: string; message: string } }> {
  return page.evaluate(
    ({ m, x }) =>
      (globalThis as unknown as typeof globalThis & { chrome: typeof chrome }).chrome.runtime.sendMessage({ kh: 1, method: m, params: x }),
    { m: method, x: params },
  ) as never;
}

function fromPlaywright(p: PlaywrightPage): AnyPage {
  return {
    evaluate: (fn, arg) => p.evaluate(fn as never, arg) as never,
    waitFor: async (s) => void (await p.waitForSelector(s)),
    click: (s) => p.click(s),
    hold: async (s, ms) => {
      const box = await p.locator(s).boundingBox();
      if (!box) throw new Error(`hold: ${s} is not on screen`);
      await holdPointer(p, box, ms);
    },
    isClosed: () => p.isClosed(),
    close: () => p.close(),
  };
}

function fromPuppeteer(p: PuppeteerPage): AnyPage {
  return {
    evaluate: (fn, arg) => p.evaluate(fn as never, arg) as never,
    waitFor: async (s) => void (await p.waitForSelector(s, { timeout: 20_000 })),
    click: (s) => p.click(s),
    hold: async (s, ms) => {
      const el = await p.waitForSelector(s, { timeout: 20_000 });
      const box = await el?.boundingBox();
      if (!box) throw new Error(`hold: ${s} is not on screen`);
      await holdPointer(p, box, ms);
    },
    isClosed: () => p.isClosed(),
    close: () => p.close(),
  };
}

function chromium(h: Harness): AnyBrowser {
  return {
    name: 'chromium',
    extensionPage: async (path) => fromPlaywright(await h.open(path)),
    webPage: async (url) => {
      const p = await h.context.newPage();
      await p.goto(url);
      return fromPlaywright(p);
    },
    nextConsent: async () =>
      fromPlaywright(await h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') })),
    suspend: async () => (await h.stopWorker()).restarted,
    close: () => h.close(),
  };
}

function firefox(ff: FirefoxHarness): AnyBrowser {
  // a token in the event page's window tells a restarted event page from the same one
  const mark = async () => {
    const page = await ff.open('src/options/index.html');
    const token = crypto.randomUUID();
    const marked = await page.evaluate(async (t) => {
      const bg = (await (
        globalThis as unknown as { browser: { runtime: { getBackgroundPage(): Promise<Window | null> } } }
      ).browser.runtime.getBackgroundPage()) as (Window & { __keyholeTestToken?: string }) | null;
      if (bg) bg.__keyholeTestToken = t;
      return bg?.__keyholeTestToken === t;
    }, token);
    // without the mark, "started again" would be true of any answer
    if (!marked) throw new Error('firefox: the event page could not be marked');
    return { page, token };
  };
  return {
    name: 'firefox',
    extensionPage: async (path) => fromPuppeteer(await ff.open(path)),
    webPage: async (url) => {
      const p = await ff.browser.newPage();
      await p.goto(url);
      return fromPuppeteer(p);
    },
    nextConsent: async () => {
      const seen = new Set(await ff.browser.pages());
      const end = Date.now() + 20_000;
      for (;;) {
        // BiDi does not report a moz-extension page's URL to puppeteer (it says about:blank): ask the page
        const all = await ff.browser.pages();
        for (const p of all.filter((x) => !seen.has(x))) {
          const href = await p.evaluate(() => location.href).catch(() => '');
          if (href.startsWith(`moz-extension://${ADDON_UUID}/src/popup/consent.html`)) return fromPuppeteer(p);
        }
        if (Date.now() > end) throw new Error(`firefox: no consent window; pages: ${all.map((p) => p.url()).join(', ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    suspend: async () => {
      const { page, token } = await mark();
      await page.close(); // an open extension page does not keep the event page alive, but it goes anyway
      await new Promise((r) => setTimeout(r, FIREFOX_IDLE_MS * 2 + 2000));
      return async () => {
        const probe = await ff.open('src/options/index.html');
        const now = await probe.evaluate(async () => {
          const bg = (await (
            globalThis as unknown as { browser: { runtime: { getBackgroundPage(): Promise<Window | null> } } }
          ).browser.runtime.getBackgroundPage()) as (Window & { __keyholeTestToken?: string }) | null;
          return bg?.__keyholeTestToken ?? null;
        });
        await probe.close();
        return now !== token;
      };
    },
    close: () => ff.close(),
  };
}
