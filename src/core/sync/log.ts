/**
 * The vault log (docs/sync.md): an append-only chain of signed entries.
 *
 *   entry = { v, vault, seq, prev, author, time, epoch, body, sig }
 *   sig   = ECDSA P-256 / SHA-256 (IEEE P1363 r||s) over "keyhole/v1/log-entry\n" || canonical(entry without sig)
 *   hash  = SHA-256(canonical(entry with sig)); the next entry's `prev`
 *
 * Membership lives in the log: the first entry (genesis) names the creator's device, each
 * member.add / member.remove is signed by a device that is a member at that point. A device's
 * id is the hash of both its public keys, so nobody (the server included) can swap a key
 * under an id. Nothing here decrypts: the server imports this file to check what it stores.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, fromBase64, toBase64, toHex, utf8 } from '../bytes.ts';
import { canonicalJson } from '../canonical.ts';

export const LOG_VERSION = 1;
export const GENESIS_PREV = '0'.repeat(64);
const SIGN_DOMAIN = 'keyhole/v1/log-entry\n';
const DEVICE_DOMAIN = utf8('keyhole/v1/device\n');
const ECDSA: EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SIGN: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export const LIMITS = {
  name: 64,
  spki: 200,
  wrapped: 4096,
  itemId: 128,
  blobsPerDestroy: 64,
  parents: 16,
  engineConfig: 16 * 1024,
  sealedRoot: 16 * 1024,
  policyMembers: 256,
  maxTtlSeconds: 30 * 24 * 3600,
} as const;

/** A device as the log knows it: public keys only, base64 SPKI. */
export type DevicePublic = {
  readonly id: string;
  readonly name: string;
  readonly sign: string;
  readonly ecdh: string;
};

export type EntryBody =
  | { readonly type: 'genesis'; readonly device: DevicePublic }
  | { readonly type: 'member.add'; readonly device: DevicePublic }
  | { readonly type: 'member.remove'; readonly device: string }
  /** a vault key for `epoch`, wrapped to member `to` (opaque here: see core/crypto/share.ts) */
  | { readonly type: 'key.wrap'; readonly to: string; readonly wrapped: string }
  /** an item's new version, its ciphertext stored as blob `blob` (hex SHA-256); `parents` are the entry hashes it replaces */
  | { readonly type: 'item.put'; readonly item: string; readonly blob: string; readonly parents: readonly string[] }
  /** an item destroyed: the server deletes these blobs, the log keeps their hashes */
  | { readonly type: 'item.destroy'; readonly item: string; readonly blobs: readonly string[] }
  /**
   * a live item's superseded versions (values destroyed since may be in them): the server deletes
   * these blobs, the log keeps their hashes; a version that is still a head is never pruned
   */
  | { readonly type: 'item.prune'; readonly item: string; readonly blobs: readonly string[] }
  /** a role given to a member, or taken back (admins only; the creator is admin from genesis) */
  | { readonly type: 'role.grant' | 'role.revoke'; readonly device: string; readonly role: Role }
  /** the distant vault's engine public key (SPKI, base64), pinned by an admin after comparing its fingerprint */
  | { readonly type: 'engine.key'; readonly spki: string }
  /**
   * an engine of the distant vault: its kind, its public configuration, and its root credential
   * sealed to the pinned engine key (core/crypto/share.ts's sealing; opaque here)
   */
  | {
      readonly type: 'engine.config';
      readonly engine: string;
      readonly kind: EngineKind;
      readonly config: JsonObject;
      readonly sealed?: string;
    }
  /** who may ask an engine for a role, for how long at most */
  | { readonly type: 'engine.policy'; readonly engine: string; readonly policy: EnginePolicy }
  | { readonly type: 'engine.remove'; readonly engine: string }
  /**
   * the head of the author's own team-audit chain (issue 16: core/audit/team-chain.ts): signed
   * here, so the server can neither drop, reorder nor invent a record at or before it unseen
   */
  | { readonly type: 'audit.head'; readonly seq: number; readonly hash: string };

