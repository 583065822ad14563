/**
 * Brokered mode never lets a page see the secret. A unique canary is planted, the page runs
 * every flow (including endpoints that echo the credential in every encoding, gzip and binary
 * bodies, hostile requests), and then everything the page could observe is searched for the
 * canary in every encoding: return values, errors, console, DOM, page storage, and the
 * requests the page made. The adversarial half checks each hostile input gets a typed error
 * and that the next valid request still succeeds.
 */
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, launch, OPTIONS, rpc, showSection } from '../harness/browser.ts';
import { type Answer, grantForPeriod, request, stream } from '../harness/provider.ts';
import { findAnyForm } from '../harness/scan.ts';
import { type ApiServer, apiServer, appServer } from '../harness/servers.ts';

const CANARY = `sk-FAKE-canary-${randomBytes(12).toString('hex')}`;
// the same canary with the characters some encodings treat apart ('/', '+', a space, ~!*())
const ODD = `sk-FAKE/canary+${randomBytes(8).toString('hex')} x~!*()`;

describe('canary: brokered mode shows the page nothing', () => {
  let h: Harness;
  let api: ApiServer;
  let trap: ApiServer; // a host the secret is not bound to
  let app: Awaited<ReturnType<typeof appServer>>;
  let page: Page;
  const observed: string[] = []; // everything the page saw, appended as we go
  const bodies: Buffer[] = []; // answers' bodies as bytes, and their headers
  const console: string[] = [];
  const pageRequests: string[] = [];

  beforeAll(async () => {
    [api, trap, app] = await Promise.all([apiServer(), apiServer(), appServer()]);
    h = await launch();
    const options = await h.open(OPTIONS);
    await rpc(options, 'vault.create', { passphrase: 'canary suite passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await rpc(options, 'secrets.create', {
      name: 'canary',
      value: CANARY,
      rule: { hosts: [api.host], header: 'Authorization', template: 'Bearer {value}' },
    });
    await rpc(options, 'secrets.create', {
      name: 'canary-b64',
      value: CANARY,
      rule: { hosts: [api.host], header: 'x-api-key', template: '{value:base64}' },
    });
    await rpc(options, 'secrets.create', {
      name: 'canary-post',
      value: CANARY,
      rule: { hosts: [api.host], pathPrefixes: ['/v1/'], methods: ['POST'], header: 'Authorization', template: 'Bearer {value}' },
    });
    await rpc(options, 'secrets.create', {
      name: 'canary-odd',
      value: ODD,
      rule: { hosts: [api.host], header: 'x-api-key', template: '{value}' },
    });
    page = await h.context.newPage();
    page.on('console', (m) => console.push(m.text()));
    page.on('request', (r) => pageRequests.push(`${r.method()} ${r.url()} ${JSON.stringify(r.headers())} ${r.postData() ?? ''}`));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    for (const secret of ['canary', 'canary-b64', 'canary-odd', 'canary-post']) {
      observed.push(JSON.stringify(await grantForPeriod(h.context, page, { secrets: [secret] })));
    }
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([api?.close(), trap?.close(), app?.close()]);
  });

  async function call(
    params: unknown,
  ): Promise<Answer<{ status: number; headers: Record<string, string>; body: string; bodyEncoding: string }>> {
    const answer = await request<{ status: number; headers: Record<string, string>; body: string; bodyEncoding: string }>(
      page,
      'keyhole_fetch',
      params,
    );
    observed.push(JSON.stringify(answer));
    if (answer.ok) {
      // the body as the page would decode it, and the header names and values
      bodies.push(Buffer.from(answer.result.body, answer.result.bodyEncoding === 'base64' ? 'base64' : 'utf8'));
      bodies.push(Buffer.from(Object.entries(answer.result.headers).flat().join('\n')));
    }
    return answer;
  }
  const url = (path: string) => `http://${api.host}${path}`;

  it('the API receives the canary, in both templates (control)', async () => {
    expect((await call({ secret: 'canary', url: url('/v1/echo') })).ok).toBe(true);
    expect(api.received.at(-1)?.headers.authorization).toBe(`Bearer ${CANARY}`);
    expect((await call({ secret: 'canary-b64', url: url('/v1/echo') })).ok).toBe(true);
    expect(api.received.at(-1)?.headers['x-api-key']).toBe(Buffer.from(CANARY).toString('base64'));
  });

  it('echoes in every encoding, gzip and binary come back stripped', async () => {
    for (const secret of ['canary', 'canary-b64', 'canary-odd']) {
      for (const path of ['/v1/echo', '/v1/echo-encoded', '/v1/echo-gzip', '/v1/echo-sized', '/v1/echo-binary']) {
        const res = await call({ secret, url: url(path), method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
        expect(res.ok).toBe(true);
        if (res.ok) expect(res.result.status).toBe(200);
      }
    }
    const encoded = await call({ secret: 'canary', url: url('/v1/echo-encoded') });
    expect(encoded.ok && encoded.result.headers['x-echo']).toBe('[REDACTED]');
    // a declared-length body is answered once its last byte is in: the echo ending it is still stripped
    const sized = await call({ secret: 'canary', url: url('/v1/echo-sized') });
    expect(sized.ok && sized.result.body).toBe('{"b64":"[REDACTED]","tail":"[REDACTED]');
  });

  it('echoes as a header name, split across headers, with JSON \\/, HTML entities, form +, UTF-16 come back stripped', async () => {
    const paths = ['/v1/echo-header-name', '/v1/echo-split', '/v1/echo-json-slashes', '/v1/echo-html', '/v1/echo-form', '/v1/echo-utf16'];
    for (const secret of ['canary', 'canary-b64', 'canary-odd']) {
      for (const path of paths) {
        const res = await call({ secret, url: url(path) });
        expect({ path, ok: res.ok }).toEqual({ path, ok: true });
      }
    }
    const split = await call({ secret: 'canary', url: url('/v1/echo-split') });
    expect(split.ok && split.result.headers['x-split']).toBe('[REDACTED]');
    const utf16 = await call({ secret: 'canary', url: url('/v1/echo-utf16') });
    expect(utf16.ok && Buffer.from(utf16.result.body, 'base64').toString('utf16le')).toBe('\ufeffyour key is [REDACTED]');
  });

  it('a compressed body not said to be compressed is refused (4304) when the value is inside, and passed on when not', async () => {
    for (const secret of ['canary', 'canary-b64', 'canary-odd']) {
      expect(await call({ secret, url: url('/v1/echo-gzip-raw') })).toMatchObject({ ok: false, error: { code: 4304 } });
      const clean = await call({ secret, url: url('/v1/gzip-raw-clean') });
      expect(clean.ok && clean.result.bodyEncoding).toBe('base64');
    }
    const streamed = await stream(page, { secret: 'canary', url: url('/v1/echo-gzip-raw') });
    expect(streamed).toMatchObject({ ok: false, error: { code: 4304 } });
  });

  it('streams server-sent events with the echo split across chunks, stripped', async () => {
    const res = await stream(page, { secret: 'canary', url: url('/v1/stream?n=12&gap=20') });
    observed.push(JSON.stringify(res));
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.result.status).toBe(200);
    expect(res.result.headers['content-type']).toBe('text/event-stream');
    const events = res.result.text.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(13); // 12 events and [DONE]
    expect(events.slice(0, 12).every((e, i) => e === `data: {"i":${i},"echo":"[REDACTED]"}`)).toBe(true);
    expect(res.result.chunks).toBeGreaterThan(1); // it really streamed
  });

  it('a stream refused before its head fails the call with a typed error', async () => {
    const res = await stream(page, { secret: 'canary', url: `http://${trap.host}/v1/stream` });
    observed.push(JSON.stringify(res));
    expect(res).toMatchObject({ ok: false, error: { code: 4300 } });
  });

  it('hostile and malformed requests get typed errors, and the next valid request succeeds', async () => {
    const cases: [unknown, number][] = [
      [{ secret: 'canary', url: `http://${api.host}@${trap.host}/v1/echo` }, -32602],
      [{ secret: 'canary', url: `http://${trap.host}/v1/echo` }, 4300],
      [{ secret: 'canary', url: `http://localhost:${api.port}/v1/echo` }, 4300],
      [{ secret: 'canary', url: `http://127.0.0.1.:${api.port}/v1/echo` }, -32602],
      [{ secret: 'canary', url: `http://${api.host}/v1/echo\r\nX-Evil: 1` }, -32602],
      [{ secret: 'canary', url: 'javascript:alert(1)' }, -32602],
      [{ secret: 'canary', url: `ws://${api.host}/` }, -32602],
      [{ secret: 'canary', url: url('/v1/redirect') }, 4301],
      [{ secret: 'canary', url: url('/v1/big') }, 4303],
      [{ secret: 'canary', url: url('/v1/short') }, 4302],
      [{ secret: 'canary', url: url('/v1/echo'), headers: { Authorization: 'Bearer page' } }, 4300],
      [{ secret: 'canary', url: url('/v1/echo'), method: 'POST', headers: { 'X-HTTP-Method-Override': 'DELETE' } }, 4300],
      [{ secret: 'canary', url: url('/v1/echo'), headers: { 'x-ok': 'a\r\nX-Evil: 1' } }, -32602],
      [{ secret: 'canary', url: url('/v1/echo'), method: 'TRACE' }, -32602],
      [{ secret: 'canary', url: url('/v1/echo'), method: 'GET', body: 'x' }, -32602],
      [{ secret: 'canary', url: url('/v1/echo'), method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) }, -32602],
      [{ secret: 'canary', url: url('/v1/echo'), method: 'POST', body: '***', bodyEncoding: 'base64' }, -32602],
      [{ secret: 'canary', url: 42 }, -32602],
      [{ secret: ['canary'], url: url('/v1/echo') }, -32602],
      ['not an object', -32602],
      [{ secret: 'canary', url: url('/v1/echo'), big: 'x'.repeat(2 * 1024 * 1024 + 10) }, -32602],
      // a secret for POST under /v1/ only: path parameters on a dot segment, and method overrides
      [{ secret: 'canary-post', url: url('/v1/..;/admin/keys'), method: 'POST' }, -32602],
      [{ secret: 'canary-post', url: url('/v1/echo/..%3B/..%3B/admin'), method: 'POST' }, -32602],
      [{ secret: 'canary-post', url: url('/v1/echo?_method=DELETE'), method: 'POST' }, 4300],
      [{ secret: 'canary-post', url: url('/v1/echo?X-HTTP-Method-Override=DELETE'), method: 'POST' }, 4300],
      [
        {
          secret: 'canary-post',
          url: url('/v1/echo'),
          method: 'POST',
          body: '_method=DELETE',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        },
        4300,
      ],
      [
        {
          secret: 'canary-post',
          url: url('/v1/echo'),
          method: 'POST',
          body: '{"_method":"DELETE"}',
          headers: { 'content-type': 'application/json' },
        },
        4300,
      ],
      [{ secret: 'canary-post', url: url('/v1/echo'), method: 'DELETE' }, 4300],
    ];
    const before = api.received.length;
    for (const [params, code] of cases) {
      const res = await call(params);
      expect({ params: JSON.stringify(params).slice(0, 120), res: res.ok ? 'ok' : res.error.code }).toEqual({
        params: JSON.stringify(params).slice(0, 120),
        res: code,
      });
      if (!res.ok) expect(res.error.message).toMatch(/^[A-Z][^{}]*\.$/); // a fixed sentence
      expect((await call({ secret: 'canary', url: url('/v1/echo') })).ok).toBe(true);
    }
    // only the valid calls and the refused-after-sending redirect/big/short reached the API; nothing reached the trap
    expect(trap.received).toHaveLength(0);
    const withCredential = api.received.slice(before).filter((r) => r.headers.authorization);
    expect(withCredential.every((r) => ['/v1/echo', '/v1/redirect', '/v1/big', '/v1/short'].includes(r.url))).toBe(true);
    // and the POST-only secret's one allowed shape still works
    expect(await call({ secret: 'canary-post', url: url('/v1/echo'), method: 'POST', body: '{"ok":1}' })).toMatchObject({ ok: true });
    expect(api.received.slice(before).some((r) => r.headers['x-evil'] !== undefined)).toBe(false);
  });

  it('messages the bridge must drop or refuse', async () => {
    // The bridge is synchronous events on window whose detail is JSON text (core/agents/page-api.ts
    // TO_CONTENT_EVENT / TO_PAGE_EVENT). Not taken: no id, an object instead of text, text that is
    // not JSON, text longer than a message may be; refused: a bad method type. The provider refuses
    // what is not JSON (a function, a cycle) at once; the old window.postMessage format: ignored.
    const res = await page.evaluate(async () => {
      const got: unknown[] = [];
      addEventListener('keyhole:bridge:page', (e) => {
        const d = JSON.parse((e as CustomEvent).detail);
        if (d?.target === 'keyhole:inpage' && String(d.id).startsWith('t-')) got.push(d);
      });
      const send = (detail: unknown) => !dispatchEvent(new CustomEvent('keyhole:bridge:content', { detail, cancelable: true }));
      const message = (m: object) => send(JSON.stringify(m));
      const taken = {
        noId: message({ target: 'keyhole:content', method: 'keyhole_fetch' }),
        object: send({ target: 'keyhole:content', id: 't-2', method: 'keyhole_status' }),
        notJson: send('{"target":"keyhole:content","id":"t-3",'),
        tooLong: message({ target: 'keyhole:content', id: 't-4', method: 'keyhole_status', params: 'x'.repeat(2 * 1024 * 1024) }),
        badMethod: message({ target: 'keyhole:content', id: 't-1', method: 7 }),
      };
      window.postMessage({ target: 'keyhole:content', id: 't-5', method: 'keyhole_status' }, location.origin);
      const provider = await new Promise<{ request(a: unknown): Promise<unknown> }>((resolve) => {
        addEventListener('keyhole:announceProvider', (e) => resolve((e as CustomEvent).detail.provider), { once: true });
        dispatchEvent(new Event('keyhole:requestProvider'));
      });
      const refused = (params: unknown) =>
        provider.request({ method: 'keyhole_status', params }).then(
          () => 'answered',
          (e: { code: number }) => e.code,
        );
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const notJson = { fn: await refused({ f: () => 1 }), cyclic: await refused(cyclic), bigint: await refused({ n: 1n }) };
      await new Promise((r) => setTimeout(r, 1000)); // time for answers to t-2 .. t-5, which must not come
      return { taken, got, notJson };
    });
    observed.push(JSON.stringify(res));
    expect(res.taken).toEqual({ noId: false, object: false, notJson: false, tooLong: false, badMethod: true });
    expect(res.notJson).toEqual({ fn: -32602, cyclic: -32602, bigint: -32602 });
    expect(res.got).toMatchObject([{ id: 't-1', ok: false, error: { code: -32602 } }]);
    expect(res.got).toHaveLength(1);
  });

  it('the audit recorded every request without the canary, and its chain holds', async () => {
    const options = await h.open(OPTIONS);
    const view = await rpc<{
      ok: true;
      result: {
        entries: { record: { kind: string; decision?: string; path?: string; count?: number } }[];
      };
    }>(options, 'audit.view', { filter: { kind: 'request' }, limit: 5000 });
    expect((await rpc<{ result: { check: { ok: boolean } } }>(options, 'audit.verify')).result.check.ok).toBe(true);
    const records = view.result.entries.map((e) => e.record);
    expect(records.filter((r) => r.decision === 'allowed').length).toBeGreaterThan(20);
    // refusals alike are merged into counted records
    expect(records.filter((r) => r.decision === 'denied').reduce((n, r) => n + (r.count ?? 1), 0)).toBeGreaterThan(10);
    for (const format of ['jsonl', 'csv']) {
      const out = await rpc<{ ok: true; result: { text: string } }>(options, 'audit.export', { format });
      expect(out.result.text.length).toBeGreaterThan(1000);
      expect([CANARY, ODD].flatMap((v) => findAnyForm(out.result.text, v))).toEqual([]);
    }
    // the viewer shows the records and the intact chain
    await showSection(options, 'audit');
    await expect.poll(() => options.locator('#audit-table tbody tr').count()).toBeGreaterThan(10);
    expect(await options.locator('#audit-status').textContent()).toContain('chain intact');
    await options.close();
  });

  it('nothing the page can observe holds the canary, in any encoding', async () => {
    const dom = await page.content();
    const storage = await page.evaluate(async () => {
      const dbs = await indexedDB.databases();
      return JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, dbs });
    });
    const haystacks: Record<string, string> = {
      answers: observed.join('\n'),
      console: console.join('\n'),
      dom,
      storage,
      pageRequests: pageRequests.join('\n'),
      trap: JSON.stringify(trap.received),
    };
    expect(observed.join('').length).toBeGreaterThan(10_000); // the flows really ran
    for (const [where, text] of Object.entries(haystacks))
      for (const value of [CANARY, ODD]) expect({ where, hits: findAnyForm(text, value) }).toEqual({ where, hits: [] });
    bodies.forEach((body, i) => {
      for (const value of [CANARY, ODD]) expect({ body: i, hits: findAnyForm(body, value) }).toEqual({ body: i, hits: [] });
    });
    // control: the oracle finds the canary where it is (what the API received)
    expect(findAnyForm(JSON.stringify(api.received), CANARY).length).toBeGreaterThan(0);
    expect(findAnyForm(JSON.stringify(api.received), ODD).length).toBeGreaterThan(0);
  });
});
