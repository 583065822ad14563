/**
 * `npm run server`: the distant vault. SQLite under --data-dir by default; PostgreSQL when
 * --database-url (or KEYHOLE_DATABASE_URL) is given. Stops gracefully on SIGTERM / SIGINT.
 */
import { parseArgs } from 'node:util';
import { createVaultServer, jsonLog, type Limits } from './app.ts';
import { openPostgres } from './postgres.ts';
import { openSqlite } from './sqlite.ts';
import type { Store } from './store.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.KEYHOLE_PORT ?? '8787' },
    host: { type: 'string', default: process.env.KEYHOLE_HOST ?? '127.0.0.1' },
    'data-dir': { type: 'string', default: process.env.KEYHOLE_DATA_DIR ?? './keyhole-data' },
    'database-url': { type: 'string', default: process.env.KEYHOLE_DATABASE_URL },
    origin: { type: 'string', default: process.env.KEYHOLE_ORIGIN },
    'requests-per-minute': { type: 'string', default: process.env.KEYHOLE_REQUESTS_PER_MINUTE },
    'logins-per-minute': { type: 'string', default: process.env.KEYHOLE_LOGINS_PER_MINUTE },
  },
});

const port = Number(values.port);
const url = values['database-url'];
const store: Store = url
  ? await openPostgres(url, { onError: (e) => jsonLog({ level: 'error', msg: 'postgres', error: e.message }) })
  : openSqlite(values['data-dir']);
const origin = values.origin ?? `http://${values.host}:${port}`;
const rpm = values['requests-per-minute'];
const lpm = values['logins-per-minute'];
const limits: Partial<Limits> = { ...(rpm ? { requestsPerMinute: Number(rpm) } : {}), ...(lpm ? { loginsPerMinute: Number(lpm) } : {}) };
const vault = createVaultServer({ store, origin, limits });
const bound = await vault.listen(port, values.host);
jsonLog({ level: 'info', msg: 'listening', engine: store.engine, origin, port: bound });

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void vault.close().then(() => process.exit(0));
  });
}
