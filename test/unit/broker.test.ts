import { describe, expect, it } from 'vitest';
import { declaredLength } from '../../src/background/agents/broker.ts';

describe('declaredLength', () => {
  it('is the content-length of an uncoded body', () => {
    expect(declaredLength(new Headers({ 'content-length': '42' }))).toBe(42);
    expect(declaredLength(new Headers({ 'content-length': '0' }))).toBe(0);
  });

  it('is unknown when fetch decodes the body, or the header is missing or malformed', () => {
    expect(declaredLength(new Headers({ 'content-length': '42', 'content-encoding': 'gzip' }))).toBeNull();
    expect(declaredLength(new Headers())).toBeNull();
    for (const bad of ['-1', '4.2', '1e3', '42, 42', ' ', '9999999999999999'])
      expect(declaredLength(new Headers({ 'content-length': bad }))).toBeNull();
  });
});
