// Schema routes (spec §3.11): the original API under /api/v1/schemas (list, view, approve, reject, records;
// approve/reject also take application/x-www-form-urlencoded or multipart forms) and the admin API under
// /api/v1/admin/schemas (JSON only, detailed objects).
import busboy from 'busboy';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TABLE_NAME_PATTERN } from '../domain/json/naming.js';
import {
  approveSchema,
  DdlExecutionError,
  getSchema,
  listSchemaRecords,
  listSchemas,
  rejectSchema,
  SCHEMA_STATUSES,
  SchemaNameTakenError,
  SchemaNotFoundError,
  SchemaNotProvisionalError,
  type SchemaStatus,
  type SchemaWithCount,
  STORAGE_CHOICES,
} from '../domain/schemas.js';
import type { AllocatorRuntime } from '../runtime.js';
import { BodyReader, isoTime, parseId, QueryReader, sendJson } from './conventions.js';
import { apiError, badRequest, conflict, notFound } from './errors.js';

const RECORDS_DEFAULT_LIMIT = 50;
const RECORDS_MAX_LIMIT = 500;
const MAX_OFFSET = 2_147_483_647;
const MAX_FORM_FIELDS = 50;
const MAX_FORM_FIELD_BYTES = 64 * 1024;

type Params = { id: string };
type Review = { action: 'approve' | 'reject' };

/** The list/view object of the original API. */
function schemaJson(schema: SchemaWithCount) {
  return {
    id: schema.id,
    name: schema.name,
    storage_choice: schema.storage_choice,
    status: schema.status,
    created_at: isoTime(schema.created_at),
    ddl: schema.ddl,
    decision_reason: schema.decision_reason,
    confidence: schema.confidence,
    structure_hash: schema.structure_hash,
    version: schema.version,
    asset_count: schema.asset_count,
    reviewed_by: schema.reviewed_by,
    reviewed_at: isoTime(schema.reviewed_at),
  };
}

/** The admin API's detailed object: the list object plus the analysis summary and per-field statistics. */
function detailedJson(schema: SchemaWithCount) {
  return {
    ...schemaJson(schema),
    sample_size: schema.sample_size,
    field_stability: schema.field_stability,
    type_stability: schema.type_stability,
    max_depth: schema.max_depth,
    top_level_keys: schema.top_level_keys,
    has_array_of_objects: schema.has_array_of_objects,
    updated_at: isoTime(schema.updated_at),
    fields: schema.fields,
  };
}

/** Domain errors → the spec's statuses; anything else propagates (500 without internals). */
function translate(error: unknown, review?: Review): never {
  if (error instanceof SchemaNotFoundError) throw notFound(`Schema ${error.schemaId} not found`);
  if (error instanceof SchemaNotProvisionalError) {
    const action = review?.action === 'reject' ? 'rejected' : 'approved';
    throw conflict(`Schema ${error.schemaId} is ${error.status}; only provisional schemas can be ${action}`);
  }
  if (error instanceof SchemaNameTakenError) throw conflict(error.message);
  if (error instanceof DdlExecutionError) throw apiError(500, 'internal_error', 'DDL execution failed');
  throw error;
}

function optionalChoice<T extends string>(
  raw: string | undefined,
  allowed: readonly T[],
  name: string,
): T | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!(allowed as readonly string[]).includes(raw))
    throw badRequest(`Invalid ${name} '${raw}': expected one of ${allowed.join(', ')}`);
  return raw as T;
}

function readStatusFilter(request: FastifyRequest): SchemaStatus | undefined {
  return optionalChoice(
    new QueryReader(request.query as Record<string, unknown>).string('status'),
    SCHEMA_STATUSES,
    'status',
  );
}

async function loadSchema(runtime: AllocatorRuntime, rawId: string): Promise<SchemaWithCount> {
  const id = parseId(rawId, 'schema id');
  const schema = await getSchema(runtime.catalog, id);
  if (schema === null) throw notFound(`Schema ${id} not found`);
  return schema;
}

