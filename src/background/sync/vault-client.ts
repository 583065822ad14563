/**
 * The device's side of the distant vault protocol (docs/sync.md): register, log in by a
 * signed challenge, pull and verify pages into a Replica, and push an outbox of edits with
 * compare-and-swap and retry. Uses only fetch and crypto.subtle: the worker, Node tests and
 * the bench run this same code.
 */
import type { AuditLink } from '../../core/audit/team-chain.ts';
import { fromBase64, toBase64 } from '../../core/bytes.ts';
import type { DeviceKeys } from '../../core/crypto/device.ts';
import {
  checkDevice,
  checkDeviceId,
  checkEntry,
  type DevicePublic,
  type EntryBody,
  entryHash,
  genesisEntry,
  isLogError,
  KeyCache,
  type LogEntry,
  LogError,
  nextEntry,
  signEntry,
} from '../../core/sync/log.ts';
import { signLogin } from '../../core/sync/login.ts';
import { BodyTooLarge, readAtMost } from '../bounded.ts';
import { type Head, Replica } from './replica.ts';

/** What the team cache holds for a slot: a sealed entry of the vault's epoch, and who holds the refresh lock. */
export type CacheView = {
  readonly entry?: {
    readonly epoch: number;
    readonly sealed: string;
    readonly notAfter: number;
    readonly issuedAt: number;
    readonly writer: string;
  };
  readonly lock?: { readonly holder: string; readonly until: number };
};

const cachePath = (vault: string, slot: string) => `/v1/vaults/${vault}/cache/${encodeURIComponent(slot)}`;

function cacheView(json: Record<string, unknown>): CacheView {
  const e = json.entry as Record<string, unknown> | undefined;
  const l = json.lock as Record<string, unknown> | undefined;
  const entry =
    e && typeof e.sealed === 'string' && typeof e.epoch === 'number' && typeof e.notAfter === 'number' && typeof e.issuedAt === 'number'
      ? { epoch: e.epoch, sealed: e.sealed, notAfter: e.notAfter, issuedAt: e.issuedAt, writer: String(e.writer ?? '') }
      : undefined;
  const lock = l && typeof l.holder === 'string' && typeof l.until === 'number' ? { holder: l.holder, until: l.until } : undefined;
  return { ...(entry ? { entry } : {}), ...(lock ? { lock } : {}) };
}

/** A credential an engine issued for requests: a token, and the lease it lives under if it has one. */
export type EngineToken = {
  readonly token: string;
  readonly expiresAt: number;
  readonly lease?: { readonly id: string; readonly maxExpiresAt: number; readonly renewable: boolean };
};

export type SyncErrorCode = 'network' | 'unauthorized' | 'refused' | 'not-found' | 'rate-limited' | 'server';

