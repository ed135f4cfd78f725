// The OpenAPI 3.1 document (`/openapi.json`, `rag-assistant export-openapi`) and a readable `/docs` page
// rendered on the server (no script, so it works under the production CSP).
import type { FastifyInstance } from 'fastify';
import { serviceVersion } from '../version.js';
import type { RagContext } from './context.js';

interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  tag: string;
  auth: 'none' | 'user' | 'admin';
  /** success status (default 200) */
  status?: number;
  body?: Record<string, string>;
}

const OPERATIONS: readonly Operation[] = [
  { method: 'get', path: '/live', summary: 'Liveness', tag: 'probes', auth: 'none' },
  { method: 'get', path: '/ready', summary: 'Readiness (database, Redis)', tag: 'probes', auth: 'none' },
  { method: 'get', path: '/health', summary: 'Dependency health', tag: 'probes', auth: 'none' },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics (loopback, token or allow-all)',
    tag: 'probes',
    auth: 'none',
  },
  {
    method: 'post',
    path: '/api/auth/register',
    summary: 'Register',
    tag: 'auth',
    auth: 'none',
    body: { email: 'string', password: 'string' },
  },
  {
    method: 'post',
    path: '/api/auth/login',
    summary: 'Log in',
    tag: 'auth',
    auth: 'none',
    body: { email: 'string', password: 'string' },
  },
  {
    method: 'post',
    path: '/api/auth/token',
    summary: 'Dev login (ALLOW_DEV_LOGIN only)',
    tag: 'auth',
    auth: 'none',
    body: { email: 'string' },
  },
  {
    method: 'post',
    path: '/api/auth/logout',
    summary: 'Revoke the current token',
    tag: 'auth',
    auth: 'user',
  },
  { method: 'get', path: '/api/auth/me', summary: 'The current user', tag: 'auth', auth: 'user' },
  {
    method: 'get',
    path: '/api/auth/options',
    summary: 'Login options offered by this deployment',
    tag: 'auth',
    auth: 'none',
  },
  { method: 'get', path: '/api/stores', summary: 'List stores', tag: 'stores', auth: 'user' },
  {
    method: 'post',
    path: '/api/stores',
    summary: 'Create a store',
    tag: 'stores',
    auth: 'user',
    body: { display_name: 'string', backend: 'string' },
  },
  {
    method: 'delete',
    path: '/api/stores/{id}',
    summary: 'Soft-delete a store',
    tag: 'stores',
    auth: 'user',
    status: 202,
  },
  {
    method: 'post',
    path: '/api/stores/{id}/restore',
    summary: 'Restore a store',
    tag: 'stores',
    auth: 'admin',
  },
  {
    method: 'post',
    path: '/api/upload',
    summary: 'Upload a document (multipart: storeId, file, displayName)',
    tag: 'documents',
    auth: 'user',
  },
  {
    method: 'get',
    path: '/api/upload/op-status/{op_id}',
    summary: 'Indexing status',
    tag: 'documents',
    auth: 'user',
  },
  {
    method: 'get',
    path: '/api/documents/store/{store_id}',
    summary: 'Documents of a store',
    tag: 'documents',
    auth: 'user',
  },
  { method: 'get', path: '/api/documents/{id}', summary: 'A document', tag: 'documents', auth: 'user' },
  {
    method: 'get',
    path: '/api/documents/{id}/chunks',
    summary: 'Chunks of a document',
    tag: 'documents',
    auth: 'user',
  },
  {
    method: 'get',
    path: '/api/documents/{id}/file',
    summary: 'The original file',
    tag: 'documents',
    auth: 'user',
  },
  {
    method: 'post',
    path: '/api/documents/{id}/reindex',
    summary: 'Re-index',
    tag: 'documents',
    auth: 'user',
    status: 202,
  },
  {
    method: 'delete',
    path: '/api/documents/{id}',
    summary: 'Soft-delete a document',
    tag: 'documents',
    auth: 'user',
    status: 202,
  },
  {
    method: 'post',
    path: '/api/documents/{id}/restore',
    summary: 'Restore a document',
    tag: 'documents',
    auth: 'admin',
  },
  {
    method: 'post',
    path: '/api/search',
    summary: 'Retrieval debugging',
    tag: 'chat',
    auth: 'user',
    body: { storeIds: 'integer[]', query: 'string', topK: 'integer' },
  },
  {
    method: 'post',
    path: '/api/chat',
    summary: 'Streaming chat (Server-Sent Events, AI SDK UI message stream)',
    tag: 'chat',
    auth: 'user',
  },
  { method: 'get', path: '/api/chat/sessions', summary: 'Chat sessions', tag: 'chat', auth: 'user' },
  {
    method: 'get',
    path: '/api/chat/sessions/{id}/messages',
    summary: 'Messages of a session',
    tag: 'chat',
    auth: 'user',
  },
  {
    method: 'patch',
    path: '/api/chat/sessions/{id}',
    summary: 'Rename a session',
    tag: 'chat',
    auth: 'user',
    body: { title: 'string' },
  },
  {
    method: 'delete',
    path: '/api/chat/sessions/{id}',
    summary: 'Delete a session',
    tag: 'chat',
    auth: 'user',
    status: 204,
  },
  { method: 'get', path: '/api/models', summary: 'Backends and models', tag: 'chat', auth: 'user' },
  {
    method: 'get',
    path: '/api/costs/summary',
    summary: 'This month’s costs and budget',
    tag: 'costs',
    auth: 'user',
  },
  { method: 'get', path: '/api/costs/history', summary: 'Monthly cost history', tag: 'costs', auth: 'user' },
  { method: 'get', path: '/api/settings', summary: 'Branding settings', tag: 'settings', auth: 'none' },
  {
    method: 'post',
    path: '/api/settings',
    summary: 'Update branding settings',
    tag: 'settings',
    auth: 'admin',
  },
  { method: 'get', path: '/api/admin/users', summary: 'Users', tag: 'admin', auth: 'admin' },
  {
    method: 'post',
    path: '/api/admin/users/{id}/role',
    summary: 'Set a user’s role',
    tag: 'admin',
    auth: 'admin',
    body: { is_admin: 'boolean', admin_notes: 'string' },
  },
  {
    method: 'post',
    path: '/api/admin/users/{id}/active',
    summary: 'Activate or deactivate a user',
    tag: 'admin',
    auth: 'admin',
    body: { is_active: 'boolean' },
  },
  {
    method: 'post',
    path: '/api/admin/budgets/{user_id}',
    summary: 'Set a monthly budget',
    tag: 'admin',
    auth: 'admin',
    body: { monthly_limit_usd: 'number' },
  },
  {
    method: 'delete',
    path: '/api/admin/budgets/{user_id}',
    summary: 'Remove a budget',
    tag: 'admin',
    auth: 'admin',
    status: 204,
  },
  {
    method: 'get',
    path: '/api/admin/usage',
    summary: 'Usage per user for a month',
    tag: 'admin',
    auth: 'admin',
  },
  { method: 'get', path: '/api/admin/audit', summary: 'Audit log', tag: 'admin', auth: 'admin' },
  {
    method: 'get',
    path: '/api/admin/audit/deletions',
    summary: 'Deleted stores',
    tag: 'admin',
    auth: 'admin',
  },
  { method: 'get', path: '/api/admin/system/summary', summary: 'System counts', tag: 'admin', auth: 'admin' },
  { method: 'get', path: '/api/admin/documents', summary: 'Ingestion overview', tag: 'admin', auth: 'admin' },
  {
    method: 'post',
    path: '/api/admin/documents/{id}/retry',
    summary: 'Retry indexing',
    tag: 'admin',
    auth: 'admin',
    status: 202,
  },
  {
    method: 'post',
    path: '/api/admin/watchdog/reset-stuck',
    summary: 'Recover stuck documents',
    tag: 'admin',
    auth: 'admin',
    body: { user_id: 'integer', ttl_minutes: 'integer' },
  },
];

