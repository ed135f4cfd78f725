// API documentation (spec S12, §3.1.5): GET /api/openapi.json is a structurally valid OpenAPI 3.1 document that
// describes every route the app registers (and nothing else), whose response schemas match real answers; GET /api/docs
// is Swagger UI from local assets, open without the API key, rendering in Chromium under its CSP; /docs and
// /openapi.json redirect with 308.
import { CHROMIUM_LAUNCH_OPTIONS } from '@quintet/kernel/testing';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { FastifyInstance } from 'fastify';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/http/openapi.js';
import { startTestAllocator, type TestAllocator } from '../harness.js';

type Json = Record<string, unknown>;
type Operation = {
  tags: string[];
  summary: string;
  security?: unknown[];
  parameters?: Json[];
  responses: Json;
};

const API_KEY = 'docs-test-key';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

/** A compact schema of the OpenAPI 3.1 structure this service relies on. */
const OPENAPI_STRUCTURE = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['openapi', 'info', 'paths', 'components'],
  properties: {
    openapi: { type: 'string', pattern: '^3\\.1\\.\\d+$' },
    info: {
      type: 'object',
      required: ['title', 'version'],
      properties: { title: { type: 'string', minLength: 1 }, version: { type: 'string', minLength: 1 } },
    },
    security: { $ref: '#/$defs/security' },
    tags: {
      type: 'array',
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
    },
    paths: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^/' },
      additionalProperties: { $ref: '#/$defs/pathItem' },
    },
    components: {
      type: 'object',
      required: ['schemas', 'securitySchemes'],
      properties: {
        schemas: { type: 'object', additionalProperties: { type: 'object' } },
        securitySchemes: { type: 'object', additionalProperties: { $ref: '#/$defs/securityScheme' } },
      },
    },
  },
  $defs: {
    security: {
      type: 'array',
      items: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
    },
    pathItem: {
      type: 'object',
      minProperties: 1,
      propertyNames: { enum: METHODS },
      additionalProperties: { $ref: '#/$defs/operation' },
    },
    operation: {
      type: 'object',
      required: ['tags', 'summary', 'responses'],
      additionalProperties: false,
      properties: {
        tags: { type: 'array', minItems: 1, items: { type: 'string' } },
        summary: { type: 'string', minLength: 1 },
        description: { type: 'string' },
        security: { $ref: '#/$defs/security' },
        parameters: { type: 'array', items: { $ref: '#/$defs/parameter' } },
        requestBody: {
          type: 'object',
          required: ['content'],
          properties: {
            required: { type: 'boolean' },
            content: {
              type: 'object',
              minProperties: 1,
              additionalProperties: { $ref: '#/$defs/mediaType' },
            },
          },
        },
        responses: {
          type: 'object',
          minProperties: 1,
          propertyNames: { pattern: '^[1-5][0-9]{2}$' },
          additionalProperties: { $ref: '#/$defs/response' },
        },
      },
    },
    parameter: {
      type: 'object',
      required: ['name', 'in', 'schema'],
      properties: {
        name: { type: 'string', minLength: 1 },
        in: { enum: ['query', 'header', 'path', 'cookie'] },
        required: { type: 'boolean' },
        schema: { type: 'object' },
      },
      if: { properties: { in: { const: 'path' } } },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema keyword
      then: { required: ['required'], properties: { required: { const: true } } },
    },
    mediaType: { type: 'object', required: ['schema'], properties: { schema: { type: 'object' } } },
    response: {
      type: 'object',
      required: ['description'],
      properties: {
        description: { type: 'string', minLength: 1 },
        headers: {
          type: 'object',
          additionalProperties: { type: 'object', required: ['schema'] },
        },
        content: { type: 'object', additionalProperties: { $ref: '#/$defs/mediaType' } },
      },
    },
    securityScheme: {
      oneOf: [
        {
          type: 'object',
          required: ['type', 'in', 'name'],
          properties: { type: { const: 'apiKey' }, in: { const: 'header' }, name: { type: 'string' } },
        },
        {
          type: 'object',
          required: ['type', 'scheme'],
          properties: { type: { const: 'http' }, scheme: { type: 'string' } },
        },
      ],
    },
  },
};

