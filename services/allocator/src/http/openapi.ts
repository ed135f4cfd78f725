// API documentation (spec S12): a hand-written OpenAPI 3.1 document of every route, served at
// GET /api/openapi.json, and Swagger UI at GET /api/docs from the assets @fastify/swagger-ui ships (no CDN), started
// by a script file of ours so the page runs under a CSP without inline scripts. `/docs` and `/openapi.json`
// redirect (308) to them. None of these routes needs the API key (§3.1.5).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pageSecurityHeaders } from '@quintet/kernel/security';
import type { FastifyInstance } from 'fastify';
import type { AllocatorRuntime } from '../runtime.js';
import { notFound } from './errors.js';

type Schema = Record<string, unknown>;
type Operation = Record<string, unknown>;

// ---- building blocks ----

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (schema: Schema): Schema =>
  typeof schema.type === 'string'
    ? { ...schema, type: [schema.type, 'null'] }
    : { anyOf: [schema, { type: 'null' }] };
const string = (description?: string): Schema => ({
  type: 'string',
  ...(description ? { description } : {}),
});
const uuid: Schema = { type: 'string', format: 'uuid' };
const time: Schema = {
  type: 'string',
  format: 'date-time',
  description: 'ISO 8601 UTC with milliseconds and Z',
};
const integer = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const number = (extra: Schema = {}): Schema => ({ type: 'number', ...extra });
const boolean: Schema = { type: 'boolean' };
const arrayOf = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const object = (
  properties: Record<string, Schema>,
  required: string[] = Object.keys(properties),
  extra: Schema = {},
): Schema => ({
  type: 'object',
  required,
  properties,
  ...extra,
});
const anyObject: Schema = { type: 'object', additionalProperties: true };

const json = (schema: Schema) => ({ 'application/json': { schema } });
const ok = (description: string, schema: Schema, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: json(schema),
});
const jsonBody = (schema: Schema, required = true) => ({ required, content: json(schema) });

const error = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: json(ref('Error')),
});
const invalidId = (what = 'id') => error(`\`invalid_id\`: the ${what} is not a UUID`);
const missing = (what: string) => error(`\`not_found\`: no such ${what}`);
const validation = (what = 'query parameters') => ({
  description: `\`validation_error\`: ${what} missing, mistyped or out of range (one \`details\` entry per problem)`,
  content: json(ref('ValidationErrorBody')),
});
const unauthorized = error(
  '`unauthorized`: API_KEY is set and no valid `X-API-Key` / `Authorization: Bearer` was sent',
  {
    'WWW-Authenticate': { schema: { type: 'string', const: 'ApiKey' } },
  },
);

const pathParameter = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: uuid,
});
const queryParameter = (name: string, schema: Schema, description?: string, required = false) => ({
  name,
  in: 'query',
  required,
  schema,
  ...(description ? { description } : {}),
});
const limitParameter = (fallback: number, max: number | undefined, description?: string) =>
  queryParameter(
    'limit',
    integer({ minimum: 1, ...(max === undefined ? {} : { maximum: max }), default: fallback }),
    description,
  );
const offsetParameter = queryParameter('offset', integer({ minimum: 0, default: 0 }));

/** An operation under /api/v1/ (the API key applies when configured). */
function api(
  tag: string,
  summary: string,
  responses: Record<string, unknown>,
  extra: Operation = {},
): Operation {
  return { tags: [tag], summary, ...extra, responses: { ...responses, '401': unauthorized } };
}

/** An operation open without a key. */
function open(
  tag: string,
  summary: string,
  responses: Record<string, unknown>,
  extra: Operation = {},
): Operation {
  return { tags: [tag], summary, security: [], ...extra, responses };
}

// ---- component schemas ----

const ERROR_CODES = [
  'bad_request',
  'invalid_id',
  'invalid_json',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'idempotency_conflict',
  'payload_too_large',
  'range_not_satisfiable',
  'unsupported_media_type',
  'validation_error',
  'internal_error',
  'service_unavailable',
];

const ASSET_KINDS = ['media', 'document', 'json'];
const ASSET_STATUSES = ['queued', 'processing', 'done', 'failed', 'pending_review'];
const JOB_TYPES = ['media', 'json', 'mixed'];
const BATCH_STATUSES = ['pending', 'processing', 'completed', 'failed'];
const SCHEMA_STATUSES = ['provisional', 'active', 'rejected'];
const STORAGE_CHOICES = ['sql', 'jsonb'];

const validationIssue = object({
  loc: arrayOf({ type: ['string', 'integer'] }, { description: 'e.g. ["query","limit"]' }),
  msg: string(),
  type: string(),
});

const clusterRef = object({ id: uuid, name: string() });

const searchResult = object(
  {
    id: { ...uuid, description: 'asset id, or chunk id for `document_chunk`' },
    kind: { type: 'string', enum: ['media', 'document', 'json', 'document_chunk'] },
    uri: nullable(string('fs://…, sql://<table>/<row>, jsonb://<collection>/<row>')),
    content_type: nullable(string()),
    size_bytes: nullable(integer()),
    owner: nullable(string()),
    tags: arrayOf(string()),
    similarity_score: number({ minimum: 0, maximum: 1, description: 'rounded to 4 decimals' }),
    cluster: nullable(clusterRef),
    thumbnail_uri: nullable(string()),
    content_url: nullable(string()),
    thumbnail_url: nullable(string()),
    created_at: time,
    metadata: {
      type: 'object',
      additionalProperties: true,
      description:
        'asset metadata; for document chunks {chunk_text, chunk_index, chunk_parent_heading, chunk_page_number, source_asset_id}',
    },
    match_sources: arrayOf({
      type: 'string',
      enum: ['filename', 'tags', 'labels', 'ocr', 'comments', 'cluster', 'text', 'json', 'vector'],
    }),
  },
  ['id', 'kind', 'similarity_score', 'created_at', 'match_sources'],
);

const schemaSummary = object(
  {
    id: uuid,
    name: string('table or collection name in the json_data schema'),
    storage_choice: { type: 'string', enum: STORAGE_CHOICES },
    status: { type: 'string', enum: SCHEMA_STATUSES },
    created_at: time,
    ddl: string('CREATE TABLE … statements (no placeholders)'),
    decision_reason: string(),
    confidence: number({ minimum: 0, maximum: 1 }),
    structure_hash: string('lowercase hex SHA-256'),
    version: integer(),
    asset_count: integer({ minimum: 0 }),
    reviewed_by: nullable(string()),
    reviewed_at: nullable(time),
  },
  ['id', 'name', 'storage_choice', 'status', 'created_at', 'ddl', 'confidence', 'structure_hash'],
);

