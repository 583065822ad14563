/**
 * The options page's grants section: every live grant (who, which secret, where, how long),
 * revocable; and a form to allow a site that knows nothing of Keyhole (transparent mode), e.g.
 * a bring-your-own-key chat app where the person types a placeholder key.
 */

import type { Grant } from '../core/agents/page-api.ts';
import { hostPermissionPattern } from '../core/agents/policy.ts';
import type { SecretSummary } from '../core/api.ts';
import { describeNarrowing } from '../core/credentials/narrowing.ts';
import { field, formatTime, h, message } from '../ui/dom.ts';
import { GRANT_PERIODS } from '../ui/periods.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

export async function grantsSection(secrets: SecretSummary[]): Promise<Node> {
  const section = h('section', { 'aria-labelledby': 'section-h', id: 'grants' });
  const render = async () => {
    const grants = await call('grants.list');
    section.replaceChildren(
      h('h2', { id: 'section-h', tabindex: -1 }, 'Sites and grants'),
      h('h3', {}, `Grants (${grants.length})`),
      grantsTable(grants, render),
      siteForm(secrets, render),
    );
  };
  await render();
  return section;
}

function grantsTable(grants: Grant[], rerender: () => Promise<void>): Node {
  if (grants.length === 0) return h('p', { class: 'muted', id: 'no-grants' }, 'No site may use a secret.');
  const errors = h('div', {});
  const rows = grants.map((g) => {
    const revoke = h('button', { type: 'button', 'aria-label': `Revoke ${g.origin} using ${g.secret}` }, 'Revoke');
    revoke.addEventListener('click', () => {
      void call('grants.revoke', { id: g.id }).then(rerender, (e) => errors.replaceChildren(message('error', describeError(e))));
    });
    return h(
      'tr',
      { 'data-grant': g.id },
      h('td', {}, h('code', {}, g.origin)),
      h('td', {}, g.secret),
      h('td', {}, g.mode === 'transparent' ? 'transparent' : 'brokered'),
      h('td', {}, g.hosts.join(', '), ...describeNarrowing(g.narrow).map((line) => h('div', { class: 'muted narrowing' }, line))),
      h('td', {}, formatTime(g.expiresAt)),
      h('td', {}, g.usesLeft === null ? 'any' : String(g.usesLeft)),
      h('td', {}, revoke),
    );
  });
  return h(
    'div',
    {},
    h(
      'table',
      { id: 'grants-table' },
      h(
        'thead',
        {},
        h('tr', {}, ...['Site', 'Secret', 'Mode', 'Hosts', 'Until', 'Uses left', ''].map((c) => h('th', { scope: 'col' }, c))),
      ),
      h('tbody', {}, ...rows),
    ),
    errors,
  );
}

function siteForm(secrets: SecretSummary[], rerender: () => Promise<void>): Node {
  const site = h('input', { id: 'site-origin', type: 'url', required: true, placeholder: 'https://chat.example.com', spellcheck: 'false' });
  const secret = h('select', { id: 'site-secret', required: true });
  for (const s of secrets) secret.append(h('option', { value: s.id }, `${s.name} (${s.rule.hosts.join(', ')})`));
  const period = h('select', { id: 'site-period' });
  for (const [secs, label] of GRANT_PERIODS) period.append(h('option', { value: secs, selected: secs === 8 * 3600 }, label));
  const errors = h('div', {});
  const form = h(
    'form',
    { id: 'site-form', 'aria-labelledby': 'site-h' },
    h('h3', { id: 'site-h' }, 'Let a site use a secret (no integration needed)'),
    h(
      'p',
      { class: 'warn' },
      'Keyhole will add the key to requests the site’s tabs make to the secret’s hosts, so its own code can use a placeholder key. ' +
        'Any script running on that site can then use the key. Do this only for a site you trust.',
    ),
    h('div', { class: 'grid' }, field('Site', site, 'Its origin, e.g. https://chat.example.com'), field('Secret', secret)),
    field('For', period),
    errors,
    h('button', { type: 'submit', class: 'primary' }, 'Allow this site'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    const chosen = secrets.find((s) => s.id === secret.value);
    let origin: string;
    try {
      origin = new URL(site.value).origin;
    } catch {
      errors.append(message('error', 'Type the site’s address, e.g. https://chat.example.com.'));
      return;
    }
    if (!chosen) return;
    // The submit is the user gesture Chrome needs to grant host access; ask before anything awaits.
    const origins = [...new Set([...chosen.rule.hosts, new URL(origin).host].map(hostPermissionPattern))];
    void chrome.permissions
      .request({ origins })
      .then(async (ok) => {
        if (!ok) throw new Error('Chrome did not give Keyhole access to these sites, so nothing was allowed.');
        await call('grants.create', { origin, secretId: chosen.id, ttlSeconds: Number(period.value) });
        await rerender();
      })
      .catch((e: unknown) => errors.replaceChildren(message('error', describeError(e))));
  });
  return form;
}
