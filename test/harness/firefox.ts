/**
 * Firefox ESR with the built add-on (dist-firefox/, `npm run build`), driven over WebDriver BiDi
 * by puppeteer-core 24.43 (runs on Node 20, downloads nothing; docs/decisions.md). The add-on is
 * installed temporarily (BiDi `webExtension.install`); its moz-extension UUID is pinned by a pref
 * so its pages have known URLs. Each launch gets a fresh profile.
 */
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { ROOT } from './browser.ts';
import { until } from './sync.ts';

export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
export const FIREFOX_DIST = join(ROOT, 'dist-firefox');
export const ADDON_ID = 'keyhole@keyhole.dev';
/** the add-on's moz-extension host, pinned (extensions.webextensions.uuids) */
export const ADDON_UUID = '6a1d3b2e-8f0c-4c5e-9b7a-2d4e6f8a0b1c';

export type FirefoxHarness = {
  readonly browser: Browser;
  /** a new tab on one of the add-on's pages, e.g. 'src/options/index.html', once it has loaded */
  readonly open: (path: string) => Promise<Page>;
  readonly close: () => Promise<void>;
};

/** Firefox ESR, headless, with the add-on installed. `prefs` are added to the profile's. */
export async function launchFirefox(
  opts: { prefs?: Record<string, string | number | boolean> /** dist-firefox/ unless told */; addon?: string } = {},
): Promise<FirefoxHarness> {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX_PATH,
    headless: true,
    // Firefox 153 refuses WebDriver navigation to moz-extension: pages without it
    args: ['--remote-allow-system-access'],
    extraPrefsFirefox: {
      'extensions.webextensions.uuids': JSON.stringify({ [ADDON_ID]: ADDON_UUID }),
      'xpinstall.signatures.required': false,
      'extensions.webextOptionalPermissionPrompts': false,
      ...opts.prefs,
    },
  });
  try {
    const id = await browser.installExtension(opts.addon ?? FIREFOX_DIST);
    if (id !== ADDON_ID) throw new Error(`firefox: installed ${id}, not ${ADDON_ID}`);
  } catch (e) {
    await browser.close();
    throw e;
  }
  const open = async (path: string) => {
    const page = await browser.newPage();
    const url = `moz-extension://${ADDON_UUID}/${path}`;
    // puppeteer's BiDi navigation never reports a moz-extension page loaded: go, then wait for it
    void page.goto(url, { timeout: 0 }).catch(() => {});
    await loaded(page, url);
    await backgroundReady(page);
    return page;
  };
  return { browser, open, close: () => browser.close() };
}

/**
 * Waits until `page` shows `url`, fully loaded. Polled by hand rather than with waitForFunction: a
 * poll that lands while the page is swapped from about:blank to the add-on's page fails inside
 * Firefox's remote agent ("right-hand side of 'in' should be an object, got null"), and
 * waitForFunction gives up at the first failure; here that poll counts as not loaded yet.
 */
function loaded(page: Page, url: string): Promise<void> {
  const shown = () => page.evaluate((u) => location.href === u && document.readyState === 'complete', url).catch(() => false);
  return until(shown, 20_000, `firefox to load ${url}`);
}

/**
 * Waits until the event page answers: just after the add-on is installed it may still be loading
 * its modules, and a message sent then finds no receiver.
 */
async function backgroundReady(page: Page): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    try {
      await rpc(page, 'status');
      return;
    } catch (e) {
      if (!String(e).includes('Receiving end does not exist') || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Calls the background's RPC from an add-on page, as the popup would. */
export function rpc<T = unknown>(page: Page, method: string, params?: unknown): Promise<T> {
  return page.evaluate((m, p) => chrome.runtime.sendMessage({ kh: 1, method: m, params: p }), method, params) as Promise<T>;
}
