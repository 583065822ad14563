/**
 * A local server shaped like OpenAI's organization admin API for project service accounts
 * (POST, GET and DELETE /v1/organization/projects/{project}/service_accounts[/{id}]), for the
 * `llm-keys` engine. It takes only its admin key, answers as OpenAI does (the new account with its
 * unredacted key; a page of accounts, oldest first, `limit` 1-100 and `after`; `{deleted: true}`;
 * 404 for an account already gone), and records every create and delete, so a test can count how
 * many times each key was deleted. A test may hold the answer to a create after the account exists
 * (a server that dies before it hears back).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { close, listen, readBody } from './servers.ts';

export type OpenAiAdmin = {
  readonly apiBase: string;
  readonly adminKey: string;
  readonly projectId: string;
  /** live service accounts: id -> its key */
  readonly live: Map<string, string>;
  /** live service accounts' names: id -> name */
  readonly names: Map<string, string>;
  /** while set, a create answers only when this settles (the account already exists) */
  holdCreates: Promise<void> | null;
  /** successful deletions by account id (a second DELETE is a 404 and not counted) */
  readonly deleted: Map<string, number>;
  readonly requests: { method: string; status: number }[];
  /** while true, every call fails with 503 (a provider outage) */
  down: boolean;
  close(): Promise<void>;
};

export async function startOpenAiAdmin(): Promise<OpenAiAdmin> {
  const adminKey = `sk-admin-FAKE-${randomBytes(12).toString('hex')}`;
  const projectId = 'proj_FAKE';
  const live = new Map<string, string>();
  const names = new Map<string, string>();
  const deleted = new Map<string, number>();
  const requests: { method: string; status: number }[] = [];
  const state = { down: false, holdCreates: null as Promise<void> | null };
  const server = await listen(async (req, res) => {
    const answer = (status: number, body: unknown) => {
      requests.push({ method: req.method ?? '', status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const body = await readBody(req);
    if (state.down) return answer(503, { error: { message: 'FAKE outage' } });
    if (req.headers.authorization !== `Bearer ${adminKey}`)
      return answer(401, { error: { message: 'Invalid admin key', type: 'invalid_request_error' } });
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v1\/organization\/projects\/([^/]+)\/service_accounts(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || m[1] !== projectId) return answer(404, { error: { message: 'not found' } });
    if (req.method === 'POST' && !m[2]) {
      const { name } = JSON.parse(body.toString() || '{}') as { name?: string };
      const id = `svc_acct_${randomBytes(8).toString('hex')}`;
      const value = `sk-svcacct-FAKE-${randomBytes(16).toString('hex')}`;
      live.set(id, value);
      names.set(id, String(name));
      await state.holdCreates;
      const created = Math.floor(Date.now() / 1000);
      return answer(200, {
        object: 'organization.project.service_account',
        id,
        name,
        role: 'member',
        created_at: created,
        api_key: {
          object: 'organization.project.service_account.api_key',
          value,
          name: 'Secret Key',
          created_at: created,
          id: `key_${id}`,
        },
      });
    }
    if (req.method === 'GET' && !m[2]) {
      const limit = Number(url.searchParams.get('limit') ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) return answer(400, { error: { message: 'limit is 1 to 100' } });
      const ids = [...live.keys()];
      const after = url.searchParams.get('after');
      const from = after === null ? 0 : ids.indexOf(after) + 1;
      const page = ids.slice(from, from + limit);
      const data = page.map((id) => ({
        object: 'organization.project.service_account',
        id,
        name: names.get(id),
        role: 'member',
        created_at: 0,
      }));
      return answer(200, {
        object: 'list',
        data,
        first_id: page[0] ?? null,
        last_id: page.at(-1) ?? null,
        has_more: from + limit < ids.length,
      });
    }
    if (req.method === 'DELETE' && m[2]) {
      if (!live.delete(m[2])) return answer(404, { error: { message: 'No such service account' } });
      names.delete(m[2]);
      deleted.set(m[2], (deleted.get(m[2]) ?? 0) + 1);
      return answer(200, { object: 'organization.project.service_account.deleted', id: m[2], deleted: true });
    }
    return answer(405, { error: { message: 'method not allowed' } });
  });
  return {
    apiBase: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    adminKey,
    projectId,
    live,
    names,
    deleted,
    requests,
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    get holdCreates() {
      return state.holdCreates;
    },
    set holdCreates(p: Promise<void> | null) {
      state.holdCreates = p;
    },
    close: () => close(server),
  };
}
