/**
 * ES256 signatures on a thread of their own, in batches (the `file` key provider's JWT signing).
 *
 * Why not Node's callback form of `crypto.sign` (libuv's thread pool)? Each call is one job: the
 * event loop wakes a pool thread, the thread wakes the loop back, and on a busy machine each wake
 * is a context switch the loop pays for (measured: the hand-off cost the loop about as much as the
 * signature it moved away). Here, the signatures asked for leave in one message and come back in
 * one, and only one batch is out at a time: while the thread signs it, the next one gathers. Idle,
 * a lone signature leaves at the end of the loop's turn; under load the batches grow with the load
 * and the hand-offs, each of which may wake a sleeping thread, stay few. (`bench/leases.ts`: issue
 * 15's spike p99 on SQLite went from 74–107 ms to 7–51 ms, median 8.5 ms over 13 runs, with a batch
 * per turn. One batch at a time then took a message from 3–4 signatures to about 6, and in three
 * interleaved runs the same server issued 15–32% more tokens a second at 14–32% less CPU a token.)
 *
 * The thread holds parsed private keys (KeyObjects cloned to it, by a numeric id, once each); it is
 * inside this process and its trust boundary, like the key file the keys came from. Its code is
 * plain JavaScript evaluated in the worker, so it runs the same under tsx, vitest and a build.
 */
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** Signatures per batch at most; more wait for the next one. */
const MAX_BATCH = 64;

/** ES256 in IEEE P1363 form: r || s, 32 bytes each. */
const SIGNATURE_BYTES = 64;

const THREAD = `
const { parentPort } = require('node:worker_threads');
const { sign } = require('node:crypto');
const keys = new Map();
parentPort.on('message', (m) => {
  if (m.type === 'key') return void keys.set(m.id, m.key);
  if (m.type === 'forget') return void keys.delete(m.id);
  const out = new Uint8Array(m.items.length * ${SIGNATURE_BYTES});
  const failed = [];
  m.items.forEach(([id, data], i) => {
    const key = keys.get(id);
    try {
      if (key === undefined) throw new Error('no such key');
      out.set(sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }), i * ${SIGNATURE_BYTES});
    } catch {
      failed.push(i);
    }
  });
  parentPort.postMessage({ batch: m.batch, out, failed }, [out.buffer]);
});
`;

/** A signature the thread could not make: the key is not an ES256 private key, or the thread died. */
export class SignerError extends Error {
  override readonly name = 'SignerError';
}

type Waiting = { readonly id: number; readonly data: Uint8Array; resolve(sig: Uint8Array): void; reject(e: Error): void };

export class SignerThread {
  /** protected: a test stops it to show what a dying thread costs (the waiting signatures, nothing more) */
  protected worker: Worker | null = null;
  private keyIds = new WeakMap<KeyObject, number>();
  private nextKeyId = 1;
  private queue: Waiting[] = [];
  /** the batch the thread is signing (at most one: the next gathers meanwhile) */
  private out: { readonly batch: number; readonly items: Waiting[] } | null = null;
  private nextBatch = 1;
  private flushing = false;
  private closed = false;

  /** `data` signed with `key` (ECDSA P-256, SHA-256), as r || s. */
  sign(key: KeyObject, data: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new SignerError('the signer is closed'));
    const id = this.idOf(key);
    return new Promise((resolve, reject) => {
      this.queue.push({ id, data, resolve, reject });
      if (this.out !== null || this.flushing) return; // leaves with the next batch
      this.flushing = true;
      setImmediate(() => this.flush());
    });
  }

  /** The thread drops `key` (a signing key deleted from the provider). */
  forget(key: KeyObject): void {
    const id = this.keyIds.get(key);
    if (id === undefined) return;
    this.keyIds.delete(key);
    this.worker?.postMessage({ type: 'forget', id });
  }

  /** Ends the thread; signatures still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.fail(new SignerError('the signer is closed'));
    await w?.terminate();
  }

  private idOf(key: KeyObject): number {
    const w = this.thread();
    let id = this.keyIds.get(key);
    if (id === undefined) {
      id = this.nextKeyId++;
      this.keyIds.set(key, id);
      w.postMessage({ type: 'key', id, key });
    }
    return id;
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(THREAD, { eval: true });
    w.unref(); // an idle signer does not keep the process alive; the server's socket does
    w.on('message', (m: { batch: number; out: Uint8Array; failed: number[] }) => this.answer(m));
    const lost = () => {
      if (this.worker !== w) return;
      // keys were registered with this thread: the next one registers them again
      this.worker = null;
      this.keyIds = new WeakMap();
      this.fail(new SignerError('the signing thread stopped'));
    };
    w.on('error', lost);
    w.on('exit', lost);
    this.worker = w;
    return w;
  }

  /** Sends the next batch, if the thread is free and a signature waits. */
  private flush(): void {
    this.flushing = false;
    const w = this.worker;
    if (this.out !== null || this.queue.length === 0 || !w) return;
    const items = this.queue.splice(0, MAX_BATCH);
    this.out = { batch: this.nextBatch++, items };
    w.postMessage({ type: 'sign', batch: this.out.batch, items: items.map((x) => [x.id, x.data]) });
  }

  private answer(m: { batch: number; out: Uint8Array; failed: number[] }): void {
    if (this.out?.batch !== m.batch) return;
    const { items } = this.out;
    this.out = null;
    this.flush(); // what gathered meanwhile leaves before these answers are handled
    const failed = new Set(m.failed);
    items.forEach((x, i) => {
      if (failed.has(i)) x.reject(new SignerError('the key cannot make an ES256 signature'));
      else x.resolve(m.out.subarray(i * SIGNATURE_BYTES, (i + 1) * SIGNATURE_BYTES));
    });
  }

  private fail(e: Error): void {
    for (const x of this.out?.items ?? []) x.reject(e);
    this.out = null;
    for (const x of this.queue) x.reject(e);
    this.queue = [];
  }
}
