/**
 * A distant vault that lies on purpose, for the malicious-server suite. It speaks the real
 * protocol but checks nothing, keeps a log per "view" (so it can fork devices apart), and
 * lets a test rewrite any page before it is served. Clients must catch every lie.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LogEntry } from '../../src/core/sync/log.ts';
import { listen } from './servers.ts';

export type Branch = { entries: LogEntry[]; blobs: Map<string, string> };
export type PageJson = { head: { seq: number; hash: string }; entries: LogEntry[]; blobs: Record<string, string>; more: boolean };

export type EvilServer = {
  readonly origin: string;
  /** the log every device sees, unless forked */
  readonly main: Branch;
  /** give one device its own copy of the log from now on */
  readonly fork: (device: string) => Branch;
  /** rewrite pages served to a device (undefined: every device) */
  tamper: ((page: PageJson, device: string) => PageJson) | undefined;
  /** logins the server saw: what a relaying impostor could try elsewhere */
  readonly logins: { device: string; nonce: string; time: number; sig: string }[];
  /** where challenges come from: a real server an impostor relays, or its own */
  relayChallengesTo: string | undefined;
  /** answers a request its own way (true: answered), before any route: oversized or endless answers */
  raw: ((path: string, res: ServerResponse) => boolean) | undefined;
  readonly close: () => Promise<void>;
};

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let s = '';
  for await (const c of req) s += c;
  return s ? (JSON.parse(s) as Record<string, unknown>) : {};
}

export async function startEvilServer(hashOf: (e: LogEntry) => string): Promise<EvilServer> {
  const main: Branch = { entries: [], blobs: new Map() };
  const views = new Map<string, Branch>();
  const devices = new Map<string, { id: string }>();
  const view = (device: string) => views.get(device) ?? main;
  const headOf = (b: Branch) => {
    const last = b.entries.at(-1);
    return { seq: last?.seq ?? 0, hash: last === undefined ? '' : hashOf(last) };
  };
  const page = (b: Branch, after: number, device: string): PageJson => {
    const entries = b.entries.filter((e) => e.seq > after);
    const blobs: Record<string, string> = {};
    for (const e of entries)
      if (e.body.type === 'item.put' && b.blobs.has(e.body.blob)) blobs[e.body.blob] = b.blobs.get(e.body.blob) as string;
    const p = { head: headOf(b), entries, blobs, more: false };
    return evil.tamper ? evil.tamper(structuredClone(p), device) : p;
  };

  const server = await listen((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (evil.raw?.(u.pathname, res)) return;
      const device = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const x = req.method === 'POST' ? await body(req) : {};
      if (u.pathname === '/v1/devices' && req.method === 'POST') {
        const d = x.device as { id: string };
        devices.set(d.id, d);
        return json(res, 201, {});
      }
      const code = /^\/v1\/devices\/([0-9a-f]{20})$/.exec(u.pathname)?.[1];
      if (code !== undefined) return json(res, 200, { devices: [...devices.values()].filter((d) => d.id.startsWith(code)) });
      if (u.pathname === '/v1/recovery') return json(res, 201, {});
      if (u.pathname === '/v1/auth/challenge') {
        if (evil.relayChallengesTo !== undefined) {
          const r = await fetch(`${evil.relayChallengesTo}/v1/auth/challenge`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(x),
          });
          return json(res, r.status, await r.json());
        }
        return json(res, 200, { nonce: crypto.randomUUID(), origin: 'anything', expires: Date.now() + 60_000 });
      }
      if (u.pathname === '/v1/auth/login') {
        evil.logins.push(x as EvilServer['logins'][number]);
        // Any signature will do here; the token just names the device.
        return json(res, 200, { token: x.device, expires: Date.now() + 600_000 });
      }
      if (u.pathname === '/v1/vaults' && req.method === 'POST') {
        main.entries.push(x.genesis as LogEntry);
        return json(res, 201, { head: headOf(main) });
      }
      if (u.pathname === '/v1/vaults') return json(res, 200, { vaults: main.entries[0] ? [main.entries[0].vault] : [] });
      const m = /^\/v1\/vaults\/[^/]+\/(entries|commits)$/.exec(u.pathname);
      if (m?.[1] === 'entries') return json(res, 200, page(view(device), Number(u.searchParams.get('after') ?? 0), device));
      if (m?.[1] === 'commits') {
        const b = view(device);
        const expect = x.expect as { seq: number; hash: string };
        const head = headOf(b);
        if (expect.seq !== head.seq || expect.hash !== head.hash) return json(res, 409, page(b, expect.seq, device));
        b.entries.push(...(x.entries as LogEntry[]));
        for (const [h, v] of Object.entries(x.blobs as Record<string, string>)) b.blobs.set(h, v);
        return json(res, 200, { head: headOf(b) });
      }
      json(res, 404, { error: { code: 'not-found', message: 'no such route' } });
    })();
  });
  const port = (server.address() as { port: number }).port;
  const evil: EvilServer = {
    origin: `http://127.0.0.1:${port}`,
    main,
    fork(device) {
      const b = { entries: [...main.entries], blobs: new Map(main.blobs) };
      views.set(device, b);
      return b;
    },
    tamper: undefined,
    logins: [],
    relayChallengesTo: undefined,
    raw: undefined,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return evil;
}