function readApproval(request: FastifyRequest): { reviewedBy: string; tableName: string | undefined } {
  const body = BodyReader.from(request);
  const reviewedBy = body.string('reviewed_by', { required: true, min: 1 });
  let tableName = body.string('table_name');
  // An empty form field means "not given".
  if (tableName === '') tableName = undefined;
  if (tableName !== undefined && !TABLE_NAME_PATTERN.test(tableName))
    body.issue(
      'table_name',
      `String should match pattern '${TABLE_NAME_PATTERN.source}'`,
      'string_pattern_mismatch',
    );
  body.finish();
  return { reviewedBy: reviewedBy as string, tableName };
}

function readRejection(request: FastifyRequest): { reviewedBy: string; reason: string } {
  const body = BodyReader.from(request);
  const reviewedBy = body.string('reviewed_by', { required: true, min: 1 });
  const reason = body.string('reason', { required: true, min: 1 });
  body.finish();
  return { reviewedBy: reviewedBy as string, reason: reason as string };
}

async function approve(runtime: AllocatorRuntime, request: FastifyRequest<{ Params: Params }>) {
  const id = parseId(request.params.id, 'schema id');
  const review = readApproval(request);
  try {
    return await approveSchema(runtime, id, review);
  } catch (error) {
    if (error instanceof DdlExecutionError)
      request.log.error({ err: error.cause, schema_id: id }, 'schema DDL failed; approval rolled back');
    translate(error, { action: 'approve' });
  }
}

async function reject(runtime: AllocatorRuntime, request: FastifyRequest<{ Params: Params }>) {
  const id = parseId(request.params.id, 'schema id');
  const review = readRejection(request);
  try {
    return await rejectSchema(runtime, id, review);
  } catch (error) {
    translate(error, { action: 'reject' });
  }
}

/** JSON bodies with the spec's `invalid_json` error; an empty body reads as no body (→ 422 on required fields). */
function useJsonParser(app: FastifyInstance): void {
  if (app.hasContentTypeParser('application/json')) app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(apiError(400, 'invalid_json', `Invalid JSON body: ${(error as Error).message}`), undefined);
    }
  });
  // Only JSON (and, for the original routes, forms) are accepted: anything else is a 415.
  if (app.hasContentTypeParser('text/plain')) app.removeContentTypeParser('text/plain');
}

/** Form fields of a multipart body (uploaded files are drained and ignored); the last value of a name wins. */
function parseMultipartFields(
  request: FastifyRequest,
  payload: NodeJS.ReadableStream,
): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string> = {};
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: request.headers,
        limits: { fields: MAX_FORM_FIELDS, fieldSize: MAX_FORM_FIELD_BYTES },
      });
    } catch {
      reject(badRequest('Malformed multipart body'));
      return;
    }
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) {
        reject(
          apiError(413, 'payload_too_large', `Form field ${name} exceeds ${MAX_FORM_FIELD_BYTES} bytes`),
        );
        return;
      }
      Object.defineProperty(fields, name, { value, enumerable: true, writable: true, configurable: true });
    });
    parser.on('file', (_name, stream) => stream.resume());
    parser.on('error', () => reject(badRequest('Malformed multipart body')));
    parser.on('close', () => resolve(fields));
    payload.pipe(parser);
  });
}

/** application/x-www-form-urlencoded and multipart/form-data parsed into plain field objects (this scope only). */
function useFormParsers(app: FastifyInstance): void {
  if (app.hasContentTypeParser('application/x-www-form-urlencoded'))
    app.removeContentTypeParser('application/x-www-form-urlencoded');
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => {
      const fields: Record<string, string> = {};
      for (const [name, value] of new URLSearchParams(String(body)))
        Object.defineProperty(fields, name, { value, enumerable: true, writable: true, configurable: true });
      done(null, fields);
    },
  );
  // The ingest route leaves multipart bodies unread for its own streaming; here they are small forms.
  if (app.hasContentTypeParser('multipart/form-data')) app.removeContentTypeParser('multipart/form-data');
  app.addContentTypeParser('multipart/form-data', (request, payload, done) => {
    parseMultipartFields(request, payload).then(
      (fields) => done(null, fields),
      (error: Error) => done(error, undefined),
    );
  });
}

function registerOriginalRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  app.get('/api/v1/schemas', async (request, reply) => {
    const status = readStatusFilter(request);
    const schemas = await listSchemas(runtime.catalog, status === undefined ? {} : { status });
    return sendJson(reply, 200, schemas.map(schemaJson));
  });

  app.get<{ Params: Params }>('/api/v1/schemas/:id', async (request, reply) => {
    return sendJson(reply, 200, schemaJson(await loadSchema(runtime, request.params.id)));
  });

  app.post<{ Params: Params }>('/api/v1/schemas/:id/approve', async (request, reply) => {
    const result = await approve(runtime, request);
    return sendJson(reply, 200, {
      success: true,
      schema_id: result.schema.id,
      status: 'active',
      message: `Schema '${result.schema.name}' approved and DDL executed`,
    });
  });

  app.post<{ Params: Params }>('/api/v1/schemas/:id/reject', async (request, reply) => {
    const result = await reject(runtime, request);
    return sendJson(reply, 200, {
      success: true,
      schema_id: result.schema.id,
      status: 'rejected',
      message: `Schema '${result.schema.name}' rejected`,
    });
  });

  app.get<{ Params: Params }>('/api/v1/schemas/:id/records', async (request, reply) => {
    const id = parseId(request.params.id, 'schema id');
    const query = new QueryReader(request.query as Record<string, unknown>);
    const limit = query.int('limit', RECORDS_DEFAULT_LIMIT, 1, RECORDS_MAX_LIMIT);
    const offset = query.int('offset', 0, 0, MAX_OFFSET);
    query.finish();
    const schema = await getSchema(runtime.catalog, id);
    if (schema === null) throw notFound(`Schema ${id} not found`);
    const page = await listSchemaRecords(runtime.catalog, schema, { limit, offset });
    return sendJson(reply, 200, {
      schema_id: schema.id,
      name: schema.name,
      storage_choice: schema.storage_choice,
      status: schema.status,
      source: page.source,
      records: page.records,
      total: page.total,
      limit,
      offset,
    });
  });
}

function registerAdminRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  app.get('/api/v1/admin/schemas', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const status = optionalChoice(query.string('status'), SCHEMA_STATUSES, 'status');
    const storageChoice = optionalChoice(query.string('storage_choice'), STORAGE_CHOICES, 'storage_choice');
    const schemas = await listSchemas(runtime.catalog, {
      ...(status === undefined ? {} : { status }),
      ...(storageChoice === undefined ? {} : { storageChoice }),
    });
    return sendJson(reply, 200, { schemas: schemas.map(detailedJson), count: schemas.length });
  });

  app.get('/api/v1/admin/schemas/pending', async (_request, reply) => {
    const schemas = await listSchemas(runtime.catalog, { status: 'provisional' });
    return sendJson(reply, 200, { schemas: schemas.map(detailedJson), count: schemas.length });
  });

  app.get<{ Params: Params }>('/api/v1/admin/schemas/:id', async (request, reply) =>
    sendJson(reply, 200, detailedJson(await loadSchema(runtime, request.params.id))),
  );

  app.post<{ Params: Params }>('/api/v1/admin/schemas/:id/approve', async (request, reply) => {
    const result = await approve(runtime, request);
    return sendJson(reply, 200, {
      status: 'approved',
      schema: detailedJson(result.schema),
      message: `Schema '${result.schema.name}' approved and DDL executed`,
    });
  });

  app.post<{ Params: Params }>('/api/v1/admin/schemas/:id/reject', async (request, reply) => {
    const result = await reject(runtime, request);
    return sendJson(reply, 200, {
      status: 'rejected',
      schema: detailedJson(result.schema),
      message: `Schema '${result.schema.name}' rejected`,
    });
  });
}

/** Registers the schema routes of spec §3.11; their body parsers are scoped to them. */
export function registerSchemaRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  void app.register(async (scope) => {
    useJsonParser(scope);
    useFormParsers(scope);
    registerOriginalRoutes(scope, runtime);
  });
  void app.register(async (scope) => {
    useJsonParser(scope);
    // The admin API takes JSON bodies only (spec §3.1.7): forms are a 415 here.
    for (const type of ['multipart/form-data', 'application/x-www-form-urlencoded'])
      if (scope.hasContentTypeParser(type)) scope.removeContentTypeParser(type);
    registerAdminRoutes(scope, runtime);
  });
}
