/**
 * The `file` key provider, the embedded default: every key in one JSON file, created at first
 * start with mode 0600 (refused if others may read it), rewritten atomically (a temporary file
 * renamed over it) on rotation. Whoever reads this file and the database has the engines' root
 * credentials: docs/threat-model.md says so, and points to the `pkcs11` provider.
 *
 *   { v: 1, current: "mk-…", masters: { "mk-…": { key, created } }, engine: { pkcs8 },
 *     signing: { kid: { pkcs8, created } } }   (keys base64)
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { engineKeyFingerprint } from '../../core/sync/engine-seal.ts';
import { type KeyProvider, type KeyProviderStatus, KmsError, masterKeyId, type WrappedKey } from './provider.ts';
import { SignerThread } from './signer-thread.ts';

type KeyFile = {
  v: 1;
  current: string;
  masters: Record<string, { key: string; created: number }>;
  engine: { pkcs8: string };
  signing: Record<string, { pkcs8: string; created: number }>;
};

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64');

function newKeyFile(): KeyFile {
  const master = randomBytes(32);
  const id = masterKeyId(randomBytes(8));
  return {
    v: 1,
    current: id,
    masters: { [id]: { key: b64(master), created: Date.now() } },
    engine: { pkcs8: b64(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' })) },
    signing: {},
  };
}

function parse(text: string): KeyFile {
  const f = JSON.parse(text) as KeyFile;
  if (f?.v !== 1 || typeof f.current !== 'string' || !f.masters?.[f.current] || typeof f.engine?.pkcs8 !== 'string' || !f.signing)
    throw new Error('shape');
  return f;
}

export class FileKeyProvider implements KeyProvider {
  readonly kind = 'file' as const;
  private file: KeyFile | null = null;

  /** `create`: make the file if it is missing (the server's first start, `kms init`). */
  constructor(
    private readonly path: string,
    private readonly opts: { create?: boolean } = {},
  ) {}

  /** when the file was last read: a replica that changed it since is read again */
  private readAt = 0;

  private load(): KeyFile {
    if (this.file) {
      try {
        if (statSync(this.path).mtimeMs === this.readAt) return this.file;
      } catch {
        // gone: reported below
      }
    }
    if (!existsSync(this.path)) {
      if (!this.opts.create) throw new KmsError('no-key-file');
      this.mutate((f) => f ?? newKeyFile()); // two replicas starting at once make one file
      return this.file as unknown as KeyFile;
    }
    const st = statSync(this.path);
    if ((st.mode & 0o077) !== 0) throw new KmsError('bad-key-file', 'mode is not 0600');
    try {
      this.file = parse(readFileSync(this.path, 'utf8'));
      this.readAt = st.mtimeMs;
    } catch {
      throw new KmsError('bad-key-file');
    }
    return this.file;
  }

  /** Reads the file again (another replica may have changed it). */
  private reload(): KeyFile {
    this.file = null;
    return this.load();
  }

  /**
   * A change, made on the file as it is on disk now, under an exclusive lock file: replicas
   * sharing one key file never write over each other's keys.
   */
  private mutate(change: (f: KeyFile) => KeyFile): void {
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx', 0o600));
        break;
      } catch {
        // a lock left by a crashed writer is broken after 30 s
        try {
          if (Date.now() - statSync(lock).mtimeMs > 30_000) rmSync(lock, { force: true });
        } catch {
          // gone meanwhile
        }
        if (Date.now() > deadline) throw new KmsError('bad-key-file', 'the key file stays locked by another process');
        const until = Date.now() + 5;
        while (Date.now() < until) {
          // a short wait: key changes are rare and quick
        }
      }
    }
    try {
      this.save(change(existsSync(this.path) ? this.reload() : (null as unknown as KeyFile)));
    } finally {
      rmSync(lock, { force: true });
    }
  }

  private save(f: KeyFile): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(f, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
    this.file = f;
    this.readAt = statSync(this.path).mtimeMs;
  }

  async init(): Promise<void> {
    this.load();
  }

  async status(): Promise<KeyProviderStatus> {
    const f = this.load();
    const spki = await this.enginePublicKey();
    return {
      kind: this.kind,
      masterKey: f.current,
      previousMasterKeys: Object.keys(f.masters).filter((id) => id !== f.current),
      engineKey: b64(spki),
      engineFingerprint: engineKeyFingerprint(spki),
      signingKeys: Object.keys(f.signing),
    };
  }

  private master(id: string): Buffer {
    // a key another replica made since this one read the file
    const m = this.load().masters[id] ?? this.reload().masters[id];
    if (!m) throw new KmsError('unknown-key', id);
    return unb64(m.key);
  }

  async wrapDataKey(dataKey: Uint8Array, aad: Uint8Array): Promise<WrappedKey> {
    const keyId = this.load().current;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.master(keyId), iv).setAAD(aad);
    const wrapped = Buffer.concat([c.update(dataKey), c.final(), c.getAuthTag()]);
    return { keyId, iv: b64(iv), wrapped: b64(wrapped) };
  }

  async unwrapDataKey(w: WrappedKey, aad: Uint8Array): Promise<Uint8Array> {
    const key = this.master(w.keyId);
    const all = unb64(w.wrapped);
    try {
      const d = createDecipheriv('aes-256-gcm', key, unb64(w.iv)).setAAD(aad);
      d.setAuthTag(all.subarray(all.length - 16));
      return new Uint8Array(Buffer.concat([d.update(all.subarray(0, all.length - 16)), d.final()]));
    } catch {
      throw new KmsError('unwrap-failed');
    }
  }

  async rotateMasterKey(): Promise<string> {
    const id = masterKeyId(randomBytes(8));
    this.mutate((f) => ({ ...f, current: id, masters: { ...f.masters, [id]: { key: b64(randomBytes(32)), created: Date.now() } } }));
    return id;
  }

  async retireMasterKey(id: string): Promise<void> {
    this.mutate((f) => {
      if (id === f.current || !f.masters[id]) throw new KmsError('unknown-key', id);
      const { [id]: _, ...masters } = f.masters;
      return { ...f, masters };
    });
  }

  private engineKey(): KeyObject {
    return createPrivateKey({ key: unb64(this.load().engine.pkcs8), format: 'der', type: 'pkcs8' });
  }

  async enginePublicKey(): Promise<Uint8Array> {
    return new Uint8Array(createPublicKey(this.engineKey()).export({ type: 'spki', format: 'der' }));
  }

  async engineAgree(peerSpki: Uint8Array): Promise<Uint8Array> {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: Buffer.from(peerSpki), format: 'der', type: 'spki' });
    } catch {
      throw new KmsError('bad-public-key');
    }
    if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      throw new KmsError('bad-public-key');
    return new Uint8Array(diffieHellman({ privateKey: this.engineKey(), publicKey }));
  }

  async createSigningKey(): Promise<string> {
    const kid = `sk-${randomBytes(8).toString('hex')}`;
    const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' });
    this.mutate((f) => ({ ...f, signing: { ...f.signing, [kid]: { pkcs8: b64(pkcs8), created: Date.now() } } }));
    return kid;
  }

  /** parsed signing keys, by kid (parsing DER on every signature would cost more than signing) */
  private readonly parsed = new Map<string, KeyObject>();

  private signingKey(kid: string): KeyObject {
    const hit = this.parsed.get(kid);
    if (hit) return hit;
    const k = this.load().signing[kid] ?? this.reload().signing[kid];
    if (!k) throw new KmsError('unknown-key', kid);
    const key = createPrivateKey({ key: unb64(k.pkcs8), format: 'der', type: 'pkcs8' });
    this.parsed.set(kid, key);
    return key;
  }

  async signingPublicKey(kid: string): Promise<JsonWebKey> {
    const { kty, crv, x, y } = createPublicKey(this.signingKey(kid)).export({ format: 'jwk' });
    return { kty, crv, x, y };
  }

  /** JWT signatures are made on a thread of their own, in batches (signer-thread.ts says why) */
  private readonly signer = new SignerThread();

  async sign(kid: string, data: Uint8Array): Promise<Uint8Array> {
    return this.signer.sign(this.signingKey(kid), data);
  }

  async deleteSigningKey(kid: string): Promise<void> {
    const parsed = this.parsed.get(kid);
    if (parsed) this.signer.forget(parsed);
    this.parsed.delete(kid);
    this.mutate((f) => {
      const { [kid]: _, ...signing } = f.signing;
      return { ...f, signing };
    });
  }

  async close(): Promise<void> {
    this.file = null;
    this.parsed.clear();
    await this.signer.close();
  }
}
