// The demo agent: discovers Keyhole with the SDK, asks for a grant, and streams a chat
// completion through a brokered fetch. Plain JavaScript so it is served as is.
import { connect, KeyholeNotInstalledError } from '@keyhole/sdk';

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
};
const api = new URLSearchParams(location.search).get('api') ?? 'http://127.0.0.1:8788';

let keyhole;
try {
  keyhole = await connect();
  const { state } = await keyhole.status();
  status(`Keyhole found (vault ${state}).`);
  $('grant').disabled = false;
  $('ask').disabled = false;
  keyhole.on('lock', () => status('Keyhole locked: unlock it from the toolbar to go on.'));
  keyhole.on('unlock', () => status('Keyhole unlocked.'));
} catch (e) {
  status(e instanceof KeyholeNotInstalledError ? 'Keyhole is not installed in this browser.' : `Keyhole: ${e.message}`, true);
}

$('grant').addEventListener('click', async () => {
  try {
    const grants = await keyhole.requestGrant({ secrets: [$('secret').value], reason: 'The demo agent calls the model for you.' });
    status(`Access granted until ${new Date(grants[0].expiresAt).toLocaleTimeString()}.`);
  } catch (e) {
    status(`No access (${e.code}): ${e.message}`, true);
  }
});

$('ask').addEventListener('click', async () => {
  $('answer').textContent = '';
  try {
    const res = await keyhole.fetch($('secret').value, `${api}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: $('prompt').value }] }),
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const events = buffer.split('\n\n');
      buffer = events.pop() ?? '';
      for (const e of events) {
        const data = e.replace(/^data: /, '');
        if (data === '[DONE]') continue;
        $('answer').textContent += JSON.parse(data).choices[0].delta.content ?? '';
      }
    }
    status(`Answer streamed through Keyhole (HTTP ${res.status}).`);
  } catch (e) {
    status(`The call failed (${e.code}): ${e.message}`, true);
  }
});
