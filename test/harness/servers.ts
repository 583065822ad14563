/**
 * Local HTTP servers for the provider tests: an "API" that records what it received and can
 * echo the credential back in many encodings, and "agent apps" served on loopback hosts and
 * ports (plain HTTP is allowed there, so each port is its own origin).
 */

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Received = {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
};

export type ApiServer = {
  readonly port: number;
  readonly host: string;
  readonly received: Received[];
  /** streams whose client went away before the last event */
  readonly abandoned: () => number;
  readonly close: () => Promise<void>;
};

export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

const portOf = (s: Server) => (s.address() as AddressInfo).port;

/** A port free on loopback right now (for servers whose origin must be known before they start). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = portOf(s);
  await new Promise((r) => s.close(r));
  return port;
}
/** Closes a server and every connection it holds (keep-alive ones too). */
/** A request's whole body. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export const close = (s: Server) =>
  new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });

/** Echo routes: each returns the Authorization/x-api-key it got, encoded its own way. */
function credential(req: IncomingMessage): string {
  const auth = String(req.headers.authorization ?? req.headers['x-api-key'] ?? '');
  return auth.replace(/^Bearer /, '');
}

export async function apiServer(): Promise<ApiServer> {
  const received: Received[] = [];
  let port = 0;
  let abandoned = 0;
  const server = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const cred = credential(req);
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (o: unknown, extra: Record<string, string> = {}) => {
        res.writeHead(200, { 'content-type': 'application/json', ...extra });
        res.end(JSON.stringify(o));
      };
      switch (url.pathname) {
        case '/v1/echo':
          return json({ method: req.method, auth: req.headers.authorization ?? null, body });
        case '/v1/echo-encoded': {
          const b = Buffer.from(cred);
          return json(
            {
              raw: cred,
              base64: [0, 1, 2].map((k) => Buffer.concat([Buffer.alloc(k, 120), b]).toString('base64')),
              base64url: [0, 1, 2].map((k) => Buffer.concat([Buffer.alloc(k, 120), b]).toString('base64url')),
              hex: b.toString('hex'),
              HEX: b.toString('hex').toUpperCase(),
              percent: [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''),
              unicode: [...cred].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
            },
            { 'x-echo': cred, 'x-echo-b64': b.toString('base64'), 'www-authenticate': `Bearer realm="${cred}"` },
          );
        }
        case '/v1/echo-gzip': {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
          return res.end(gzipSync(Buffer.from(`your key is ${cred}, padded ${'.'.repeat(2000)}`)));
        }
        case '/v1/echo-sized': {
          // a declared length, with the credential as the very last bytes
          const b = Buffer.from(`{"b64":"${Buffer.from(cred).toString('base64')}","tail":"${cred}`);
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(b.length) });
          return res.end(b);
        }
        case '/v1/short': {
          // declares more than it sends, then drops the connection
          const b = Buffer.from(`your key is ${cred}`);
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(b.length + 100) });
          res.write(b);
          return setTimeout(() => res.destroy(), 20);
        }
        // issue 12, item 6: what a careless or hostile host was seen to do with a credential
        case '/v1/echo-header-name': {
          const name = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(cred) ? cred : `x-${Buffer.from(cred).toString('hex')}`;
          res.setHeader(name, 'yes');
          return json({ ok: true });
        }
        case '/v1/echo-split': {
          const cut = Math.floor(cred.length / 2);
          res.setHeader('x-split', [cred.slice(0, cut), cred.slice(cut)]);
          return json({ ok: true });
        }
        case '/v1/echo-json-slashes':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ echo: cred, b64: Buffer.from(`${cred}???`).toString('base64') }).replaceAll('/', '\\/'));
        case '/v1/echo-html': {
          const dec = [...cred].map((c) => `&#${c.charCodeAt(0)};`).join('');
          const hex = [...cred].map((c) => `&#x${c.charCodeAt(0).toString(16)}`).join('');
          const named = cred.replaceAll('/', '&sol;').replaceAll('+', '&plus;').replaceAll('-', '&#45;').replaceAll(' ', '&nbsp;');
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end(`<p>${dec}</p><p>${hex}</p><a title="${named}">x</a>`);
        }
        case '/v1/echo-form':
          res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' });
          return res.end(new URLSearchParams({ key: cred, ok: '1' }).toString());
        case '/v1/echo-utf16':
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-16le' });
          return res.end(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`your key is ${cred}`, 'utf16le')]));
        case '/v1/echo-gzip-raw':
          // compressed, but not said to be: fetch does not decode it
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(gzipSync(Buffer.from(`your key is ${cred}`)));
        case '/v1/gzip-raw-clean':
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(gzipSync(Buffer.from('nothing secret in here')));
        case '/v1/echo-binary': {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(Buffer.concat([Buffer.from([0, 255, 1, 254]), Buffer.from(cred), Buffer.from([0, 0])]));
        }
        case '/v1/big': {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return res.end(Buffer.alloc(11 * 1024 * 1024, 97));
        }
        case '/v1/redirect': {
          res.writeHead(302, { location: `http://localhost:${port}/v1/echo` });
          return res.end();
        }
        case '/v1/stream': {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          const n = Number(url.searchParams.get('n') ?? 5);
          const gap = Number(url.searchParams.get('gap') ?? 50);
          let i = 0;
          let gone = false;
          res.on('close', () => {
            if (i < n) abandoned++;
            gone = true;
          });
          const tick = () => {
            if (gone) return;
            if (i === n) {
              res.end('data: [DONE]\n\n');
              return;
            }
            // split the echoed credential across writes so it straddles chunk boundaries
            const line = `data: {"i":${i},"echo":"${cred}"}\n\n`;
            const cut = 7 + (i % 9);
            res.write(line.slice(0, cut));
            setTimeout(() => {
              res.write(line.slice(cut));
              i++;
              setTimeout(tick, gap);
            }, 5);
          };
          return tick();
        }
        default:
          res.writeHead(404, { 'content-type': 'text/plain' });
          return res.end('not found');
      }
    });
  });
  port = portOf(server);
  return { port, host: `127.0.0.1:${port}`, received, abandoned: () => abandoned, close: () => close(server) };
}

