/**
 * Injection rules: where a secret may be sent and how it is put on the request.
 * Pure validation; every check returns a normalised copy or throws a `bad-input` CoreError
 * whose message names the field, never the value.
 */
import { CoreError } from '../errors.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export type InjectionRule = {
  /** exact hosts, optionally with a port: "api.openai.com", "localhost:8080" */
  readonly hosts: readonly string[];
  /** optional path prefixes, each starting with "/"; empty means any path */
  readonly pathPrefixes: readonly string[];
  /** allowed methods; empty means any of HTTP_METHODS */
  readonly methods: readonly HttpMethod[];
  /** header name, e.g. "Authorization" */
  readonly header: string;
  /** header value template with one {value} or {value:base64} placeholder */
  readonly template: string;
  /**
   * Other headers taken off the request, where a vendor's SDK puts its own (placeholder)
   * credential: the Anthropic SDK 1.x sends `Authorization: Bearer` for an API key, while the API
   * is keyed here with `x-api-key`. Absent in records written before it: none.
   */
  readonly removeHeaders?: readonly string[];
};

export type Preset = { readonly id: string; readonly label: string; readonly rule: InjectionRule };

const rule = (host: string, header: string, template: string, removeHeaders: string[] = []): InjectionRule => ({
  hosts: [host],
  pathPrefixes: [],
  methods: [],
  header,
  template,
  ...(removeHeaders.length > 0 ? { removeHeaders } : {}),
});

/**
 * Each preset carries every credential header the vendor's current SDK sends: the one Keyhole
 * sets, and the others it takes off, so an SDK's placeholder never reaches the API (checked with
 * openai 7, @anthropic-ai/sdk 1.14 and @google/genai 3.3: test/e2e/vendors.test.ts).
 */
export const PRESETS: readonly Preset[] = [
  { id: 'openai', label: 'OpenAI', rule: rule('api.openai.com', 'Authorization', 'Bearer {value}') },
  // the SDK 1.x sends Authorization: Bearer for an API key (0.x sent x-api-key)
  { id: 'anthropic', label: 'Anthropic', rule: rule('api.anthropic.com', 'x-api-key', '{value}', ['Authorization']) },
  { id: 'github', label: 'GitHub', rule: rule('api.github.com', 'Authorization', 'Bearer {value}') },
  {
    id: 'google-ai',
    label: 'Google AI (Gemini)',
    rule: rule('generativelanguage.googleapis.com', 'x-goog-api-key', '{value}', ['Authorization']),
  },
  { id: 'stripe', label: 'Stripe', rule: rule('api.stripe.com', 'Authorization', 'Bearer {value}') },
  {
    // for a Google service account: explicit hosts (never *.googleapis.com); the person keeps the ones they use
    id: 'google-cloud',
    label: 'Google Cloud APIs (service account)',
    rule: {
      ...rule('bigquery.googleapis.com', 'Authorization', 'Bearer {value}'),
      hosts: ['bigquery.googleapis.com', 'storage.googleapis.com', 'sheets.googleapis.com', 'www.googleapis.com'],
    },
  },
];

const bad = (message: string): never => {
  throw new CoreError('bad-input', message);
};

const MAX_HOSTS = 16;
const MAX_REMOVED_HEADERS = 8;
const MAX_PREFIXES = 16;
export const MAX_VALUE_LENGTH = 16 * 1024;

/** Loopback hosts may use plain HTTP (DESIGN.md section 2). */
export function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/**
 * The host-permission match pattern Chrome needs for requests to `host` (a host with an optional
 * port; patterns have no port). Loopback hosts may be http or https; others only https.
 */
export function hostPermissionPattern(host: string): string {
  const name = new URL(`https://${host}`).hostname;
  return isLoopbackHost(name) ? `*://${name}/*` : `https://${name}/*`;
}

/**
 * One host as the URL parser would print it: lowercase ASCII (IDN in punycode), optional
 * port, no trailing dot, no userinfo, path or wildcard.
 */
export function normalizeHost(input: string): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 253) bad('host must be a hostname');
  if (/[\s/?#@*\\]/.test(input) || input.endsWith('.')) bad('host must be an exact hostname');
  let url: URL;
  try {
    url = new URL(`https://${input}`);
  } catch {
    return bad('host must be an exact hostname');
  }
  // url.host is lowercase ASCII (IDN as punycode) and drops the default port.
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash || url.hostname.endsWith('.')) {
    bad('host must be an exact hostname');
  }
  const host = url.host;
  return host;
}

// RFC 9110 §5.6.2 token
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Headers the browser owns or that would change what the request is.
const FORBIDDEN_HEADERS = new Set([
  'host',
  'cookie',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'origin',
  'referer',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

export function checkHeaderName(name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 64 || !TOKEN.test(name)) bad('header must be a header name');
  if (FORBIDDEN_HEADERS.has(name.toLowerCase()) || /^(sec-|proxy-)/i.test(name)) bad('header is not allowed');
  return name;
}

export function checkTemplate(t: string): string {
  if (typeof t !== 'string' || t.length === 0 || t.length > 256) bad('template must be 1 to 256 characters');
  if (/[^\x20-\x7e]/.test(t)) bad('template must be printable ASCII');
  const placeholders = t.match(/\{[^}]*\}/g) ?? [];
  if (placeholders.length !== 1 || !['{value}', '{value:base64}'].includes(placeholders[0] as string)) {
    bad('template must hold exactly one {value} or {value:base64}');
  }
  return t;
}