const schemaDetail: Schema = {
  allOf: [
    ref('Schema'),
    object(
      {
        sample_size: integer(),
        field_stability: number(),
        type_stability: number(),
        max_depth: integer(),
        top_level_keys: integer(),
        has_array_of_objects: boolean,
        updated_at: time,
        fields: {
          type: 'object',
          description: 'per analysed path',
          additionalProperties: object(
            {
              dominant_type: {
                type: 'string',
                enum: ['null', 'boolean', 'integer', 'float', 'string', 'array', 'object'],
              },
              type_stability: number(),
              presence: number(),
              null_fraction: number(),
              max_length: nullable(integer()),
              is_likely_fk: boolean,
              column: nullable(string('column name (depth-1 paths of sql schemas)')),
            },
            ['dominant_type'],
          ),
        },
      },
      ['fields'],
    ),
  ],
};

const cluster = object(
  {
    id: uuid,
    name: string(),
    asset_count: integer({ minimum: 0 }),
    threshold: number({ minimum: 0, maximum: 1 }),
    provisional: boolean,
    metadata: anyObject,
    created_at: time,
    updated_at: time,
  },
  ['id', 'name', 'asset_count', 'threshold', 'provisional', 'created_at', 'updated_at'],
);

const clusterDetail: Schema = {
  allOf: [
    ref('Cluster'),
    object({
      centroid_quality: nullable(
        object({ mean: number(), std: number(), min: number(), max: number() }, undefined, {
          description: 'dot products of member embeddings with the centroid (population std)',
        }),
      ),
      sample_asset_ids: arrayOf(uuid, { maxItems: 12 }),
    }),
  ],
};

const dlqEntry = object({
  job_id: uuid,
  job_type: { type: 'string', enum: JOB_TYPES },
  request_id: string(),
  owner: nullable(string()),
  error: nullable(string('last error message')),
  retries: integer({ minimum: 0, description: 'retry_count' }),
  asset_ids: arrayOf(uuid),
  original_timestamp: { ...time, description: 'job creation' },
  dlq_timestamp: nullable({ ...time, description: 'when dead-lettered' }),
});

const batch = object(
  {
    batch_id: uuid,
    status: { type: 'string', enum: BATCH_STATUSES },
    folder_path: string(),
    total_files: integer({ minimum: 0 }),
    processed_files: integer({ minimum: 0, description: 'settled files (done or failed)' }),
    failed_files: integer({ minimum: 0 }),
    progress_percent: number({ minimum: 0, maximum: 100 }),
    owner: nullable(string()),
    user_comment: nullable(string()),
    job_ids: arrayOf(uuid),
    created_at: time,
    updated_at: time,
    started_at: nullable(time),
    completed_at: nullable(time),
    error_message: nullable(string()),
  },
  ['batch_id', 'status', 'total_files', 'processed_files', 'failed_files', 'progress_percent', 'created_at'],
);

const ingestFields: Record<string, Schema> = {
  owner: string('≤ 255 characters'),
  comments: string('≤ 10 000 characters; searchable; collection-name hint when collection_name is absent'),
  collection_name: string('≤ 128 characters; name hint for a new JSON schema'),
  idempotency_key: string('≤ 255 printable ASCII characters (wins over the Idempotency-Key header)'),
  callback_url: {
    type: 'string',
    format: 'uri',
    description: 'http(s) URL ≤ 2048 characters for the webhook',
  },
};

