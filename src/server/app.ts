/**
 * The distant vault's HTTP API (docs/sync.md). It checks what it can without keys — entry
 * shape, chain, signatures, membership, blob hashes — so a stranger cannot write, but clients
 * never rely on it: they check everything again.
 */
import { hash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { canonicalJson } from '../core/canonical.ts';
import { RateLimiter } from '../core/rate-limit.ts';
import { engineEntriesProblem } from '../core/sync/engine-config.ts';
import {
  applyEntries,
  blobHash,
  checkDevice,
  checkDeviceId,
  checkEntry,
  type DevicePublic,
  entryHash,
  HEX64,
  type Head,
  importSigningPublic,
  isLogError,
  KeyCache,
  type LogEntry,
  type Membership,
  UUID,
} from '../core/sync/log.ts';
import { verifyLogin } from '../core/sync/login.ts';
import { EngineRoutes } from './engines/routes.ts';
import { HttpError, type RequestTarget, requestTarget } from './http.ts';
import type { KeyProvider } from './kms/provider.ts';
import { Metrics } from './metrics.ts';
import { SessionCache } from './session-cache.ts';
import type { Blob, Store, StoredEntry } from './store.ts';
import { TeamRoutes } from './team/routes.ts';
import { VaultStates } from './vault-states.ts';

export type Logger = (record: Readonly<Record<string, string | number | boolean>>) => void;

export type ServerOptions = {
  readonly store: Store;
  /** this server as clients address it, e.g. https://vault.example; logins are bound to it */
  readonly origin: string;
  readonly log?: Logger;
  readonly now?: () => number;
  readonly limits?: Partial<Limits>;
  /** the key provider the engines use; without one, no engine route answers */
  readonly kms?: KeyProvider;
  /** how often the lease sweeper and the team cache's sweep run (default 5 s; 0: never, tests sweep by hand) */
  readonly sweepIntervalMs?: number;
  /** how long a sweeper's claim hides a lease from other replicas (default 60 s) */
  readonly leaseClaimMs?: number;
  /** live leases at most per vault (default 1000) */
  readonly maxLeasesPerVault?: number;
};

export type Limits = {
  readonly bodyBytes: number;
  readonly blobBytes: number;
  readonly entriesPerCommit: number;
  readonly pageSize: number;
  readonly sessionMs: number;
  readonly challengeMs: number;
  readonly clockSkewMs: number;
  /** requests per minute per client address */
  readonly requestsPerMinute: number;
  /** challenge and login requests per minute per client address */
  readonly loginsPerMinute: number;
};

export const DEFAULT_LIMITS: Limits = {
  bodyBytes: 8 * 1024 * 1024,
  blobBytes: 256 * 1024,
  entriesPerCommit: 1000,
  pageSize: 1000,
  sessionMs: 10 * 60_000,
  challengeMs: 60_000,
  clockSkewMs: 60_000,
  requestsPerMinute: 6000,
  loginsPerMinute: 60,
};

/**
 * One JSON line per record on stdout. Lines written in one turn of the event loop leave in one
 * write (stdout to a pipe or file is a synchronous write on Linux: one per request was a tenth of
 * the server's time under load); an error leaves at once, and whatever waits leaves at exit.
 */
export const jsonLog: Logger = (() => {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    process.stdout.write(text);
  };
  process.once('exit', flush);
  // one ISO time per millisecond, and the record's own JSON after it (no copy of the record)
  let lastMs = 0;
  let lastTime = '';
  return (r) => {
    const ms = Date.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastTime = new Date(ms).toISOString();
    }
    const body = JSON.stringify(r);
    pending.push(body === '{}' ? `{"time":"${lastTime}"}\n` : `{"time":"${lastTime}",${body.slice(1)}\n`);
    if (r.level === 'error') flush();
    else if (pending.length === 1) setImmediate(flush);
  };
})();

export { HttpError };

/** one-shot: a Hash object per request cost ~3% of a JWT's event-loop time */
const tokenHash = (token: string): string => hash('sha256', token, 'hex');

