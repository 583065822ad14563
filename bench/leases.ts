/**
 * leases.*: the distant vault's engines under load (issue 15), the server in its own process.
 *   jwt_issue_rps          JWTs issued per second (device session, policy check, ES256 signing by
 *                          the file key provider), CONCURRENCY requests in flight, keep-alive,
 *                          sent by node:http's client; the median of ROUNDS rounds, taken after
 *                          every server and client has had WARM_MS / 2 of traffic
 *   bare_rps               a bare Node http server answering a body of the same size with the same
 *                          headers, interleaved
 *   jwt_issue_over_bare    the ratio (goal >= 0.5)
 *   jwt_server_cpu_us, bare_server_cpu_us
 *                          CPU time each server process spent per request in those runs (from
 *                          /proc), and es256_sign_cpu_us: one ES256 signature in this process, the
 *                          floor a JWT adds to a bare answer
 *   jwt_client_cpu_us, bare_client_cpu_us
 *                          CPU time the load generator (this process) spent per request in each run
 *   jwt_over_bare_cpu_bound
 *                          the highest ratio this machine allows: the bare run is bound by the
 *                          load generator's one thread (1 / bare_client_cpu_us), the jwt run by
 *                          every core at once (cores / (jwt_client_cpu_us + jwt_server_cpu_us))
 *   lean_client.jwt_issue_rps, lean_client.bare_rps, lean_client.jwt_issue_over_bare,
 *   lean_client.jwt_server_cpu_us, lean_client.bare_server_cpu_us, lean_client.jwt_client_cpu_us
 *                          the same runs sent by the lean client (bench/http1.ts), which costs a
 *                          third as much: the servers nearer their own limits (no goal: a measure
 *                          of what a JWT costs the server against a bare answer)
 *   spike_errors           requests that failed (non-200 or dropped) while the offered rate steps
 *                          from 667/s (10,000 agents minting every 15 s) to ten times that, open
 *                          loop: requests leave on schedule whether or not earlier ones answered,
 *                          over at most SPIKE_CONNECTIONS keep-alive connections to each server,
 *                          opened before it (a request finding all busy waits for one, and its
 *                          wait is part of its latency, as in wrk2); sent by the lean client, so
 *                          that the load generator takes as little of the servers' two cores as
 *                          it can (goal 0)
 *   spike_p99_ms           their p99 latency, each from when it was sent (goal <= 50)
 *   node_http.spike_errors, node_http.spike_p99_ms
 *                          the same spike sent by node:http's client, right after: a load generator
 *                          that costs as much CPU per request as the server, on the same two cores
 *   (spikes on SQLite, one server; and on PostgreSQL, two replicas behind a round robin)
 *   pg_issue_p95_ms        issuing a PostgreSQL role under a lease (CREATE ROLE + GRANT on a real
 *                          PostgreSQL with passwords, lease row, sealed revocation data)
 * This machine has two cores shared by the load generator and the servers: the spike's offered
 * rate is what it is; what is measured is what got through and how fast.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { utf8 } from '../src/core/bytes.ts';
import { sealToEngine } from '../src/core/sync/engine-seal.ts';
import type { EntryBody } from '../src/core/sync/log.ts';
import { startPostgres } from '../test/harness/postgres.ts';
import { freePort } from '../test/harness/servers.ts';
import { device, login } from '../test/harness/sync.ts';
import { type ServerProcess, spawnVaultServer } from '../test/harness/vault-server.ts';
import { Http1Pool, postRequest } from './http1.ts';
import { inFlight } from './in-flight.ts';
import type { Suite } from './run.ts';
import { medianOf, percentile, round } from './stats.ts';

const CONCURRENCY = 16;
/**
 * connections each client may hold to one server in a spike, all opened (and warmed) before it: a
 * deployment's proxy keeps such a pool, and a load generator that opened one whenever the server
 * was slow would answer each slow moment with hundreds of new connections (measured: 16 open
 * before the spike, 500-950 in its first second, when its p99 was 100-370 ms)
 */