/** Roles in a vault, granted in the log: `admin` configures engines and roles; `audit` reads the team's audit. */
export const ROLES = ['admin', 'audit'] as const;
export type Role = (typeof ROLES)[number];
export const ENGINE_KINDS = ['jwt', 'postgres', 'llm-keys'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];
export type JsonObject = { readonly [k: string]: unknown };

/** Which members (ids, or '*' for all) may ask engine `engine` for `role`, for at most `maxTtlSeconds`. */
export type EnginePolicy = {
  readonly role: string;
  readonly members: readonly string[];
  readonly maxTtlSeconds: number;
  /** live leases one device may hold for this role (absent: the server's default) */
  readonly maxLeasesPerDevice?: number;
};

/** What the log says of roles and engines (plain JSON: it is stored as it is). */
export type Governance = {
  readonly roles: Readonly<Record<string, readonly Role[]>>;
  readonly engineKey?: string;
  readonly engines: Readonly<Record<string, EngineDef>>;
  /** each member device's last signed team-audit chain head */
  readonly auditHeads?: Readonly<Record<string, { readonly seq: number; readonly hash: string }>>;
};
export type EngineDef = {
  readonly kind: EngineKind;
  readonly config: JsonObject;
  readonly sealed?: string;
  /** the entry that configured it (a new configuration is a new seq) */
  readonly seq: number;
  readonly policies: Readonly<Record<string, EnginePolicy>>;
};

export type EntryType = EntryBody['type'];

export type UnsignedEntry = {
  readonly v: 1;
  readonly vault: string;
  readonly seq: number;
  readonly prev: string;
  readonly author: string;
  readonly time: number;
  /** the key epoch the entry was written in; member.remove starts epoch + 1 */
  readonly epoch: number;
  readonly body: EntryBody;
};

export type LogEntry = UnsignedEntry & { readonly sig: string };

/** A log's position: the last entry's seq and hash. */
export type Head = { readonly seq: number; readonly hash: string };

export type LogErrorCode =
  | 'bad-entry' // does not parse as an entry
  | 'wrong-vault' // an entry of another vault
  | 'gap' // a sequence number skipped or repeated: an entry dropped or reordered
  | 'bad-chain' // prev does not name the entry before it
  | 'bad-signature' // not signed by the author's key
  | 'not-member' // author (or target) is not a member at that point
  | 'bad-membership' // a membership change the rules forbid
  | 'rollback' // the server answered with an older head than one already accepted
  | 'fork' // two different entries (or heads) for one sequence number
  | 'oversized'; // an answer larger than the protocol allows (a 1 GB page, a million entries, an endless event line)

export class LogError extends Error {
  override readonly name = 'LogError';
  readonly code: LogErrorCode;
  readonly seq: number | undefined;
  constructor(code: LogErrorCode, message: string, seq?: number) {
    super(seq === undefined ? message : `${message} (entry ${seq})`);
    this.code = code;
    this.seq = seq;
  }
}

export const isLogError = (e: unknown, code?: LogErrorCode): e is LogError =>
  e instanceof LogError && (code === undefined || e.code === code);

// ---- devices ----

function lengthPrefixed(b: Uint8Array): Uint8Array {
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, b.length);
  return concat(len, b);
}

// Synchronous SHA-256 (@noble/hashes): a pull hashes thousands of small entries, and an
// await per hash costs more than the hash.
const sha256Hex = (b: Uint8Array): string => toHex(sha256(b));

/** A device id: SHA-256 over both public keys. Comparing ids out of band compares both keys. */
export function deviceId(signSpki: Uint8Array, ecdhSpki: Uint8Array): string {
  return sha256Hex(concat(DEVICE_DOMAIN, lengthPrefixed(signSpki), lengthPrefixed(ecdhSpki)));
}

/** What people compare out of band: the first 20 bytes of an id or head, in groups of four. */
export function fingerprint(hex: string): string {
  return (
    hex
      .slice(0, 40)
      .match(/.{1,4}/g)
      ?.join(' ') ?? ''
  );
}

export function checkDeviceId(d: DevicePublic): boolean {
  try {
    return d.id === deviceId(fromBase64(d.sign), fromBase64(d.ecdh));
  } catch {
    return false;
  }
}

