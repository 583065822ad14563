import { describe, expect, it } from 'vitest';
import { callerOrigin, cleanReason } from '../../src/core/agents/grants.ts';
import {
  checkMethodOverride,
  checkPageHeaders,
  checkRequestTarget,
  checkRule,
  type InjectionRule,
  PRESETS,
} from '../../src/core/agents/policy.ts';
import { CoreError } from '../../src/core/errors.ts';

const rule: InjectionRule = {
  hosts: ['api.example.com', '127.0.0.1:8080'],
  pathPrefixes: [],
  methods: [],
  header: 'Authorization',
  template: 'Bearer {value}',
};

function code(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof CoreError) return e.code;
    throw e;
  }
}

describe('request targets', () => {
  it('accepts the bound host over https, and loopback over http', () => {
    expect(checkRequestTarget('https://api.example.com/v1/x?q=1', 'post', rule)).toMatchObject({ host: 'api.example.com', method: 'POST' });
    expect(checkRequestTarget('http://127.0.0.1:8080/v1', undefined, rule)).toMatchObject({ host: '127.0.0.1:8080', method: 'GET' });
    expect(checkRequestTarget('https://API.EXAMPLE.COM:443/v1', 'GET', rule).host).toBe('api.example.com');
  });

  const hostile: [string, string][] = [
    ['https://api.example.com@evil.test/', 'bad-input'], // userinfo: the real host is evil.test
    ['https://user:pw@api.example.com/', 'bad-input'],
    ['https://@api.example.com/', 'bad-input'],
    ['https://api.example.com./v1', 'bad-input'], // trailing dot
    ['http://127.0.0.1.:8080/v1', 'bad-input'], // the parser would silently drop this one
    ['https://аpi.example.com/v1', 'not-allowed'], // Cyrillic а: punycode, another host
    ['https://api.example.com.evil.test/', 'not-allowed'],
    ['https://evil.test/?https://api.example.com/', 'not-allowed'],
    ['http://api.example.com/v1', 'not-allowed'], // plain http off loopback
    ['https://127.0.0.1:8081/', 'not-allowed'], // another port
    ['ftp://api.example.com/', 'bad-input'],
    ['javascript:alert(1)', 'bad-input'],
    ['data:text/plain,x', 'bad-input'],
    ['/relative', 'bad-input'],
    ['https://api.example.com/v1\r\nX-Injected: 1', 'bad-input'],
    ['https://api.example.com/a b', 'bad-input'],
    ['https://api.example.com\\@evil.test/', 'bad-input'],
    ['https://api.example.com/v1%2fadmin', 'bad-input'],
  ];
  for (const [url, expected] of hostile) {
    it(`refuses ${JSON.stringify(url)} as ${expected}`, () => {
      expect(code(() => checkRequestTarget(url, 'GET', rule))).toBe(expected);
    });
  }

  it('refuses methods outside the rule and paths outside its prefixes', () => {
    const narrow = { ...rule, pathPrefixes: ['/v1/'], methods: ['GET' as const] };
    expect(code(() => checkRequestTarget('https://api.example.com/v1/x', 'GET', narrow))).toBe('ok');
    expect(code(() => checkRequestTarget('https://api.example.com/v1/x', 'DELETE', narrow))).toBe('not-allowed');
    expect(code(() => checkRequestTarget('https://api.example.com/v2/x', 'GET', narrow))).toBe('not-allowed');
    expect(code(() => checkRequestTarget('https://api.example.com/v1/../v2/x', 'GET', narrow))).toBe('not-allowed'); // resolved by the parser
    expect(code(() => checkRequestTarget('https://api.example.com/v1/%2e%2e/v2/x', 'GET', narrow))).toBe('not-allowed'); // so are encoded dots
    expect(checkRequestTarget('https://api.example.com/v1/%2e%2e/v2/x', 'GET', rule).url.pathname).toBe('/v2/x'); // what is sent is what was checked
    expect(code(() => checkRequestTarget('https://api.example.com/', 'TRACE', rule))).toBe('bad-input');
  });

  // Tomcat and Spring strip ";params" from a segment before resolving dots: "..;" is ".." to them.
  const dotParams = ['/v1/..;/admin/keys', '/v1/.;/x', '/v1/..;jsessionid=1/admin', '/v1/..%3B/admin', '/v1/..%3b/admin', '/v1/x/..;'];
  for (const path of dotParams) {
    it(`refuses the dot segment with path parameters ${path}`, () => {
      const narrow = { ...rule, pathPrefixes: ['/v1/'] };
      expect(code(() => checkRequestTarget(`https://api.example.com${path}`, 'GET', narrow))).toBe('bad-input');
      expect(code(() => checkRequestTarget(`https://api.example.com${path}`, 'GET', rule))).toBe('bad-input');
    });
  }

  it('keeps path parameters that are not dot segments', () => {
    expect(code(() => checkRequestTarget('https://api.example.com/v1/items;v=2/x', 'GET', rule))).toBe('ok');
    expect(code(() => checkRequestTarget('https://api.example.com/v1/a..;b/x', 'GET', rule))).toBe('ok');
  });
});