const SPIKE_CONNECTIONS = 256;
const ROUND_MS = 2000;
/** odd, so that the median is one of the rounds */
const ROUNDS = 5;
const BASE_RATE = 667;
const SPIKE_SECONDS = 3;
/**
 * closed-loop traffic each server and client take before anything is measured: a running
 * deployment, not a process's first seconds of JIT compilation (a fresh JWT server under tsx
 * issues a third to a half of its steady rate in its first two seconds; a bare one warms at once)
 */
const WARM_MS = 4000;

/**
 * node:http's client. Its sockets idle for 6 s between a client's rounds, when a Node server closes
 * idle ones; `timeout` makes the Agent drop them a second before the server's Keep-Alive hint
 * (without it, Node 20's Agent ignores the hint) instead of racing the server's close.
 */
const agent = new Agent({ keepAlive: true, maxSockets: SPIKE_CONNECTIONS, timeout: 60_000 });

function post(url: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.setTimeout(10_000, () => req.destroy());
    req.end(body);
  });
}

/** Who sends the requests: node:http's client, or the lean one (bench/http1.ts). */
type Client = 'node-http' | 'lean';

/**
 * One POST of `body` at a time to each of `urls` in turn, sent by `client`, at most SPIKE_CONNECTIONS
 * connections to each: each resolves to the status (0: dropped).
 */
function sender(client: Client, urls: string[], body: string, headers: Record<string, string>[] = []) {
  let i = 0;
  if (client === 'node-http')
    return {
      one: () => {
        const k = i++ % urls.length;
        return post(urls[k] as string, body, headers[k] ?? {});
      },
      close: () => {},
    };
  const pools = urls.map((u) => Http1Pool.for(u, { maxConnections: SPIKE_CONNECTIONS }));
  const requests = urls.map((u, k) => postRequest(u, body, headers[k]));
  return {
    one: () => {
      const k = i++ % urls.length;
      return (pools[k] as Http1Pool).request(requests[k] as Buffer);
    },
    close: () => {
      for (const p of pools) p.close();
    },
  };
}

/** CPU time (user + system) process `pid` has used, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1_000_000 / 100); // clock ticks of 1/100 s
}

/** One closed-loop run: requests per second, and the CPU the server and this process spent per request. */
type ClosedLoopRun = { rps: number; cpuUs: number; clientCpuUs: number };

/** Requests per second with `concurrency` in flight for `ms`, and the CPU the server `pid` spent per request. */
async function closedLoop(
  one: () => Promise<number>,
  ms: number,
  pid?: number,
  what = 'a throughput run',
  concurrency = CONCURRENCY,
): Promise<ClosedLoopRun> {
  const cpu = () => (pid === undefined ? 0 : cpuMicros(pid));
  const cpu0 = cpu();
  const run = await inFlight(concurrency, ms, async () => {
    const status = await one();
    if (status !== 200) throw new Error(`bench: a request failed in ${what} (status ${status})`);
  });
  return { rps: run.perSecond, cpuUs: (cpu() - cpu0) / run.done, clientCpuUs: run.cpuUs };
}

/** CPU time of one ES256 signature in this process (sync, warm): what a JWT costs beyond a bare answer, at least. */
function signCpuMicros(): number {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.alloc(400, 1);
  for (let i = 0; i < 500; i++) sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const n = 5000;
  const c = process.cpuUsage();
  for (let i = 0; i < n; i++) sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const used = process.cpuUsage(c);
  return (used.user + used.system) / n;
}

/** Open loop: `rate` requests per second for `seconds`, each timed; failures counted. */
async function openLoop(
  one: () => Promise<number>,
  rate: number,
  seconds: number,
): Promise<{ errors: number; failures: Record<string, number>; latencies: number[]; sent: number }> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {}; // by status; 0 is a dropped connection
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round(rate * seconds);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    pending.push(
      one().then((status) => {
        latencies.push(performance.now() - t);
        if (status !== 200) failures[status] = (failures[status] ?? 0) + 1;
      }),
    );
  }
  await Promise.all(pending);
  const errors = Object.values(failures).reduce((a, b) => a + b, 0);
  return { errors, failures, latencies, sent: total };
}