const components: Record<string, Schema> = {
  Error: object(
    {
      error: { type: 'string', enum: ERROR_CODES },
      detail: string('human-readable message'),
      request_id: string('the X-Request-ID of the request'),
      details: arrayOf(
        { oneOf: [ref('ValidationIssue'), { type: 'string' }] },
        { description: 'validation issues, or one string per offending part' },
      ),
    },
    ['error', 'detail', 'request_id'],
    { additionalProperties: false },
  ),
  ValidationIssue: validationIssue,
  ValidationErrorBody: {
    allOf: [
      ref('Error'),
      object({
        error: { const: 'validation_error' },
        details: arrayOf(ref('ValidationIssue'), { minItems: 1 }),
      }),
    ],
  },
  IngestForm: {
    type: 'object',
    description: 'At least one file or a payload.',
    properties: {
      files: arrayOf(
        { type: 'string', format: 'binary' },
        {
          description:
            'uploads in order (field names files, files[] or file); .json files are JSON documents',
        },
      ),
      payload: string('JSON text: an object or a non-empty array of objects'),
      ...ingestFields,
      tags: string('comma-separated user tags added to every asset'),
      priority: integer({ minimum: -10, maximum: 10, default: 0, description: 'higher first' }),
    },
  },
  IngestJson: object(
    {
      payload: {
        description: 'an object, a non-empty array of objects, or the same as JSON text',
        oneOf: [{ type: 'object' }, arrayOf({ type: 'object' }, { minItems: 1 }), { type: 'string' }],
      },
      ...ingestFields,
      tags: { oneOf: [arrayOf(string()), string('comma-separated')] },
      priority: integer({ minimum: -10, maximum: 10, default: 0 }),
    },
    ['payload'],
  ),
  IngestAccepted: object({
    job_id: uuid,
    system_ids: arrayOf(uuid, {
      description:
        'one per logical object: files in upload order (a JSON file gives one per document), then payload documents',
    }),
    status: { type: 'string', const: 'accepted' },
    message: string(
      '`Job <job_id> accepted for processing`, or `Duplicate request (idempotency key)` on a replay',
    ),
    request_id: string('the idempotency key, or a generated UUID'),
    created_at: time,
  }),
  JobStatus: object(
    {
      job_id: uuid,
      request_id: string(),
      job_type: { type: 'string', enum: JOB_TYPES },
      status: { type: 'string', enum: ['queued', 'processing', 'done', 'partial', 'failed'] },
      progress: object({
        queued: integer(),
        processing: integer(),
        done: integer(),
        failed: integer(),
        pending_review: integer(),
        total: integer(),
      }),
      assets: arrayOf(
        object({
          system_id: uuid,
          kind: { type: 'string', enum: ASSET_KINDS },
          status: { type: 'string', enum: ASSET_STATUSES },
          cluster_id: nullable(uuid),
          schema_id: nullable(uuid),
          duplicate_of: nullable(uuid),
          error_message: nullable(string()),
        }),
        { description: 'in system_ids order, then child assets extracted from documents' },
      ),
      created_at: time,
      updated_at: time,
      started_at: nullable(time),
      completed_at: nullable(time),
      retry_count: integer({ minimum: 0 }),
      max_retries: integer({ minimum: 0 }),
      next_retry_at: nullable(time),
      dead_letter: boolean,
      error_message: nullable(string()),
      batch_id: nullable(uuid),
    },
    [
      'job_id',
      'request_id',
      'job_type',
      'status',
      'progress',
      'assets',
      'created_at',
      'updated_at',
      'retry_count',
      'max_retries',
      'dead_letter',
    ],
  ),
  FolderIngestRequest: object(
    {
      folder_path: string('a directory inside INGEST_ALLOWED_ROOT'),
      owner: string('≤ 255 characters'),
      user_comment: string('stored as the comments of every ingested file'),
      priority: integer({ minimum: -10, maximum: 10, default: -1 }),
      callback_url: { type: 'string', format: 'uri' },
    },
    ['folder_path'],
  ),
  FolderIngestAccepted: object({
    batch_id: uuid,
    status: { type: 'string', const: 'accepted' },
    message: string('`Folder ingestion started for <n> files`'),
    status_url: string('/api/v1/ingest/batch/<id>'),
    stats: object({
      total_files: integer(),
      total_size_bytes: integer(),
      by_type: object({
        image: integer(),
        video: integer(),
        audio: integer(),
        document: integer(),
        json: integer(),
      }),
    }),
  }),
  Batch: batch,
  BatchList: object({ batches: arrayOf(ref('Batch')), count: integer() }),
  SearchRequest: object(
    {
      query: string('2..500 characters after trimming'),
      type: { type: 'string', enum: ASSET_KINDS },
      limit: integer({ minimum: 1, description: '1..SEARCH_MAX_LIMIT (default 10)' }),
      threshold: number({ minimum: 0, maximum: 1 }),
      owner: string(),
      cluster_id: uuid,
      tags: { oneOf: [arrayOf(string()), string('comma-separated')] },
      include_duplicates: boolean,
      filters: object({ kind: { type: 'string', enum: ASSET_KINDS }, owner: string() }, []),
    },
    ['query'],
  ),
  SearchResult: searchResult,
  SearchResponse: object({
    query: string('the trimmed query (the asset id for /similar)'),
    results: arrayOf(ref('SearchResult')),
    total: integer({ minimum: 0 }),
    query_time_ms: number({ minimum: 0 }),
    filters_applied: object(
      {
        type: nullable(string()),
        owner: nullable(string()),
        cluster_id: nullable(uuid),
        tags: nullable(arrayOf(string())),
        min_similarity: number(),
        limit: integer(),
      },
      ['min_similarity', 'limit'],
    ),
  }),
  Asset: object(
    {
      id: uuid,
      kind: { type: 'string', enum: ASSET_KINDS },
      uri: nullable(string()),
      content_type: nullable(string()),
      size_bytes: nullable(integer()),
      sha256: nullable(string()),
      owner: nullable(string()),
      comments: nullable(string()),
      created_at: time,
      updated_at: time,
      status: { type: 'string', enum: ASSET_STATUSES },
      error_message: nullable(string()),
      tags: arrayOf(string()),
      metadata: anyObject,
      parent_asset_id: nullable(uuid),
      children: arrayOf(uuid),
      embedding: {
        description: 'media',
        ...object({ dimension: nullable(integer()), model: nullable(string()) }),
      },
      cluster: {
        description: 'media',
        ...nullable(object({ id: uuid, name: string(), provisional: boolean })),
      },
      raw_asset: {
        description: 'media',
        ...nullable(object({ id: uuid, uri: string(), request_id: string(), part_id: string() })),
      },
      thumbnail_uri: nullable(string('media: fs://media/derived/{cluster}/{asset}/thumb.jpg')),
      content_url: nullable(string('media and documents')),
      thumbnail_url: nullable(string('media')),
      duplicate_of: nullable(uuid),
      duplicate_type: { type: ['string', 'null'], enum: ['exact', 'near', null] },
      chunks_url: string('documents'),
      schema: {
        description: 'json',
        ...nullable(
          object({
            id: uuid,
            name: string(),
            storage_choice: { type: 'string', enum: STORAGE_CHOICES },
            status: { type: 'string', enum: SCHEMA_STATUSES },
            ddl: string(),
          }),
        ),
      },
      storage_location: nullable(string('json: table or collection name')),
      storage_id: nullable({ ...uuid, description: 'json: row id (null while staged)' }),
      document: { description: 'json: the reconstructed (or staged) document', type: ['object', 'null'] },
    },
    [
      'id',
      'kind',
      'uri',
      'content_type',
      'size_bytes',
      'sha256',
      'owner',
      'comments',
      'created_at',
      'updated_at',
      'status',
      'error_message',
      'tags',
      'metadata',
      'parent_asset_id',
      'children',
    ],
  ),
  Chunks: object({
    asset_id: uuid,
    chunks: arrayOf(
      object({
        id: uuid,
        chunk_index: integer({ minimum: 0 }),
        text: string(),
        parent_heading: nullable(string()),
        page_number: nullable(integer()),
        element_type: nullable(string()),
      }),
    ),
    total: integer({ minimum: 0 }),
  }),
  Lineage: object({
    asset_id: uuid,
    entries: arrayOf(
      object({
        id: uuid,
        request_id: nullable(string()),
        stage: string('ingest_accepted, raw_stored, json_validated, processing_start, … (spec §3.10)'),
        detail: nullable(anyObject),
        success: boolean,
        error_message: nullable(string()),
        created_at: time,
      }),
      { description: 'in time order' },
    ),
  }),
  Deleted: object({ id: uuid, deleted: { type: 'boolean', const: true } }),
  DuplicateGroups: object({
    groups: arrayOf(
      object({
        asset_id: { ...uuid, description: 'the original' },
        duplicates: arrayOf(
          object({
            id: uuid,
            duplicate_type: { type: 'string', enum: ['exact', 'near'] },
            phash_distance: nullable(integer({ minimum: 0 })),
          }),
        ),
      }),
    ),
    count: integer({ minimum: 0 }),
  }),
  Schema: schemaSummary,
  SchemaDetail: schemaDetail,
  SchemaList: object({ schemas: arrayOf(ref('SchemaDetail')), count: integer() }),
  ApproveRequest: object(
    {
      reviewed_by: string(),
      table_name: {
        type: 'string',
        pattern: '^[a-z_][a-z0-9_]{0,62}$',
        description: 'renames the schema first',
      },
    },
    ['reviewed_by'],
  ),
  RejectRequest: object({ reviewed_by: string(), reason: string() }),
  SchemaApproved: object({
    success: { type: 'boolean', const: true },
    schema_id: uuid,
    status: { type: 'string', const: 'active' },
    message: string("`Schema '<name>' approved and DDL executed`"),
  }),
  SchemaRejected: object({
    success: { type: 'boolean', const: true },
    schema_id: uuid,
    status: { type: 'string', const: 'rejected' },
    message: string("`Schema '<name>' rejected`"),
  }),
  AdminSchemaAction: object({
    status: { type: 'string', enum: ['approved', 'rejected'] },
    schema: ref('SchemaDetail'),
    message: string(),
  }),
  SchemaRecords: object({
    schema_id: uuid,
    name: string(),
    storage_choice: { type: 'string', enum: STORAGE_CHOICES },
    status: { type: 'string', enum: SCHEMA_STATUSES },
    source: { type: 'string', enum: ['table', 'staging'] },
    records: arrayOf(object({ storage_id: nullable(uuid), asset_id: nullable(uuid), document: anyObject })),
    total: integer({ minimum: 0 }),
    limit: integer(),
    offset: integer(),
  }),
  Cluster: cluster,
  ClusterList: object({ clusters: arrayOf(ref('Cluster')), count: integer() }),
  ClusterDetail: clusterDetail,
  ClusterStatistics: object({
    total_clusters: integer(),
    provisional_clusters: integer(),
    confirmed_clusters: integer(),
    total_assets: integer(),
    assets_in_clusters: integer(),
    unclustered_assets: integer(),
    avg_assets_per_cluster: number(),
  }),
  MergeCandidates: object({
    candidates: arrayOf(object({ cluster1: clusterRef, cluster2: clusterRef, similarity: number() })),
    count: integer(),
  }),
  ClusterAction: object(
    {
      status: { type: 'string', enum: ['renamed', 'merged', 'updated', 'confirmed'] },
      cluster: ref('Cluster'),
      assets_moved: integer({ description: 'merge' }),
      reassigned_assets: integer({ description: 'threshold' }),
      message: string(),
    },
    ['status', 'cluster', 'message'],
  ),
  RenameRequest: object({ new_name: string('trimmed, 1..255 characters'), performed_by: string() }, [
    'new_name',
  ]),
  MergeRequest: object({ source_cluster_ids: arrayOf(uuid, { minItems: 1 }), performed_by: string() }, [
    'source_cluster_ids',
  ]),
  ThresholdRequest: object(
    {
      threshold: number({ minimum: 0, maximum: 1 }),
      performed_by: string(),
      re_evaluate: {
        type: 'boolean',
        default: false,
        description: 'reassign members below the new threshold',
      },
    },
    ['threshold'],
  ),
  ConfirmRequest: object({ performed_by: string() }, []),
  OriginalClusterList: object({
    clusters: arrayOf(
      object({
        id: uuid,
        name: string(),
        asset_count: integer(),
        status: { type: 'string', enum: ['provisional', 'active'] },
        threshold: number(),
        created_at: time,
      }),
    ),
    count: integer(),
  }),
  OriginalCluster: object({
    id: uuid,
    name: string(),
    status: { type: 'string', enum: ['provisional', 'active'] },
    threshold: number(),
    asset_count: integer(),
    assets: arrayOf(
      object({ id: uuid, uri: nullable(string()), content_type: nullable(string()), created_at: time }),
      {
        maxItems: 100,
        description: 'newest first',
      },
    ),
  }),
  ClusterPatch: {
    oneOf: [
      object({ action: { const: 'rename' }, name: string() }),
      object({ action: { const: 'merge' }, source_cluster_ids: arrayOf(uuid, { minItems: 1 }) }),
      object(
        {
          action: { const: 'update_threshold' },
          threshold: number({ minimum: 0, maximum: 1 }),
          re_evaluate: boolean,
        },
        ['action', 'threshold'],
      ),
      object({ action: { const: 'confirm' } }),
    ],
  },
  ClusterPatched: object({
    cluster_id: uuid,
    action: { type: 'string', enum: ['rename', 'merge', 'update_threshold', 'confirm'] },
    status: { type: 'string', const: 'success' },
    updated_at: time,
  }),
  DlqEntry: dlqEntry,
  DlqList: object({
    jobs: arrayOf(ref('DlqEntry')),
    count: integer({ description: 'entries in this answer' }),
    total: integer({ description: 'dead-lettered jobs matching the filter' }),
  }),
  DlqEntryDetail: {
    allOf: [
      ref('DlqEntry'),
      object({
        job_data: anyObject,
        assets: arrayOf(
          object({
            system_id: uuid,
            status: { type: 'string', enum: ASSET_STATUSES },
            error_message: nullable(string()),
          }),
        ),
      }),
    ],
  },
  ServiceInfo: object({
    service: { type: 'string', const: 'Automated File Allocator API' },
    version: string(),
    status: { type: 'string', const: 'running' },
    docs: { type: 'string', const: '/api/docs' },
  }),
  Readiness: object({
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    database: { type: 'string', enum: ['connected', 'disconnected'] },
    checks: {
      type: 'object',
      description: '`ok`, or a short reason for each failing check',
      required: ['database', 'storage', 'queue', 'workers'],
      additionalProperties: string(),
    },
  }),
  Health: object({
    status: { type: 'string', enum: ['healthy', 'degraded', 'unhealthy'] },
    timestamp: time,
    version: string(),
    uptime_seconds: number(),
    environment: string(),
    database: object({
      status: string(),
      backend: { type: 'string', enum: ['pglite', 'postgres'] },
      latency_ms: number(),
      pool: object({
        size: integer(),
        max: integer(),
        active: integer(),
        idle: integer(),
        waiting: integer(),
      }),
    }),
    workers: object({ configured: integer(), alive: integer(), busy: integer(), restarts: integer() }),
    queue: object({
      backend: { type: 'string', enum: ['inproc', 'redis'] },
      depth: nullable(integer()),
      processing: nullable(integer()),
      delayed: nullable(integer()),
      dead_letter: nullable(integer()),
    }),
    storage: object({
      status: string(),
      backend: { type: 'string', const: 'fs://' },
      path: string(),
      writable: boolean,
      free_bytes: integer(),
      total_bytes: integer(),
    }),
    embedder: object({
      model: string(),
      dimension: integer(),
      text_search: boolean,
      requested: nullable(string()),
      fallback_reason: nullable(string()),
    }),
    text_embedder: object({ model: string(), dimension: integer() }),
    vlm: object({
      enabled: boolean,
      provider: { type: ['string', 'null'], enum: ['gemini', null] },
      model: nullable(string()),
      circuit: { type: 'string', enum: ['closed', 'open', 'half_open'] },
      fallback: boolean,
    }),
    media: object({
      ffmpeg: object({ available: boolean, version: nullable(string()) }),
      ocr: object({ enabled: boolean }),
    }),
    system: object({
      cpu_count: integer(),
      load_avg: arrayOf(number(), { minItems: 3, maxItems: 3 }),
      memory_rss_bytes: integer(),
      heap_used_bytes: integer(),
      total_memory_bytes: integer(),
      free_memory_bytes: integer(),
      process_cpu_seconds: number(),
    }),
  }),
};

