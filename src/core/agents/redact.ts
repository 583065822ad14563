/**
 * Strips a secret from whatever an API echoes back, in the encodings a server, a framework or a
 * prompt injection might use.
 *
 * The value and each of its base64 and base64url forms (at all three byte alignments), each:
 * - **as text**, every character in any of its encodings, mixed: raw, percent (either case), JSON
 *   escapes (`\u00XX`, `\/`), HTML numeric entities (decimal, hex, with or without `;`) and
 *   named ones, `+` for a space (forms);
 * - as hex of its bytes in any case, and as UTF-16 in either byte order.
 *
 * Works on bytes (latin1-mapped, one char per byte) and across chunk boundaries: only a tail that
 * could still become a match is held back, so a stream is not delayed by a fixed window. What
 * remains out of reach (a host that transforms the key arbitrarily) is in docs/threat-model.md.
 */
import { toBase64, utf8 } from '../bytes.ts';

export const REDACTED = '[REDACTED]';
/** Shorter fragments would match ordinary text; a value this short is not redacted in base64. */
const MIN_FRAGMENT = 6;

/**
 * The base64 characters that depend only on `value` when it starts `k` bytes into a 3-byte
 * group: a value embedded anywhere in a larger base64 text shows up as one of these three.
 */
function base64Alignments(value: Uint8Array): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const shifted = new Uint8Array(k + value.length);
    shifted.set(value, k);
    const first = Math.ceil(k / 3);
    const last = Math.floor((k + value.length) / 3); // exclusive
    if (last > first) out.push(toBase64(shifted).slice(first * 4, last * 4));
  }
  return out;
}

