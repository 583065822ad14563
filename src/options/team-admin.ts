/**
 * Roles, the engine key and the distant vault's engines in the options page (issues 15 and 16).
 * Everyone sees who holds which role, the pinned engine key's fingerprint, and each engine with
 * its configuration and policies; an admin changes them here. Every change is a signed log entry
 * made on this device; a root credential is sealed here to the pinned engine key and never shown
 * again (the list says only whether one is set).
 */
import type { TeamView } from '../core/api.ts';
import { ENGINE_KINDS, type EngineKind, ROLES, type Role } from '../core/sync/log.ts';
import { field, h, message } from '../ui/dom.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

export function teamAdmin(): HTMLElement {
  const box = h('div', { id: 'team-admin' }, h('h3', {}, 'Roles and engines'));
  const errors = h('div', { id: 'team-admin-errors', 'aria-live': 'polite' });
  const run = (work: () => Promise<TeamView>) =>
    void work().then(
      (t) => draw(t),
      (e: unknown) => errors.replaceChildren(message('error', describeError(e))),
    );
  const draw = (t: TeamView) => {
    errors.replaceChildren();
    const admin = t.members.find((m) => m.id === t.me)?.roles.includes('admin') ?? false;
    const parts: (Node | null)[] = [
      h('h3', {}, 'Roles and engines'),
      admin ? null : h('p', { class: 'muted' }, 'Only an admin changes roles and engines; this device reads them.'),
      roles(t, admin, run),
      engineKey(t, admin, run),
      engines(t, admin, run),
      admin ? configureForm(run) : null,
      admin && t.engines.length > 0 ? policyForm(t, run) : null,
      errors,
    ];
    box.replaceChildren(...parts.filter((n): n is Node => n !== null));
  };
  void call('team.view').then(draw, () => box.append(h('p', { class: 'muted' }, 'The team could not be read now.')));
  return box;
}

type Run = (work: () => Promise<TeamView>) => void;

