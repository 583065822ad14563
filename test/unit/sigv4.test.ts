/**
 * SigV4 (core/credentials/sigv4.ts): AWS's documented example reproduced exactly (canonical
 * request hash, signing key, signature), and byte-for-byte agreement with the AWS SDK v3's signer
 * (@smithy/signature-v4) and with aws4 on requests of many shapes. Example keys are AWS's own
 * published fakes.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import aws4 from 'aws4';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.ts';
import { amzDate, escapeUri, signingKey, signV4 } from '../../src/core/credentials/sigv4.ts';
import { NodeSha256 } from '../harness/aws.ts';

// AWS's documented example ("Create a signed AWS API request", IAM ListUsers, 2015-08-30)
const EXAMPLE = {
  creds: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  now: Date.UTC(2015, 7, 30, 12, 36, 0),
};

describe('SigV4: AWS’s documented example', () => {
  it('reproduces the canonical request, the signing key and the signature', async () => {
    const signed = await signV4(
      {
        method: 'GET',
        url: 'https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      },
      EXAMPLE.creds,
      { region: 'us-east-1', service: 'iam', now: EXAMPLE.now },
    );
    expect(signed.canonicalRequest).toBe(
      [
        'GET',
        '/',
        'Action=ListUsers&Version=2010-05-08',
        'content-type:application/x-www-form-urlencoded; charset=utf-8',
        'host:iam.amazonaws.com',
        'x-amz-date:20150830T123600Z',
        '',
        'content-type;host;x-amz-date',
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      ].join('\n'),
    );
    expect(signed.stringToSign.split('\n').at(-1)).toBe('f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59');
    expect(toHex(await signingKey(EXAMPLE.creds.secretAccessKey, '20150830', 'us-east-1', 'iam'))).toBe(
      'c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9',
    );
    expect(signed.signature).toBe('5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7');
    expect(signed.headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    );
  });

  it('encodes as RFC 3986 says, and dates as AWS writes them', () => {
    expect(escapeUri("a b/c!'()*~-_.ü")).toBe('a%20b%2Fc%21%27%28%29%2A~-_.%C3%BC');
    expect(amzDate(EXAMPLE.now)).toBe('20150830T123600Z');
  });
});

type Case = {
  method: string;
  url: string;
  service: string;
  headers: Record<string, string>;
  body?: string;
  session?: boolean;
  unsigned?: boolean;
};

const CASES: Case[] = [
  { method: 'GET', url: 'https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15', service: 'sts', headers: {} },
  {
    method: 'POST',
    url: 'https://sts.us-east-1.amazonaws.com/',
    service: 'sts',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: 'Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FFAKE&RoleSessionName=keyhole&Version=2011-06-15',
  },
  {
    method: 'PUT',
    url: 'https://fake-bucket.s3.eu-west-1.amazonaws.com/a%20key/with%2Bplus/%C3%BC.txt',
    service: 's3',
    headers: { 'content-type': 'text/plain', 'x-amz-meta-owner': '  many   spaces  here ' },
    body: 'hello, bucket',
    session: true,
  },
  {
    method: 'GET',
    url: 'https://fake-bucket.s3.amazonaws.com/dir//double/./dot?list-type=2&prefix=a%2Fb&max-keys=10&continuation-token=a%2Bb%3D',
    service: 's3',
    headers: {},
    unsigned: true,
  },
  {
    method: 'POST',
    url: 'https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/my%20fn/invocations?Qualifier=%24LATEST',
    service: 'lambda',
    headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
    body: '{"ping":"ü \\n tab\\t"}',
    session: true,
  },
  {
    method: 'GET',
    url: 'https://abc123.execute-api.us-east-1.amazonaws.com/prod/a/./b/../c/space%20here?z=1&a=2&a=1&empty=',
    service: 'execute-api',
    headers: { 'x-custom': 'a\tb' },
  },
];

// the signers check no shapes: an id in the style of AWS's documented AKIDEXAMPLE
const CREDS = { accessKeyId: 'AKIDFAKEKEYHOLE00001', secretAccessKey: 'FAKE/secret+key/for+tests/only/000000000' };
const SESSION = 'FAKE-session-token//+==';

describe('SigV4 against the reference signers, byte for byte', () => {
  for (const c of CASES) {
    it(`${c.service} ${c.method} ${new URL(c.url).pathname}: the same signature as @smithy/signature-v4`, async () => {
      const now = Date.UTC(2026, 10, 30, 1, 2, 3);
      const creds = c.session ? { ...CREDS, sessionToken: SESSION } : CREDS;
      const url = new URL(c.url);
      const headers = { host: url.host, ...c.headers, ...(c.unsigned ? { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } : {}) };
      const smithy = new SignatureV4({
        credentials: creds,
        region: 'us-east-1',
        service: c.service,
        sha256: NodeSha256,
        uriEscapePath: c.service !== 's3',
      });
      const query: Record<string, string | string[]> = {};
      for (const [k, v] of url.searchParams) {
        const had = query[k];
        query[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
      }
      const theirs = await smithy.sign(
        { method: c.method, protocol: 'https:', hostname: url.hostname, path: url.pathname, query, headers: { ...headers }, body: c.body },
        { signingDate: new Date(now) },
      );
      const ours = await signV4({ method: c.method, url: c.url, headers, body: c.body }, creds, {
        region: 'us-east-1',
        service: c.service,
        now,
        contentSha256Header: true,
      });
      expect(ours.headers.authorization).toBe(theirs.headers.authorization);
      for (const h of ['x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) expect(ours.headers[h]).toBe(theirs.headers[h]);
    });

    it(`${c.service} ${c.method} ${new URL(c.url).pathname}: the same signature as aws4, on aws4's headers`, async () => {
      const now = Date.UTC(2026, 10, 30, 1, 2, 3);
      const creds = c.session ? { ...CREDS, sessionToken: SESSION } : CREDS;
      const url = new URL(c.url);
      const opts = {
        host: url.host,
        path: `${url.pathname}${url.search}`,
        method: c.method,
        service: c.service,
        region: 'us-east-1',
        headers: { ...c.headers, 'X-Amz-Date': amzDate(now), ...(c.unsigned ? { 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' } : {}) },
        ...(c.body !== undefined ? { body: c.body } : {}),
      };
      const signed = aws4.sign(opts, creds) as { headers: Record<string, string> };
      // the headers aws4 chose to send (it adds content-length and, for S3, the payload hash)
      const sent: Record<string, string> = {};
      for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'authorization') sent[k] = String(v);
      const ours = await signV4({ method: c.method, url: c.url, headers: sent, body: c.body }, creds, {
        region: 'us-east-1',
        service: c.service,
        now,
      });
      // aws4 leaves content-length out of the signed headers; compare on the headers both signed
      const signedBy = (auth: string) => /SignedHeaders=([^,]+)/.exec(auth)?.[1];
      const theirs = signed.headers.Authorization as string;
      if (signedBy(theirs) === signedBy(ours.headers.authorization as string)) expect(ours.headers.authorization).toBe(theirs);
      else {
        const only = (signedBy(theirs) ?? '').split(';');
        const again = await signV4(
          {
            method: c.method,
            url: c.url,
            headers: Object.fromEntries(Object.entries(sent).filter(([k]) => only.includes(k.toLowerCase()))),
            body: c.body,
          },
          creds,
          { region: 'us-east-1', service: c.service, now },
        );
        expect(again.headers.authorization).toBe(theirs);
      }
    });
  }
});
