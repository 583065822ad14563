/**
 * The team cache's HTTP routes (issue 16), for member devices of a vault (anyone else: 404, as if
 * there were no vault). `{slot}` is a secret id, with `#` and a narrowing digest (URL-encoded).
 *
 *   GET  /v1/vaults/{vault}/cache/{slot}          {entry?, lock?}: the live entry of this epoch, the live lock
 *   PUT  /v1/vaults/{vault}/cache/{slot}          {epoch, sealed, notAfter, issuedAt, lockToken?}: 200 stored
 *                                                 (frees the lock), or 409 with what is there
 *   POST /v1/vaults/{vault}/cache/{slot}/lock     {ttlSeconds?}: 200 {lockToken, until, entry?}, or 409 {lock, entry?}
 *   POST /v1/vaults/{vault}/cache/{slot}/unlock   {lockToken}
 *
 * The server checks shapes, sizes, times and the epoch; what is sealed it cannot read. A sweep
 * deletes entries past their notAfter.
 *
 * And the team audit (core/audit/team-chain.ts):
 *
 *   POST /v1/vaults/{vault}/audit                  {links}: the caller's own next links; 200 {head}, 409 {head}
 *   GET  /v1/vaults/{vault}/audit                  {heads}: each device's last link (the `audit` role: all; else its own)
 *   GET  /v1/vaults/{vault}/audit/{device}?after=&limit=   {links} (the `audit` role, or the device itself)
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHAIN_START, linkHash } from '../../core/audit/team-chain.ts';
import { HEX64, hasRole, UUID } from '../../core/sync/log.ts';
import { HttpError } from '../http.ts';
import type { RouteDeps } from '../route-deps.ts';
import type { StoredLink } from './audit-store.ts';
import type { CacheView } from './cache-store.ts';

/** `sweepIntervalMs`: how often expired entries are deleted */
export type TeamRouteDeps = RouteDeps;

const PATH = /^\/v1\/vaults\/([^/]+)\/cache\/([^/]+?)(?:\/(lock|unlock))?$/;
const AUDIT_PATH = /^\/v1\/vaults\/([^/]+)\/audit(?:\/([0-9a-f]{64}))?$/;
const MAX_LINKS = 1000;
const MAX_LINK_SEALED = 64 * 1024;
const SLOT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:#[0-9a-f]{32}|#rt)?$/;
const TOKEN = /^[A-Za-z0-9_-]{24}$/;
/** a sealed credential: a token, or a set of cloud session keys, in JSON with base64 */
const MAX_SEALED = 16 * 1024;
/** no entry is kept longer than this, whatever its notAfter says */
const MAX_LIFETIME_MS = 48 * 3600_000;
const DEFAULT_LOCK_S = 30;

