/**
 * The demo loop for `npm start` and its e2e test: a small OpenAI-shaped API that streams a
 * chat completion (and records the key it received), and the demo agent app
 * (src/sdk/demo) served with the built SDK.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './browser.ts';
import { listen } from './servers.ts';

export const DEMO_SECRET = 'demo-llm';
/** where the demo app serves the SDK package's module (its import map names it @keyhole/sdk) */
export const SDK_PATH = '/node_modules/@keyhole/sdk/keyhole-sdk.js';
export const DEMO_VALUE = 'sk-FAKE-demo-key-not-real';

export type Demo = { readonly appUrl: string; readonly apiHost: string; readonly keysSeen: string[]; readonly close: () => Promise<void> };

export async function startDemo(ports: { app?: number; api?: number } = {}): Promise<Demo> {
  const keysSeen: string[] = [];
  const api = await listen((req, res) => {
    req.resume();
    req.on('end', () => {
      keysSeen.push(String(req.headers.authorization ?? ''));
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const words = 'Hello, newcomer! This answer came from the API, and the page never saw the key.'.split(' ');
      let i = 0;
      const tick = () => {
        if (i === words.length) return res.end('data: [DONE]\n\n');
        res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: (i ? ' ' : '') + words[i] } }] })}\n\n`);
        i++;
        setTimeout(tick, 40);
      };
      tick();
    });
  }, ports.api ?? 0);
  const apiHost = `127.0.0.1:${(api.address() as AddressInfo).port}`;
  const files: Record<string, [string, string]> = {
    '/': [join(ROOT, 'src/sdk/demo/index.html'), 'text/html'],
    '/demo.js': [join(ROOT, 'src/sdk/demo/demo.js'), 'text/javascript'],
    // dist-sdk/ is the @keyhole/sdk package (what npm pack puts in its tarball), served where an app's packages are
    [SDK_PATH]: [join(ROOT, 'dist-sdk/keyhole-sdk.js'), 'text/javascript'],
  };
  const app = await listen((req, res) => {
    const file = files[new URL(req.url ?? '/', 'http://x').pathname];
    if (!file) {
      res.writeHead(404);
      return res.end();
    }
    readFile(file[0]).then(
      (data) => {
        res.writeHead(200, { 'content-type': file[1] });
        res.end(data);
      },
      () => {
        res.writeHead(500);
        res.end('build the SDK first: npm run build');
      },
    );
  }, ports.app ?? 0);
  const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/?api=${encodeURIComponent(`http://${apiHost}`)}`;
  const close = async () => {
    for (const s of [api, app]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  };
  return { appUrl, apiHost, keysSeen, close };
}