async function bareServer(port: number, body: string) {
  // the headers the distant vault's answers carry, content-length among them
  const code = `const b = process.env.BODY; require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => { s.writeHead(200, {'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(b)}); s.end(b); }); }).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const proc = spawn(process.execPath, ['-e', code], { env: { ...process.env, BODY: body }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => proc.stdout?.once('data', () => r()));
  return { url: `http://127.0.0.1:${port}/`, pid: proc.pid as number, stop: () => proc.kill() };
}

const LIMIT_FLAGS = { requestsPerMinute: 100_000_000, loginsPerMinute: 100_000, quiet: true };

/** A vault with a jwt engine and a policy for every member, on `servers` (replicas of one store). */
async function jwtVault(servers: ServerProcess[]): Promise<{ urls: string[]; tokens: string[] }> {
  const first = servers[0] as ServerProcess;
  const admin = await device(first.origin, 'bench admin');
  const replica = await admin.createVault();
  const { spki } = (await (await fetch(`${first.origin}/v1/engine-key`)).json()) as { spki: string };
  const bodies: EntryBody[] = [
    { type: 'engine.key', spki },
    {
      type: 'engine.config',
      engine: 'api',
      kind: 'jwt',
      config: { audience: 'https://api.bench.example', roles: { agent: { scope: 'read' } } },
    },
    { type: 'engine.policy', engine: 'api', policy: { role: 'agent', members: ['*'], maxTtlSeconds: 900 } },
  ];
  await admin.push(
    replica,
    bodies.map((body) => ({ body })),
  );
  const urls = servers.map((s) => `${s.origin}/v1/vaults/${replica.vault}/engines/api/token`);
  const tokens = await Promise.all(servers.map((s) => login(s.origin, admin)));
  return { urls, tokens };
}

type Spike = { errors: number; failures: Record<string, number>; p99: number; sent: number };

/** The spike on `servers`, sent by the lean client (the goal's measure), then by node:http's. */
async function spikes(servers: ServerProcess[]): Promise<Record<Client, Spike>> {
  const { urls, tokens } = await jwtVault(servers);
  const headers = tokens.map((t) => ({ authorization: `Bearer ${t}` }));
  const out: Partial<Record<Client, Spike>> = {};
  for (const client of ['lean', 'node-http'] as const) {
    const { one, close } = sender(client, urls, '{"role":"agent"}', headers);
    try {
      // every connection the client may hold is opened and carries requests before the spike
      await closedLoop(one, WARM_MS, undefined, `the warm-up, ${client}`, SPIKE_CONNECTIONS * urls.length);
      await openLoop(one, BASE_RATE, 2); // the base rate
      const s = await openLoop(one, BASE_RATE * 10, SPIKE_SECONDS);
      out[client] = { errors: s.errors, failures: s.failures, p99: percentile(s.latencies, 99), sent: s.sent };
    } finally {
      close();
    }
  }
  return out as Record<Client, Spike>;
}