describe('method override (frameworks that honour _method or X-HTTP-Method-Override)', () => {
  const postOnly = { ...rule, methods: ['POST' as const] };
  const target = (url: string) => checkRequestTarget(url, 'POST', postOnly);
  const form = (s: string) => new TextEncoder().encode(s);
  const cases: [string, string, string | undefined, string | undefined][] = [
    ['query _method', 'https://api.example.com/v1/x?_method=DELETE', undefined, undefined],
    ['query _METHOD', 'https://api.example.com/v1/x?a=1&_METHOD=delete', undefined, undefined],
    ['query override name', 'https://api.example.com/v1/x?X-HTTP-Method-Override=DELETE', undefined, undefined],
    ['encoded query name', 'https://api.example.com/v1/x?%5Fmethod=DELETE', undefined, undefined],
    ['form field', 'https://api.example.com/v1/x', '_method=DELETE&a=1', 'application/x-www-form-urlencoded'],
    ['form field, charset', 'https://api.example.com/v1/x', 'a=1&_method=PUT', 'application/x-www-form-urlencoded; charset=utf-8'],
    [
      'multipart field',
      'https://api.example.com/v1/x',
      '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--',
      'multipart/form-data; boundary=b',
    ],
    ['json key', 'https://api.example.com/v1/x', '{"_method":"DELETE","a":1}', 'application/json'],
    ['form body sent as text', 'https://api.example.com/v1/x', 'a=1&_method=DELETE', undefined],
  ];
  for (const [name, url, body, type] of cases) {
    it(`refuses ${name} when the rule restricts methods`, () => {
      expect(code(() => checkMethodOverride(target(url), body === undefined ? undefined : form(body), type, postOnly))).toBe('not-allowed');
      // without a method restriction there is nothing to get around
      const any = checkRequestTarget(url, 'POST', rule);
      expect(code(() => checkMethodOverride(any, body === undefined ? undefined : form(body), type, rule))).toBe('ok');
    });
  }

  it('passes ordinary bodies and queries', () => {
    const ok = (url: string, body?: string, type?: string) =>
      code(() => checkMethodOverride(target(url), body === undefined ? undefined : form(body), type, postOnly));
    expect(ok('https://api.example.com/v1/x?method_name=a&my_method=b')).toBe('ok');
    expect(ok('https://api.example.com/v1/x', '{"messages":[{"content":"what is _method in Rails?"}]}', 'application/json')).toBe('ok');
    expect(ok('https://api.example.com/v1/x', 'a=1&b=_method', 'application/x-www-form-urlencoded')).toBe('ok');
    expect(ok('https://api.example.com/v1/x', '\u0000\u0001binary', 'application/octet-stream')).toBe('ok');
  });
});

describe('page headers', () => {
  it('passes ordinary headers through', () => {
    expect(checkPageHeaders({ 'content-type': 'application/json', 'OpenAI-Beta': 'x' }, { header: 'Authorization' })).toEqual({
      'content-type': 'application/json',
      'OpenAI-Beta': 'x',
    });
  });
  const refused: [Record<string, string>, string][] = [
    [{ authorization: 'Bearer mine' }, 'not-allowed'], // would replace the injected header
    [{ 'X-HTTP-Method-Override': 'DELETE' }, 'not-allowed'],
    [{ 'X-Method-Override': 'DELETE' }, 'not-allowed'],
    [{ 'x-http-method': 'DELETE' }, 'not-allowed'],
    [{ host: 'evil.test' }, 'not-allowed'],
    [{ cookie: 'a=b' }, 'not-allowed'],
    [{ 'proxy-authorization': 'x' }, 'not-allowed'],
    [{ 'sec-fetch-site': 'none' }, 'not-allowed'],
    [{ 'x-ok': 'a\r\nAuthorization: Bearer stolen' }, 'bad-input'],
    [{ 'bad name': 'x' }, 'bad-input'],
  ];
  for (const [headers, expected] of refused) {
    it(`refuses ${JSON.stringify(Object.keys(headers))} as ${expected}`, () => {
      expect(code(() => checkPageHeaders(headers, { header: 'Authorization' }))).toBe(expected);
    });
  }
  it('refuses a non-object', () => {
    expect(code(() => checkPageHeaders([['a', 'b']], { header: 'Authorization' }))).toBe('bad-input');
  });

  it('drops the rule’s removed headers, and the injected one only when the page asks to replace it', () => {
    const anthropic = { header: 'x-api-key', removeHeaders: ['Authorization'] };
    const sdk = { Authorization: 'Bearer sk-ant-placeholder', 'anthropic-version': '2023-06-01' };
    expect(checkPageHeaders(sdk, anthropic)).toEqual({ 'anthropic-version': '2023-06-01' });
    expect(code(() => checkPageHeaders({ 'X-Api-Key': 'placeholder' }, anthropic))).toBe('not-allowed');
    expect(checkPageHeaders({ 'X-Api-Key': 'placeholder', 'x-other': '1' }, anthropic, 'replace')).toEqual({ 'x-other': '1' });
  });
});

