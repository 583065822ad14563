/**
 * The consent window: who asks, for which secret, to which hosts, in which mode, for how long.
 *
 * Against a page that gets the person to click or press keys for it (a game, "press Enter to
 * continue"), Allow takes input that begins after the window is shown and steady, as browsers
 * ask of their own permission prompts:
 * - the Allow buttons are armed only once the window has been visible and focused for
 *   ARM_AFTER_MS without a break; losing focus disarms them;
 * - Allow is press-and-hold for HOLD_MS: a pointer press counts only if the pointer moved onto
 *   the button after it was armed; a key press (Space) only if focus came to the button after it
 *   was armed and the key went down then (not a repeat of one already held);
 * - focus starts on Deny, and Enter never approves.
 * Host permissions are asked for when the hold completes, within the press's user activation.
 *
 * Everything the site supplied is shown as the site's words, apart from Keyhole's own text.
 */
import { type ConsentDecision, type ConsentRequest, PRESELECTED_TTL_SECONDS } from '../core/agents/grants.ts';
import { hostPermissionPattern } from '../core/agents/policy.ts';
import { describeNarrowing } from '../core/credentials/narrowing.ts';
import { field, h, message } from '../ui/dom.ts';
import { GRANT_PERIODS } from '../ui/periods.ts';
import { call } from '../ui/rpc.ts';
import { describeError } from '../ui/strings.ts';

export const ARM_AFTER_MS = 700;
export const HOLD_MS = 800;
const HEARTBEAT_MS = 10_000;

const app = document.getElementById('app') as HTMLElement;
const requestId = new URLSearchParams(location.search).get('request') ?? '';

