/**
 * A secret's own view in the options page: what it is and where it may go, a minted credential's
 * state, its expiry, and its values over time with rotate, test, promote, roll back and destroy.
 * Values are never shown here; new ones are typed into password fields and cleared once sent.
 */

import type { CredentialStatusView, SecretSummary } from '../core/api.ts';
import type { ValueInfo } from '../core/vault/secrets.ts';
import { DEFAULT_GRACE_SECONDS, expiryWarning } from '../core/vault/versions.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { guarded, redraw } from './page.ts';
import { credentialCell, editor, expiryNote, KIND_LABELS, revealDialog } from './secrets.ts';

const STATE_WORDS: Record<ValueInfo['state'], string> = {
  current: 'current: used for every request',
  staged: 'staged: not used until promoted',
  previous: 'previous: kept for roll back',
  destroyed: 'destroyed',
};

export function secretView(s: SecretSummary, credential: CredentialStatusView | undefined): Node {
  const editorSlot = h('div', { id: 'editor' });
  const edit = h('button', { type: 'button', 'aria-label': `Edit ${s.name}` }, 'Edit');
  edit.addEventListener('click', () => editorSlot.replaceChildren(editor(editorSlot, s)));
  const reveal = h('button', { type: 'button', 'aria-label': `Reveal ${s.name}`, class: 'reveal' }, 'Reveal');
  reveal.addEventListener('click', () => revealDialog(s));
  const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${s.name}` }, 'Delete');
  const errors = h('div', {});
  del.addEventListener('click', () => {
    if (!confirm(`Delete "${s.name}"? Its values are destroyed and cannot be recovered.`)) return;
    void guarded(errors, async () => {
      await call('secrets.delete', { id: s.id });
      location.hash = '#secrets';
    });
  });
  return h(
    'section',
    { 'aria-labelledby': 'section-h', id: 'secret-view', 'data-secret-view': s.name },
    h('p', {}, h('a', { href: '#secrets' }, '← All secrets')),
    h('h2', { id: 'section-h', tabindex: -1 }, s.name),
    facts(s),
    s.kind === 'static' ? null : h('h3', {}, 'Credential'),
    s.kind === 'static' ? null : credentialCell(s, credential),
    expirySection(s),
    versionsSection(s),
    errors,
    h('div', { class: 'row' }, edit, s.kind === 'static' && !s.expired ? reveal : null, del),
    editorSlot,
  );
}

function facts(s: SecretSummary): Node {
  const rows: [string, string][] = [
    ['Kind', KIND_LABELS[s.kind]],
    ['Hosts', s.rule.hosts.join(', ')],
    ['Header', `${s.rule.header}: ${s.rule.template}`],
    ['Paths', s.rule.pathPrefixes.length ? s.rule.pathPrefixes.join(', ') : 'any'],
    ['Methods', s.rule.methods.length ? s.rule.methods.join(', ') : 'any'],
  ];
  if (s.oauth2) {
    rows.push(['Token endpoint', s.oauth2.tokenEndpoint], ['Client id', s.oauth2.clientId], ['Client authentication', s.oauth2.clientAuth]);
    if (s.oauth2.scope) rows.push(['Scope', s.oauth2.scope]);
    if (s.oauth2.resource) rows.push(['Resource', s.oauth2.resource]);
    if (s.oauth2.audience) rows.push(['Audience', s.oauth2.audience]);
  }
  if (s.notes) rows.push(['Notes', s.notes]);
  rows.push(['Created', formatTime(s.createdAt)], ['Updated', `${formatTime(s.updatedAt)} (record version ${s.version})`]);
  return h('dl', { class: 'facts' }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** The expiry: shown, highlighted when near, set or removed. */
function expirySection(s: SecretSummary): Node {
  const warning = expiryWarning(s, Date.now());
  const at = h('input', { type: 'datetime-local', id: 'expiry-at', required: true });
  if (s.expiresAt !== undefined && !s.expired) at.value = localInputValue(s.expiresAt);
  const errors = h('div', {});
  const form = h(
    'form',
    { id: 'expiry-form', class: 'row' },
    field('Expires at', at, 'At expiry its values are destroyed, its rules removed, and uses fail (4400). Warned 7 days and 1 day ahead.'),
    h('button', { type: 'submit', id: 'set-expiry' }, s.expiresAt === undefined ? 'Set expiry' : 'Change expiry'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const when = new Date(at.value).getTime();
    void guarded(errors, async () => {
      await call('secrets.update', { id: s.id, expiresAt: when });
      await redraw();
    });
  });
  const remove = h('button', { type: 'button', id: 'remove-expiry' }, 'Remove expiry');
  remove.addEventListener('click', () => {
    void guarded(errors, async () => {
      await call('secrets.update', { id: s.id, expiresAt: null });
      await redraw();
    });
  });
  return h(
    'div',
    { id: 'expiry', ...(warning ? { 'data-expiry': warning } : {}) },
    h('h3', {}, 'Expiry'),
    expiryNote(s, warning) ?? h('p', { class: 'muted' }, 'No expiry.'),
    s.expired ? null : form,
    s.expiresAt !== undefined && !s.expired ? remove : null,
    errors,
  );
}

/** A time as a datetime-local input wants it: local time, to the minute. */
function localInputValue(t: number): string {
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function versionsSection(s: SecretSummary): Node {
  const errors = h('div', {});
  const act = (work: () => Promise<unknown>) =>
    void guarded(errors, async () => {
      await work();
      await redraw();
    });
  const rows = [...s.values]
    .sort((a, b) => b.n - a.n)
    .map((v) => {
      const actions: Node[] = [];
      if (v.state === 'previous') {
        const back = h('button', { type: 'button', 'aria-label': `Roll back to v${v.n}` }, 'Roll back');
        back.addEventListener('click', () => act(() => call('secrets.rollBack', { id: s.id })));
        actions.push(back);
      }
      if (v.state === 'previous' || v.state === 'staged') {
        const destroy = h('button', { type: 'button', class: 'danger', 'aria-label': `Destroy v${v.n}` }, 'Destroy');
        destroy.addEventListener('click', () => {
          if (!confirm(`Destroy v${v.n} of "${s.name}"? Its ciphertext is deleted and cannot be recovered.`)) return;
          act(() => call('secrets.destroyValue', { id: s.id, n: v.n }));
        });
        actions.push(destroy);
      }
      const until =
        v.state === 'previous' && v.destroyAt
          ? `destroyed ${formatTime(v.destroyAt)} unless rolled back`
          : v.state === 'destroyed' && v.destroyedAt
            ? `destroyed ${formatTime(v.destroyedAt)}${v.compromised ? ' (compromised)' : ''}`
            : '';
      return h(
        'tr',
        { 'data-value': v.n, 'data-state': v.state },
        h('th', { scope: 'row' }, `v${v.n}`),
        h('td', {}, STATE_WORDS[v.state]),
        h('td', {}, formatTime(v.createdAt)),
        h('td', { class: 'muted' }, until),
        h('td', {}, h('div', { class: 'row' }, ...actions)),
      );
    });
  const staged = s.values.find((v) => v.state === 'staged');
  return h(
    'div',
    { id: 'values' },
    h('h3', {}, 'Values'),
    h(
      'table',
      { id: 'versions' },
      h('caption', { class: 'sr-only' }, `Values of ${s.name}, newest first`),
      h('thead', {}, h('tr', {}, ...['Value', 'State', 'Created', 'Destroyed', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows),
    ),
    errors,
    s.expired ? null : staged ? stagedForms(s, staged, act) : rotateForm(s, act),
  );
}

/** What a rotation asks for, by kind: the part of the material that is replaced. */
function rotateInputs(s: SecretSummary, secret: (id: string) => HTMLInputElement): [string, HTMLInputElement, string][] {
  switch (s.kind) {
    case 'static':
      return [['value', secret('rotate-value'), 'New value']];
    case 'oauth2-refresh-token':
      return [['refreshToken', secret('rotate-refresh-token'), 'New refresh token']];
    case 'google-service-account':
    case 'github-app':
      return [['privateKeyPem', secret('rotate-private-key'), 'New private key (PEM)']];
    case 'aws': {
      const token = secret('rotate-session-token');
      token.required = false;
      return [
        ['accessKeyId', secret('rotate-access-key-id'), 'New access key id'],
        ['secretAccessKey', secret('rotate-secret-access-key'), 'New secret access key'],
        ['sessionToken', token, 'Session token (temporary keys only)'],
      ];
    }
    default:
      return s.oauth2?.clientAuth === 'private_key_jwt'
        ? [['privateKeyPem', secret('rotate-private-key'), 'New private key (PEM)']]
        : [['clientSecret', secret('rotate-client-secret'), 'New client secret']];
  }
}

/** Stage a new value (or new material for a minted kind): it is not used until promoted. */
function rotateForm(s: SecretSummary, act: (work: () => Promise<unknown>) => void): Node {
  const secret = (id: string) => h('input', { id, type: 'password', autocomplete: 'new-password', spellcheck: 'false', required: true });
  const inputs = rotateInputs(s, secret);
  if (s.kind === 'oauth2-refresh-token' && s.oauth2?.clientAuth !== undefined) {
    const cs = secret('rotate-client-secret');
    cs.required = false;
    inputs.push(['clientSecret', cs, 'Client secret (empty: keep)']);
  }
  const form = h(
    'form',
    { id: 'rotate-form', class: 'card' },
    h('h4', {}, 'Rotate'),
    h('p', { class: 'muted' }, 'The new value is staged: test it, then promote it. Until then every request uses the current one.'),
    ...inputs.map(([, input, label]) => field(label, input)),
    h('button', { type: 'submit', class: 'primary', id: 'stage-value' }, 'Stage new value'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const typed = inputs.filter(([, i]) => i.value !== '').map(([k, i]) => [k, i.value] as const);
    for (const [, i] of inputs) i.value = '';
    if (s.kind === 'static') act(() => call('secrets.rotate', { id: s.id, value: typed[0]?.[1] ?? '' }));
    else act(() => call('secrets.rotate', { id: s.id, material: Object.fromEntries(typed) }));
  });
  return form;
}

/** A staged value: test it against a URL of the secret's hosts, promote it (with grace, or as compromised). */
function stagedForms(s: SecretSummary, staged: ValueInfo, act: (work: () => Promise<unknown>) => void): Node {
  const url = h('input', {
    id: 'test-url',
    type: 'url',
    required: true,
    spellcheck: 'false',
    value: `https://${s.rule.hosts[0] ?? ''}${s.rule.pathPrefixes[0] ?? '/'}`,
  });
  const result = h('p', { id: 'test-result', role: 'status' });
  const testErrors = h('div', {});
  const test = h(
    'form',
    { id: 'test-form', class: 'row' },
    field(`URL to test v${staged.n} with (one GET)`, url),
    h('button', { type: 'submit', 'aria-label': `Test v${staged.n}` }, 'Test'),
  );
  test.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void guarded(testErrors, async () => {
      const r = await call('secrets.testStaged', { id: s.id, url: url.value });
      result.textContent = `v${staged.n}: HTTP ${r.status}${r.ok ? ' — it works' : ' — not a success'}`;
      result.className = r.ok ? 'msg info' : 'msg error';
    });
  });
  const grace = h('input', { id: 'grace-hours', type: 'number', min: 0, max: 2160, value: DEFAULT_GRACE_SECONDS / 3600, required: true });
  const compromised = h('input', { id: 'compromised', type: 'checkbox' });
  const promote = h(
    'form',
    { id: 'promote-form' },
    field('Keep the current value for roll back (hours)', grace, 'Then it is destroyed.'),
    h('label', { class: 'check', for: compromised.id }, compromised, 'The current value is compromised: destroy it now'),
    h('button', { type: 'submit', class: 'primary', 'aria-label': `Promote v${staged.n}` }, `Promote v${staged.n}`),
  );
  compromised.addEventListener('change', () => {
    grace.disabled = compromised.checked;
  });
  promote.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (compromised.checked && !confirm(`Destroy the current value of "${s.name}" now? There is no roll back.`)) return;
    act(() =>
      call('secrets.promote', {
        id: s.id,
        ...(compromised.checked ? { compromised: true } : { graceSeconds: Math.round(Number(grace.value) * 3600) }),
      }),
    );
  });
  return h(
    'div',
    { class: 'card', id: 'staged' },
    h('h4', {}, `v${staged.n} is staged`),
    test,
    result,
    testErrors,
    promote,
    s.kind === 'static' ? null : message('info', 'Minted tokens are made from the new material from the promotion on.'),
  );
}
