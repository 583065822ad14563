/**
 * The options page's secrets section: the list with a search box and expiry warnings, the editor
 * (static and minted kinds), and the reveal dialog. A secret's name opens its own view
 * (secret-view.ts).
 */

import { HTTP_METHODS, type HttpMethod, type InjectionRule, PRESETS } from '../core/agents/policy.ts';
import type { CredentialStatusView, SecretInput, SecretSummary } from '../core/api.ts';
import { type AwsConfig, MAX_SESSION_S, MIN_SESSION_S } from '../core/credentials/aws.ts';
import { CredentialError } from '../core/credentials/errors.ts';
import { GITHUB_API, installationTokenUrl } from '../core/credentials/github.ts';
import { parseServiceAccountKey } from '../core/credentials/google.ts';
import {
  CLIENT_AUTH_METHODS,
  type ClientAuthMethod,
  type OAuth2Config,
  type OAuth2Material,
  type SecretKind,
} from '../core/credentials/kinds.ts';
import { type ExpiryWarning, expiryWarning } from '../core/vault/versions.ts';
import { field, formatTime, h } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';
import { importForm } from './import.ts';
import { guarded, redraw } from './page.ts';

const splitList = (s: string) => s.split(/[\s,]+/).filter(Boolean);

/** The section: search, the table, damaged records, Add secret and the editor. */
export function secretsSection(
  secrets: SecretSummary[],
  damaged: { id: string; reason: string }[],
  credentials: Record<string, CredentialStatusView>,
  editorSlot: HTMLElement,
  importSlot: HTMLElement,
): Node {
  const add = h('button', { type: 'button', class: 'primary', id: 'add-secret' }, 'Add secret');
  add.addEventListener('click', () => editorSlot.replaceChildren(editor(editorSlot)));
  const table = secretsTable(secrets, editorSlot, credentials);
  const search = h('input', {
    type: 'search',
    id: 'secret-search',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'name, host, notes, kind',
    'aria-controls': 'secrets',
  });
  const count = h(
    'p',
    { class: 'muted', id: 'secret-count', role: 'status' },
    `${secrets.length} secret${secrets.length === 1 ? '' : 's'}`,
  );
  search.addEventListener('input', () => {
    const q = search.value.trim().toLowerCase();
    let shown = 0;
    for (const row of table.querySelectorAll<HTMLElement>('tbody tr')) {
      row.hidden = q !== '' && !(row.dataset.search ?? '').includes(q);
      if (!row.hidden) shown++;
    }
    count.textContent = q ? `${shown} of ${secrets.length} secrets match` : `${secrets.length} secret${secrets.length === 1 ? '' : 's'}`;
  });
  const soon = secrets.filter((s) => expiryWarning(s, Date.now()) !== null && !s.expired).length;
  return h(
    'section',
    { 'aria-labelledby': 'section-h', id: 'secrets-section' },
    h('h2', { id: 'section-h', tabindex: -1 }, 'Secrets'),
    secrets.length > 0 ? h('div', { class: 'row' }, field('Search secrets', search), count) : null,
    soon > 0
      ? h(
          'p',
          { class: 'msg warn-soft', id: 'expiry-warning' },
          `${soon} secret${soon === 1 ? '' : 's'} expire within 7 days: highlighted below.`,
        )
      : null,
    table,
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
    importForm(importSlot),
    importSlot,
  );
}

export const KIND_LABELS: Record<SecretKind, string> = {
  static: 'Static key',
  'oauth2-client-credentials': 'OAuth 2.0 client credentials',
  'oauth2-refresh-token': 'OAuth 2.0 refresh token',
  'google-service-account': 'Google service account',
  'github-app': 'GitHub App',
  aws: 'AWS (signed requests)',
  distant: 'Distant vault engine',
};

