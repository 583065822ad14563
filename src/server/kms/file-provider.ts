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
  sign as nodeSign,
  randomBytes,
} from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { engineFingerprint } from './fingerprint.ts';
import { type KeyProvider, type KeyProviderStatus, KmsError, masterKeyId, type WrappedKey } from './provider.ts';

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

  private load(): KeyFile {
    if (this.file) return this.file;
    if (!existsSync(this.path)) {
      if (!this.opts.create) throw new KmsError('no-key-file');
      this.save(newKeyFile());
      return this.file as unknown as KeyFile;
    }
    if ((statSync(this.path).mode & 0o077) !== 0) throw new KmsError('bad-key-file', 'mode is not 0600');
    try {
      this.file = parse(readFileSync(this.path, 'utf8'));
    } catch {
      throw new KmsError('bad-key-file');
    }
    return this.file;
  }

  private save(f: KeyFile): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(f, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
    this.file = f;
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
      engineFingerprint: engineFingerprint(spki),
      signingKeys: Object.keys(f.signing),
    };
  }

  private master(id: string): Buffer {
    const m = this.load().masters[id];
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
    const f = this.load();
    const id = masterKeyId(randomBytes(8));
    this.save({ ...f, current: id, masters: { ...f.masters, [id]: { key: b64(randomBytes(32)), created: Date.now() } } });
    return id;
  }

  async retireMasterKey(id: string): Promise<void> {
    const f = this.load();
    if (id === f.current || !f.masters[id]) throw new KmsError('unknown-key', id);
    const { [id]: _, ...masters } = f.masters;
    this.save({ ...f, masters });
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
    const f = this.load();
    const kid = `sk-${randomBytes(8).toString('hex')}`;
    const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' });
    this.save({ ...f, signing: { ...f.signing, [kid]: { pkcs8: b64(pkcs8), created: Date.now() } } });
    return kid;
  }

  private signingKey(kid: string): KeyObject {
    const k = this.load().signing[kid];
    if (!k) throw new KmsError('unknown-key', kid);
    return createPrivateKey({ key: unb64(k.pkcs8), format: 'der', type: 'pkcs8' });
  }

  async signingPublicKey(kid: string): Promise<JsonWebKey> {
    const { kty, crv, x, y } = createPublicKey(this.signingKey(kid)).export({ format: 'jwk' });
    return { kty, crv, x, y };
  }

  async sign(kid: string, data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(nodeSign('sha256', data, { key: this.signingKey(kid), dsaEncoding: 'ieee-p1363' }));
  }

  async deleteSigningKey(kid: string): Promise<void> {
    const f = this.load();
    const { [kid]: _, ...signing } = f.signing;
    this.save({ ...f, signing });
  }

  async close(): Promise<void> {
    this.file = null;
  }
}
