/**
 * Local servers shaped like AWS STS and S3 (path-style), for the `aws` kind. Every request's
 * SigV4 signature is verified by re-signing it with `@smithy/signature-v4` (the AWS SDK v3's own
 * signer) over exactly the headers it says it signed, with the secret the server knows for its
 * access key id; a bad one is refused as AWS refuses it (403 SignatureDoesNotMatch). Also as AWS:
 * the credential scope must name this region and service, x-amz-date must be within 15 minutes of
 * the server's clock (which a test may set off, to make Keyhole learn the server's Date), a
 * session key needs its session token and dies at its expiry (ExpiredToken), and an S3 body must
 * match the x-amz-content-sha256 it was signed with unless that says UNSIGNED-PAYLOAD.
 *
 * STS: `POST /` Action=AssumeRole with the long-lived key: answers the XML AssumeRoleResponse with
 * session credentials (ASIA…) living `ttlSeconds`, recording the session policy asked for.
 * S3: `PUT /{bucket}/{key}` stores, `GET /{bucket}/{key}` reads, `GET /{bucket}?list-type=2` lists;
 * a session policy naming `s3:GetObject` only refuses writes (403 AccessDenied).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from './aws.ts';
import { close, listen, readBody } from './servers.ts';

type Session = { secretAccessKey: string; sessionToken: string; exp: number; policy?: string };

export type AwsServer = {
  readonly stsUrl: string;
  readonly s3Base: string;
  readonly s3Host: string;
  readonly region: string;
  /** AssumeRole requests: how many, how many refused, the policies asked for */
  readonly sts: { total: number; refused: number; refusals: string[]; policies: (string | undefined)[]; sessionNames: string[] };
  /** every S3 request: whether its signature verified, its status, which access key signed it */
  readonly s3Requests: { at: number; status: number; verified: boolean; keyId: string; payload: string; method: string }[];
  /** the session credentials issued, by access key id */
  readonly sessions: Map<string, Session>;
  readonly objects: Map<string, Buffer>;
  /** the server's clock is this far from the test's (ms) */
  skewMs: number;
  /** another long-lived key the account has (a rotation's new key) */
  addKey(accessKeyId: string, secretAccessKey: string): void;
  readonly close: () => Promise<void>;
};