export class TeamRoutes {
  private readonly timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly d: TeamRouteDeps) {
    const every = d.sweepIntervalMs ?? 5000;
    if (every > 0) {
      this.timer = setInterval(() => void this.sweep().catch(() => {}), every);
      this.timer.unref();
    }
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Deletes the entries past their notAfter now. */
  async sweep(): Promise<number> {
    return this.d.store.teamCache.sweep(this.d.now());
  }

  pick(method: string, path: string, req: IncomingMessage, res: ServerResponse): [string, () => Promise<void>] | undefined {
    const a = AUDIT_PATH.exec(path);
    if (a && UUID.test(a[1] ?? '')) {
      const [, vault = '', device] = a;
      if (device === undefined && method === 'POST') return ['audit.push', () => this.auditPush(req, res, vault)];
      if (device === undefined && method === 'GET') return ['audit.heads', () => this.auditHeads(req, res, vault)];
      if (device !== undefined && method === 'GET') return ['audit.list', () => this.auditList(req, res, vault, device)];
      return undefined;
    }
    const m = PATH.exec(path);
    if (!m) return undefined;
    const [, vault = '', encoded = '', action] = m;
    if (!UUID.test(vault)) return undefined;
    let slot: string;
    try {
      slot = decodeURIComponent(encoded);
    } catch {
      return undefined;
    }
    if (!SLOT.test(slot)) return undefined;
    if (!action && method === 'GET') return ['cache.get', () => this.get(req, res, vault, slot)];
    if (!action && method === 'PUT') return ['cache.put', () => this.put(req, res, vault, slot)];
    if (action === 'lock' && method === 'POST') return ['cache.lock', () => this.lock(req, res, vault, slot)];
    if (action === 'unlock' && method === 'POST') return ['cache.unlock', () => this.unlock(req, res, vault, slot)];
    return undefined;
  }

  /** The caller, a member of `vault`, and the vault's current epoch; else 404. */
  private async member(req: IncomingMessage, vault: string): Promise<{ device: string; epoch: number }> {
    const device = await this.d.device(req);
    const state = await this.d.states.get(vault);
    if (!state?.members.has(device)) throw new HttpError(404, 'not-found', 'no such vault');
    return { device, epoch: state.epoch };
  }

  private view(vault: string, slot: string, epoch: number): Promise<CacheView> {
    return this.d.store.teamCache.get(vault, slot, epoch, this.d.now());
  }

  private async get(req: IncomingMessage, res: ServerResponse, vault: string, slot: string): Promise<void> {
    const { epoch } = await this.member(req, vault);
    const view = await this.view(vault, slot, epoch);
    this.d.metrics?.count('keyhole_team_cache_reads_total', 'Team cache reads', { outcome: view.entry ? 'hit' : 'miss' });
    this.d.send(res, 200, view);
  }

  private async put(req: IncomingMessage, res: ServerResponse, vault: string, slot: string): Promise<void> {
    const { device, epoch } = await this.member(req, vault);
    const x = await this.d.readJson(req);
    const now = this.d.now();
    const bad = (what: string) => new HttpError(400, 'bad-request', what);
    if (x.epoch !== epoch) throw new HttpError(409, 'stale-epoch', 'sealed under another epoch’s key: take the vault’s current one');
    if (typeof x.sealed !== 'string' || x.sealed.length === 0 || x.sealed.length > MAX_SEALED)
      throw bad(`sealed is 1 to ${MAX_SEALED} characters`);
    const { notAfter, issuedAt, lockToken } = x;
    if (typeof notAfter !== 'number' || !Number.isSafeInteger(notAfter) || notAfter <= now || notAfter > now + MAX_LIFETIME_MS)
      throw bad('notAfter is a time in the next 48 hours');
    if (typeof issuedAt !== 'number' || !Number.isSafeInteger(issuedAt) || issuedAt >= notAfter || issuedAt > now + 60_000)
      throw bad('issuedAt is a time before notAfter, not in the future');
    if (lockToken !== undefined && (typeof lockToken !== 'string' || !TOKEN.test(lockToken))) throw bad('lockToken malformed');
    const entry = { epoch, sealed: x.sealed, notAfter, issuedAt, writer: device };
    if (await this.d.store.teamCache.put(vault, slot, entry, lockToken as string | undefined, now)) {
      this.d.metrics?.count('keyhole_team_cache_writes_total', 'Team cache writes', { outcome: 'stored' });
      return this.d.send(res, 200, { stored: true });
    }
    this.d.metrics?.count('keyhole_team_cache_writes_total', 'Team cache writes', { outcome: 'refused' });
    this.d.send(res, 409, { stored: false, ...(await this.view(vault, slot, epoch)) });
  }

  private async lock(req: IncomingMessage, res: ServerResponse, vault: string, slot: string): Promise<void> {
    const { device, epoch } = await this.member(req, vault);
    const { ttlSeconds } = await this.d.readJson(req);
    if (ttlSeconds !== undefined && (typeof ttlSeconds !== 'number' || !Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 120))
      throw new HttpError(400, 'bad-request', 'ttlSeconds is 1 to 120');
    const now = this.d.now();
    const until = now + ((ttlSeconds as number | undefined) ?? DEFAULT_LOCK_S) * 1000;
    const lockToken = randomBytes(18).toString('base64url');
    const taken = await this.d.store.teamCache.lock(vault, slot, device, lockToken, until, now);
    const { entry, lock } = await this.view(vault, slot, epoch);
    if (taken) return this.d.send(res, 200, { lockToken, until, ...(entry ? { entry } : {}) });
    this.d.send(res, 409, { ...(lock ? { lock } : {}), ...(entry ? { entry } : {}) });
  }

  private async auditPush(req: IncomingMessage, res: ServerResponse, vault: string): Promise<void> {
    const { device, epoch } = await this.member(req, vault);
    const { links } = await this.d.readJson(req);
    const bad = (what: string) => new HttpError(400, 'bad-request', what);
    if (!Array.isArray(links) || links.length === 0 || links.length > MAX_LINKS) throw bad(`links: 1 to ${MAX_LINKS}`);
    const parsed: StoredLink[] = [];
    for (const x of links as Record<string, unknown>[]) {
      const { seq, prev, epoch: e, sealed, hash } = x ?? {};
      if (!Number.isSafeInteger(seq) || (seq as number) < 1 || typeof prev !== 'string' || !HEX64.test(prev)) throw bad('link malformed');
      if (!Number.isSafeInteger(e) || (e as number) < 1 || (e as number) > epoch) throw bad('link epoch malformed');
      if (typeof sealed !== 'string' || sealed.length === 0 || sealed.length > MAX_LINK_SEALED) throw bad('link record malformed');
      const link = { device, seq: seq as number, prev, epoch: e as number, sealed };
      if (hash !== (await linkHash(link))) throw bad('a link whose hash is not its own');
      parsed.push({ ...link, hash });
    }
    const store = this.d.store.teamAudit;
    const last = await store.last(vault, device);
    // links already stored (a push whose answer was lost) count once; what differs from them is refused
    const upTo = last?.seq ?? 0;
    const again = parsed.filter((l) => l.seq <= upTo);
    if (again.length > 0) {
      const stored = new Map((await store.list(vault, device, (again[0]?.seq ?? 1) - 1, again.length)).map((l) => [l.seq, l.hash]));
      if (again.some((l) => stored.get(l.seq) !== l.hash)) return this.d.send(res, 409, { head: last ?? null });
    }
    const fresh = parsed.filter((l) => l.seq > upTo);
    let prev = last?.hash ?? CHAIN_START;
    let next = (last?.seq ?? 0) + 1;
    for (const l of fresh) {
      if (l.seq !== next || l.prev !== prev) return this.d.send(res, 409, { head: last ?? null });
      prev = l.hash;
      next++;
    }
    if (fresh.length > 0 && !(await store.append(vault, fresh, last)))
      return this.d.send(res, 409, { head: (await store.last(vault, device)) ?? null });
    this.d.metrics?.count('keyhole_team_audit_links_total', 'Team audit links stored', {}, fresh.length);
    this.d.send(res, 200, { head: (await store.last(vault, device)) ?? null });
  }

  /** The caller may read `device`'s chain: its own, or any with the `audit` role. */
  private async auditReader(req: IncomingMessage, vault: string): Promise<{ device: string; all: boolean }> {
    const device = await this.d.device(req);
    const state = await this.d.states.get(vault);
    if (!state?.members.has(device)) throw new HttpError(404, 'not-found', 'no such vault');
    return { device, all: hasRole(state, device, 'audit') };
  }

  private async auditHeads(req: IncomingMessage, res: ServerResponse, vault: string): Promise<void> {
    const { device, all } = await this.auditReader(req, vault);
    const heads = await this.d.store.teamAudit.heads(vault);
    this.d.send(res, 200, { heads: all ? heads : heads.filter((h) => h.device === device) });
  }

  private async auditList(req: IncomingMessage, res: ServerResponse, vault: string, of: string): Promise<void> {
    const { device, all } = await this.auditReader(req, vault);
    if (!all && of !== device) throw new HttpError(403, 'not-allowed', 'reading the team audit needs the audit role');
    const u = new URL(req.url ?? '/', 'http://x');
    const after = Number(u.searchParams.get('after') ?? 0);
    const limit = Number(u.searchParams.get('limit') ?? MAX_LINKS);
    if (!Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LINKS)
      throw new HttpError(400, 'bad-request', `after >= 0, limit 1 to ${MAX_LINKS}`);
    this.d.send(res, 200, { links: await this.d.store.teamAudit.list(vault, of, after, limit) });
  }

  private async unlock(req: IncomingMessage, res: ServerResponse, vault: string, slot: string): Promise<void> {
    await this.member(req, vault);
    const { lockToken } = await this.d.readJson(req);
    if (typeof lockToken !== 'string' || !TOKEN.test(lockToken)) throw new HttpError(400, 'bad-request', 'lockToken malformed');
    await this.d.store.teamCache.unlock(vault, slot, lockToken);
    this.d.send(res, 200, { unlocked: true });
  }
}
