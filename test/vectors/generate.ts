/**
 * Writes test/vectors/record-v1.json and vault-v1.json.
 *
 * Independent of src/: it builds records from docs/record-format.md with @noble/hashes and
 * @noble/ciphers, so the tests check our WebCrypto code against a second implementation.
 * Run: npx tsx test/vectors/generate.ts  (the output is committed; re-running changes nothing
 * because every input, nonces included, is fixed here).
 */
import { writeFileSync } from 'node:fs';
import { gcm } from '@noble/ciphers/aes.js';
import { argon2id } from '@noble/hashes/argon2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const here = new URL('.', import.meta.url).pathname;
const hex = bytesToHex;
const fill = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function header(kind: number, epoch: number, version: number): Uint8Array {
  const h = new Uint8Array(12);
  const v = new DataView(h.buffer);
  h.set([0x4b, 0x48, 1, kind]);
  v.setUint32(4, epoch);
  v.setUint32(8, version);
  return h;
}

function aad(kind: number, vaultId: string, itemId: string, epoch: number, version: number): Uint8Array {
  const id = utf8ToBytes(itemId);
  const len = new Uint8Array([id.length >> 8, id.length & 0xff]);
  return Uint8Array.from([...header(kind, epoch, version), ...hexToBytes(vaultId.replaceAll('-', '')), ...len, ...id]);
}

function seal(
  key: Uint8Array,
  nonce: Uint8Array,
  kind: number,
  vaultId: string,
  itemId: string,
  epoch: number,
  version: number,
  pt: Uint8Array,
) {
  const ad = aad(kind, vaultId, itemId, epoch, version);
  const sealed = gcm(key, nonce, ad).encrypt(pt);
  return { aad: hex(ad), record: hex(Uint8Array.from([...header(kind, epoch, version), ...nonce, ...sealed])) };
}

// --- record-v1.json: single records under a fixed key -------------------------------------------
const vaultId = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0';
const key = fill(32, 0x40);
const records = [
  {
    description: 'item value, version 1, epoch 1',
    kind: 5,
    itemId: '6a1c2f0e-9b7d-4e21-8f3a-2c5d7e9f1b3a',
    epoch: 1,
    version: 1,
    plaintext: 'sk-FAKE-test-value-0001',
    nonce: fill(12, 0x10),
  },
  {
    description: 'item metadata, version 7, epoch 3',
    kind: 3,
    itemId: 'item-with-ascii-id',
    epoch: 3,
    version: 7,
    plaintext: '{"name":"openai"}',
    nonce: fill(12, 0x20),
  },
  { description: 'empty plaintext (tag only)', kind: 6, itemId: 'c', epoch: 0, version: 0, plaintext: '', nonce: fill(12, 0x30) },
  {
    description: 'maximum u32 epoch and version, non-ASCII item id',
    kind: 4,
    itemId: 'clé-ü',
    epoch: 0xffffffff,
    version: 0xffffffff,
    plaintext: 'x'.repeat(100),
    nonce: fill(12, 0x31),
  },
].map((c) => ({
  ...c,
  nonce: hex(c.nonce),
  plaintext: hex(utf8ToBytes(c.plaintext)),
  ...seal(key, c.nonce, c.kind, vaultId, c.itemId, c.epoch, c.version, utf8ToBytes(c.plaintext)),
}));

writeFileSync(
  `${here}record-v1.json`,
  `${JSON.stringify(
    {
      source: 'test/vectors/generate.ts: @noble/ciphers AES-256-GCM over the layout in docs/record-format.md, independent of src/',
      vaultId,
      key: hex(key),
      records,
    },
    null,
    2,
  )}\n`,
);

// --- vault-v1.json: passphrase -> KEK -> root -> purpose keys -> one secret -------------------
const passphrase = 'correct horse battery staple (FAKE)';
const root = fill(32, 0xa0);
const dataKey = fill(32, 0xc0);
const secretId = '1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0';
const meta = {
  name: 'openai-fake',
  rule: { hosts: ['api.openai.com'], pathPrefixes: [], methods: [], header: 'Authorization', template: 'Bearer {value}' },
  notes: '',
  createdAt: 1700000000000,
  updatedAt: 1700000000000,
};
const value = 'sk-FAKE-0000-not-a-real-key';
const items = hkdf(sha256, root, hexToBytes(vaultId.replaceAll('-', '')), utf8ToBytes('keyhole/v1/items'), 32);

function vaultCase(kdf: string, kek: Uint8Array, nonceStart: number) {
  const rootItem = `root:${kdf}`;
  return {
    kdf,
    kek: hex(kek),
    header: {
      format: 1,
      vaultId,
      createdAt: 1700000000000,
      kdf,
      rootVersion: 1,
      epoch: 1,
      wrappedRoot: seal(kek, fill(12, nonceStart), 1, vaultId, rootItem, 1, 1, root).record,
    },
  };
}

const salt = fill(16, 0x01);
const saltB64 = Buffer.from(salt).toString('base64');
const pbkdf2Kdf = `pbkdf2-sha256$i=600000$${saltB64}`;
const argonKdf = `argon2id$v=19$m=65536,t=3,p=4$${saltB64}`;
const pw = utf8ToBytes(passphrase.normalize('NFC'));
const vaults = [
  vaultCase(pbkdf2Kdf, pbkdf2(sha256, pw, salt, { c: 600_000, dkLen: 32 }), 0x50),
  vaultCase(argonKdf, argon2id(pw, salt, { t: 3, m: 65536, p: 4, dkLen: 32 }), 0x60),
];

const place = { id: secretId, epoch: 1, version: 1 };
const secret = {
  ...place,
  meta: seal(items, fill(12, 0x70), 3, vaultId, secretId, 1, 1, utf8ToBytes(JSON.stringify(meta))).record,
  key: seal(items, fill(12, 0x71), 4, vaultId, secretId, 1, 1, dataKey).record,
  value: seal(dataKey, fill(12, 0x72), 5, vaultId, secretId, 1, 1, utf8ToBytes(value)).record,
};

writeFileSync(
  `${here}vault-v1.json`,
  `${JSON.stringify(
    {
      source: 'test/vectors/generate.ts: @noble/hashes (PBKDF2, Argon2id, HKDF) and @noble/ciphers (AES-GCM), independent of src/',
      passphrase,
      root: hex(root),
      itemsKey: hex(items),
      vaults,
      secret: { stored: secret, meta, value },
    },
    null,
    2,
  )}\n`,
);
console.log('wrote record-v1.json and vault-v1.json');