export function checkPathPrefix(p: string): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.length > 512) bad('path prefix must start with /');
  if (/[?#\s\\]/.test(p) || /(^|\/)\.\.?(\/|$)/.test(p) || /%2e|%2f/i.test(p)) bad('path prefix must be a plain path');
  return p;
}

export function checkRule(input: unknown): InjectionRule {
  if (typeof input !== 'object' || input === null) return bad('rule must be an object');
  const r = input as Record<string, unknown>;
  const list = (k: string, max: number): unknown[] => {
    const v = r[k] ?? [];
    if (!Array.isArray(v) || v.length > max) bad(`${k} must be a list of at most ${max}`);
    return v as unknown[];
  };
  const hosts = [...new Set(list('hosts', MAX_HOSTS).map((h) => normalizeHost(h as string)))];
  if (hosts.length === 0) bad('hosts must name at least one host');
  const pathPrefixes = [...new Set(list('pathPrefixes', MAX_PREFIXES).map((p) => checkPathPrefix(p as string)))];
  const methods = [...new Set(list('methods', HTTP_METHODS.length))].map((m) => {
    const up = typeof m === 'string' ? m.toUpperCase() : '';
    if (!HTTP_METHODS.includes(up as HttpMethod)) bad('methods must be standard HTTP methods');
    return up as HttpMethod;
  });
  const header = checkHeaderName(r.header as string);
  const removeHeaders = [...new Set(list('removeHeaders', MAX_REMOVED_HEADERS).map((h) => checkHeaderName(h as string)))];
  if (removeHeaders.some((h) => h.toLowerCase() === header.toLowerCase())) bad('removeHeaders must not name the header that is set');
  return {
    hosts,
    pathPrefixes,
    methods,
    header,
    template: checkTemplate(r.template as string),
    ...(removeHeaders.length > 0 ? { removeHeaders } : {}),
  };
}

/** A value must fit in a header: printable ASCII, bounded. */
export function checkValue(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_VALUE_LENGTH) bad('value must be 1 to 16384 characters');
  if (/[^\x20-\x7e]/.test(v as string)) bad('value must be printable ASCII');
  return v as string;
}

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(n: unknown): string {
  if (typeof n !== 'string' || !NAME_PATTERN.test(n)) bad('name must be 1 to 64 of A-Z a-z 0-9 . _ - and start with a letter or digit');
  return n as string;
}

export function renderHeaderValue(template: string, value: string): string {
  return template.includes('{value:base64}') ? template.replace('{value:base64}', btoa(value)) : template.replace('{value}', value);
}

export type RequestTarget = { readonly url: URL; readonly host: string; readonly method: HttpMethod };

/**
 * Checks a page-supplied URL and method against a secret's rule. Malformed or hostile input
 * (userinfo, control characters, backslashes, non-http schemes, encoded dots or slashes in the
 * path) is `bad-input`; a well-formed request to another host, path or method is `not-allowed`.
 * Hosts compare exactly after the URL parser's normalisation (lowercase, IDN as punycode), so a
 * look-alike host or a trailing dot never matches.
 */
