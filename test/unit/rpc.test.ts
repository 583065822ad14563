import { describe, expect, it } from 'vitest';
import { dispatch, isOwnPage } from '../../src/background/rpc.ts';

const ID = 'cecpmgecdffjijkjcjgdoklomefnejlc';
const ORIGIN = `chrome-extension://${ID}`;

describe('only the extension’s own pages may call the worker', () => {
  it('accepts its popup and options pages', () => {
    expect(isOwnPage({ id: ID, url: `${ORIGIN}/src/popup/index.html`, origin: ORIGIN }, ID, ORIGIN)).toBe(true);
    expect(isOwnPage({ id: ID, url: `${ORIGIN}/src/options/index.html`, tab: { id: 3 } as chrome.tabs.Tab }, ID, ORIGIN)).toBe(true);
  });

  it.each([
    ['a content script in a web page', { id: ID, url: 'https://evil.test/', origin: 'https://evil.test' }],
    ['a page claiming the extension url but another origin', { id: ID, url: `${ORIGIN}/x.html`, origin: 'https://evil.test' }],
    ['another extension', { id: 'abcdefghijklmnopabcdefghijklmnop', url: 'chrome-extension://abcdefghijklmnopabcdefghijklmnop/p.html' }],
    ['a look-alike origin prefix', { id: ID, url: `${ORIGIN}.evil.test/`, origin: `${ORIGIN}.evil.test` }],
    ['no url', { id: ID }],
    [
      'an extension page framed in a web page (the lane frame)',
      { id: ID, url: `${ORIGIN}/src/content/lane.html`, origin: ORIGIN, frameId: 5 },
    ],
  ])('refuses %s', (_what, sender) => expect(isOwnPage(sender as chrome.runtime.MessageSender, ID, ORIGIN)).toBe(false));
});

describe('dispatch', () => {
  const table = { status: async () => ({ state: 'locked' }) } as never;
  it.each([null, 'status', 42, { method: 'status' }, { kh: 2, method: 'status' }, { kh: 1, method: 7 }])(
    'refuses malformed %j',
    async (m) => {
      expect(await dispatch(table, m)).toMatchObject({ ok: false, error: { code: 'bad-input' } });
    },
  );
  it('refuses unknown and inherited method names', async () => {
    for (const method of ['nope', 'toString', '__proto__', 'constructor']) {
      expect(await dispatch(table, { kh: 1, method })).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    }
  });
  it('refuses oversized requests', async () => {
    expect(await dispatch(table, { kh: 1, method: 'status', params: 'x'.repeat(70_000) })).toMatchObject({ error: { code: 'bad-input' } });
  });
  it('hides internal errors', async () => {
    const boom = { status: async () => Promise.reject(new Error('secret detail sk-FAKE')) } as never;
    const res = await dispatch(boom, { kh: 1, method: 'status' });
    expect(res).toEqual({ ok: false, error: { code: 'internal', message: 'internal error' } });
  });
  it('routes a good request', async () => {
    expect(await dispatch(table, { kh: 1, method: 'status' })).toEqual({ ok: true, result: { state: 'locked' } });
  });
});
