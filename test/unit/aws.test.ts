/**
 * AWS keys and STS AssumeRole (core/credentials/aws.ts): keys checked by shape; the AssumeRole
 * request signed exactly as the AWS SDK v3's signer signs it; STS's XML answer read without a
 * DOM, and every broken or hostile answer refused with a typed error that holds no key. Keys are
 * obvious fakes (test/harness/aws.ts).
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { assumeRoleRequest, checkAwsKeys, parseAssumeRoleResponse } from '../../src/core/credentials/aws.ts';
import { CredentialError } from '../../src/core/credentials/errors.ts';
import { FAKE_SECRET, FAKE_SESSION_SECRET, FAKE_SESSION_TOKEN, fakeKeyId, NodeSha256 } from '../harness/aws.ts';

const KEYS = { accessKeyId: fakeKeyId('AKIA'), secretAccessKey: FAKE_SECRET };
const SESSION_ID = fakeKeyId('ASIA');
const NOW = Date.UTC(2026, 10, 30, 3, 0, 0);
const codeOf = (f: () => unknown): { code: string; awsError?: string; serverTime?: number; message: string } => {
  try {
    f();
  } catch (e) {
    if (e instanceof CredentialError) return { code: e.code, ...e.detail, message: e.message };
    throw e;
  }
  return { code: 'accepted', message: '' };
};

const answer = (x: { id?: string; secret?: string; token?: string; expiration?: string; extra?: string } = {}) => `<?xml version="1.0"?>
<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>keyhole</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/keyhole</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:keyhole</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${x.id ?? SESSION_ID}</AccessKeyId>
      <SecretAccessKey>${x.secret ?? FAKE_SESSION_SECRET}</SecretAccessKey>
      <SessionToken>${x.token ?? FAKE_SESSION_TOKEN}</SessionToken>
      <Expiration>${x.expiration ?? '2026-11-30T04:00:00Z'}</Expiration>
    </Credentials>${x.extra ?? ''}
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`;
const error = (code: string) =>
  `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>User: arn:aws:iam::123456789012:user/FAKE is not authorized, key ${KEYS.secretAccessKey}</Message></Error><RequestId>x</RequestId></ErrorResponse>`;

describe('AWS access keys', () => {
  it('takes keys of the documented shapes, and refuses others saying nothing of them', () => {
    expect(checkAwsKeys(KEYS)).toEqual(KEYS);
    expect(checkAwsKeys({ ...KEYS, accessKeyId: SESSION_ID, sessionToken: FAKE_SESSION_TOKEN }).sessionToken).toBe(FAKE_SESSION_TOKEN);
    for (const bad of [
      { ...KEYS, accessKeyId: fakeKeyId('AKIA').toLowerCase() },
      { ...KEYS, accessKeyId: 'AKIA123' },
      { ...KEYS, secretAccessKey: `${KEYS.secretAccessKey}X` },
      { ...KEYS, secretAccessKey: `${FAKE_SECRET.slice(0, 20)} ${FAKE_SECRET.slice(21)}` },
      { ...KEYS, sessionToken: 'has a space in it, FAKE' },
      { accessKeyId: KEYS.accessKeyId },
      {},
    ]) {
      const r = codeOf(() => checkAwsKeys(bad));
      expect(r.code).toBe('bad-aws-key');
      expect(r.message).not.toContain('FAKE');
    }
  });
});

describe('STS AssumeRole', () => {
  it('signs the request exactly as the AWS SDK v3 signer does, with the session policy when a grant narrows it', async () => {
    const role = {
      endpoint: 'https://sts.eu-west-1.amazonaws.com/',
      region: 'eu-west-1',
      roleArn: 'arn:aws:iam::123456789012:role/keyhole-agent',
      sessionName: 'keyhole-agent-1',
      durationSeconds: 900,
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::fake/*' }],
      }),
    };
    const req = await assumeRoleRequest(role, KEYS, NOW);
    const form = new URLSearchParams(req.body);
    expect(Object.fromEntries(form)).toEqual({
      Action: 'AssumeRole',
      Version: '2011-06-15',
      RoleArn: role.roleArn,
      RoleSessionName: role.sessionName,
      DurationSeconds: '900',
      Policy: role.policy,
    });
    const smithy = new SignatureV4({ credentials: KEYS, region: 'eu-west-1', service: 'sts', sha256: NodeSha256, applyChecksum: false });
    const theirs = await smithy.sign(
      {
        method: 'POST',
        protocol: 'https:',
        hostname: 'sts.eu-west-1.amazonaws.com',
        path: '/',
        query: {},
        headers: { host: 'sts.eu-west-1.amazonaws.com', 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: req.body,
      },
      { signingDate: new Date(NOW) },
    );
    expect(req.headers.authorization).toBe(theirs.headers.authorization);
  });

  it('reads STS’s answer: the session credentials and their expiry', () => {
    const c = parseAssumeRoleResponse(200, answer(), NOW);
    expect(c).toEqual({
      accessKeyId: SESSION_ID,
      secretAccessKey: FAKE_SESSION_SECRET,
      sessionToken: FAKE_SESSION_TOKEN,
      notAfter: Date.UTC(2026, 10, 30, 4),
    });
  });

  it('refuses broken and hostile answers with a typed error holding no key', () => {
    const cases: [number, string, string | null, Partial<ReturnType<typeof codeOf>>][] = [
      [403, error('AccessDenied'), null, { code: 'invalid-grant', awsError: 'AccessDenied' }],
      [403, error('ExpiredToken'), null, { code: 'invalid-grant', awsError: 'ExpiredToken' }],
      [400, error('ValidationError'), null, { code: 'aws-error', awsError: 'ValidationError' }],
      [400, error('RequestExpired'), 'Mon, 30 Nov 2026 03:20:00 GMT', { code: 'clock-skew', serverTime: Date.UTC(2026, 10, 30, 3, 20) }],
      [403, error('SignatureDoesNotMatch'), 'Mon, 30 Nov 2026 03:20:00 GMT', { code: 'clock-skew' }],
      [403, error('SignatureDoesNotMatch'), 'Mon, 30 Nov 2026 03:01:00 GMT', { code: 'aws-error', awsError: 'SignatureDoesNotMatch' }],
      [500, '<html>oops</html>', null, { code: 'http-status' }],
      [200, '<html>ASIA in html</html>', null, { code: 'not-json' }],
      [
        200,
        answer({ extra: `<Credentials><AccessKeyId>${fakeKeyId('ASIA', 'EVIL')}</AccessKeyId></Credentials>` }),
        null,
        { code: 'not-json' },
      ],
      [200, answer().replace(/<SessionToken>[^<]*<\/SessionToken>/, ''), null, { code: 'no-access-token' }],
      [200, answer({ secret: 'short' }), null, { code: 'bad-token' }],
      [200, answer({ id: 'not-a-key-id' }), null, { code: 'bad-token' }],
      [200, answer({ token: 'has spaces &amp; more' }), null, { code: 'bad-token' }],
      [200, answer({ expiration: '2026-11-30T02:00:00Z' }), null, { code: 'bad-expires-in' }],
      [200, answer({ expiration: '2026-12-01T04:00:00Z' }), null, { code: 'bad-expires-in' }],
      [200, answer({ expiration: 'tomorrow' }), null, { code: 'bad-expires-in' }],
    ];
    for (const [status, body, date, expected] of cases) {
      const r = codeOf(() => parseAssumeRoleResponse(status, body, NOW, date));
      expect({ body: body.slice(0, 80), ...r }).toMatchObject({ body: body.slice(0, 80), ...expected });
      expect(r.message).not.toContain('FAKE');
    }
  });
});
