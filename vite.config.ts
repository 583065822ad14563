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

// The extension build and the tests; the crx plugin is for the extension build only.
const extension: UserConfig = {
  plugins: process.env.VITEST
    ? []
    : // The page-provider scripts run at document_start as plain IIFE files, without crxjs's async loader
      // (a MAIN-world script has no chrome.runtime to load modules with, and late injection races the page).
      [crx({ manifest, contentScripts: { standaloneFiles: ['src/inpage/provider.ts', 'src/content/bridge.ts'] } })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'chrome120',
    sourcemap: false,
    minify: false,
    // pages the manifest does not name as pages: the offscreen clipboard document, the consent
    // window and the lane frame (web-accessible; content/lane-frame.ts)
    rollupOptions: {
      input: { offscreen: 'src/background/vault/offscreen.html', consent: 'src/popup/consent.html', lane: 'src/content/lane.html' },
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
};

export default defineConfig(({ mode }) => (mode === 'sdk' ? sdk : extension));