// ---- paths ----

const objectId = pathParameter('id', 'asset id');
const clusterId = pathParameter('id', 'cluster id');
const schemaId = pathParameter('id', 'schema id');
const jobId = pathParameter('job_id', 'job id');
const similarityParameters = [
  limitParameter(10, undefined, '1..SEARCH_MAX_LIMIT (default 10)'),
  queryParameter(
    'threshold',
    number({ minimum: 0, maximum: 1 }),
    'minimum similarity (default SEARCH_DEFAULT_THRESHOLD, 0.5)',
  ),
  queryParameter('include_duplicates', { type: 'boolean', default: false }, 'include exact duplicates'),
];
const searchParameters = [
  queryParameter('query', string('2..500 characters after trimming'), 'the text query', true),
  queryParameter('type', { type: 'string', enum: ASSET_KINDS }),
  ...similarityParameters,
  queryParameter('owner', string(), 'exact owner'),
  queryParameter('cluster_id', uuid),
  queryParameter(
    'tags',
    string(),
    'comma-separated; an asset matches when it has any of them (case-insensitive)',
  ),
];
const reviewBody = (name: string) => ({
  required: true,
  content: {
    'application/json': { schema: ref(name) },
    'application/x-www-form-urlencoded': { schema: ref(name) },
    'multipart/form-data': { schema: ref(name) },
  },
});
const binary = (types: string[]) =>
  Object.fromEntries(types.map((type) => [type, { schema: { type: 'string', format: 'binary' } }]));
