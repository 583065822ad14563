/**
 * The `pkcs11` key provider: an HSM through PKCS#11 (pkcs11js; Debian's SoftHSM2 in tests). Every
 * key is created on the token, sensitive and non-extractable: the token wraps and unwraps data
 * keys (AES-256-GCM), signs JWTs (CKM_ECDSA over a SHA-256 computed here: SoftHSM has no
 * CKM_ECDSA_SHA256; the raw r || s it returns is exactly ES256), and derives ECDH secrets with the
 * engine key. Only the ECDH shared secret (a session object, extractable by design) and public
 * keys ever leave it.
 *
 * Objects, found by label and CKA_ID: `keyhole-master` (AES, id = the master key id),
 * `keyhole-engine` (EC P-256 pair), `keyhole-jwt` (EC P-256 pairs, id = kid), and `keyhole-state`
 * (a data object: which master key is current, JSON).
 *
 * The token is found by its label (SoftHSM moves a token to a new slot number when it is made).
 * A missing token, a wrong PIN or a library that does not load stop the server at start, saying
 * which (KmsError).
 */
import { createHash, randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { engineKeyFingerprint, P256_SPKI_PREFIX } from '../../core/sync/engine-seal.ts';
import { type KeyProvider, type KeyProviderStatus, KmsError, masterKeyId, type WrappedKey } from './provider.ts';

type Handle = Buffer;
const P = pkcs11js;
/** DER of the P-256 curve's OID, and the SPKI prefix before its 65-byte uncompressed point. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const MASTER = 'keyhole-master';
const ENGINE = 'keyhole-engine';
const JWT = 'keyhole-jwt';
const STATE = 'keyhole-state';

type State = { current: string; previous: string[] };

export type Pkcs11Options = {
  readonly library: string;
  readonly tokenLabel: string;
  readonly pin: string;
  /** sessions that sign JWTs, each one signature at a time (default DEFAULT_SIGN_SESSIONS) */
  readonly signSessions?: number;
};

/**
 * Four signatures at once by default: a session runs one operation at a time, and a token with
 * more sessions signs on more cores (SoftHSM2) or more of its own engines (an HSM). More than
 * libuv's pool (UV_THREADPOOL_SIZE, 4 unless set) gains nothing, since C_SignAsync runs on it.
 */
export const DEFAULT_SIGN_SESSIONS = 4;
export const MAX_SIGN_SESSIONS = 64;

/** A signing session and the signatures in line on it. */
type Lane = { readonly session: Handle; tail: Promise<unknown>; waiting: number };

export class Pkcs11KeyProvider implements KeyProvider {
  readonly kind = 'pkcs11' as const;
  private readonly p: pkcs11js.PKCS11;
  private readonly session: Handle;
  /** JWT signatures have sessions of their own: they run on libuv's pool while this one serves the rest */
  private readonly lanes: Lane[] = [];
  /** private key handles by kid (finding an object scans the token: it grows with every key on it) */
  private readonly signingHandles = new Map<string, Handle>();

  constructor(opts: Pkcs11Options) {
    const sessions = opts.signSessions ?? DEFAULT_SIGN_SESSIONS;
    if (!Number.isInteger(sessions) || sessions < 1 || sessions > MAX_SIGN_SESSIONS)
      throw new RangeError(`the PKCS#11 signing sessions must be an integer from 1 to ${MAX_SIGN_SESSIONS}`);
    this.p = new P.PKCS11();
    try {
      this.p.load(opts.library);
    } catch {
      throw new KmsError('no-library', opts.library);
    }
    // the library locks for itself: signatures run on another thread while this one uses the token
    this.p.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
    try {
      const slot = this.p.C_GetSlotList(true).find((s) => this.p.C_GetTokenInfo(s).label.trim() === opts.tokenLabel);
      if (!slot) throw new KmsError('token-missing', opts.tokenLabel);
      this.session = this.p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      try {
        this.p.C_Login(this.session, P.CKU_USER, opts.pin);
      } catch (e) {
        if ((e as { code?: number }).code === P.CKR_PIN_INCORRECT || (e as { code?: number }).code === P.CKR_PIN_LOCKED)
          throw new KmsError('wrong-pin');
        throw e;
      }
      // logged in with the first
      for (let i = 0; i < sessions; i++)
        this.lanes.push({ session: this.p.C_OpenSession(slot, P.CKF_SERIAL_SESSION), tail: Promise.resolve(), waiting: 0 });
    } catch (e) {
      this.p.C_Finalize();
      throw e;
    }
  }

  private find(template: pkcs11js.Template): Handle[] {
    this.p.C_FindObjectsInit(this.session, template);
    try {
      return this.p.C_FindObjects(this.session, 1000);
    } finally {
      this.p.C_FindObjectsFinal(this.session);
    }
  }

  private one(cls: number, label: string, id?: string): Handle | undefined {
    return this.find([
      { type: P.CKA_CLASS, value: cls },
      { type: P.CKA_LABEL, value: label },
      ...(id !== undefined ? [{ type: P.CKA_ID, value: Buffer.from(id) }] : []),
    ])[0];
  }