/** A minted credential's state, in words: valid until, next refresh, last error, what the person must do. */
export function credentialCell(s: SecretSummary, c: CredentialStatusView | undefined): Node {
  if (s.kind === 'static' || !c) return h('span', { class: 'muted' }, KIND_LABELS[s.kind]);
  const lines: Node[] = [h('div', {}, KIND_LABELS[s.kind]), h('div', { class: `badge cred-${c.state}` }, c.state)];
  if (c.validUntil) lines.push(h('div', { class: 'muted' }, `token valid until ${formatTime(c.validUntil)}`));
  if (c.nextRefresh) lines.push(h('div', { class: 'muted' }, `next refresh ${formatTime(c.nextRefresh)}`));
  if (c.lastError) lines.push(h('div', { class: 'msg error' }, `last token request: ${c.lastError}`));
  if (c.attention) lines.push(h('div', { role: 'alert', class: 'msg error' }, `needs attention: ${c.attention}`));
  if (c.refresherHere !== undefined) {
    const role = h('div', { class: 'muted' }, c.refresherHere ? 'refreshed by this device' : 'refreshed by another device ');
    if (!c.refresherHere) {
      const take = h('button', { type: 'button', 'aria-label': `Refresh ${s.name} from this device` }, 'Take over');
      take.addEventListener('click', () => {
        if (!confirm('Only one device may spend a rotating refresh token. Make this device the one that refreshes it?')) return;
        void call('secrets.takeRefresher', { id: s.id }).then(redraw);
      });
      role.append(take);
    }
    lines.push(role);
  }
  if (s.kind === 'aws' && !s.aws?.assumeRole) {
    lines.push(h('div', { class: 'muted' }, 'signs with its access key'));
    return h('div', { 'data-credential': s.name }, ...lines);
  }
  const now = h('button', { type: 'button', 'aria-label': `Refresh ${s.name} now` }, 'Refresh now');
  now.addEventListener('click', () => void call('credentials.refresh', { id: s.id }).then(redraw));
  lines.push(now);
  return h('div', { 'data-credential': s.name }, ...lines);
}

/** What the search box matches: name, notes, hosts, header, kind, token endpoint. */
function searchText(s: SecretSummary): string {
  return [s.name, s.notes, ...s.rule.hosts, s.rule.header, KIND_LABELS[s.kind], s.kind, s.oauth2?.tokenEndpoint ?? '']
    .join('\n')
    .toLowerCase();
}

/** "expires in 3 days" / "expired", in words a screen reader reads with the name. */
export function expiryNote(s: SecretSummary, warning: ExpiryWarning | null): Node | null {
  if (s.expiresAt === undefined) return null;
  const when = formatTime(s.expiresAt);
  if (warning === 'expired') return h('div', { class: 'expiry msg error' }, `expired ${when}`);
  const text = `expires ${when}${warning ? ` (in ${untilText(s.expiresAt - Date.now())})` : ''}`;
  return h('div', { class: warning ? `expiry msg ${warning === 'urgent' ? 'error' : 'warn-soft'}` : 'expiry muted' }, text);
}

function untilText(ms: number): string {
  const hours = Math.max(0, Math.round(ms / 3_600_000));
  if (hours < 1) return 'less than an hour';
  if (hours < 48) return `${hours} hour${hours === 1 ? '' : 's'}`;
  return `${Math.round(hours / 24)} days`;
}

