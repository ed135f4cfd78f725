// GET /openapi.json (hand-written OpenAPI 3.1: every route of spec §3.5, WebSockets under `x-websockets`) and
// GET /docs: Swagger UI from the locally installed swagger-ui-dist, started by a script file of ours, so the page
// needs no network and no inline script (CSP `script-src 'self'`).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { serviceVersion } from '../version.js';
import { detailError } from './conventions.js';

// ---- the document ----

type Schema = Record<string, unknown>;

const json = (schema: Schema = { type: 'object' }) => ({ 'application/json': { schema } });
const response = (description: string, schema?: Schema) => ({ description, content: json(schema) });
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string) => response(description, ref('Error'));
const validation = response('Invalid parameters or body (every problem listed)', ref('ValidationError'));

const bearer = [{ bearerAuth: [] }];
/** Responses every /api route may give. */
const apiResponses = {
  '401': errorResponse('Missing or wrong bearer token (when OW_SC_API_TOKEN is set)'),
  '429': errorResponse('Rate limit exceeded (Retry-After: 1)'),
};
const storeDown = { '503': errorResponse('store unavailable') };

const query = (name: string, schema: Schema, description?: string) => ({
  name,
  in: 'query',
  required: false,
  schema,
  ...(description ? { description } : {}),
});
const pathId = (description: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  description,
  schema: { type: 'string', format: 'uuid' },
});
const paging = [
  query('limit', { type: 'integer', minimum: 1, maximum: 500, default: 50 }),
  query('offset', { type: 'integer', minimum: 0, default: 0 }),
];
const levels = { type: 'string', enum: ['info', 'watch', 'warning', 'critical'] };

const csvUploadResponses = {
  '413': errorResponse(
    'CSV over OW_SC_MAX_CSV_BYTES or OW_SC_MAX_CSV_ROWS (a larger Content-Length is refused unread)',
  ),
  '415': errorResponse('Unsupported Media Type: send text/csv or multipart/form-data'),
  '422': response('CSV problems with line and column, or invalid fields / permit', ref('ValidationError')),
  '504': errorResponse('processing timed out'),
  '507': errorResponse('insufficient storage'),
};

const csvBody = (fields: Record<string, Schema>, required: string[] = []) => ({
  required: true,
  content: {
    'text/csv': { schema: { type: 'string' }, example: 'time,species,concentration\n0,SO4,200\n1,SO4,260\n' },
    'application/csv': { schema: { type: 'string' } },
    'text/plain': { schema: { type: 'string' } },
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['file', ...required],
        properties: {
          file: { type: 'string', format: 'binary', description: 'the CSV (spec §3.4)' },
          ...fields,
        },
      },
    },
  },
});