  private state(): State | null {
    const h = this.one(P.CKO_DATA, STATE);
    if (!h) return null;
    const [v] = this.p.C_GetAttributeValue(this.session, h, [{ type: P.CKA_VALUE }]);
    return JSON.parse(String(v?.value)) as State;
  }

  private setState(s: State): void {
    const old = this.one(P.CKO_DATA, STATE);
    this.p.C_CreateObject(this.session, [
      { type: P.CKA_CLASS, value: P.CKO_DATA },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_LABEL, value: STATE },
      { type: P.CKA_VALUE, value: Buffer.from(JSON.stringify(s)) },
    ]);
    if (old) this.p.C_DestroyObject(this.session, old);
  }

  private generateMaster(id: string): void {
    this.p.C_GenerateKey(this.session, { mechanism: P.CKM_AES_KEY_GEN }, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_VALUE_LEN, value: 32 },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_ENCRYPT, value: true },
      { type: P.CKA_DECRYPT, value: true },
      { type: P.CKA_LABEL, value: MASTER },
      { type: P.CKA_ID, value: Buffer.from(id) },
    ]);
  }

  private generatePair(label: string, id: string, use: 'sign' | 'derive'): void {
    this.p.C_GenerateKeyPair(
      this.session,
      { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [
        { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
        { type: P.CKA_EC_PARAMS, value: P256_PARAMS },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_VERIFY, value: use === 'sign' },
        { type: P.CKA_LABEL, value: label },
        { type: P.CKA_ID, value: Buffer.from(id) },
      ],
      [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_PRIVATE, value: true },
        { type: P.CKA_SENSITIVE, value: true },
        { type: P.CKA_EXTRACTABLE, value: false },
        { type: use === 'sign' ? P.CKA_SIGN : P.CKA_DERIVE, value: true },
        { type: P.CKA_LABEL, value: label },
        { type: P.CKA_ID, value: Buffer.from(id) },
      ],
    );
  }

  async init(): Promise<void> {
    if (!this.state()) {
      const id = masterKeyId(randomBytes(8));
      this.generateMaster(id);
      this.setState({ current: id, previous: [] });
    }
    if (!this.one(P.CKO_PRIVATE_KEY, ENGINE)) this.generatePair(ENGINE, 'engine', 'derive');
  }

  private initialised(): State {
    const s = this.state();
    if (!s) throw new KmsError('not-initialised');
    return s;
  }

  async status(): Promise<KeyProviderStatus> {
    const s = this.initialised();
    const spki = await this.enginePublicKey();
    const kids = this.find([
      { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
      { type: P.CKA_LABEL, value: JWT },
    ]).map((h) => String(this.p.C_GetAttributeValue(this.session, h, [{ type: P.CKA_ID }])[0]?.value));
    return {
      kind: this.kind,
      masterKey: s.current,
      previousMasterKeys: s.previous,
      engineKey: Buffer.from(spki).toString('base64'),
      engineFingerprint: engineKeyFingerprint(spki),
      signingKeys: kids,
    };
  }

  private master(id: string): Handle {
    const h = this.one(P.CKO_SECRET_KEY, MASTER, id);
    if (!h) throw new KmsError('unknown-key', id);
    return h;
  }

  private gcm(iv: Buffer, aad: Uint8Array) {
    return { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, aad: Buffer.from(aad), ivBits: 96, tagBits: 128 } };
  }

  async wrapDataKey(dataKey: Uint8Array, aad: Uint8Array): Promise<WrappedKey> {
    const keyId = this.initialised().current;
    const iv = randomBytes(12);
    this.p.C_EncryptInit(this.session, this.gcm(iv, aad), this.master(keyId));
    const wrapped = this.p.C_Encrypt(this.session, Buffer.from(dataKey), Buffer.alloc(dataKey.length + 16));
    return { keyId, iv: iv.toString('base64'), wrapped: Buffer.from(wrapped).toString('base64') };
  }

  async unwrapDataKey(w: WrappedKey, aad: Uint8Array): Promise<Uint8Array> {
    const key = this.master(w.keyId);
    const data = Buffer.from(w.wrapped, 'base64');
    try {
      this.p.C_DecryptInit(this.session, this.gcm(Buffer.from(w.iv, 'base64'), aad), key);
      return new Uint8Array(this.p.C_Decrypt(this.session, data, Buffer.alloc(data.length)));
    } catch {
      throw new KmsError('unwrap-failed');
    }
  }

  async rotateMasterKey(): Promise<string> {
    const s = this.initialised();
    const id = masterKeyId(randomBytes(8));
    this.generateMaster(id);
    this.setState({ current: id, previous: [s.current, ...s.previous] });
    return id;
  }

  async retireMasterKey(id: string): Promise<void> {
    const s = this.initialised();
    if (id === s.current || !s.previous.includes(id)) throw new KmsError('unknown-key', id);
    this.p.C_DestroyObject(this.session, this.master(id));
    this.setState({ current: s.current, previous: s.previous.filter((x) => x !== id) });
  }

  private point(label: string, id: string): Buffer {
    const h = this.one(P.CKO_PUBLIC_KEY, label, id);
    if (!h) throw new KmsError(label === ENGINE ? 'not-initialised' : 'unknown-key', label === ENGINE ? undefined : id);
    const der = this.p.C_GetAttributeValue(this.session, h, [{ type: P.CKA_EC_POINT }])[0]?.value as Buffer;
    // a DER OCTET STRING (04 41) around the uncompressed point 04 || X || Y
    return der.length === 67 && der[0] === 0x04 ? der.subarray(2) : der;
  }

  async enginePublicKey(): Promise<Uint8Array> {
    return new Uint8Array(Buffer.concat([P256_SPKI_PREFIX, this.point(ENGINE, 'engine')]));
  }

  async engineAgree(peerSpki: Uint8Array): Promise<Uint8Array> {
    const peer = Buffer.from(peerSpki);
    if (peer.length !== 91 || !peer.subarray(0, 26).equals(Buffer.from(P256_SPKI_PREFIX))) throw new KmsError('bad-public-key');
    const priv = this.one(P.CKO_PRIVATE_KEY, ENGINE);
    if (!priv) throw new KmsError('not-initialised');
    const secret = this.p.C_DeriveKey(
      this.session,
      {
        mechanism: P.CKM_ECDH1_DERIVE,
        parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: peer.subarray(26) } as pkcs11js.ECDH1,
      },
      priv,
      [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
        { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_SENSITIVE, value: false },
        { type: P.CKA_EXTRACTABLE, value: true },
      ],
    );
    try {
      return new Uint8Array(this.p.C_GetAttributeValue(this.session, secret, [{ type: P.CKA_VALUE }])[0]?.value as Buffer);
    } finally {
      this.p.C_DestroyObject(this.session, secret);
    }
  }

  async createSigningKey(): Promise<string> {
    const kid = `sk-${randomBytes(8).toString('hex')}`;
    this.generatePair(JWT, kid, 'sign');
    return kid;
  }

  async signingPublicKey(kid: string): Promise<JsonWebKey> {
    const point = this.point(JWT, kid);
    const b64url = (b: Buffer) => b.toString('base64url');
    return { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) };
  }

  /**
   * ES256 over `data`: the SHA-256 is computed here, the token signs it off the event loop
   * (C_SignAsync) on the signing session with the fewest signatures in line, each session one
   * signature at a time in the order asked.
   */
  sign(kid: string, data: Uint8Array): Promise<Uint8Array> {
    const digest = createHash('sha256').update(data).digest();
    const lane = this.lanes.reduce((a, b) => (b.waiting < a.waiting ? b : a));
    lane.waiting++;
    const signed = lane.tail.then(() => this.signOne(lane.session, kid, digest));
    lane.tail = signed.then(
      () => lane.waiting--,
      () => lane.waiting--,
    );
    return signed;
  }

  private async signOne(session: Handle, kid: string, digest: Buffer): Promise<Uint8Array> {
    const mechanism = { mechanism: P.CKM_ECDSA };
    const remembered = this.signingHandles.get(kid);
    try {
      this.p.C_SignInit(session, mechanism, remembered ?? this.signingHandle(kid));
    } catch (e) {
      if (remembered === undefined) throw e;
      // the handle went stale (the key was deleted, by this replica or another): find it again
      this.signingHandles.delete(kid);
      this.p.C_SignInit(session, mechanism, this.signingHandle(kid));
    }
    return new Uint8Array(await this.p.C_SignAsync(session, digest, Buffer.alloc(64)));
  }

  private signingHandle(kid: string): Handle {
    const h = this.one(P.CKO_PRIVATE_KEY, JWT, kid);
    if (!h) throw new KmsError('unknown-key', kid);
    this.signingHandles.set(kid, h);
    return h;
  }

  async deleteSigningKey(kid: string): Promise<void> {
    this.signingHandles.delete(kid);
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
      const h = this.one(cls, JWT, kid);
      if (h) this.p.C_DestroyObject(this.session, h);
    }
  }

  async close(): Promise<void> {
    // a signature still on the pool's thread must end before the library does
    await Promise.all(this.lanes.map((l) => l.tail));
    try {
      this.p.C_Logout(this.session);
      for (const l of this.lanes) this.p.C_CloseSession(l.session);
      this.p.C_CloseSession(this.session);
    } finally {
      this.p.C_Finalize();
    }
  }

  /** For tests: whether the token lets anyone read the value of a key (it must not). */
  readableValue(kind: 'master' | 'engine' | 'signing', id?: string): boolean {
    const h =
      kind === 'master'
        ? this.master(id ?? this.initialised().current)
        : this.one(P.CKO_PRIVATE_KEY, kind === 'engine' ? ENGINE : JWT, kind === 'engine' ? undefined : id);
    if (!h) throw new KmsError('unknown-key');
    try {
      const v = this.p.C_GetAttributeValue(this.session, h, [{ type: P.CKA_VALUE }])[0]?.value;
      return v !== undefined && (v as Buffer).length > 0;
    } catch {
      return false;
    }
  }
}
