/**
 * The `aws` kind's configuration, how a page's request is re-signed (core/credentials/aws.ts),
 * and what a grant may narrow a credential to (core/credentials/narrowing.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  checkAwsConfig,
  checkSessionPolicy,
  MAX_SESSION_POLICY,
  signingPlan,
  UNSIGNED_ABOVE_BYTES,
} from '../../src/core/credentials/aws.ts';
import { checkNarrowing, describeNarrowing, narrowingFits, slotId, slotSecret } from '../../src/core/credentials/narrowing.ts';
import { CoreError } from '../../src/core/errors.ts';

const ROLE = { roleArn: 'arn:aws:iam::123456789012:role/keyhole-fake', sessionName: 'agent', durationSeconds: 900 };
const message = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof CoreError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'accepted';
};

describe('aws configuration', () => {
  it('takes a region and a service, and an AssumeRole with the region’s STS endpoint by default', () => {
    expect(checkAwsConfig({ region: 'eu-west-1', service: 's3' })).toEqual({ region: 'eu-west-1', service: 's3' });
    expect(checkAwsConfig({ region: 'us-gov-west-1', service: 'execute-api', assumeRole: ROLE })).toEqual({
      region: 'us-gov-west-1',
      service: 'execute-api',
      assumeRole: { ...ROLE, endpoint: 'https://sts.us-gov-west-1.amazonaws.com/' },
    });
    expect(checkAwsConfig({ region: 'eu-west-1', service: 'sts', assumeRole: { roleArn: ROLE.roleArn } }).assumeRole).toMatchObject({
      sessionName: 'keyhole',
      durationSeconds: 3600,
    });
  });

  it('refuses each bad field with a message naming it', () => {
    const cases: [unknown, string][] = [
      [undefined, 'aws settings'],
      [{ region: 'Europe', service: 's3' }, 'region'],
      [{ region: 'eu-west-1', service: '' }, 'service'],
      [{ region: 'eu-west-1', service: 's3', assumeRole: { ...ROLE, roleArn: 'arn:aws:iam::123456789012:user/FAKE' } }, 'role ARN'],
      [{ region: 'eu-west-1', service: 's3', assumeRole: { ...ROLE, sessionName: 'has space' } }, 'session name'],
      [{ region: 'eu-west-1', service: 's3', assumeRole: { ...ROLE, durationSeconds: 899 } }, 'duration'],
      [{ region: 'eu-west-1', service: 's3', assumeRole: { ...ROLE, durationSeconds: 43_201 } }, 'duration'],
      [{ region: 'eu-west-1', service: 's3', assumeRole: { ...ROLE, endpoint: 'http://sts.example.com/' } }, 'STS endpoint'],
    ];
    for (const [input, says] of cases) expect(message(() => checkAwsConfig(input))).toMatch(new RegExp(`^bad-input: .*${says}`));
  });
});

describe('re-signing a page’s request', () => {
  const sdkHeaders = {
    authorization: 'AWS4-HMAC-SHA256 Credential=placeholder/20261130/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00',
    'x-amz-date': '20261130T000000Z',
    'x-amz-security-token': 'placeholder',
    'x-amz-content-sha256': 'f'.repeat(64),
    'x-amz-user-agent': 'aws-sdk-js/3',
    'content-type': 'text/plain',
  };

  it('drops the placeholder signature headers and keeps the request’s own', () => {
    const plan = signingPlan('s3', sdkHeaders, 10);
    expect(plan.headers).toEqual({ 'x-amz-user-agent': 'aws-sdk-js/3', 'content-type': 'text/plain' });
    expect(plan).toMatchObject({ unsignedPayload: false, contentSha256Header: true });
  });

  it('S3: UNSIGNED-PAYLOAD above the threshold, or when the SDK streams with unsigned trailers; other services: the hash', () => {
    expect(signingPlan('s3', {}, UNSIGNED_ABOVE_BYTES + 1).unsignedPayload).toBe(true);
    expect(signingPlan('s3', {}, UNSIGNED_ABOVE_BYTES).unsignedPayload).toBe(false);
    const trailer = signingPlan('s3', { 'X-Amz-Content-Sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' }, 10);
    expect([trailer.unsignedPayload, trailer.headers['x-amz-content-sha256']]).toEqual([true, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER']);
    expect(signingPlan('execute-api', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, 10 ** 6)).toMatchObject({
      unsignedPayload: false,
      contentSha256Header: false,
      headers: {},
    });
  });

  it('refuses a body chunk-signed with the placeholder key', () => {
    expect(message(() => signingPlan('s3', { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' }, 10))).toMatch(/chunk-signed/);
  });
});

describe('narrowing a grant', () => {
  it('checks and orders what it is given, so one narrowing has one slot', async () => {
    const a = checkNarrowing({ repositories: ['web', 'api', 'web'], permissions: { metadata: 'read', contents: 'read' } });
    const b = checkNarrowing({ permissions: { contents: 'read', metadata: 'read' }, repositories: ['api', 'web'] });
    expect(a).toEqual({ repositories: ['api', 'web'], permissions: { contents: 'read', metadata: 'read' } });
    expect(await slotId('s1', a)).toBe(await slotId('s1', b));
    expect(await slotId('s1', a)).not.toBe(await slotId('s1', checkNarrowing({ repositories: ['api'] })));
    expect(await slotId('s1', undefined)).toBe('s1');
    const slot = await slotId('s1', a);
    expect(slotSecret(slot)).toBe('s1');
    expect(slot).not.toContain('web'); // stored in clear: a digest only
    expect(describeNarrowing(a)).toEqual(['repositories: api, web', 'permissions: contents: read, metadata: read']);
  });

  it('refuses what is not a narrowing', () => {
    for (const bad of [
      'all',
      { repos: ['x'] },
      { repositories: [] },
      { repositories: ['owner/name'] },
      { permissions: { contents: 'everything' } },
      { permissions: { 'Contents!': 'read' } },
      { sessionPolicy: 'not json' },
      { sessionPolicy: { Version: '2012-10-17' } },
      { sessionPolicy: { Statement: [{ Resource: 'x'.repeat(MAX_SESSION_POLICY) }] } },
    ])
      expect(message(() => checkNarrowing(bad))).toMatch(/^bad-input: /);
    expect(checkNarrowing(undefined)).toBeUndefined();
  });

  it('fits only the kinds that can take it', () => {
    const github = { repositories: ['api'] };
    const policy = { sessionPolicy: checkSessionPolicy({ Statement: [] }) };
    expect(narrowingFits('github-app', false, github)).toBe(true);
    expect(narrowingFits('static', false, github)).toBe(false);
    expect(narrowingFits('aws', true, policy)).toBe(true);
    expect(narrowingFits('aws', false, policy)).toBe(false); // a long-lived key cannot be narrowed
    expect(narrowingFits('github-app', false, policy)).toBe(false);
  });
});
