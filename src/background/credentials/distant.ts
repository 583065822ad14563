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