const schemaReviewErrors = {
  '400': invalidId('schema id'),
  '404': missing('schema'),
  '409': error('`conflict`: the schema is not provisional (the detail names its status)'),
};

function paths(): Record<string, Record<string, Operation>> {
  return {
    '/api/v1/ingest': {
      post: api(
        'ingest',
        'Ingest files and/or JSON documents',
        {
          '202': ok('Accepted; processing continues in the background', ref('IngestAccepted'), {
            Location: { description: '/api/v1/ingest/{job_id}/status', schema: string() },
            'Idempotent-Replayed': {
              description: '`true` when answered from an earlier request',
              schema: string(),
            },
          }),
          '400': error(
            "`bad_request` (neither files nor payload: `Either 'files' or 'payload' must be provided`; not an object " +
              'or non-empty array of objects; malformed multipart) or `invalid_json` (detail includes the position)',
          ),
          '409': error('`idempotency_conflict`: the key was used with other content'),
          '413': error(
            '`payload_too_large`: request, file count, item (one `details` string per file) or payload',
          ),
          '415': error(
            '`unsupported_media_type`: body not multipart/JSON, or files of unsupported types (one `details` entry each)',
          ),
          '422': validation('form or JSON fields'),
          '503': error('`service_unavailable`: dependency down, or `insufficient storage`'),
        },
        {
          description:
            'Files are streamed to the spool while hashed and typed by their magic bytes. Validation order: ' +
            'content type/size → field shapes (422) → something to ingest (400) → file types (415) → item sizes (413) ' +
            '→ JSON (400) → idempotency. On success one job is queued; `GET /api/v1/ingest/{job_id}/status` follows it.',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: string(),
              description: 'same as the idempotency_key field (the field wins)',
            },
          ],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: ref('IngestForm'),
                encoding: { files: { contentType: 'application/octet-stream' } },
              },
              'application/json': {
                schema: ref('IngestJson'),
                example: { payload: { name: 'John', age: 30, city: 'NYC' }, owner: 'alice' },
              },
            },
          },
        },
      ),
    },
    '/api/v1/ingest/{job_id}/status': {
      get: api(
        'ingest',
        'Status of an ingest job',
        {
          '200': ok('The job and its assets', ref('JobStatus')),
          '400': invalidId('job id'),
          '404': missing('job'),
        },
        { parameters: [jobId] },
      ),
    },
    '/api/v1/ingest/folder': {
      post: api(
        'ingest',
        'Ingest every supported file of a server-side folder (inside INGEST_ALLOWED_ROOT)',
        {
          '202': ok('Batch started', ref('FolderIngestAccepted')),
          '400': error('`bad_request`: not a directory, or `No supported files found in folder`'),
          '403': error(
            '`forbidden`: `folder ingestion is disabled` (INGEST_ALLOWED_ROOT unset) or outside the root',
          ),
          '404': error('`not_found`: the folder does not exist'),
          '422': validation('body fields'),
        },
        {
          description: '`.allocatorignore` files use gitignore semantics relative to their directory.',
          requestBody: jsonBody(ref('FolderIngestRequest')),
        },
      ),
    },
    '/api/v1/ingest/batch/{id}': {
      get: api(
        'ingest',
        'Status of a folder batch',
        { '200': ok('The batch', ref('Batch')), '400': invalidId('batch id'), '404': missing('batch') },
        { parameters: [pathParameter('id', 'batch id')] },
      ),
    },
    '/api/v1/ingest/batches': {
      get: api(
        'ingest',
        'Folder batches, newest first',
        {
          '200': ok('Batches', ref('BatchList')),
          '400': error('`bad_request`: unknown status'),
          '422': validation(),
        },
        {
          parameters: [
            queryParameter('status', { type: 'string', enum: BATCH_STATUSES }),
            queryParameter('owner', string()),
            limitParameter(20, 100),
          ],
        },
      ),
    },
    '/api/v1/search': {
      get: api(
        'search',
        'Search every asset with one text query',
        {
          '200': ok('Ranked results', ref('SearchResponse')),
          '400': error('`bad_request`: query too short/long, unknown type, or cluster_id not a UUID'),
          '422': validation(),
          '503': error('`service_unavailable`: search exceeded SEARCH_TIMEOUT_SECONDS'),
        },
        {
          description:
            'Lexical over filenames, tags, labels, OCR text, comments, cluster names, document chunks and JSON string ' +
            'values; semantic as well when a CLIP / sentence model is installed. Only `done` assets.',
          parameters: searchParameters,
        },
      ),
      post: api(
        'search',
        'Search with a JSON body (the original API shape)',
        {
          '200': ok('Ranked results', ref('SearchResponse')),
          '400': error('`bad_request`: query too short/long, unknown type, or cluster_id not a UUID'),
          '415': error('`unsupported_media_type`: the body is not JSON'),
          '422': validation('body fields'),
          '503': error('`service_unavailable`: search exceeded SEARCH_TIMEOUT_SECONDS'),
        },
        { requestBody: jsonBody(ref('SearchRequest')) },
      ),
    },
    '/api/v1/objects/{id}': {
      get: api(
        'objects',
        'One asset with kind-specific details',
        { '200': ok('The asset', ref('Asset')), '400': invalidId('asset id'), '404': missing('asset') },
        { parameters: [objectId] },
      ),
      delete: api(
        'objects',
        'Delete an asset, its chunks, frames, children, JSON row and (unreferenced) files',
        {
          '200': ok('Deleted', ref('Deleted')),
          '400': invalidId('asset id'),
          '404': missing('asset'),
          '409': error('`conflict`: the asset is queued or processing'),
        },
        { parameters: [objectId] },
      ),
    },
    '/api/v1/objects/{id}/content': {
      get: api(
        'objects',
        'Download the stored bytes (media and documents)',
        {
          '200': {
            description: 'The file',
            headers: {
              ETag: { description: '"<sha256>"', schema: string() },
              'Accept-Ranges': { schema: { type: 'string', const: 'bytes' } },
              'Content-Disposition': { description: 'inline; filename="<original>"', schema: string() },
            },
            content: binary([
              'application/octet-stream',
              'image/*',
              'video/*',
              'audio/*',
              'application/pdf',
              'text/plain',
            ]),
          },
          '206': {
            description: 'The requested range',
            headers: { 'Content-Range': { description: 'bytes a-b/size', schema: string() } },
            content: binary(['application/octet-stream']),
          },
          '304': { description: 'Not modified (If-None-Match matched the ETag)' },
          '400': invalidId('asset id'),
          '404': error(
            '`not_found`: unknown asset, JSON asset (read its `document` instead) or no stored file',
          ),
          '416': error('`range_not_satisfiable`: the Range is outside the file'),
        },
        {
          parameters: [
            objectId,
            { name: 'Range', in: 'header', required: false, schema: string(), description: 'bytes=a-b' },
            { name: 'If-None-Match', in: 'header', required: false, schema: string() },
          ],
        },
      ),
    },
    '/api/v1/objects/{id}/thumbnail': {
      get: api(
        'objects',
        'The JPEG thumbnail of a media asset',
        {
          '200': { description: 'Thumbnail (≤ 256×256)', content: binary(['image/jpeg']) },
          '304': { description: 'Not modified' },
          '400': invalidId('asset id'),
          '404': error('`not_found`: unknown asset or no thumbnail'),
        },
        { parameters: [objectId] },
      ),
    },
    '/api/v1/objects/{id}/chunks': {
      get: api(
        'objects',
        'Text chunks of a document',
        {
          '200': ok('Chunks in order', ref('Chunks')),
          '400': error('`invalid_id`, or `bad_request`: the asset is not a document'),
          '404': missing('asset'),
          '422': validation(),
        },
        { parameters: [objectId, limitParameter(100, 500), offsetParameter] },
      ),
    },
    '/api/v1/objects/{id}/lineage': {
      get: api(
        'objects',
        'Audit trail of an asset',
        {
          '200': ok('Lineage entries in time order', ref('Lineage')),
          '400': invalidId('asset id'),
          '404': missing('asset'),
        },
        { parameters: [objectId] },
      ),
    },
    '/api/v1/objects/{id}/similar': {
      get: api(
        'search',
        'Media assets most similar to this one (itself excluded)',
        {
          '200': ok('Ranked results (`match_sources` = [vector])', ref('SearchResponse')),
          '400': error('`invalid_id`, or `bad_request`: not a media asset or not embedded yet'),
          '404': missing('asset'),
          '422': validation(),
        },
        { parameters: [objectId, ...similarityParameters] },
      ),
    },
    '/api/v1/duplicates': {
      get: api(
        'objects',
        'Originals with their exact / near duplicates, newest groups first',
        {
          '200': ok('Duplicate groups', ref('DuplicateGroups')),
          '400': error('`bad_request`: unknown type'),
          '422': validation(),
        },
        {
          parameters: [
            queryParameter('type', { type: 'string', enum: ['exact', 'near'] }),
            limitParameter(50, 500),
          ],
        },
      ),
    },
    '/api/v1/schemas': {
      get: api(
        'schemas',
        'JSON schemas, newest first',
        { '200': ok('Schemas', arrayOf(ref('Schema'))), '400': error('`bad_request`: unknown status') },
        { parameters: [queryParameter('status', { type: 'string', enum: SCHEMA_STATUSES })] },
      ),
    },
    '/api/v1/schemas/{id}': {
      get: api(
        'schemas',
        'One JSON schema',
        { '200': ok('The schema', ref('Schema')), '400': invalidId('schema id'), '404': missing('schema') },
        { parameters: [schemaId] },
      ),
    },
    '/api/v1/schemas/{id}/approve': {
      post: api(
        'schemas',
        'Approve a provisional schema: run its DDL and store its staged documents',
        {
          '200': ok('Approved', ref('SchemaApproved')),
          ...schemaReviewErrors,
          '409': error('`conflict`: not provisional, or table_name taken by another schema'),
          '422': validation('reviewed_by missing or table_name invalid'),
          '500': error('`internal_error`: `DDL execution failed` (nothing changed)'),
        },
        { parameters: [schemaId], requestBody: reviewBody('ApproveRequest') },
      ),
    },
    '/api/v1/schemas/{id}/reject': {
      post: api(
        'schemas',
        'Reject a provisional schema (its pending assets fail)',
        {
          '200': ok('Rejected', ref('SchemaRejected')),
          ...schemaReviewErrors,
          '422': validation('reviewed_by or reason missing'),
        },
        { parameters: [schemaId], requestBody: reviewBody('RejectRequest') },
      ),
    },
    '/api/v1/schemas/{id}/records': {
      get: api(
        'schemas',
        "The schema's documents in insertion order (table rows when active, staged documents otherwise)",
        {
          '200': ok('Records', ref('SchemaRecords')),
          '400': invalidId('schema id'),
          '404': missing('schema'),
          '422': validation(),
        },
        { parameters: [schemaId, limitParameter(50, 500), offsetParameter] },
      ),
    },
    '/api/v1/admin/schemas': {
      get: api(
        'admin: schemas',
        'Detailed schemas, newest first',
        {
          '200': ok('Schemas', ref('SchemaList')),
          '400': error('`bad_request`: unknown status or storage_choice'),
        },
        {
          parameters: [
            queryParameter('status', { type: 'string', enum: SCHEMA_STATUSES }),
            queryParameter('storage_choice', { type: 'string', enum: STORAGE_CHOICES }),
          ],
        },
      ),
    },
    '/api/v1/admin/schemas/pending': {
      get: api('admin: schemas', 'Provisional schemas awaiting review', {
        '200': ok('Schemas', ref('SchemaList')),
      }),
    },
    '/api/v1/admin/schemas/{id}': {
      get: api(
        'admin: schemas',
        'One schema with its analysis and per-field statistics',
        {
          '200': ok('The schema', ref('SchemaDetail')),
          '400': invalidId('schema id'),
          '404': missing('schema'),
        },
        { parameters: [schemaId] },
      ),
    },
    '/api/v1/admin/schemas/{id}/approve': {
      post: api(
        'admin: schemas',
        'Approve a provisional schema',
        {
          '200': ok('Approved', ref('AdminSchemaAction')),
          ...schemaReviewErrors,
          '409': error('`conflict`: not provisional, or table_name taken by another schema'),
          '422': validation('reviewed_by missing or table_name invalid'),
          '500': error('`internal_error`: `DDL execution failed` (nothing changed)'),
        },
        { parameters: [schemaId], requestBody: jsonBody(ref('ApproveRequest')) },
      ),
    },
    '/api/v1/admin/schemas/{id}/reject': {
      post: api(
        'admin: schemas',
        'Reject a provisional schema',
        {
          '200': ok('Rejected', ref('AdminSchemaAction')),
          ...schemaReviewErrors,
          '422': validation('reviewed_by or reason missing'),
        },
        { parameters: [schemaId], requestBody: jsonBody(ref('RejectRequest')) },
      ),
    },
    '/api/v1/admin/clusters': {
      get: api(
        'admin: clusters',
        'Clusters, newest first',
        { '200': ok('Clusters', ref('ClusterList')), '422': validation() },
        {
          parameters: [
            queryParameter('provisional_only', { type: 'boolean', default: false }),
            queryParameter('min_assets', integer({ minimum: 0 })),
          ],
        },
      ),
    },
    '/api/v1/admin/clusters/statistics': {
      get: api('admin: clusters', 'Cluster statistics', {
        '200': ok('Statistics', ref('ClusterStatistics')),
      }),
    },
    '/api/v1/admin/clusters/merge-candidates': {
      get: api(
        'admin: clusters',
        'Cluster pairs whose centroids are at least this similar, most similar first',
        { '200': ok('Candidates', ref('MergeCandidates')), '422': validation() },
        {
          parameters: [
            queryParameter('similarity_threshold', number({ minimum: 0, maximum: 1, default: 0.85 })),
          ],
        },
      ),
    },
    '/api/v1/admin/clusters/{id}': {
      get: api(
        'admin: clusters',
        'One cluster with centroid quality and sample members',
        {
          '200': ok('The cluster', ref('ClusterDetail')),
          '400': invalidId('cluster id'),
          '404': missing('cluster'),
        },
        { parameters: [clusterId] },
      ),
    },
    '/api/v1/admin/clusters/{id}/rename': {
      post: api(
        'admin: clusters',
        'Rename a cluster',
        {
          '200': ok('Renamed', ref('ClusterAction')),
          '400': invalidId('cluster id'),
          '404': missing('cluster'),
          '409': error('`conflict`: another cluster has that name'),
          '422': validation('body fields'),
        },
        { parameters: [clusterId], requestBody: jsonBody(ref('RenameRequest')) },
      ),
    },
    '/api/v1/admin/clusters/{id}/merge': {
      post: api(
        'admin: clusters',
        'Merge source clusters into this one (members, files and thumbnails move)',
        {
          '200': ok('Merged', ref('ClusterAction')),
          '400': error('`invalid_id`, or `bad_request`: the target is among the sources'),
          '404': error('`not_found`: unknown target or source (nothing changed)'),
          '422': validation('source_cluster_ids missing, empty or not UUIDs'),
        },
        {
          parameters: [pathParameter('id', 'target cluster id')],
          requestBody: jsonBody(ref('MergeRequest')),
        },
      ),
    },
    '/api/v1/admin/clusters/{id}/threshold': {
      post: api(
        'admin: clusters',
        "Change a cluster's threshold, optionally re-assigning members below it",
        {
          '200': ok('Updated', ref('ClusterAction')),
          '400': error('`invalid_id`, or `bad_request`: threshold outside [0, 1]'),
          '404': missing('cluster'),
          '422': validation('body fields'),
        },
        { parameters: [clusterId], requestBody: jsonBody(ref('ThresholdRequest')) },
      ),
    },
    '/api/v1/admin/clusters/{id}/confirm': {
      post: api(
        'admin: clusters',
        'Confirm a provisional cluster',
        {
          '200': ok('Confirmed', ref('ClusterAction')),
          '400': invalidId('cluster id'),
          '404': missing('cluster'),
          '409': error('`conflict`: already confirmed'),
          '422': validation('body fields'),
        },
        { parameters: [clusterId], requestBody: jsonBody(ref('ConfirmRequest'), false) },
      ),
    },
    '/api/v1/clusters': {
      get: api(
        'clusters',
        'Clusters (the original API shape)',
        { '200': ok('Clusters', ref('OriginalClusterList')), '400': error('`bad_request`: unknown status') },
        { parameters: [queryParameter('status', { type: 'string', enum: ['provisional', 'active'] })] },
      ),
    },
    '/api/v1/clusters/{id}': {
      get: api(
        'clusters',
        'One cluster with its newest members (the original API shape)',
        {
          '200': ok('The cluster', ref('OriginalCluster')),
          '400': invalidId('cluster id'),
          '404': missing('cluster'),
        },
        { parameters: [clusterId] },
      ),
      patch: api(
        'clusters',
        'rename | merge | update_threshold | confirm (the original API shape)',
        {
          '200': ok('Done', ref('ClusterPatched')),
          '400': error(
            '`invalid_id`, or `bad_request`: unknown action, threshold outside [0, 1], target among sources',
          ),
          '404': error('`not_found`: unknown cluster or source'),
          '409': error('`conflict`: name taken, or already confirmed'),
          '422': validation('body fields'),
        },
        { parameters: [clusterId], requestBody: jsonBody(ref('ClusterPatch')) },
      ),
    },
    '/api/v1/admin/dlq': {
      get: api(
        'admin: dead letters',
        'Dead-lettered jobs, newest first',
        {
          '200': ok('Dead letters', ref('DlqList')),
          '400': error('`bad_request`: unknown job_type'),
          '422': validation(),
        },
        {
          parameters: [
            queryParameter('job_type', { type: 'string', enum: JOB_TYPES }),
            limitParameter(100, 1000),
          ],
        },
      ),
    },
    '/api/v1/admin/dlq/{job_id}': {
      get: api(
        'admin: dead letters',
        'One dead-lettered job with its data and assets',
        {
          '200': ok('The entry', ref('DlqEntryDetail')),
          '400': invalidId('job id'),
          '404': error('`not_found`: unknown job, or not dead-lettered'),
        },
        { parameters: [jobId] },
      ),
      delete: api(
        'admin: dead letters',
        'Discard a dead-lettered job (stays failed, leaves the queue)',
        {
          '200': ok('Discarded', object({ job_id: uuid, status: { type: 'string', const: 'discarded' } })),
          '400': invalidId('job id'),
          '404': error('`not_found`: unknown job, or not dead-lettered'),
        },
        { parameters: [jobId] },
      ),
    },
    '/api/v1/admin/dlq/{job_id}/requeue': {
      post: api(
        'admin: dead letters',
        'Requeue a dead-lettered job (retry count reset, failed assets queued)',
        {
          '202': ok(
            'Queued',
            object({ job_id: uuid, status: { type: 'string', const: 'queued' }, message: string() }),
          ),
          '400': invalidId('job id'),
          '404': error('`not_found`: unknown job, or not dead-lettered'),
        },
        { parameters: [jobId] },
      ),
    },
    '/': { get: open('operations', 'Service information', { '200': ok('Service', ref('ServiceInfo')) }) },
    '/live': {
      get: open('operations', 'Liveness (never touches dependencies)', {
        '200': ok('Alive', object({ status: { type: 'string', const: 'alive' } })),
      }),
    },
    '/ready': {
      get: open('operations', 'Readiness: database, storage, queue and workers', {
        '200': ok('Ready', ref('Readiness')),
        '503': ok('Not ready (starting, draining, or a failing check)', ref('Readiness')),
      }),
    },
    '/health': {
      get: open('operations', 'Detailed health with resource usage', {
        '200': ok('healthy or degraded', ref('Health')),
        '503': ok('unhealthy: the database is unreachable', ref('Health')),
      }),
    },
    '/metrics': {
      get: open('operations', 'Prometheus metrics', {
        '200': {
          description: 'Prometheus text format 0.0.4',
          content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: string() } },
        },
        '404': error('`not_found`: METRICS_ENABLED=false'),
      }),
    },
    '/api/docs': {
      get: open('documentation', 'Swagger UI', {
        '200': {
          description: 'HTML page (assets served locally)',
          content: { 'text/html': { schema: string() } },
        },
      }),
    },
    '/api/docs/static/{file}': {
      get: open(
        'documentation',
        'Swagger UI assets',
        { '200': { description: 'script, stylesheet or icon' }, '404': error('`not_found`: no such asset') },
        { parameters: [{ name: 'file', in: 'path', required: true, schema: string() }] },
      ),
    },
    '/api/openapi.json': {
      get: open('documentation', 'This OpenAPI document', { '200': ok('OpenAPI 3.1', anyObject) }),
    },
    '/docs': {
      get: open('documentation', 'Redirect to /api/docs', { '308': redirect('/api/docs') }),
    },
    '/openapi.json': {
      get: open('documentation', 'Redirect to /api/openapi.json', { '308': redirect('/api/openapi.json') }),
    },
  };
}

