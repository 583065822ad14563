/**
 * Import into the vault from a `.env` file, a Bitwarden unencrypted JSON export or a 1Password CSV
 * export (core/vault/import.ts). The file is read here and planned here; the preview says what
 * will be created (name, guessed preset, from what) and what is skipped and why, and shows no value.
 * The worker creates the chosen secrets all at once, reporting progress (background/vault/import-port.ts).
 */
import { PRESETS } from '../core/agents/policy.ts';
import { BACKUP_FORMAT, IMPORT_PORT, type ImportMessage, type ImportReply, type SecretInput } from '../core/api.ts';
import { CoreError } from '../core/errors.ts';
import { type ImportPlan, MAX_IMPORT_BYTES, planImport } from '../core/vault/import.ts';
import { field, h, message } from '../ui/dom.ts';
import { call, RpcCallError } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';
import { redraw } from './page.ts';

const FORMAT_LABELS: Record<ImportPlan['format'], string> = {
  dotenv: '.env file',
  'bitwarden-json': 'Bitwarden JSON export',
  '1password-csv': '1Password CSV export',
};
const GUESSED_FROM = { value: 'the key’s shape', name: 'its name', url: 'its site' } as const;
const presetLabel = (id: string) => PRESETS.find((p) => p.id === id)?.label ?? id;

/** The import form: a file, then its preview in `slot`. */
export function importForm(slot: HTMLElement): Node {
  const file = h('input', { type: 'file', id: 'import-file', accept: '.env,.json,.csv,.txt,text/plain,application/json,text/csv' });
  const errors = h('div', { id: 'import-errors' });
  file.addEventListener('change', () => {
    const f = file.files?.[0];
    errors.replaceChildren();
    slot.replaceChildren();
    if (!f) return;
    void preview(f).then(
      (plan) => slot.replaceChildren(plan.format === 'keyhole-backup' ? restoreView(plan.text, slot) : planView(plan, slot)),
      (e: unknown) => errors.replaceChildren(message('error', `Nothing was imported: ${reason(e)}`)),
    );
  });
  return h(
    'form',
    { id: 'import-form', 'aria-labelledby': 'import-h' },
    h('h3', { id: 'import-h' }, 'Import'),
    field(
      'A .env file, a Bitwarden JSON export, a 1Password CSV export or a Keyhole backup',
      file,
      'Read in this page; values go only into the vault.',
    ),
    errors,
  );
}

const reason = (e: unknown) => (e instanceof CoreError ? `${e.message}.` : describeError(e));

async function preview(f: File): Promise<ImportPlan | { format: 'keyhole-backup'; text: string }> {
  // refused before reading a byte of it: a 50 MB file is not an export of keys
  if (f.size > MAX_IMPORT_BYTES) throw new CoreError('bad-input', `the file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB`);
  const [bytes, { secrets }] = await Promise.all([f.arrayBuffer(), call('secrets.list')]);
  const text = backupText(new Uint8Array(bytes));
  if (text !== null) return { format: 'keyhole-backup', text };
  return planImport(f.name, new Uint8Array(bytes), new Set(secrets.map((s) => s.name)));
}

/** The text of a Keyhole backup file (core/vault/backup.ts), or null for any other file. */
function backupText(bytes: Uint8Array): string | null {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return (JSON.parse(text) as { format?: unknown })?.format === BACKUP_FORMAT ? text : null;
  } catch {
    return null;
  }
}

/** A backup asks for its passphrase; its secrets are opened and created by the worker, all or none. */
function restoreView(text: string, slot: HTMLElement): Node {
  const pass = h('input', { type: 'password', id: 'restore-passphrase', autocomplete: 'off', required: true });
  const status = h('div', { id: 'import-status', role: 'status' });
  const form = h(
    'form',
    { id: 'restore-form' },
    h('p', {}, 'A Keyhole backup. Its secrets are added to this vault, all of them or, if any name is taken here, none.'),
    field('Backup passphrase', pass),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'restore-go' }, 'Restore')),
    status,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const passphrase = pass.value;
    pass.value = '';
    const bar = h('progress', { id: 'import-progress' });
    status.replaceChildren(bar);
    send({ backup: text, passphrase }, (n, total) => {
      bar.max = total;
      bar.value = n;
    }).then(
      async (n) => {
        slot.replaceChildren();
        await redraw();
        document.getElementById('import-errors')?.replaceChildren(message('info', `Restored ${n} secret${n === 1 ? '' : 's'}.`));
      },
      (e: unknown) => status.replaceChildren(message('error', `Nothing was restored: ${describeError(e)}`)),
    );
  });
  return form;
}

