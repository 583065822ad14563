/**
 * Which browser the pages were built for. `__FIREFOX__` is a build-time constant (vite.config.ts,
 * `vite build --mode firefox`), so each bundle keeps only its own branch.
 */
declare const __FIREFOX__: boolean;

export const FIREFOX = __FIREFOX__;
