// GET /openapi.json and GET /docs (spec §3.5, §4 item 24): every route documented, WebSockets under
// `x-websockets`, Swagger UI from local assets, working in Chromium under the CSP (no inline script).
import { CHROMIUM_LAUNCH_OPTIONS } from '@quintet/kernel/testing';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDashboard, type TestDashboard } from './harness.js';

type Json = Record<string, unknown>;

/** Every HTTP route of spec §3.5 with its methods. */
const ROUTES: Record<string, string[]> = {
  '/health': ['get'],
  '/livez': ['get'],
  '/readyz': ['get'],
  '/metrics': ['get'],
  '/': ['get'],
  '/static/{path}': ['get'],
  '/openapi.json': ['get'],
  '/docs': ['get'],
  '/api/status': ['get'],
  '/api/health': ['get'],
  '/api/streams': ['get'],
  '/api/permit': ['get'],
  '/api/advise': ['post'],
  '/api/batches': ['get', 'post'],
  '/api/batches/{id}': ['get'],
  '/api/batches/{id}/report': ['get'],
  '/api/chemistry/fit': ['post'],
  '/api/alerts': ['get'],
  '/api/incidents': ['get'],
  '/api/incidents/{id}': ['get'],
  '/api/incidents/{id}/ack': ['post'],
};

describe('API documentation', () => {
  let owsc: TestDashboard;
  let browser: Browser;
  beforeAll(async () => {
    [owsc, browser] = await Promise.all([
      startTestDashboard({ OW_SC_API_TOKEN: 'docs-secret' }),
      chromium.launch(CHROMIUM_LAUNCH_OPTIONS),
    ]);
  });
  afterAll(async () => {
    await Promise.all([owsc.close(), browser.close()]);
  });

  it('serves an OpenAPI 3 document of every route and both WebSockets, without a token', async () => {
    const response = await fetch(`${owsc.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const document = (await response.json()) as Json;
    expect(String(document.openapi)).toMatch(/^3\./);
    expect((document.info as Json).version).toMatch(/^\d+\.\d+\.\d+/);
    const paths = document.paths as Record<string, Record<string, Json>>;
    expect(Object.keys(paths).sort()).toEqual(Object.keys(ROUTES).sort());
    for (const [path, methods] of Object.entries(ROUTES)) {
      expect(Object.keys(paths[path] ?? {}).sort(), path).toEqual([...methods].sort());
      for (const method of methods) {
        const operation = paths[path]?.[method] as Json;
        expect(Object.keys(operation.responses as Json).length, `${method} ${path}`).toBeGreaterThan(0);
        // /api routes need the bearer token; the public ones say they do not.
        expect(operation.security, `${method} ${path}`).toEqual(
          path.startsWith('/api/') ? [{ bearerAuth: [] }] : [],
        );
      }
    }
    const batches = paths['/api/batches']?.post as { responses: Json };
    expect(Object.keys(batches.responses)).toEqual(
      expect.arrayContaining(['201', '413', '415', '422', '503', '504', '507']),
    );
    expect(Object.keys(document['x-websockets'] as Json).sort()).toEqual(['/ws/alerts', '/ws/effluent']);
  });

  it('serves /docs without inline scripts, and its assets with content types and caching', async () => {
    const page = await fetch(`${owsc.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBe(3);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/src="\/docs\/assets\/[\w.-]+\.js"/);
      expect(body?.trim()).toBe('');
    }
    expect(html).not.toMatch(/https?:\/\//);
    const assets: [string, string][] = [
      ['swagger-ui-bundle.js', 'text/javascript; charset=utf-8'],
      ['swagger-ui-standalone-preset.js', 'text/javascript; charset=utf-8'],
      ['initializer.js', 'text/javascript; charset=utf-8'],
      ['swagger-ui.css', 'text/css; charset=utf-8'],
      ['favicon-32x32.png', 'image/png'],
    ];
    for (const [name, type] of assets) {
      const response = await fetch(`${owsc.url}/docs/assets/${name}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('content-type'), name).toBe(type);
      expect(response.headers.get('cache-control'), name).toBe('public, max-age=3600');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    }
    for (const name of ['package.json', 'index.html', '..%2F..%2Fpackage.json', 'swagger-initializer.js']) {
      const response = await fetch(`${owsc.url}/docs/assets/${name}`);
      expect(response.status, name).toBe(404);
      expect(await response.json()).toEqual({ detail: 'Not Found' });
    }
  });

  it('renders Swagger UI in Chromium under the CSP with no violation (§4 item 24)', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    const external: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(owsc.url)) external.push(request.url());
    });
    await page.goto(`${owsc.url}/docs`);
    await page.waitForSelector('.swagger-ui .info .title', { timeout: 10_000 });
    expect(await page.textContent('.swagger-ui .info .title')).toContain('OpenWorld Specialty Chemicals');
    expect(
      await page.locator('.opblock-summary-path[data-path="/api/batches/{id}/report"]').count(),
    ).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    expect(external).toEqual([]);
    await context.close();
  });
});
