/**
 * `npm run server`: the distant vault. SQLite under --data-dir by default; PostgreSQL when
 * --database-url (or KEYHOLE_DATABASE_URL) is given. Stops gracefully on SIGTERM / SIGINT.
 *
 * The key provider (engines' keys): `--kms file` (default: `--key-file`, by default
 * <data-dir>/keys.json, created at first start with mode 0600) or `--kms pkcs11`
 * (`--pkcs11-library`, `--pkcs11-token` label, `--pkcs11-sessions` signing at once, the PIN in
 * KEYHOLE_PKCS11_PIN). A key provider that cannot be opened stops the server at start, saying
 * why. `npm run server -- kms init | rotate | status` manages it and exits.
 */
import { parseArgs } from 'node:util';
import { createVaultServer, jsonLog, type Limits } from './app.ts';
import { kmsCommand, openKeyProvider } from './kms/commands.ts';
import { openPostgres } from './postgres.ts';
import { openSqlite } from './sqlite.ts';
import type { Store } from './store.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: process.env.KEYHOLE_PORT ?? '8787' },
    host: { type: 'string', default: process.env.KEYHOLE_HOST ?? '127.0.0.1' },
    'data-dir': { type: 'string', default: process.env.KEYHOLE_DATA_DIR ?? './keyhole-data' },
    'database-url': { type: 'string', default: process.env.KEYHOLE_DATABASE_URL },
    origin: { type: 'string', default: process.env.KEYHOLE_ORIGIN },
    'requests-per-minute': { type: 'string', default: process.env.KEYHOLE_REQUESTS_PER_MINUTE },
    'logins-per-minute': { type: 'string', default: process.env.KEYHOLE_LOGINS_PER_MINUTE },
    kms: { type: 'string', default: process.env.KEYHOLE_KMS ?? 'file' },
    'sweep-interval-ms': { type: 'string', default: process.env.KEYHOLE_SWEEP_INTERVAL_MS },
    'lease-claim-ms': { type: 'string', default: process.env.KEYHOLE_LEASE_CLAIM_MS },
    'max-leases-per-vault': { type: 'string', default: process.env.KEYHOLE_MAX_LEASES_PER_VAULT },
    'key-file': { type: 'string', default: process.env.KEYHOLE_KEY_FILE },
    'pkcs11-library': { type: 'string', default: process.env.KEYHOLE_PKCS11_LIBRARY },
    'pkcs11-token': { type: 'string', default: process.env.KEYHOLE_PKCS11_TOKEN },
    'pkcs11-sessions': { type: 'string', default: process.env.KEYHOLE_PKCS11_SESSIONS },
  },
});
const kmsOptions = {
  kms: values.kms,
  dataDir: values['data-dir'],
  ...(values['key-file'] ? { keyFile: values['key-file'] } : {}),
  ...(values['pkcs11-library'] ? { pkcs11Library: values['pkcs11-library'] } : {}),
  ...(values['pkcs11-token'] ? { pkcs11Token: values['pkcs11-token'] } : {}),
  ...(values['pkcs11-sessions'] ? { pkcs11Sessions: Number(values['pkcs11-sessions']) } : {}),
  ...(process.env.KEYHOLE_PKCS11_PIN !== undefined ? { pkcs11Pin: process.env.KEYHOLE_PKCS11_PIN } : {}),
};
/** A key provider that does not open stops the server with its reason (never a PIN or a key). */
function openKms(create: boolean) {
  try {
    return openKeyProvider(kmsOptions, create);
  } catch (e) {
    jsonLog({ level: 'error', msg: 'key provider', error: e instanceof Error ? e.message : 'unknown' });
    process.exit(2);
  }
}

const port = Number(values.port);
const url = values['database-url'];
const store: Store = url
  ? await openPostgres(url, { onError: (e) => jsonLog({ level: 'error', msg: 'postgres', error: e.message }) })
  : openSqlite(values['data-dir']);

if (positionals[0] === 'kms') {
  const kms = openKms(positionals[1] === 'init');
  try {
    process.stdout.write(`${JSON.stringify(await kmsCommand(positionals[1], kms, store), null, 2)}\n`);
  } catch (e) {
    jsonLog({ level: 'error', msg: 'kms', error: e instanceof Error ? e.message : 'unknown' });
    process.exitCode = 2;
  } finally {
    await kms.close();
    await store.close();
  }
  process.exit();
}
const kms = openKms(true);
try {
  await kms.init();
} catch (e) {
  jsonLog({ level: 'error', msg: 'key provider', error: e instanceof Error ? e.message : 'unknown' });
  process.exit(2);
}
jsonLog({ level: 'info', msg: 'key provider', kind: kms.kind, engineFingerprint: (await kms.status()).engineFingerprint });
const origin = values.origin ?? `http://${values.host}:${port}`;
const rpm = values['requests-per-minute'];
const lpm = values['logins-per-minute'];
const limits: Partial<Limits> = { ...(rpm ? { requestsPerMinute: Number(rpm) } : {}), ...(lpm ? { loginsPerMinute: Number(lpm) } : {}) };
const vault = createVaultServer({
  store,
  origin,
  limits,
  kms,
  ...(values['sweep-interval-ms'] ? { sweepIntervalMs: Number(values['sweep-interval-ms']) } : {}),
  ...(values['lease-claim-ms'] ? { leaseClaimMs: Number(values['lease-claim-ms']) } : {}),
  ...(values['max-leases-per-vault'] ? { maxLeasesPerVault: Number(values['max-leases-per-vault']) } : {}),
});
const bound = await vault.listen(port, values.host);
jsonLog({ level: 'info', msg: 'listening', engine: store.engine, origin, port: bound });

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void vault
      .close()
      .then(() => kms.close())
      .then(() => process.exit(0));
  });
}
