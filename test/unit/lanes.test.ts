import { describe, expect, it } from 'vitest';
import { LaneTokens } from '../../src/background/agents/lanes.ts';
import type { PageCaller } from '../../src/background/agents/page-api.ts';
import { LANE_TOKEN_TTL_MS } from '../../src/core/agents/page-api.ts';

const agent: PageCaller = { origin: 'https://agent.example', tabId: 7, documentId: 'doc-1' };
const claimFor = (token: string, ancestor = agent.origin) => ({ kh: 'lane', token, ancestor });

function tokens(start = 1_000) {
  let now = start;
  return { t: new LaneTokens(() => now), advance: (ms: number) => (now += ms) };
}

describe('lane tokens bind a port to the caller Chrome reported on the page port', () => {
  it('a claim with the minted token and the same parent origin gets that caller', () => {
    const { t } = tokens();
    expect(t.claim(claimFor(t.mint(agent)))).toEqual(agent);
  });

  it('a token is good once', () => {
    const { t } = tokens();
    const token = t.mint(agent);
    expect(t.claim(claimFor(token))).toEqual(agent);
    expect(t.claim(claimFor(token))).toBeNull();
  });

  it('a frame whose parent is another origin gets nothing, and spends the token', () => {
    const { t } = tokens();
    const token = t.mint(agent);
    expect(t.claim(claimFor(token, 'https://evil.example'))).toBeNull();
    expect(t.claim(claimFor(token))).toBeNull();
  });

  it('an unknown, guessed or malformed token gets nothing', () => {
    const { t } = tokens();
    t.mint(agent);
    for (const bad of [
      claimFor('00000000-0000-4000-8000-000000000000'),
      claimFor(''),
      { kh: 'lane', token: 42, ancestor: agent.origin },
      { token: 'x', ancestor: agent.origin },
      null,
      'lane',
    ]) {
      expect(t.claim(bad)).toBeNull();
    }
  });

  it('a token expires after LANE_TOKEN_TTL_MS', () => {
    const { t, advance } = tokens();
    const late = t.mint(agent);
    const onTime = t.mint(agent);
    advance(LANE_TOKEN_TTL_MS - 1);
    expect(t.claim(claimFor(onTime))).toEqual(agent);
    advance(1);
    expect(t.claim(claimFor(late))).toBeNull();
  });

  it('tokens are distinct, and at most 64 wait: the oldest goes first', () => {
    const { t } = tokens();
    const first = t.mint({ ...agent, documentId: 'doc-first' });
    const rest = Array.from({ length: 64 }, (_, i) => t.mint({ ...agent, documentId: `doc-${i}` }));
    expect(new Set([first, ...rest]).size).toBe(65);
    expect(t.claim(claimFor(first))).toBeNull();
    expect(t.claim(claimFor(rest[0] as string))?.documentId).toBe('doc-0');
    expect(t.claim(claimFor(rest[63] as string))?.documentId).toBe('doc-63');
  });
});
