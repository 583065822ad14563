/**
 * AWS in Chromium (issue 14): the person enters an access key; the worker signs every request
 * with SigV4 (brokered only), with the key itself or with session credentials it mints at an
 * STS-shaped server by AssumeRole; an S3-shaped server verifies every signature with
 * @smithy/signature-v4 and refuses a bad one. An agent page calls S3 brokered for over two session
 * lifetimes, the unmodified AWS SDK v3 S3 client works through the Keyhole SDK's fetch, a grant
 * narrowed by a session policy can read and not write (AWS says no, not Keyhole), a transparent
 * grant is refused with a reason, and AWS's clock is learned from a clock-skew answer.
 */
import type { Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_SECRET, fakeKeyId } from '../harness/aws.ts';
import { type AwsServer, startAwsServer } from '../harness/aws-server.ts';
import { type Harness, launch, OPTIONS, rpc, rpcOk } from '../harness/browser.ts';
import { pageAndAudit } from '../harness/canary.ts';
import { callContinuously } from '../harness/continuous.ts';
import { approve, grantForPeriod, openConsent, request } from '../harness/provider.ts';
import { findEverywhere } from '../harness/scan.ts';
import { appServer } from '../harness/servers.ts';
import { vendorApp } from '../harness/vendors.ts';

const TTL_S = 5;
const REGION = 'eu-west-1';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/keyhole-fake';
const KEY_ID = fakeKeyId('AKIA');
const READ_ONLY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };

describe('AWS credentials in the browser', () => {
  let h: Harness;
  let aws: AwsServer;
  let app: Awaited<ReturnType<typeof appServer>>;
  let other: Awaited<ReturnType<typeof appServer>>;
  let sdkApp: Awaited<ReturnType<typeof vendorApp>>;
  let options: Page;
  let agent: Page;
  const observed: string[] = [];

  const ok = <T>(method: string, params?: unknown) => rpcOk<T>(options, method, params);
  const secret = (name: string, extra: { assumeRole?: Record<string, unknown>; material?: unknown; aws?: unknown } = {}) => ({
    name,
    kind: 'aws',
    rule: { hosts: [aws.s3Host], header: 'Authorization', template: '{value}' },
    aws: extra.aws ?? { region: REGION, service: 's3', ...(extra.assumeRole ? { assumeRole: extra.assumeRole } : {}) },
    material: extra.material ?? { accessKeyId: KEY_ID, secretAccessKey: FAKE_SECRET },
  });
  const role = (sessionName: string) => ({ endpoint: aws.stsUrl, roleArn: ROLE_ARN, sessionName, durationSeconds: 900 });
  const see = async <T>(page: Page, method: string, params?: unknown) => {
    const answer = await request<T>(page, method, params);
    observed.push(JSON.stringify(answer));
    return answer;
  };

  beforeAll(async () => {
    [aws, app, other, sdkApp] = await Promise.all([
      startAwsServer({ region: REGION, accessKeyId: KEY_ID, secretAccessKey: FAKE_SECRET, ttlSeconds: TTL_S }),
      appServer(),
      appServer(),
      vendorApp('cloud'),
    ]);
    h = await launch();
    options = await h.open(OPTIONS);
    await ok('vault.create', { passphrase: 'aws test passphrase FAKE', kdf: 'pbkdf2-sha256' });
    await ok('settings.set', { requestsPerMinute: 100_000 });
    agent = await h.context.newPage();
    await agent.goto(`http://127.0.0.1:${app.port}/`);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([aws?.close(), app?.close(), other?.close(), sdkApp?.close()]);
  });

  it('refuses what is not an AWS key or configuration, with a clear error and nothing stored', async () => {
    const bad = [
      secret('bad-1', { aws: { service: 's3' } }),
      secret('bad-2', { aws: { region: REGION, service: 'S3 bucket' } }),
      secret('bad-3', { assumeRole: { ...role('x'), roleArn: 'arn:aws:iam::12:user/FAKE' } }),
      secret('bad-4', { assumeRole: { ...role('x'), durationSeconds: 60 } }),
      secret('bad-5', { material: { accessKeyId: KEY_ID, secretAccessKey: FAKE_SECRET.slice(1) } }),
      secret('bad-6', { material: { accessKeyId: 'FAKE-not-a-key-id', secretAccessKey: FAKE_SECRET } }),
      secret('bad-7', { assumeRole: { ...role('x'), endpoint: 'http://sts.example.com/' } }),
    ];
    for (const input of bad) {
      const r = await rpc<{ ok: boolean; error?: { code: string; message: string } }>(options, 'secrets.create', input);
      expect({ name: input.name, ok: r.ok, code: r.error?.code }).toEqual({ name: input.name, ok: false, code: 'bad-input' });
      expect(r.error?.message).not.toContain(FAKE_SECRET.slice(1));
    }
    expect((await ok<{ secrets: unknown[] }>('secrets.list')).secrets).toHaveLength(0);
  });

  it('signs with the access key itself, brokered: S3 verifies every signature; a transparent grant is refused, saying why', async () => {
    await ok('secrets.create', secret('aws-static'));
    expect((await grantForPeriod(h.context, agent, { secrets: ['aws-static'], mode: 'broker' })).ok).toBe(true);
    const put = await see<{ status: number }>(agent, 'keyhole_fetch', {
      secret: 'aws-static',
      url: `${aws.s3Base}/fake-bucket/hello.txt`,
      method: 'PUT',
      body: 'hello from an agent',
      headers: { 'content-type': 'text/plain' },
    });
    expect(put.ok && put.result.status).toBe(200);
    const get = await see<{ status: number; body: string }>(agent, 'keyhole_fetch', {
      secret: 'aws-static',
      url: `${aws.s3Base}/fake-bucket/hello.txt`,
    });
    expect(get.ok && [get.result.status, Buffer.from(get.result.body, 'base64').toString()]).toEqual([200, 'hello from an agent']);
    expect(aws.s3Requests.map((r) => [r.verified, r.keyId])).toEqual([
      [true, KEY_ID],
      [true, KEY_ID],
    ]);
    // a large body is signed UNSIGNED-PAYLOAD (S3 allows it), a small one with its hash
    const big = 'x'.repeat(100 * 1024);
    const putBig = await see<{ status: number }>(agent, 'keyhole_fetch', {
      secret: 'aws-static',
      url: `${aws.s3Base}/fake-bucket/big.txt`,
      method: 'PUT',
      body: big,
    });
    expect(putBig.ok && putBig.result.status).toBe(200);
    expect(aws.s3Requests.map((r) => r.payload.length === 64 || r.payload)).toEqual([true, true, 'UNSIGNED-PAYLOAD']);
    expect(aws.objects.get('fake-bucket/big.txt')?.length).toBe(big.length);

    const shown = h.context.waitForEvent('page', { predicate: (p) => p.url().includes('/src/popup/consent.html') });
    const answer = request(agent, 'keyhole_requestGrant', { secrets: ['aws-static'], mode: 'transparent' });
    const consent = await shown;
    // nothing can be allowed: the window says why and offers only Deny
    await consent.waitForSelector('#brokered-only');
    expect(await consent.locator('#brokered-only').textContent()).toContain('aws-static');
    expect(await consent.locator('#allow-period').count()).toBe(0);
    await consent.click('#deny');
    const refused = await answer;
    expect(refused.ok === false && [refused.error.code, refused.error.data]).toEqual([4001, { reason: 'brokered-only' }]);
  });

  it('mints session credentials by AssumeRole for over two lifetimes: no failure, one mint per lifetime', async () => {
    await ok('secrets.create', secret('aws-role', { assumeRole: role('keyhole-e2e') }));
    expect((await grantForPeriod(h.context, agent, { secrets: ['aws-role'], mode: 'broker' })).ok).toBe(true);
    const put = await see<{ status: number }>(agent, 'keyhole_fetch', {
      secret: 'aws-role',
      url: `${aws.s3Base}/v1/ping`,
      method: 'PUT',
      body: 'pong',
    });
    expect(put.ok ? put.result.status : [put.error, aws.sts.refusals]).toBe(200);
    const before = aws.sts.sessionNames.length;
    const started = Date.now();
    const outcomes = await callContinuously(agent, aws.s3Host, 'aws-role', 2.3 * TTL_S * 1000, ['broker']);
    const lifetimes = (Date.now() - started) / (TTL_S * 1000);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(outcomes.length).toBeGreaterThan(20);
    const mints = aws.sts.sessionNames.length - before;
    expect(mints).toBeGreaterThanOrEqual(Math.floor(lifetimes / 0.9));
    expect(mints).toBeLessThanOrEqual(Math.ceil(lifetimes / 0.75) + 1);
    expect(aws.sts.refused).toBe(0);
    const during = aws.s3Requests.filter((r) => r.at >= started);
    expect(during.every((r) => r.verified && r.keyId.startsWith('ASIA') && r.status === 200)).toBe(true);
  });

  it('concurrent first calls make one AssumeRole request', async () => {
    await ok('secrets.create', secret('aws-cold', { assumeRole: role('keyhole-cold') }));
    expect((await grantForPeriod(h.context, agent, { secrets: ['aws-cold'], mode: 'broker' })).ok).toBe(true);
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        see<{ status: number }>(agent, 'keyhole_fetch', { secret: 'aws-cold', url: `${aws.s3Base}/v1/ping` }),
      ),
    );
    expect(answers.map((a) => (a.ok ? a.result.status : a.error.code))).toEqual(Array(30).fill(200));
    expect(aws.sts.sessionNames.filter((n) => n === 'keyhole-cold')).toHaveLength(1);
  });

  it('the unmodified AWS SDK v3 S3 client works through the Keyhole fetch, with placeholder credentials', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://127.0.0.1:${sdkApp.port}/`);
    await page.waitForFunction(() => (window as unknown as { vendorsReady?: boolean }).vendorsReady === true);
    expect((await grantForPeriod(h.context, page, { secrets: ['aws-role'], mode: 'broker' })).ok).toBe(true);
    const before = aws.s3Requests.length;
    const result = await page.evaluate(
      async ([endpoint, region]) => {
        type Ctor = new (...a: unknown[]) => { send(c: unknown): Promise<Record<string, unknown>> };
        const w = window as unknown as {
          keyhole: { connect(): Promise<{ fetchFor(s: string): typeof fetch }> };
          vendors: { S3Client: Ctor; PutObjectCommand: Ctor; GetObjectCommand: Ctor; ListObjectsV2Command: Ctor };
        };
        const keyhole = await w.keyhole.connect();
        const { S3Client, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } = w.vendors;
        const s3 = new S3Client({
          region,
          endpoint,
          forcePathStyle: true,
          credentials: { accessKeyId: 'placeholder', secretAccessKey: 'placeholder' },
          requestHandler: { customFetch: keyhole.fetchFor('aws-role') },
        });
        await s3.send(new PutObjectCommand({ Bucket: 'sdk-bucket', Key: 'notes/today.txt', Body: 'written by the AWS SDK' }));
        const got = await s3.send(new GetObjectCommand({ Bucket: 'sdk-bucket', Key: 'notes/today.txt' }));
        const text = await (got.Body as { transformToString(): Promise<string> }).transformToString();
        const list = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-bucket' }));
        let refused = '';
        try {
          await s3.send(new GetObjectCommand({ Bucket: 'sdk-bucket', Key: 'missing' }));
        } catch (e) {
          refused = (e as { name: string }).name;
        }
        return { text, keys: (list.Contents as { Key: string }[]).map((c) => c.Key), refused };
      },
      [aws.s3Base, REGION] as const,
    );
    observed.push(JSON.stringify(result));
    expect(result).toEqual({ text: 'written by the AWS SDK', keys: ['notes/today.txt'], refused: 'NoSuchKey' });
    const sdk = aws.s3Requests.slice(before);
    expect(sdk.map((r) => [r.method, r.verified])).toEqual([
      ['PUT', true],
      ['GET', true],
      ['GET', true],
      ['GET', true],
    ]);
    await page.close();
  });

  it('a grant narrowed by a session policy gets sessions with exactly that policy: reads pass, writes fail at S3', async () => {
    const page = await h.context.newPage();
    await page.goto(`http://127.0.0.1:${other.port}/`);
    const { consent, answer } = await openConsent(h.context, page, {
      secrets: ['aws-role'],
      mode: 'broker',
      narrow: { sessionPolicy: READ_ONLY },
    });
    expect(await consent.locator('#narrowing').textContent()).toContain('s3:GetObject');
    await approve(consent, '#allow-period');
    const granted = await answer;
    expect(granted.ok).toBe(true);
    const read = await see<{ status: number; body: string }>(page, 'keyhole_fetch', { secret: 'aws-role', url: `${aws.s3Base}/v1/ping` });
    expect(read.ok && [read.result.status, Buffer.from(read.result.body, 'base64').toString()]).toEqual([200, 'pong']);
    const write = await see<{ status: number; body: string }>(page, 'keyhole_fetch', {
      secret: 'aws-role',
      url: `${aws.s3Base}/v1/ping`,
      method: 'PUT',
      body: 'FAKE overwrite',
    });
    expect(write.ok && write.result.status).toBe(403); // S3's AccessDenied reached the page as an API answer
    expect(write.ok && write.result.body).toContain('AccessDenied');
    expect(aws.sts.policies.filter((p) => p !== undefined).map((p) => JSON.parse(p as string))).toEqual([READ_ONLY]);
    // the unnarrowed grant of the first page still writes
    const stillWrites = await see<{ status: number }>(agent, 'keyhole_fetch', {
      secret: 'aws-role',
      url: `${aws.s3Base}/v1/ping`,
      method: 'PUT',
      body: 'pong',
    });
    expect(stillWrites.ok && stillWrites.result.status).toBe(200);
    await page.close();
  });

  it('learns AWS’s clock from a clock-skew answer and signs again with it, once', async () => {
    await ok('secrets.create', secret('aws-skewed', { assumeRole: role('keyhole-skew') }));
    expect((await grantForPeriod(h.context, agent, { secrets: ['aws-skewed'], mode: 'broker' })).ok).toBe(true);
    const refusedBefore = aws.sts.refused;
    aws.skewMs = 40 * 60_000;
    const r = await see<{ status: number }>(agent, 'keyhole_fetch', { secret: 'aws-skewed', url: `${aws.s3Base}/v1/ping` });
    expect(r.ok && r.result.status).toBe(200);
    // the first AssumeRole signed by our clock was refused (a refresh of another session may have
    // met the skew first: then it taught the clock, and this one went through at once)
    expect(aws.sts.refused - refusedBefore).toBeGreaterThanOrEqual(1);
    expect(aws.sts.refusals.slice(-1)).toEqual(['SignatureDoesNotMatch']);
    expect(aws.sts.sessionNames.filter((n) => n === 'keyhole-skew')).toHaveLength(1);
  });

  it('rotates the access key under continuous calls: staged, promoted, not one call fails', async () => {
    const next = { accessKeyId: fakeKeyId('AKIA', 'NEXT'), secretAccessKey: FAKE_SECRET.replace(/F/g, 'N') };
    aws.addKey(next.accessKeyId, next.secretAccessKey);
    const { secrets } = await ok<{ secrets: { id: string; name: string }[] }>('secrets.list');
    const id = secrets.find((s) => s.name === 'aws-static')?.id;
    const before = aws.s3Requests.length;
    const calls = callContinuously(agent, aws.s3Host, 'aws-static', 4000, ['broker']);
    await new Promise((r) => setTimeout(r, 1500));
    await ok('secrets.rotate', { id, material: next });
    await ok('secrets.promote', { id, graceSeconds: 3600 });
    const outcomes = await calls;
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    const keys = aws.s3Requests.slice(before).map((r) => r.keyId);
    expect(keys[0]).toBe(KEY_ID);
    expect(keys.at(-1)).toBe(next.accessKeyId);
    // one switch, no going back
    expect(keys.indexOf(next.accessKeyId)).toBe(keys.lastIndexOf(KEY_ID) + 1);
    observed.push(JSON.stringify(outcomes));
  });

  it('the person adds an AWS key with a role in the options page: sealed, never shown, its state there', async () => {
    const page = await h.open(OPTIONS);
    await page.click('#add-secret');
    await page.fill('#secret-name', 'aws-from-options');
    await page.selectOption('#secret-kind', 'aws');
    expect(await page.isVisible('#aws-fields')).toBe(true);
    expect(await page.isVisible('#oauth2-fields')).toBe(false);
    await page.fill('#aws-key-id', KEY_ID);
    await page.fill('#aws-secret-key', FAKE_SECRET);
    await page.fill('#aws-region', REGION);
    await page.fill('#aws-service', 's3');
    await page.fill('#aws-role-arn', ROLE_ARN);
    await page.fill('#aws-session-name', 'from-options');
    await page.fill('#aws-duration', '900');
    await page.fill('#aws-sts', aws.stsUrl);
    await page.fill('#secret-hosts', aws.s3Host);
    await page.click('#save-secret');
    const cell = page.locator('[data-credential="aws-from-options"]');
    await expect.poll(() => cell.count()).toBe(1);
    await cell.getByRole('button', { name: 'Refresh aws-from-options now' }).click();
    await expect.poll(() => page.locator('[data-credential="aws-from-options"]').textContent()).toContain('token valid until');
    expect(aws.sts.sessionNames).toContain('from-options');
    const listed = JSON.stringify(await ok('secrets.list'));
    expect(listed).toContain(ROLE_ARN);
    for (const text of [await page.content(), listed]) {
      expect(text).not.toContain(FAKE_SECRET);
      expect(text).not.toContain(KEY_ID);
    }
    await page.close();
  });

  it('no access key, secret key or session token is anywhere the page observed, nor in the audit export', async () => {
    const haystacks = await pageAndAudit(agent, options, [['keyhole_getGrants', undefined]], observed);
    expect(haystacks.auditJsonl).toContain('token.request');
    const needles = [FAKE_SECRET, KEY_ID];
    for (const [id, s] of aws.sessions) needles.push(id, s.secretAccessKey, s.sessionToken);
    expect(needles.length).toBeGreaterThan(10);
    expect(findEverywhere(haystacks, needles)).toEqual([]);
  });
});
