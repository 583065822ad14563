/**
 * Chromium with Keyhole, driven over a bare DevTools connection that attaches only to the pages
 * it drives. Playwright attaches to every target, the extension's service worker included, and
 * Chrome never stops a worker while a debugger is attached to it: tests of the MV3 idle stop
 * (and of what keeps the worker alive) need the worker left alone. Everything else uses
 * browser.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { CHROMIUM, CHROMIUM_ARGS, DIST } from './browser.ts';

export type RawPage = {
  /** evaluates an expression in the page, awaiting a promise; returns its JSON value */
  evaluate<T = unknown>(expression: string): Promise<T>;
  close(): Promise<void>;
};

export type RawBrowser = {
  open(url: string): Promise<RawPage>;
  /** live service workers whose script URL starts with `prefix` (a stopped worker has no target) */
  workers(prefix: string): Promise<string[]>;
  close(): Promise<void>;
};

type Reply = { id?: number; result?: Record<string, unknown>; error?: { message: string } };

export async function launchRaw(profile: string): Promise<RawBrowser> {
  const portFile = join(profile, 'DevToolsActivePort');
  rmSync(portFile, { force: true });
  const proc: ChildProcess = spawn(
    CHROMIUM,
    [
      ...CHROMIUM_ARGS,
      '--headless',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      `--disable-extensions-except=${DIST}`,
      `--load-extension=${DIST}`,
      'about:blank',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let endpoint = '';
  for (let i = 0; i < 200 && !endpoint; i++) {
    await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(portFile)) continue;
    const [port, path] = readFileSync(portFile, 'utf8').split('\n');
    if (port && path) endpoint = `ws://127.0.0.1:${port}${path}`;
  }
  if (!endpoint) {
    proc.kill('SIGKILL');
    throw new Error('raw-cdp: Chromium did not open its DevTools port');
  }
  const ws = new WebSocket(endpoint, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 0;
  const waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as Reply;
    if (m.id === undefined) return; // events: none are subscribed to
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error) w?.reject(new Error(`raw-cdp: ${m.error.message}`));
    else w?.resolve(m.result ?? {});
  });
  ws.on('close', () => {
    for (const w of waiting.values()) w.reject(new Error('raw-cdp: the DevTools connection closed'));
    waiting.clear();
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++nextId;
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  const open = async (url: string): Promise<RawPage> => {
    const { targetId } = (await send('Target.createTarget', { url })) as { targetId: string };
    // attached by hand, to this page alone (no auto-attach: the worker stays undebugged)
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = (await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId)) as {
        result: { value?: unknown };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      if (r.exceptionDetails) throw new Error(`raw-cdp: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value as T;
    };
    // The new target starts on about:blank, already 'complete': wait for the document of `url`
    // itself. An extension page asked for before Chrome has loaded the extension is an error
    // page: navigate again.
    const want = JSON.stringify(new URL(url).href);
    for (let i = 1; i <= 400; i++) {
      const here = await evaluate<boolean>(`location.href === ${want} && document.readyState === 'complete'`).catch(() => false);
      if (here) break;
      if (i % 100 === 0) await send('Page.navigate', { url }, sessionId).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
    return { evaluate, close: async () => void (await send('Target.closeTarget', { targetId })) };
  };

  const workers = async (prefix: string) => {
    const { targetInfos } = (await send('Target.getTargets')) as { targetInfos: { type: string; url: string; attached: boolean }[] };
    return targetInfos.filter((t) => t.type === 'service_worker' && t.url.startsWith(prefix)).map((t) => t.url);
  };

  const close = async () => {
    await send('Browser.close').catch(() => {});
    ws.close();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { open, workers, close };
}
