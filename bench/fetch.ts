/**
 * fetch.*: the cost of each way a page can use a credential, measured in one run against the
 * same local server, interleaved in rounds (shuffled each round) so machine noise hits all
 * methods alike. Timed inside the page with performance.now():
 *   plain        page fetch, no credential (the floor)
 *   transparent  page fetch; a DNR session rule adds the header
 *   broker       provider keyhole_fetch; the worker makes the request and strips the reply
 *   proxy        page fetch to a minimal local forward proxy that adds the header (the
 *                approach of agent credential proxies such as AgentSecrets, Infisical Agent Vault)
 * and fetch.broker_cold_ms: the first brokered call after the worker was stopped (median of 7).
 * Then the broker's two parts alone, for context: fetch.messaging_noop (a provider call the worker
 * refuses at once: the page-to-worker round trip) and fetch.worker_fetch (the worker's own fetch
 * of the bound URL, timed in the worker).
 */
import { Agent, request as httpRequest } from 'node:http';
import type { Page, Worker } from 'playwright';
import { launch, OPTIONS, rpc } from '../test/harness/browser.ts';
import { grantForPeriod } from '../test/harness/provider.ts';
import { appServer, listen } from '../test/harness/servers.ts';
import type { Suite } from './run.ts';
import { percentile, round } from './stats.ts';

const ROUNDS = 1000;
const COLD_RUNS = 7;
const VALUE = 'sk-FAKE-bench-0123456789abcdef';
const BODY = JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] });