function redirect(target: string) {
  return {
    description: `Permanent redirect to ${target}`,
    headers: { Location: { schema: { type: 'string', const: target } } },
  };
}

const DESCRIPTION = `One ingest endpoint for photos, videos, audio, documents and JSON: media is embedded, de-duplicated,
labelled and clustered; JSON documents get a typed SQL table or a JSONB collection (after review, or at once with
AUTO_MIGRATE); documents are chunked for search.

**Authentication.** When \`API_KEY\` is set, every route under \`/api/v1/\` needs \`X-API-Key: <key>\` or
\`Authorization: Bearer <key>\`; \`/\`, \`/live\`, \`/ready\`, \`/health\`, \`/metrics\` and the documentation are open.

**Errors.** Every non-2xx response has the body \`{"error", "detail", "request_id"}\`, plus \`details\` when there are
several problems (validation issues \`{"loc","msg","type"}\`, or one string per offending part).

**Request ids and tracing.** An inbound \`X-Request-ID\` matching \`^[A-Za-z0-9._:-]{1,128}$\` is echoed, otherwise one is
generated; every response carries it. A W3C \`traceparent\` is accepted and continued, and each response carries the
\`traceparent\` of its server span.

Ids are lowercase UUIDs; times are ISO 8601 UTC with milliseconds and \`Z\`.`;

