// Cross-cutting HTTP rules of spec §3.5/§3.10/§3.11: security headers, request ids, token, rate limit, CORS,
// error bodies, access log (§8 cases 21, 22, 23, 25, 26).
import { HttpError, toHttpError } from '@quintet/kernel/errors';
import type { FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detailError, redactedPath, renderOwscError, requestIdFor } from '../../src/http/conventions.js';
import { startTestDashboard, type TestDashboard, until } from './harness.js';

const TOKEN = 'conventions-token-3f1c';
const ALLOWED = 'https://ops.example.com';
const CSP =
  "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";
const auth = { authorization: `Bearer ${TOKEN}` };

// The server trusts 127.0.0.1 as a proxy, so each test is its own client (its own rate-limit counters).
let nextClient = 1;
function asNewClient(headers: Record<string, string> = {}): Record<string, string> {
  nextClient += 1;
  return { 'x-forwarded-for': `203.0.113.${nextClient}`, ...headers };
}

function expectSecurityHeaders(response: Response): void {
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('x-frame-options')).toBe('DENY');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  expect(response.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
  expect(response.headers.get('content-security-policy')).toBe(CSP);
  expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
}

describe('with a token, a rate limit of 3/s and a CORS list', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    server = await startTestDashboard({
      OW_SC_API_TOKEN: TOKEN,
      OW_SC_RL_PER_SEC: '3',
      OW_SC_CORS_ORIGINS: `${ALLOWED},https://other.example.com`,
      OW_SC_MAX_JSON_BYTES: '2048',
      OW_SC_TRUST_PROXY: '127.0.0.1',
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('puts the security headers and a request id on 200, 401, 404, 405, 413, 429 and static responses (case 21)', async () => {
    const ok = await fetch(`${server.url}/health`);
    expect(ok.status).toBe(200);
    expectSecurityHeaders(ok);

    const unauthorized = await fetch(`${server.url}/api/status`);
    expect(unauthorized.status).toBe(401);
    expectSecurityHeaders(unauthorized);

    const missing = await fetch(`${server.url}/no/such/page`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: 'Not Found' });
    expectSecurityHeaders(missing);

    const wrongMethod = await fetch(`${server.url}/health`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD');
    expect(await wrongMethod.json()).toEqual({ detail: 'Method Not Allowed' });
    expectSecurityHeaders(wrongMethod);

    const tooLarge = await fetch(`${server.url}/api/advise`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ alerts: [], site: 'x'.repeat(3000) }),
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Object.keys((await tooLarge.json()) as object)).toEqual(['detail']);
    expectSecurityHeaders(tooLarge);

    const asset = await fetch(`${server.url}/static/vendor/uplot.min.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=3600');
    expectSecurityHeaders(asset);

    const statuses: number[] = [];
    let limited: Response | undefined;
    const client = asNewClient(auth);
    for (let index = 0; index < 4; index++) {
      const response = await fetch(`${server.url}/api/permit`, { headers: client });
      statuses.push(response.status);
      if (response.status === 429) limited = response;
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expectSecurityHeaders(limited as Response);
  });

  it('echoes a valid X-Request-ID, replaces an invalid one and logs it on the access line (case 22)', async () => {
    const valid = 'req-1.2:abc_DEF';
    const echoed = await fetch(`${server.url}/health`, { headers: { 'x-request-id': valid } });
    expect(echoed.headers.get('x-request-id')).toBe(valid);
    expect(
      await until(() =>
        server.logs.some((line) => line.msg === 'request completed' && line.request_id === valid),
      ),
    ).toBe(true);
    const line = server.logs.find((entry) => entry.request_id === valid) as Record<string, unknown>;
    expect(line).toMatchObject({
      method: 'GET',
      path: '/health',
      status: 200,
      ip: '127.0.0.1',
      service: 'owsc',
    });
    // Behind the trusted proxy the client is the forwarded address.
    const forwarded = 'req-forwarded-1';
    await fetch(`${server.url}/health`, {
      headers: { 'x-request-id': forwarded, 'x-forwarded-for': '192.0.2.9' },
    });
    expect(await until(() => server.logs.some((entry) => entry.request_id === forwarded))).toBe(true);
    expect(server.logs.find((entry) => entry.request_id === forwarded)?.ip).toBe('192.0.2.9');
    expect(typeof line.duration_ms).toBe('number');
    expect(typeof line.instance_id).toBe('string');

    for (const invalid of ['has space', 'x'.repeat(129), 'semi;colon']) {
      const replaced = await fetch(`${server.url}/health`, { headers: { 'x-request-id': invalid } });
      expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(server.rawLogs.join('')).not.toContain('has space');
  });

  it('requires the bearer token on /api/* only, with a case-insensitive scheme (case 23)', async () => {
    const without = await fetch(`${server.url}/api/status`, { headers: asNewClient() });
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer');
    expect(await without.json()).toEqual({ detail: 'Unauthorized' });

    const wrong = await fetch(`${server.url}/api/status`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);

    const lower = await fetch(`${server.url}/api/status`, {
      headers: asNewClient({ authorization: `bearer ${TOKEN}` }),
    });
    expect(lower.status).toBe(200);
    const upper = await fetch(`${server.url}/api/status`, {
      headers: asNewClient({ authorization: `BEARER ${TOKEN}` }),
    });
    expect(upper.status).toBe(200);

    for (const path of ['/health', '/livez', '/readyz', '/metrics']) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(200);
    }
    expect(server.rawLogs.join('')).not.toContain(TOKEN);
  });

  it('limits each IP and path per window from the first request, before authentication (case 25)', async () => {
    const client = asNewClient(auth);
    const first = await fetch(`${server.url}/api/permit`, { headers: client });
    expect(first.headers.get('x-ratelimit-limit')).toBe('3');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('2');
    await fetch(`${server.url}/api/permit`, { headers: client });
    await fetch(`${server.url}/api/permit`, { headers: client });
    const fourth = await fetch(`${server.url}/api/permit`, { headers: client });
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get('retry-after')).toBe('1');
    expect(fourth.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(await fourth.json()).toEqual({ detail: 'Too Many Requests' });

    // Another path has its own counter.
    expect((await fetch(`${server.url}/api/health`, { headers: client })).status).toBe(200);
    // So has another client on the same path.
    expect((await fetch(`${server.url}/api/permit`, { headers: asNewClient(auth) })).status).toBe(200);
    // Public endpoints are never limited.
    for (let index = 0; index < 5; index++) {
      expect((await fetch(`${server.url}/health`, { headers: client })).status).toBe(200);
    }

    // An unauthenticated flood is throttled too.
    const anonymous: number[] = [];
    const stranger = asNewClient();
    for (let index = 0; index < 4; index++) {
      anonymous.push((await fetch(`${server.url}/api/streams`, { headers: stranger })).status);
    }
    expect(anonymous).toEqual([401, 401, 401, 429]);

    // The window ends one second after its first request.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const renewed = await fetch(`${server.url}/api/permit`, { headers: client });
    expect(renewed.status).toBe(200);
    expect(renewed.headers.get('x-ratelimit-remaining')).toBe('2');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^http_rate_limited_total [1-9]\d*$/m);
  });

  it('answers CORS for listed origins only, and preflights before auth and the rate limit (case 26)', async () => {
    const listed = await fetch(`${server.url}/health`, { headers: { origin: ALLOWED } });
    expect(listed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(listed.headers.get('vary')).toBe('Origin');
    expect(listed.headers.get('access-control-expose-headers')).toBe(
      'X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining',
    );
    expect(listed.headers.get('access-control-allow-credentials')).toBeNull();

    const foreign = await fetch(`${server.url}/health`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(200);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();

    for (let index = 0; index < 5; index++) {
      const preflight = await fetch(`${server.url}/api/status`, {
        method: 'OPTIONS',
        headers: {
          'x-forwarded-for': '198.51.100.7',
          origin: ALLOWED,
          'access-control-request-method': 'GET',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, POST, OPTIONS');
      expect(preflight.headers.get('access-control-allow-headers')).toBe(
        'Authorization, Content-Type, X-Request-ID',
      );
      expect(preflight.headers.get('access-control-max-age')).toBe('600');
    }

    const refused = await fetch(`${server.url}/api/status`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ detail: 'Origin not allowed' });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expectSecurityHeaders(refused);
  });

  it('answers invalid JSON with the 422 list shape and HEAD like GET', async () => {
    const invalid = await fetch(`${server.url}/api/advise`, {
      method: 'POST',
      headers: asNewClient({ ...auth, 'content-type': 'application/json' }),
      body: '{"alerts": [',
    });
    expect(invalid.status).toBe(422);
    const body = (await invalid.json()) as { detail: { loc: unknown[]; msg: string; type: string }[] };
    expect(body.detail[0]).toMatchObject({ loc: ['body'], type: 'json_invalid' });

    const head = await fetch(`${server.url}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expectSecurityHeaders(head);
  });

  it('redacts token-like query values in the access log', async () => {
    await fetch(`${server.url}/health?token=${TOKEN}&access_token=abc123&api_key=k9&species=SO4`);
    expect(
      await until(() =>
        server.logs.some((line) => typeof line.path === 'string' && line.path.startsWith('/health?token=')),
      ),
    ).toBe(true);
    const line = server.logs.find(
      (entry) => typeof entry.path === 'string' && entry.path.startsWith('/health?'),
    );
    expect(line?.path).toBe(
      '/health?token=[REDACTED]&access_token=[REDACTED]&api_key=[REDACTED]&species=SO4',
    );
    expect(server.rawLogs.join('')).not.toContain(TOKEN);
  });
});

