import { describe, expect, it } from 'vitest';
import { lockReasonFor } from '../../src/background/vault/autolock.ts';
import { DEFAULT_SETTINGS } from '../../src/background/vault/vault-service.ts';
import { checkRule, checkValue, isLoopbackHost, normalizeHost, PRESETS, renderHeaderValue } from '../../src/core/agents/policy.ts';

describe('hosts', () => {
  it.each([
    ['api.openai.com', 'api.openai.com'],
    ['API.OpenAI.com', 'api.openai.com'],
    ['localhost:8080', 'localhost:8080'],
    ['api.example.com:443', 'api.example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['127.0.0.1:3000', '127.0.0.1:3000'],
    ['[::1]:8443', '[::1]:8443'],
  ])('%s -> %s', (input, out) => expect(normalizeHost(input)).toBe(out));

  it.each([
    'https://api.host',
    'api.host@evil.test',
    'user:pw@api.host',
    'api.openai.com.',
    '*.openai.com',
    'api.host/path',
    'api.host?x',
    'api host',
    'api.host\r\nX: y',
    '',
  ])('refuses %j', (input) => expect(() => normalizeHost(input)).toThrow(expect.objectContaining({ code: 'bad-input' })));

  it('knows loopback', () => {
    for (const h of ['localhost', 'api.localhost', '127.0.0.1', '127.1.2.3', '[::1]']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['localhost.evil.test', '128.0.0.1', 'example.com', '0.0.0.0']) expect(isLoopbackHost(h)).toBe(false);
  });
});

describe('rules', () => {
  it('every preset is a valid rule', () => {
    for (const p of PRESETS) expect(checkRule(p.rule)).toEqual(p.rule);
    expect(PRESETS.map((p) => p.id)).toEqual(['openai', 'anthropic', 'github', 'google-ai', 'stripe', 'google-cloud']);
  });

  const base = { hosts: ['api.x.test'], header: 'Authorization', template: 'Bearer {value}' };
  it.each<[unknown, string]>([
    [{ ...base, hosts: [] }, 'no host'],
    [{ ...base, header: 'Host' }, 'owned header'],
    [{ ...base, header: 'X-HTTP-Method-Override' }, 'method override header'],
    [{ ...base, header: 'Bad Header' }, 'not a token'],
    [{ ...base, template: 'Bearer {value} {value}' }, 'two placeholders'],
    [{ ...base, template: 'Bearer {secret}' }, 'unknown placeholder'],
    [{ ...base, template: 'Bearer {value}\r\nX-Evil: 1' }, 'CRLF'],
    [{ ...base, pathPrefixes: ['v1'] }, 'relative prefix'],
    [{ ...base, pathPrefixes: ['/v1/../admin'] }, 'dot segments'],
    [{ ...base, methods: ['TRACE'] }, 'non-standard method'],
  ])('refuses %j (%s)', (r) => expect(() => checkRule(r)).toThrow(expect.objectContaining({ code: 'bad-input' })));

  it('normalises methods and hosts', () => {
    expect(checkRule({ ...base, hosts: ['API.X.TEST', 'api.x.test'], methods: ['get', 'POST'] })).toMatchObject({
      hosts: ['api.x.test'],
      methods: ['GET', 'POST'],
    });
  });

  it('renders templates, Basic included', () => {
    expect(renderHeaderValue('Bearer {value}', 'tok')).toBe('Bearer tok');
    expect(renderHeaderValue('Basic {value:base64}', 'user:pw')).toBe(`Basic ${btoa('user:pw')}`);
  });

  it('values must fit a header, and errors do not echo them', () => {
    expect(checkValue('sk-FAKE')).toBe('sk-FAKE');
    for (const v of ['', 'FAKE\nx', 'FAKE\u0000', 'x'.repeat(16385), 'FAKE\u00e9']) {
      let msg = '';
      try {
        checkValue(v);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).not.toBe('');
      expect(msg).not.toContain('FAKE');
    }
  });
});

describe('auto-lock decision', () => {
  it('idle locks, system lock locks when enabled, active does not', () => {
    expect(lockReasonFor('idle', DEFAULT_SETTINGS)).toBe('idle');
    expect(lockReasonFor('locked', DEFAULT_SETTINGS)).toBe('system-lock');
    expect(lockReasonFor('locked', { ...DEFAULT_SETTINGS, lockOnSystemLock: false })).toBe(null);
    expect(lockReasonFor('active', DEFAULT_SETTINGS)).toBe(null);
  });
});
