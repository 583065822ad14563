/**
 * Canonical JSON: the one byte form of a value that gets hashed or signed.
 * Object keys sorted by UTF-16 code unit, no whitespace, only strings, safe integers,
 * booleans, null, arrays and plain objects. Anything else is refused rather than guessed at,
 * so two honest encoders can never disagree about what was signed.
 */
import { CoreError } from './errors.ts';

export type Canonical = string | number | boolean | null | readonly Canonical[] | { readonly [k: string]: Canonical };

const MAX_DEPTH = 16;

export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

function encode(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new CoreError('bad-input', 'value nested too deeply');
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new CoreError('bad-input', 'only safe integers can be signed');
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map((x) => encode(x, depth + 1)).join(',')}]`;
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    const parts: string[] = [];
    for (const k of keys) {
      if (o[k] === undefined) throw new CoreError('bad-input', 'undefined cannot be signed');
      parts.push(`${JSON.stringify(k)}:${encode(o[k], depth + 1)}`);
    }
    return `{${parts.join(',')}}`;
  }
  throw new CoreError('bad-input', 'value cannot be canonicalized');
}
