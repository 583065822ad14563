/**
 * Strips a secret from whatever an API echoes back, in the encodings a server or a prompt
 * injection might use: raw, base64 and base64url at all three byte alignments, hex (both cases),
 * percent-encoding and JSON escapes. Works on bytes (latin1-mapped, so every byte is one char)
 * and across chunk boundaries for streamed bodies.
 */
import { toBase64, toHex, utf8 } from './bytes.ts';

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

/** Every form of `value` to strip, longest first, as latin1 strings (one char per byte). */
export function redactionForms(value: string): string[] {
  const bytes = utf8(value);
  const forms = new Set<string>([value]);
  for (const b of base64Alignments(bytes)) {
    if (b.length >= MIN_FRAGMENT) {
      forms.add(b);
      forms.add(b.replaceAll('+', '-').replaceAll('/', '_'));
    }
  }
  const h = toHex(bytes);
  forms.add(h);
  forms.add(h.toUpperCase());
  forms.add(encodeURIComponent(value));
  forms.add([...bytes].map((x) => `%${x.toString(16).padStart(2, '0').toUpperCase()}`).join(''));
  forms.add([...bytes].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''));
  forms.add(JSON.stringify(value).slice(1, -1));
  forms.add([...value].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''));
  forms.add([...value].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`).join(''));
  // a form must itself be ASCII (it is compared byte for byte); values are printable ASCII
  return [...forms].filter((f) => f.length > 0).sort((a, b) => b.length - a.length);
}

function toLatin1(b: Uint8Array): string {
  // WHATWG's latin1 is windows-1252, which remaps 0x80-0x9f; map bytes one to one instead.
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function fromLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A streaming redactor: push chunks, get back what is safe to pass on; `end()` flushes. */
export class Redactor {
  private carry = '';
  private readonly hold: number;
  /** how many occurrences were removed so far (for the audit, never what they were) */
  hits = 0;

  constructor(private readonly forms: readonly string[]) {
    this.hold = Math.max(0, ...forms.map((f) => f.length)) - 1;
  }

  static forValues(values: readonly string[]): Redactor {
    return new Redactor([...new Set(values.flatMap(redactionForms))].sort((a, b) => b.length - a.length));
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

  private run(buf: string, final: boolean): string {
    const limit = final ? buf.length : Math.max(0, buf.length - this.hold);
    let out = '';
    let pos = 0;
    const next = this.forms.map((f) => buf.indexOf(f)); // each form's next occurrence at or after pos
    for (;;) {
      let at = -1;
      let len = 0;
      this.forms.forEach((f, k) => {
        if (next[k] !== -1 && (next[k] as number) < pos) next[k] = buf.indexOf(f, pos);
        const i = next[k] as number;
        if (i !== -1 && (at === -1 || i < at || (i === at && f.length > len))) {
          at = i;
          len = f.length;
        }
      });
      if (at === -1 || at >= limit) break;
      out += buf.slice(pos, at) + REDACTED;
      this.hits++;
      pos = at + len;
    }
    const emitEnd = Math.max(pos, limit);
    out += buf.slice(pos, emitEnd);
    this.carry = buf.slice(emitEnd);
    return out;
  }
}