/** The OpenAPI 3.1 document of every route of the service (spec S12). */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Automated File Allocator API',
      version,
      description: DESCRIPTION,
      license: { name: 'Proprietary' },
    },
    tags: [
      { name: 'ingest', description: 'Uploads, JSON payloads, folder batches and job status' },
      { name: 'search', description: 'Text search and similar media' },
      { name: 'objects', description: 'Assets, their bytes, chunks, lineage and duplicates' },
      { name: 'schemas', description: 'JSON storage decisions (routes of the original API)' },
      { name: 'admin: schemas', description: 'Schema review' },
      { name: 'clusters', description: 'Clusters (routes of the original API)' },
      { name: 'admin: clusters', description: 'Cluster administration' },
      { name: 'admin: dead letters', description: 'Jobs that exhausted their retries or failed permanently' },
      { name: 'operations', description: 'Liveness, readiness, health and metrics' },
      { name: 'documentation', description: 'This document and Swagger UI' },
    ],
    security: [{ ApiKey: [] }, { bearer: [] }],
    paths: paths(),
    components: {
      securitySchemes: {
        ApiKey: {
          type: 'apiKey',
          in: 'header',
          name: 'X-API-Key',
          description: 'one of the keys in API_KEY',
        },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Authorization: Bearer <one of the keys in API_KEY>',
        },
      },
      schemas: components,
    },
  };
}

