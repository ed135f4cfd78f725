// HTTP conventions against the real bin: §8 cases 15, 16, 34, 35, and the operational routes (41).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PDF, type RunningRaven, startRaven, upload } from './harness.js';

const SECURITY_HEADERS: Record<string, string> = {
  'cache-control': 'no-store, no-cache, must-revalidate, max-age=0',
  pragma: 'no-cache',
  expires: '0',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'x-xss-protection': '1; mode=block',
  'referrer-policy': 'no-referrer',
};

function expectConventions(response: Response): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS))
    expect(response.headers.get(name), name).toBe(value);
  expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  expect(response.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  expect(response.headers.get('set-cookie')).toBeNull();
}

/** Sends `count` requests at once, retrying when they straddle a window boundary; returns the statuses. */
async function burst(url: string, count: number, expectLimited: (statuses: number[]) => boolean) {
  let statuses: number[] = [];
  for (let round = 0; round < 3; round++) {
    statuses = [];
    for (let index = 0; index < count; index++) statuses.push((await fetch(url)).status);
    if (expectLimited(statuses)) return statuses;
    await new Promise((r) => setTimeout(r, 1100));
  }
  return statuses;
}

describe('HTTP conventions', () => {
  let raven: RunningRaven;
  beforeAll(async () => {
    raven = await startRaven({
      UPLOAD_RATE_LIMIT: '2/minute',
      HEALTH_RATE_LIMIT: '2/second',
      METRICS_TOKEN: 'metrics-secret',
    });
  });
  afterAll(async () => {
    await raven.stop();
  });

  it('puts security headers and X-Request-ID on 201, 404, 405, 422, 429 and downloads (cases 15, 34)', async () => {
    const created = await upload(raven.url, [
      { name: 'file', filename: 'doc.pdf', data: PDF },
      { name: 'uses', value: '2' },
    ]);
    expect(created.status).toBe(201);
    expectConventions(created);
    expect(created.headers.get('x-ratelimit-limit')).toBe('2');
    const key = ((await created.json()) as { key: string }).key;

    const invalid = await upload(raven.url, [{ name: 'expiry', value: 'x' }]);
    expect(invalid.status).toBe(422);
    expectConventions(invalid);

    const limited = await upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }]);
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({ detail: 'Rate limit exceeded: 2 per 1 minute' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expectConventions(limited);

    const download = await fetch(`${raven.url}/download/${key}`, {
      headers: { 'x-request-id': 'trace-42.a:b' },
    });
    expect(download.status).toBe(200);
    await download.arrayBuffer();
    expectConventions(download);
    expect(download.headers.get('x-request-id')).toBe('trace-42.a:b');

    const notFound = await fetch(`${raven.url}/no/such/route`, {
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual({ detail: 'Not Found' });
    expectConventions(notFound);
    expect(notFound.headers.get('x-request-id')).not.toBe('bad id with spaces');

    const wrongMethod = await fetch(`${raven.url}/status/${key}`, { method: 'POST' });
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toEqual({ detail: 'Method Not Allowed' });
    expect(wrongMethod.headers.get('allow')).toBe('GET');
    expectConventions(wrongMethod);
  });

  it('answers CORS preflights (case 35)', async () => {
    const response = await fetch(`${raven.url}/upload/`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://example.org',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    expect(response.headers.get('access-control-allow-headers')).toContain('X-Password');
    const exposed = response.headers.get('access-control-expose-headers') ?? '';
    expect(exposed).toContain('X-SHA256');
    expect(exposed).toContain('Content-Disposition');
    expectConventions(response);
  });

  it('rate-limits /health and /health/ (case 16)', async () => {
    const statuses = await burst(
      `${raven.url}/health/`,
      3,
      (s) => s[0] === 200 && s[1] === 200 && s[2] === 429,
    );
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await fetch(`${raven.url}/health`);
    if (limited.status === 429) {
      expect(await limited.json()).toEqual({ detail: 'Rate limit exceeded: 2 per 1 second' });
      expect(limited.headers.get('retry-after')).toBe('1');
    }
    const live = await fetch(`${raven.url}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${raven.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('serves /metrics with the token, /openapi.json with every route, and /docs offline', async () => {
    expect((await fetch(`${raven.url}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${raven.url}/metrics`, {
      headers: { authorization: 'Bearer metrics-secret' },
    });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    for (const family of [
      'raven_uploads_total',
      'raven_downloads_total',
      'raven_bytes_uploaded_total',
      'raven_bytes_downloaded_total',
      'raven_active_uploads',
      'raven_blocked_total',
      'raven_rate_limited_total',
      'raven_sweep_removed_total',
      'raven_kdf_seconds',
      'raven_http_request_duration_seconds',
      'raven_store_op_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${family} `);
    }
    expect(text).toMatch(/raven_rate_limited_total\{bucket="upload"\} 1/);
    expect(text).toContain('route="/download/{key}"');

    const openapi = (await (await fetch(`${raven.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(openapi.openapi).toBe('3.1.0');
    for (const path of [
      '/upload/',
      '/upload/{filename}',
      '/preview/{key}',
      '/download/{key}',
      '/status/{key}',
      '/files/{key}',
      '/health/',
    ]) {
      expect(openapi.paths).toHaveProperty([path]);
    }
    const docs = await fetch(`${raven.url}/docs`);
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-type')).toContain('text/html');
    const html = await docs.text();
    expect(html).toContain('/download/{key}');
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(docs.headers.get('content-security-policy')).toContain("default-src 'self'");
    for (const alias of ['/scalar', '/redoc']) {
      const redirect = await fetch(`${raven.url}${alias}`, { redirect: 'manual' });
      expect(redirect.status).toBe(302);
      expect(redirect.headers.get('location')).toBe('/docs');
    }
  });
});
