/**
 * The vendors' own SDKs in a page (issue 12, item 11): openai, @anthropic-ai/sdk and
 * @google/genai, unmodified, bundled for the browser with esbuild, next to the Keyhole SDK; and
 * one local API shaped like the three vendors' (their paths, answers and CORS) that verifies what
 * it receives as the real ones would: the right key in the vendor's header, and no other
 * credential header (a placeholder that reached the API is a 401 there, and a failure here).
 */
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ROOT } from './browser.ts';
import { cors, listen } from './servers.ts';

export type VendorId = 'openai' | 'anthropic' | 'google-ai';

/** The header each vendor's API is keyed with, and how the key appears in it. */
export const VENDOR_KEY: Record<VendorId, { header: string; value: (key: string) => string }> = {
  openai: { header: 'authorization', value: (k) => `Bearer ${k}` },
  anthropic: { header: 'x-api-key', value: (k) => k },
  'google-ai': { header: 'x-goog-api-key', value: (k) => k },
};
const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'x-goog-api-key', 'api-key'];

export type VendorCall = {
  readonly vendor: VendorId;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly accepted: boolean;
};

const REPLY = 'hello from the fake vendor API';

/** One server for the three APIs, each under its own host name. `keys` are the real (fake) keys each expects. */
export async function vendorApis(
  keys: Record<VendorId, string>,
): Promise<{ port: number; host: (vendor: VendorId) => string; calls: VendorCall[]; close: () => Promise<void> }> {
  const calls: VendorCall[] = [];
  const server = await listen((req, res) => {
    const { headers: corsHeaders, answered } = cors(req, res, 'GET, POST, OPTIONS');
    if (answered) return;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const vendor: VendorId | null =
        path === '/v1/chat/completions'
          ? 'openai'
          : path === '/v1/messages'
            ? 'anthropic'
            : path.includes(':generateContent') || path.includes(':streamGenerateContent')
              ? 'google-ai'
              : null;
      const json = (status: number, o: unknown) => {
        res.writeHead(status, { ...corsHeaders, 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
      };
      if (!vendor) return json(404, { error: { message: 'no such route' } });
      // exactly the vendor's key in its header, and no other credential header at all
      const expected = VENDOR_KEY[vendor];
      const accepted =
        req.headers[expected.header] === expected.value(keys[vendor]) &&
        CREDENTIAL_HEADERS.every((h) => h === expected.header || req.headers[h] === undefined);
      calls.push({ vendor, path, headers: req.headers, accepted });
      if (!accepted) return json(401, { error: { type: 'authentication_error', message: 'invalid credentials' } });
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { stream?: boolean };
      if (vendor === 'openai' && body.stream) {
        res.writeHead(200, { ...corsHeaders, 'content-type': 'text/event-stream' });
        for (const piece of REPLY.split(' '))
          res.write(
            `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content: `${piece} ` }, finish_reason: null }] })}\n\n`,
          );
        return res.end('data: [DONE]\n\n');
      }
      if (vendor === 'openai')
        return json(200, {
          id: 'c',
          object: 'chat.completion',
          created: 0,
          model: 'm',
          choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: REPLY } }],
        });
      if (vendor === 'anthropic')
        return json(200, {
          id: 'msg_1',
          type: 'message',
          role: 'assistant',
          model: 'm',
          content: [{ type: 'text', text: REPLY }],
          stop_reason: 'end_turn',
          stop_sequence: null,
          usage: { input_tokens: 1, output_tokens: 1 },
        });
      return json(200, { candidates: [{ content: { role: 'model', parts: [{ text: REPLY }] }, finishReason: 'STOP', index: 0 }] });
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    // a host name of its own per vendor, as the real ones have (*.localhost is loopback in Chromium)
    host: (vendor) => `${vendor}.localhost:${port}`,
    calls,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const bundles = new Map<string, Promise<string>>();

/** SDKs as one browser module that puts them on window.vendors (built once per run). */
const SOURCES = {
  /** the three LLM vendors' SDKs */
  llm: `import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
window.vendors = { Anthropic, GoogleGenAI, OpenAI };`,
  /** the AWS SDK v3's S3 client and Octokit (issue 14) */
  cloud: `import { S3Client, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Octokit } from '@octokit/rest';
window.vendors = { S3Client, PutObjectCommand, GetObjectCommand, ListObjectsV2Command, Octokit };`,
} as const;

function vendorBundle(which: keyof typeof SOURCES): Promise<string> {
  let bundle = bundles.get(which);
  if (!bundle) {
    bundle = build({
      stdin: { contents: SOURCES[which], resolveDir: ROOT },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'error',
    }).then((r) => r.outputFiles[0]?.text ?? '');
    bundles.set(which, bundle);
  }
  return bundle;
}

/** An agent app page with vendors' SDKs (window.vendors) and the Keyhole SDK (window.keyhole). */
export async function vendorApp(which: keyof typeof SOURCES = 'llm'): Promise<{ port: number; close: () => Promise<void> }> {
  const js = await vendorBundle(which);
  const page = `<!doctype html><title>vendor agent</title><h1>vendor agent</h1>
<script type="module">
  import './vendors.js';
  import * as keyhole from './keyhole-sdk.js';
  window.keyhole = keyhole;
  window.vendorsReady = true;
</script>`;
  const server = await listen((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/vendors.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(js);
    }
    if (path === '/keyhole-sdk.js') {
      return void readFile(join(ROOT, 'dist-sdk/keyhole-sdk.js')).then((b) => {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(b);
      });
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