export function importSigningPublic(spkiB64: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('spki', fromBase64(spkiB64), ECDSA, false, ['verify']);
}

// ---- entries ----

/** a SHA-256 in lowercase hex: device ids, entry and blob hashes */
export const HEX64 = /^[0-9a-f]{64}$/;
/** a vault id */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const ITEM = /^[A-Za-z0-9_-]{1,128}$/;

function fail(what: string, seq?: number): never {
  throw new LogError('bad-entry', what, seq);
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const onlyKeys = (o: Record<string, unknown>, keys: readonly string[]) => Object.keys(o).every((k) => keys.includes(k));
const uint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const b64 = (x: unknown, max: number): x is string => typeof x === 'string' && x.length > 0 && x.length <= max && B64.test(x);

/** Parse untrusted JSON into a device's public record, or LogError 'bad-entry'. */
export function checkDevice(x: unknown, seq?: number): DevicePublic {
  if (!isObject(x) || !onlyKeys(x, ['id', 'name', 'sign', 'ecdh'])) fail('device malformed', seq);
  const { id, name, sign, ecdh } = x;
  if (typeof id !== 'string' || !HEX64.test(id)) fail('device id malformed', seq);
  if (typeof name !== 'string' || name.length > LIMITS.name) fail('device name malformed', seq);
  if (!b64(sign, LIMITS.spki) || !b64(ecdh, LIMITS.spki)) fail('device keys malformed', seq);
  return { id, name, sign, ecdh };
}

function checkBody(x: unknown, seq?: number): EntryBody {
  if (!isObject(x) || typeof x.type !== 'string') fail('body malformed', seq);
  const keys = (...k: string[]) => onlyKeys(x, ['type', ...k]) || fail('body has unknown fields', seq);
  switch (x.type) {
    case 'genesis':
    case 'member.add':
      keys('device');
      return { type: x.type, device: checkDevice(x.device, seq) };
    case 'member.remove':
      keys('device');
      if (typeof x.device !== 'string' || !HEX64.test(x.device)) fail('device id malformed', seq);
      return { type: 'member.remove', device: x.device };
    case 'key.wrap':
      keys('to', 'wrapped');
      if (typeof x.to !== 'string' || !HEX64.test(x.to) || !b64(x.wrapped, LIMITS.wrapped)) fail('key.wrap malformed', seq);
      return { type: 'key.wrap', to: x.to, wrapped: x.wrapped };
    case 'item.put': {
      keys('item', 'blob', 'parents');
      const { item, blob, parents } = x;
      if (typeof item !== 'string' || !ITEM.test(item)) fail('item id malformed', seq);
      if (typeof blob !== 'string' || !HEX64.test(blob)) fail('blob hash malformed', seq);
      if (!Array.isArray(parents) || parents.length > LIMITS.parents || !parents.every((p) => typeof p === 'string' && HEX64.test(p))) {
        fail('parents malformed', seq);
      }
      return { type: 'item.put', item, blob, parents: parents as string[] };
    }
    case 'item.destroy':
    case 'item.prune': {
      keys('item', 'blobs');
      const { item, blobs } = x;
      if (typeof item !== 'string' || !ITEM.test(item)) fail('item id malformed', seq);
      if (!Array.isArray(blobs) || blobs.length > LIMITS.blobsPerDestroy || !blobs.every((b) => typeof b === 'string' && HEX64.test(b))) {
        fail('blob list malformed', seq);
      }
      return { type: x.type, item, blobs: blobs as string[] };
    }
    case 'role.grant':
    case 'role.revoke':
      keys('device', 'role');
      if (typeof x.device !== 'string' || !HEX64.test(x.device)) fail('device id malformed', seq);
      if (!(ROLES as readonly unknown[]).includes(x.role)) fail('unknown role', seq);
      return { type: x.type, device: x.device, role: x.role as Role };
    case 'engine.key':
      keys('spki');
      if (!b64(x.spki, LIMITS.spki)) fail('engine key malformed', seq);
      return { type: 'engine.key', spki: x.spki };
    case 'engine.config': {
      keys('engine', 'kind', 'config', 'sealed');
      if (typeof x.engine !== 'string' || !ENGINE_NAME.test(x.engine)) fail('engine name malformed', seq);
      if (!(ENGINE_KINDS as readonly unknown[]).includes(x.kind)) fail('unknown engine kind', seq);
      if (!isObject(x.config) || canonicalJson(x.config).length > LIMITS.engineConfig) fail('engine config malformed', seq);
      if (x.sealed !== undefined && !b64(x.sealed, LIMITS.sealedRoot)) fail('sealed root credential malformed', seq);
      return {
        type: 'engine.config',
        engine: x.engine,
        kind: x.kind as EngineKind,
        config: x.config,
        ...(x.sealed !== undefined ? { sealed: x.sealed as string } : {}),
      };
    }
    case 'engine.policy': {
      keys('engine', 'policy');
      if (typeof x.engine !== 'string' || !ENGINE_NAME.test(x.engine)) fail('engine name malformed', seq);
      return { type: 'engine.policy', engine: x.engine, policy: checkPolicy(x.policy, seq) };
    }
    case 'engine.remove':
      keys('engine');
      if (typeof x.engine !== 'string' || !ENGINE_NAME.test(x.engine)) fail('engine name malformed', seq);
      return { type: 'engine.remove', engine: x.engine };
    case 'audit.head':
      keys('seq', 'hash');
      if (!uint(x.seq) || x.seq < 1 || typeof x.hash !== 'string' || !HEX64.test(x.hash)) fail('audit head malformed', seq);
      return { type: 'audit.head', seq: x.seq, hash: x.hash };
    default:
      return fail('unknown entry type', seq);
  }
}

/** an engine's or a role's name */
const ENGINE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

function checkPolicy(x: unknown, seq?: number): EnginePolicy {
  if (!isObject(x) || !onlyKeys(x, ['role', 'members', 'maxTtlSeconds', 'maxLeasesPerDevice'])) fail('policy malformed', seq);
  const { role, members, maxTtlSeconds, maxLeasesPerDevice } = x;
  if (typeof role !== 'string' || !ENGINE_NAME.test(role)) fail('policy role malformed', seq);
  const all = Array.isArray(members) && members.length === 1 && members[0] === '*';
  if (
    !Array.isArray(members) ||
    members.length === 0 ||
    members.length > LIMITS.policyMembers ||
    (!all && !members.every((m) => typeof m === 'string' && HEX64.test(m)))
  )
    fail('policy members malformed', seq);
  if (!uint(maxTtlSeconds) || maxTtlSeconds < 1 || maxTtlSeconds > LIMITS.maxTtlSeconds) fail('policy max TTL malformed', seq);
  if (maxLeasesPerDevice !== undefined && (!uint(maxLeasesPerDevice) || maxLeasesPerDevice < 1 || maxLeasesPerDevice > 10_000))
    fail('policy lease cap malformed', seq);
  return {
    role,
    members: members as string[],
    maxTtlSeconds,
    ...(maxLeasesPerDevice !== undefined ? { maxLeasesPerDevice: maxLeasesPerDevice as number } : {}),
  };
}

/** Parse untrusted JSON into an entry, or LogError 'bad-entry'. Extra fields are refused. */
export function checkEntry(x: unknown): LogEntry {
  if (!isObject(x)) fail('entry malformed');
  const seq = uint(x.seq) ? x.seq : undefined;
  if (!onlyKeys(x, ['v', 'vault', 'seq', 'prev', 'author', 'time', 'epoch', 'body', 'sig'])) fail('entry has unknown fields', seq);
  const { v, vault, prev, author, time, epoch, sig } = x;
  if (v !== LOG_VERSION) fail('unsupported entry version', seq);
  if (typeof vault !== 'string' || !UUID.test(vault)) fail('vault id malformed', seq);
  if (seq === undefined || seq < 1) fail('sequence number malformed');
  if (typeof prev !== 'string' || !HEX64.test(prev)) fail('prev malformed', seq);
  if (typeof author !== 'string' || !HEX64.test(author)) fail('author malformed', seq);
  if (!uint(time) || !uint(epoch) || epoch < 1) fail('time or epoch malformed', seq);
  if (!b64(sig, 100)) fail('signature malformed', seq);
  return { v, vault, seq, prev, author, time, epoch, body: checkBody(x.body, seq), sig };
}

function unsigned(e: UnsignedEntry): UnsignedEntry {
  const { v, vault, seq, prev, author, time, epoch, body } = e;
  return { v, vault, seq, prev, author, time, epoch, body };
}

/**
 * An entry's canonical JSON (core/canonical.ts), with or without its signature. The top-level
 * keys are fixed, so they are written in their sorted order directly and only the body goes
 * through the general encoder: the same text, at a fraction of the cost on a 10,000-entry pull
 * (test/unit/log.test.ts checks it against canonicalJson).
 */
export function entryText(e: UnsignedEntry, sig?: string): string {
  const ints = [e.epoch, e.seq, e.time, e.v];
  if (!ints.every(Number.isSafeInteger)) return canonicalJson(sig === undefined ? unsigned(e) : { ...unsigned(e), sig });
  const str = JSON.stringify;
  const signed = sig === undefined ? '' : `"sig":${str(sig)},`;
  return `{"author":${str(e.author)},"body":${canonicalJson(e.body)},"epoch":${e.epoch},"prev":${str(e.prev)},"seq":${e.seq},${signed}"time":${e.time},"v":${e.v},"vault":${str(e.vault)}}`;
}

const signedBytes = (e: UnsignedEntry) => utf8(SIGN_DOMAIN + entryText(e));

export async function signEntry(e: UnsignedEntry, signingKey: CryptoKey): Promise<LogEntry> {
  const sig = new Uint8Array(await crypto.subtle.sign(ECDSA_SIGN, signingKey, signedBytes(e)));
  return { ...unsigned(e), sig: toBase64(sig) };
}

export async function verifyEntrySignature(e: LogEntry, publicKey: CryptoKey): Promise<boolean> {
  try {
    return await crypto.subtle.verify(ECDSA_SIGN, publicKey, fromBase64(e.sig), signedBytes(e));
  } catch {
    return false;
  }
}

export function entryHash(e: LogEntry): string {
  return sha256Hex(utf8(entryText(e, e.sig)));
}

export function blobHash(bytes: Uint8Array): string {
  return sha256Hex(bytes);
}

// ---- the membership and chain rules, shared by the client replica and the server ----

export type Membership = {
  readonly vault: string;
  readonly seq: number;
  readonly head: string;
  readonly epoch: number;
  readonly creator: string;
  readonly members: ReadonlyMap<string, DevicePublic>;
  /** roles and engines (absent in states stored before them: the creator is the admin, no engines) */
  readonly gov?: Governance;
};

/** A state's governance: what the log says, or for a state stored before roles, the creator as admin. */
export function governance(m: Pick<Membership, 'creator' | 'gov'>): Governance {
  return m.gov ?? { roles: { [m.creator]: ['admin'] }, engines: {} };
}

export const hasRole = (m: Pick<Membership, 'creator' | 'gov'>, device: string, role: Role): boolean =>
  governance(m).roles[device]?.includes(role) ?? false;

/** Whether member `device` may ask engine `engine` for `role`, and the policy that says so. */
export function policyFor(m: Membership, engine: string, role: string, device: string): EnginePolicy | undefined {
  const p = governance(m).engines[engine]?.policies[role];
  if (!p || !m.members.has(device)) return undefined;
  return p.members[0] === '*' || p.members.includes(device) ? p : undefined;
}

/** Cached public keys by device id; ids bind the keys, so a cache hit is never stale. */
export class KeyCache {
  readonly #keys = new Map<string, Promise<CryptoKey>>();
  get(d: DevicePublic): Promise<CryptoKey> {
    let k = this.#keys.get(d.id);
    if (k === undefined) {
      k = importSigningPublic(d.sign);
      this.#keys.set(d.id, k);
      k.catch(() => this.#keys.delete(d.id));
    }
    return k;
  }
}

/**
 * Check entries in order against the state before them and return the state after them.
 * All or nothing: throws LogError at the first bad entry, and the state passed in is never
 * changed. The rules run in order; the signatures (each checked against the author's key as
 * a member at that point) run in parallel after, so a long pull is not one await per entry.
 */
export async function applyEntries(
  state: Membership | undefined,
  entries: readonly LogEntry[],
  keys: KeyCache,
  /** filled with each entry's hash, in order, for callers that keep them (computed once here) */
  hashesOut?: string[],
): Promise<Membership> {
  const checks: { e: LogEntry; by: DevicePublic }[] = [];
  const hashes: string[] = [];
  let s = state;
  for (const e of entries) {
    const [next, by] = applyRules(s, e);
    checks.push({ e, by });
    hashes.push(next.head);
    s = next;
  }
  const results = await Promise.all(checks.map(async ({ e, by }) => verifyEntrySignature(e, await keys.get(by))));
  const bad = results.indexOf(false);
  if (bad >= 0) throw new LogError('bad-signature', 'signature does not verify', checks[bad]?.e.seq);
  if (s === undefined) throw new LogError('gap', 'no entries');
  hashesOut?.push(...hashes);
  return s;
}

export const applyEntry = (state: Membership | undefined, e: LogEntry, keys: KeyCache) => applyEntries(state, [e], keys);

/** The log's rules for one entry, without the signature: the next state and whose key must have signed it. */
function applyRules(state: Membership | undefined, e: LogEntry): [Membership, DevicePublic] {
  const seq = e.seq;
  if (state === undefined) {
    if (seq !== 1) throw new LogError('gap', 'the log must start at entry 1', seq);
    if (e.prev !== GENESIS_PREV) throw new LogError('bad-chain', 'the first entry must have no predecessor', seq);
    if (e.body.type !== 'genesis') throw new LogError('bad-membership', 'the first entry must be genesis', seq);
    const creator = e.body.device;
    if (creator.id !== e.author || !checkDeviceId(creator)) throw new LogError('bad-membership', 'genesis does not name its author', seq);
    if (e.epoch !== 1) throw new LogError('bad-membership', 'the log starts at epoch 1', seq);
    return [
      {
        vault: e.vault,
        seq: 1,
        head: entryHash(e),
        epoch: 1,
        creator: creator.id,
        members: new Map([[creator.id, creator]]),
        gov: { roles: { [creator.id]: ['admin'] }, engines: {} },
      },
      creator,
    ];
  }
  if (e.vault !== state.vault) throw new LogError('wrong-vault', 'entry belongs to another vault', seq);
  if (seq !== state.seq + 1) throw new LogError('gap', `expected entry ${state.seq + 1}`, seq);
  if (e.prev !== state.head) throw new LogError('bad-chain', 'entry does not follow the head', seq);
  const author = state.members.get(e.author);
  if (author === undefined) throw new LogError('not-member', 'author is not a member', seq);
  if (e.epoch !== state.epoch) throw new LogError('bad-membership', 'entry written in the wrong key epoch', seq);

  let { members, epoch } = state;
  let gov = governance(state);
  const body = e.body;
  const admin = () => {
    if (!gov.roles[e.author]?.includes('admin')) throw new LogError('bad-membership', `${body.type} needs an admin`, seq);
  };
  switch (body.type) {
    case 'genesis':
      throw new LogError('bad-membership', 'a second genesis', seq);
    case 'member.add':
      if (members.has(body.device.id)) throw new LogError('bad-membership', 'already a member', seq);
      if (!checkDeviceId(body.device)) throw new LogError('bad-membership', 'device id does not match its keys', seq);
      members = new Map(members).set(body.device.id, body.device);
      break;
    case 'member.remove': {
      if (!members.has(body.device)) throw new LogError('not-member', 'removing a device that is not a member', seq);
      if (members.size === 1) throw new LogError('bad-membership', 'the last member cannot be removed', seq);
      if (isLastAdmin(gov, body.device)) throw new LogError('bad-membership', 'the last admin cannot be removed', seq);
      const next = new Map(members);
      next.delete(body.device);
      members = next;
      epoch += 1;
      const { [body.device]: _, ...roles } = gov.roles;
      gov = { ...gov, roles };
      break;
    }
    case 'role.grant': {
      admin();
      if (!members.has(body.device)) throw new LogError('not-member', 'a role for a device that is not a member', seq);
      const had = gov.roles[body.device] ?? [];
      if (had.includes(body.role)) throw new LogError('bad-membership', 'the device already has this role', seq);
      gov = { ...gov, roles: { ...gov.roles, [body.device]: [...had, body.role] } };
      break;
    }
    case 'role.revoke': {
      admin();
      const had = gov.roles[body.device] ?? [];
      if (!had.includes(body.role)) throw new LogError('bad-membership', 'the device does not have this role', seq);
      if (body.role === 'admin' && isLastAdmin(gov, body.device))
        throw new LogError('bad-membership', 'the last admin cannot step down', seq);
      gov = { ...gov, roles: { ...gov.roles, [body.device]: had.filter((r) => r !== body.role) } };
      break;
    }
    case 'engine.key':
      admin();
      gov = { ...gov, engineKey: body.spki };
      break;
    case 'engine.config':
      admin();
      if (body.sealed !== undefined && gov.engineKey === undefined)
        throw new LogError('bad-membership', 'a root credential sealed before the engine key is pinned', seq);
      gov = {
        ...gov,
        engines: {
          ...gov.engines,
          [body.engine]: {
            kind: body.kind,
            config: body.config,
            ...(body.sealed !== undefined ? { sealed: body.sealed } : {}),
            seq,
            policies: gov.engines[body.engine]?.kind === body.kind ? (gov.engines[body.engine]?.policies ?? {}) : {},
          },
        },
      };
      break;
    case 'engine.policy': {
      admin();
      const engine = gov.engines[body.engine];
      if (!engine) throw new LogError('bad-membership', 'a policy for an engine that is not configured', seq);
      if (body.policy.members[0] !== '*' && !body.policy.members.every((m) => members.has(m)))
        throw new LogError('not-member', 'a policy naming a device that is not a member', seq);
      gov = {
        ...gov,
        engines: { ...gov.engines, [body.engine]: { ...engine, policies: { ...engine.policies, [body.policy.role]: body.policy } } },
      };
      break;
    }
    case 'engine.remove': {
      admin();
      if (!gov.engines[body.engine]) throw new LogError('bad-membership', 'removing an engine that is not configured', seq);
      const { [body.engine]: _, ...engines } = gov.engines;
      gov = { ...gov, engines };
      break;
    }
    case 'key.wrap':
      if (!members.has(body.to)) throw new LogError('not-member', 'key wrapped to a non-member', seq);
      break;
    case 'audit.head': {
      // a device anchors only its own chain, and only forward
      const had = gov.auditHeads?.[e.author];
      if (had && body.seq <= had.seq) throw new LogError('bad-membership', 'an audit head that does not move forward', seq);
      gov = { ...gov, auditHeads: { ...gov.auditHeads, [e.author]: { seq: body.seq, hash: body.hash } } };
      break;
    }
    case 'item.put':
    case 'item.destroy':
    case 'item.prune':
      break;
  }
  return [{ vault: state.vault, seq, head: entryHash(e), epoch, creator: state.creator, members, gov }, author];
}

function isLastAdmin(gov: Governance, device: string): boolean {
  if (!gov.roles[device]?.includes('admin')) return false;
  return Object.entries(gov.roles).filter(([, r]) => r.includes('admin')).length === 1;
}

/** Build the next unsigned entry after `state`. */
export function nextEntry(state: Membership, author: string, body: EntryBody, time = Date.now()): UnsignedEntry {
  return { v: 1, vault: state.vault, seq: state.seq + 1, prev: state.head, author, time, epoch: state.epoch, body };
}

export function genesisEntry(vault: string, device: DevicePublic, time = Date.now()): UnsignedEntry {
  return { v: 1, vault, seq: 1, prev: GENESIS_PREV, author: device.id, time, epoch: 1, body: { type: 'genesis', device } };
}
