/**
 * The options page's sync section: start syncing or join a vault, the pairing code, add and
 * remove member devices, the head fingerprint to compare, progress, conflicts to resolve,
 * warnings about a lying server, and the values to rotate after a removal. Live: the worker
 * pushes the status over a port while this page is open.
 */

import { isLoopbackHost } from '../core/agents/policy.ts';
import type { LeaseView, SyncStatus } from '../core/api.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';
import { teamAdmin } from './team-admin.ts';

const SYNC_PORT = 'keyhole-sync';
let port: chrome.runtime.Port | undefined;
let render: ((s: SyncStatus) => void) | undefined;
let seenSeq: number | undefined;
/** the recovery key from `sync.enable`: shown until the person says it is written down, kept nowhere */
let recoveryKey: string | undefined;

let onLogChanged: () => void = () => {};

/**
 * Follows the worker's sync status over a port while this page is open (once per page), drawing
 * the sync section when it is shown; `changed` runs when the accepted head moves (secrets may
 * have changed underneath), whichever section is shown.
 */
export function watchSync(changed: () => void): void {
  onLogChanged = changed;
  if (port) return;
  port = chrome.runtime.connect({ name: SYNC_PORT });
  port.onMessage.addListener((s: SyncStatus) => {
    render?.(s);
    if (s.progress !== undefined) return;
    const seq = s.head?.seq ?? 0; // 0: not syncing yet, or waiting to be added
    const moved = seenSeq !== undefined && seq !== seenSeq;
    seenSeq = seq;
    if (moved) onLogChanged();
  });
}

export function syncSection(): Node {
  // what follows the status is drawn anew on each change; the team's roles and engines are not
  const live = h('div', { id: 'sync-live' });
  const section = h(
    'section',
    { 'aria-labelledby': 'section-h', id: 'sync' },
    h('h2', { id: 'section-h', tabindex: -1 }, 'Sync and team'),
    live,
  );
  // made once and never taken out of the page: reading the team runs a sync, which changes the
  // status, and an admin's form must not be detached mid-click by the redraw that follows
  let admin: HTMLElement | undefined;
  const draw = (s: SyncStatus) => {
    section.dataset.syncState = s.enabled ? (s.joining ? 'joining' : 'enabled') : 'off';
    live.replaceChildren(...view(s, draw));
    if (s.vault && !admin) {
      admin = teamAdmin();
      section.append(admin);
    }
    if (admin) admin.hidden = !s.vault; // this device left the vault: nothing of its team to show
  };
  render = draw;
  void call('sync.status').then(draw, (e) => section.append(message('error', describeError(e))));
  return section;
}

/** Host access for a server that is not on this machine, asked for by the person's click. */
async function allowServer(server: string): Promise<void> {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return; // the worker answers bad input with a typed error
  }
  if (isLoopbackHost(url.hostname)) return; // the manifest grants loopback hosts
  const ok = await chrome.permissions.request({ origins: [`${url.origin}/*`] });
  if (!ok) throw new Error('permission refused');
}

function act(errors: HTMLElement, draw: (s: SyncStatus) => void, work: () => Promise<SyncStatus | unknown>) {
  errors.replaceChildren();
  void work().then(
    async (r) => draw(r && typeof r === 'object' && 'enabled' in r ? (r as SyncStatus) : await call('sync.status')),
    (e) => errors.replaceChildren(message('error', describeError(e))),
  );
}

function view(s: SyncStatus, draw: (s: SyncStatus) => void): Node[] {
  if (!s.enabled) return setupForms(draw);
  const errors = h('div', { id: 'sync-errors' });
  const nodes: (Node | null)[] = [
    recoveryKey ? recoveryNotice(recoveryKey, s, draw) : null,
    h(
      'p',
      {},
      'Server ',
      h('code', { id: 'sync-server' }, s.server ?? ''),
      '. This device: ',
      h('strong', {}, s.device?.name ?? ''),
      ' ',
      h('code', { id: 'own-code' }, s.device?.pairingCode ?? ''),
    ),
  ];
  if (s.warning) {
    const dismiss = h('button', { type: 'button', id: 'dismiss-warning' }, 'I have read this');
    dismiss.addEventListener('click', () => act(errors, draw, () => call('sync.dismiss', { what: 'warning' })));
    nodes.push(
      h(
        'div',
        { role: 'alert', class: 'msg error', id: 'sync-warning', 'data-code': s.warning.code },
        h('strong', {}, 'The distant vault served something this device refuses. '),
        `${s.warning.message} (${s.warning.code}). Nothing it sent was applied; sync is stopped. `,
        'Compare the head fingerprint with your other devices, and check who runs the server.',
        dismiss,
      ),
    );
  }
  if (s.joining) {
    const check = h('button', { type: 'button', id: 'sync-now' }, 'Check now');
    check.addEventListener('click', () => act(errors, draw, () => call('sync.now')));
    nodes.push(
      h('p', {}, 'Waiting to be added. On a device that already syncs, open Keyhole’s settings, Sync, “Add a device”, and type:'),
      h('p', { class: 'pairing' }, h('code', { id: 'pairing-code' }, s.device?.pairingCode ?? '')),
      check,
      errors,
    );
    return nodes.filter((n): n is Node => n !== null);
  }
  const now = h('button', { type: 'button', id: 'sync-now' }, 'Sync now');
  now.addEventListener('click', () => act(errors, draw, () => call('sync.now')));
  nodes.push(
    h(
      'p',
      {},
      'Head ',
      h('code', { id: 'head-fingerprint' }, s.head?.fingerprint ?? '—'),
      ` · key epoch ${s.head?.epoch ?? 1} · last sync `,
      h('span', { id: 'last-sync' }, s.lastSyncAt ? formatTime(s.lastSyncAt) : 'never'),
      ' ',
      now,
    ),
    s.progress ? h('progress', { id: 'sync-progress', max: String(s.progress.head), value: String(s.progress.seq) }) : null,
    s.lastError
      ? h(
          'p',
          { class: 'msg error', id: 'sync-error', 'data-code': s.lastError.code },
          `Last attempt failed: ${s.lastError.message}.`,
          s.nextAttemptAt ? ` Retrying at ${formatTime(s.nextAttemptAt)}.` : '',
        )
      : null,
    conflicts(s, errors, draw),
    rotation(s, errors, draw),
    members(s, errors, draw),
    leaseList(errors),
    compareHead(errors, draw),
    addDevice(errors, draw),
    errors,
  );
  return nodes.filter((n): n is Node => n !== null);
}

