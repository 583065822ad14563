/**
 * What a canary search looks through: the answers a page got to the calls it makes here, and the
 * audit export in both formats (taken from an extension page).
 */
import type { Page } from 'playwright';
import { rpcOk } from './browser.ts';
import { request } from './provider.ts';

export async function pageAndAudit(
  agent: Page,
  options: Page,
  calls: readonly (readonly [string, unknown])[],
  seenBefore: readonly string[] = [],
): Promise<{ page: string; auditJsonl: string; auditCsv: string }> {
  const seen = [...seenBefore];
  for (const [method, params] of calls) seen.push(JSON.stringify(await request(agent, method, params)));
  const [jsonl, csv] = await Promise.all(['jsonl', 'csv'].map((format) => rpcOk<{ text: string }>(options, 'audit.export', { format })));
  return { page: seen.join('\n'), auditJsonl: jsonl?.text ?? '', auditCsv: csv?.text ?? '' };
}