function roles(t: TeamView, admin: boolean, run: Run): Node {
  const rows = t.members.map((m) =>
    h(
      'tr',
      { 'data-member': m.id },
      h('td', {}, m.name, m.id === t.me ? ' (this device)' : ''),
      ...ROLES.map((role: Role) => {
        const box = h('input', {
          type: 'checkbox',
          'aria-label': `${m.name}: ${role}`,
          'data-role': role,
          checked: m.roles.includes(role),
          disabled: !admin,
        });
        box.addEventListener('change', () => run(() => call('team.setRole', { device: m.id, role, granted: box.checked })));
        return h('td', {}, box);
      }),
    ),
  );
  return h(
    'table',
    { id: 'roles' },
    h('caption', {}, 'Roles: an admin configures engines and roles; audit reads the whole team’s audit'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Device'), ...ROLES.map((r) => h('th', { scope: 'col' }, r)))),
    h('tbody', {}, ...rows),
  );
}

function engineKey(t: TeamView, admin: boolean, run: Run): Node {
  if (t.engineKeyFingerprint)
    return h(
      'p',
      { id: 'engine-key' },
      'Engine key pinned, fingerprint ',
      h('code', {}, t.engineKeyFingerprint),
      ' (compare with `npm run server -- kms status`).',
    );
  if (!admin) return h('p', { id: 'engine-key', class: 'muted' }, 'No engine key pinned yet.');
  const fingerprint = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off' });
  const form = h(
    'form',
    { id: 'pin-engine-key', 'aria-label': 'Pin the distant vault’s engine key' },
    field('Fingerprint the operator read from `kms status`', fingerprint),
    h('button', { type: 'submit' }, 'Pin the engine key'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run(() => call('engines.pinKey', { fingerprint: fingerprint.value }));
  });
  return form;
}

function engines(t: TeamView, admin: boolean, run: Run): Node {
  if (t.engines.length === 0) return h('p', { id: 'engines', class: 'muted' }, 'No engines configured.');
  return h(
    'div',
    { id: 'engines' },
    ...t.engines.map((e) => {
      const remove = h('button', { type: 'button', 'aria-label': `Remove engine ${e.name}` }, 'Remove');
      remove.addEventListener('click', () => {
        if (confirm(`Remove the engine ${e.name}? Its leases are revoked by the distant vault as they expire.`))
          run(() => call('engines.remove', { engine: e.name }));
      });
      return h(
        'section',
        { 'data-engine': e.name, 'aria-label': `Engine ${e.name}` },
        h('h4', {}, `${e.name} (${e.kind})`, admin ? remove : null),
        h('pre', {}, JSON.stringify(e.config, null, 2)),
        h('p', { class: 'muted' }, e.hasRootCredential ? 'A root credential is set (sealed to the engine key).' : 'No root credential.'),
        e.policies.length === 0
          ? h('p', { class: 'muted' }, 'No policy: no member may ask it for anything.')
          : h(
              'table',
              {},
              h(
                'thead',
                {},
                h('tr', {}, ...['Role', 'Members', 'Max TTL (s)', 'Leases per device'].map((c) => h('th', { scope: 'col' }, c))),
              ),
              h(
                'tbody',
                {},
                ...e.policies.map((p) =>
                  h(
                    'tr',
                    { 'data-policy': p.role },
                    h('td', {}, p.role),
                    h(
                      'td',
                      {},
                      p.members[0] === '*'
                        ? 'every member'
                        : p.members.map((m) => t.members.find((x) => x.id === m)?.name ?? m.slice(0, 8)).join(', '),
                    ),
                    h('td', {}, String(p.maxTtlSeconds)),
                    h('td', {}, p.maxLeasesPerDevice === undefined ? 'default' : String(p.maxLeasesPerDevice)),
                  ),
                ),
              ),
            ),
      );
    }),
  );
}

/** JSON from a textarea, or a clear error (never echoing what was typed: it may hold a credential). */
function json(text: string, what: string): Record<string, unknown> {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not JSON`);
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new Error(`${what} is a JSON object`);
  return x as Record<string, unknown>;
}

function configureForm(run: Run): Node {
  const name = h('input', { type: 'text', spellcheck: 'false', pattern: '[a-z][a-z0-9-]{0,31}', required: true });
  const kind = h('select', {}, ...ENGINE_KINDS.map((k) => h('option', { value: k }, k)));
  const config = h('textarea', { rows: 5, spellcheck: 'false' }, '{}');
  const root = h('textarea', { rows: 2, spellcheck: 'false', autocomplete: 'off' });
  const form = h(
    'form',
    { id: 'configure-engine', 'aria-label': 'Configure an engine' },
    h('div', { class: 'grid' }, field('Engine name', name), field('Kind', kind)),
    field(
      'Configuration (JSON)',
      config,
      'jwt: {"audience": …}; postgres: {"host", "port", "database", "roles": {…}}; llm-keys: {"provider": "openai", "projectId"}',
    ),
    field('Root credential (JSON, sealed here to the engine key; empty for jwt)', root),
    h('button', { type: 'submit' }, 'Save the engine'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run(async () => {
      const params = {
        engine: name.value,
        kind: kind.value as EngineKind,
        config: json(config.value, 'the configuration'),
        ...(root.value.trim() ? { rootCredential: json(root.value, 'the root credential') } : {}),
      };
      const t = await call('engines.configure', params);
      root.value = '';
      return t;
    });
  });
  return form;
}

function policyForm(t: TeamView, run: Run): Node {
  const engine = h('select', {}, ...t.engines.map((e) => h('option', { value: e.name }, e.name)));
  const role = h('input', { type: 'text', spellcheck: 'false', pattern: '[a-z][a-z0-9-]{0,31}', required: true });
  const members = h(
    'select',
    { multiple: true, size: Math.min(6, t.members.length + 1) },
    h('option', { value: '*', selected: true }, 'every member'),
    ...t.members.map((m) => h('option', { value: m.id }, m.name)),
  );
  const ttl = h('input', { type: 'number', min: '1', value: '3600', required: true });
  const leases = h('input', { type: 'number', min: '1' });
  const form = h(
    'form',
    { id: 'engine-policy', 'aria-label': 'Set a policy' },
    h(
      'div',
      { class: 'grid' },
      field('Engine', engine),
      field('Role', role),
      field('Members', members),
      field('Max TTL (seconds)', ttl),
      field('Leases per device', leases),
    ),
    h('button', { type: 'submit' }, 'Save the policy'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const picked = [...members.selectedOptions].map((o) => o.value);
    run(() =>
      call('engines.setPolicy', {
        engine: engine.value,
        policy: {
          role: role.value,
          members: picked.includes('*') || picked.length === 0 ? ['*'] : picked,
          maxTtlSeconds: Number(ttl.value),
          ...(leases.value ? { maxLeasesPerDevice: Number(leases.value) } : {}),
        },
      }),
    );
  });
  return form;
}