/**
 * The distant vault's leases this device holds (an admin: the vault's): engine, role, until when,
 * and how a revocation is going; each can be ended now. Never a credential.
 */
function leaseList(errors: HTMLElement): Node {
  const box = h('div', { id: 'leases' }, h('h3', {}, 'Leases at the distant vault'));
  const draw = (leases: readonly LeaseView[]) => {
    const live = leases.filter((l) => l.state !== 'revoked');
    const rows = live.map((l) => {
      const end = h('button', { type: 'button', 'aria-label': `End lease ${l.id}` }, 'End now');
      end.addEventListener(
        'click',
        () =>
          void call('leases.revoke', { id: l.id }).then(
            (r) => draw(r.leases),
            (e: unknown) => errors.replaceChildren(describeError(e)),
          ),
      );
      return h(
        'tr',
        { 'data-lease': l.id, 'data-state': l.state },
        h('td', {}, h('code', {}, `${l.engine} / ${l.role}`)),
        h('td', {}, l.state, l.lastError ? h('div', { class: 'msg error' }, l.lastError) : null),
        h('td', { class: 'muted' }, formatTime(l.expires)),
        h('td', {}, l.state === 'active' ? end : null),
      );
    });
    box.replaceChildren(
      h('h3', {}, 'Leases at the distant vault'),
      rows.length === 0
        ? h('p', { class: 'muted' }, 'No live leases.')
        : h(
            'table',
            {},
            h('thead', {}, h('tr', {}, h('th', {}, 'Engine / role'), h('th', {}, 'State'), h('th', {}, 'Expires'), h('th', {}, ''))),
            h('tbody', {}, ...rows),
          ),
    );
  };
  void call('leases.list').then(
    (r) => draw(r.leases),
    () => box.append(h('p', { class: 'muted' }, 'Leases could not be listed now.')),
  );
  return box;
}

function conflicts(s: SyncStatus, errors: HTMLElement, draw: (s: SyncStatus) => void): Node | null {
  if (s.conflicts.length === 0) return null;
  return h(
    'div',
    { id: 'conflicts', class: 'msg info' },
    h('strong', {}, 'Edited on two devices at once. '),
    'Both versions are kept until you pick one:',
    ...s.conflicts.map((c) =>
      h(
        'ul',
        { 'data-conflict': c.item },
        ...c.versions.map((v) => {
          const keep = h('button', { type: 'button', 'aria-label': `Keep ${v.name} from ${v.author}` }, 'Keep this one');
          keep.addEventListener('click', () => act(errors, draw, () => call('sync.resolve', { item: c.item, keep: v.entry })));
          return h('li', {}, `${v.name} — from ${v.author}, ${v.updatedAt ? formatTime(v.updatedAt) : 'unknown time'} `, keep);
        }),
      ),
    ),
  );
}

function rotation(s: SyncStatus, errors: HTMLElement, draw: (s: SyncStatus) => void): Node | null {
  if (s.rotate.length === 0) return null;
  const done = h('button', { type: 'button', id: 'dismiss-rotation' }, 'Done');
  done.addEventListener('click', () => act(errors, draw, () => call('sync.dismiss', { what: 'rotation' })));
  return h(
    'div',
    { role: 'alert', class: 'msg error', id: 'rotate' },
    'A removed device could read these values. Change them at their provider, then update them here: ',
    h('strong', {}, s.rotate.join(', ')),
    ' ',
    done,
  );
}