const schemas: Record<string, Schema> = {
  Error: { type: 'object', required: ['detail'], properties: { detail: { type: 'string' } } },
  ValidationError: {
    type: 'object',
    required: ['detail'],
    properties: {
      detail: {
        type: 'array',
        items: {
          type: 'object',
          required: ['loc', 'msg', 'type'],
          properties: {
            loc: { type: 'array', items: { oneOf: [{ type: 'string' }, { type: 'integer' }] } },
            msg: { type: 'string' },
            type: { type: 'string' },
            line: { type: 'integer', description: 'CSV errors: physical 1-based line' },
            column: { type: 'string', description: 'CSV errors: trimmed header name' },
          },
        },
      },
    },
  },
  Alert: {
    type: 'object',
    required: ['time', 'species', 'type', 'level', 'value', 'limit', 'action', 'message', 'ratio'],
    properties: {
      time: { oneOf: [{ type: 'number' }, { type: 'string' }] },
      species: { type: 'string' },
      type: { type: 'string', enum: ['exceedance', 'trend', 'daily_maximum', 'monthly_average'] },
      level: levels,
      value: { type: 'number' },
      limit: { type: 'number' },
      action: { type: 'string' },
      message: { type: 'string' },
      ratio: { type: 'number' },
      window: { type: 'integer', description: 'trend alerts only' },
    },
  },
  StoredAlert: {
    allOf: [
      ref('Alert'),
      {
        type: 'object',
        properties: {
          id: { type: 'string', format: 'uuid' },
          source: { type: 'string', enum: ['batch', 'stream'] },
          batch_id: { type: ['string', 'null'] },
          incident_id: { type: ['string', 'null'] },
          created_at: { type: 'string', format: 'date-time' },
        },
      },
    ],
  },
  Permit: {
    type: 'object',
    properties: {
      limits_mgL: { type: 'object', additionalProperties: { type: 'number' } },
      rolling_window: { type: 'integer', minimum: 1 },
      actions: { type: 'object', additionalProperties: { type: 'string' } },
      daily_max_limits_mgL: { type: 'object', additionalProperties: { type: 'number' } },
      monthly_average_limits_mgL: { type: 'object', additionalProperties: { type: 'number' } },
      timezone: { type: 'string' },
    },
  },
  Batch: {
    type: 'object',
    description: 'The batch result of spec §3.2 with id, created_at, filename, sha256, site',
    properties: {
      id: { type: 'string', format: 'uuid' },
      created_at: { type: 'string', format: 'date-time' },
      filename: { type: ['string', 'null'] },
      site: { type: ['string', 'null'] },
      sha256: { type: 'string' },
      count: { type: 'integer' },
      alerts: { type: 'array', items: ref('Alert') },
      compliant: { type: 'boolean' },
      mode: { type: 'string', enum: ['latest', 'all'] },
      format: { type: 'string', enum: ['tidy', 'wide'] },
      rows: { type: 'integer' },
      readings: { type: 'integer' },
      species: { type: 'array', items: { type: 'string' } },
      time_kind: { type: 'string', enum: ['numeric', 'iso'] },
      permit: ref('Permit'),
      summary: { type: 'object' },
      statistics: { type: ['object', 'null'] },
    },
  },
  Incident: {
    type: 'object',
    properties: {
      id: { type: 'string', format: 'uuid' },
      source: { type: 'string', enum: ['stream'] },
      species: { type: 'string' },
      state: { type: 'string', enum: ['open', 'closed'] },
      opened_at: { type: 'string', format: 'date-time' },
      closed_at: { type: ['string', 'null'] },
      limit: { type: 'number' },
      peak_value: { type: 'number' },
      peak_level: levels,
      alert_count: { type: 'integer' },
      acknowledged: { type: 'boolean' },
      acknowledged_at: { type: ['string', 'null'] },
      acknowledged_by: { type: ['string', 'null'] },
      ack_note: { type: ['string', 'null'] },
    },
  },
};

const page = (item: string) => ({
  type: 'object',
  properties: { items: { type: 'array', items: ref(item) }, total: { type: 'integer' } },
});

const publicGet = (summary: string, ok: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  get: { summary, tags: ['operations'], security: [], responses: { '200': ok, ...extra } },
});
const apiGet = (summary: string, ok: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  summary,
  tags: ['api'],
  security: bearer,
  responses: { '200': ok, ...apiResponses, ...extra },
});

const webSocket = (summary: string, receives: string, sends: string) => ({
  summary,
  protocol: 'WebSocket (GET with Upgrade)',
  authentication:
    'Authorization: Bearer <OW_SC_API_TOKEN> or ?token= (browsers); a missing/wrong token → close 1008 Unauthorized',
  receives,
  sends,
  close_codes: {
    '1001': 'server shutting down',
    '1008': 'Unauthorized, or consumer too slow',
    '1009': 'frame over max(65536, 8 × OW_SC_WS_MAX_MESSAGE_BYTES)',
    '1013': 'Try again later (OW_SC_WS_MAX_CONNECTIONS reached)',
  },
});

