/**
 * server.* and sync.*: the distant vault (`src/server/main.ts`, its own process, SQLite default)
 * against a bare Node `http` server in its own process answering a fixed body of the same size
 * as a pull's answer. Both are loaded the same way from this process (keep-alive, CONCURRENCY
 * requests in flight), interleaved in rounds so machine noise hits both alike.
 *   server.pull.rps        authenticated incremental pulls (the last entry and its blob)
 *   server.bare.rps        the bare server
 *   server.commit.rps      commits of one sealed item each, one vault per concurrent device
 *   server.commit.p99_ms
 *   sync.initial_10k_ms    a fresh replica pulling and verifying a 10,000-secret vault
 *                          (every signature, chain link and blob hash), pages of 1,000
 *   sync.extension_initial_10k_ms
 *                          the same in the extension, end to end: a fresh Chromium profile that
 *                          was just added to the vault runs `sync.now` (pull, verify, store all
 *                          10,000 secrets in IndexedDB, keep the verified replica)
 *   sync.extension_list_10k_ms
 *                          then lists them (opens 10,000 sealed names)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { Agent, get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Replica } from '../src/background/sync/replica.ts';
import type { Pending } from '../src/background/sync/vault-client.ts';
import { VaultClient } from '../src/background/sync/vault-client.ts';
import type { SecretSummary, SyncStatus } from '../src/core/api.ts';
import { parsePairingCode } from '../src/core/crypto/device.ts';
import { deriveItemsKey } from '../src/core/crypto/keys.ts';
import { newVaultKey, wrapVaultKey } from '../src/core/crypto/share.ts';
import { launch, POPUP, rpc } from '../test/harness/browser.ts';
import { freePort } from '../test/harness/servers.ts';
import { device, login, putItem, vaultKeys } from '../test/harness/sync.ts';
import { spawnVaultServer } from '../test/harness/vault-server.ts';
import { inFlight } from './in-flight.ts';
import type { Suite } from './run.ts';
import { percentile, round } from './stats.ts';

const CONCURRENCY = 16;
const ROUND_MS = 2000;
const ROUNDS = 4;
const SECRETS = 10_000;

/** Requests per second over `ms` with CONCURRENCY loops issuing `one()`. */
async function load(one: () => Promise<number>, ms: number): Promise<{ rps: number; latencies: number[] }> {
  const latencies: number[] = [];
  const run = await inFlight(CONCURRENCY, ms, async () => {
    const t = performance.now();
    const status = await one();
    if (status !== 200) throw new Error(`bench: unexpected status ${status}`);
    latencies.push(performance.now() - t);
  });
  return { rps: run.perSecond, latencies };
}

// node:http with a keep-alive agent: a lighter load generator than fetch, so the servers, not
// the client, set the pace as far as one process on this 2-core machine allows.
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
function get(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent, headers }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

async function bareServer(port: number, body: string) {
  const code = `require('node:http').createServer((q, s) => { s.writeHead(200, {'content-type': 'application/json', 'cache-control': 'no-store'}); s.end(process.env.BODY); }).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const proc = spawn(process.execPath, ['-e', code], { env: { ...process.env, BODY: body }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => proc.stdout?.once('data', () => r()));
  return { url: `http://127.0.0.1:${port}/`, stop: () => proc.kill() };
}

