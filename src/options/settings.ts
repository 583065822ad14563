/**
 * The options page's settings: auto-lock, clipboard clearing, the per-grant request rate, the
 * passphrase change, and the passkeys that unlock the vault.
 */
import type { Settings } from '../core/api.ts';
import { FIREFOX } from '../ui/compat.ts';
import { field, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { guarded } from './page.ts';
import { passkeysForm } from './passkeys.ts';

/** The settings section: its forms. */
export function settingsSection(s: Settings): Node[] {
  return [
    h(
      'section',
      { 'aria-labelledby': 'section-h', id: 'settings' },
      h('h2', { id: 'section-h', tabindex: -1 }, 'Settings'),
      settingsForm(s),
      passphraseForm(),
      passkeysForm(),
      backupForm(),
    ),
  ];
}

function settingsForm(s: Settings): Node {
  const minutes = h('input', { id: 'autolock-minutes', type: 'number', min: 1, max: 1440, value: s.autoLockMinutes, required: true });
  const sys = h('input', {
    id: 'lock-system',
    type: 'checkbox',
    checked: s.lockOnSystemLock && !FIREFOX,
    disabled: FIREFOX,
    'aria-describedby': FIREFOX ? 'lock-system-hint' : undefined,
  });
  const win = h('input', { id: 'lock-windows', type: 'checkbox', checked: s.lockOnLastWindowClosed });
  const clip = h('input', { id: 'clipboard-seconds', type: 'number', min: 5, max: 300, value: s.clipboardClearSeconds, required: true });
  const rate = h('input', { id: 'requests-per-minute', type: 'number', min: 1, max: 100000, value: s.requestsPerMinute, required: true });
  const errors = h('div', {});
  const form = h(
    'form',
    { id: 'settings-form', 'aria-labelledby': 'settings-h' },
    h('h3', { id: 'settings-h' }, 'Auto-lock'),
    h('div', { class: 'grid' }, field('Lock after minutes without input', minutes), field('Clear copied values after seconds', clip)),
    field('Requests per minute for each grant', rate, 'Above this, brokered calls are refused and transparent access pauses for a minute.'),
    h('label', { class: 'check', for: sys.id }, sys, 'Lock when the computer locks'),
    // Firefox's idle API has no "locked" state: say so rather than offer a switch that does nothing
    FIREFOX
      ? h(
          'small',
          { class: 'hint', id: 'lock-system-hint' },
          'Firefox does not tell add-ons when the computer locks: only the idle time above applies.',
        )
      : null,
    h('label', { class: 'check', for: win.id }, win, 'Lock when the last browser window closes'),
    errors,
    h('button', { type: 'submit', id: 'save-settings' }, 'Save settings'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void guarded(errors, async () => {
      await call('settings.set', {
        autoLockMinutes: Number(minutes.value),
        clipboardClearSeconds: Number(clip.value),
        requestsPerMinute: Number(rate.value),
        lockOnSystemLock: sys.checked,
        lockOnLastWindowClosed: win.checked,
      });
      errors.replaceChildren(message('info', 'Settings saved.'));
    });
  });
  return form;
}

function passphraseForm(): Node {
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const errors = h('div', {});
  const form = h(
    'form',
    { id: 'passphrase-form', 'aria-labelledby': 'pass-h' },
    h('h3', { id: 'pass-h' }, 'Change passphrase'),
    h('div', { class: 'grid' }, field('Current passphrase', current), field('New passphrase', next), field('Repeat new passphrase', again)),
    errors,
    h('button', { type: 'submit' }, 'Change passphrase'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (next.value !== again.value) return errors.replaceChildren(message('error', 'The new passphrases do not match.'));
    const [c, n] = [current.value, next.value];
    for (const i of [current, next, again]) i.value = '';
    void guarded(errors, async () => {
      await call('vault.changePassphrase', { current: c, next: n });
      errors.replaceChildren(message('info', 'Passphrase changed.'));
    });
  });
  return form;
}

/**
 * An encrypted backup file, downloaded: the vault's passphrase again, and a passphrase for the
 * backup alone (kept nowhere: without it the file opens for no one). Restored from the secrets
 * section's import.
 */
function backupForm(): Node {
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, id: 'backup-passphrase' });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const errors = h('div', { id: 'backup-status' });
  const form = h(
    'form',
    { id: 'backup-form', 'aria-labelledby': 'backup-h' },
    h('h3', { id: 'backup-h' }, 'Encrypted backup'),
    h('p', {}, 'A file with every secret, encrypted under a passphrase you choose for it. Restore it with Import in the secrets section.'),
    h(
      'div',
      { class: 'grid' },
      field('Vault passphrase', current),
      field('Backup passphrase', next, 'At least 12 characters. Without it the backup cannot be opened.'),
      field('Repeat backup passphrase', again),
    ),
    errors,
    h('button', { type: 'submit', id: 'backup-go' }, 'Download a backup'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (next.value !== again.value) return errors.replaceChildren(message('error', 'The backup passphrases do not match.'));
    const [passphrase, backupPassphrase] = [current.value, next.value];
    for (const i of [current, next, again]) i.value = '';
    void guarded(errors, async () => {
      const { text, count, left } = await call('backup.export', { passphrase, backupPassphrase });
      const a = h('a', {
        href: URL.createObjectURL(new Blob([text], { type: 'application/json' })),
        download: `keyhole-backup-${new Date().toISOString().slice(0, 10)}.json`,
      });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      const out = left > 0 ? ` ${left} expired or damaged secret${left === 1 ? ' was' : 's were'} left out.` : '';
      errors.replaceChildren(message('info', `Backed up ${count} secret${count === 1 ? '' : 's'}.${out}`));
    });
  });
  return form;
}