/** The OpenAPI 3.1 document of every route. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'OpenWorld Specialty Chemicals',
      version: serviceVersion(),
      description:
        'Effluent compliance: CSV batches checked against the discharge permit, regulatory statistics, ' +
        'compliance reports, process-chemistry fits, and a live stream with alerts and incidents.',
    },
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'OW_SC_API_TOKEN' } },
      schemas,
    },
    security: bearer,
    paths: {
      '/health': publicGet('Process health', response('healthy: status, service, version')),
      '/livez': publicGet('Liveness', response('live: status, timestamp')),
      '/readyz': publicGet('Readiness (store, Redis, shutdown)', response('ready: status, buffer_size'), {
        '503': response('not_ready: status, buffer_size, checks'),
      }),
      '/metrics': publicGet(
        'Prometheus metrics (Bearer token when OW_SC_METRICS_PROTECT is on)',
        {
          description: 'Prometheus text format 0.0.4',
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        { '401': errorResponse('Unauthorized') },
      ),
      '/': publicGet('Operator dashboard page', {
        description: 'HTML page',
        content: { 'text/html': { schema: { type: 'string' } } },
      }),
      '/static/{path}': {
        get: {
          summary: 'Dashboard page assets',
          tags: ['operations'],
          security: [],
          parameters: [{ name: 'path', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'asset' }, '404': errorResponse('Not Found') },
        },
      },
      '/openapi.json': publicGet('This document', response('OpenAPI 3.1')),
      '/docs': publicGet('Swagger UI (local assets)', {
        description: 'HTML page',
        content: { 'text/html': { schema: { type: 'string' } } },
      }),
      '/api/status': {
        get: apiGet(
          'Service status',
          response(
            'status (operational|degraded), buffer_size, max_buffer, active_connections, uptime, started_at, ' +
              'version, instance_id, redis, workers',
          ),
        ),
      },
      '/api/health': { get: apiGet('Compatibility health check', response('{"status":"ok"}')) },
      '/api/streams': {
        get: {
          ...apiGet('Buffered stream messages, oldest first', response('count and data'), {
            '422': validation,
          }),
          parameters: [
            query('limit', { type: 'integer', minimum: 1, default: 100 }),
            query('species', { type: 'string' }),
          ],
        },
      },
      '/api/permit': {
        get: apiGet('The active permit, normalised', response('permit with source', ref('Permit'))),
      },
      '/api/advise': {
        post: {
          summary: 'Remediation advice per alert',
          tags: ['api'],
          security: bearer,
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              properties: {
                alerts: { type: 'array', maxItems: 10000, items: { type: 'object' }, default: [] },
                site: { type: 'string' },
              },
            }),
          },
          responses: {
            '200': response(
              'alert_count, actions, recommendations, by_species, provider (catalogue|openai), rationale',
            ),
            '413': errorResponse('more than 10,000 alerts, or body over OW_SC_MAX_JSON_BYTES'),
            '422': validation,
            ...apiResponses,
          },
        },
      },
      '/api/batches': {
        post: {
          summary: 'Evaluate a CSV upload against the permit and store the result',
          tags: ['api'],
          security: bearer,
          parameters: [
            query('mode', { type: 'string', enum: ['latest', 'all'], default: 'latest' }, 'text/csv bodies'),
            query('site', { type: 'string' }, 'text/csv bodies'),
            query('filename', { type: 'string' }, 'text/csv bodies (metadata only)'),
          ],
          requestBody: csvBody({
            permit: { type: 'string', description: 'permit JSON (text field or file part)' },
            mode: { type: 'string', enum: ['latest', 'all'] },
            site: { type: 'string' },
          }),
          responses: {
            '201': {
              description: 'Stored; Location: /api/batches/{id}',
              headers: { Location: { schema: { type: 'string' } } },
              content: json(ref('Batch')),
            },
            ...csvUploadResponses,
            ...apiResponses,
            ...storeDown,
          },
        },
        get: {
          ...apiGet('Stored batches, newest first', response('items and total'), {
            '422': validation,
            ...storeDown,
          }),
          parameters: paging,
        },
      },
      '/api/batches/{id}': {
        get: {
          ...apiGet('A stored batch result', response('the batch', ref('Batch')), {
            '404': errorResponse('batch not found'),
            ...storeDown,
          }),
          parameters: [pathId('batch id')],
        },
      },
      '/api/batches/{id}/report': {
        get: {
          ...apiGet(
            'Report export: compliance certificate (HTML, PDF) or alerts CSV',
            {
              description: 'the report',
              content: {
                'text/html': { schema: { type: 'string' } },
                'application/pdf': { schema: { type: 'string', format: 'binary' } },
                'text/csv': { schema: { type: 'string' } },
              },
            },
            { '404': errorResponse('batch not found'), '422': validation, ...storeDown },
          ),
          parameters: [
            pathId('batch id'),
            query('format', { type: 'string', enum: ['html', 'pdf', 'csv'], default: 'html' }),
            query('site', { type: 'string' }, "defaults to the batch's site, then Unknown site"),
            query('period', { type: 'string' }, 'shown as Current when absent'),
          ],
        },
      },
      '/api/chemistry/fit': {
        post: {
          summary: 'Fit first-order decay or pseudo-first-order sorption (runs in the job pool)',
          tags: ['api'],
          security: bearer,
          parameters: [
            query('species', { type: 'string' }, 'text/csv bodies (required)'),
            query(
              'model',
              { type: 'string', enum: ['decay', 'sorption'], default: 'decay' },
              'text/csv bodies',
            ),
            query('volume_l', { type: 'number', exclusiveMinimum: 0 }, 'sorption, with solids_kg'),
            query('solids_kg', { type: 'number', exclusiveMinimum: 0 }, 'sorption, with volume_l'),
          ],
          requestBody: csvBody(
            {
              species: { type: 'string' },
              model: { type: 'string', enum: ['decay', 'sorption'] },
              volume_l: { type: 'number' },
              solids_kg: { type: 'number' },
            },
            ['species'],
          ),
          responses: { '200': response('the fit (spec §3.6)'), ...csvUploadResponses, ...apiResponses },
        },
      },
      '/api/alerts': {
        get: {
          ...apiGet('Stored alerts, newest first', response('items and total', page('StoredAlert')), {
            '422': validation,
            ...storeDown,
          }),
          parameters: [
            query('source', { type: 'string', enum: ['batch', 'stream'] }),
            query('species', { type: 'string' }),
            query('level', levels),
            query('min_level', levels),
            query('batch_id', { type: 'string' }),
            query('incident_id', { type: 'string' }),
            ...paging,
          ],
        },
      },
      '/api/incidents': {
        get: {
          ...apiGet('Stream incidents, newest first', response('items and total', page('Incident')), {
            '422': validation,
            ...storeDown,
          }),
          parameters: [
            query('state', { type: 'string', enum: ['open', 'closed'] }),
            query('species', { type: 'string' }),
            ...paging,
          ],
        },
      },
      '/api/incidents/{id}': {
        get: {
          ...apiGet('An incident with its timeline', response('incident and timeline'), {
            '404': errorResponse('incident not found'),
            ...storeDown,
          }),
          parameters: [pathId('incident id')],
        },
      },
      '/api/incidents/{id}/ack': {
        post: {
          summary: 'Acknowledge an incident (broadcast on /ws/alerts)',
          tags: ['api'],
          security: bearer,
          parameters: [pathId('incident id')],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['by'],
              properties: {
                by: { type: 'string', minLength: 1, maxLength: 100 },
                note: { type: 'string', maxLength: 1000 },
              },
            }),
          },
          responses: {
            '200': response('the acknowledged incident', ref('Incident')),
            '404': errorResponse('incident not found'),
            '409': errorResponse('incident already acknowledged by <by> at <ISO>'),
            '422': validation,
            ...apiResponses,
            ...storeDown,
          },
        },
      },
    },
    'x-websockets': {
      '/ws/effluent': webSocket(
        'Live readings: each JSON object is stamped, buffered and relayed to the other clients (and instances)',
        'JSON objects, e.g. {"time", "species", "concentration"} (≤ OW_SC_WS_MAX_MESSAGE_BYTES, ≤ OW_SC_WS_MSGS_PER_SEC per second)',
        'the other clients\' messages; {"type":"error","detail":…} for dropped ones',
      ),
      '/ws/alerts': webSocket(
        'Live alerts and incident changes from every instance',
        'JSON objects, answered with {"type":"alert_processed","timestamp","alert","status":"received"}',
        '{"type":"alert","alert":…} and {"type":"incident","event":"opened"|"acknowledged"|"closed","incident":…}',
      ),
    },
  };
}

// ---- Swagger UI ----

/** The assets of swagger-ui-dist served under /docs/assets/ (nothing else of the package is reachable). */
const SWAGGER_ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};
const ASSET_CACHE_CONTROL = 'public, max-age=3600';

