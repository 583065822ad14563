/**
 * The real distant vault for tests: in this process over either engine, or as its own
 * process (`npm run server`'s entry) so it can be killed and restarted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVaultServer, type Limits } from '../../src/server/app.ts';
import type { KeyProvider } from '../../src/server/kms/provider.ts';
import { openPostgres } from '../../src/server/postgres.ts';
import { openSqlite } from '../../src/server/sqlite.ts';
import type { Store } from '../../src/server/store.ts';
import { freePort } from './servers.ts';

export type Engine = 'sqlite' | 'postgres';

export type RunningServer = {
  readonly origin: string;
  readonly store: Store;
  /** the engine routes, when the server has a key provider (tests sweep leases by hand) */
  readonly engines?: unknown;
  /** the team cache's routes (their sweep) */
  readonly team?: { sweep(): Promise<number> };
  readonly logs: string[];
  readonly close: () => Promise<void>;
};

export async function openStore(engine: Engine, pgUrl?: string): Promise<Store> {
  if (engine === 'sqlite') return openSqlite(mkdtempSync(join(tmpdir(), 'keyhole-sqlite-')));
  if (pgUrl === undefined) throw new Error('postgres engine needs a url');
  return openPostgres(pgUrl);
}

export async function startVaultServer(
  store: Store,
  limits: Partial<Limits> = {},
  extra: { kms?: KeyProvider; now?: () => number; sweepIntervalMs?: number } = {},
): Promise<RunningServer> {
  const logs: string[] = [];
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const app = createVaultServer({ store, origin, log: (r) => logs.push(JSON.stringify(r)), limits, ...extra });
  await app.listen(port);
  return { origin, store, logs, engines: app.engines, team: app.team, close: () => app.close() };
}

export type ServerProcess = {
  readonly origin: string;
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>;
};

/** `src/server/main.ts` in its own process, on a given port. */
export async function spawnVaultServer(args: {
  port: number;
  dataDir?: string;
  databaseUrl?: string;
  loginsPerMinute?: number;
  requestsPerMinute?: number;
  /** the key provider's file (default: in the data directory, or a temporary one); replicas share one */
  keyFile?: string;
  /**
   * its output goes to a file, not through this process (a bench: the process measuring would
   * read every log line, and a server whose pipe is full waits for it, as one writing to a
   * journal or a file does not)
   */
  quiet?: boolean;
  /** more arguments and environment (a `kms` command, the pkcs11 provider's) */
  extraArgs?: string[];
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  const argv = ['--import', 'tsx', 'src/server/main.ts', ...(args.extraArgs ?? []), '--port', String(args.port)];
  if (args.dataDir !== undefined) argv.push('--data-dir', args.dataDir);
  const keyFile =
    args.keyFile ?? (args.dataDir === undefined ? join(mkdtempSync(join(tmpdir(), 'keyhole-keys-')), 'keys.json') : undefined);
  if (keyFile !== undefined) argv.push('--key-file', keyFile);
  if (args.databaseUrl !== undefined) argv.push('--database-url', args.databaseUrl);
  if (args.requestsPerMinute !== undefined) argv.push('--requests-per-minute', String(args.requestsPerMinute));
  if (args.loginsPerMinute !== undefined) argv.push('--logins-per-minute', String(args.loginsPerMinute));
  const logFile = args.quiet ? join(mkdtempSync(join(tmpdir(), 'keyhole-server-log-')), 'server.log') : undefined;
  const logFd = logFile === undefined ? undefined : openSync(logFile, 'a');
  const proc = spawn(process.execPath, argv, {
    stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd],
    env: { ...process.env, ...args.env },
  });
  if (logFd !== undefined) closeSync(logFd); // the child has its own copy
  let piped = '';
  proc.stdout?.on('data', (d) => {
    piped += d;
  });
  proc.stderr?.on('data', (d) => {
    piped += d;
  });
  const output = () => (logFile === undefined ? piped : readFileSync(logFile, 'utf8'));
  const origin = `http://127.0.0.1:${args.port}`;
  const deadline = Date.now() + 30_000;
  while (!output().includes('"listening"')) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`vault server did not start: ${output().slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    origin,
    proc,
    output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await exited;
    },
  };
}
