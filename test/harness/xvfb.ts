/**
 * A virtual X display for the tests that need real input idleness: headless Chromium always
 * reports chrome.idle as "active", but on an X server with no input it goes "idle".
 * Needs Debian's xvfb (.ci/run installs it).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export async function startXvfb(): Promise<{ display: string; stop: () => void }> {
  if (!existsSync('/usr/bin/Xvfb')) throw new Error('Xvfb is missing: apt-get install -y xvfb (.ci/run does this)');
  const proc = spawn('/usr/bin/Xvfb', ['-displayfd', '1', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const display = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(`:${out.trim()}`);
    });
    proc.on('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
    setTimeout(() => reject(new Error('Xvfb did not start')), 10_000);
  });
  return { display, stop: () => proc.kill() };
}