/** Starts Swagger UI on /openapi.json; a file of its own, because the CSP forbids inline scripts. */
export const DOCS_INITIALIZER = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
    validatorUrl: null,
  });
});
`;

export const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>OpenWorld Specialty Chemicals API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/docs/assets/favicon-16x16.png" sizes="16x16">
</head>
<body>
<noscript>Swagger UI needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/assets/initializer.js"></script>
</body>
</html>
`;

function swaggerUiDirectory(): string {
  return dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

/** Registers GET /openapi.json, GET /docs and GET /docs/assets/:name. */
export function registerApiDocs(app: FastifyInstance): void {
  const document = openApiDocument();
  const directory = swaggerUiDirectory();
  const cache = new Map<string, Buffer>();

  app.get('/openapi.json', async () => document);
  app.get('/docs', async (_request, reply) => reply.type('text/html; charset=utf-8').send(DOCS_PAGE));
  app.get('/docs/assets/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    reply.header('cache-control', ASSET_CACHE_CONTROL);
    if (name === 'initializer.js') return reply.type('text/javascript; charset=utf-8').send(DOCS_INITIALIZER);
    const type = Object.hasOwn(SWAGGER_ASSETS, name) ? SWAGGER_ASSETS[name] : undefined;
    if (type === undefined) throw detailError(404, 'Not Found');
    let content = cache.get(name);
    if (content === undefined) {
      content = await readFile(join(directory, name));
      cache.set(name, content);
    }
    return reply.type(type).send(content);
  });
}
