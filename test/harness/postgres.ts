/**
 * A throwaway PostgreSQL cluster for the server tests: Debian's binaries, a fresh data
 * directory, a free port on loopback, fsync off. As root it runs as the `postgres` user
 * (initdb refuses root). Nothing outside the temporary directory is touched.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './servers.ts';

export type Postgres = {
  readonly url: string;
  readonly port: number;
  readonly stop: () => Promise<void>;
  /** stops the server and keeps its data (a target database that is down), and starts it again */
  readonly halt: () => Promise<void>;
  readonly resume: () => Promise<void>;
  /** what the server has written to its log so far */
  readonly log: () => string;
};

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)');
}

/**
 * `password`: TCP logins need it (scram-sha-256), as a real target database's would; without it,
 * every login is trusted (the server's own store in tests). `settings`: more `-c` options (e.g.
 * `log_statement`), and `log()` reads what the server wrote to its log (stderr) so far.
 */
export async function startPostgres(opts: { password?: string; settings?: Readonly<Record<string, string>> } = {}): Promise<Postgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
    : {};
  if (asRoot) chownSync(dir, ids.uid as number, ids.gid as number);
  const auth = ['-A', 'trust'];
  if (opts.password !== undefined) {
    const pwfile = join(dir, 'pw');
    writeFileSync(pwfile, `${opts.password}\n`, { mode: 0o600 });
    if (asRoot) chownSync(pwfile, ids.uid as number, ids.gid as number);
    auth.splice(0, 2, '--auth-host=scram-sha-256', '--auth-local=trust', `--pwfile=${pwfile}`);
  }
  execFileSync(join(bin, 'initdb'), ['-D', data, ...auth, '-U', 'keyhole', '--no-sync', '-E', 'UTF8'], { ...ids, stdio: 'ignore' });
  const port = await freePort();
  const logFile = join(dir, 'postgres.log');
  const extra = Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const run = () => {
    const log = openSync(logFile, 'a');
    try {
      return spawn(
        join(bin, 'postgres'),
        [
          '-D',
          data,
          '-p',
          String(port),
          '-k',
          dir,
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'fsync=off',
          '-c',
          'max_connections=200',
          ...extra,
        ],
        { ...ids, stdio: ['ignore', 'ignore', log] },
      );
    } finally {
      closeSync(log);
    }
  };
  let proc: ChildProcess = run();
  const url = `postgresql://keyhole${opts.password !== undefined ? `:${encodeURIComponent(opts.password)}` : ''}@127.0.0.1:${port}/postgres`;
  await ready(url, () => proc);
  const halt = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGINT'); // fast shutdown
    await exited;
  };
  return {
    url,
    port,
    log: () => readFileSync(logFile, 'utf8'),
    halt,
    async resume() {
      proc = run();
      await ready(url, () => proc);
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ready(url: string, proc: () => ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      await c.end();
      break;
    } catch (e) {
      await c.end().catch(() => {});
      if (Date.now() > deadline || proc().exitCode !== null) throw new Error(`postgres did not start: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
