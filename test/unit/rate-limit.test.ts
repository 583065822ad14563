/** The token bucket the broker and the distant vault share (core/rate-limit.ts). */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/core/rate-limit.ts';

describe('RateLimiter', () => {
  it('allows a burst, refuses past it, and refills at the rate', () => {
    const l = new RateLimiter(3, 1); // 3 at once, 1 a second
    expect([0, 0, 0, 0].map(() => l.take('a', 0))).toEqual([true, true, true, false]);
    expect(l.take('b', 0)).toBe(true); // keys are separate
    expect(l.take('a', 500)).toBe(false);
    expect(l.take('a', 1000)).toBe(true);
  });

  it('forgets refilled keys, so many addresses do not grow it without bound, and decides the same', () => {
    const l = new RateLimiter(2, 1);
    for (let i = 0; i < 10_000; i++) l.take(`addr-${i}`, 0);
    expect(l.size).toBe(10_000);
    l.take('busy', 1000);
    l.take('busy', 1000);
    l.sweep(1500); // every addr-* bucket is full again by now; 'busy' is not
    expect(l.size).toBe(1);
    expect(l.take('busy', 1500)).toBe(false);
    expect(l.take('addr-1', 1500)).toBe(true);
    // sweeping happens by itself as keys come and go
    const m = new RateLimiter(1, 1000);
    for (let i = 0; i < 50_000; i++) m.take(`k${i}`, i);
    expect(m.size).toBeLessThan(5000);
  });
});