describe('with CORS * and no token', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    server = await startTestDashboard({ OW_SC_RL_PER_SEC: '0' });
  });
  afterAll(async () => {
    await server.close();
  });

  it('allows any origin without credentials and answers preflights (case 26)', async () => {
    const simple = await fetch(`${server.url}/api/status`, {
      headers: { origin: 'https://anywhere.example' },
    });
    expect(simple.status).toBe(200);
    expect(simple.headers.get('access-control-allow-origin')).toBe('*');
    expect(simple.headers.get('access-control-allow-credentials')).toBeNull();
    // Rate limiting is off: no rate-limit headers.
    expect(simple.headers.get('x-ratelimit-limit')).toBeNull();

    const preflight = await fetch(`${server.url}/api/batches`, {
      method: 'OPTIONS',
      headers: { origin: 'https://anywhere.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, POST, OPTIONS');
  });

  it('serves /api/* without a token when none is configured', async () => {
    const statuses = await Promise.all(
      Array.from({ length: 30 }, () => fetch(`${server.url}/api/health`).then((response) => response.status)),
    );
    expect(new Set(statuses)).toEqual(new Set([200]));
  });
});

describe('error bodies and log redaction', () => {
  const request = { id: 'req-500' } as unknown as FastifyRequest;

  it('renders an unexpected error as 500 with the request id and nothing else', () => {
    const error = toHttpError(new Error('connection string postgres://user:pw@db/x'));
    expect(error.status).toBe(500);
    expect(renderOwscError(error, request)).toEqual({
      detail: 'Internal Server Error',
      request_id: 'req-500',
    });
  });

  it('renders framework errors generically and deliberate ones with their detail', () => {
    expect(renderOwscError(toHttpError({ statusCode: 413 }), request)).toEqual({
      detail: 'Request Entity Too Large',
    });
    expect(renderOwscError(new HttpError(404, 'NOT_FOUND', 'not found'), request)).toEqual({
      detail: 'Not Found',
    });
    expect(renderOwscError(new HttpError(404, 'BATCH', 'batch not found'), request)).toEqual({
      detail: 'batch not found',
    });
    const issues = [{ loc: ['query', 'limit'], msg: 'bad', type: 'int_parsing' }];
    expect(renderOwscError(detailError(422, issues), request)).toEqual({ detail: issues });
    expect(renderOwscError(detailError(503, 'store unavailable'), request)).toEqual({
      detail: 'store unavailable',
    });
  });

  it('redacts secret-like query values and keeps the rest', () => {
    expect(redactedPath('/ws/effluent?token=abc')).toBe('/ws/effluent?token=[REDACTED]');
    expect(redactedPath('/x?client_secret=1&Password=2&limit=5&species=SO4')).toBe(
      '/x?client_secret=[REDACTED]&Password=[REDACTED]&limit=5&species=SO4',
    );
    expect(redactedPath('/health')).toBe('/health');
  });

  it('generates 16 hex characters for missing or invalid request ids', () => {
    expect(requestIdFor(undefined)).toMatch(/^[0-9a-f]{16}$/);
    const headers = { 'x-request-id': 'bad\tid' };
    expect(requestIdFor({ headers } as never)).toMatch(/^[0-9a-f]{16}$/);
    expect(requestIdFor({ headers: { 'x-request-id': 'a'.repeat(128) } } as never)).toBe('a'.repeat(128));
  });
});
