/**
 * `npm run bench` runs every suite; `npm run bench -- --only NAME` runs one. Results are merged
 * into bench/results/latest.json as { metrics: { name: number }, meta: {...} }.
 * Timing goals are checked here by reading the numbers, never by asserts in tests.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../test/harness/browser.ts';
import { auditSuite } from './audit.ts';
import { fetchSuite } from './fetch.ts';
import { kmsSuite } from './kms.ts';
import { leasesSuite } from './leases.ts';
import { lifetimesSuite } from './lifetimes.ts';
import { serverSuite } from './server.ts';
import { teamSuite } from './team.ts';
import { unlockSuite } from './unlock.ts';

export type Suite = { name: string; run: () => Promise<{ metrics: Record<string, number>; meta?: Record<string, unknown> }> };

const SUITES: Suite[] = [unlockSuite, fetchSuite, serverSuite, auditSuite, lifetimesSuite, leasesSuite, kmsSuite, teamSuite];

function argOnly(): string | undefined {
  const i = process.argv.indexOf('--only');
  return i === -1 ? undefined : process.argv[i + 1];
}

const only = argOnly();
const chosen = only ? SUITES.filter((s) => s.name === only) : SUITES;
if (chosen.length === 0) {
  console.error(`bench: no suite named "${only}"; suites: ${SUITES.map((s) => s.name).join(', ')}`);
  process.exit(2);
}

const out = join(ROOT, 'bench/results/latest.json');
let previous: { metrics: Record<string, number>; meta: Record<string, unknown> } = { metrics: {}, meta: {} };
try {
  previous = JSON.parse(readFileSync(out, 'utf8'));
} catch {
  // first run
}
const results = { metrics: { ...previous.metrics }, meta: { ...previous.meta } };
for (const suite of chosen) {
  console.log(`bench: ${suite.name} ...`);
  const r = await suite.run();
  Object.assign(results.metrics, r.metrics);
  results.meta[suite.name] = { at: new Date().toISOString(), node: process.version, cpus: cpus().length, ...r.meta };
  for (const [k, v] of Object.entries(r.metrics)) console.log(`  ${k} = ${v}`);
}
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`bench: wrote ${out}`);
