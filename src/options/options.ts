/**
 * The options page: a header with the lock button, navigation between its sections (Secrets,
 * Sites and grants, Sync and team, Audit, Settings) and a secret's own view. The location hash is
 * the route, so the browser's back button and bookmarks work; after a navigation the focus moves
 * to the new view's heading, as a screen reader user expects. A thin RPC client.
 */

import type { Status } from '../core/api.ts';
import { field, h, message, replace } from '../ui/dom.ts';
import { passkeyUnlock } from '../ui/passkey.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';
import { auditSection } from './audit.ts';
import { grantsSection } from './grants.ts';
import { guarded, redraw, setRedraw } from './page.ts';
import { secretView } from './secret-view.ts';
import { secretsSection } from './secrets.ts';
import { settingsSection } from './settings.ts';
import { syncSection, watchSync } from './sync.ts';
import { teamAuditSection } from './team-audit.ts';

const app = document.getElementById('app') as HTMLElement;

const SECTIONS = [
  ['secrets', 'Secrets'],
  ['sites', 'Sites and grants'],
  ['sync', 'Sync and team'],
  ['audit', 'Audit'],
  ['settings', 'Settings'],
] as const;
type Section = (typeof SECTIONS)[number][0];
type Route = { readonly section: Section } | { readonly section: 'secret'; readonly id: string };

function route(): Route {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith('secret/')) return { section: 'secret', id: hash.slice('secret/'.length) };
  return { section: SECTIONS.find(([s]) => s === hash)?.[0] ?? 'secrets' };
}

/** The editor of the secrets view, kept across redraws so a sync does not wipe what the person is typing. */
const editorSlot = h('div', { id: 'editor' });
/** An import's preview, kept across redraws the same way: a sync does not wipe what the person is reading. */
const importSlot = h('div', { id: 'import-slot' });

async function render() {
  const status = await call('status');
  app.dataset.state = status.state;
  if (status.state !== 'unlocked') return replace(app, ...lockedView(status));
  const r = route();
  const view = await sectionView(r);
  replace(app, header('unlocked'), nav(r), h('div', { id: 'view' }, ...view));
  app.dataset.section = r.section; // once it shows (tests and tools wait for it)
  watchSync(() => {
    // secrets changed underneath: redraw the views that show them, unless the person is editing one
    if ((r.section === 'secrets' || r.section === 'secret') && !app.querySelector('#editor form')) void redraw();
  });
}

async function sectionView(r: Route): Promise<Node[]> {
  switch (r.section) {
    case 'secrets': {
      const [{ secrets, damaged }, credentials] = await Promise.all([call('secrets.list'), call('credentials.status')]);
      return [secretsSection(secrets, damaged, credentials, editorSlot, importSlot)];
    }
    case 'secret': {
      const [{ secrets }, credentials] = await Promise.all([call('secrets.list'), call('credentials.status')]);
      const s = secrets.find((x) => x.id === r.id);
      if (!s)
        return [h('h2', { id: 'section-h', tabindex: -1 }, 'No such secret'), h('p', {}, h('a', { href: '#secrets' }, '← All secrets'))];
      return [secretView(s, credentials[s.id])];
    }
    case 'sites': {
      const { secrets } = await call('secrets.list');
      return [await grantsSection(secrets)];
    }
    case 'sync':
      return [syncSection()];
    case 'audit': {
      // the team's audit too, for a member the log gives the audit role (asked after the section shows)
      const team = h('div', { id: 'team-audit-slot' });
      void call('team.view').then(
        (t) => {
          if (t.members.find((m) => m.id === t.me)?.roles.includes('audit')) team.replaceChildren(teamAuditSection());
        },
        () => {}, // not synced: this device's audit only
      );
      return [auditSection(), team];
    }
    case 'settings':
      return settingsSection(await call('settings.get'));
  }
}

function nav(r: Route): Node {
  const current = r.section === 'secret' ? 'secrets' : r.section;
  return h(
    'nav',
    { 'aria-label': 'Sections', id: 'sections' },
    h(
      'ul',
      {},
      ...SECTIONS.map(([id, label]) =>
        h('li', {}, h('a', { href: `#${id}`, id: `nav-${id}`, ...(id === current ? { 'aria-current': 'page' } : {}) }, label)),
      ),
    ),
  );
}

function header(status: Status['state']) {
  const lock = h('button', { type: 'button', id: 'lock' }, 'Lock now');
  lock.addEventListener('click', () => void call('vault.lock').then(redraw));
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
      await redraw();
    });
  });
  return [header('locked'), h('p', {}, 'The vault is locked.'), form, passkeyUnlock(errors, () => void redraw())];
}

setRedraw(render);
window.addEventListener('hashchange', () => {
  editorSlot.replaceChildren();
  importSlot.replaceChildren();
  void render().then(() => (app.querySelector('#section-h') as HTMLElement | null)?.focus());
});
render().catch((e) => replace(app, message('error', describeError(e))));
