/**
 * An import from the options page (core/vault/import.ts made the plan there), or a backup to
 * restore, on a port of its own: the page sends the chosen secrets (or the backup) in one message, the worker answers with progress while it
 * seals them and then once with the outcome. All or none: VaultService.importSecrets writes them
 * in one transaction, and a page that goes away first leaves nothing written.
 */
import type { ImportMessage, ImportReply, SecretInput } from '../../core/api.ts';
import { MAX_IMPORT_ITEMS } from '../../core/vault/import.ts';
import { RpcError, toErrorBody } from '../errors.ts';
import { restoreBackup } from './backup.ts';
import type { VaultService } from './vault-service.ts';

export function serveImport(port: chrome.runtime.Port, vault: VaultService, imported: () => void): void {
  const post = (m: ImportReply) => {
    try {
      port.postMessage(m);
    } catch {
      // the page went away: what it would have heard no longer matters
    }
  };
  const finish = (work: Promise<number>) =>
    work.then(
      (n) => {
        imported();
        post({ done: n });
      },
      (e: unknown) => post({ error: toErrorBody(e) }),
    );
  port.onMessage.addListener((m: ImportMessage) => {
    if (m && 'backup' in m && typeof m.backup === 'string' && typeof m.passphrase === 'string') {
      return void finish(restoreBackup(vault, m.backup, m.passphrase, (sealed, total) => post({ sealed, total })));
    }
    const items = m && 'items' in m && Array.isArray(m.items) ? (m.items as SecretInput[]) : null;
    if (items === null || items.length === 0 || items.length > MAX_IMPORT_ITEMS) {
      post({ error: toErrorBody(new RpcError('bad-input', `an import is 1 to ${MAX_IMPORT_ITEMS} secrets`)) });
      return;
    }
    void finish(vault.importSecrets(items, (sealed) => post({ sealed, total: items.length })).then((made) => made.length));
  });
}