async function apiServer() {
  let withKey = 0;
  const server = await listen((req, res) => {
    if (req.headers.authorization === `Bearer ${VALUE}`) withKey++;
    res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'cache-control': 'no-store' });
    res.end(BODY);
  });
  const port = (server.address() as { port: number }).port;
  return { port, withKey: () => withKey, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A forward proxy in its simplest form: add the header, pipe the reply back (keep-alive upstream). */
async function proxyServer(upstreamPort: number) {
  const agent = new Agent({ keepAlive: true });
  const server = await listen((req, res) => {
    const up = httpRequest(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        path: req.url?.replace(/^\/proxied/, '/bound'),
        method: req.method,
        agent,
        headers: { ...req.headers, authorization: `Bearer ${VALUE}` },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  const port = (server.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

type Timings = Record<'plain' | 'transparent' | 'broker' | 'proxy', number[]>;

async function runRounds(page: Page, api: number, proxy: number): Promise<Timings> {
  // tsx compiles with esbuild's keepNames, which wraps named functions in __name(); the page has none
  await page.evaluate('globalThis.__name ??= (f) => f');
  return page.evaluate(
    async ([apiPort, proxyPort, rounds]) => {
      const provider = await new Promise<{ request(a: { method: string; params?: unknown }): Promise<{ status: number }> }>((resolve) => {
        window.addEventListener('keyhole:announceProvider', (e) => resolve((e as CustomEvent).detail.provider), { once: true });
        window.dispatchEvent(new Event('keyhole:requestProvider'));
      });
      const base = `http://127.0.0.1:${apiPort}`;
      const methods: Record<string, () => Promise<unknown>> = {
        plain: () => fetch(`${base}/plain/models`).then((r) => r.text()),
        transparent: () => fetch(`${base}/bound/models`).then((r) => r.text()),
        broker: () => provider.request({ method: 'keyhole_fetch', params: { secret: 'bench', url: `${base}/bound/models` } }),
        proxy: () => fetch(`http://127.0.0.1:${proxyPort}/proxied/models`).then((r) => r.text()),
      };
      const out: Record<string, number[]> = { plain: [], transparent: [], broker: [], proxy: [] };
      const names = Object.keys(methods);
      for (let round = -20; round < rounds; round++) {
        // Fisher-Yates: a fresh order each round
        for (let i = names.length - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [names[i], names[j]] = [names[j] as string, names[i] as string];
        }
        for (const name of names) {
          const t0 = performance.now();
          await (methods[name] as () => Promise<unknown>)();
          const dt = performance.now() - t0;
          if (round >= 0) out[name]?.push(dt); // the first 20 rounds warm up connections and JIT
        }
      }
      return out;
    },
    [api, proxy, ROUNDS] as const,
  ) as Promise<Timings>;
}

const FLOOR_CALLS = 500;

/** The broker's two parts, each timed alone: `messaging_noop` in the page, `worker_fetch` in the worker. */
async function messagingAndWorkerFetch(
  page: Page,
  worker: Worker,
  url: string,
): Promise<{ messaging_noop: number[]; worker_fetch: number[] }> {
  const messaging_noop = (await page.evaluate(`(async () => {
    const provider = await new Promise((resolve) => {
      addEventListener('keyhole:announceProvider', (e) => resolve(e.detail.provider), { once: true });
      dispatchEvent(new Event('keyhole:requestProvider'));
    });
    const out = [];
    for (let i = -20; i < ${FLOOR_CALLS}; i++) {
      const t0 = performance.now();
      await provider.request({ method: 'keyhole_noSuchMethod' }).catch(() => 0);
      if (i >= 0) out.push(performance.now() - t0);
    }
    return out;
  })()`)) as number[];
  const worker_fetch = (await worker.evaluate(`(async () => {
    const out = [];
    for (let i = -20; i < ${FLOOR_CALLS}; i++) {
      const t0 = performance.now();
      await fetch(${JSON.stringify(url)}, { credentials: 'omit', cache: 'no-store' }).then((r) => r.arrayBuffer());
      if (i >= 0) out.push(performance.now() - t0);
    }
    return out;
  })()`)) as number[];
  return { messaging_noop, worker_fetch };
}

export const fetchSuite: Suite = {
  name: 'fetch',
  async run() {
    const api = await apiServer();
    const proxy = await proxyServer(api.port);
    const app = await appServer();
    const h = await launch();
    try {
      const options = await h.open(OPTIONS);
      await rpc(options, 'vault.create', { passphrase: 'bench passphrase, not a secret (FAKE)', kdf: 'pbkdf2-sha256' });
      // the per-grant limiter stays in the path; its limit is raised above what 2,000 back-to-back calls need
      await rpc(options, 'settings.set', { requestsPerMinute: 100_000 });
      await rpc(options, 'secrets.create', {
        name: 'bench',
        value: VALUE,
        rule: { hosts: [`127.0.0.1:${api.port}`], pathPrefixes: ['/bound/'], header: 'Authorization', template: 'Bearer {value}' },
      });
      const page = await h.context.newPage();
      await page.goto(`http://127.0.0.1:${app.port}/`);
      // one broker grant from the page, one transparent grant from the options page (no prompt)
      if (!(await grantForPeriod(h.context, page, { secrets: ['bench'], ttlSeconds: 3600 })).ok) throw new Error('bench: grant refused');
      const secretId = (await rpc<{ result: { secrets: { id: string }[] } }>(options, 'secrets.list')).result.secrets[0]?.id;
      await rpc(options, 'grants.create', { origin: `http://127.0.0.1:${app.port}`, secretId, ttlSeconds: 3600 });
      await new Promise((r) => setTimeout(r, 500)); // the rule is installed asynchronously

      const before = api.withKey();
      const t = await runRounds(page, api.port, proxy.port);
      const keyed = api.withKey() - before;
      // every transparent, broker and proxy call carried the key; plain ones did not
      if (keyed !== 3 * (ROUNDS + 20)) throw new Error(`bench: ${keyed} keyed requests, expected ${3 * (ROUNDS + 20)}`);

      // Where the broker's time goes, measured after the rounds: a provider call the worker
      // refuses at once (4200) is the page-to-worker messaging round trip, and the worker's own
      // fetch of the bound URL is the rest. The proxy's cost is one local hop on a page fetch.
      const floor = await messagingAndWorkerFetch(page, await h.worker(), `http://127.0.0.1:${api.port}/bound/models`);

      const cold: number[] = [];
      for (let i = 0; i < COLD_RUNS; i++) {
        const stop = await h.stopWorker();
        const ms = await page.evaluate(async (port) => {
          const provider = await new Promise<{ request(a: unknown): Promise<unknown> }>((resolve) => {
            window.addEventListener('keyhole:announceProvider', (e) => resolve((e as CustomEvent).detail.provider), { once: true });
            window.dispatchEvent(new Event('keyhole:requestProvider'));
          });
          const t0 = performance.now();
          await provider.request({ method: 'keyhole_fetch', params: { secret: 'bench', url: `http://127.0.0.1:${port}/bound/models` } });
          return performance.now() - t0;
        }, api.port);
        if (!(await stop.restarted())) throw new Error('bench: the worker was not stopped');
        cold.push(ms);
      }

      const metrics: Record<string, number> = {};
      for (const [name, xs] of Object.entries(t)) {
        metrics[`fetch.${name}.p50_ms`] = round(percentile(xs, 50), 2);
        metrics[`fetch.${name}.p95_ms`] = round(percentile(xs, 95), 2);
      }
      for (const [name, xs] of Object.entries(floor)) {
        metrics[`fetch.${name}.p50_ms`] = round(percentile(xs, 50), 2);
        metrics[`fetch.${name}.p95_ms`] = round(percentile(xs, 95), 2);
      }
      metrics['fetch.broker_cold_ms'] = round(percentile(cold, 50), 1);
      metrics['fetch.transparent_over_plain_p95'] = round(
        (metrics['fetch.transparent.p95_ms'] ?? 0) / (metrics['fetch.plain.p95_ms'] ?? 1),
        3,
      );
      metrics['fetch.broker_over_proxy_p95'] = round((metrics['fetch.broker.p95_ms'] ?? 0) / (metrics['fetch.proxy.p95_ms'] ?? 1), 3);
      return {
        metrics,
        meta: {
          rounds: ROUNDS,
          warmupRounds: 20,
          coldRuns: COLD_RUNS,
          coldSamples: cold.map((x) => round(x, 1)),
          goalsMet: {
            'transparent p95 <= 1.10 x plain p95': (metrics['fetch.transparent_over_plain_p95'] ?? Infinity) <= 1.1,
            'broker p95 <= proxy p95': (metrics['fetch.broker_over_proxy_p95'] ?? Infinity) <= 1,
            'broker cold <= 150 ms': (metrics['fetch.broker_cold_ms'] ?? Infinity) <= 150,
          },
        },
      };
    } finally {
      await h.close();
      await Promise.all([api.close(), proxy.close(), app.close()]);
    }
  },
};
