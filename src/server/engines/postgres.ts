/**
 * The `postgres` engine (issue 15): dynamic roles on a real PostgreSQL, each under a lease.
 *
 * Configuration (public, in the signed log): host, port, database, and per role the creation
 * statements, templates whose only placeholders are {{name}}, {{password}} and {{expiration}};
 * anything else in braces is refused. The root credential (a role with CREATEROLE) is sealed to
 * the engine key. Names are `kh_<role>_<random>`, cut to PostgreSQL's 63 bytes; passwords are 32
 * random letters and digits: neither can carry a quote into a statement.
 *
 * Renew: `ALTER ROLE … VALID UNTIL`. Revoke, in the order that leaves nothing behind (VALID UNTIL
 * only blocks password logins, DROP ROLE fails while the role owns objects and does not end
 * sessions): `ALTER ROLE … NOLOGIN`, `pg_terminate_backend` its sessions, `REASSIGN OWNED` and
 * `DROP OWNED` in the database, `DROP ROLE IF EXISTS`. A role that no longer exists is revoked.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { EngineError } from './jwt.ts';

export type PostgresConfig = {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly roles: Readonly<Record<string, { readonly creation: readonly string[] }>>;
  readonly defaultTtlSeconds: number;
};

export type PostgresRoot = { readonly username: string; readonly password: string };

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const ALLOWED = new Set(['name', 'password', 'expiration']);
const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkPostgresConfig(c: Readonly<Record<string, unknown>>): PostgresConfig {
  const bad = (what: string) => new EngineError('bad-config', `postgres engine: ${what}`);
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
  if (typeof r?.username !== 'string' || !IDENT.test(r.username) || typeof r.password !== 'string' || r.password.length === 0)
    throw new EngineError('bad-config', 'postgres engine: the root credential is {username, password}');
  return { username: r.username, password: r.password };
}

/** A role name for a lease: kh_<role>_<12 random hex>, at most 63 bytes. */
export function roleName(role: string): string {
  return `kh_${role.replace(/-/g, '_')}_${randomBytes(6).toString('hex')}`.slice(0, 63);
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function rolePassword(): string {
  const bytes = randomBytes(32);
  return [...bytes].map((b) => ALNUM[b % ALNUM.length]).join('');
}

const fill = (stmt: string, v: { name: string; password: string; expiration: string }) =>
  stmt.replace(PLACEHOLDER, (_, k: string) => v[k as keyof typeof v]);

export type Target = { readonly config: PostgresConfig; readonly root: PostgresRoot };

async function withRoot<T>(t: Target, timeoutMs: number, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({
    host: t.config.host,
    port: t.config.port,
    database: t.config.database,
    user: t.root.username,
    password: t.root.password,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
  });
  c.on('error', () => {}); // a connection lost mid-call fails the call, not the process
  try {
    await c.connect();
  } catch {
    await c.end().catch(() => {});
    throw new EngineError('unavailable', 'the target database cannot be reached');
  }
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Creates a role of `role` for `ttlSeconds`; its name and password. */
export async function createRole(
  t: Target,
  role: string,
  expiresAt: number,
  timeoutMs = 10_000,
): Promise<{ username: string; password: string }> {
  const def = t.config.roles[role];
  if (!def) throw new EngineError('bad-config', `postgres engine: no creation statements for role ${role}`);
  const v = { name: roleName(role), password: rolePassword(), expiration: new Date(expiresAt).toISOString() };
  await withRoot(t, timeoutMs, async (c) => {
    try {
      await c.query('BEGIN');
      for (const stmt of def.creation) await c.query(fill(stmt, v));
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      // the database's message may quote the statement, and the statement holds the password
      throw new EngineError(
        'unavailable',
        `the target database refused the creation statements (${(e as { code?: string }).code ?? 'error'})`,
      );
    }
  });
  return { username: v.name, password: v.password };
}

export async function renewRole(t: Target, name: string, expiresAt: number, timeoutMs = 10_000): Promise<void> {
  if (!IDENT.test(name)) throw new EngineError('bad-config', 'not a role name');
  await withRoot(t, timeoutMs, (c) => c.query(`ALTER ROLE "${name}" VALID UNTIL '${new Date(expiresAt).toISOString()}'`));
}

/** Revokes role `name`: no login, no session, nothing owned, no role. Idempotent. */
export async function dropRole(t: Target, name: string, timeoutMs = 10_000): Promise<void> {
  if (!IDENT.test(name)) throw new EngineError('bad-config', 'not a role name');
  await withRoot(t, timeoutMs, async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
    if (exists.rowCount === 0) return; // already gone: revoked
    await c.query(`ALTER ROLE "${name}" NOLOGIN`);
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name]);
    await c.query(`REASSIGN OWNED BY "${name}" TO CURRENT_USER`);
    await c.query(`DROP OWNED BY "${name}"`);
    await c.query(`DROP ROLE IF EXISTS "${name}"`);
  });
}