export const serverSuite: Suite = {
  name: 'server',
  async run() {
    const server = await spawnVaultServer({
      port: await freePort(),
      dataDir: mkdtempSync(join(tmpdir(), 'keyhole-bench-')),
      requestsPerMinute: 100_000_000, // the bench measures throughput, not the limiter
      loginsPerMinute: 100_000,
    });
    const origin = server.origin;
    try {
      // A vault with SECRETS sealed items, written in commits of 1,000.
      const a = await device(origin, 'bench-writer');
      const r = await a.createVault();
      // sealed as the extension seals a synced vault's secrets: under the epoch-1 vault key's items key
      const vaultKey = newVaultKey();
      const keys = { ...(await vaultKeys(r.vault)), items: await deriveItemsKey(vaultKey, r.vault) };
      for (let i = 0; i < SECRETS; i += 1000) {
        const batch: Pending[] = [];
        for (let j = i; j < Math.min(SECRETS, i + 1000); j++) batch.push(await putItem(keys, r, `k${j}`, `sk-FAKE-bench-${j}`));
        await a.push(r, batch);
      }

      // Initial sync on a fresh replica (median of 3).
      const syncs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const fresh = new Replica(r.vault);
        const reader = new VaultClient(origin, a.device);
        const t = performance.now();
        await reader.pull(fresh);
        syncs.push(performance.now() - t);
        if (fresh.seq !== SECRETS + 1 || fresh.itemIds().length !== SECRETS) throw new Error('bench: initial sync incomplete');
      }

      // The same in the extension: fresh profiles, each added to the vault, then one sync run.
      type Res<T> = { ok: boolean; result: T; error?: { code: string } };
      const extSyncs: number[] = [];
      const extLists: number[] = [];
      for (let i = 0; i < 3; i++) {
        const h = await launch();
        try {
          const page = await h.open(POPUP);
          await rpc(page, 'vault.create', { passphrase: 'FAKE bench passphrase', kdf: 'pbkdf2-sha256' });
          const joining = await rpc<Res<SyncStatus>>(page, 'sync.join', { server: origin, deviceName: `bench-reader-${i}` });
          const d = await a.pairingDevice(parsePairingCode(joining.result.device?.pairingCode ?? '') ?? '');
          const wrapped = await wrapVaultKey(vaultKey, d, { vault: r.vault, epoch: 1 });
          await a.push(r, [{ body: { type: 'member.add', device: d } }, { body: { type: 'key.wrap', to: d.id, wrapped } }]);
          const t = performance.now();
          const done = await rpc<Res<SyncStatus>>(page, 'sync.now');
          extSyncs.push(performance.now() - t);
          if (!done.ok || done.result.lastError || done.result.joining)
            throw new Error(`bench: extension sync failed ${JSON.stringify(done)}`);
          const t2 = performance.now();
          const list = await rpc<Res<{ secrets: SecretSummary[] }>>(page, 'secrets.list');
          extLists.push(performance.now() - t2);
          if (list.result.secrets.length !== SECRETS) throw new Error(`bench: extension has ${list.result.secrets.length} secrets`);
        } finally {
          await h.close();
        }
      }

      // Pull vs bare, interleaved.
      const tok = await login(origin, a);
      const pullUrl = `${origin}/v1/vaults/${r.vault}/entries?after=${r.seq - 1}`;
      const sample = await (await fetch(pullUrl, { headers: { authorization: `Bearer ${tok}` } })).text();
      const bare = await bareServer(await freePort(), 'x'.repeat(sample.length));
      const pull = () => get(pullUrl, { authorization: `Bearer ${tok}` });
      const plain = () => get(bare.url, {});
      const pulls: number[] = [];
      const bares: number[] = [];
      try {
        await load(pull, 500); // warm up both
        await load(plain, 500);
        for (let i = 0; i < ROUNDS; i++) {
          const order = i % 2 === 0 ? ['pull', 'bare'] : ['bare', 'pull'];
          for (const which of order) {
            if (which === 'pull') pulls.push((await load(pull, ROUND_MS)).rps);
            else bares.push((await load(plain, ROUND_MS)).rps);
          }
        }
      } finally {
        bare.stop();
      }

      // Commits: CONCURRENCY devices, each committing one sealed item at a time to its own vault.
      const writers = await Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, i) => {
          const c = await device(origin, `committer-${i}`);
          const rep = await c.createVault();
          return { c, rep, keys: await vaultKeys(rep.vault), n: 0 };
        }),
      );
      const commitLatencies: number[] = [];
      const t0 = performance.now();
      let commits = 0;
      const end = t0 + ROUND_MS * 2;
      await Promise.all(
        writers.map(async (w) => {
          while (performance.now() < end) {
            const p = await putItem(w.keys, w.rep, `c${w.n++}`, 'sk-FAKE-commit');
            const t = performance.now();
            await w.c.push(w.rep, [p]);
            commitLatencies.push(performance.now() - t);
            commits++;
          }
        }),
      );
      const commitRps = commits / ((performance.now() - t0) / 1000);

      const median = (xs: number[]) => percentile(xs, 50);
      const pullRps = median(pulls);
      const bareRps = median(bares);
      return {
        metrics: {
          'server.pull.rps': round(pullRps, 0),
          'server.bare.rps': round(bareRps, 0),
          'server.pull_vs_bare': round(pullRps / bareRps, 3),
          'server.commit.rps': round(commitRps, 0),
          'server.commit.p99_ms': round(percentile(commitLatencies, 99)),
          'sync.initial_10k_ms': round(median(syncs), 0),
          'sync.extension_initial_10k_ms': round(median(extSyncs), 0),
          'sync.extension_list_10k_ms': round(median(extLists), 0),
        },
        meta: {
          engine: 'sqlite (synchronous=FULL)',
          concurrency: CONCURRENCY,
          rounds: ROUNDS,
          round_ms: ROUND_MS,
          pull_rps_rounds: pulls.map((x) => round(x, 0)),
          bare_rps_rounds: bares.map((x) => round(x, 0)),
          pull_body_bytes: sample.length,
          sync_runs_ms: syncs.map((x) => round(x, 0)),
          extension_sync_runs_ms: extSyncs.map((x) => round(x, 0)),
          extension_list_runs_ms: extLists.map((x) => round(x, 0)),
          commits,
          goals: {
            'pull >= 0.5 x bare': pullRps / bareRps >= 0.5,
            'initial 10k sync <= 2000 ms': median(syncs) <= 2000,
            'extension initial 10k sync <= 2000 ms': median(extSyncs) <= 2000,
          },
        },
      };
    } finally {
      await server.stop();
    }
  },
};