export function checkRequestTarget(rawUrl: unknown, rawMethod: unknown, rule: InjectionRule): RequestTarget {
  if (typeof rawUrl !== 'string' || rawUrl.length === 0 || rawUrl.length > 8192) return bad('url must be an absolute URL');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u0020\u007f\\]/.test(rawUrl)) bad('url must not contain spaces, control characters or backslashes');
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return bad('url must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('url must be http or https');
  const authority = rawUrl.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split(/[/?#]/)[0] ?? '';
  if (url.username || url.password || authority.includes('@')) bad('url must not contain credentials');
  // the parser drops a trailing dot from an IPv4 address, so look at what the page wrote too
  if (url.hostname.endsWith('.') || authority.replace(/:\d*$/, '').endsWith('.')) bad('url host must not end with a dot');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    throw new CoreError('not-allowed', 'plain http is allowed only to loopback hosts');
  if (/%2e|%2f|%5c/i.test(url.pathname)) bad('url path must not contain encoded dots, slashes or backslashes');
  if (hasDotSegmentWithParams(url.pathname)) bad('url path must not hold a dot segment with ;parameters');
  const method = typeof rawMethod === 'string' ? rawMethod.toUpperCase() : rawMethod === undefined ? 'GET' : '';
  if (!HTTP_METHODS.includes(method as HttpMethod)) bad('method must be a standard HTTP method');
  const m = method as HttpMethod;
  if (!rule.hosts.includes(url.host)) throw new CoreError('not-allowed', 'host is not allowed for this secret');
  if (rule.pathPrefixes.length > 0 && !rule.pathPrefixes.some((p) => url.pathname.startsWith(p))) {
    throw new CoreError('not-allowed', 'path is not allowed for this secret');
  }
  if (rule.methods.length > 0 && !rule.methods.includes(m)) throw new CoreError('not-allowed', 'method is not allowed for this secret');
  return { url, host: url.host, method: m };
}

/**
 * "..;" or ".;x" as a segment: Tomcat, Jetty and Spring strip a segment's ";parameters" before
 * resolving dot segments, so `/v1/..;/admin` passes a `/v1/` prefix here and is `/admin` there.
 * The URL parser resolves only plain dot segments (and %2e, refused above).
 */
function hasDotSegmentWithParams(pathname: string): boolean {
  return pathname.split('/').some((segment) => {
    const semi = segment.replace(/%3b/gi, ';').indexOf(';');
    if (semi < 0) return false;
    const name = segment.slice(0, semi);
    return name === '.' || name === '..';
  });
}

/** Names frameworks read a method override from (Rails, Laravel, Symfony, Spring, express's method-override). */
const OVERRIDE_PARAMS = new Set(['_method', 'x-http-method-override', 'x-http-method', 'x-method-override']);

function decodedName(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters mark a binary body
const BINARY = /[\x00-\x08\x0e-\x1f]/;

function formHasOverride(text: string): boolean {
  return text.split('&').some((pair) => OVERRIDE_PARAMS.has(decodedName(pair.split('=')[0] ?? '')));
}

/**
 * When a rule restricts methods, refuses a request that asks the server to treat it as another
 * method: an override parameter in the query, or a `_method` field in a form, multipart or JSON
 * body (the override headers are refused with the page's headers). `body` is what will be sent.
 */
export function checkMethodOverride(
  target: RequestTarget,
  body: Uint8Array | undefined,
  contentType: string | undefined,
  rule: InjectionRule,
): void {
  if (rule.methods.length === 0) return;
  const refuse = () => {
    throw new CoreError('not-allowed', 'a method override is not allowed when the secret restricts methods');
  };
  if (target.url.search.length > 1 && formHasOverride(target.url.search.slice(1))) refuse();
  if (body === undefined || body.length === 0) return;
  const text = new TextDecoder('latin1').decode(body);
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'multipart/form-data') {
    if (/content-disposition:[^\r\n]*\bname="?(_method|x-http-method-override|x-http-method|x-method-override)"?(;|\s|$)/im.test(text))
      refuse();
  } else if (type === 'application/json' || type.endsWith('+json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(body));
    } catch {
      parsed = undefined;
    }
    if (typeof parsed === 'object' && parsed !== null && Object.keys(parsed).some((k) => OVERRIDE_PARAMS.has(k.toLowerCase()))) refuse();
  } else if (!BINARY.test(text) && formHasOverride(text.trim())) {
    refuse(); // a form, or text a server may parse as one
  }
}

const MAX_PAGE_HEADERS = 64;
const PAGE_FORBIDDEN_HEADERS = new Set([...FORBIDDEN_HEADERS, 'keep-alive', 'te', 'trailer', 'upgrade', 'expect']);
PAGE_FORBIDDEN_HEADERS.delete('content-type');

/** What becomes of a page's own credential headers: refused (the default), or dropped for the one Keyhole sets. */
export type CredentialHeaders = 'refuse' | 'replace';

/**
 * A page's own request headers, checked: they can neither replace the injected header nor
 * change the method (X-HTTP-Method-Override and kin), nor smuggle lines (CR/LF). The rule's
 * `removeHeaders` are dropped; the injected header is refused, or dropped with `replace` (an
 * unmodified SDK sends a placeholder there: the Keyhole SDK's fetchFor asks for `replace`).
 */
export function checkPageHeaders(
  input: unknown,
  rule: Pick<InjectionRule, 'header' | 'removeHeaders'>,
  credentialHeaders: CredentialHeaders = 'refuse',
): Record<string, string> {
  const injected = rule.header;
  const removed = new Set((rule.removeHeaders ?? []).map((h) => h.toLowerCase()));
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return bad('headers must be an object of strings');
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > MAX_PAGE_HEADERS) bad(`headers must be at most ${MAX_PAGE_HEADERS}`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!TOKEN.test(name) || name.length > 128) bad('header names must be tokens');
    if (typeof value !== 'string' || value.length > 8192) bad('header values must be strings of at most 8192 characters');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value as string)) bad('header values must not contain control characters');
    const lower = name.toLowerCase();
    if (removed.has(lower)) continue;
    if (lower === injected.toLowerCase()) {
      if (credentialHeaders === 'replace') continue;
      throw new CoreError('not-allowed', 'the page may not set the injected header');
    }
    if (PAGE_FORBIDDEN_HEADERS.has(lower) || /^(sec-|proxy-)/.test(lower) || lower.includes('method-override')) {
      throw new CoreError('not-allowed', 'this header may not be set by the page');
    }
    if (Object.keys(out).some((k) => k.toLowerCase() === lower)) bad('headers must not repeat a name');
    out[name] = value as string;
  }
  return out;
}
