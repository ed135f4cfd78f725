// Probes and metrics (spec §2.3.1–2, §3.9; acceptance 1 and 28) on the embedded database, as a bare start uses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './harness.js';

describe('probes on an empty embedded DATA_DIR', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { store: 'embedded' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('answers /live, /ready and /health with every dependency up', async () => {
    expect(server.store).toBe('embedded');
    const live = await server.request('GET', '/live');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });
    const ready = await server.request('GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ database: true, redis: true });
    const health = await server.request('GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ database: true, gemini_api: true, redis: true, llm: true });
  });

  it('serves /metrics to loopback with the contract series and route patterns as endpoints', async () => {
    await server.request('GET', '/api/settings');
    const metrics = await server.request('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(metrics.text).toContain('http_requests_total{method="GET",endpoint="/api/settings",status="200"}');
    for (const series of [
      'rag_active_streams',
      'rag_documents',
      'http_request_duration_seconds',
      'process_cpu',
    ]) {
      expect(metrics.text).toContain(series);
    }
  });

  it('never rate-limits probes and gives them no rate-limit headers', async () => {
    const health = await server.request('GET', '/live');
    expect(health.headers.get('x-ratelimit-limit')).toBeNull();
    const api = await server.request('GET', '/api/settings');
    expect(api.headers.get('x-ratelimit-limit')).toBe('120');
  });
});

describe('/metrics from a non-loopback client', () => {
  let server: TestServer;
  beforeAll(async () => {
    // The trusted proxy (loopback) forwards an external client address.
    server = await startTestServer({ TRUSTED_PROXY_IPS: '127.0.0.1', METRICS_TOKEN: 'metrics-token-123' });
  }, 30_000);
  afterAll(async () => server?.close());

  it('refuses without the token and accepts METRICS_TOKEN', async () => {
    const external = { 'x-forwarded-for': '203.0.113.9' };
    const refused = await server.request('GET', '/metrics', { headers: external });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ detail: 'Forbidden' });
    const wrong = await server.request('GET', '/metrics', {
      headers: { ...external, authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(403);
    const allowed = await server.request('GET', '/metrics', {
      headers: { ...external, authorization: 'Bearer metrics-token-123' },
    });
    expect(allowed.status).toBe(200);
    expect(allowed.text).toContain('http_requests_total');
  });
});
