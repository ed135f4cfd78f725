import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { HttpError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { createHttpMetrics, createMetricsRegistry } from '../src/metrics.js';
import { createHttpApp } from '../src/service.js';

const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
const registry = createMetricsRegistry({ defaultMetrics: false });
const app = createHttpApp({
  logger: createLogger({ name: 'test', destination: sink }),
  requestIdHeader: 'x-test-request-id',
  renderError: (error, request) => ({
    code: error.code,
    detail: { ...error.detail, request_id: request.id },
  }),
  httpMetrics: createHttpMetrics(registry),
});
app.get('/ok', async () => ({ ok: true }));
app.post('/only-post', async () => ({ ok: true }));
app.get('/items/:id', async () => ({ ok: true }));
app.get('/teapot', async () => {
  throw new HttpError(418, 'TEAPOT', 'short and stout', { size: 'small' }, { 'x-extra': '1' });
});
app.get('/boom', async () => {
  throw new Error('secret internal /etc/path');
});

afterAll(() => app.close());

describe('createHttpApp', () => {
  it('puts a request id and nosniff on every response', async () => {
    const response = await app.inject({ url: '/ok' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-test-request-id']).toMatch(/^[0-9a-f]{32}$/);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers unknown paths with the service error body', async () => {
    const response = await app.inject({ url: '/nope?x=1' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({
      code: 'NOT_FOUND',
      detail: { path: '/nope', request_id: response.headers['x-test-request-id'] },
    });
  });

  it('answers a known path with a wrong method with 405 and Allow', async () => {
    const response = await app.inject({ url: '/only-post' });
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('POST');
    expect(response.json().detail).toMatchObject({ path: '/only-post', method: 'GET', allowed: ['POST'] });
    const param = await app.inject({ method: 'DELETE', url: '/items/7' });
    expect(param.statusCode).toBe(405);
  });

  it('renders HttpErrors with their headers and hides unexpected errors', async () => {
    const teapot = await app.inject({ url: '/teapot' });
    expect(teapot.statusCode).toBe(418);
    expect(teapot.headers['x-extra']).toBe('1');
    expect(teapot.json()).toMatchObject({ code: 'TEAPOT', detail: { size: 'small' } });
    const boom = await app.inject({ url: '/boom' });
    expect(boom.statusCode).toBe(500);
    expect(boom.body).not.toContain('/etc/path');
    expect(boom.json()).toMatchObject({ code: 'INTERNAL_ERROR', detail: { reason: 'internal' } });
  });

  it('counts requests by route and status', async () => {
    await app.inject({ url: '/items/1' });
    const text = await registry.metrics();
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/items\/:id",status="200"\} 1/);
  });
});
