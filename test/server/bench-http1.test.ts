/**
 * The bench's lean HTTP/1.1 client (bench/http1.ts) against real Node HTTP servers: it must
 * report what the server answered and nothing else, or the spike's error count and latencies lie.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Pool, postRequest } from '../../bench/http1.ts';

const servers: Server[] = [];
const pools: Http1Pool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) p.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server running `handler`, counting the connections it accepted. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; connections: () => number; server: Server }> {
  const server = createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/path?q=1`, connections: () => connections, server };
}

function pool(url: string, idleMs?: number, maxConnections?: number): Http1Pool {
  const u = new URL(url);
  const p = new Http1Pool(Number(u.port), u.hostname, { timeoutMs: 2000, idleMs, maxConnections });
  pools.push(p);
  return p;
}

describe('the lean bench client', () => {
  it('sends method, path, headers and body, and reads answers split across packets, one connection for requests in turn', async () => {
    const seen: string[] = [];
    const s = await serve((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers.authorization} ${req.headers['content-type']} ${body}`);
        res.writeHead(seen.length === 2 ? 429 : 200, { 'content-length': 10 });
        res.write('01234'); // the body in two writes, the second later
        setTimeout(() => res.end('56789'), 20);
      });
    });
    const p = pool(s.url);
    const request = postRequest(s.url, '{"role":"agent"}', { authorization: 'Bearer FAKE-token' });
    expect(await p.request(request)).toBe(200);
    expect(await p.request(request)).toBe(429);
    expect(await p.request(request)).toBe(200);
    expect(seen).toEqual(Array(3).fill('POST /path?q=1 Bearer FAKE-token application/json {"role":"agent"}'));
    expect(s.connections()).toBe(1);
  });

  it('opens one connection per request in flight, and reuses them', async () => {
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('ok'), 10));
    });
    const p = pool(s.url);
    const request = postRequest(s.url, '{}');
    for (let round = 0; round < 3; round++)
      expect(await Promise.all(Array.from({ length: 4 }, () => p.request(request)))).toEqual([200, 200, 200, 200]);
    expect(s.connections()).toBe(4);
  });

  it('answers 0 for a connection dropped mid-answer, and opens a new one next time', async () => {
    let n = 0;
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-length': 100 });
        if (++n === 1) res.write('partial', () => res.destroy());
        else res.end('x'.repeat(100));
      });
    });
    const p = pool(s.url);
    const request = postRequest(s.url, '{}');
    expect(await p.request(request)).toBe(0);
    expect(await p.request(request)).toBe(200);
    expect(s.connections()).toBe(2);
  });

  it('refuses an answer it cannot frame (no content-length) instead of guessing, and frees its connection', async () => {
    let n = 0;
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        if (++n > 1) return res.end('framed');
        res.write('a write before the end: '); // so Node sends it chunked
        res.end('no content-length');
      });
    });
    const p = pool(s.url, undefined, 1);
    await expect(p.request(postRequest(s.url, '{}'))).rejects.toThrow(/without content-length/);
    expect(await p.request(postRequest(s.url, '{}'))).toBe(200); // the one connection allowed is a new one
    expect(s.connections()).toBe(2);
  });

  it('does not reuse a connection the server closed or said it would close, nor one idle too long', async () => {
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () =>
        res.writeHead(200, req.headers['x-close'] ? { connection: 'close', 'content-length': 0 } : { 'content-length': 0 }).end(),
      );
    });
    s.server.keepAliveTimeout = 100;
    const p = pool(s.url, 300);
    expect(await p.request(postRequest(s.url, '{}', { 'x-close': '1' }))).toBe(200);
    expect(await p.request(postRequest(s.url, '{}'))).toBe(200);
    expect(s.connections()).toBe(2);
    await new Promise((r) => setTimeout(r, 400)); // the server closes it after 100 ms
    expect(await p.request(postRequest(s.url, '{}'))).toBe(200);
    expect(s.connections()).toBe(3);

    s.server.keepAliveTimeout = 5000;
    const q = pool(s.url, 50); // the client gives up on idle connections first
    expect(await q.request(postRequest(s.url, '{}'))).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(await q.request(postRequest(s.url, '{}'))).toBe(200);
    expect(s.connections()).toBe(5);
  });

  it('keeps to maxConnections: requests beyond them wait, first come first served', async () => {
    const arrived: string[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    const s = await serve((req, res) => {
      arrived.push(String(req.headers['x-n']));
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      req.resume();
      req.on('end', () =>
        setTimeout(() => {
          inFlight--;
          res.end('ok');
        }, 10),
      );
    });
    const send = (p: Http1Pool, n: number) =>
      Array.from({ length: n }, (_, k) => p.request(postRequest(s.url, '{}', { 'x-n': String(k + 1) })));
    expect(await Promise.all(send(pool(s.url, undefined, 1), 4))).toEqual([200, 200, 200, 200]);
    expect(arrived).toEqual(['1', '2', '3', '4']);
    expect(s.connections()).toBe(1);

    const two = pool(s.url, undefined, 2);
    expect(await Promise.all(send(two, 6))).toEqual(Array(6).fill(200));
    expect(mostInFlight).toBe(2);
    expect(two.connections).toBe(2);
    expect(s.connections()).toBe(3);
  });

  it('gives a waiting request a new connection when the one it waited for was dropped', async () => {
    let n = 0;
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => (++n === 1 ? res.destroy() : res.end('ok')), 10));
    });
    const p = pool(s.url, undefined, 1);
    const request = postRequest(s.url, '{}');
    expect(await Promise.all([p.request(request), p.request(request)])).toEqual([0, 200]);
    expect(s.connections()).toBe(2);
    expect(p.connections).toBe(1);
  });

  it('answers 0 to requests still waiting for a connection when the pool closes', async () => {
    const s = await serve((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('ok'), 200));
    });
    const p = pool(s.url, undefined, 1);
    const request = postRequest(s.url, '{}');
    const first = p.request(request);
    const waiting = p.request(request);
    await new Promise((r) => setTimeout(r, 50));
    p.close();
    expect(await waiting).toBe(0);
    expect(await first).toBe(0);
    expect(await p.request(request)).toBe(0);
  });
});
