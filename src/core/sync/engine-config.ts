/**
 * What an engine's configuration may say (issue 15), checked where it is written and where it is
 * used: the admin's device checks it before signing the `engine.config` entry, the distant vault
 * refuses a commit whose configuration or policy does not hold, and each engine checks it again
 * before use (a log written before a rule existed is still read safely). Pure: no I/O.
 *
 *   jwt       audience, issuer, tokenMaxSeconds, rotationSeconds, per-role scope and audience
 *   postgres  host, port, database, defaultTtlSeconds, per-role creation statements (templates
 *             with {{name}}, {{password}}, {{expiration}} only); root {username, password}
 *   llm-keys  provider (openai), apiBase (https; http on loopback), projectId; root {adminKey}
 */
import { type EngineKind, type EnginePolicy, type EntryBody, governance, type Membership } from './log.ts';

/** A configuration or root credential that does not hold; the message names the field, never a value of a credential. */
export class EngineConfigError extends Error {
  override readonly name = 'EngineConfigError';
}

export type JwtConfig = {
  readonly audience: string;
  readonly issuer?: string;
  readonly tokenMaxSeconds: number;
  readonly rotationSeconds: number;
  /** per role: the scope its tokens carry, and an audience of its own */
  readonly roles: Readonly<Record<string, { readonly scope?: string; readonly audience?: string }>>;
};

const TEXT = /^[\x21-\x7e]{1,512}$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

