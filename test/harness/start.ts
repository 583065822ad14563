/**
 * `npm start`: open Chromium with the freshly built extension and the demo agent app.
 * With a display, a real window on a kept profile (test/.tmp/start-profile) with the popup,
 * options and demo pages in tabs; close the window to stop. Without one (a server, CI), a
 * scripted tour in headless Chromium that prints each step and saves screenshots to
 * test/.tmp/tour/: create, add a secret, lock, unlock, then the demo agent's whole loop.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../../src/server/sqlite.ts';
import { launch, newProfileDir, OPTIONS, POPUP, rpc, TMP } from './browser.ts';
import { DEMO_SECRET, DEMO_VALUE, startDemo } from './demo.ts';
import { approve } from './provider.ts';
import { startVaultServer } from './vault-server.ts';

// The distant vault on its embedded SQLite default, data kept under test/.tmp/keyhole-data.
const distant = await startVaultServer(openSqlite(join(TMP, 'keyhole-data')));
const health = (await (await fetch(`${distant.origin}/healthz`)).json()) as { engine: string };
console.log(`Distant vault (${health.engine}, ${join(TMP, 'keyhole-data')}): ${distant.origin} (options page, Sync: use this address)`);

const headed = Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY) && !process.argv.includes('--tour');

if (headed) {
  const profile = join(TMP, 'start-profile');
  mkdirSync(profile, { recursive: true });
  const demo = await startDemo({ api: 8788, app: 8787 });
  const h = await launch({ profile, headless: false });
  await h.open(POPUP);
  await h.open(OPTIONS);
  const page = await h.context.newPage();
  await page.goto(demo.appUrl);
  console.log(`Keyhole ${h.extensionId} is loaded in Chromium (profile ${profile}).`);
  console.log(`Demo agent: ${demo.appUrl}`);
  console.log(`To try it: create a vault in the popup, add a secret named "${DEMO_SECRET}" for host ${demo.apiHost}`);
  console.log(`(header Authorization, template "Bearer {value}", any fake value), then use the demo page. Close the window to stop.`);
  await new Promise<void>((resolve) => h.context.on('close', () => resolve()));
  await demo.close();
  await distant.close();
} else {
  await tour();
}

async function tour() {
  const shots = join(TMP, 'tour');
  mkdirSync(shots, { recursive: true });
  const step = (n: number, text: string) => console.log(`${String(n).padStart(2)}. ${text}`);
  const pass = 'tour passphrase, not a secret (FAKE)';
  const demo = await startDemo();
  const h = await launch({ profile: newProfileDir('tour-') });
  try {
    console.log(`No display: a headless tour of Keyhole ${h.extensionId} in ${process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'}.`);
    const popup = await h.open(POPUP);
    await popup.setViewportSize({ width: 360, height: 420 });
    await popup.waitForSelector('#app[data-state="uninitialized"]');
    await popup.screenshot({ path: join(shots, '1-create.png') });
    step(1, 'popup: no vault yet, showing the create form');
    await popup.getByLabel('Passphrase', { exact: true }).fill(pass);
    await popup.getByLabel('Confirm passphrase').fill(pass);
    await popup.getByRole('button', { name: 'Create vault' }).click();
    await popup.waitForSelector('#app[data-state="unlocked"]');
    await popup.screenshot({ path: join(shots, '2-unlocked.png') });
    step(2, 'created a vault (Argon2id m=64 MiB, t=3, p=4); it is unlocked');

    const options = await h.open(OPTIONS);
    await options.setViewportSize({ width: 1000, height: 900 });
    await options.getByRole('button', { name: 'Add secret' }).click();
    await options.getByLabel('Name', { exact: true }).fill('openai-demo');
    await options.getByLabel('Preset', { exact: true }).selectOption('openai');
    await options.getByLabel('Value', { exact: true }).fill('sk-FAKE-demo-not-a-real-key');
    await options.screenshot({ path: join(shots, '3-add-secret.png'), fullPage: true });
    await options.getByRole('button', { name: 'Save secret' }).click();
    await options.waitForSelector('tr[data-secret="openai-demo"]');
    await options.screenshot({ path: join(shots, '4-secrets.png'), fullPage: true });
    step(3, 'options: added "openai-demo" with the OpenAI preset (api.openai.com, Authorization: Bearer {value})');

    await rpc(popup, 'vault.lock');
    await popup.reload();
    await popup.waitForSelector('#app[data-state="locked"]');
    await popup.screenshot({ path: join(shots, '5-locked.png') });
    step(4, 'locked the vault');
    const stop = await h.stopWorker();
    step(5, 'stopped the service worker, as Chrome does after 30 s idle');
    await popup.getByLabel('Passphrase').fill(pass);
    await popup.getByRole('button', { name: 'Unlock' }).click();
    await popup.waitForSelector('#app[data-state="unlocked"]');
    step(6, `unlocked again (a fresh worker answered: ${await stop.restarted()})`);
    const list = await rpc<{ result: { secrets: { name: string; rule: { hosts: string[] } }[] } }>(popup, 'secrets.list');
    for (const s of list.result.secrets) step(7, `listed "${s.name}" for ${s.rule.hosts.join(', ')} (metadata only, no value)`);

    // The demo agent: discover, ask for a grant, stream an answer through the broker.
    await rpc(popup, 'secrets.create', {
      name: DEMO_SECRET,
      value: DEMO_VALUE,
      rule: { hosts: [demo.apiHost], header: 'Authorization', template: 'Bearer {value}' },
    });
    step(8, `added "${DEMO_SECRET}" for the demo's local model API at ${demo.apiHost}`);
    const agent = await h.context.newPage();
    await agent.setViewportSize({ width: 900, height: 700 });
    await agent.goto(demo.appUrl);
    await agent.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Keyhole found'));
    step(9, `demo agent at ${demo.appUrl} discovered Keyhole`);
    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('consent.html') });
    await agent.getByRole('button', { name: 'Ask for access' }).click();
    const consent = await shown;
    await consent.setViewportSize({ width: 460, height: 560 });
    await consent.waitForSelector('#allow-period:not([disabled])');
    await consent.screenshot({ path: join(shots, '6-consent.png') });
    await approve(consent, '#allow-period');
    step(10, 'the consent window asked; allowed (held "Allow for this period") for the hour it suggests');
    await agent.getByRole('button', { name: 'Ask the model' }).click();
    await agent.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('Answer streamed'));
    await agent.screenshot({ path: join(shots, '7-demo-agent.png') });
    step(11, `the agent streamed: "${await agent.locator('#answer').textContent()}"`);
    step(
      12,
      `the API received the key: ${demo.keysSeen.at(-1) === `Bearer ${DEMO_VALUE}`}; the page holds it: ${(await agent.content()).includes(DEMO_VALUE)}`,
    );
    await options.reload();
    await options.waitForSelector('#audit-table');
    await options.screenshot({ path: join(shots, '8-grants-and-audit.png'), fullPage: true });
    step(13, 'options: the grant and the audit records (no values) are listed');
    const sync = options.locator('#sync-enable');
    await sync.getByLabel('Server').fill(distant.origin);
    await sync.getByLabel('Device name').fill('tour laptop');
    await sync.getByRole('button', { name: 'Start syncing' }).click();
    await options.waitForSelector('#recovery-key');
    await options.getByRole('button', { name: 'I have written it down' }).click();
    await options.waitForFunction(() => /^\d+:/.test(document.getElementById('head-fingerprint')?.textContent ?? ''));
    await options.screenshot({ path: join(shots, '9-sync.png'), fullPage: true });
    step(14, `synced to the distant vault: head ${await options.locator('#head-fingerprint').textContent()} (it holds ciphertext only)`);
    console.log(`Screenshots: ${shots}`);
  } finally {
    await h.close();
    await demo.close();
    await distant.close();
  }
}
