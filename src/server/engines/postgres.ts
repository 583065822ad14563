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
import { PLACEHOLDER, type PostgresConfig, type PostgresRoot, ROLE_IDENT } from '../../core/sync/engine-config.ts';
import { EngineError } from './jwt.ts';

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
    throw new EngineError('unavailable', 'the target database cannot be reached', true);
  }
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * Creates the login `name` (from `roleName`, chosen before, so that a lease can name it before it
 * exists) by the creation statements of `role`, valid until `expiresAt`; its password.
 */
export async function createRole(
  t: Target,
  role: string,
  name: string,
  expiresAt: number,
  timeoutMs = 10_000,
): Promise<{ username: string; password: string }> {
  const def = t.config.roles[role];
  if (!def) throw new EngineError('bad-config', `postgres engine: no creation statements for role ${role}`);
  if (!ROLE_IDENT.test(name)) throw new EngineError('bad-config', 'not a role name');
  const v = { name, password: rolePassword(), expiration: new Date(expiresAt).toISOString() };
  await withRoot(t, timeoutMs, async (c) => {
    try {
      await c.query('BEGIN');
      for (const stmt of def.creation) await c.query(fill(stmt, v));
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      // the database's message may quote the statement, and the statement holds the password
      throw new EngineError(
        'unavailable',
        `the target database refused the creation statements (${(e as { code?: string }).code ?? 'error'})`,
        true,
      );
    }
    try {
      await c.query('COMMIT');
    } catch {
      // lost on the way, the COMMIT may have been done: the lease revokes the role by name
      throw new EngineError('unavailable', 'the target database did not confirm the new role');
    }
  });
  return { username: v.name, password: v.password };
}

export async function renewRole(t: Target, name: string, expiresAt: number, timeoutMs = 10_000): Promise<void> {
  if (!ROLE_IDENT.test(name)) throw new EngineError('bad-config', 'not a role name');
  await withRoot(t, timeoutMs, (c) => c.query(`ALTER ROLE "${name}" VALID UNTIL '${new Date(expiresAt).toISOString()}'`));
}

/** Revokes role `name`: no login, no session, nothing owned, no role. Idempotent. */
export async function dropRole(t: Target, name: string, timeoutMs = 10_000): Promise<void> {
  if (!ROLE_IDENT.test(name)) throw new EngineError('bad-config', 'not a role name');
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