export function checkJwtConfig(c: Readonly<Record<string, unknown>>): JwtConfig {
  const bad = (what: string) => new EngineConfigError(`jwt engine: ${what}`);
  if (typeof c.audience !== 'string' || !TEXT.test(c.audience)) throw bad('audience is required');
  if (c.issuer !== undefined && (typeof c.issuer !== 'string' || !/^https?:\/\/[\x21-\x7e]{1,500}$/.test(c.issuer)))
    throw bad('issuer is a URL');
  const num = (v: unknown, dflt: number, min: number, max: number, what: string) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${what} is ${min} to ${max}`);
    return v;
  };
  const roles: Record<string, { scope?: string; audience?: string }> = {};
  if (c.roles !== undefined) {
    if (typeof c.roles !== 'object' || c.roles === null || Array.isArray(c.roles)) throw bad('roles is an object');
    for (const [name, r] of Object.entries(c.roles as Record<string, unknown>)) {
      const x = (r ?? {}) as Record<string, unknown>;
      if (x.scope !== undefined && (typeof x.scope !== 'string' || x.scope.length > 1024 || !SCOPE.test(x.scope)))
        throw bad(`role ${name}: scope`);
      if (x.audience !== undefined && (typeof x.audience !== 'string' || !TEXT.test(x.audience))) throw bad(`role ${name}: audience`);
      roles[name] = { ...(x.scope ? { scope: x.scope as string } : {}), ...(x.audience ? { audience: x.audience as string } : {}) };
    }
  }
  return {
    audience: c.audience,
    ...(c.issuer ? { issuer: c.issuer as string } : {}),
    tokenMaxSeconds: num(c.tokenMaxSeconds, 3600, 10, 86_400, 'tokenMaxSeconds'),
    rotationSeconds: num(c.rotationSeconds, 86_400, 10, 90 * 86_400, 'rotationSeconds'),
    roles,
  };
}

export type PostgresConfig = {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly roles: Readonly<Record<string, { readonly creation: readonly string[] }>>;
  readonly defaultTtlSeconds: number;
};

export type PostgresRoot = { readonly username: string; readonly password: string };

export const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const ALLOWED = new Set(['name', 'password', 'expiration']);
export const ROLE_IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkPostgresConfig(c: Readonly<Record<string, unknown>>): PostgresConfig {
  const bad = (what: string) => new EngineConfigError(`postgres engine: ${what}`);
  if (typeof c.host !== 'string' || !/^[A-Za-z0-9.:-]{1,255}$/.test(c.host)) throw bad('host is a host name or address');
  const port = c.port ?? 5432;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw bad('port is 1 to 65535');
  if (typeof c.database !== 'string' || !/^[A-Za-z0-9_-]{1,63}$/.test(c.database)) throw bad('database is a database name');
  const ttl = c.defaultTtlSeconds ?? 3600;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 10 || ttl > 30 * 86_400) throw bad('defaultTtlSeconds is 10 s to 30 days');
  if (typeof c.roles !== 'object' || c.roles === null || Array.isArray(c.roles)) throw bad('roles is an object');
  const roles: Record<string, { creation: string[] }> = {};
  for (const [name, r] of Object.entries(c.roles as Record<string, unknown>)) {
    const creation = (r as { creation?: unknown })?.creation;
    if (
      !Array.isArray(creation) ||
      creation.length === 0 ||
      creation.length > 32 ||
      !creation.every((x) => typeof x === 'string' && x.length <= 4096)
    )
      throw bad(`role ${name}: creation is a list of statements`);
    for (const stmt of creation as string[]) {
      for (const m of stmt.matchAll(PLACEHOLDER))
        if (!ALLOWED.has(m[1] ?? ''))
          throw bad(`role ${name}: {{${m[1]}}} is not a placeholder (only {{name}}, {{password}}, {{expiration}})`);
      if (/\{\{|\}\}/.test(stmt.replace(PLACEHOLDER, ''))) throw bad(`role ${name}: a brace pair that is not a placeholder`);
    }
    roles[name] = { creation: creation as string[] };
  }
  return { host: c.host, port, database: c.database, roles, defaultTtlSeconds: ttl };
}

export function checkPostgresRoot(x: unknown): PostgresRoot {
  const r = x as Partial<PostgresRoot> | null;
  if (typeof r?.username !== 'string' || !ROLE_IDENT.test(r.username) || typeof r.password !== 'string' || r.password.length === 0)
    throw new EngineConfigError('postgres engine: the root credential is {username, password}');
  return { username: r.username, password: r.password };
}

export type LlmKeysConfig = { readonly provider: 'openai'; readonly apiBase: string; readonly projectId: string };
export type LlmKeysRoot = { readonly adminKey: string };

export function checkLlmKeysConfig(c: Readonly<Record<string, unknown>>): LlmKeysConfig {
  const bad = (what: string) => new EngineConfigError(`llm-keys engine: ${what}`);
  if (c.provider !== 'openai') throw bad('provider is openai (the only adapter so far)');
  const apiBase = c.apiBase ?? 'https://api.openai.com/v1';
  let url: URL;
  try {
    url = new URL(String(apiBase));
  } catch {
    throw bad('apiBase is a URL');
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw bad('apiBase is https (http only on loopback)');
  if (typeof c.projectId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(c.projectId)) throw bad('projectId is the project’s id');
  return { provider: 'openai', apiBase: url.href.replace(/\/+$/, ''), projectId: c.projectId };
}

export function checkLlmKeysRoot(x: unknown): LlmKeysRoot {
  const r = x as Partial<LlmKeysRoot> | null;
  if (typeof r?.adminKey !== 'string' || !/^[\x21-\x7e]{8,512}$/.test(r.adminKey))
    throw new EngineConfigError('llm-keys engine: the root credential is {adminKey}');
  return { adminKey: r.adminKey };
}

/** The configuration of an engine of `kind`, checked and put in one form. */
export function checkEngineConfig(kind: EngineKind, config: Readonly<Record<string, unknown>>): JwtConfig | PostgresConfig | LlmKeysConfig {
  if (kind === 'jwt') return checkJwtConfig(config);
  if (kind === 'postgres') return checkPostgresConfig(config);
  return checkLlmKeysConfig(config);
}

/** The root credential an engine of `kind` needs, checked (on the admin's device before it is sealed; on the server after it is opened). */
export function checkEngineRoot(kind: EngineKind, root: unknown): void {
  if (kind === 'postgres') checkPostgresRoot(root);
  else if (kind === 'llm-keys') checkLlmKeysRoot(root);
  else if (root !== undefined) throw new EngineConfigError('jwt engine: takes no root credential (its keys live in the key provider)');
}

/**
 * Why `policy` cannot hold under an engine of `kind` configured so, or undefined: a role the
 * configuration does not define (postgres, whose roles are statements), or a maximum TTL above
 * what the engine issues (jwt's tokenMaxSeconds).
 */
export function policyProblem(kind: EngineKind, config: Readonly<Record<string, unknown>>, policy: EnginePolicy): string | undefined {
  if (kind === 'jwt') {
    const max = checkJwtConfig(config).tokenMaxSeconds;
    if (policy.maxTtlSeconds > max)
      return `role ${policy.role}: maxTtlSeconds ${policy.maxTtlSeconds} is above the engine's tokenMaxSeconds ${max}`;
  }
  if (kind === 'postgres' && !checkPostgresConfig(config).roles[policy.role])
    return `role ${policy.role}: the engine's configuration has no creation statements for it`;
  return undefined;
}

/**
 * Why these entries, once applied (`after`: the state with them), configure an engine badly, or
 * undefined. A configuration is checked as its engine will read it; a policy against the
 * configuration its engine has then.
 */
export function engineEntriesProblem(after: Pick<Membership, 'creator' | 'gov'>, bodies: readonly EntryBody[]): string | undefined {
  const engines = governance(after).engines;
  for (const b of bodies) {
    try {
      if (b.type === 'engine.config') checkEngineConfig(b.kind, b.config);
      if (b.type === 'engine.policy') {
        const def = engines[b.engine];
        const problem = def && policyProblem(def.kind, def.config, b.policy);
        if (problem) return `engine ${b.engine}: ${problem}`;
      }
    } catch (e) {
      if (e instanceof EngineConfigError) return e.message;
      throw e;
    }
  }
  return undefined;
}