/** A transport or server refusal. Tampering is a LogError (core/sync/log.ts), never this. */
export class SyncError extends Error {
  override readonly name = 'SyncError';
  constructor(
    readonly code: SyncErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * What one answer of the distant vault may hold. A page of 1000 entries whose blobs are
 * 16 KiB values is about 23 MiB of JSON; anything past these bounds is a server that means
 * harm (or is broken): it is refused as a LogError, which stops sync with the sticky warning.
 */
export const MAX_ANSWER_BYTES = 48 * 1024 * 1024;
/** the most entries a distant vault sends in one page (its default page size): a 409 answer is one such page */
const SERVER_PAGE_SIZE = 1000;
/** one server-sent event (a head is ~100 bytes) */
export const MAX_EVENT_BYTES = 64 * 1024;

export type Page = { head: Head; entries: LogEntry[]; blobs: Map<string, Uint8Array>; more: boolean };

/** An edit waiting to land: its body and the blob it names. */
export type Pending = { readonly body: EntryBody; readonly blob?: Uint8Array };

export type ClientOptions = {
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  readonly pageSize?: number;
};

export class VaultClient {
  readonly keys = new KeyCache();
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #pageSize: number;
  #session: { token: string; expires: number } | undefined;
  /** entries signed for a commit whose answer never came: resent as they are, so a retry cannot duplicate */
  #inFlight: { vault: string; base: Head; entries: LogEntry[]; blobs: Record<string, string> } | undefined;

  constructor(
    readonly origin: string,
    readonly device: DeviceKeys,
    opts: ClientOptions = {},
  ) {
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.#now = opts.now ?? Date.now;
    this.#pageSize = opts.pageSize ?? 1000;
  }

  async #call(method: string, path: string, body?: unknown, auth = true): Promise<Answer> {
    const token = auth ? await this.#token() : undefined;
    try {
      return await callServer(this.#fetch, this.origin, method, path, body, token);
    } catch (e) {
      if (token !== undefined && e instanceof SyncError && e.code === 'unauthorized') this.#session = undefined;
      throw e;
    }
  }

  async register(): Promise<void> {
    await this.#call('POST', '/v1/devices', { device: this.device.public }, false);
  }

  async #token(): Promise<string> {
    const s = this.#session;
    if (s !== undefined && s.expires - 30_000 > this.#now()) return s.token;
    const id = this.device.public.id;
    const c = (await this.#call('POST', '/v1/auth/challenge', { device: id }, false)).json as { nonce: string };
    // Signed for the server as this device addresses it, whatever origin the answer claims.
    const claim = { origin: this.origin, device: id, nonce: c.nonce, time: this.#now() };
    const sig = await signLogin(claim, this.device.sign);
    const r = (await this.#call('POST', '/v1/auth/login', { device: id, nonce: c.nonce, time: claim.time, sig }, false)).json as {
      token: string;
      expires: number;
    };
    this.#session = { token: r.token, expires: r.expires };
    return r.token;
  }

  /**
   * The device a pairing code (the first 80 bits of its id) names. The id is the hash of the
   * device's keys and is checked here, so a server cannot hand over keys of its own.
   */
  async pairingDevice(prefix: string): Promise<DevicePublic> {
    const { json } = await this.#call('GET', `/v1/devices/${prefix}`);
    const found: DevicePublic[] = [];
    for (const x of Array.isArray(json.devices) ? json.devices : []) {
      try {
        const d = checkDevice(x);
        if (d.id.startsWith(prefix) && checkDeviceId(d)) found.push(d);
      } catch {
        // not a device: skip it
      }
    }
    if (found.length !== 1) throw new SyncError('not-found', 'no device has this pairing code');
    return found[0] as DevicePublic;
  }

  /** File the vault's sealed recovery device under its lookup (a member only). */
  async putRecovery(vault: string, lookup: string, sealed: Uint8Array): Promise<void> {
    await this.#call('POST', '/v1/recovery', { vault, lookup, blob: toBase64(sealed) });
  }

  /**
   * A credential of `role` from engine `engine` of `vault` (issue 15): what the signed log's policy
   * gives this device. A refusal is SyncError 'refused' (403: no such policy) or 'not-found'.
   */
  async engineToken(vault: string, engine: string, role: string, ttlSeconds?: number): Promise<EngineToken> {
    const json = await this.engineCredential(vault, engine, role, ttlSeconds);
    const expiresAt = json.expiresAt as number; // checked by engineCredential
    // a jwt engine's token; a leased API key (llm-keys); a database login is not a header value
    if (typeof json.token === 'string') return { token: json.token, expiresAt };
    const c = json.credential as { apiKey?: unknown; username?: unknown } | undefined;
    if (typeof c?.apiKey === 'string' && typeof json.leaseId === 'string') {
      const maxExpiresAt = typeof json.maxExpiresAt === 'number' ? json.maxExpiresAt : expiresAt;
      return { token: c.apiKey, expiresAt, lease: { id: json.leaseId, maxExpiresAt, renewable: json.renewable === true } };
    }
    if (typeof json.leaseId === 'string') await this.revokeLease(json.leaseId).catch(() => {});
    throw new SyncError(
      'refused',
      'this engine issues logins (a database role), not a value a request can carry: reveal one in the options page',
    );
  }

  /** An engine's answer as it is (a token, or a lease with its credential), its expiry checked. */
  async engineCredential(vault: string, engine: string, role: string, ttlSeconds?: number): Promise<Record<string, unknown>> {
    const { json } = await this.#call('POST', `/v1/vaults/${vault}/engines/${engine}/token`, {
      role,
      ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
    });
    if (typeof json.expiresAt !== 'number') throw new SyncError('server', 'engine answer malformed');
    return json;
  }

  // --- the team cache (issue 16): ciphertext and locks; see src/server/team/routes.ts ---

  async cacheGet(vault: string, slot: string): Promise<CacheView> {
    return cacheView((await this.#call('GET', cachePath(vault, slot))).json);
  }

  /** The refresh lock: `{lockToken, until, entry?}` if this device took it, else who holds it and what is cached. */
  async cacheLock(vault: string, slot: string, ttlSeconds: number): Promise<{ lockToken?: string; until?: number } & CacheView> {
    const { status, json } = await this.#call('POST', `${cachePath(vault, slot)}/lock`, { ttlSeconds });
    const view = cacheView(json);
    if (status === 200 && typeof json.lockToken === 'string' && typeof json.until === 'number')
      return { ...view, lockToken: json.lockToken, until: json.until };
    return view;
  }

  /** Stores an entry (and frees this device's lock); false if a later one is there or another device holds the lock. */
  async cachePut(
    vault: string,
    slot: string,
    entry: { epoch: number; sealed: string; notAfter: number; issuedAt: number },
    lockToken?: string,
  ): Promise<boolean> {
    const { status } = await this.#call('PUT', cachePath(vault, slot), { ...entry, ...(lockToken ? { lockToken } : {}) });
    return status === 200;
  }

  async cacheUnlock(vault: string, slot: string, lockToken: string): Promise<void> {
    await this.#call('POST', `${cachePath(vault, slot)}/unlock`, { lockToken });
  }

  // --- the team audit (issue 16): this device's chain of sealed records; see core/audit/team-chain.ts ---

  /** Appends links to this device's chain: the chain's head after, and whether they were taken. */
  async auditPush(
    vault: string,
    links: readonly (AuditLink & { hash: string })[],
  ): Promise<{ ok: boolean; head?: { seq: number; hash: string } }> {
    const { status, json } = await this.#call('POST', `/v1/vaults/${vault}/audit`, {
      links: links.map(({ seq, prev, epoch, sealed, hash }) => ({ seq, prev, epoch, sealed, hash })),
    });
    const h = json.head as { seq?: unknown; hash?: unknown } | null | undefined;
    const head = typeof h?.seq === 'number' && typeof h.hash === 'string' ? { seq: h.seq, hash: h.hash } : undefined;
    return { ok: status === 200, ...(head ? { head } : {}) };
  }

  /** The devices with a chain in `vault` and each chain's last link (all with the audit role, else this device's). */
  async auditHeads(vault: string): Promise<{ device: string; seq: number; hash: string }[]> {
    const heads = (await this.#call('GET', `/v1/vaults/${vault}/audit`)).json.heads;
    return Array.isArray(heads) ? (heads as { device: string; seq: number; hash: string }[]) : [];
  }

  async auditLinks(vault: string, device: string, after: number, limit = 1000): Promise<(AuditLink & { hash: string })[]> {
    const links = (await this.#call('GET', `/v1/vaults/${vault}/audit/${device}?after=${after}&limit=${limit}`)).json.links;
    return Array.isArray(links) ? (links as (AuditLink & { hash: string })[]) : [];
  }

  /** Extends a lease of this device's own by `ttlSeconds` (the distant vault caps it at the lease's maximum). */
  async renewLease(id: string, ttlSeconds?: number): Promise<{ expiresAt: number; maxExpiresAt: number }> {
    const { json } = await this.#call('POST', `/v1/leases/${id}/renew`, ttlSeconds !== undefined ? { ttlSeconds } : {});
    if (typeof json.expiresAt !== 'number' || typeof json.maxExpiresAt !== 'number')
      throw new SyncError('server', 'renew answer malformed');
    return { expiresAt: json.expiresAt, maxExpiresAt: json.maxExpiresAt };
  }

  /** Ends a lease of this device's own at once (the distant vault revokes it at the engine). */
  async revokeLease(id: string): Promise<void> {
    await this.#call('POST', `/v1/leases/${id}/revoke`, {});
  }

  /** This device's leases in `vault` (an admin: the vault's), without any credential. */
  async leases(vault: string): Promise<Record<string, unknown>[]> {
    const { json } = await this.#call('GET', `/v1/vaults/${vault}/leases`);
    return Array.isArray(json.leases) ? (json.leases as Record<string, unknown>[]) : [];
  }

  async vaults(): Promise<string[]> {
    return (await this.#call('GET', '/v1/vaults')).json.vaults as string[];
  }

  async createVault(vault: string = crypto.randomUUID()): Promise<Replica> {
    const genesis = await signEntry(genesisEntry(vault, this.device.public, this.#now()), this.device.sign);
    await this.#call('POST', '/v1/vaults', { genesis });
    const r = new Replica(vault);
    await r.accept({ head: { seq: 1, hash: entryHash(genesis) }, entries: [genesis], blobs: new Map() }, this.keys);
    return r;
  }

  /** A page as the server sent it, checked for shape; at most `maxEntries` entries, with at most one blob each. */
  static parsePage(json: Record<string, unknown>, maxEntries: number): Page {
    const head = json.head as Head;
    if (!Array.isArray(json.entries)) throw new LogError('bad-entry', 'a page without entries');
    if (json.entries.length > maxEntries) throw new LogError('oversized', `a page of ${json.entries.length} entries`);
    const entries = json.entries.map(checkEntry);
    const blobs = new Map<string, Uint8Array>();
    const sent = Object.entries((json.blobs ?? {}) as Record<string, string>);
    if (sent.length > maxEntries) throw new LogError('oversized', `a page of ${sent.length} blobs`);
    for (const [h, b] of sent) blobs.set(h, fromBase64(b));
    return { head, entries, blobs, more: json.more === true };
  }

  /**
   * Pull everything after the replica's head, verifying each page before applying it. The next
   * page is fetched while this one is verified; it is used only if this one was accepted whole
   * and ends where the next begins.
   */
  async pull(r: Replica, onProgress?: (seq: number, head: number) => void): Promise<number> {
    const fetchPage = async (after: number) =>
      VaultClient.parsePage(
        (await this.#call('GET', `/v1/vaults/${r.vault}/entries?after=${after}&limit=${this.#pageSize}`)).json,
        this.#pageSize,
      );
    let applied = 0;
    let next = fetchPage(r.seq);
    for (;;) {
      const page = await next;
      const last = page.entries.at(-1)?.seq;
      const ahead = page.more && last !== undefined ? fetchPage(last) : undefined;
      ahead?.catch(() => {}); // if this page is refused, nobody awaits the next one
      applied += (await r.accept(page, this.keys)).length;
      onProgress?.(r.seq, page.head.seq);
      if (ahead === undefined) break;
      next = r.seq === last ? ahead : fetchPage(r.seq);
    }
    // Still behind a head another member device saw: the server is withholding entries.
    const told = r.toldAhead();
    if (told !== undefined) throw new LogError('rollback', `the server withholds entries up to ${told.seq} that another device saw`);
    return applied;
  }

  /**
   * Land `pending` on top of the replica's head. On 409 the missed entries are verified and
   * applied and the edits re-signed on the new head (their item parents stay as the person
   * saw them, so a concurrent edit of one item keeps both versions). Returns the new head.
   */
  async push(r: Replica, pending: readonly Pending[], maxRounds = 8): Promise<Head> {
    for (let round = 0; round < maxRounds; round++) {
      let attempt = this.#inFlight;
      if (attempt !== undefined && (attempt.vault !== r.vault || attempt.base.seq !== r.seq || attempt.base.hash !== r.head.hash))
        attempt = undefined;
      if (attempt === undefined) attempt = await this.#sign(r, pending);
      this.#inFlight = attempt;
      const { status, json } = await this.#call('POST', `/v1/vaults/${r.vault}/commits`, {
        expect: attempt.base,
        entries: attempt.entries,
        blobs: attempt.blobs,
      }).catch((e: unknown) => {
        // refused for what it says (not lost on the way): it did not land, and is not to be sent again
        if (e instanceof SyncError && e.code === 'refused') this.#inFlight = undefined;
        throw e;
      });
      if (status === 200) {
        const page = { head: json.head as Head, entries: attempt.entries, blobs: blobsOf(pending) };
        await r.accept(page, this.keys);
        this.#inFlight = undefined;
        return r.head;
      }
      // 409: learn what we missed, then try again on the new head.
      await r.accept(VaultClient.parsePage(json, Math.max(this.#pageSize, SERVER_PAGE_SIZE)), this.keys);
      await this.pull(r);
      if (this.#landed(r)) return r.head;
    }
    throw new SyncError('refused', 'could not land the edits: the head keeps moving');
  }

  /** After an unanswered commit: did our signed entries land after all? Then they count once. */
  #landed(r: Replica): boolean {
    const a = this.#inFlight;
    if (a === undefined) return false;
    const landed = a.entries.every((e) => r.hashAt(e.seq) === entryHash(e));
    if (landed) this.#inFlight = undefined;
    return landed;
  }

  /** Retry a push after a network failure: pull first, so entries that landed are not sent twice. */
  async resume(r: Replica, pending: readonly Pending[]): Promise<Head> {
    await this.pull(r);
    if (this.#landed(r)) return r.head;
    return this.push(r, pending);
  }

  async #sign(r: Replica, pending: readonly Pending[]) {
    const m = r.membership;
    if (m === undefined) throw new SyncError('refused', 'pull the vault before writing to it');
    let state = { ...m };
    const entries: LogEntry[] = [];
    const time = this.#now();
    for (const p of pending) {
      const e = await signEntry(nextEntry(state, this.device.public.id, p.body, time), this.device.sign);
      entries.push(e);
      // a removal starts the next key epoch: what follows it in this commit is written in that one
      state = { ...state, seq: e.seq, head: entryHash(e), epoch: state.epoch + (p.body.type === 'member.remove' ? 1 : 0) };
    }
    const blobs: Record<string, string> = {};
    for (const [h, b] of blobsOf(pending)) blobs[h] = toBase64(b);
    return { vault: r.vault, base: r.head, entries, blobs };
  }

  /**
   * Live head changes over server-sent events, read with fetch (EventSource cannot send the
   * session header). Resolves when the stream ends or `signal` aborts.
   */
  async events(vault: string, onHead: (h: Head) => void, signal: AbortSignal): Promise<void> {
    const res = await this.#fetch(`${this.origin}/v1/vaults/${vault}/events`, {
      headers: { authorization: `Bearer ${await this.#token()}` },
      signal,
      credentials: 'omit',
    });
    if (!res.ok || res.body === null) throw new SyncError('refused', 'event stream refused', res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i = buf.indexOf('\n\n');
        if (i < 0 && buf.length > MAX_EVENT_BYTES) throw new LogError('oversized', 'an event longer than any head');
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (/^event: head$/m.test(block) && data !== undefined) onHead(JSON.parse(data) as Head);
          i = buf.indexOf('\n\n');
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    } finally {
      void reader.cancel().catch(() => {}); // hang up on a stream refused midway
    }
  }
}

type Answer = { status: number; json: Record<string, unknown> };

/**
 * One request to the distant vault: the answer's JSON for 2xx and 409 (what a commit missed),
 * else a SyncError by status. `token` is the session, if the route wants one.
 */
async function callServer(
  fetchFn: typeof fetch,
  origin: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetchFn(`${origin}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
    });
  } catch {
    throw new SyncError('network', 'distant vault unreachable');
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await boundedText(res, MAX_ANSWER_BYTES)) as Record<string, unknown>;
  } catch (e) {
    if (isLogError(e)) throw e;
    throw new SyncError(res.ok ? 'server' : 'network', 'answer is not JSON', res.status);
  }
  if (res.ok || res.status === 409) return { status: res.status, json };
  const err = json.error as { code?: string; message?: string } | undefined;
  const msg = `${err?.code ?? 'error'}: ${err?.message ?? res.statusText}`;
  if (res.status === 401) throw new SyncError('unauthorized', msg, 401);
  if (res.status === 404) throw new SyncError('not-found', msg, 404);
  if (res.status === 429) throw new SyncError('rate-limited', msg, 429);
  if (res.status >= 500) throw new SyncError('server', msg, res.status);
  throw new SyncError('refused', msg, res.status);
}

/** The sealed recovery device filed under `lookup`, fetched without a session (who has the key knows the lookup). */
export async function fetchRecovery(
  origin: string,
  lookup: string,
  fetchFn: typeof fetch = (i, o) => fetch(i, o),
): Promise<{ vault: string; sealed: Uint8Array }> {
  const x = await callServer(fetchFn, origin, 'GET', `/v1/recovery/${lookup}`).then(
    (a) => a.json,
    (e: unknown) => {
      if (e instanceof SyncError && e.code === 'not-found') throw new SyncError('not-found', 'this server knows no such recovery key', 404);
      throw e;
    },
  );
  if (typeof x.vault !== 'string' || typeof x.blob !== 'string') throw new SyncError('server', 'recovery answer malformed');
  try {
    return { vault: x.vault, sealed: fromBase64(x.blob) };
  } catch {
    throw new SyncError('server', 'recovery answer malformed');
  }
}

/** A body as text, refused (LogError 'oversized', the connection dropped) past `limit` bytes. */
async function boundedText(res: Response, limit: number): Promise<string> {
  try {
    return new TextDecoder().decode(await readAtMost(res, limit));
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new LogError('oversized', `an answer ${e.message}`);
    throw e;
  }
}

function blobsOf(pending: readonly Pending[]): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (const p of pending) if (p.body.type === 'item.put' && p.blob !== undefined) m.set(p.body.blob, p.blob);
  return m;
}
