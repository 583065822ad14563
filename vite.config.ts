import { crx } from '@crxjs/vite-plugin';
import type { UserConfig } from 'vite';
import { defineConfig } from 'vitest/config';
import manifest from './manifest.json' with { type: 'json' };

// The SDK web apps import, @keyhole/sdk: one ES module built on its own (`vite build --mode sdk`)
// to dist-sdk/, beside the package's package.json and README (src/sdk/package/); its type
// declarations are emitted after it (`tsc -p src/sdk/tsconfig.json`). dist-sdk/ is the package.
const sdk: UserConfig = {
  publicDir: 'src/sdk/package',
  build: {
    outDir: 'dist-sdk',
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    lib: { entry: 'src/sdk/index.ts', formats: ['es'], fileName: () => 'keyhole-sdk.js' },
  },
};

type Manifest = typeof manifest & Record<string, unknown>;

/**
 * Firefox's manifest from the same source (../shared/FIREFOX.md): an event page instead of the
 * service worker, no offscreen permission (Firefox has no offscreen documents), no Chrome-only
 * keys, and the gecko settings AMO requires. Chrome never gets the gecko keys.
 */
export function firefoxManifest(m: Manifest): Record<string, unknown> {
  const { minimum_chrome_version: _, background, permissions, ...rest } = m;
  return {
    ...rest,
    background: { scripts: [background.service_worker], type: 'module' },
    permissions: permissions.filter((p) => p !== 'offscreen'),
    browser_specific_settings: {
      gecko: { id: 'keyhole@keyhole.dev', strict_min_version: '140.0', data_collection_permissions: { required: ['none'] } },
      // not built for Android; had it a minimum, data_collection_permissions would need 142 there
      gecko_android: { strict_min_version: '142.0' },
    },
  };
}

// The extension builds and the tests; the crx plugin is for the extension builds only. `--mode
// firefox` builds the Firefox add-on to dist-firefox/ (Chromium's build is dist/).
const extension = (browser: 'chrome' | 'firefox'): UserConfig => ({
  define: { __FIREFOX__: JSON.stringify(browser === 'firefox') },
  plugins: process.env.VITEST
    ? []
    : // The page-provider scripts run at document_start as plain IIFE files, without crxjs's async loader
      // (a MAIN-world script has no chrome.runtime to load modules with, and late injection races the page).
      [
        crx({
          manifest: browser === 'firefox' ? (firefoxManifest(manifest as Manifest) as unknown as typeof manifest) : manifest,
          browser,
          contentScripts: { standaloneFiles: ['src/inpage/provider.ts', 'src/content/bridge.ts'] },
        }),
      ],
  build: {
    outDir: browser === 'firefox' ? 'dist-firefox' : 'dist',
    emptyOutDir: true,
    target: browser === 'firefox' ? 'firefox140' : 'chrome120',
    sourcemap: false,
    minify: false,
    // pages the manifest does not name as pages: the offscreen clipboard document, the consent
    // window and the lane frame (web-accessible; content/lane-frame.ts)
    rollupOptions: {
      input: {
        consent: 'src/popup/consent.html',
        lane: 'src/content/lane.html',
        ...(browser === 'chrome' ? { offscreen: 'src/background/vault/offscreen.html' } : {}),
      },
    },
  },
  test: {
    reporters: ['default', './test/harness/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'server',
          include: ['test/server/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
});

export default defineConfig(({ mode }) => (mode === 'sdk' ? sdk : extension(mode === 'firefox' ? 'firefox' : 'chrome')));