/** Every (method, path) the app serves, read from its route tree; `:param` becomes `{param}`. */
function registeredRoutes(app: FastifyInstance): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const prefixes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] as string).length / 4;
    const path = (depth === 0 ? '' : (prefixes[depth - 1] ?? '')) + (match[2] as string);
    prefixes[depth] = path;
    prefixes.length = depth + 1;
    for (const method of match[3]?.split(', ') ?? []) routes.push({ method, path });
  }
  // The tree printout is parsed, so check the parse against the router itself.
  for (const route of routes)
    expect(app.hasRoute({ method: route.method as never, url: route.path }), route.path).toBe(true);
  return routes.map(({ method, path }) => ({ method, path: path.replace(/:([A-Za-z0-9_]+)/g, '{$1}') }));
}

/** Path templates compared without their parameter names. */
const shape = (path: string) => path.replace(/\{[^}]+\}/g, '{}');

describe('API documentation', () => {
  let allocator: TestAllocator;
  let document: Json;
  let paths: Record<string, Record<string, Operation>>;
  let ajv: Ajv2020;

  beforeAll(async () => {
    allocator = await startTestAllocator({ API_KEY });
    const response = await allocator.app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(response.statusCode).toBe(200);
    document = response.json() as Json;
    paths = document.paths as Record<string, Record<string, Operation>>;
    ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    ajv.addSchema({ $id: 'openapi.json', components: document.components });
  });
  afterAll(async () => {
    await allocator?.close();
  });

  /** The documented JSON schema of one answer, compiled against the document's components. */
  function responseValidator(method: string, path: string, status: number): ValidateFunction {
    const operation = paths[path]?.[method];
    expect(operation, `${method} ${path} documented`).toBeDefined();
    const documented = (operation as Operation).responses[String(status)] as Json | undefined;
    expect(documented, `${method} ${path} documents ${status}`).toBeDefined();
    const content = (documented as { content?: Record<string, { schema: Json }> }).content;
    const schema = content?.['application/json']?.schema;
    expect(schema, `${method} ${path} ${status} has a JSON schema`).toBeDefined();
    const rewritten = JSON.parse(
      JSON.stringify(schema).replaceAll('"#/components/', '"openapi.json#/components/'),
    );
    return ajv.compile(rewritten);
  }

  it('serves an OpenAPI 3.1 document without the API key, equal to the CLI builder', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const structure = new Ajv2020({ strict: false, allErrors: true }).compile(OPENAPI_STRUCTURE);
    expect(structure(document), JSON.stringify(structure.errors, null, 2)).toBe(true);
    expect(document.openapi).toBe('3.1.0');
    expect(document.info).toMatchObject({
      title: 'Automated File Allocator API',
      version: allocator.runtime.version,
    });
    expect(document).toEqual(openApiDocument(allocator.runtime.version));
    expect((document.components as Json).securitySchemes).toEqual({
      ApiKey: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-API-Key' }),
      bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    });
  });

  it('has resolvable references and component schemas that are valid JSON Schema 2020-12', () => {
    const schemas = (document.components as { schemas: Json }).schemas;
    const text = JSON.stringify(document);
    const references = [...text.matchAll(/"\$ref":"([^"]+)"/g)].map((match) => match[1] as string);
    expect(references.length).toBeGreaterThan(50);
    for (const reference of references) {
      expect(reference).toMatch(/^#\/components\/schemas\//);
      expect(schemas, reference).toHaveProperty(reference.slice('#/components/schemas/'.length));
    }
    for (const name of Object.keys(schemas))
      expect(() => ajv.getSchema(`openapi.json#/components/schemas/${name}`), name).not.toThrow();
    expect(Object.keys(schemas)).toEqual(
      expect.arrayContaining(['Error', 'ValidationIssue', 'IngestAccepted', 'JobStatus']),
    );
  });

  it('documents every registered route and method (HEAD/OPTIONS aside), and only those', () => {
    const registered = registeredRoutes(allocator.app).filter(
      ({ method }) => method !== 'HEAD' && method !== 'OPTIONS',
    );
    expect(registered).toEqual(expect.arrayContaining([{ method: 'POST', path: '/api/v1/ingest' }]));
    const served = new Set(registered.map(({ method, path }) => `${method.toLowerCase()} ${shape(path)}`));
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(paths))
      for (const method of Object.keys(item)) documented.add(`${method} ${shape(path)}`);
    expect(
      [...served].filter((route) => !documented.has(route)),
      'registered but undocumented',
    ).toEqual([]);
    expect(
      [...documented].filter((route) => !served.has(route)),
      'documented but not served',
    ).toEqual([]);
    // Every spec route (§3.4–§3.17) is among them.
    for (const route of [
      'post /api/v1/ingest',
      'get /api/v1/ingest/{}/status',
      'post /api/v1/ingest/folder',
      'get /api/v1/ingest/batch/{}',
      'get /api/v1/ingest/batches',
      'get /api/v1/search',
      'post /api/v1/search',
      'get /api/v1/objects/{}',
      'delete /api/v1/objects/{}',
      'get /api/v1/objects/{}/content',
      'get /api/v1/objects/{}/thumbnail',
      'get /api/v1/objects/{}/chunks',
      'get /api/v1/objects/{}/lineage',
      'get /api/v1/objects/{}/similar',
      'get /api/v1/duplicates',
      'get /api/v1/schemas',
      'get /api/v1/schemas/{}',
      'post /api/v1/schemas/{}/approve',
      'post /api/v1/schemas/{}/reject',
      'get /api/v1/schemas/{}/records',
      'get /api/v1/admin/schemas',
      'get /api/v1/admin/schemas/pending',
      'get /api/v1/admin/schemas/{}',
      'post /api/v1/admin/schemas/{}/approve',
      'post /api/v1/admin/schemas/{}/reject',
      'get /api/v1/admin/clusters',
      'get /api/v1/admin/clusters/statistics',
      'get /api/v1/admin/clusters/merge-candidates',
      'get /api/v1/admin/clusters/{}',
      'post /api/v1/admin/clusters/{}/rename',
      'post /api/v1/admin/clusters/{}/merge',
      'post /api/v1/admin/clusters/{}/threshold',
      'post /api/v1/admin/clusters/{}/confirm',
      'get /api/v1/clusters',
      'get /api/v1/clusters/{}',
      'patch /api/v1/clusters/{}',
      'get /api/v1/admin/dlq',
      'get /api/v1/admin/dlq/{}',
      'post /api/v1/admin/dlq/{}/requeue',
      'delete /api/v1/admin/dlq/{}',
      'get /',
      'get /live',
      'get /ready',
      'get /health',
      'get /metrics',
    ])
      expect(documented.has(route), route).toBe(true);
  });

  it('describes parameters, bodies, errors and security of every operation', () => {
    for (const [path, item] of Object.entries(paths)) {
      const templateNames = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]).sort();
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method} ${path}`;
        const pathNames = (operation.parameters ?? [])
          .filter((parameter) => parameter.in === 'path')
          .map((parameter) => parameter.name)
          .sort();
        expect(pathNames, where).toEqual(templateNames);
        const statuses = Object.keys(operation.responses);
        expect(
          statuses.some((status) => /^[23]/.test(status)),
          where,
        ).toBe(true);
        if (path.startsWith('/api/v1/')) {
          // Protected by the document-level security; the key's 401 and the error body are documented.
          expect(operation.security, where).toBeUndefined();
          expect((operation.responses['401'] as Json).content, where).toEqual({
            'application/json': { schema: { $ref: '#/components/schemas/Error' } },
          });
          for (const status of statuses.filter((code) => /^[45]/.test(code))) {
            const schema = JSON.stringify((operation.responses[status] as Json).content);
            expect(schema, `${where} ${status}`).toMatch(
              /#\/components\/schemas\/(Error|ValidationErrorBody)"/,
            );
          }
          if (templateNames.length > 0 && method !== 'post') expect(statuses, where).toContain('404');
        } else {
          expect(operation.security, where).toEqual([]);
        }
        if (method === 'post' || method === 'patch')
          if (!path.endsWith('/requeue'))
            expect(operation, `${where} request body`).toHaveProperty('requestBody');
      }
    }
    const ingest = paths['/api/v1/ingest']?.post as Operation & { requestBody: { content: Json } };
    expect(Object.keys(ingest.requestBody.content).sort()).toEqual([
      'application/json',
      'multipart/form-data',
    ]);
    expect(Object.keys(ingest.responses).sort()).toEqual([
      '202',
      '400',
      '401',
      '409',
      '413',
      '415',
      '422',
      '503',
    ]);
    const search = paths['/api/v1/search']?.get as Operation;
    expect(search.parameters?.map((parameter) => parameter.name)).toEqual([
      'query',
      'type',
      'limit',
      'threshold',
      'include_duplicates',
      'owner',
      'cluster_id',
      'tags',
    ]);
    expect(search.parameters?.[0]).toMatchObject({ in: 'query', required: true });
    const approve = paths['/api/v1/schemas/{id}/approve']?.post as Operation & {
      requestBody: { content: Json };
    };
    expect(Object.keys(approve.requestBody.content).sort()).toEqual([
      'application/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
    ]);
  });

  it('documents response schemas that real answers satisfy', async () => {
    const key = { 'x-api-key': API_KEY };
    const accepted = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: key,
      payload: { payload: [{ name: 'Alice', age: 30 }], owner: 'docs' },
    });
    expect(accepted.statusCode).toBe(202);
    const jobId = (accepted.json() as { job_id: string }).job_id;
    await allocator.waitForJob(jobId);
    const unknown = '00000000-0000-4000-8000-000000000000';
    const cases: [method: string, url: string, path: string, status: number, body?: Json][] = [
      ['get', '/', '/', 200],
      ['get', '/live', '/live', 200],
      ['get', '/ready', '/ready', 200],
      ['get', '/health', '/health', 200],
      ['post', '/api/v1/ingest', '/api/v1/ingest', 400, { payload: [] }],
      ['post', '/api/v1/ingest', '/api/v1/ingest', 422, { payload: { a: 1 }, priority: 99 }],
      ['get', `/api/v1/ingest/${jobId}/status`, '/api/v1/ingest/{job_id}/status', 200],
      ['get', `/api/v1/ingest/${unknown}/status`, '/api/v1/ingest/{job_id}/status', 404],
      ['get', '/api/v1/ingest/not-a-uuid/status', '/api/v1/ingest/{job_id}/status', 400],
      ['get', '/api/v1/ingest/batches', '/api/v1/ingest/batches', 200],
      ['get', '/api/v1/ingest/batches?limit=0', '/api/v1/ingest/batches', 422],
      ['get', '/api/v1/search?query=alice', '/api/v1/search', 200],
      ['get', '/api/v1/search?query=a', '/api/v1/search', 400],
      ['post', '/api/v1/search', '/api/v1/search', 200, { query: 'alice', limit: 5 }],
      ['get', '/api/v1/duplicates', '/api/v1/duplicates', 200],
      ['get', `/api/v1/objects/${unknown}`, '/api/v1/objects/{id}', 404],
      ['get', '/api/v1/schemas', '/api/v1/schemas', 200],
      ['get', '/api/v1/admin/schemas', '/api/v1/admin/schemas', 200],
      ['get', '/api/v1/admin/schemas/pending', '/api/v1/admin/schemas/pending', 200],
      ['get', '/api/v1/admin/clusters', '/api/v1/admin/clusters', 200],
      ['get', '/api/v1/admin/clusters/statistics', '/api/v1/admin/clusters/statistics', 200],
      ['get', '/api/v1/admin/clusters/merge-candidates', '/api/v1/admin/clusters/merge-candidates', 200],
      ['get', '/api/v1/clusters', '/api/v1/clusters', 200],
      ['get', '/api/v1/admin/dlq', '/api/v1/admin/dlq', 200],
      ['get', `/api/v1/admin/dlq/${unknown}`, '/api/v1/admin/dlq/{job_id}', 404],
    ];
    const asset = ((accepted.json() as { system_ids: string[] }).system_ids as string[])[0] as string;
    cases.push(
      ['get', `/api/v1/objects/${asset}`, '/api/v1/objects/{id}', 200],
      ['get', `/api/v1/objects/${asset}/lineage`, '/api/v1/objects/{id}/lineage', 200],
    );
    const schemas = (
      await allocator.app.inject({ method: 'GET', url: '/api/v1/schemas', headers: key })
    ).json() as { id: string }[];
    expect(schemas.length).toBe(1);
    const schemaId = (schemas[0] as { id: string }).id;
    cases.push(
      ['get', `/api/v1/schemas/${schemaId}`, '/api/v1/schemas/{id}', 200],
      ['get', `/api/v1/admin/schemas/${schemaId}`, '/api/v1/admin/schemas/{id}', 200],
      ['get', `/api/v1/schemas/${schemaId}/records`, '/api/v1/schemas/{id}/records', 200],
    );
    for (const [method, url, path, status, body] of cases) {
      const response = await allocator.app.inject({
        method: method.toUpperCase() as 'GET',
        url,
        headers: key,
        ...(body === undefined ? {} : { payload: body }),
      });
      expect(response.statusCode, `${method} ${url}`).toBe(status);
      const validate = responseValidator(method, path, status);
      expect(validate(response.json()), `${method} ${url}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    // The documented error body is strict: an answer with an unexpected field would not validate.
    const errorBody = responseValidator('get', '/api/v1/objects/{id}', 404);
    expect(errorBody({ error: 'not_found', detail: 'x', request_id: 'r', stack: 'at …' })).toBe(false);
  });

  it('serves Swagger UI whose scripts and styles all come from local URLs that answer 200', async () => {
    const page = await allocator.app.inject({ method: 'GET', url: '/api/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    const html = page.body;
    expect(html).not.toMatch(/https?:\/\//);
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBe(3);
    for (const [, , body] of scripts) expect(body?.trim()).toBe('');
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] as string);
    const local = urls.filter((url) => url.startsWith('/api/docs/static/'));
    expect(local.length).toBe(urls.length - 1); // the <noscript> link to the document
    const types: Record<string, string> = {
      js: 'text/javascript; charset=utf-8',
      css: 'text/css; charset=utf-8',
      png: 'image/png',
    };
    for (const url of local) {
      const asset = await allocator.app.inject({ method: 'GET', url });
      expect(asset.statusCode, url).toBe(200);
      expect(asset.headers['content-type'], url).toBe(types[url.split('.').pop() as string]);
      expect(asset.rawPayload.length, url).toBeGreaterThan(100);
    }
    expect(local).toEqual(
      expect.arrayContaining([
        '/api/docs/static/swagger-ui.css',
        '/api/docs/static/swagger-ui-bundle.js',
        '/api/docs/static/swagger-ui-standalone-preset.js',
        '/api/docs/static/initializer.js',
      ]),
    );
    const initializer = await allocator.app.inject({ method: 'GET', url: '/api/docs/static/initializer.js' });
    expect(initializer.body).toContain("url: '/api/openapi.json'");
    for (const name of ['package.json', 'index.html', '..%2F..%2Fpackage.json', 'csp.json']) {
      const missing = await allocator.app.inject({ method: 'GET', url: `/api/docs/static/${name}` });
      expect(missing.statusCode, name).toBe(404);
      expect(missing.json()).toMatchObject({
        error: 'not_found',
        request_id: missing.headers['x-request-id'],
      });
    }
  });

  it('opens the documentation without the key while /api/v1 routes require it', async () => {
    for (const url of ['/api/docs', '/api/openapi.json', '/api/docs/static/swagger-ui-bundle.js'])
      expect((await allocator.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    const locked = await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/batches' });
    expect(locked.statusCode).toBe(401);
    expect(locked.json()).toMatchObject({ error: 'unauthorized' });
  });

  it('redirects /docs and /openapi.json with 308', async () => {
    for (const [from, to] of [
      ['/docs', '/api/docs'],
      ['/openapi.json', '/api/openapi.json'],
    ] as const) {
      const response = await allocator.app.inject({ method: 'GET', url: from });
      expect(response.statusCode, from).toBe(308);
      expect(response.headers.location, from).toBe(to);
    }
  });

  it('renders the operation list in Chromium, offline and without CSP violations', async () => {
    const address = await allocator.app.listen({ host: '127.0.0.1', port: 0 });
    const browser = await chromium.launch(CHROMIUM_LAUNCH_OPTIONS);
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));
      const external: string[] = [];
      page.on('request', (request) => {
        if (!request.url().startsWith(address) && !request.url().startsWith('data:'))
          external.push(request.url());
      });
      await page.goto(`${address}/api/docs`);
      await page.waitForSelector('.swagger-ui .info .title', { timeout: 15_000 });
      expect(await page.textContent('.swagger-ui .info .title')).toContain('Automated File Allocator API');
      const ingest = page.locator('.opblock-summary-path[data-path="/api/v1/ingest"]');
      await ingest.first().waitFor({ timeout: 10_000 });
      expect(await ingest.count()).toBe(1);
      expect(await page.locator('.opblock-summary-path[data-path="/api/v1/clusters/{id}"]').count()).toBe(2);
      expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(50);
      expect(problems).toEqual([]);
      expect(external).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
