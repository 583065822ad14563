/**
 * The options page: secrets (names and rules; values only when the person asks), the injection
 * rule editor with presets, auto-lock settings and passphrase change. A thin RPC client.
 */

import { HTTP_METHODS, type HttpMethod, type InjectionRule, PRESETS } from '../core/agents/policy.ts';
import type { SecretSummary, Settings, Status } from '../core/api.ts';
import { field, formatTime, h, message, replace } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';
import { auditSection } from './audit.ts';
import { grantsSection } from './grants.ts';
import { syncSection } from './sync.ts';

const app = document.getElementById('app') as HTMLElement;
const splitList = (s: string) => s.split(/[\s,]+/).filter(Boolean);

async function guarded(slot: HTMLElement, work: () => Promise<void>) {
  slot.replaceChildren();
  try {
    await work();
  } catch (e) {
    slot.replaceChildren(message('error', describeError(e)));
  }
}

async function refresh() {
  const status = await call('status');
  app.dataset.state = status.state;
  if (status.state !== 'unlocked') return replace(app, ...lockedView(status));
  const [{ secrets, damaged }, settings] = await Promise.all([call('secrets.list'), call('settings.get')]);
  const grants = await grantsSection(secrets);
  replace(app, ...unlockedView(secrets, damaged, settings, grants));
}

function header(status: Status['state']) {
  const lock = h('button', { type: 'button', id: 'lock' }, 'Lock now');
  lock.addEventListener('click', () => void call('vault.lock').then(refresh));
  return h(
    'header',
    {},
    h('h1', {}, 'Keyhole', h('span', { class: `badge ${status}`, id: 'state' }, status)),
    status === 'unlocked' ? lock : null,
  );
}

function lockedView(status: Status): Node[] {
  if (status.state === 'uninitialized') {
    return [header('uninitialized'), h('p', {}, 'Create your vault from the Keyhole button in the toolbar first.')];
  }
  const pass = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const errors = h('div', {});
  const form = h('form', { id: 'unlock-form' }, field('Passphrase', pass), errors, h('button', { class: 'primary' }, 'Unlock'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = pass.value;
    pass.value = '';
    void guarded(errors, async () => {
      await call('vault.unlock', { passphrase: p });
      await refresh();
    });
  });
  return [header('locked'), h('p', {}, 'The vault is locked.'), form];
}

function unlockedView(secrets: SecretSummary[], damaged: { id: string; reason: string }[], settings: Settings, grants: Node): Node[] {
  const editorSlot = h('div', { id: 'editor' });
  const add = h('button', { type: 'button', class: 'primary', id: 'add-secret' }, 'Add secret');
  add.addEventListener('click', () => replace(editorSlot, editor(editorSlot)));
  const nodes: (Node | null)[] = [
    header('unlocked'),
    h(
      'section',
      { 'aria-labelledby': 'secrets-h' },
      h('h2', { id: 'secrets-h' }, `Secrets (${secrets.length})`),
      secretsTable(secrets, editorSlot),
    ),
    damaged.length
      ? h(
          'div',
          { role: 'alert', class: 'msg error', id: 'damaged' },
          h('strong', {}, 'Damaged records: '),
          `${damaged.length} stored item(s) failed integrity checks and cannot be opened: `,
          damaged.map((d) => `${d.id} (${d.reason})`).join(', '),
          '. Every other secret is unaffected.',
        )
      : null,
    h('div', { class: 'row' }, add),
    editorSlot,
    grants,
    syncSection(() => {
      // secrets changed underneath: redraw, unless the person is editing one
      if (!editorSlot.hasChildNodes()) void refresh();
    }),
    auditSection(),
    settingsForm(settings),
    passphraseForm(),
  ];
  return nodes.filter((n): n is Node => n !== null);
}