function schemaOf(type: string): Record<string, unknown> {
  if (type.endsWith('[]')) return { type: 'array', items: schemaOf(type.slice(0, -2)) };
  return { type };
}

const ERROR_SCHEMA = {
  type: 'object',
  properties: { detail: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'object' } }] } },
  required: ['detail'],
};

/** The OpenAPI 3.1 document of the service. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of OPERATIONS) {
    const parameters = [...operation.path.matchAll(/\{(\w+)\}/g)].map((match) => ({
      name: match[1],
      in: 'path',
      required: true,
      schema: { type: match[1] === 'op_id' || operation.path.includes('/sessions/') ? 'string' : 'integer' },
    }));
    const status = String(operation.status ?? 200);
    paths[operation.path] ??= {};
    (paths[operation.path] as Record<string, unknown>)[operation.method] = {
      summary: operation.summary,
      tags: [operation.tag],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(operation.auth === 'none' ? { security: [] } : {}),
      ...(operation.body === undefined
        ? {}
        : {
            requestBody: {
              required: true,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: Object.fromEntries(
                      Object.entries(operation.body).map(([name, type]) => [name, schemaOf(type)]),
                    ),
                  },
                },
              },
            },
          }),
      responses: {
        [status]: { description: 'Success' },
        default: { description: 'Error', content: { 'application/json': { schema: ERROR_SCHEMA } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'RAG Assistant', version: serviceVersion() },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: ERROR_SCHEMA },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

function docsPage(): string {
  const rows = OPERATIONS.map(
    (operation) =>
      `<tr><td><code>${operation.method.toUpperCase()}</code></td><td><code>${escapeHtml(operation.path)}</code></td><td>${escapeHtml(
        operation.summary,
      )}</td><td>${operation.auth}</td></tr>`,
  ).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RAG Assistant API</title></head>
<body><h1>RAG Assistant API</h1>
<p>Machine-readable document: <a href="/openapi.json">/openapi.json</a>. State-changing calls need
<code>X-Requested-With: XMLHttpRequest</code>; authenticated calls <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Auth</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>
`;
}

export function registerApiDocs(app: FastifyInstance, _context: RagContext): void {
  const document = openApiDocument();
  const page = docsPage();
  app.get('/openapi.json', async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(document),
  );
  app.get('/docs', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page));
}
