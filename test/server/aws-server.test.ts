/**
 * The AWS-shaped test servers (test/harness/aws-server.ts) against Keyhole's own signer in Node:
 * they accept what Keyhole signs, and refuse a request whose signature, key, session token, date
 * or body does not hold, as AWS does. The e2e tests rely on both halves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assumeRoleRequest, parseAssumeRoleResponse } from '../../src/core/credentials/aws.ts';
import { type AwsCredentials, signV4 } from '../../src/core/credentials/sigv4.ts';
import { FAKE_SECRET, fakeKeyId } from '../harness/aws.ts';
import { type AwsServer, startAwsServer } from '../harness/aws-server.ts';

const REGION = 'eu-west-1';
const KEY: AwsCredentials = { accessKeyId: fakeKeyId('AKIA'), secretAccessKey: FAKE_SECRET };
const ROLE = { region: REGION, roleArn: 'arn:aws:iam::123456789012:role/keyhole-fake', sessionName: 'unit', durationSeconds: 900 };

describe('AWS-shaped servers verify every signature', () => {
  let aws: AwsServer;
  beforeAll(async () => {
    aws = await startAwsServer({ region: REGION, accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey, ttlSeconds: 60 });
  });
  afterAll(() => aws?.close());

  const assume = async (keys: AwsCredentials, now = Date.now()) => {
    const req = await assumeRoleRequest({ ...ROLE, endpoint: aws.stsUrl }, keys, now);
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body });
    return { status: res.status, body: await res.text(), date: res.headers.get('date') };
  };
  const s3 = async (keys: AwsCredentials, method: string, path: string, body?: string, tamper?: (h: Record<string, string>) => void) => {
    const url = `${aws.s3Base}${path}`;
    const signed = await signV4({ method, url, headers: {}, ...(body ? { body } : {}) }, keys, {
      region: REGION,
      service: 's3',
      now: Date.now(),
      contentSha256Header: true,
    });
    const headers = { ...signed.headers };
    delete headers.host;
    tamper?.(headers);
    const res = await fetch(url, { method, headers, ...(body ? { body } : {}) });
    return { status: res.status, body: await res.text() };
  };

  it('AssumeRole signed by Keyhole mints session credentials that sign S3 requests', async () => {
    const r = await assume(KEY);
    expect(r.status, r.body).toBe(200);
    const session = parseAssumeRoleResponse(r.status, r.body, Date.now(), r.date);
    expect(session.accessKeyId.startsWith('ASIA')).toBe(true);
    expect((await s3(session, 'PUT', '/b/k.txt', 'FAKE body')).status).toBe(200);
    const got = await s3(session, 'GET', '/b/k.txt');
    expect([got.status, got.body]).toEqual([200, 'FAKE body']);
    expect((await s3(KEY, 'GET', '/b?list-type=2')).body).toContain('<Key>k.txt</Key>');
  });

  it('refuses a wrong secret, a changed header, a changed body, a missing session token and a stale date', async () => {
    const wrong = { ...KEY, secretAccessKey: FAKE_SECRET.replace('F', 'G') };
    expect((await assume(wrong)).body).toContain('SignatureDoesNotMatch');
    expect((await s3(wrong, 'GET', '/b/k.txt')).body).toContain('SignatureDoesNotMatch');
    expect(
      (await s3(KEY, 'PUT', '/b/k.txt', 'FAKE body', (h) => (h['x-amz-date'] = h['x-amz-date']?.replace(/.$/, '9') ?? ''))).status,
    ).toBe(403);
    const bodySwap = await s3(KEY, 'PUT', '/b/k.txt', 'FAKE body', (h) => (h['x-amz-content-sha256'] = '0'.repeat(64)));
    expect(bodySwap.status).toBe(403); // the hash is signed: changing it breaks the signature
    const r = await assume(KEY);
    const session = parseAssumeRoleResponse(r.status, r.body, Date.now(), r.date);
    const noToken = await s3(session, 'GET', '/b/k.txt', undefined, (h) => delete h['x-amz-security-token']);
    expect([noToken.status, noToken.body.includes('SignatureDoesNotMatch') || noToken.body.includes('InvalidToken')]).toEqual([403, true]);
    const stale = await assume(KEY, Date.now() - 20 * 60_000);
    expect(stale.status).toBe(403);
    expect(() => parseAssumeRoleResponse(stale.status, stale.body, Date.now() - 20 * 60_000, stale.date)).toThrow(
      expect.objectContaining({ code: 'clock-skew' }),
    );
    expect(aws.s3Requests.filter((x) => !x.verified).length).toBeGreaterThanOrEqual(3);
  });
});