const xmlError = (res: ServerResponse, status: number, code: string, date: string) => {
  res.writeHead(status, { 'content-type': 'application/xml', date });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>FAKE</Message></Error></ErrorResponse>`,
  );
};

const amzTime = (d: string) => Date.parse(d.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));

export async function startAwsServer(opts: {
  region: string;
  /** the long-lived key STS knows */
  accessKeyId: string;
  secretAccessKey: string;
  ttlSeconds: number;
}): Promise<AwsServer> {
  const sessions = new Map<string, Session>();
  const longLived = new Map([[opts.accessKeyId, opts.secretAccessKey]]);
  const objects = new Map<string, Buffer>();
  const sts = { total: 0, refused: 0, refusals: [] as string[], policies: [] as (string | undefined)[], sessionNames: [] as string[] };
  const s3Requests: AwsServer['s3Requests'] = [];
  const state = { skewMs: 0 };
  const serverNow = () => Date.now() + state.skewMs;

  /** Verifies a request's signature; the reason it is refused, or the key that signed it. */
  async function verify(
    req: IncomingMessage,
    body: Buffer,
    service: string,
  ): Promise<{ ok: true; keyId: string; session?: Session; payload: string } | { ok: false; code: string; status: number }> {
    const auth = String(req.headers.authorization ?? '');
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m) return { ok: false, code: 'InvalidSignatureException', status: 403 };
    const [, keyId = '', , region, svc, signed = '', signature] = m;
    if (region !== opts.region || svc !== service) return { ok: false, code: 'SignatureDoesNotMatch', status: 403 };
    const date = String(req.headers['x-amz-date'] ?? '');
    const at = amzTime(date);
    if (!Number.isFinite(at)) return { ok: false, code: 'SignatureDoesNotMatch', status: 403 };
    if (Math.abs(at - serverNow()) > 15 * 60_000)
      return { ok: false, code: service === 's3' ? 'RequestTimeTooSkewed' : 'SignatureDoesNotMatch', status: 403 };
    const session = sessions.get(keyId);
    const secret = longLived.get(keyId) ?? session?.secretAccessKey;
    if (!secret) return { ok: false, code: 'InvalidClientTokenId', status: 403 };
    if (session) {
      if (req.headers['x-amz-security-token'] !== session.sessionToken) return { ok: false, code: 'InvalidToken', status: 403 };
      if (session.exp <= serverNow()) return { ok: false, code: 'ExpiredToken', status: 400 };
    }
    const names = signed.split(';');
    const headers: Record<string, string> = {};
    for (const n of names) {
      const v = req.headers[n];
      if (v === undefined) return { ok: false, code: 'SignatureDoesNotMatch', status: 403 };
      headers[n] = Array.isArray(v) ? v.join(',') : v;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const had = query[k];
      query[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
    }
    const host = String(req.headers.host ?? '');
    const signer = new SignatureV4({
      credentials: { accessKeyId: keyId, secretAccessKey: secret, ...(session ? { sessionToken: session.sessionToken } : {}) },
      region: opts.region,
      service,
      sha256: NodeSha256,
      uriEscapePath: service !== 's3',
      applyChecksum: false, // sign exactly the headers the request names, adding none
    });
    const theirs = await signer.sign(
      {
        method: req.method ?? 'GET',
        protocol: 'http:',
        hostname: host.split(':')[0] ?? '',
        path: url.pathname,
        query,
        headers,
        body: body.length > 0 ? body : undefined,
      },
      { signingDate: new Date(at), signableHeaders: new Set(names) },
    );
    const expected = /Signature=([0-9a-f]{64})$/.exec(String(theirs.headers.authorization))?.[1];
    if (expected !== signature) return { ok: false, code: 'SignatureDoesNotMatch', status: 403 };
    const payload = headers['x-amz-content-sha256'] ?? '';
    if (service === 's3') {
      if (!payload) return { ok: false, code: 'MissingSecurityHeader', status: 400 };
      const unsigned = payload === 'UNSIGNED-PAYLOAD' || payload === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
      if (!unsigned && createHash('sha256').update(body).digest('hex') !== payload)
        return { ok: false, code: 'XAmzContentSHA256Mismatch', status: 400 };
    }
    return { ok: true, keyId, ...(session ? { session } : {}), payload };
  }

  const stsServer = await listen(async (req, res) => {
    const body = await readBody(req);
    const date = new Date(serverNow()).toUTCString();
    sts.total++;
    const v = await verify(req, body, 'sts');
    if (!v.ok) {
      sts.refused++;
      sts.refusals.push(v.code);
      return xmlError(res, v.status, v.code, date);
    }
    if (!longLived.has(v.keyId)) {
      sts.refused++;
      return xmlError(res, 403, 'AccessDenied', date);
    }
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('Action') !== 'AssumeRole' || !form.get('RoleArn') || !form.get('RoleSessionName')) {
      sts.refused++;
      return xmlError(res, 400, 'ValidationError', date);
    }
    const policy = form.get('Policy') ?? undefined;
    sts.policies.push(policy);
    sts.sessionNames.push(form.get('RoleSessionName') ?? '');
    const keyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const session: Session = {
      secretAccessKey: `FAKE${randomBytes(27)
        .toString('base64')
        .replace(/[^A-Za-z0-9]/g, 'x')
        .slice(0, 36)}`,
      sessionToken: `FAKEtoken${randomBytes(48)
        .toString('base64')
        .replace(/[^A-Za-z0-9/+=]/g, 'x')}`,
      exp: serverNow() + opts.ttlSeconds * 1000,
      ...(policy ? { policy } : {}),
    };
    sessions.set(keyId, session);
    res.writeHead(200, { 'content-type': 'text/xml', date });
    res.end(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><AssumedRoleId>AROAFAKE:${form.get('RoleSessionName')}</AssumedRoleId><Arn>${form.get('RoleArn')}</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${keyId}</AccessKeyId>
      <SecretAccessKey>${session.secretAccessKey}</SecretAccessKey>
      <SessionToken>${session.sessionToken}</SessionToken>
      <Expiration>${new Date(session.exp).toISOString()}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>FAKE-request</RequestId></ResponseMetadata>
</AssumeRoleResponse>`);
  });

  const s3Server = await listen(async (req, res) => {
    const body = await readBody(req);
    const date = new Date(serverNow()).toUTCString();
    const v = await verify(req, body, 's3');
    const record = (status: number) =>
      s3Requests.push({
        at: Date.now(),
        status,
        verified: v.ok,
        keyId: v.ok ? v.keyId : '',
        payload: v.ok ? v.payload : '',
        method: req.method ?? '',
      });
    if (!v.ok) {
      record(v.status);
      return xmlError(res, v.status, v.code, date);
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const readOnly = v.session?.policy !== undefined && !v.session.policy.includes('s3:PutObject');
    if (req.method === 'PUT' && key) {
      if (readOnly) {
        record(403);
        return xmlError(res, 403, 'AccessDenied', date);
      }
      objects.set(`${bucket}/${key}`, body);
      record(200);
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"`, date });
      return res.end();
    }
    if (req.method === 'GET' && key) {
      const obj = objects.get(`${bucket}/${key}`);
      if (!obj) {
        record(404);
        return xmlError(res, 404, 'NoSuchKey', date);
      }
      record(200);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': obj.length, date });
      return res.end(obj);
    }
    if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
      const keys = [...objects.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1));
      record(200);
      res.writeHead(200, { 'content-type': 'application/xml', date });
      return res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${keys
          .map((k) => `<Contents><Key>${k}</Key><Size>${objects.get(`${bucket}/${k}`)?.length ?? 0}</Size></Contents>`)
          .join('')}</ListBucketResult>`,
      );
    }
    record(400);
    return xmlError(res, 400, 'InvalidRequest', date);
  });

  const stsPort = (stsServer.address() as AddressInfo).port;
  const s3Port = (s3Server.address() as AddressInfo).port;
  return {
    stsUrl: `http://127.0.0.1:${stsPort}/`,
    s3Base: `http://localhost:${s3Port}`,
    s3Host: `localhost:${s3Port}`,
    region: opts.region,
    sts,
    s3Requests,
    sessions,
    objects,
    get skewMs() {
      return state.skewMs;
    },
    set skewMs(v: number) {
      state.skewMs = v;
    },
    addKey: (id, secret) => void longLived.set(id, secret),
    close: () => Promise.all([close(stsServer), close(s3Server)]).then(() => {}),
  };
}