export type VaultServer = {
  /** the engine routes (with a key provider): their lease sweeper, for tests and operators' tools */
  readonly engines: EngineRoutes | undefined;
  /** the team cache's routes (their sweep, for tests) */
  readonly team: TeamRoutes;
  readonly server: Server;
  readonly listen: (port: number, host?: string) => Promise<number>;
  /** Stop taking requests, end event streams, let requests in flight finish, close the store. */
  readonly close: () => Promise<void>;
};

export function createVaultServer(opts: ServerOptions): VaultServer {
  const { store, origin } = opts;
  const log = opts.log ?? jsonLog;
  const now = opts.now ?? Date.now;
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const keys = new KeyCache();
  const requests = RateLimiter.perMinute(limits.requestsPerMinute);
  const logins = RateLimiter.perMinute(limits.loginsPerMinute);
  const streams = new Set<ServerResponse>();
  const sessions = new SessionCache();
  let inFlight = 0;
  let closing = false;

  // ---- request helpers ----

  /** The body, within `limits.bodyBytes` (events, not an async iterator: this runs on every request). */
  function readBody(req: IncomingMessage): Promise<Buffer> {
    const tooLarge = () => new HttpError(413, 'too-large', 'request body too large');
    if (Number(req.headers['content-length'] ?? 0) > limits.bodyBytes) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (c: Buffer) => {
        size += c.length;
        if (size <= limits.bodyBytes) return void chunks.push(c);
        req.off('data', onData);
        req.resume(); // the rest is read and dropped; the answer says why
        reject(tooLarge());
      };
      req.on('data', onData);
      req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
      req.once('error', reject);
      req.once('close', () => req.complete || reject(new HttpError(400, 'bad-request', 'request aborted')));
    });
  }

  async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
      throw new HttpError(415, 'bad-request', 'expected application/json');
    const body = await readBody(req);
    let x: unknown;
    try {
      x = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HttpError(400, 'bad-request', 'body is not JSON');
    }
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new HttpError(400, 'bad-request', 'body must be an object');
    return x as Record<string, unknown>;
  }

  function send(res: ServerResponse, status: number, body: unknown | string): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async function device(req: IncomingMessage): Promise<string> {
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer ([A-Za-z0-9_-]{43})$/.exec(auth);
    if (m?.[1] === undefined) throw new HttpError(401, 'unauthorized', 'log in first');
    const hash = tokenHash(m[1]);
    const t = now();
    const cached = sessions.get(hash, t);
    if (cached !== undefined) return cached;
    const s = await store.getSession(hash, t);
    if (s === undefined) throw new HttpError(401, 'unauthorized', 'log in first');
    sessions.put(hash, s);
    return s.device;
  }

  async function member(req: IncomingMessage, vault: string): Promise<string> {
    const d = await device(req);
    // "No such vault" and "not yours" answer alike.
    if (!(await store.isMember(vault, d))) throw new HttpError(404, 'not-found', 'no such vault');
    return d;
  }

  const metrics = new Metrics();

  /** Ready: the database answers and the key provider opens (each within 2 s). Which one fails is said, nothing more. */
  async function ready(res: ServerResponse): Promise<void> {
    const within = <T>(p: Promise<T>) =>
      Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]).catch(() => false);
    const [database, keyProvider] = await Promise.all([
      within(store.head('00000000-0000-0000-0000-000000000000')),
      opts.kms ? within(opts.kms.status()) : Promise.resolve(true),
    ]);
    const ok = database && keyProvider && !closing;
    send(res, ok ? 200 : 503, { ok, database, keyProvider });
  }

  /** what the team and engine routes share: the store, the verified states, the request helpers */
  const routeDeps = {
    store,
    states: new VaultStates(store),
    now,
    device,
    readJson,
    send: (res: ServerResponse, status: number, body: unknown) => send(res, status, body),
    metrics,
    ...(opts.sweepIntervalMs !== undefined ? { sweepIntervalMs: opts.sweepIntervalMs } : {}),
  };
  const { states } = routeDeps;
  const team = new TeamRoutes(routeDeps);
  const engines = opts.kms
    ? new EngineRoutes({
        ...routeDeps,
        kms: opts.kms,
        origin,
        ...(opts.leaseClaimMs !== undefined ? { leaseClaimMs: opts.leaseClaimMs } : {}),
        ...(opts.maxLeasesPerVault !== undefined ? { maxLeasesPerVault: opts.maxLeasesPerVault } : {}),
      })
    : undefined;

  /** A page of entries after `after`, with the blobs they name, as one JSON text (no re-parsing). */
  async function page(vault: string, after: number, limit: number): Promise<string> {
    const [head, entries] = await Promise.all([store.head(vault), store.entries(vault, after, limit)]);
    const wanted: string[] = [];
    for (const e of entries) {
      const m = /"type":"item\.put"/.test(e.json) ? /"blob":"([0-9a-f]{64})"/.exec(e.json) : null;
      if (m?.[1] !== undefined) wanted.push(m[1]);
    }
    const blobs = await store.blobs(vault, wanted);
    const blobText = blobs.map(
      (b) => `"${b.hash}":"${Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength).toString('base64')}"`,
    );
    const last = entries.at(-1)?.seq ?? after;
    const more = head !== undefined && last < head.seq;
    return `{"head":${JSON.stringify(head)},"entries":[${entries.map((e) => e.json).join(',')}],"blobs":{${blobText.join(',')}},"more":${more}}`;
  }

  const intParam = (u: RequestTarget, name: string, dflt: number, max: number) => {
    const raw = u.searchParams.get(name);
    if (raw === null) return dflt;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new HttpError(400, 'bad-request', `${name} out of range`);
    return n;
  };

  // ---- routes ----

  async function registerDevice(req: IncomingMessage, res: ServerResponse) {
    const x = await readJson(req);
    let device: DevicePublic;
    try {
      device = checkDevice(x.device); // the same rules a device must meet to appear in a log
    } catch {
      throw new HttpError(400, 'bad-request', 'device malformed');
    }
    let ok = false;
    try {
      ok = checkDeviceId(device);
      await importSigningPublic(device.sign);
    } catch {
      ok = false;
    }
    if (!ok) throw new HttpError(400, 'bad-device', 'device id does not match its keys');
    await store.putDevice(device, now());
    send(res, 201, { device: device.id });
  }

  async function challenge(req: IncomingMessage, res: ServerResponse) {
    const x = await readJson(req);
    if (typeof x.device !== 'string' || !HEX64.test(x.device)) throw new HttpError(400, 'bad-request', 'device malformed');
    const nonce = randomBytes(32).toString('base64url');
    const expires = now() + limits.challengeMs;
    await store.putChallenge(nonce, x.device, expires);
    send(res, 200, { nonce, origin, expires });
  }

  async function login(req: IncomingMessage, res: ServerResponse) {
    const x = await readJson(req);
    const { device: id, nonce, time, sig } = x;
    if (typeof id !== 'string' || typeof nonce !== 'string' || typeof time !== 'number' || typeof sig !== 'string') {
      throw new HttpError(400, 'bad-request', 'login malformed');
    }
    const denied = new HttpError(401, 'login-failed', 'login failed');
    // The challenge is taken (deleted) first, so a replayed or raced nonce fails on every replica.
    const c = await store.takeChallenge(nonce);
    const t = now();
    if (c === undefined || c.device !== id || c.expires <= t || Math.abs(time - t) > limits.clockSkewMs) throw denied;
    const d = await store.getDevice(id);
    if (d === undefined || !(await verifyLogin({ origin, device: id, nonce, time }, sig, await keys.get(d)))) throw denied;
    const token = randomBytes(32).toString('base64url');
    const expires = t + limits.sessionMs;
    await store.putSession(tokenHash(token), id, expires);
    send(res, 200, { token, expires });
  }

  async function putRecovery(req: IncomingMessage, res: ServerResponse) {
    const x = await readJson(req);
    const { vault, lookup, blob } = x;
    if (typeof vault !== 'string' || !UUID.test(vault) || typeof lookup !== 'string' || !HEX64.test(lookup) || typeof blob !== 'string')
      throw new HttpError(400, 'bad-request', 'recovery malformed');
    await member(req, vault);
    const bytes = Buffer.from(blob, 'base64');
    if (bytes.length === 0 || bytes.length > 4096) throw new HttpError(400, 'bad-request', 'recovery blob size out of range');
    if (!(await store.putRecovery(lookup, vault, bytes))) throw new HttpError(409, 'exists', 'lookup taken');
    send(res, 201, {});
  }

  async function createVault(req: IncomingMessage, res: ServerResponse) {
    const d = await device(req);
    const x = await readJson(req);
    const e = parseEntry(x.genesis);
    if (e.author !== d) throw new HttpError(403, 'forbidden', 'a device creates vaults only as itself');
    const state = await applyOrReject(undefined, [e]);
    const ok = await store.createVault(state, { seq: 1, hash: state.head, json: canonicalJson(e) });
    if (!ok) throw new HttpError(409, 'exists', 'vault id taken');
    send(res, 201, { head: { seq: state.seq, hash: state.head } });
  }

  function parseEntry(x: unknown): LogEntry {
    try {
      return checkEntry(x);
    } catch (e) {
      if (isLogError(e)) throw new HttpError(400, e.code, e.message);
      throw e;
    }
  }

  async function applyOrReject(state: Membership | undefined, entries: readonly LogEntry[]): Promise<Membership> {
    try {
      return await applyEntries(state, entries, keys);
    } catch (err) {
      if (isLogError(err)) throw new HttpError(err.code === 'not-member' ? 403 : 400, err.code, err.message);
      throw err;
    }
  }

  async function commit(req: IncomingMessage, res: ServerResponse, vault: string) {
    const d = await member(req, vault);
    const x = await readJson(req);
    const expect = x.expect as Head;
    if (typeof expect !== 'object' || expect === null || !Number.isSafeInteger(expect.seq) || typeof expect.hash !== 'string') {
      throw new HttpError(400, 'bad-request', 'expect malformed');
    }
    if (!Array.isArray(x.entries) || x.entries.length === 0 || x.entries.length > limits.entriesPerCommit) {
      throw new HttpError(400, 'bad-request', `a commit has 1 to ${limits.entriesPerCommit} entries`);
    }
    const before = await store.membership(vault);
    if (before === undefined) throw new HttpError(404, 'not-found', 'no such vault');
    if (before.seq !== expect.seq || before.head !== expect.hash) return conflict(res, vault, expect);

    const rawBlobs = (x.blobs ?? {}) as Record<string, unknown>;
    if (typeof rawBlobs !== 'object' || Array.isArray(rawBlobs)) throw new HttpError(400, 'bad-request', 'blobs malformed');
    const blobs = new Map<string, Blob>();
    for (const [hash, b64] of Object.entries(rawBlobs)) {
      if (!HEX64.test(hash) || typeof b64 !== 'string') throw new HttpError(400, 'bad-request', 'blob malformed');
      const bytes = Buffer.from(b64, 'base64');
      if (bytes.length > limits.blobBytes) throw new HttpError(413, 'too-large', 'blob too large');
      if (blobHash(bytes) !== hash) throw new HttpError(400, 'bad-blob', 'blob does not match its hash');
      blobs.set(hash, { hash, bytes });
    }

    const parsed = x.entries.map(parseEntry);
    if (parsed.some((e) => e.author !== d)) throw new HttpError(403, 'forbidden', 'a device commits only its own entries');
    const state = await applyOrReject(before, parsed);
    // the log's rules say who may configure an engine; whether the configuration holds is said here, at once
    const badEngine = engineEntriesProblem(
      state,
      parsed.map((e) => e.body),
    );
    if (badEngine) throw new HttpError(400, 'bad-engine-config', badEngine);
    let membersChanged = false;
    const used = new Set<string>();
    const deleteBlobs: string[] = [];
    const stored: StoredEntry[] = parsed.map((e) => {
      const body = e.body;
      if (body.type === 'member.add' || body.type === 'member.remove') membersChanged = true;
      if (body.type === 'item.put') {
        if (!blobs.has(body.blob)) throw new HttpError(400, 'missing-blob', 'an item.put without its blob');
        used.add(body.blob);
      }
      if (body.type === 'item.destroy' || body.type === 'item.prune') deleteBlobs.push(...body.blobs);
      return { seq: e.seq, hash: entryHash(e), json: canonicalJson(e) };
    });
    if (used.size !== blobs.size) throw new HttpError(400, 'bad-request', 'a blob no entry names');
    const r = await store.commit({
      vault,
      expected: expect,
      entries: stored,
      after: state,
      membersChanged,
      blobs: [...blobs.values()],
      deleteBlobs,
    });
    if (!r.ok) return conflict(res, vault, expect);
    // a new epoch (a member removed): what the team cached under the old key goes (reads also check the epoch)
    if (state.epoch !== before.epoch) await store.teamCache.dropBefore(vault, state.epoch).catch(() => {});
    send(res, 200, { head: r.head });
  }

  /** 409 with what the client missed since the head it expected (or from the start, if that head is not ours). */
  async function conflict(res: ServerResponse, vault: string, expect: Head) {
    const known = expect.seq > 0 ? (await store.entries(vault, expect.seq - 1, 1))[0] : undefined;
    const after = known !== undefined && known.hash === expect.hash ? expect.seq : 0;
    send(res, 409, await page(vault, after, limits.pageSize));
  }

  async function pull(req: IncomingMessage, res: ServerResponse, vault: string, u: RequestTarget) {
    await member(req, vault);
    const after = intParam(u, 'after', 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(u, 'limit', limits.pageSize, limits.pageSize) || 1;
    send(res, 200, await page(vault, after, limit));
  }

  async function events(req: IncomingMessage, res: ServerResponse, vault: string) {
    await member(req, vault);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const write = (h: Head) => res.write(`event: head\ndata: ${JSON.stringify(h)}\n\n`);
    const head = await store.head(vault);
    // the server began closing while this one waited: a stream opened now would never be ended
    if (closing) return void res.end();
    if (head !== undefined) write(head);
    const off = store.subscribe((v, h) => {
      if (v === vault) write(h);
    });
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    streams.add(res);
    const done = () => {
      off();
      clearInterval(beat);
      streams.delete(res);
    };
    res.on('close', done);
  }

  async function route(req: IncomingMessage, res: ServerResponse, u: RequestTarget, ctx: { route: string }): Promise<void> {
    const p = u.pathname;
    const m = req.method ?? 'GET';
    if (p === '/healthz' && m === 'GET') {
      ctx.route = 'health';
      return send(res, closing ? 503 : 200, { ok: !closing, engine: store.engine });
    }
    if (p === '/readyz' && m === 'GET') {
      ctx.route = 'ready';
      return ready(res);
    }
    if (p === '/metrics' && m === 'GET') {
      ctx.route = 'metrics';
      const counts = await store.leases.counts();
      const text = metrics.text([
        {
          name: 'keyhole_leases',
          help: 'Leases by engine and state',
          values: counts.map((c) => ({ labels: { engine: c.engine, state: c.state }, value: c.n })),
        },
      ]);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
      return void res.end(text);
    }
    const ip = req.socket.remoteAddress ?? '?';
    const isLogin = p === '/v1/auth/challenge' || p === '/v1/auth/login' || p === '/v1/devices' || p.startsWith('/v1/recovery/');
    if (!requests.take(ip, now()) || (isLogin && !logins.take(ip, now()))) throw new HttpError(429, 'rate-limited', 'too many requests');
    const handler = pick(m, p, u);
    if (handler === undefined) throw new HttpError(404, 'not-found', 'no such route');
    ctx.route = handler[0];
    return handler[1]();

    function pick(m: string, p: string, u: RequestTarget): [string, () => Promise<void>] | undefined {
      if (m === 'POST' && p === '/v1/devices') return ['device', () => registerDevice(req, res)];
      if (m === 'POST' && p === '/v1/auth/challenge') return ['challenge', () => challenge(req, res)];
      if (m === 'POST' && p === '/v1/auth/login') return ['login', () => login(req, res)];
      if (m === 'POST' && p === '/v1/vaults') return ['create', () => createVault(req, res)];
      if (m === 'POST' && p === '/v1/recovery') return ['recovery.put', () => putRecovery(req, res)];
      const lookup = /^\/v1\/recovery\/([0-9a-f]{64})$/.exec(p)?.[1];
      if (m === 'GET' && lookup !== undefined) {
        return [
          'recovery.get',
          async () => {
            // no session: whoever holds the recovery key knows the lookup; the blob is sealed under that key
            const r = await store.getRecovery(lookup);
            if (r === undefined) throw new HttpError(404, 'not-found', 'no such recovery key');
            send(res, 200, { vault: r.vault, blob: Buffer.from(r.bytes).toString('base64') });
          },
        ];
      }
      const code = /^\/v1\/devices\/([0-9a-f]{20})$/.exec(p)?.[1];
      if (m === 'GET' && code !== undefined) {
        return [
          'pairing',
          async () => {
            await device(req); // a signed-in device looks up the one it is pairing
            send(res, 200, { devices: await store.devicesByPrefix(code) });
          },
        ];
      }
      if (m === 'GET' && p === '/v1/vaults')
        return ['vaults', async () => send(res, 200, { vaults: await store.vaultsOf(await device(req)) })];
      const teamRoute = team.pick(m, p, req, res);
      if (teamRoute) return teamRoute;
      const engineRoute = engines?.pick(m, p, req, res);
      if (engineRoute) return engineRoute;
      const v = /^\/v1\/vaults\/([^/]+)\/(entries|commits|events|head)$/.exec(p);
      const vault = v?.[1];
      if (vault === undefined || !UUID.test(vault)) return undefined;
      if (v?.[2] === 'entries' && m === 'GET') return ['pull', () => pull(req, res, vault, u)];
      if (v?.[2] === 'commits' && m === 'POST') return ['commit', () => commit(req, res, vault)];
      if (v?.[2] === 'events' && m === 'GET') return ['events', () => events(req, res, vault)];
      if (v?.[2] === 'head' && m === 'GET') {
        return [
          'head',
          async () => {
            await member(req, vault);
            send(res, 200, { head: await store.head(vault) });
          },
        ];
      }
      return undefined;
    }
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    inFlight++;
    const ctx = { route: 'unknown' };
    const finish = () => {
      inFlight--;
      metrics.observe(ctx.route, res.statusCode, performance.now() - started);
      // Structured and payload-free: method, route name, status, time. Never bodies, tokens or query strings.
      log({
        level: 'info',
        msg: 'request',
        method: req.method ?? '',
        route: ctx.route,
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
      });
    };
    res.once('close', finish);
    if (closing) {
      send(res, 503, { error: { code: 'shutting-down', message: 'server is shutting down' } });
      return;
    }
    const u = requestTarget(req.url);
    route(req, res, u, ctx).catch((e: unknown) => {
      if (e instanceof HttpError) {
        if (!res.headersSent) send(res, e.status, { error: { code: e.code, message: e.message } });
        return;
      }
      log({ level: 'error', msg: 'internal error', error: e instanceof Error ? e.name : 'unknown' });
      if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: 'internal error' } });
      else res.destroy();
    });
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 5_000;

  const sweep = setInterval(() => {
    void store.sweep(now()).catch(() => {});
    sessions.sweep(now());
    requests.sweep(now()); // addresses that went quiet are forgotten
    logins.sweep(now());
  }, 60_000);
  sweep.unref();

  return {
    server,
    engines,
    team,
    listen: (port, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const a = server.address();
          resolve(typeof a === 'object' && a !== null ? a.port : port);
        });
      }),
    async close() {
      closing = true;
      clearInterval(sweep);
      for (const s of streams) s.end();
      await engines?.close();
      team.close();
      states.close();
      for (const s of streams) s.end(); // any opened meanwhile (events() also refuses once closing)
      await new Promise<void>((r) => {
        // a connection that will not end (a client that keeps one open) does not keep the process
        const force = setTimeout(() => server.closeAllConnections(), 10_000);
        server.close(() => {
          clearTimeout(force);
          r();
        });
        server.closeIdleConnections();
      });
      const deadline = Date.now() + 10_000;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await store.close();
      log({ level: 'info', msg: 'stopped' });
    },
  };
}