/** An agent web app: one HTML page, optionally with an iframe to another origin. */
export async function appServer(
  html = '<!doctype html><title>agent</title><h1>agent app</h1>',
): Promise<{ port: number; close: () => Promise<void> }> {
  const server = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(url.searchParams.get('html') ?? html);
  });
  return { port: portOf(server), close: () => close(server) };
}

/** One request an API received: its Authorization, path and query, page origin, method, headers, and when (ms since epoch). */
export type Seen = {
  readonly auth: string;
  readonly url: string;
  readonly origin: string;
  readonly method: string;
  readonly headers: IncomingMessage['headers'];
  readonly at: number;
};

/**
 * CORS for a test API called from pages: the headers every answer carries, and a preflight
 * (OPTIONS) answered here (true: answered). A wildcard does not cover Authorization, so the
 * allowed headers are the ones the browser asked for.
 */
export function cors(req: IncomingMessage, res: ServerResponse, methods: string): { headers: Record<string, string>; answered: boolean } {
  const headers = {
    'access-control-allow-origin': String(req.headers.origin ?? '*'),
    'access-control-allow-methods': methods,
    'access-control-allow-headers': String(req.headers['access-control-request-headers'] ?? ''),
    'access-control-max-age': '0',
    vary: 'origin',
  };
  if (req.method !== 'OPTIONS') return { headers, answered: false };
  res.writeHead(204, headers);
  res.end();
  return { headers, answered: true };
}

/** An OpenAI-shaped API with correct CORS (preflight included) that records each Authorization. */
export async function openaiServer(): Promise<{ port: number; host: string; auths: string[]; seen: Seen[]; close: () => Promise<void> }> {
  const auths: string[] = [];
  const seen: Seen[] = [];
  const server = await listen((req, res) => {
    const { headers: corsHeaders, answered } = cors(req, res, 'GET, POST, PUT, DELETE, OPTIONS');
    if (answered) return;
    req.resume();
    req.on('end', () => {
      auths.push(String(req.headers.authorization ?? ''));
      seen.push({
        auth: String(req.headers.authorization ?? ''),
        url: req.url ?? '',
        origin: String(req.headers.origin ?? ''),
        method: req.method ?? '',
        headers: req.headers,
        at: Date.now(),
      });
      // ?delay=ms answers late (a request the page can abort in flight)
      const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
    const answer = () => {
      if (res.destroyed) return;
      res.writeHead(200, { ...corsHeaders, 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-fake',
          object: 'chat.completion',
          created: 0,
          model: 'fake-model',
          choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'hello from the fake API' } }],
        }),
      );
    };
  });
  const port = (server.address() as AddressInfo).port;
  return { port, host: `127.0.0.1:${port}`, auths, seen, close: () => close(server) };
}

/** An agent app that uses the real `openai` package, served as ES modules from node_modules. */
export async function openaiApp(): Promise<{ port: number; close: () => Promise<void> }> {
  const root = new URL('../../node_modules/openai/', import.meta.url);
  const page = `<!doctype html><title>openai agent</title><h1>openai agent</h1>
<script type="module">
  import OpenAI from '/openai/index.mjs';
  window.askOpenAI = async (baseURL) => {
    const client = new OpenAI({ apiKey: 'sk-placeholder-not-a-key', baseURL, dangerouslyAllowBrowser: true, maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] });
    return r.choices[0].message.content;
  };
  window.openaiReady = true;
</script>`;
  const server = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/openai/')) {
      const file = new URL(url.pathname.slice('/openai/'.length), root);
      if (!file.href.startsWith(root.href)) {
        res.writeHead(403);
        return res.end();
      }
      return readFile(file).then(
        (data) => {
          res.writeHead(200, { 'content-type': 'text/javascript' });
          res.end(data);
        },
        () => {
          res.writeHead(404);
          res.end();
        },
      );
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(url.searchParams.get('html') ?? page);
  });
  return { port: portOf(server), close: () => close(server) };
}