function planView(plan: ImportPlan, slot: HTMLElement): Node {
  const status = h('div', { id: 'import-status', role: 'status' });
  const go = h(
    'button',
    { type: 'button', class: 'primary', id: 'import-go', disabled: plan.create.length === 0 },
    `Import ${plan.create.length}`,
  );
  const cancel = h('button', { type: 'button', id: 'import-cancel' }, 'Cancel');
  cancel.addEventListener('click', () => slot.replaceChildren());
  go.addEventListener('click', () => {
    go.disabled = true;
    cancel.disabled = true;
    const items: SecretInput[] = plan.create.map((c) => ({
      name: c.name,
      value: c.value,
      rule: c.rule,
      notes: `Imported from a ${FORMAT_LABELS[plan.format]} (${c.source}).`,
    }));
    const bar = h('progress', { id: 'import-progress', max: String(items.length), value: '0' });
    status.replaceChildren(bar);
    send({ items }, (n) => bar.setAttribute('value', String(n))).then(
      async (n) => {
        slot.replaceChildren(); // done: the preview goes (the slot outlives redraws)
        await redraw(); // the list with them in it; the section is drawn anew, so say it there
        document.getElementById('import-errors')?.replaceChildren(message('info', `Imported ${n} secret${n === 1 ? '' : 's'}.`));
      },
      (e: unknown) => {
        status.replaceChildren(message('error', `Nothing was imported: ${describeError(e)}`));
        cancel.disabled = false;
      },
    );
  });
  const created = plan.create.map((c) =>
    h(
      'tr',
      { 'data-import': c.name },
      h('td', {}, c.name),
      h('td', {}, presetLabel(c.preset)),
      h('td', {}, GUESSED_FROM[c.guessedFrom]),
      h('td', {}, c.source),
    ),
  );
  const skipped = plan.skip.map((s) =>
    h('tr', { 'data-skip': s.source }, h('td', {}, s.source), h('td', {}, s.name ?? ''), h('td', {}, s.reason)),
  );
  return h(
    'div',
    { id: 'import-preview' },
    h('p', {}, `A ${FORMAT_LABELS[plan.format]}: ${plan.create.length} to create, ${plan.skip.length} skipped. Values are not shown.`),
    plan.create.length
      ? h(
          'table',
          { id: 'import-create' },
          h('caption', {}, 'Will be created'),
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Preset'), h('th', {}, 'Guessed from'), h('th', {}, 'In the file'))),
          h('tbody', {}, ...created),
        )
      : null,
    plan.skip.length
      ? h(
          'table',
          { id: 'import-skip' },
          h('caption', {}, 'Skipped'),
          h('thead', {}, h('tr', {}, h('th', {}, 'In the file'), h('th', {}, 'Name'), h('th', {}, 'Why'))),
          h('tbody', {}, ...skipped),
        )
      : null,
    h('div', { class: 'row' }, go, cancel),
    status,
  );
}

/** Secrets or a backup to the worker on the import port: resolves with how many were created. */
function send(what: ImportMessage, sealed: (n: number, total: number) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const port = chrome.runtime.connect({ name: IMPORT_PORT });
    port.onMessage.addListener((m: ImportReply) => {
      if ('sealed' in m) return sealed(m.sealed, m.total);
      port.disconnect();
      if ('done' in m) resolve(m.done);
      else reject(new RpcCallError(m.error));
    });
    port.onDisconnect.addListener(() => reject(new RpcCallError({ code: 'internal', message: 'the extension went away' })));
    port.postMessage(what);
  });
}
