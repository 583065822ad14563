/**
 * The popup: create the vault, unlock, lock, show state. A thin client of the worker's RPC;
 * it never holds a key, and passphrase fields are cleared as soon as they are sent.
 */
import type { Status } from '../core/api.ts';
import { MIN_PASSPHRASE_LENGTH } from '../core/api.ts';
import { field, h, message, replace } from '../ui/dom.ts';
import { passkeyUnlock } from '../ui/passkey.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

const app = document.getElementById('app') as HTMLElement;

function title(state: Status['state']) {
  const label = { uninitialized: 'new', locked: 'locked', unlocked: 'unlocked' }[state];
  return h('h1', {}, 'Keyhole', h('span', { class: `badge ${state}`, id: 'state' }, label));
}

function passphraseInput(autocomplete: string): HTMLInputElement {
  return h('input', { type: 'password', autocomplete, required: true, spellcheck: 'false' });
}

/** Sends a form, shows its error, re-enables it. */
async function submit(form: HTMLFormElement, errorSlot: HTMLElement, work: () => Promise<void>) {
  const buttons = [...form.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  errorSlot.replaceChildren();
  try {
    await work();
  } catch (e) {
    errorSlot.replaceChildren(message('error', describeError(e)));
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function createView(): Node[] {
  const pass = passphraseInput('new-password');
  const confirm = passphraseInput('new-password');
  const kdf = h(
    'select',
    { id: 'kdf' },
    h('option', { value: 'argon2id' }, 'Argon2id (recommended)'),
    h('option', { value: 'pbkdf2-sha256' }, 'PBKDF2-SHA-256 (600,000 iterations)'),
  );
  const errors = h('div', { id: 'errors' });
  const form = h(
    'form',
    { id: 'create-form' },
    field('Passphrase', pass, `At least ${MIN_PASSPHRASE_LENGTH} characters. A few random words work well.`),
    field('Confirm passphrase', confirm),
    field('Key derivation', kdf),
    errors,
    h('button', { type: 'submit', class: 'primary' }, 'Create vault'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (pass.value !== confirm.value) {
      errors.replaceChildren(message('error', 'The two passphrases do not match.'));
      return;
    }
    void submit(form, errors, async () => {
      const p = pass.value;
      pass.value = '';
      confirm.value = '';
      render(await call('vault.create', { passphrase: p, kdf: kdf.value as 'argon2id' | 'pbkdf2-sha256' }));
    });
  });
  return [
    title('uninitialized'),
    h('p', {}, 'Create a vault for your API keys. Agents will use them without ever seeing them.'),
    h('p', { class: 'msg info' }, 'Keyhole cannot recover a forgotten passphrase. Without it, the vault cannot be opened.'),
    form,
  ];
}

function unlockView(status: Status): Node[] {
  const pass = passphraseInput('current-password');
  const errors = h('div', { id: 'errors' });
  if (status.retryAfterMs)
    errors.append(message('info', `Too many wrong passphrases. Try again in ${Math.ceil(status.retryAfterMs / 1000)} s.`));
  const form = h(
    'form',
    { id: 'unlock-form' },
    field('Passphrase', pass),
    errors,
    h('button', { type: 'submit', class: 'primary', id: 'unlock' }, 'Unlock'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void submit(form, errors, async () => {
      const p = pass.value;
      pass.value = '';
      render(await call('vault.unlock', { passphrase: p }));
    }).then(() => pass.focus());
  });
  queueMicrotask(() => pass.focus());
  return [title('locked'), form, passkeyUnlock(errors, render)];
}

function unlockedView(): Node[] {
  const errors = h('div', { id: 'errors' });
  const lock = h('button', { type: 'button', class: 'primary', id: 'lock' }, 'Lock');
  lock.addEventListener('click', () => {
    void call('vault.lock')
      .then(render)
      .catch((e) => errors.replaceChildren(message('error', describeError(e))));
  });
  const manage = h('button', { type: 'button', id: 'manage' }, 'Manage secrets');
  manage.addEventListener('click', () => void chrome.runtime.openOptionsPage());
  return [title('unlocked'), h('p', {}, 'The vault is unlocked.'), errors, h('div', { class: 'row' }, lock, manage)];
}

function render(status: Status) {
  app.dataset.state = status.state;
  const view = status.state === 'uninitialized' ? createView() : status.state === 'locked' ? unlockView(status) : unlockedView();
  replace(app, ...view);
}

call('status')
  .then(render)
  .catch((e) => replace(app, message('error', describeError(e))));