function duration(secs: number): string {
  if (secs % 86_400 === 0) return `${secs / 86_400} day${secs === 86_400 ? '' : 's'}`;
  if (secs % 3600 === 0) return `${secs / 3600} hour${secs === 3600 ? '' : 's'}`;
  const m = Math.round(secs / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

/** Match patterns for the hosts Chrome must let the worker reach (ports are not part of a pattern). */
function originPatterns(req: ConsentRequest): string[] {
  const hosts = req.secrets.flatMap((s) => (s.tokenHost ? [...s.hosts, s.tokenHost] : s.hosts));
  if (req.mode === 'transparent') hosts.push(new URL(req.origin).host);
  return [...new Set(hosts.map(hostPermissionPattern))];
}

function describeMode(req: ConsentRequest): Node {
  return req.mode === 'transparent'
    ? h(
        'p',
        { class: 'warn' },
        'Transparent mode: Keyhole adds the key to requests from this site’s tabs. Any script running in those tabs can use the key, ' +
          'and an API that echoes credentials back would show it to the site. Allow this only for a site you trust.',
      )
    : h('p', {}, 'Brokered mode: Keyhole makes each request itself and gives the site only the response. The site never sees the key.');
}

/** The period select: Keyhole preselects the site's ask only when it is an hour or less; the ask is labelled as the site's. */
function periodSelect(req: ConsentRequest): HTMLSelectElement {
  const select = h('select', { id: 'period' });
  const options = new Map<number, string>(GRANT_PERIODS.map(([secs, label]) => [secs, label]));
  if (req.ttlAsked) options.set(req.ttlSeconds, `${options.get(req.ttlSeconds) ?? duration(req.ttlSeconds)} (asked by the site)`);
  for (const [secs, label] of [...options].sort((a, b) => a[0] - b[0])) select.append(h('option', { value: secs }, label));
  const asked = req.ttlAsked ? req.ttlSeconds : PRESELECTED_TTL_SECONDS;
  select.value = String(Math.min(asked, PRESELECTED_TTL_SECONDS));
  return select;
}

function render(req: ConsentRequest): void {
  const deny = h('button', { type: 'button', id: 'deny' }, 'Deny');
  const once = h('button', { type: 'button', id: 'allow-once', class: 'primary hold', disabled: true }, 'Hold to allow once');
  const period = periodSelect(req);
  const forPeriod = h(
    'button',
    { type: 'button', id: 'allow-period', class: 'primary hold', disabled: true },
    'Hold to allow for this period',
  );
  const errors = h('div', { role: 'alert' });
  const offer = req.secrets.length > 0;
  const allowButtons = offer ? [once, forPeriod] : [];
  for (const b of allowButtons) b.setAttribute('aria-describedby', 'hold-hint');

  const decide = async (decision: ConsentDecision) => {
    errors.replaceChildren();
    try {
      if (decision.kind !== 'deny') {
        // Loopback hosts are in the manifest; API hosts are asked for here, once.
        const origins = originPatterns(req);
        if (!(await chrome.permissions.contains({ origins })) && !(await chrome.permissions.request({ origins }))) {
          errors.append(message('error', 'Chrome did not give Keyhole access to these hosts, so nothing was allowed.'));
          return;
        }
      }
      await call('consent.decide', { request: req.id, decision });
      window.close();
    } catch (e) {
      errors.append(message('error', describeError(e)));
    }
  };
  deny.addEventListener('click', () => void decide({ kind: 'deny' }));
  holdToConfirm(once, () => void decide({ kind: 'once' }));
  holdToConfirm(forPeriod, () => void decide({ kind: 'period', ttlSeconds: Number(period.value) }));

  app.dataset.state = 'asking';
  app.replaceChildren(
    h('h1', {}, offer ? 'A site asks to use a secret' : 'A site asks for secrets you cannot give it'),
    h('p', { class: 'origin', id: 'origin' }, req.origin),
    offer
      ? h(
          'div',
          {},
          h(
            'p',
            {},
            req.secrets.length === 1 ? 'wants to use this secret from your vault:' : 'wants to use these secrets from your vault:',
          ),
          h(
            'ul',
            { class: 'secrets' },
            ...req.secrets.map((s) =>
              h(
                'li',
                { 'data-secret': s.name },
                h('strong', {}, s.name),
                s.kind === 'aws' ? ` — requests signed for ${s.hosts.join(', ')}` : ` — sent as ${s.header} to ${s.hosts.join(', ')}`,
                kindNote(s),
              ),
            ),
          ),
          narrowing(req),
          describeMode(req),
        )
      : h(
          'p',
          { id: 'nothing' },
          'It asked for secrets that are not in your vault, or not for the hosts it named. Nothing can be allowed; Deny tells the site no, as any refusal would.',
        ),
    req.brokeredOnly?.length
      ? h(
          'p',
          { id: 'brokered-only', class: 'msg warn-soft' },
          `${req.brokeredOnly.join(', ')}: AWS credentials, whose requests Keyhole signs itself, so a site can use them only through Keyhole (brokered), not in transparent mode. Not offered here.`,
        )
      : '',
    req.reason
      ? h(
          'div',
          { class: 'page-text' },
          h('p', { class: 'page-label' }, 'The site wrote this (its words, not Keyhole’s, and not checked):'),
          h('blockquote', { class: 'reason', id: 'reason' }, req.reason),
        )
      : '',
    offer ? field('How long', period) : '',
    offer && req.ttlAsked && req.ttlSeconds > PRESELECTED_TTL_SECONDS
      ? h('p', { class: 'muted', id: 'asked-period' }, `The site asked for ${duration(req.ttlSeconds)}; Keyhole suggests less.`)
      : '',
    offer ? h('p', { class: 'muted', id: 'hold-hint' }, 'To allow, press and hold a button (or Space on it) until it fills.') : '',
    errors,
    h('div', { class: 'actions' }, deny, ...allowButtons),
  );
  deny.focus();
  armWhenSteady(allowButtons);
}

/** What a minted or signing kind means for the person: where tokens come from; the key stays in Keyhole. */
function kindNote(s: ConsentRequest['secrets'][number]): Node | null {
  const at = s.tokenHost ? ` at ${s.tokenHost}` : '';
  switch (s.kind) {
    case undefined:
    case 'static':
      return null;
    case 'google-service-account':
      return note(`A Google service account: Keyhole signs with its key and mints short-lived tokens${at}; the key stays in Keyhole.`);
    case 'github-app':
      return note(`A GitHub App: Keyhole signs with the app's key and mints hour-long installation tokens${at}; the key stays in Keyhole.`);
    case 'distant':
      return note('A short-lived credential your team’s distant vault issues to this device; nothing long-lived is in it.');
    case 'aws':
      return note(
        `AWS: Keyhole signs each request itself (SigV4), brokered only${s.tokenHost ? `, with short-lived session credentials from${at}` : ''}; the access key stays in Keyhole.`,
      );
    default:
      return note(`A short-lived OAuth 2.0 token Keyhole mints${at}; the client's own secret stays in Keyhole.`);
  }
}

const note = (text: string) => h('div', { class: 'muted' }, text);

/** A narrowed grant: what it is narrowed to, as the site asked it (checked, never interpreted as markup). */
function narrowing(req: ConsentRequest): Node | string {
  const lines = describeNarrowing(req.narrow);
  if (lines.length === 0) return '';
  return h(
    'div',
    { id: 'narrowing' },
    h('p', {}, 'Narrowed for this site to:'),
    h('ul', {}, ...lines.map((l) => h('li', {}, h('code', {}, l)))),
    h('p', { class: 'muted' }, 'The issuer enforces this: tokens minted for this grant can do no more.'),
  );
}

/** Arms `buttons` once the window has been visible and focused for ARM_AFTER_MS in one stretch; disarms on any break. */
function armWhenSteady(buttons: HTMLButtonElement[]): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const disarm = () => {
    clearTimeout(timer);
    for (const b of buttons) {
      b.disabled = true;
      b.dataset.armedAt = '';
      b.dispatchEvent(new Event('keyhole:disarm'));
    }
  };
  const arm = () => {
    disarm();
    if (document.visibilityState !== 'visible' || !document.hasFocus()) return;
    timer = setTimeout(() => {
      for (const b of buttons) {
        b.disabled = false;
        b.dataset.armedAt = String(performance.now());
      }
    }, ARM_AFTER_MS);
  };
  window.addEventListener('focus', arm);
  window.addEventListener('blur', disarm);
  document.addEventListener('visibilitychange', arm);
  arm();
}

/**
 * Press-and-hold on `button`: `done` runs once a press that began with fresh input has lasted
 * HOLD_MS. Fresh: after the button was armed, the pointer moved onto it (or focus came to it)
 * and then the press began. A release, a move off the button or losing focus cancels.
 */
function holdToConfirm(button: HTMLButtonElement, done: () => void): void {
  const armedAt = () => (button.disabled || !button.dataset.armedAt ? Number.POSITIVE_INFINITY : Number(button.dataset.armedAt));
  let pointerFresh = false;
  let focusFresh = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cancel = () => {
    clearTimeout(timer);
    timer = undefined;
    button.classList.remove('holding');
  };
  const start = () => {
    cancel();
    button.classList.add('holding');
    timer = setTimeout(() => {
      timer = undefined;
      button.classList.remove('holding');
      done();
    }, HOLD_MS);
  };
  button.addEventListener('keyhole:disarm', () => {
    pointerFresh = false;
    focusFresh = false;
    cancel();
  });
  const moved = (e: PointerEvent) => {
    if (e.timeStamp > armedAt()) pointerFresh = true;
  };
  button.addEventListener('pointerenter', moved);
  button.addEventListener('pointermove', moved);
  button.addEventListener('pointerdown', (e) => {
    if (!e.isPrimary || e.button !== 0 || !pointerFresh || e.timeStamp <= armedAt()) return;
    start();
  });
  for (const end of ['pointerup', 'pointerleave', 'pointercancel'] as const) button.addEventListener(end, cancel);
  button.addEventListener('focus', (e) => {
    focusFresh = e.timeStamp > armedAt();
  });
  button.addEventListener('blur', () => {
    focusFresh = false;
    cancel();
  });
  button.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') e.preventDefault(); // Enter never approves
    if (e.key !== ' ') return;
    e.preventDefault(); // no click from Space: only a hold counts
    if (e.repeat || !focusFresh || e.timeStamp <= armedAt()) return;
    start();
  });
  button.addEventListener('keyup', (e) => {
    if (e.key === ' ') cancel();
  });
  // a click is not a hold (and Space's synthetic click is prevented above)
  button.addEventListener('click', (e) => e.preventDefault());
}

async function main(): Promise<void> {
  const req = await call('consent.get', { request: requestId });
  if (!req) {
    app.dataset.state = 'gone';
    app.replaceChildren(message('info', 'This request is no longer waiting.'));
    return;
  }
  render(req);
  // Messages keep the worker awake while the person reads; a request answered elsewhere closes the window.
  setInterval(() => {
    void call('consent.get', { request: requestId }).then((r) => {
      if (!r) window.close();
    });
  }, HEARTBEAT_MS);
}

void main().catch((e) => app.replaceChildren(message('error', describeError(e))));
