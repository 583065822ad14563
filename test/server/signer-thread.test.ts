/**
 * The signing thread the `file` key provider uses for JWTs: every signature of a batch verifies
 * with Node's own ECDSA, a key that cannot sign fails only its own signatures, a forgotten key
 * signs again once given back, and a closed signer refuses instead of hanging.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SignerError, SignerThread } from '../../src/server/kms/signer-thread.ts';

/** A signer whose thread a test can stop, as an out-of-memory kill or a native crash would, or watch. */
class Stoppable extends SignerThread {
  stopThread(): Promise<number> {
    return this.worker?.terminate() ?? Promise.resolve(0);
  }

  /** Counts the batches sent to the thread, and the most it held at once (its answers counted first). */
  watchBatches(): { sent: number; mostAtOnce: number } {
    const w = this.worker;
    if (!w) throw new Error('no thread yet');
    const seen = { sent: 0, mostAtOnce: 0 };
    let held = 0;
    w.prependListener('message', () => held--);
    const post = w.postMessage.bind(w);
    w.postMessage = (m: { type?: string }, transfer?: readonly Transferable[]) => {
      if (m.type === 'sign') {
        seen.sent++;
        seen.mostAtOnce = Math.max(seen.mostAtOnce, ++held);
      }
      post(m, transfer as never);
    };
    return seen;
  }
}

const signers: SignerThread[] = [];
afterEach(async () => {
  for (const s of signers.splice(0)) await s.close();
});
const newSigner = () => {
  const s = new Stoppable();
  signers.push(s);
  return s;
};
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifies = (publicKey: ReturnType<typeof p256>['publicKey'], data: Uint8Array, sig: Uint8Array) =>
  verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);

describe('the signing thread', () => {
  it('signs 300 messages asked for at once, over two keys, each verifying under its own key only', async () => {
    const signer = newSigner();
    const a = p256();
    const b = p256();
    const messages = Array.from({ length: 300 }, (_, i) => Buffer.from(`header.claims-${i}`));
    const sigs = await Promise.all(messages.map((m, i) => signer.sign((i % 2 ? b : a).privateKey, m)));
    for (const [i, sig] of sigs.entries()) {
      expect(sig.length).toBe(64);
      const [own, other] = i % 2 ? [b, a] : [a, b];
      expect(verifies(own.publicKey, messages[i] as Buffer, sig)).toBe(true);
      expect(verifies(other.publicKey, messages[i] as Buffer, sig)).toBe(false);
    }
    // ECDSA is randomised: the same message twice gives two signatures, both valid
    const [s1, s2] = await Promise.all([
      signer.sign(a.privateKey, messages[0] as Buffer),
      signer.sign(a.privateKey, messages[0] as Buffer),
    ]);
    expect(Buffer.from(s1 as Uint8Array).equals(Buffer.from(s2 as Uint8Array))).toBe(false);
  });

  it('keeps one batch on the thread at a time: what is asked for meanwhile leaves together in the next', async () => {
    const signer = newSigner();
    const k = p256();
    await signer.sign(k.privateKey, Buffer.from('warm.up')); // starts the thread
    const seen = signer.watchBatches();
    // 16 callers, each signing 25 times in a row, as 16 requests in flight on a busy server do,
    // each asking a few turns of the event loop after the last answer, as requests arrive
    const turns = (n: number) =>
      Array.from({ length: n }).reduce<Promise<unknown>>((p) => p.then(() => new Promise(setImmediate)), Promise.resolve());
    const signed = await Promise.all(
      Array.from({ length: 16 }, async (_, caller) => {
        const mine: [Buffer, Uint8Array][] = [];
        for (let n = 0; n < 25; n++) {
          const data = Buffer.from(`header.claims-${caller}-${n}`);
          mine.push([data, await signer.sign(k.privateKey, data)]);
          await turns((caller * 7 + n) % 4);
        }
        return mine;
      }),
    );
    for (const [data, sig] of signed.flat()) expect(verifies(k.publicKey, data, sig)).toBe(true);
    expect(seen.mostAtOnce).toBe(1);
    // 400 signatures in far fewer batches: each gathered while the one before was being signed
    expect(seen.sent).toBeLessThan(400 / 2);
  });

  it('fails only the signatures of a key that cannot make ES256, in the same batch as good ones', async () => {
    const signer = newSigner();
    const good = p256();
    const ed = generateKeyPairSync('ed25519');
    const data = Buffer.from('header.claims');
    const results = await Promise.allSettled([
      signer.sign(good.privateKey, data),
      signer.sign(ed.privateKey, data),
      signer.sign(good.privateKey, data),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason;
    expect(failure).toBeInstanceOf(SignerError);
    expect(String(failure.message)).not.toMatch(/BEGIN|PRIVATE/);
    expect(verifies(good.publicKey, data, (results[2] as PromiseFulfilledResult<Uint8Array>).value)).toBe(true);
  });

  it('signs with a forgotten key again once it is given back, and refuses everything once closed', async () => {
    const signer = newSigner();
    const k = p256();
    const data = Buffer.from('x.y');
    expect(verifies(k.publicKey, data, await signer.sign(k.privateKey, data))).toBe(true);
    signer.forget(k.privateKey);
    expect(verifies(k.publicKey, data, await signer.sign(k.privateKey, data))).toBe(true);
    const waiting = expect(signer.sign(k.privateKey, data)).rejects.toBeInstanceOf(SignerError);
    await signer.close();
    await waiting;
    await expect(signer.sign(k.privateKey, data)).rejects.toThrow('the signer is closed');
  });

  it('fails the signatures a dying thread held, and signs again on a new thread with the keys given again', async () => {
    const signer = newSigner();
    const k = p256();
    const data = Buffer.from('a.b');
    expect(verifies(k.publicKey, data, await signer.sign(k.privateKey, data))).toBe(true);
    const held = Array.from({ length: 300 }, () => signer.sign(k.privateKey, data));
    const outcome = Promise.allSettled(held);
    await new Promise((r) => setImmediate(r)); // the batch has left for the thread
    await signer.stopThread();
    const settled = await outcome;
    // whatever the thread answered before it stopped verifies; the rest failed, none hangs
    for (const r of settled) {
      if (r.status === 'fulfilled') expect(verifies(k.publicKey, data, r.value)).toBe(true);
      else expect(r.reason).toBeInstanceOf(SignerError);
    }
    expect(settled.some((r) => r.status === 'rejected')).toBe(true);
    const after = await Promise.all(Array.from({ length: 5 }, () => signer.sign(k.privateKey, data)));
    for (const sig of after) expect(verifies(k.publicKey, data, sig)).toBe(true);
  });
});