function secretsTable(secrets: SecretSummary[], editorSlot: HTMLElement, credentials: Record<string, CredentialStatusView>): HTMLElement {
  if (secrets.length === 0) return h('p', { class: 'muted', id: 'no-secrets' }, 'No secrets yet.');
  const rows = secrets.map((s) => {
    const edit = h('button', { type: 'button', 'aria-label': `Edit ${s.name}` }, 'Edit');
    edit.addEventListener('click', () => {
      editorSlot.replaceChildren(editor(editorSlot, s));
      editorSlot.scrollIntoView();
    });
    const reveal = h('button', { type: 'button', 'aria-label': `Reveal ${s.name}`, class: 'reveal' }, 'Reveal');
    reveal.addEventListener('click', () => revealDialog(s));
    const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${s.name}` }, 'Delete');
    del.addEventListener('click', () => {
      if (!confirm(`Delete "${s.name}"? Its value is destroyed and cannot be recovered.`)) return;
      void call('secrets.delete', { id: s.id }).then(redraw);
    });
    const warning = expiryWarning(s, Date.now());
    return h(
      'tr',
      { 'data-secret': s.name, 'data-search': searchText(s), ...(warning ? { 'data-expiry': warning, class: `expiry-${warning}` } : {}) },
      h(
        'td',
        {},
        h('a', { href: `#secret/${encodeURIComponent(s.id)}`, class: 'secret-link' }, h('strong', {}, s.name)),
        s.notes ? h('div', { class: 'muted' }, s.notes) : null,
        expiryNote(s, warning),
      ),
      h(
        'td',
        {},
        h('code', {}, s.rule.hosts.join(', ')),
        s.rule.pathPrefixes.length ? h('div', { class: 'muted' }, s.rule.pathPrefixes.join(', ')) : null,
      ),
      h('td', {}, h('code', {}, `${s.rule.header}: ${s.rule.template}`)),
      h('td', {}, credentialCell(s, credentials[s.id])),
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
        h('th', { scope: 'col' }, 'Kind'),
        h('th', { scope: 'col' }, 'Updated'),
        h('th', { scope: 'col' }, 'Actions'),
      ),
    ),
    h('tbody', {}, ...rows),
  );
}

export function editor(slot: HTMLElement, existing?: SecretSummary): Node {
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
  const minted = mintedFields(existing);
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
    h('h3', { id: 'editor-h' }, existing ? `Edit ${existing.name}` : 'Add a secret'),
    h(
      'div',
      { class: 'grid' },
      field('Name', name, 'How agents ask for it, e.g. openai-prod.'),
      field('Preset', preset, 'Fills the rule for a common API.'),
      minted.kindField,
      minted.staticOnly(
        field('Value', value, existing ? 'Leave empty to keep the current value.' : 'The API key or token. It is encrypted at once.'),
      ),
      field('Allowed hosts', hosts, 'Exact hosts, comma separated. HTTPS only, except localhost.'),
      field('Header', headerName),
      field('Header value template', template, 'Use {value}, or {value:base64} for Basic auth.'),
      field('Path prefixes (optional)', paths, 'e.g. /v1/ — empty allows any path.'),
      field('Notes (not secret)', notes),
    ),
    minted.fieldset,
    minted.awsFieldset,
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
    const kindInput = minted.read();
    void guarded(errors, async () => {
      if (existing) {
        await call('secrets.update', {
          id: existing.id,
          name: name.value.trim(),
          rule: newRule,
          notes: notes.value,
          ...(kindInput.kind === 'static'
            ? v
              ? { value: v }
              : {}
            : {
                ...(kindInput.oauth2 ? { oauth2: kindInput.oauth2 } : {}),
                ...(kindInput.aws ? { aws: kindInput.aws } : {}),
                ...(kindInput.material ? { material: kindInput.material } : {}),
              }),
        });
      } else {
        await call('secrets.create', {
          name: name.value.trim(),
          rule: newRule,
          notes: notes.value,
          ...(kindInput.kind === 'static' ? { value: v } : kindInput),
        } as SecretInput);
      }
      value.value = '';
      minted.clear();
      await redraw();
    });
  });
  queueMicrotask(() => name.focus());
  return form;
}

/**
 * The kind selector and, for a minted kind, its OAuth 2.0 settings and material. Secret fields
 * are password inputs (Chromium keeps them out of session restore; a pasted PEM loses its line
 * breaks there, which the key parser does not need). Editing: empty secret fields keep what is stored.
 */