function secretsTable(secrets: SecretSummary[], editorSlot: HTMLElement): Node {
  if (secrets.length === 0) return h('p', { class: 'muted', id: 'no-secrets' }, 'No secrets yet.');
  const rows = secrets.map((s) => {
    const edit = h('button', { type: 'button', 'aria-label': `Edit ${s.name}` }, 'Edit');
    edit.addEventListener('click', () => {
      replace(editorSlot, editor(editorSlot, s));
      editorSlot.scrollIntoView();
    });
    const reveal = h('button', { type: 'button', 'aria-label': `Reveal ${s.name}`, class: 'reveal' }, 'Reveal');
    reveal.addEventListener('click', () => revealDialog(s));
    const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${s.name}` }, 'Delete');
    del.addEventListener('click', () => {
      if (!confirm(`Delete "${s.name}"? Its value is destroyed and cannot be recovered.`)) return;
      void call('secrets.delete', { id: s.id }).then(refresh);
    });
    return h(
      'tr',
      { 'data-secret': s.name },
      h('td', {}, h('strong', {}, s.name), s.notes ? h('div', { class: 'muted' }, s.notes) : null),
      h(
        'td',
        {},
        h('code', {}, s.rule.hosts.join(', ')),
        s.rule.pathPrefixes.length ? h('div', { class: 'muted' }, s.rule.pathPrefixes.join(', ')) : null,
      ),
      h('td', {}, h('code', {}, `${s.rule.header}: ${s.rule.template}`)),
      h('td', { class: 'muted' }, formatTime(s.updatedAt)),
      h('td', {}, h('div', { class: 'row' }, edit, reveal, del)),
    );
  });
  return h(
    'table',
    { id: 'secrets' },
    h('caption', { class: 'sr-only' }, 'Stored secrets'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Name'),
        h('th', { scope: 'col' }, 'Hosts'),
        h('th', { scope: 'col' }, 'Header'),
        h('th', { scope: 'col' }, 'Updated'),
        h('th', { scope: 'col' }, 'Actions'),
      ),
    ),
    h('tbody', {}, ...rows),
  );
}

function editor(slot: HTMLElement, existing?: SecretSummary): Node {
  const rule: InjectionRule = existing?.rule ?? (PRESETS[0] as (typeof PRESETS)[number]).rule;
  const preset = h(
    'select',
    { id: 'preset' },
    h('option', { value: '' }, 'Custom'),
    ...PRESETS.map((p) => h('option', { value: p.id }, p.label)),
  );
  const name = h('input', { id: 'secret-name', required: true, autocomplete: 'off', spellcheck: 'false', value: existing?.name ?? '' });
  // type=password: Chromium keeps password fields out of session-restore form state and autofill.
  const value = h('input', {
    id: 'secret-value',
    type: 'password',
    autocomplete: 'new-password',
    spellcheck: 'false',
    required: !existing,
  });
  const hosts = h('input', { id: 'secret-hosts', required: true, autocomplete: 'off', spellcheck: 'false', value: rule.hosts.join(', ') });
  const paths = h('input', { id: 'secret-paths', autocomplete: 'off', spellcheck: 'false', value: rule.pathPrefixes.join(', ') });
  const headerName = h('input', { id: 'secret-header', required: true, autocomplete: 'off', spellcheck: 'false', value: rule.header });
  const template = h('input', { id: 'secret-template', required: true, autocomplete: 'off', spellcheck: 'false', value: rule.template });
  const notes = h('textarea', { id: 'secret-notes', autocomplete: 'off' });
  notes.value = existing?.notes ?? '';
  const methods = HTTP_METHODS.map((m) => {
    const box = h('input', { type: 'checkbox', value: m, id: `m-${m}`, checked: rule.methods.includes(m) });
    return { m, box, el: h('label', { class: 'check', for: box.id }, box, m) };
  });
  if (!existing) preset.value = PRESETS[0]?.id ?? '';
  else preset.value = PRESETS.find((p) => p.rule.hosts.join() === rule.hosts.join() && p.rule.header === rule.header)?.id ?? '';
  preset.addEventListener('change', () => {
    const p = PRESETS.find((x) => x.id === preset.value);
    if (!p) return;
    hosts.value = p.rule.hosts.join(', ');
    headerName.value = p.rule.header;
    template.value = p.rule.template;
    paths.value = '';
    for (const x of methods) x.box.checked = false;
  });
  const errors = h('div', {});
  const cancel = h('button', { type: 'button' }, 'Cancel');
  cancel.addEventListener('click', () => slot.replaceChildren());
  const form = h(
    'form',
    { id: 'secret-form', class: 'card', 'aria-labelledby': 'editor-h' },
    h('h2', { id: 'editor-h' }, existing ? `Edit ${existing.name}` : 'Add a secret'),
    h(
      'div',
      { class: 'grid' },
      field('Name', name, 'How agents ask for it, e.g. openai-prod.'),
      field('Preset', preset, 'Fills the rule for a common API.'),
      field('Value', value, existing ? 'Leave empty to keep the current value.' : 'The API key or token. It is encrypted at once.'),
      field('Allowed hosts', hosts, 'Exact hosts, comma separated. HTTPS only, except localhost.'),
      field('Header', headerName),
      field('Header value template', template, 'Use {value}, or {value:base64} for Basic auth.'),
      field('Path prefixes (optional)', paths, 'e.g. /v1/ — empty allows any path.'),
      field('Notes (not secret)', notes),
    ),
    h('fieldset', {}, h('legend', {}, 'Allowed methods (none checked = all)'), h('div', { class: 'row' }, ...methods.map((x) => x.el))),
    errors,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'save-secret' }, 'Save secret'), cancel),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const newRule: InjectionRule = {
      hosts: splitList(hosts.value),
      pathPrefixes: splitList(paths.value),
      methods: methods.filter((x) => x.box.checked).map((x) => x.m as HttpMethod),
      header: headerName.value.trim(),
      template: template.value.trim(),
    };
    const v = value.value;
    void guarded(errors, async () => {
      if (existing) {
        await call('secrets.update', {
          id: existing.id,
          name: name.value.trim(),
          rule: newRule,
          notes: notes.value,
          ...(v ? { value: v } : {}),
        });
      } else {
        await call('secrets.create', { name: name.value.trim(), value: v, rule: newRule, notes: notes.value });
      }
      value.value = '';
      await refresh();
    });
  });
  queueMicrotask(() => name.focus());
  return form;
}

function revealDialog(s: SecretSummary) {
  const pass = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const errors = h('div', {});
  const out = h('div', { id: 'revealed' });
  const close = h('button', { type: 'button' }, 'Close');
  const form = h(
    'form',
    { id: 'reveal-form' },
    h('h2', {}, `Reveal ${s.name}`),
    h('p', {}, 'Type your passphrase again to see this value.'),
    field('Passphrase', pass),
    errors,
    out,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Reveal'), close),
  );
  const dialog = h('dialog', { 'aria-label': `Reveal ${s.name}` }, form);
  const hide = () => {
    out.replaceChildren();
    dialog.close();
    dialog.remove();
  };
  close.addEventListener('click', hide);
  dialog.addEventListener('cancel', hide);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = pass.value;
    pass.value = '';
    void guarded(errors, async () => {
      const { value } = await call('secrets.reveal', { id: s.id, passphrase: p });
      // Text in an <output>, not an <input>: Chromium saves form controls' values to the
      // session-restore file on disk, and a revealed value must never reach disk.
      const shown = h('output', { id: 'revealed-value', 'aria-label': `Value of ${s.name}`, class: 'revealed' }, value);
      const copy = h('button', { type: 'button', id: 'copy-value' }, 'Copy');
      const status = h('p', { class: 'muted', role: 'status' });
      copy.addEventListener('click', () => {
        // The worker clears it later (an offscreen document), even if this page is closed.
        void guarded(errors, async () => {
          await navigator.clipboard.writeText(value);
          const { clearsInSeconds } = await call('clipboard.scheduleClear');
          status.textContent = `Copied. The clipboard is cleared in ${clearsInSeconds} s.`;
        });
      });
      out.replaceChildren(h('div', { class: 'field' }, h('code', {}, shown)), h('div', { class: 'row' }, copy), status);
      setTimeout(hide, 60_000); // a revealed value does not stay on screen
    });
  });
  document.body.append(dialog);
  dialog.showModal();
  pass.focus();
}

function settingsForm(s: Settings): Node {
  const minutes = h('input', { id: 'autolock-minutes', type: 'number', min: 1, max: 1440, value: s.autoLockMinutes, required: true });
  const sys = h('input', { id: 'lock-system', type: 'checkbox', checked: s.lockOnSystemLock });
  const win = h('input', { id: 'lock-windows', type: 'checkbox', checked: s.lockOnLastWindowClosed });
  const clip = h('input', { id: 'clipboard-seconds', type: 'number', min: 5, max: 300, value: s.clipboardClearSeconds, required: true });
  const rate = h('input', { id: 'requests-per-minute', type: 'number', min: 1, max: 100000, value: s.requestsPerMinute, required: true });
  const errors = h('div', {});
  const form = h(
    'form',
    { id: 'settings-form', 'aria-labelledby': 'settings-h' },
    h('h2', { id: 'settings-h' }, 'Auto-lock'),
    h('div', { class: 'grid' }, field('Lock after minutes without input', minutes), field('Clear copied values after seconds', clip)),
    field('Requests per minute for each grant', rate, 'Above this, brokered calls are refused and transparent access pauses for a minute.'),
    h('label', { class: 'check', for: sys.id }, sys, 'Lock when the computer locks'),
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
    h('h2', { id: 'pass-h' }, 'Change passphrase'),
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

refresh().catch((e) => replace(app, message('error', describeError(e))));
