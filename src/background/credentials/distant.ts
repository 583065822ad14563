/**
 * The `distant` kind's token request (issue 15): a credential from an engine of the synced vault's
 * distant vault, asked for with this device's own login. The sync layer's refusals become the
 * credential errors the refresher and the page know.
 */
import { CredentialError } from '../../core/credentials/errors.ts';
import { RpcError } from '../errors.ts';
import { SyncError } from '../sync/vault-client.ts';

export async function distantToken<T>(ask: () => Promise<T>): Promise<T> {
  try {
    return await ask();
  } catch (e) {
    if (e instanceof SyncError) {
      if (e.code === 'refused' || e.code === 'not-found')
        throw new CredentialError('distant-refused', e.status ? { status: e.status } : {});
      if (e.code === 'network') throw new CredentialError('network');
      throw new CredentialError('http-status', e.status ? { status: e.status } : {});
    }
    if (e instanceof RpcError && e.code === 'not-found') throw new CredentialError('not-synced');
    throw e;
  }
}

/**
 * A distant credential as the person reads it on reveal: a PostgreSQL URL for a database login,
 * else the token or key; and until when its lease lasts.
 */
export function describeLogin(answer: Record<string, unknown>): string {
  const c = (answer.credential ?? {}) as Record<string, unknown>;
  const until = typeof answer.expiresAt === 'number' ? ` (until ${new Date(answer.expiresAt).toISOString()})` : '';
  if (typeof c.username === 'string' && typeof c.password === 'string') {
    const where = `${String(c.host)}:${String(c.port)}/${encodeURIComponent(String(c.database))}`;
    return `postgresql://${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@${where}${until}`;
  }
  if (typeof answer.token === 'string') return `${answer.token}${until}`;
  if (typeof c.apiKey === 'string') return `${c.apiKey}${until}`;
  throw new RpcError('sync-failed', 'the distant vault answered with no credential');
}