export const leasesSuite: Suite = {
  name: 'leases',
  async run() {
    const keyDir = mkdtempSync(join(tmpdir(), 'keyhole-bench-keys-'));
    const sqlite = await spawnVaultServer({
      port: await freePort(),
      dataDir: mkdtempSync(join(tmpdir(), 'keyhole-bench-')),
      ...LIMIT_FLAGS,
    });
    const pg = await startPostgres();
    const target = await startPostgres({ password: 'FAKE-bench-root' });
    let replicas: ServerProcess[] = [];
    try {
      // throughput: jwt issue against a bare server, interleaved
      const { urls, tokens } = await jwtVault([sqlite]);
      const bare = await bareServer(await freePort(), JSON.stringify({ token: 'x'.repeat(560), expiresAt: Date.now(), ttlSeconds: 900 }));
      const runs = {
        'node-http': { jwt: [] as ClosedLoopRun[], bare: [] as ClosedLoopRun[] },
        lean: { jwt: [] as ClosedLoopRun[], bare: [] as ClosedLoopRun[] },
      };
      const senders = (['node-http', 'lean'] as const).map((client) => ({
        client,
        jwt: sender(client, urls, '{"role":"agent"}', [{ authorization: `Bearer ${tokens[0]}` }]),
        bare: sender(client, [bare.url], '{"role":"agent"}'),
      }));
      try {
        // both servers and both clients warm, each pair for half of WARM_MS, before the first round
        for (const { jwt, bare: toBare } of senders) {
          await closedLoop(jwt.one, WARM_MS / 2);
          await closedLoop(toBare.one, WARM_MS / 2);
        }
        for (let r = 0; r < ROUNDS; r++) {
          for (const { client, jwt, bare: toBare } of senders) {
            runs[client].jwt.push(await closedLoop(jwt.one, ROUND_MS, sqlite.proc.pid as number, `the jwt run, ${client}`));
            runs[client].bare.push(await closedLoop(toBare.one, ROUND_MS, bare.pid, `the bare run, ${client}`));
          }
        }
      } finally {
        for (const s of senders) {
          s.jwt.close();
          s.bare.close();
        }
        bare.stop();
      }
      const { jwt: jwtRuns, bare: bareRuns } = runs['node-http'];
      const lean = runs.lean;
      const signUs = signCpuMicros();
      const sqliteSpikes = await spikes([sqlite]);

      // PostgreSQL: two replicas sharing the store and the key file
      const keyFile = join(keyDir, 'keys.json');
      replicas = [
        await spawnVaultServer({ port: await freePort(), databaseUrl: pg.url, keyFile, ...LIMIT_FLAGS }),
        await spawnVaultServer({ port: await freePort(), databaseUrl: pg.url, keyFile, ...LIMIT_FLAGS }),
      ];
      const pgSpikes = await spikes(replicas);

      // the postgres engine: issue a role under a lease, 100 times, revoking each
      const first = replicas[0] as ServerProcess;
      const admin = await device(first.origin, 'bench pg admin');
      const replica = await admin.createVault();
      const { spki } = (await (await fetch(`${first.origin}/v1/engine-key`)).json()) as { spki: string };
      const sealed = await sealToEngine(spki, utf8(JSON.stringify({ username: 'keyhole', password: 'FAKE-bench-root' })), {
        vault: replica.vault,
        engine: 'db',
        kind: 'postgres',
      });
      const config = {
        host: '127.0.0.1',
        port: target.port,
        database: 'postgres',
        defaultTtlSeconds: 600,
        roles: { reader: { creation: ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"] } },
      };
      const bodies: EntryBody[] = [
        { type: 'engine.key', spki },
        { type: 'engine.config', engine: 'db', kind: 'postgres', config, sealed },
        { type: 'engine.policy', engine: 'db', policy: { role: 'reader', members: ['*'], maxTtlSeconds: 900, maxLeasesPerDevice: 200 } },
      ];
      await admin.push(
        replica,
        bodies.map((body) => ({ body })),
      );
      const session = await login(first.origin, admin);
      const pgIssue: number[] = [];
      for (let n = 0; n < 100; n++) {
        const t = performance.now();
        const r = await fetch(`${first.origin}/v1/vaults/${replica.vault}/engines/db/token`, {
          method: 'POST',
          headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' },
          body: '{"role":"reader"}',
        });
        const lease = (await r.json()) as { leaseId: string };
        if (r.status !== 200) throw new Error(`bench: postgres issue failed (${r.status})`);
        pgIssue.push(performance.now() - t);
        await fetch(`${first.origin}/v1/leases/${lease.leaseId}/revoke`, {
          method: 'POST',
          headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' },
          body: '{}',
        });
      }

      const metrics: Record<string, number> = {
        'leases.jwt_issue_rps': round(medianOf(jwtRuns, 'rps'), 0),
        'leases.bare_rps': round(medianOf(bareRuns, 'rps'), 0),
        'leases.jwt_issue_over_bare': round(medianOf(jwtRuns, 'rps') / medianOf(bareRuns, 'rps'), 3),
        'leases.jwt_server_cpu_us': round(medianOf(jwtRuns, 'cpuUs'), 1),
        'leases.bare_server_cpu_us': round(medianOf(bareRuns, 'cpuUs'), 1),
        'leases.es256_sign_cpu_us': round(signUs, 1),
        'leases.jwt_client_cpu_us': round(medianOf(jwtRuns, 'clientCpuUs'), 1),
        'leases.bare_client_cpu_us': round(medianOf(bareRuns, 'clientCpuUs'), 1),
        // the most the ratio can be here: the bare run is bound by the one-threaded load generator,
        // the jwt run by all the cores, shared by the load generator and the server
        'leases.jwt_over_bare_cpu_bound': round(
          (availableParallelism() * medianOf(bareRuns, 'clientCpuUs')) / (medianOf(jwtRuns, 'clientCpuUs') + medianOf(jwtRuns, 'cpuUs')),
          3,
        ),
        'leases.lean_client.jwt_issue_rps': round(medianOf(lean.jwt, 'rps'), 0),
        'leases.lean_client.bare_rps': round(medianOf(lean.bare, 'rps'), 0),
        'leases.lean_client.jwt_issue_over_bare': round(medianOf(lean.jwt, 'rps') / medianOf(lean.bare, 'rps'), 3),
        'leases.lean_client.jwt_server_cpu_us': round(medianOf(lean.jwt, 'cpuUs'), 1),
        'leases.lean_client.bare_server_cpu_us': round(medianOf(lean.bare, 'cpuUs'), 1),
        'leases.lean_client.jwt_client_cpu_us': round(medianOf(lean.jwt, 'clientCpuUs'), 1),
        'leases.spike_errors': sqliteSpikes.lean.errors,
        'leases.spike_p99_ms': round(sqliteSpikes.lean.p99, 1),
        'leases.pg_replicas.spike_errors': pgSpikes.lean.errors,
        'leases.pg_replicas.spike_p99_ms': round(pgSpikes.lean.p99, 1),
        'leases.node_http.spike_errors': sqliteSpikes['node-http'].errors,
        'leases.node_http.spike_p99_ms': round(sqliteSpikes['node-http'].p99, 1),
        'leases.node_http.pg_replicas.spike_errors': pgSpikes['node-http'].errors,
        'leases.node_http.pg_replicas.spike_p99_ms': round(pgSpikes['node-http'].p99, 1),
        'leases.pg_issue_p95_ms': round(percentile(pgIssue, 95), 1),
      };
      return {
        metrics,
        meta: {
          concurrency: CONCURRENCY,
          rounds: ROUNDS,
          closedLoopWarmMs: WARM_MS / 2,
          jwtRounds: jwtRuns.map((r) => round(r.rps, 0)),
          bareRounds: bareRuns.map((r) => round(r.rps, 0)),
          leanClientJwtRounds: lean.jwt.map((r) => round(r.rps, 0)),
          leanClientBareRounds: lean.bare.map((r) => round(r.rps, 0)),
          spike: {
            fromPerSecond: BASE_RATE,
            toPerSecond: BASE_RATE * 10,
            seconds: SPIKE_SECONDS,
            warmMs: WARM_MS,
            connectionsPerServer: SPIKE_CONNECTIONS,
            client: 'lean (bench/http1.ts); node_http.*: node:http',
            sqliteSent: sqliteSpikes.lean.sent,
            pgSent: pgSpikes.lean.sent,
            sqliteFailures: sqliteSpikes.lean.failures,
            pgFailures: pgSpikes.lean.failures,
            nodeHttpSqliteFailures: sqliteSpikes['node-http'].failures,
            nodeHttpPgFailures: pgSpikes['node-http'].failures,
          },
          goalsMet: {
            'jwt_issue_over_bare >= 0.5': (metrics['leases.jwt_issue_over_bare'] ?? 0) >= 0.5,
            'spike_errors = 0 (sqlite)': sqliteSpikes.lean.errors === 0,
            'spike_p99_ms <= 50 (sqlite)': sqliteSpikes.lean.p99 <= 50,
            'spike_errors = 0 (postgres, two replicas)': pgSpikes.lean.errors === 0,
            'spike_p99_ms <= 50 (postgres, two replicas)': pgSpikes.lean.p99 <= 50,
          },
        },
      };
    } finally {
      await sqlite.stop();
      for (const r of replicas) await r.stop();
      await pg.stop();
      await target.stop();
    }
  },
};
