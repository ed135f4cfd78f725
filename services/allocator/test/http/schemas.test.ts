// The JSON pipeline end to end and the schema routes (spec §3.8, §3.11): acceptance cases 5, 18–26, every
// schema route's statuses and bodies, and schemas_created_total.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { multipartBody, startTestAllocator, type TestAllocator } from '../harness.js';

type Doc = Record<string, unknown>;
type Body = Record<string, unknown>;

const STABLE_USERS: Doc[] = [
  { id: 1, name: 'Alice', email: 'alice@example.com', age: 30, active: true },
  { id: 2, name: 'Bob', email: 'bob@example.com', age: 25, active: false },
  { id: 3, name: 'Carol', email: 'carol@example.com', age: 41, active: true },
  { id: 4, name: 'Dan', email: 'dan@example.com', age: 35, active: true },
  { id: 5, name: 'Eve', email: 'eve@example.com', age: 28, active: false },
];

const COMPLEX_ORDERS: Doc[] = [
  { order_id: 'A-1', customer: 'ann', items: [{ sku: 'x', qty: 1, price: 9.5 }] },
  {
    order_id: 'A-2',
    customer: 'ben',
    items: [
      { sku: 'y', qty: 2, price: 3.25 },
      { sku: 'z', qty: 1, price: 1 },
    ],
  },
];

interface IngestedJson {
  jobId: string;
  systemIds: string[];
  status: Body;
  location: string | undefined;
}

async function ingestJson(
  allocator: TestAllocator,
  payload: unknown,
  fields: Record<string, string> = {},
): Promise<IngestedJson> {
  const response = await allocator.ingest([], { payload: JSON.stringify(payload), ...fields });
  expect(response.statusCode).toBe(202);
  const body = response.json() as { job_id: string; system_ids: string[] };
  const status = await allocator.waitForJob(body.job_id);
  return {
    jobId: body.job_id,
    systemIds: body.system_ids,
    status,
    location: response.headers.location as string | undefined,
  };
}

function assetsOf(ingested: IngestedJson): Body[] {
  return ingested.status.assets as Body[];
}

async function get(allocator: TestAllocator, url: string) {
  return allocator.app.inject({ method: 'GET', url });
}

