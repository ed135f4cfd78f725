// Authentication (spec §3.2; acceptance 4–7, 31): password policy, login throttling, dev login, token checks,
// logout revocation with the database store and with Redis.

import { testRedisUrl } from '@quintet/kernel/testing';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awayFromMinuteBoundary,
  createUser,
  register,
  startTestServer,
  TEST_JWT_SECRET,
  type TestServer,
} from './harness.js';

async function forgedToken(claims: Record<string, unknown>, secret = TEST_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: 'rag-assistant',
    aud: 'rag-users',
    iat: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(secret));
}

describe('auth routes', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ALLOW_DEV_LOGIN: 'true' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('applies the password policy and case-insensitive email uniqueness', async () => {
    const cases: [string, number, unknown][] = [
      ['abcdef1!', 400, { detail: 'Weak password: require upper, lower, digit' }],
      ['Abcdefg12', 400, { detail: 'Weak password: require a special character' }],
      ['Ab1!x', 400, { detail: 'Password too short: minimum 6 characters.' }],
      ['', 400, { detail: 'Password cannot be empty.' }],
      [`Ab1!${'x'.repeat(70)}`, 400, { detail: 'Password too long: must be 72 bytes or fewer.' }],
      ['Abcdef1!', 200, { ok: true }],
    ];
    for (const [password, status, body] of cases) {
      const response = await register(server, 'policy@example.com', password);
      expect([password, response.status, response.body]).toEqual([password, status, body]);
    }
    const again = await register(server, '  POLICY@Example.COM ');
    expect(again.status).toBe(400);
    expect(again.body).toEqual({ detail: 'Email already registered' });
  });

  it('answers 422 in the validation shape for a bad email or missing fields', async () => {
    const response = await server.request('POST', '/api/auth/register', { body: { email: 'not-an-email' } });
    expect(response.status).toBe(422);
    const items = (response.body as { detail: { loc: string[]; type: string }[] }).detail;
    expect(items.map((item) => item.loc)).toEqual([
      ['body', 'email'],
      ['body', 'password'],
    ]);
    expect(items[1]?.type).toBe('missing');
  });

  it('logs in, refuses wrong passwords and throttles the 21st attempt for one email', async () => {
    await awayFromMinuteBoundary();
    const user = await createUser(server, 'login@example.com');
    expect(user.token.split('.')).toHaveLength(3);
    const ok = await server.request('POST', '/api/auth/login', {
      body: { email: 'login@example.com', password: 'Abcdef1!' },
    });
    expect(ok.body).toMatchObject({ token_type: 'bearer', expires_in: 900 });
    let last = ok;
    // createUser logged in once and `ok` is the second attempt in this window.
    for (let attempt = 3; attempt <= 21; attempt++) {
      last = await server.request('POST', '/api/auth/login', {
        body: { email: 'login@example.com', password: 'Wrong1!x' },
      });
      if (attempt <= 20)
        expect([attempt, last.status, last.body]).toEqual([attempt, 401, { detail: 'Invalid credentials' }]);
    }
    expect(last.status).toBe(429);
    expect(last.body).toEqual({ detail: 'Rate limit exceeded' });
    const retryAfter = Number(last.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(last.headers.get('x-ratelimit-remaining')).toBe('0');
  });

  it('issues dev tokens, returns the profile and refuses foreign, malformed or inactive tokens', async () => {
    const dev = await server.request('POST', '/api/auth/token', { body: { email: 'Dev@Example.com' } });
    expect(dev.status).toBe(200);
    const token = (dev.body as { access_token: string }).access_token;
    const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    expect(Object.keys(payload).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(payload.exp - payload.iat).toBe(900);
    const me = await server.request('GET', '/api/auth/me', { token });
    expect(me.body).toMatchObject({ email: 'dev@example.com', is_admin: false, is_active: true });

    const checks: [Record<string, string>, number, string][] = [
      [{}, 401, 'Missing bearer token'],
      [{ authorization: `Basic ${token}` }, 401, 'Missing bearer token'],
      [{ authorization: `Bearer ${await forgedToken({ sub: '1', aud: 'other' })}` }, 401, 'Invalid token'],
      [
        { authorization: `Bearer ${await forgedToken({ sub: '1' }, 'another-secret-0123456789abcdef0123')}` },
        401,
        'Invalid token',
      ],
      [{ authorization: `Bearer ${await forgedToken({ sub: 'abc' })}` }, 401, 'Invalid token payload'],
      [{ authorization: `Bearer ${await forgedToken({ sub: '999999' })}` }, 401, 'User not found'],
    ];
    for (const [headers, status, message] of checks) {
      const response = await server.request('GET', '/api/auth/me', { headers });
      expect([response.status, response.body]).toEqual([status, { detail: message }]);
    }
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: '1' })).toString('base64url')}.`;
    expect(
      (await server.request('GET', '/api/auth/me', { headers: { authorization: `Bearer ${unsigned}` } }))
        .status,
    ).toBe(401);

    await server.context.db.kysely
      .updateTable('users')
      .set({ is_active: false })
      .where('email', '=', 'dev@example.com')
      .execute();
    const inactive = await server.request('GET', '/api/auth/me', { token });
    expect([inactive.status, inactive.body]).toEqual([403, { detail: 'User is inactive' }]);
  });

  it('revokes the token on logout (database store, survives in the table)', async () => {
    const user = await createUser(server, 'logout@example.com');
    const out = await server.request('POST', '/api/auth/logout', { token: user.token });
    expect(out.body).toEqual({ ok: true, message: 'Logged out successfully' });
    const reuse = await server.request('GET', '/api/auth/me', { token: user.token });
    expect([reuse.status, reuse.body]).toEqual([401, { detail: 'Token revoked' }]);
    const rows = await server.context.db.kysely.selectFrom('revoked_tokens').selectAll().execute();
    expect(rows.length).toBeGreaterThanOrEqual(1);
  });
});

describe('auth switches', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ALLOW_REGISTRATION: 'false' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('has no dev login route without ALLOW_DEV_LOGIN and refuses registration when disabled', async () => {
    const dev = await server.request('POST', '/api/auth/token', { body: { email: 'a@example.com' } });
    expect([dev.status, dev.body]).toEqual([404, { detail: 'Not Found' }]);
    const registration = await register(server, 'a@example.com');
    expect([registration.status, registration.body]).toEqual([403, { detail: 'Registration is disabled' }]);
  });
});

describe('logout with Redis', async () => {
  const redisUrl = await testRedisUrl();
  let server: TestServer;
  beforeAll(async () => {
    if (redisUrl !== null)
      server = await startTestServer({ REDIS_URL: redisUrl, INGEST_IN_PROCESS: 'false' });
  }, 30_000);
  afterAll(async () => server?.close());

  it.skipIf(redisUrl === null)(
    'revokes through revoked:<jti> and counts rate limits in ratelimit:<key>:<bucket>',
    async () => {
      const user = await createUser(server, `redis-${Date.now()}@example.com`);
      const payload = JSON.parse(Buffer.from(user.token.split('.')[1] as string, 'base64url').toString());
      await server.request('POST', '/api/auth/logout', { token: user.token });
      const redis = server.context.redis;
      expect(redis).not.toBeNull();
      const ttl = await redis?.pttl(`revoked:${payload.jti}`);
      expect(ttl).toBeGreaterThan(0);
      const reuse = await server.request('GET', '/api/auth/me', { token: user.token });
      expect([reuse.status, reuse.body]).toEqual([401, { detail: 'Token revoked' }]);
      const bucket = Math.floor(Date.now() / 60_000);
      const count = await redis?.get(`ratelimit:user:${user.id}:${bucket}`);
      expect(Number(count)).toBeGreaterThanOrEqual(1);
      expect(await redis?.ttl(`ratelimit:user:${user.id}:${bucket}`)).toBeGreaterThan(60);
    },
  );
});
