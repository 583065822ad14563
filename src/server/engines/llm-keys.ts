/**
 * The `llm-keys` engine (issue 15): a per-agent API key minted through an LLM provider's
 * management API and deleted when its lease ends, so a leaked key dies with its lease. One small
 * adapter per provider; OpenAI first, through its organization admin API:
 *
 *   POST   {apiBase}/organization/projects/{project}/service_accounts   { name }  -> { id, api_key: { value, id } }
 *   DELETE {apiBase}/organization/projects/{project}/service_accounts/{id}        -> { deleted: true } (404: already gone)
 *   GET    {apiBase}/organization/projects/{project}/service_accounts?limit&after  -> { data: [{ id, name }], has_more, last_id }
 *
 * with the organization's admin key (the root credential, sealed to the engine key) as bearer.
 * Deleting the project service account deletes its key. No answer body is ever logged or kept:
 * the key's value goes to the device that asked, once. The list is read only for a lease whose
 * key's id was never recorded (its server died between the provider's answer and the lease's
 * activation, or the making timed out): the key is found by the name the lease gave it.
 */
import type { LlmKeysConfig, LlmKeysRoot } from '../../core/sync/engine-config.ts';
import { EngineError } from './jwt.ts';

export type MintedKey = { readonly keyId: string; readonly apiKey: string };

export interface LlmKeyAdapter {
  create(c: LlmKeysConfig, root: LlmKeysRoot, name: string, signal: AbortSignal): Promise<MintedKey>;
  /** idempotent: a key already gone is deleted */
  delete(c: LlmKeysConfig, root: LlmKeysRoot, keyId: string, signal: AbortSignal): Promise<void>;
  /** deletes every key named `name` (none: nothing to do) */
  deleteNamed(c: LlmKeysConfig, root: LlmKeysRoot, name: string, signal: AbortSignal): Promise<void>;
}

/** Pages of the provider's list read at most while looking for one name (100 accounts a page). */
const MAX_LIST_PAGES = 100;

async function call(url: string, init: RequestInit, signal: AbortSignal): Promise<{ status: number; json: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal, redirect: 'error' });
  } catch (e) {
    // refused at connect: the request never left; anything else (a timeout) may have been done
    const refused = (e as { cause?: { code?: unknown } }).cause?.code === 'ECONNREFUSED';
    throw new EngineError('unavailable', 'the provider’s management API cannot be reached', refused);
  }
  const text = await res.text().catch(() => '');
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: judged by its status alone
  }
  return { status: res.status, json };
}

export const openaiAdapter: LlmKeyAdapter = {
  async create(c, root, name, signal) {
    const { status, json } = await call(
      `${c.apiBase}/organization/projects/${c.projectId}/service_accounts`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${root.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      },
      signal,
    );
    const key = json.api_key as { value?: unknown } | undefined;
    if (status !== 200 && status !== 201)
      throw new EngineError('unavailable', `the provider refused to create a key (HTTP ${status})`, status < 500);
    if (typeof json.id !== 'string' || typeof key?.value !== 'string')
      throw new EngineError('unavailable', 'the provider’s answer has no key');
    return { keyId: json.id, apiKey: key.value };
  },
  async delete(c, root, keyId, signal) {
    const { status } = await call(
      `${c.apiBase}/organization/projects/${c.projectId}/service_accounts/${encodeURIComponent(keyId)}`,
      { method: 'DELETE', headers: { authorization: `Bearer ${root.adminKey}` } },
      signal,
    );
    if (status === 200 || status === 204 || status === 404) return; // 404: already gone
    throw new EngineError('unavailable', `the provider refused to delete the key (HTTP ${status})`);
  },
  async deleteNamed(c, root, name, signal) {
    const named: string[] = [];
    let after: string | undefined;
    for (let page = 0; ; page++) {
      if (page === MAX_LIST_PAGES) throw new EngineError('unavailable', 'the provider’s list of keys is too long to search');
      const query = `limit=100${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`;
      const { status, json } = await call(
        `${c.apiBase}/organization/projects/${c.projectId}/service_accounts?${query}`,
        { method: 'GET', headers: { authorization: `Bearer ${root.adminKey}` } },
        signal,
      );
      if (status !== 200 || !Array.isArray(json.data))
        throw new EngineError('unavailable', `the provider refused to list keys (HTTP ${status})`);
      for (const a of json.data as { id?: unknown; name?: unknown }[]) if (a.name === name && typeof a.id === 'string') named.push(a.id);
      if (json.has_more !== true || typeof json.last_id !== 'string') break;
      after = json.last_id;
    }
    for (const id of named) await this.delete(c, root, id, signal);
  },
};

export const ADAPTERS: Readonly<Record<LlmKeysConfig['provider'], LlmKeyAdapter>> = { openai: openaiAdapter };