describe('injection rules', () => {
  it('take headers to remove, named as headers, never the one they set', () => {
    const base = { hosts: ['api.anthropic.com'], header: 'x-api-key', template: '{value}' };
    expect(checkRule({ ...base, removeHeaders: ['Authorization', 'Authorization'] }).removeHeaders).toEqual(['Authorization']);
    expect(checkRule(base).removeHeaders).toBeUndefined();
    expect(code(() => checkRule({ ...base, removeHeaders: ['X-Api-Key'] }))).toBe('bad-input');
    expect(code(() => checkRule({ ...base, removeHeaders: ['bad name'] }))).toBe('bad-input');
    expect(code(() => checkRule({ ...base, removeHeaders: ['cookie'] }))).toBe('bad-input');
    expect(code(() => checkRule({ ...base, removeHeaders: Array.from({ length: 9 }, (_, i) => `x-h${i}`) }))).toBe('bad-input');
  });

  it('presets carry what each vendor SDK sends', () => {
    const byId = Object.fromEntries(PRESETS.map((p) => [p.id, p.rule]));
    expect(byId.anthropic).toMatchObject({ header: 'x-api-key', removeHeaders: ['Authorization'] });
    expect(byId['google-ai']).toMatchObject({ header: 'x-goog-api-key', removeHeaders: ['Authorization'] });
    expect(byId.openai).toMatchObject({ header: 'Authorization', template: 'Bearer {value}' });
    for (const p of PRESETS) expect(checkRule(p.rule)).toEqual(p.rule);
  });
});

describe('caller origins', () => {
  it('accepts https and loopback http only', () => {
    expect(callerOrigin('https://agent.example')).toBe('https://agent.example');
    expect(callerOrigin('http://localhost:3000')).toBe('http://localhost:3000');
    expect(callerOrigin('http://app.localhost:3000')).toBe('http://app.localhost:3000');
    for (const o of ['null', 'http://agent.example', 'file://', 'chrome-extension://abc', 'https://a.example/path', undefined, 42]) {
      expect(callerOrigin(o)).toBeNull();
    }
  });
  it('flattens and caps an untrusted reason', () => {
    expect(cleanReason('line one\nline two\u202egnp.exe')).toBe('line one line two gnp.exe');
    expect(cleanReason('x'.repeat(1000)).length).toBe(280);
    expect(cleanReason({ toString: () => 'x' })).toBe('');
  });

  it('removes what could make page text pass for Keyhole’s: bidi controls, invisible and filler characters, wide spacing', () => {
    // U+3164 Hangul filler and U+2800 braille blank look like nothing but are letters; they push text apart
    expect(cleanReason(`Summarise${'\u3164'.repeat(60)}✔ Verified publisher: OpenAI, Inc.`)).toBe(
      'Summarise ✔ Verified publisher: OpenAI, Inc.',
    );
    expect(cleanReason('a\u2800\u2800b\uffa0c\u115fd\u1160e')).toBe('a b c d e');
    // bidi embeddings, overrides, isolates and marks; zero-width characters; the BOM; tag characters
    expect(cleanReason('\u202aA\u202bB\u202cC\u202dD\u202eE\u2066F\u2067G\u2068H\u2069I\u200eJ\u200fK\u061cL')).toBe(
      'A B C D E F G H I J K L',
    );
    expect(cleanReason('x\u200by\u200cz\u200dw\ufeffv\u{e0041}u\u00adt')).toBe('x y z w v u t');
    // runs of any-width spaces are one space; line and paragraph separators are spaces
    expect(cleanReason(`a${'\u2003'.repeat(40)}b\u3000\u3000c\u2028d\u2029e`)).toBe('a b c d e');
    // ordinary text of any script stays as it is
    expect(cleanReason('Résumé für 東京 — مرحبا, नमस्ते')).toBe('Résumé für 東京 — مرحبا, नमस्ते');
  });

  it('caps by characters, not by UTF-16 units (an emoji is not cut in half)', () => {
    const out = cleanReason('😀'.repeat(500));
    expect([...out]).toHaveLength(280);
    expect(out.endsWith('…')).toBe(true);
    expect(out.includes('\ufffd')).toBe(false);
  });
});