function mintedFields(existing?: SecretSummary) {
  const kind = h(
    'select',
    { id: 'secret-kind', disabled: existing !== undefined },
    ...(Object.keys(KIND_LABELS) as SecretKind[]).map((k) => h('option', { value: k }, KIND_LABELS[k])),
  );
  kind.value = existing?.kind ?? 'static';
  const c = existing?.oauth2;
  const text = (id: string, value = '') => h('input', { id, autocomplete: 'off', spellcheck: 'false', value });
  const secret = (id: string) => h('input', { id, type: 'password', autocomplete: 'new-password', spellcheck: 'false' });
  const endpoint = text('oauth-endpoint', c?.tokenEndpoint);
  const clientId = text('oauth-client-id', c?.clientId);
  const auth = h('select', { id: 'oauth-auth' }, ...CLIENT_AUTH_METHODS.map((m) => h('option', { value: m }, m)));
  auth.value = c?.clientAuth ?? 'client_secret_basic';
  const scope = text('oauth-scope', c?.scope);
  const resource = text('oauth-resource', c?.resource);
  const audience = text('oauth-audience', c?.audience);
  const clientSecret = secret('oauth-client-secret');
  const pem = secret('oauth-private-key');
  const refreshToken = secret('oauth-refresh-token');
  const keep = existing ? ' Leave empty to keep what is stored.' : '';
  const secretField = field('Client secret', clientSecret, `For client_secret_basic and client_secret_post.${keep}`);
  const pemField = field(
    'Private key (PEM)',
    pem,
    `For private_key_jwt: paste the key; it is kept encrypted and signs in Keyhole only.${keep}`,
  );
  const rtField = field('Refresh token', refreshToken, `Keyhole stores each rotated one at once and never sends an old one again.${keep}`);
  const extra = [field('Resource (optional)', resource), field('Audience (optional)', audience)];
  const authField = field('Client authentication', auth);
  const scopeField = field(
    'Scope (optional)',
    scope,
    'Space separated. Required for a service account, e.g. https://www.googleapis.com/auth/bigquery.readonly',
  );
  // a Google service account: its key file is read here and its private key kept in memory until saved (never in an input)
  const keyFile = h('input', { id: 'google-key-file', type: 'file', accept: '.json,application/json' });
  const keyStatus = h('p', { id: 'google-key-status', role: 'status', class: 'muted' });
  let importedPem: string | undefined;
  keyFile.addEventListener('change', () => {
    const file = keyFile.files?.[0];
    importedPem = undefined;
    if (!file) return;
    void file.text().then(
      (text) => {
        try {
          const sa = parseServiceAccountKey(text);
          endpoint.value = sa.tokenUri;
          clientId.value = sa.clientEmail;
          importedPem = sa.privateKeyPem;
          keyStatus.className = 'msg info';
          keyStatus.textContent = `Key of ${sa.clientEmail} read. It is encrypted when you save, and signs in Keyhole only.`;
        } catch (e) {
          keyStatus.className = 'msg error';
          // a CredentialError's message is a fixed sentence that holds nothing of the file
          keyStatus.textContent = e instanceof CredentialError ? `This file is ${e.message}.` : describeError(e);
        } finally {
          keyFile.value = ''; // the file's text is not kept by the page
        }
      },
      () => {
        keyStatus.className = 'msg error';
        keyStatus.textContent = 'The file could not be read.';
      },
    );
  });
  const keyFileField = h(
    'div',
    {},
    field('Service account key file (JSON)', keyFile, `From Google Cloud console, IAM, Service accounts, Keys.${keep}`),
    keyStatus,
  );
  // a GitHub App: the installation's token endpoint, put together from the installation id
  const ghInstallation = text('github-installation', /\/app\/installations\/(\d+)\//.exec(c?.tokenEndpoint ?? '')?.[1] ?? '');
  const ghApi = text('github-api', c?.tokenEndpoint ? c.tokenEndpoint.replace(/\/app\/installations\/.*$/, '') : GITHUB_API);
  const ghStatus = h('p', { id: 'github-status', role: 'status', class: 'muted' });
  const fillEndpoint = () => {
    if (!ghInstallation.value.trim()) return;
    try {
      endpoint.value = installationTokenUrl(ghApi.value.trim(), ghInstallation.value.trim());
      ghStatus.textContent = '';
    } catch {
      ghStatus.textContent = 'The installation id is a number, the API an https URL (GitHub Enterprise Server: https://HOST/api/v3).';
    }
  };
  ghInstallation.addEventListener('input', fillEndpoint);
  ghApi.addEventListener('input', fillEndpoint);
  const githubFields = h(
    'div',
    {},
    field('Installation id', ghInstallation, 'The number at the end of the installation’s settings URL (…/settings/installations/ID).'),
    field('GitHub API', ghApi, 'https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.'),
    ghStatus,
  );
  const subject = text('oauth-subject', c?.subject);
  const subjectField = field('Act for user (optional)', subject, 'Domain-wide delegation: the email of the user the account acts for.');
  const fieldset = h(
    'fieldset',
    { id: 'oauth2-fields' },
    h('legend', {}, 'OAuth 2.0: agents get short-lived tokens, never these'),
    h(
      'div',
      { class: 'grid' },
      field(
        'Token endpoint',
        endpoint,
        'HTTPS (http only on localhost); its redirects are never followed. A GitHub App: https://api.github.com/app/installations/{installation id}/access_tokens',
      ),
      field('Client id', clientId, 'A GitHub App: its app id (a number) or its client id (Iv…).'),
      authField,
      scopeField,
      ...extra,
      keyFileField,
      githubFields,
      subjectField,
      secretField,
      pemField,
      rtField,
    ),
  );
  const staticOnly: HTMLElement[] = [];
  const sync = () => {
    const k = kind.value as SecretKind;
    fieldset.hidden = k === 'static';
    for (const el of staticOnly) {
      el.hidden = k !== 'static';
      // a hidden required field would block the form without a word
      for (const i of el.querySelectorAll('input')) i.required = k === 'static' && !existing;
    }
    const google = k === 'google-service-account';
    const github = k === 'github-app';
    rtField.hidden = k !== 'oauth2-refresh-token';
    for (const el of extra) el.hidden = k !== 'oauth2-client-credentials';
    authField.hidden = google || github;
    scopeField.hidden = github;
    secretField.hidden = google || github || (auth.value !== 'client_secret_basic' && auth.value !== 'client_secret_post');
    pemField.hidden = google || (!github && auth.value !== 'private_key_jwt');
    keyFileField.hidden = !google;
    subjectField.hidden = !google;
    githubFields.hidden = !github;
    fieldset.hidden = k === 'static' || k === 'aws';
    aws.fieldset.hidden = k !== 'aws';
  };
  const aws = awsFields(existing);
  kind.addEventListener('change', sync);
  auth.addEventListener('change', sync);
  queueMicrotask(sync);
  return {
    awsFieldset: aws.fieldset,
    kindField: field('Kind', kind, 'Static: the key itself. OAuth 2.0: Keyhole mints short-lived tokens for agents.'),
    fieldset,
    staticOnly: (el: HTMLElement) => {
      staticOnly.push(el);
      return el;
    },
    read(): { kind: SecretKind; oauth2?: OAuth2Config; aws?: AwsConfig; material?: OAuth2Material } {
      const k = kind.value as SecretKind;
      if (k === 'static') return { kind: k };
      if (k === 'aws') return { kind: k, ...aws.read() };
      if (k === 'github-app') {
        const config = { tokenEndpoint: endpoint.value.trim(), clientId: clientId.value.trim(), clientAuth: 'none' } as OAuth2Config;
        return { kind: k, oauth2: config, ...(pem.value ? { material: { privateKeyPem: pem.value } } : existing ? {} : { material: {} }) };
      }
      if (k === 'google-service-account') {
        const config = {
          tokenEndpoint: endpoint.value.trim(),
          clientId: clientId.value.trim(),
          clientAuth: 'none',
          scope: scope.value.trim(),
          subject: subject.value.trim(),
        } as OAuth2Config;
        return {
          kind: k,
          oauth2: config,
          ...(importedPem ? { material: { privateKeyPem: importedPem } } : existing ? {} : { material: {} }),
        };
      }
      const oauth2: Record<string, string> = {
        tokenEndpoint: endpoint.value.trim(),
        clientId: clientId.value.trim(),
        clientAuth: auth.value as ClientAuthMethod,
      };
      // an emptied optional field clears it (the worker reads '' as absent)
      for (const [key, input] of [
        ['scope', scope],
        ['resource', resource],
        ['audience', audience],
      ] as const)
        oauth2[key] = input.value.trim();
      const material: Record<string, string> = {};
      if (clientSecret.value && !secretField.hidden) material.clientSecret = clientSecret.value;
      if (pem.value && !pemField.hidden) material.privateKeyPem = pem.value;
      if (refreshToken.value && !rtField.hidden) material.refreshToken = refreshToken.value;
      return { kind: k, oauth2: oauth2 as OAuth2Config, ...(Object.keys(material).length > 0 || !existing ? { material } : {}) };
    },
    clear() {
      for (const i of [clientSecret, pem, refreshToken]) i.value = '';
      importedPem = undefined;
      aws.clear();
    },
  };
}

/**
 * An AWS access key and where it signs: region, service, and optionally a role to assume (then
 * agents' requests are signed with hour-long session credentials, never the key). Brokered only.
 */
function awsFields(existing?: SecretSummary) {
  const c = existing?.aws;
  const text = (id: string, value = '') => h('input', { id, autocomplete: 'off', spellcheck: 'false', value });
  const secret = (id: string) => h('input', { id, type: 'password', autocomplete: 'new-password', spellcheck: 'false' });
  const keyId = secret('aws-key-id');
  const secretKey = secret('aws-secret-key');
  const sessionToken = secret('aws-session-token');
  const region = text('aws-region', c?.region ?? 'us-east-1');
  const service = text('aws-service', c?.service ?? 's3');
  const roleArn = text('aws-role-arn', c?.assumeRole?.roleArn);
  const sessionName = text('aws-session-name', c?.assumeRole?.sessionName ?? 'keyhole');
  const duration = h('input', {
    id: 'aws-duration',
    type: 'number',
    min: String(MIN_SESSION_S),
    max: String(MAX_SESSION_S),
    value: String(c?.assumeRole?.durationSeconds ?? 3600),
  });
  const sts = text('aws-sts', c?.assumeRole?.endpoint);
  const keep = existing ? ' Leave empty to keep what is stored.' : '';
  const fieldset = h(
    'fieldset',
    { id: 'aws-fields', hidden: true },
    h('legend', {}, 'AWS: Keyhole signs each request itself (brokered only); agents never see these'),
    h(
      'div',
      { class: 'grid' },
      field('Access key id', keyId, `AKIA… (or ASIA… with a session token).${keep}`),
      field('Secret access key', secretKey, `Encrypted at once; it signs in Keyhole only.${keep}`),
      field('Session token (optional)', sessionToken, 'Only for temporary keys (ASIA…).'),
      field('Region', region, 'e.g. eu-west-1'),
      field('Service', service, 'The signing name: s3, execute-api, bedrock, dynamodb…'),
      field('Role to assume (optional)', roleArn, 'arn:aws:iam::ACCOUNT:role/NAME: agents then get short-lived session credentials.'),
      field('Session name', sessionName),
      field('Session duration (seconds)', duration, '900 to 43200, within the role’s maximum.'),
      field('STS endpoint (optional)', sts, 'Default: the region’s own, https://sts.REGION.amazonaws.com/'),
    ),
  );
  return {
    fieldset,
    read(): { aws: AwsConfig; material?: OAuth2Material } {
      const role = roleArn.value.trim();
      const config = {
        region: region.value.trim(),
        service: service.value.trim(),
        ...(role
          ? {
              assumeRole: {
                roleArn: role,
                sessionName: sessionName.value.trim(),
                durationSeconds: Number(duration.value),
                ...(sts.value.trim() ? { endpoint: sts.value.trim() } : {}),
              },
            }
          : {}),
      } as AwsConfig;
      const typed = keyId.value || secretKey.value;
      const material = {
        accessKeyId: keyId.value.trim(),
        secretAccessKey: secretKey.value.trim(),
        ...(sessionToken.value.trim() ? { sessionToken: sessionToken.value.trim() } : {}),
      };
      return { aws: config, ...(typed || !existing ? { material } : {}) };
    },
    clear() {
      for (const i of [keyId, secretKey, sessionToken]) i.value = '';
    },
  };
}

export function revealDialog(s: SecretSummary) {
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