async function postJson(allocator: TestAllocator, url: string, body: unknown) {
  return allocator.app.inject({
    method: 'POST',
    url,
    payload: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
}

async function postForm(allocator: TestAllocator, url: string, fields: Record<string, string>) {
  return allocator.app.inject({
    method: 'POST',
    url,
    payload: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}

async function postMultipart(allocator: TestAllocator, url: string, fields: Record<string, string>) {
  const { body, contentType } = multipartBody([], fields);
  return allocator.app.inject({
    method: 'POST',
    url,
    payload: body,
    headers: { 'content-type': contentType },
  });
}

async function schemaOf(allocator: TestAllocator, ingested: IngestedJson): Promise<Body> {
  const schemaId = assetsOf(ingested)[0]?.schema_id as string;
  const response = await get(allocator, `/api/v1/schemas/${schemaId}`);
  expect(response.statusCode).toBe(200);
  return response.json() as Body;
}

async function dataRows(allocator: TestAllocator, table: string): Promise<Record<string, unknown>[]> {
  const result = await sql<
    Record<string, unknown>
  >`select * from ${sql.table(`json_data.${table}`)} order by created_at`.execute(allocator.runtime.catalog);
  return result.rows;
}

async function tableExists(allocator: TestAllocator, table: string): Promise<boolean> {
  const result = await sql<{ n: number }>`
    select count(*)::int as n from pg_tables where schemaname = 'json_data' and tablename = ${table}`.execute(
    allocator.runtime.catalog,
  );
  return result.rows[0]?.n === 1;
}

async function assetRows(allocator: TestAllocator, ids: string[]) {
  const rows = await allocator.runtime.catalog
    .selectFrom('asset')
    .selectAll()
    .where('id', 'in', ids)
    .execute();
  return ids.map((id) => rows.find((row) => row.id === id));
}

function expectErrorBody(body: Body, error: string): void {
  expect(body).toMatchObject({ error, detail: expect.any(String), request_id: expect.any(String) });
}

describe('JSON pipeline, review required (AUTO_MIGRATE=false)', () => {
  let allocator: TestAllocator;
  beforeAll(async () => {
    allocator = await startTestAllocator();
  });
  afterAll(async () => allocator?.close());

  test('one document → provisional sql schema with confidence 1.0, asset pending_review (acceptance 5)', async () => {
    const ingested = await ingestJson(allocator, { name: 'John', age: 30, city: 'NYC' });
    expect(ingested.systemIds).toHaveLength(1);
    expect(ingested.location).toBe(`/api/v1/ingest/${ingested.jobId}/status`);
    expect(ingested.status.status).toBe('done');
    expect(assetsOf(ingested)).toEqual([
      expect.objectContaining({
        system_id: ingested.systemIds[0],
        kind: 'json',
        status: 'pending_review',
        error_message: null,
      }),
    ]);
    const schema = await schemaOf(allocator, ingested);
    expect(schema).toMatchObject({
      storage_choice: 'sql',
      status: 'provisional',
      confidence: 1,
      version: 1,
      asset_count: 1,
    });
    expect(schema.decision_reason).toBe(
      'SQL storage recommended: ✓ Manageable number of top-level keys (3 ≤ 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    );
  });

  test('stable_users → sql with id_col BIGINT NOT NULL and email TEXT NOT NULL (acceptance 18)', async () => {
    const ingested = await ingestJson(allocator, STABLE_USERS, { collection_name: 'stable_users' });
    expect(ingested.systemIds).toHaveLength(5);
    const schema = await schemaOf(allocator, ingested);
    expect(schema).toMatchObject({
      name: 'stable_users',
      storage_choice: 'sql',
      status: 'provisional',
      asset_count: 5,
    });
    expect(schema.ddl).toContain('id_col BIGINT NOT NULL');
    expect(schema.ddl).toContain('email TEXT NOT NULL');
    expect(schema.ddl).toContain('CREATE TABLE IF NOT EXISTS json_data.stable_users (');
    expect(schema.ddl).not.toContain('{table_name}');
  });

  test('complex_orders → jsonb collection, confidence 0.95 (acceptance 19)', async () => {
    const ingested = await ingestJson(allocator, COMPLEX_ORDERS, { comments: 'complex orders' });
    const schema = await schemaOf(allocator, ingested);
    expect(schema).toMatchObject({ name: 'complex_orders', storage_choice: 'jsonb', confidence: 0.95 });
    expect(schema.ddl).toBe(
      [
        'CREATE TABLE IF NOT EXISTS json_data.complex_orders (',
        '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
        '    doc JSONB NOT NULL,',
        '    asset_id UUID,',
        '    created_at TIMESTAMPTZ DEFAULT NOW(),',
        '    updated_at TIMESTAMPTZ DEFAULT NOW()',
        ');',
        'CREATE INDEX IF NOT EXISTS idx_complex_orders_doc ON json_data.complex_orders USING GIN (doc);',
      ].join('\n'),
    );
    expect(String(schema.decision_reason)).toMatch(/^JSONB storage required: .*✗ Contains arrays of objects/);
  });

  test('too many keys, too deep, unstable fields → jsonb 0.9 / 0.9 / 0.25 (acceptance 20)', async () => {
    const wide = Object.fromEntries(Array.from({ length: 30 }, (_, index) => [`key_${index}`, index]));
    const deep = { level1: { level2: { level3: { level4: 'x' } } } };
    const unstable = [{ alpha: 1 }, { beta: 2 }, { gamma: 3 }];
    const results: [unknown, unknown][] = [];
    for (const payload of [wide, deep, unstable]) {
      const schema = await schemaOf(allocator, await ingestJson(allocator, payload));
      results.push([schema.storage_choice, schema.confidence]);
    }
    expect(results).toEqual([
      ['jsonb', 0.9],
      ['jsonb', 0.9],
      ['jsonb', 0.25],
    ]);
  });

  test('structure hash and hint-less name (acceptance 21)', async () => {
    const schema = await schemaOf(allocator, await ingestJson(allocator, [{ name: 'a', age: 1 }]));
    expect(schema.structure_hash).toBe('4b05bfed633ceb1b4a4d9147ffeab6a76afe99e6338cff3ef54b60d5da863600');
    expect(schema.name).toBe('table_4b05bfed');
  });

  test('approve with a form: table created, documents stored, records readable; again → 409 (acceptance 22)', async () => {
    const documents = [
      { sku: 'p-1', title: 'Pen', price: 1.5 },
      { sku: 'p-2', title: 'Ink', price: 7 },
      { sku: 'p-3', title: 'Pad', price: 3.25 },
    ];
    const ingested = await ingestJson(allocator, documents, { collection_name: 'products' });
    const schema = await schemaOf(allocator, ingested);
    expect(await tableExists(allocator, 'products')).toBe(false);

    const approved = await postForm(allocator, `/api/v1/schemas/${schema.id}/approve`, {
      reviewed_by: 'alice',
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toEqual({
      success: true,
      schema_id: schema.id,
      status: 'active',
      message: "Schema 'products' approved and DDL executed",
    });
    expect(await tableExists(allocator, 'products')).toBe(true);
    const rows = await dataRows(allocator, 'products');
    expect(rows.map((row) => [row.sku, row.title, row.price, row.asset_id])).toEqual(
      documents.map((document, index) => [
        document.sku,
        document.title,
        document.price,
        ingested.systemIds[index],
      ]),
    );
    const assets = await assetRows(allocator, ingested.systemIds);
    expect(assets.map((asset) => [asset?.status, asset?.storage_id, asset?.uri])).toEqual(
      rows.map((row) => ['done', row.id, `sql://products/${String(row.id)}`]),
    );

    const after = (await get(allocator, `/api/v1/schemas/${schema.id}`)).json() as Body;
    expect(after).toMatchObject({ status: 'active', reviewed_by: 'alice' });
    expect(after.reviewed_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const records = await get(allocator, `/api/v1/schemas/${schema.id}/records`);
    expect(records.statusCode).toBe(200);
    expect(records.json()).toEqual({
      schema_id: schema.id,
      name: 'products',
      storage_choice: 'sql',
      status: 'active',
      source: 'table',
      records: documents.map((document, index) => ({
        storage_id: rows[index]?.id,
        asset_id: ingested.systemIds[index],
        document,
      })),
      total: 3,
      limit: 50,
      offset: 0,
    });
    const page = (
      await get(allocator, `/api/v1/schemas/${schema.id}/records?limit=1&offset=2`)
    ).json() as Body;
    expect(page).toMatchObject({ total: 3, limit: 1, offset: 2, records: [{ document: documents[2] }] });

    const again = await postForm(allocator, `/api/v1/schemas/${schema.id}/approve`, { reviewed_by: 'alice' });
    expect(again.statusCode).toBe(409);
    expectErrorBody(again.json(), 'conflict');
    expect(again.json().detail).toContain('active');
  });

  test('approve: used table_name → 409, missing reviewed_by → 422, unknown id → 404, bad id → 400 (acceptance 23)', async () => {
    const ingested = await ingestJson(allocator, [{ isbn: '1', pages: 100 }], { collection_name: 'books' });
    const schema = await schemaOf(allocator, ingested);
    const url = `/api/v1/schemas/${schema.id}/approve`;

    const taken = await postForm(allocator, url, { reviewed_by: 'a', table_name: 'stable_users' });
    expect(taken.statusCode).toBe(409);
    expectErrorBody(taken.json(), 'conflict');

    const missing = await postForm(allocator, url, { table_name: 'library' });
    expect(missing.statusCode).toBe(422);
    expectErrorBody(missing.json(), 'validation_error');
    expect(missing.json().details).toEqual([
      expect.objectContaining({ loc: ['body', 'reviewed_by'], type: 'missing' }),
    ]);

    const noBody = await allocator.app.inject({ method: 'POST', url });
    expect(noBody.statusCode).toBe(422);

    const badName = await postJson(allocator, url, { reviewed_by: 'a', table_name: 'Library-1' });
    expect(badName.statusCode).toBe(422);
    expect(badName.json().details).toEqual([expect.objectContaining({ loc: ['body', 'table_name'] })]);

    const unknown = await postForm(allocator, `/api/v1/schemas/${randomUUID()}/approve`, {
      reviewed_by: 'a',
    });
    expect(unknown.statusCode).toBe(404);
    expectErrorBody(unknown.json(), 'not_found');

    const invalid = await postForm(allocator, '/api/v1/schemas/not-a-uuid/approve', { reviewed_by: 'a' });
    expect(invalid.statusCode).toBe(400);
    expectErrorBody(invalid.json(), 'invalid_id');

    expect(((await get(allocator, `/api/v1/schemas/${schema.id}`)).json() as Body).status).toBe(
      'provisional',
    );

    // A multipart form with a new table name renames the schema and its DDL before running it.
    const renamed = await postMultipart(allocator, url, { reviewed_by: 'carol', table_name: 'library' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json().message).toBe("Schema 'library' approved and DDL executed");
    const after = (await get(allocator, `/api/v1/schemas/${schema.id}`)).json() as Body;
    expect(after).toMatchObject({ name: 'library', status: 'active', reviewed_by: 'carol' });
    expect(after.ddl).toContain('CREATE TABLE IF NOT EXISTS json_data.library (');
    expect(await dataRows(allocator, 'library')).toEqual([
      expect.objectContaining({ isbn: '1', pages: 100 }),
    ]);
  });

  test('reject → assets failed; a later batch of the structure fails too (acceptance 24)', async () => {
    const documents = [
      { sensor: 's1', reading: 0.5 },
      { sensor: 's2', reading: 0.75 },
    ];
    const ingested = await ingestJson(allocator, documents, { collection_name: 'readings' });
    const schema = await schemaOf(allocator, ingested);
    const url = `/api/v1/schemas/${schema.id}/reject`;

    const noReason = await postJson(allocator, url, { reviewed_by: 'bob' });
    expect(noReason.statusCode).toBe(422);
    expect(noReason.json().details).toEqual([expect.objectContaining({ loc: ['body', 'reason'] })]);

    const rejected = await postForm(allocator, url, { reviewed_by: 'bob', reason: 'noise' });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toEqual({
      success: true,
      schema_id: schema.id,
      status: 'rejected',
      message: "Schema 'readings' rejected",
    });
    const status = (await get(allocator, `/api/v1/ingest/${ingested.jobId}/status`)).json() as Body;
    expect((status.assets as Body[]).map((asset) => [asset.status, asset.error_message])).toEqual([
      ['failed', `schema ${schema.id} was rejected: noise`],
      ['failed', `schema ${schema.id} was rejected: noise`],
    ]);
    const after = (await get(allocator, `/api/v1/schemas/${schema.id}`)).json() as Body;
    expect(after).toMatchObject({ status: 'rejected', reviewed_by: 'bob' });
    expect(after.decision_reason).toBe(`${String(schema.decision_reason)}\n\nRejection reason: noise`);

    // Staged documents are kept and listed from staging.
    const records = (await get(allocator, `/api/v1/schemas/${schema.id}/records`)).json() as Body;
    expect(records).toMatchObject({ source: 'staging', status: 'rejected', total: 2 });
    expect((records.records as Body[]).map((record) => [record.storage_id, record.document])).toEqual([
      [null, documents[0]],
      [null, documents[1]],
    ]);

    const later = await ingestJson(allocator, [{ sensor: 's3', reading: 1.5 }]);
    expect(later.status.status).toBe('failed');
    expect(assetsOf(later)).toEqual([
      expect.objectContaining({
        status: 'failed',
        schema_id: schema.id,
        error_message: `schema ${schema.id} was rejected`,
      }),
    ]);

    const again = await postForm(allocator, url, { reviewed_by: 'bob', reason: 'again' });
    expect(again.statusCode).toBe(409);
    expect(again.json().detail).toContain('rejected');
    const approveRejected = await postForm(allocator, `/api/v1/schemas/${schema.id}/approve`, {
      reviewed_by: 'bob',
    });
    expect(approveRejected.statusCode).toBe(409);
  });

  test('a batch of 3,000 documents waits for review whole, and its rejection fails every one', async () => {
    const documents = Array.from({ length: 3_000 }, (_, index) => ({ part: `p${index}`, weight: index / 2 }));
    const ingested = await ingestJson(allocator, documents, { collection_name: 'parts' });
    expect(assetsOf(ingested).every((asset) => asset.status === 'pending_review')).toBe(true);
    const schema = await schemaOf(allocator, ingested);
    const rejected = await postForm(allocator, `/api/v1/schemas/${schema.id}/reject`, {
      reviewed_by: 'bob',
      reason: 'too many parts',
    });
    expect(rejected.statusCode).toBe(200);
    const statuses = await allocator.runtime.catalog
      .selectFrom('asset')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('job_id', '=', ingested.jobId)
      .groupBy('status')
      .execute();
    expect(statuses.map((row) => [row.status, Number(row.n)])).toEqual([['failed', 3_000]]);
  });

  test('GET /api/v1/schemas: array newest first, status filter, invalid status → 400', async () => {
    const response = await get(allocator, '/api/v1/schemas');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const schemas = response.json() as Body[];
    expect(schemas.length).toBeGreaterThanOrEqual(10);
    const times = schemas.map((schema) => String(schema.created_at));
    expect([...times].sort().reverse()).toEqual(times);
    expect(Object.keys(schemas[0] as Body).sort()).toEqual(
      [
        'id',
        'name',
        'storage_choice',
        'status',
        'created_at',
        'ddl',
        'decision_reason',
        'confidence',
        'structure_hash',
        'version',
        'asset_count',
        'reviewed_by',
        'reviewed_at',
      ].sort(),
    );
    expect(schemas.find((schema) => schema.name === 'stable_users')?.asset_count).toBe(5);

    const active = (await get(allocator, '/api/v1/schemas?status=active')).json() as Body[];
    expect(active.map((schema) => schema.name).sort()).toEqual(['library', 'products']);

    const invalid = await get(allocator, '/api/v1/schemas?status=approved');
    expect(invalid.statusCode).toBe(400);
    expectErrorBody(invalid.json(), 'bad_request');
  });

  test('GET /api/v1/schemas/{id}: 400 for a malformed id, 404 for an unknown one', async () => {
    const invalid = await get(allocator, '/api/v1/schemas/123');
    expect(invalid.statusCode).toBe(400);
    expectErrorBody(invalid.json(), 'invalid_id');
    const unknown = await get(allocator, `/api/v1/schemas/${randomUUID()}`);
    expect(unknown.statusCode).toBe(404);
    expectErrorBody(unknown.json(), 'not_found');
  });

  test('records: limit outside 1..500 and negative offset → 422; staged documents while provisional', async () => {
    const schema = ((await get(allocator, '/api/v1/schemas?status=provisional')).json() as Body[]).find(
      (candidate) => candidate.name === 'stable_users',
    ) as Body;
    for (const query of ['limit=0', 'limit=501', 'offset=-1', 'limit=ten']) {
      const response = await get(allocator, `/api/v1/schemas/${schema.id}/records?${query}`);
      expect(response.statusCode).toBe(422);
      expectErrorBody(response.json(), 'validation_error');
    }
    const records = (
      await get(allocator, `/api/v1/schemas/${schema.id}/records?limit=500&offset=3`)
    ).json() as Body;
    expect(records).toMatchObject({
      source: 'staging',
      status: 'provisional',
      total: 5,
      limit: 500,
      offset: 3,
    });
    expect((records.records as Body[]).map((record) => record.document)).toEqual(STABLE_USERS.slice(3));
    expect((await get(allocator, `/api/v1/schemas/${randomUUID()}/records`)).statusCode).toBe(404);
    expect((await get(allocator, '/api/v1/schemas/x/records')).statusCode).toBe(400);
  });

  test('review bodies: other content types → 415, malformed JSON → 400 invalid_json', async () => {
    const schema = ((await get(allocator, '/api/v1/schemas?status=provisional')).json() as Body[])[0] as Body;
    const text = await allocator.app.inject({
      method: 'POST',
      url: `/api/v1/schemas/${schema.id}/approve`,
      payload: 'reviewed_by=x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.statusCode).toBe(415);
    expectErrorBody(text.json(), 'unsupported_media_type');
    const broken = await allocator.app.inject({
      method: 'POST',
      url: `/api/v1/schemas/${schema.id}/approve`,
      payload: '{"reviewed_by": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(broken.statusCode).toBe(400);
    expectErrorBody(broken.json(), 'invalid_json');
    // The admin API takes JSON only.
    const adminForm = await postForm(allocator, `/api/v1/admin/schemas/${schema.id}/approve`, {
      reviewed_by: 'x',
    });
    expect(adminForm.statusCode).toBe(415);
    expect(((await get(allocator, `/api/v1/schemas/${schema.id}`)).json() as Body).status).toBe(
      'provisional',
    );
  });

  test('admin API: list, pending, detail, approve, reject', async () => {
    const list = await get(allocator, '/api/v1/admin/schemas?storage_choice=jsonb');
    expect(list.statusCode).toBe(200);
    const listBody = list.json() as { schemas: Body[]; count: number };
    expect(listBody.count).toBe(listBody.schemas.length);
    expect(listBody.schemas.map((schema) => schema.storage_choice)).toEqual(
      Array(listBody.count).fill('jsonb'),
    );
    expect(listBody.schemas.map((schema) => schema.name)).toContain('complex_orders');
    expect((await get(allocator, '/api/v1/admin/schemas?storage_choice=xml')).statusCode).toBe(400);
    expect((await get(allocator, '/api/v1/admin/schemas?status=nope')).statusCode).toBe(400);

    const pending = (await get(allocator, '/api/v1/admin/schemas/pending')).json() as {
      schemas: Body[];
      count: number;
    };
    expect(pending.schemas.every((schema) => schema.status === 'provisional')).toBe(true);
    const users = pending.schemas.find((schema) => schema.name === 'stable_users') as Body;
    expect(users).toBeDefined();

    const detail = await get(allocator, `/api/v1/admin/schemas/${users.id}`);
    expect(detail.statusCode).toBe(200);
    expect(detail.json()).toMatchObject({
      id: users.id,
      name: 'stable_users',
      sample_size: 5,
      field_stability: 1,
      type_stability: 1,
      max_depth: 1,
      top_level_keys: 5,
      has_array_of_objects: false,
      asset_count: 5,
      updated_at: expect.stringMatching(/Z$/),
      fields: {
        id: {
          dominant_type: 'integer',
          type_stability: 1,
          presence: 1,
          null_fraction: 0,
          max_length: 0,
          is_likely_fk: true,
          column: 'id_col',
        },
        email: expect.objectContaining({
          dominant_type: 'string',
          max_length: 17,
          is_likely_fk: false,
          column: 'email',
        }),
      },
    });
    expect((await get(allocator, `/api/v1/admin/schemas/${randomUUID()}`)).statusCode).toBe(404);
    expect((await get(allocator, '/api/v1/admin/schemas/zzz')).statusCode).toBe(400);

    const missing = await postJson(allocator, `/api/v1/admin/schemas/${users.id}/approve`, {});
    expect(missing.statusCode).toBe(422);
    const approved = await postJson(allocator, `/api/v1/admin/schemas/${users.id}/approve`, {
      reviewed_by: 'ops',
      table_name: 'users_v1',
    });
    expect(approved.statusCode).toBe(200);
    const approvedBody = approved.json() as Body;
    expect(approvedBody).toMatchObject({
      status: 'approved',
      message: "Schema 'users_v1' approved and DDL executed",
      schema: { id: users.id, name: 'users_v1', status: 'active', reviewed_by: 'ops', asset_count: 5 },
    });
    expect((approvedBody.schema as Body).fields).toBeDefined();
    expect((await dataRows(allocator, 'users_v1')).map((row) => row.email)).toEqual(
      STABLE_USERS.map((user) => user.email),
    );
    const approveAgain = await postJson(allocator, `/api/v1/admin/schemas/${users.id}/approve`, {
      reviewed_by: 'ops',
    });
    expect(approveAgain.statusCode).toBe(409);

    const orders = listBody.schemas.find((schema) => schema.name === 'complex_orders') as Body;
    const rejected = await postJson(allocator, `/api/v1/admin/schemas/${orders.id}/reject`, {
      reviewed_by: 'ops',
      reason: 'later',
    });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({
      status: 'rejected',
      message: "Schema 'complex_orders' rejected",
      schema: { id: orders.id, status: 'rejected', reviewed_by: 'ops' },
    });
    const missingReason = await postJson(allocator, `/api/v1/admin/schemas/${orders.id}/reject`, {
      reviewed_by: 'ops',
    });
    expect(missingReason.statusCode).toBe(422);
    expect(
      (
        await postJson(allocator, `/api/v1/admin/schemas/${randomUUID()}/reject`, {
          reviewed_by: 'a',
          reason: 'b',
        })
      ).statusCode,
    ).toBe(404);
  });

  test('schemas_created_total counts new schemas by storage choice', async () => {
    const metrics = await get(allocator, '/metrics');
    const all = (await get(allocator, '/api/v1/schemas')).json() as Body[];
    const count = (choice: string) => all.filter((schema) => schema.storage_choice === choice).length;
    expect(metrics.body).toContain(`schemas_created_total{storage_choice="sql"} ${count('sql')}`);
    expect(metrics.body).toContain(`schemas_created_total{storage_choice="jsonb"} ${count('jsonb')}`);
  });
});

describe('JSON pipeline with AUTO_MIGRATE=true', () => {
  let allocator: TestAllocator;
  beforeAll(async () => {
    allocator = await startTestAllocator({ AUTO_MIGRATE: 'true', SCHEMA_SAMPLE_SIZE: '4' });
  });
  afterAll(async () => allocator?.close());

  test('the schema is active at once and the documents are in its table (acceptance 25)', async () => {
    const ingested = await ingestJson(allocator, STABLE_USERS, { collection_name: 'members' });
    expect(ingested.status.status).toBe('done');
    const schema = await schemaOf(allocator, ingested);
    expect(schema).toMatchObject({ name: 'members', status: 'active', storage_choice: 'sql' });
    const rows = await dataRows(allocator, 'members');
    expect(rows.map((row) => [row.id_col, row.email, row.asset_id])).toEqual(
      STABLE_USERS.map((user, index) => [user.id, user.email, ingested.systemIds[index]]),
    );
    const assets = await assetRows(allocator, ingested.systemIds);
    expect(assets.map((asset) => [asset?.status, asset?.uri])).toEqual(
      rows.map((row) => ['done', `sql://members/${String(row.id)}`]),
    );
    const orders = await ingestJson(allocator, COMPLEX_ORDERS, { collection_name: 'orders' });
    const collection = await dataRows(allocator, 'orders');
    expect(collection.map((row) => row.doc)).toEqual(COMPLEX_ORDERS);
    expect(assetsOf(orders).map((asset) => asset.status)).toEqual(['done', 'done']);
  });

  test('an unsampled value that does not fit its column is kept in extra (acceptance 26)', async () => {
    // Sample of 9 with SCHEMA_SAMPLE_SIZE=4: documents 0, 2, 4, 6. The null in document 4 keeps qty nullable.
    const documents: Doc[] = Array.from({ length: 9 }, (_, index) => ({
      item: `i${index}`,
      qty: index * 10,
    }));
    documents[1] = { item: 'i1', qty: 'many' };
    documents[4] = { item: 'i4', qty: null };
    const ingested = await ingestJson(allocator, documents, { collection_name: 'inventory' });
    expect(assetsOf(ingested).map((asset) => asset.status)).toEqual(Array(9).fill('done'));
    const schema = await schemaOf(allocator, ingested);
    expect(schema.ddl).toContain('    qty BIGINT,\n');
    const second = (await dataRows(allocator, 'inventory')).find(
      (row) => row.asset_id === ingested.systemIds[1],
    );
    expect(second).toMatchObject({ item: 'i1', qty: null, extra: { qty: 'many' } });

    const records = (await get(allocator, `/api/v1/schemas/${schema.id}/records?limit=2`)).json() as Body;
    expect(records).toMatchObject({ source: 'table', total: 9 });
    expect((records.records as Body[]).map((record) => record.document)).toEqual([
      { item: 'i0', qty: 0 },
      { item: 'i1', qty: 'many' },
    ]);
  });

  test('a batch of 3,000 documents, more values than one statement may carry, is accepted whole', async () => {
    const documents = Array.from({ length: 3_000 }, (_, index) => ({ sku: `s${index}`, stock: index }));
    const ingested = await ingestJson(allocator, documents, { collection_name: 'stock' });
    expect(ingested.systemIds).toHaveLength(3_000);
    expect(ingested.status.status).toBe('done');
    const rows = await dataRows(allocator, 'stock');
    expect(rows.map((row) => [row.sku, row.asset_id])).toEqual(
      documents.map((document, index) => [document.sku, ingested.systemIds[index]]),
    );
    const lineage = await allocator.runtime.catalog
      .selectFrom('lineage')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('asset_id', 'in', ingested.systemIds)
      .where('stage', 'in', ['ingest_accepted', 'json_validated'])
      .executeTakeFirstOrThrow();
    expect(Number(lineage.n)).toBe(6_000);
  });
});
