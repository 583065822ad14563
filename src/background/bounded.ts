/**
 * Reads an answer's body whole, up to a bound: what the worker reads from servers it does not
 * trust (the distant vault, token endpoints). Past the bound (declared or read) the stream is
 * cancelled and BodyTooLarge thrown; the caller turns it into its own typed error.
 */
import { concat } from '../core/bytes.ts';

export class BodyTooLarge extends Error {
  override readonly name = 'BodyTooLarge';
}

export async function readAtMost(res: Response, limit: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) {
    void res.body?.cancel().catch(() => {});
    throw new BodyTooLarge(`declared ${declared} bytes`);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      void reader.cancel().catch(() => {});
      throw new BodyTooLarge(`over ${limit} bytes`);
    }
    chunks.push(value);
  }
  return concat(...chunks);
}
