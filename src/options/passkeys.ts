/**
 * The options page's passkeys: the ones that unlock this vault, adding one (the passphrase is asked
 * again: it opens the root the passkey's key seals), and removing one. Hidden where the browser
 * cannot use a passkey's PRF from an extension page (ui/passkey.ts).
 */
import type { PasskeyView } from '../core/api.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { createPasskey, passkeyErrorText, passkeysSupported } from '../ui/passkey.ts';
import { call } from '../ui/rpc.ts';

export function passkeysForm(): Node {
  const slot = h('div', { id: 'passkeys' });
  void passkeysSupported().then(async (ok) => {
    if (!ok) return; // hidden, not broken
    const { passkeys } = await call('passkeys.list');
    slot.replaceChildren(...form(passkeys, slot));
  });
  return slot;
}

function form(passkeys: readonly PasskeyView[], slot: HTMLElement): Node[] {
  const redraw = (list: readonly PasskeyView[]) => slot.replaceChildren(...form(list, slot));
  const errors = h('div', { id: 'passkey-errors' });
  const fail = (e: unknown) => errors.replaceChildren(message('error', passkeyErrorText(e)));
  const rows = passkeys.map((p) => {
    const remove = h('button', { type: 'button', 'aria-label': `Remove passkey ${p.name}` }, 'Remove');
    remove.addEventListener('click', () => {
      if (!confirm(`Remove the passkey “${p.name}”? It will no longer unlock this vault.`)) return;
      call('passkeys.remove', { id: p.id }).then((r) => redraw(r.passkeys), fail);
    });
    return h('tr', { 'data-passkey': p.name }, h('td', {}, p.name), h('td', {}, formatTime(p.createdAt)), h('td', {}, remove));
  });
  const name = h('input', { id: 'passkey-name', required: true, maxlength: 64, value: 'Passkey' });
  const pass = h('input', { id: 'passkey-passphrase', type: 'password', autocomplete: 'current-password', required: true });
  const add = h(
    'form',
    { id: 'add-passkey' },
    h(
      'div',
      { class: 'grid' },
      field('Passkey name', name),
      field('Passphrase', pass, 'Asked again: it opens the key the passkey will also open.'),
    ),
    errors,
    h('button', { type: 'submit' }, 'Add a passkey'),
  );
  add.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const [label, passphrase] = [name.value, pass.value];
    pass.value = '';
    errors.replaceChildren();
    createPasskey(label)
      .then((p) => call('passkeys.add', { passphrase, name: label, ...p }))
      .then((r) => redraw(r.passkeys), fail);
  });
  return [
    h('h3', { id: 'passkeys-h' }, 'Passkeys'),
    h(
      'p',
      {},
      'A passkey unlocks the vault without the passphrase. The passphrase still unlocks it, and is the way back if a passkey is lost.',
    ),
    passkeys.length > 0
      ? h(
          'table',
          { 'aria-labelledby': 'passkeys-h' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Added'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
          h('tbody', {}, ...rows),
        )
      : h('p', { id: 'no-passkeys' }, 'No passkey unlocks this vault yet.'),
    add,
  ];
}