function members(s: SyncStatus, errors: HTMLElement, draw: (s: SyncStatus) => void): Node {
  const rows = s.members.map((m) => {
    const self = m.id === s.device?.id;
    const remove = h('button', { type: 'button', 'aria-label': `Remove ${m.name}` }, 'Remove');
    remove.addEventListener('click', () => {
      if (!confirm(`Remove ${m.name}? It will not read anything written from now on.`)) return;
      act(errors, draw, () => call('sync.removeMember', { device: m.id }));
    });
    return h(
      'tr',
      { 'data-member': m.id },
      h('td', {}, m.name, self ? ' (this device)' : ''),
      h('td', {}, h('code', {}, m.pairingCode)),
      h('td', {}, self ? '' : remove),
    );
  });
  return h(
    'table',
    { id: 'members' },
    h('caption', {}, 'Member devices: compare fingerprints with each device’s own'),
    h('thead', {}, h('tr', {}, ...['Device', 'Fingerprint', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows),
  );
}

function compareHead(errors: HTMLElement, draw: (s: SyncStatus) => void): Node {
  const input = h('input', { type: 'text', autocomplete: 'off', placeholder: '12:9158 db85 …', required: true });
  const result = h('span', { id: 'compare-result', role: 'status' });
  const form = h('form', { id: 'compare-head' }, field('Another device’s head', input), h('button', {}, 'Compare'), result);
  const said = {
    same: 'Same history.',
    fork: 'Different history: the server is forking your devices.',
    withheld: 'This server withholds entries that device saw.',
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    void call('sync.compareHead', { fingerprint: input.value }).then(
      async (r) => {
        result.dataset.result = r.result;
        result.textContent = ` ${said[r.result]} (entry ${r.seq})`;
        if (r.result !== 'same') draw(await call('sync.status')); // the warning, in red
      },
      (e) => errors.replaceChildren(message('error', describeError(e))),
    );
  });
  return form;
}

function addDevice(errors: HTMLElement, draw: (s: SyncStatus) => void): Node {
  const code = h('input', { type: 'text', autocomplete: 'off', placeholder: 'XXXX-XXXX-XXXX-XXXX-XXXX', required: true });
  const form = h('form', { id: 'add-device' }, field('Pairing code', code), h('button', { class: 'primary' }, 'Add device'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(errors, draw, () => call('sync.approve', { code: code.value }));
  });
  return form;
}

function recoveryNotice(key: string, s: SyncStatus, draw: (s: SyncStatus) => void): Node {
  const done = h('button', { type: 'button', id: 'recovery-key-done' }, 'I have written it down');
  done.addEventListener('click', () => {
    recoveryKey = undefined;
    draw(s);
  });
  return h(
    'div',
    { role: 'alert', class: 'msg info', id: 'recovery-notice' },
    h('strong', {}, 'Your recovery key — shown this once. '),
    'With it, a new device can join this vault when no other device is at hand. Write it down and keep it apart from this computer: ',
    h('p', {}, h('code', { id: 'recovery-key' }, key)),
    done,
  );
}

function setupForms(draw: (s: SyncStatus) => void): Node[] {
  const make = (
    id: string,
    label: string,
    hint: string,
    run: (server: string, name: string, extra: string) => Promise<SyncStatus>,
    extra?: string,
  ) => {
    const server = h('input', { type: 'url', required: true, placeholder: 'https://vault.example.com' });
    const name = h('input', { type: 'text', required: true, maxlength: '64', value: 'This browser' });
    // the recovery key is a secret: a password field, which Chromium's session restore does not save
    const more = h('input', { type: 'password', required: true, autocomplete: 'off', spellcheck: 'false' });
    const errors = h('div', {});
    const form = h(
      'form',
      { id },
      h('h3', {}, label),
      h('p', { class: 'muted' }, hint),
      field('Server', server),
      extra ? field(extra, more) : null,
      field('Device name', name),
      errors,
      h('button', { class: 'primary' }, label),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(errors, draw, async () => {
        await allowServer(server.value);
        const extra = more.value;
        more.value = '';
        return run(server.value, name.value, extra);
      });
    });
    return form;
  };
  return [
    h('p', {}, 'Sync keeps your secrets on a distant vault you choose, encrypted: it never sees a value.'),
    make('sync-enable', 'Start syncing', 'Creates a vault on the server from the secrets here.', async (server, deviceName) => {
      const r = await call('sync.enable', { server, deviceName });
      recoveryKey = r.recoveryKey;
      return r;
    }),
    make('sync-join', 'Join a vault', 'For a new device with an empty vault: a device that already syncs adds it.', (server, deviceName) =>
      call('sync.join', { server, deviceName }),
    ),
    make(
      'sync-recover',
      'Recover',
      'For a new device with an empty vault, with the recovery key shown when syncing started.',
      (server, deviceName, key) => call('sync.recover', { server, recoveryKey: key, deviceName }),
      'Recovery key',
    ),
  ];
}
