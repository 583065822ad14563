/**
 * Launches Debian's Chromium with the built extension (dist/) on a given profile, for the e2e
 * tests, the benchmarks and `npm start`. Playwright never downloads a browser here.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type BrowserContext, chromium, type Page, type Worker } from 'playwright';

export const ROOT = resolve(import.meta.dirname, '../..');
/** the built extension; KEYHOLE_DIST points the tests at another build (e.g. main's, to show a test failing before a fix) */
export const DIST = process.env.KEYHOLE_DIST ?? join(ROOT, 'dist');
export const TMP = join(ROOT, 'test/.tmp');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--password-store=basic',
];

export type Harness = {
  readonly context: BrowserContext;
  readonly extensionId: string;
  readonly profile: string;
  readonly worker: () => Promise<Worker>;
  /** a new tab on one of the extension's pages, e.g. 'src/popup/index.html' */
  readonly open: (path: string) => Promise<Page>;
  /** stop the MV3 service worker as Chrome does when idle (CDP ServiceWorker.stopAllWorkers) */
  readonly stopWorker: () => Promise<{ restarted: () => Promise<boolean> }>;
  readonly close: () => Promise<void>;
  /** SIGKILL the whole browser, as a crash or power loss would, and wait until it is gone */
  readonly kill: () => Promise<void>;
};

/** Chromium's id for an unpacked extension: SHA-256 of its path, first 32 hex digits mapped 0-f -> a-p. */
export function unpackedExtensionId(dir: string): string {
  const hex = createHash('sha256').update(dir).digest('hex').slice(0, 32);
  return [...hex].map((d) => String.fromCharCode(97 + Number.parseInt(d, 16))).join('');
}

export function newProfileDir(prefix = 'profile-'): string {
  mkdirSync(TMP, { recursive: true });
  return mkdtempSync(join(TMP, prefix));
}

export async function launch(
  opts: {
    profile?: string;
    headless?: boolean;
    /** the unpacked extension to load: dist/ unless told (e.g. a store zip, extracted) */
    extension?: string;
    extraArgs?: string[];
    otherExtensions?: string[];
    env?: Record<string, string>;
    /**
     * Keep Chrome's IPC flooding protection, which Playwright turns off by default
     * (`--disable-ipc-flooding-protection`). Without it a page calling history.replaceState in a
     * loop freezes the whole browser for a minute, with or without Keyhole (measured): a browser
     * as people run it throttles such a page instead.
     */
    floodingProtection?: boolean;
  } = {},
): Promise<Harness> {
  const ext = opts.extension ?? DIST;
  if (!existsSync(join(ext, 'manifest.json'))) throw new Error(`${ext} has no manifest: run \`npm run build\` first`);
  const profile = opts.profile ?? newProfileDir();
  const extensions = [ext, ...(opts.otherExtensions ?? [])].join(',');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: opts.headless ?? true,
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
    ...(opts.floodingProtection ? { ignoreDefaultArgs: ['--disable-ipc-flooding-protection'] } : {}),
    args: [...CHROMIUM_ARGS, `--disable-extensions-except=${extensions}`, `--load-extension=${extensions}`, ...(opts.extraArgs ?? [])],
  });
  // The worker starts on demand (e.g. not at once after a crash), so the id is computed, not read from it.
  const extensionId = unpackedExtensionId(ext);
  const ours = (w: Worker) => w.url().startsWith(`chrome-extension://${extensionId}/`);
  const worker = async () =>
    context.serviceWorkers().find(ours) ?? (await context.waitForEvent('serviceworker', { predicate: ours, timeout: 20_000 }));
  const open = async (path: string) => {
    const page = await context.newPage();
    await page.goto(`chrome-extension://${extensionId}/${path}`);
    return page;
  };
  const stopWorker = async () => {
    // A token in the worker's memory tells a restarted worker from the same one.
    const token = randomUUID();
    await (await worker()).evaluate((t) => Object.assign(self, { __keyholeTestToken: t }), token);
    const page = context.pages()[0] ?? (await context.newPage());
    const cdp = await context.newCDPSession(page);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    await cdp.detach();
    return {
      restarted: async () => {
        const now = await (await worker()).evaluate(() => (self as { __keyholeTestToken?: string }).__keyholeTestToken);
        return now !== token;
      },
    };
  };
  const pids = () => {
    try {
      return execFileSync('pgrep', ['-f', '--', `--user-data-dir=${profile}`], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return []; // pgrep exits 1 when nothing matches
    }
  };
  const kill = async () => {
    const running = pids();
    if (running.length === 0) throw new Error('kill: no browser process found for this profile');
    for (const pid of running) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (let i = 0; i < 100 && pids().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    if (pids().length > 0) throw new Error('kill: the browser survived SIGKILL');
    // The dead browser's profile lock stays behind; Chromium here will not take it over.
    for (const f of ['SingletonLock', 'SingletonSocket', 'SingletonCookie']) rmSync(join(profile, f), { force: true });
  };
  // a profile made here is removed on close; one the caller passed in is the caller's to keep
  const close = async () => {
    await context.close();
    if (opts.profile === undefined) rmSync(profile, { recursive: true, force: true });
  };
  return { context, extensionId, profile, worker, open, stopWorker, close, kill };
}

/** Calls the worker's RPC from an extension page, as the popup would. */
export async function rpc<T = unknown>(page: Page, method: string, params?: unknown): Promise<T> {
  return page.evaluate(([m, p]) => chrome.runtime.sendMessage({ kh: 1, method: m, params: p }), [method, params] as const) as Promise<T>;
}

/** The worker's RPC result, or an Error naming the method and the typed error the worker sent. */
export async function rpcOk<T>(page: Page, method: string, params?: unknown): Promise<T> {
  const r = await rpc<{ ok: boolean; result: T; error?: unknown }>(page, method, params);
  if (!r.ok) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
  return r.result;
}

/** Opens a section of the options page from its navigation, as a person would, and waits for it to be drawn. */
export async function showSection(page: Page, section: 'secrets' | 'sites' | 'sync' | 'audit' | 'settings'): Promise<void> {
  await page.locator(`#nav-${section}`).click();
  await page.waitForFunction((s) => document.getElementById('app')?.dataset.section === s, section);
}

export const POPUP = 'src/popup/index.html';
export const OPTIONS = 'src/options/index.html';