/** The whole-value forms of `value` (base64 and base64url at each alignment), longest first. */
export function redactionForms(value: string): string[] {
  const forms = new Set<string>();
  for (const b of base64Alignments(utf8(value))) {
    if (b.length < MIN_FRAGMENT) continue;
    forms.add(b);
    forms.add(b.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

// HTML named references for printable ASCII (WHATWG's list): a page decodes them back.
const NAMED: Record<string, readonly string[]> = {
  '!': ['excl'],
  '"': ['quot', 'QUOT'],
  '#': ['num'],
  $: ['dollar'],
  '%': ['percnt'],
  '&': ['amp', 'AMP'],
  "'": ['apos'],
  '(': ['lpar'],
  ')': ['rpar'],
  '*': ['ast', 'midast'],
  '+': ['plus'],
  ',': ['comma'],
  '.': ['period'],
  '/': ['sol'],
  ':': ['colon'],
  ';': ['semi'],
  '<': ['lt', 'LT'],
  '=': ['equals'],
  '>': ['gt', 'GT'],
  '?': ['quest'],
  '@': ['commat'],
  '[': ['lsqb', 'lbrack'],
  '\\': ['bsol'],
  ']': ['rsqb', 'rbrack'],
  '^': ['Hat'],
  _: ['lowbar', 'UnderBar'],
  '`': ['grave', 'DiacriticalGrave'],
  '{': ['lcub', 'lbrace'],
  '|': ['verbar', 'vert', 'VerticalLine'],
  '}': ['rcub', 'rbrace'],
  ' ': ['nbsp'],
};

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
/** A hex number matched in either case: "2f" -> "2[fF]". */
const hexCi = (n: number, width: number) =>
  [...n.toString(16).padStart(width, '0')].map((d) => (/[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d)).join('');

/** One byte of the value as it may appear in text, in any of the per-character encodings. */
function textByte(x: number): string {
  const c = String.fromCharCode(x);
  const alts = [
    `%${hexCi(x, 2)}`,
    `\\\\u00${hexCi(x, 2)}`,
    `&#0{0,4}${x};?`,
    `&#[xX]0{0,4}${hexCi(x, 1)};?`,
    ...(NAMED[c] ?? []).map((n) => `&${n};`),
    ...('/"\\'.includes(c) ? [`\\\\${escapeRe(c)}`] : []),
    ...(c === ' ' ? ['\\+'] : []),
    escapeRe(c), // last: a raw '&' or '%' must not cut an entity or escape short
  ];
  return `(?:${alts.join('|')})`;
}

/** Every concrete way `textByte(x)` can appear (finite: zeros and cases bounded), for telling a tail that may still grow into a match. */
function textByteForms(x: number): string[] {
  const c = String.fromCharCode(x);
  const cases = (h: string): string[] =>
    h.length === 0
      ? ['']
      : cases(h.slice(1)).flatMap((rest) => [...new Set([h[0] as string, (h[0] as string).toUpperCase()])].map((d) => d + rest));
  const zeros = ['', '0', '00', '000', '0000'];
  const semi = (e: string) => [e, `${e};`];
  return [
    ...cases(x.toString(16).padStart(2, '0')).map((h) => `%${h}`),
    ...cases(x.toString(16).padStart(2, '0')).map((h) => `\\u00${h}`),
    ...zeros.flatMap((z) => semi(`&#${z}${x}`)),
    ...zeros.flatMap((z) => cases(x.toString(16)).flatMap((h) => ['x', 'X'].flatMap((X) => semi(`&#${X}${z}${h}`)))),
    ...(NAMED[c] ?? []).map((n) => `&${n};`),
    ...('/"\\'.includes(c) ? [`\\${c}`] : []),
    ...(c === ' ' ? ['+'] : []),
    c,
  ];
}

function hexByteForms(x: number): string[] {
  const [a, b] = [...x.toString(16).padStart(2, '0')] as [string, string];
  return [...new Set([a, a.toUpperCase()])].flatMap((d) => [...new Set([b, b.toUpperCase()])].map((e) => d + e));
}

/**
 * A scheme: each byte of the value matched by its own sticky expression. `forms(x)` lists every
 * concrete encoding of byte x (cached), `starts` the characters a match can begin with.
 */
type Scheme = {
  readonly bytes: readonly number[];
  readonly matchers: readonly RegExp[];
  readonly forms: (x: number) => readonly string[];
  readonly replacement: string;
  readonly starts: string;
  /** `starts` as a table by char code */
  readonly startTable: Uint8Array;
};

const cached = (f: (x: number) => string[]) => {
  const memo = new Map<number, string[]>();
  return (x: number) => {
    let v = memo.get(x);
    if (!v) {
      v = f(x);
      memo.set(x, v);
    }
    return v;
  };
};
const TEXT_FORMS = cached(textByteForms);
const HEX_FORMS = cached(hexByteForms);
type Literal = { readonly form: string; readonly replacement: string };

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const utf16 = (s: string, order: 'le' | 'be') => [...s].map((c) => (order === 'le' ? `${c}\u0000` : `\u0000${c}`)).join('');

/** Everything to strip for a set of values, compiled once per opened secret and shared by its redactors. */
export type RedactionSet = {
  readonly schemes: readonly Scheme[];
  readonly literals: readonly Literal[];
  /** char codes that can start a match */
  readonly first: Uint8Array;
};

function scheme(bytes: number[], matchers: RegExp[], forms: (x: number) => readonly string[], starts: string): Scheme {
  const startTable = new Uint8Array(256);
  for (const c of starts) startTable[c.charCodeAt(0)] = 1;
  return { bytes, matchers, forms, replacement: REDACTED, starts, startTable };
}

export function compileRedaction(values: readonly string[]): RedactionSet {
  const schemes: Scheme[] = [];
  const literals: Literal[] = [];
  for (const value of new Set(values)) {
    if (value.length === 0) continue;
    // the value and each of its base64 forms, each in every encoding below
    const wholes = [[...utf8(value)], ...redactionForms(value).map((f) => [...f].map((c) => c.charCodeAt(0)))];
    for (const bytes of wholes) {
      const b0 = bytes[0] as number;
      schemes.push(
        scheme(
          bytes,
          bytes.map((x) => new RegExp(textByte(x), 'y')),
          TEXT_FORMS,
          `${String.fromCharCode(b0)}%\\&${b0 === 0x20 ? '+' : ''}`,
        ),
      );
      const hex0 = (b0 >> 4).toString(16);
      schemes.push(
        scheme(
          bytes,
          bytes.map((x) => new RegExp(hexCi(x, 2), 'y')),
          HEX_FORMS,
          hex0 + hex0.toUpperCase(),
        ),
      );
      // UTF-16 only where each byte is one code unit (ASCII); the rest of the body stays decodable
      if (bytes.every((x) => x < 0x80)) {
        const text = String.fromCharCode(...bytes);
        literals.push({ form: utf16(text, 'le'), replacement: utf16(REDACTED, 'le') });
        literals.push({ form: utf16(text, 'be'), replacement: utf16(REDACTED, 'be') });
      }
    }
  }
  const first = new Uint8Array(256);
  for (const s of schemes) for (const c of s.starts) first[c.charCodeAt(0)] = 1;
  for (const l of literals) first[l.form.charCodeAt(0)] = 1;
  return { schemes, literals: literals.sort((a, b) => b.form.length - a.form.length), first };
}

const PARTIAL = -1;
/** the longest encoding of one byte ("&#X00002F;" and kin) */
const MAX_BYTE_FORM = 14;

/** A streaming redactor: push chunks, get back what is safe to pass on; `end()` flushes. */
export class Redactor {
  private carry = '';
  /** how many occurrences were removed so far (for the audit, never what they were) */
  hits = 0;

  constructor(readonly set: RedactionSet) {}

  static forValues(values: readonly string[]): Redactor {
    return new Redactor(compileRedaction(values));
  }

  push(chunk: Uint8Array): Uint8Array {
    return fromLatin1(this.run(this.carry + toLatin1(chunk), false));
  }

  end(): Uint8Array {
    return fromLatin1(this.run(this.carry, true));
  }

  /** Redacts a whole string at once (header values, small bodies). */
  text(s: string): string {
    const saved = this.carry;
    this.carry = '';
    const out = this.run(s, true);
    this.carry = saved;
    return out;
  }

  /** The longest match starting at `i`, as [length, replacement]; PARTIAL if one may still end past the buffer. */
  private matchAt(buf: string, i: number, final: boolean): [number, string] | typeof PARTIAL | null {
    let best: [number, string] | null = null;
    let partial = false;
    const c = buf.charCodeAt(i);
    for (const l of this.set.literals) {
      if (l.form.charCodeAt(0) !== c) continue;
      if (buf.startsWith(l.form, i)) {
        if (!best || l.form.length > best[0]) best = [l.form.length, l.replacement];
      } else if (!final && buf.length - i < l.form.length && l.form.startsWith(buf.slice(i))) partial = true;
    }
    for (const s of this.set.schemes) {
      if (s.startTable[c] !== 1) continue;
      let p = i;
      let k = 0;
      for (; k < s.matchers.length; k++) {
        const re = s.matchers[k] as RegExp;
        re.lastIndex = p;
        const m = p < buf.length ? re.exec(buf) : null;
        if (!m) break;
        p += m[0].length;
      }
      if (k === s.matchers.length) {
        if (!best || p - i > best[0]) best = [p - i, s.replacement];
      } else if (!final && buf.length - p < MAX_BYTE_FORM) {
        // what has arrived ends inside byte k's encoding: it may still become a match
        const tail = buf.slice(p);
        if ((k > 0 && tail.length === 0) || s.forms(s.bytes[k] as number).some((f) => f.length > tail.length && f.startsWith(tail)))
          partial = true;
      }
    }
    if (best) return best;
    return partial ? PARTIAL : null;
  }

  private run(buf: string, final: boolean): string {
    const first = this.set.first;
    let out = '';
    let pos = 0; // emitted up to here
    let i = 0;
    let held = -1;
    while (i < buf.length) {
      if (first[buf.charCodeAt(i)] !== 1) {
        i++;
        continue;
      }
      const m = this.matchAt(buf, i, final);
      if (m === PARTIAL) {
        held = i;
        break;
      }
      if (m === null) {
        i++;
        continue;
      }
      out += buf.slice(pos, i) + m[1];
      this.hits++;
      i += m[0];
      pos = i;
    }
    const emitEnd = held < 0 ? buf.length : held;
    out += buf.slice(pos, emitEnd);
    this.carry = buf.slice(emitEnd);
    return out;
  }
}

function toLatin1(b: Uint8Array): string {
  // WHATWG's latin1 is windows-1252, which remaps 0x80-0x9f; map bytes one to one instead.
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += latin1(b.subarray(i, i + 8192));
  return s;
}

function fromLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