// ---- serving ----

const DOCS_PATH = '/api/docs';
const ASSET_PREFIX = `${DOCS_PATH}/static/`;
const DOCUMENT_PATH = '/api/openapi.json';
const ASSET_CACHE_CONTROL = 'public, max-age=3600';

/** The files of @fastify/swagger-ui's static directory that the page uses; nothing else there is reachable. */
const SWAGGER_ASSETS: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

/** Starts Swagger UI; a file of its own because the page's CSP allows no inline script. */
const INITIALIZER = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '${DOCUMENT_PATH}',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: 'StandaloneLayout',
    validatorUrl: null,
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Automated File Allocator API</title>
<link rel="stylesheet" href="${ASSET_PREFIX}swagger-ui.css">
<link rel="stylesheet" href="${ASSET_PREFIX}index.css">
<link rel="icon" type="image/png" href="${ASSET_PREFIX}favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="${ASSET_PREFIX}favicon-16x16.png" sizes="16x16">
</head>
<body>
<noscript>Swagger UI needs JavaScript; the document itself is at <a href="${DOCUMENT_PATH}">${DOCUMENT_PATH}</a>.</noscript>
<div id="swagger-ui"></div>
<script src="${ASSET_PREFIX}swagger-ui-bundle.js"></script>
<script src="${ASSET_PREFIX}swagger-ui-standalone-preset.js"></script>
<script src="${ASSET_PREFIX}initializer.js"></script>
</body>
</html>
`;

// Scripts only from this origin, no inline script; Swagger UI sets inline style attributes and uses data: images.
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

function swaggerUiStaticDirectory(): string {
  return join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json')), 'static');
}

/** Registers GET /api/openapi.json, GET /api/docs (+ its assets) and the 308 redirects from /docs and /openapi.json. */
export function registerDocsRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  const documentText = JSON.stringify(openApiDocument(runtime.version));
  const directory = swaggerUiStaticDirectory();
  const assets = new Map<string, Buffer>();

  app.get(DOCUMENT_PATH, async (_request, reply) =>
    reply.code(200).type('application/json; charset=utf-8').send(documentText),
  );
  app.get(DOCS_PATH, async (_request, reply) =>
    reply
      .code(200)
      .headers(pageSecurityHeaders(PAGE_CSP))
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(PAGE),
  );
  app.get<{ Params: { file: string } }>(`${ASSET_PREFIX}:file`, async (request, reply) => {
    const { file } = request.params;
    if (file === 'initializer.js')
      return reply
        .header('cache-control', ASSET_CACHE_CONTROL)
        .type('text/javascript; charset=utf-8')
        .send(INITIALIZER);
    const type = Object.hasOwn(SWAGGER_ASSETS, file) ? SWAGGER_ASSETS[file] : undefined;
    if (type === undefined) throw notFound(`No documentation asset named ${file}`);
    let content = assets.get(file);
    if (content === undefined) {
      content = await readFile(join(directory, file));
      assets.set(file, content);
    }
    return reply.header('cache-control', ASSET_CACHE_CONTROL).type(type).send(content);
  });
  app.get('/docs', async (_request, reply) => reply.redirect(DOCS_PATH, 308));
  app.get('/openapi.json', async (_request, reply) => reply.redirect(DOCUMENT_PATH, 308));
}
