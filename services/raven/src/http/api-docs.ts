// GET /openapi.json (hand-written OpenAPI 3.1) and GET /docs (rendered on the server: no script, no network).
import type { FastifyInstance } from 'fastify';
import { serviceVersion } from '../version.js';
import { PAGE_CSP } from './conventions.js';

const json = { 'application/json': { schema: { type: 'object' } } };
const detail = (description: string) => ({ description, content: json });
const keyParam = {
  name: 'key',
  in: 'path',
  required: true,
  description: 'the passphrase, e.g. apple-banana-cherry (case and separators are ignored)',
  schema: { type: 'string' },
};
const passwordHeader = {
  name: 'X-Password',
  in: 'header',
  required: false,
  description: 'the upload password, when one was set',
  schema: { type: 'string' },
};
const blocked = detail('Too many failed attempts from this client (Retry-After)');

const uploadResponses = {
  '201': detail('Stored: key, links, expiry, uses, filename, size, sha256'),
  '400': detail('Too large, empty, type not supported, or malformed body'),
  '408': detail('Upload timed out'),
  '422': detail('Invalid fields (every problem listed)'),
  '429': detail('Upload rate limit exceeded (Retry-After)'),
  '503': detail('Service temporarily unavailable (Retry-After)'),
  '507': detail('Insufficient storage'),
};

const postUpload = {
  summary: 'Upload one file (multipart/form-data)',
  requestBody: {
    required: true,
    content: {
      'multipart/form-data': {
        schema: {
          type: 'object',
          required: ['file'],
          properties: {
            file: { type: 'string', format: 'binary' },
            expiry: { type: 'integer', description: 'minutes until the file self-destructs' },
            uses: { type: 'integer', description: 'allowed downloads' },
            password: { type: 'string', maxLength: 1024 },
          },
        },
      },
    },
  },
  responses: uploadResponses,
};

/** The OpenAPI 3.1 document of every route. */
export function openApiDocument(): Record<string, unknown> {
  const health = {
    get: {
      summary: 'Service health (rate-limited)',
      responses: {
        '200': detail('healthy'),
        '429': detail('Rate limit exceeded'),
        '503': detail('degraded'),
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Raven Zero',
      version: serviceVersion(),
      description: 'Ephemeral encrypted file sharing: one file, a three-word key, self-destruct.',
    },
    paths: {
      '/upload': { post: { ...postUpload, operationId: 'uploadNoSlash' } },
      '/upload/': { post: { ...postUpload, operationId: 'upload' } },
      '/upload/{filename}': {
        put: {
          operationId: 'uploadRaw',
          summary: 'Upload the raw request body (curl --upload-file)',
          parameters: [
            { name: 'filename', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'expiry', in: 'query', required: false, schema: { type: 'integer' } },
            { name: 'uses', in: 'query', required: false, schema: { type: 'integer' } },
            passwordHeader,
          ],
          requestBody: {
            required: true,
            content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
          },
          responses: uploadResponses,
        },
      },
      '/preview/{key}': {
        get: {
          operationId: 'preview',
          summary: 'One-time metadata view (does not consume a download)',
          parameters: [keyParam, passwordHeader],
          responses: {
            '200': detail('File details'),
            '401': detail('Password required or invalid'),
            '403': detail('Link-preview bot'),
            '404': detail('Unknown key, or preview already accessed'),
            '410': detail('Download limit has been reached'),
            '429': blocked,
          },
        },
      },
      '/download/{key}': {
        get: {
          operationId: 'download',
          summary: 'Download the file (consumes one use)',
          parameters: [keyParam, passwordHeader],
          responses: {
            '200': {
              description: 'The file',
              content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
            },
            '401': detail('Password required or invalid'),
            '403': detail('Link-preview bot'),
            '404': detail('File not found'),
            '410': detail('Download limit has been reached'),
            '429': blocked,
            '500': detail('The stored file failed authentication'),
          },
        },
      },
      '/status/{key}': {
        get: {
          operationId: 'status',
          summary: 'Status of an upload (never consumes anything)',
          parameters: [keyParam],
          responses: { '200': detail('Status, or expired_or_burned for unknown keys'), '429': blocked },
        },
      },
      '/files/{key}': {
        delete: {
          operationId: 'delete',
          summary: 'Destroy the upload now',
          parameters: [keyParam, passwordHeader],
          responses: {
            '204': { description: 'Destroyed' },
            '401': detail('Password required or invalid'),
            '404': detail('File not found'),
            '429': blocked,
          },
        },
      },
      '/health': health,
      '/health/': health,
      '/livez': { get: { summary: 'Liveness probe', responses: { '200': detail('ok') } } },
      '/readyz': {
        get: {
          summary: 'Readiness probe',
          responses: { '200': detail('ready'), '503': detail('not ready') },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (Bearer METRICS_TOKEN when set)',
          responses: {
            '200': {
              description: 'Prometheus text',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': detail('OpenAPI 3.1') } } },
      '/docs': {
        get: { summary: 'API reference (HTML)', responses: { '200': { description: 'HTML page' } } },
      },
    },
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The API reference page, rendered from the OpenAPI document. */
export function docsPage(document: Record<string, unknown>): string {
  const paths = document.paths as Record<string, Record<string, Record<string, unknown>>>;
  const sections: string[] = [];
  for (const [path, operations] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const parameters =
        (operation.parameters as { name: string; in: string; description?: string }[] | undefined) ?? [];
      const responses = Object.entries(
        (operation.responses as Record<string, { description: string }>) ?? {},
      );
      sections.push(`<section>
<h2><span class="method">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code></h2>
<p>${escapeHtml(String(operation.summary ?? ''))}</p>
${parameters.length > 0 ? `<ul>${parameters.map((p) => `<li><code>${escapeHtml(p.name)}</code> (${escapeHtml(p.in)})${p.description ? ` — ${escapeHtml(p.description)}` : ''}</li>`).join('')}</ul>` : ''}
<table>${responses.map(([code, response]) => `<tr><td>${escapeHtml(code)}</td><td>${escapeHtml(response.description)}</td></tr>`).join('')}</table>
</section>`);
    }
  }
  const info = document.info as { title: string; version: string; description: string };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)} API</title></head>
<body>
<h1>${escapeHtml(info.title)} API <small>${escapeHtml(info.version)}</small></h1>
<p>${escapeHtml(info.description)} Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p>
${sections.join('\n')}
</body></html>
`;
}

/** Registers /openapi.json, /docs and the /scalar and /redoc redirects. */
export function registerApiDocs(app: FastifyInstance): void {
  const document = openApiDocument();
  const page = docsPage(document);
  app.get('/openapi.json', async (_request, reply) => reply.type('application/json').send(document));
  app.get('/docs', async (_request, reply) =>
    reply.header('content-security-policy', PAGE_CSP).type('text/html; charset=utf-8').send(page),
  );
  for (const url of ['/scalar', '/redoc']) {
    app.get(url, async (_request, reply) => reply.redirect('/docs', 302));
  }
}
