import { describe, expect, it } from 'vitest';
import { PermanentProcessingError } from '../../src/domain/errors.js';
import { analyseDocuments } from '../../src/domain/json/analysis.js';
import { planTable, renderDdl, type TablePlan } from '../../src/domain/json/ddl.js';
import { decideStorage } from '../../src/domain/json/decision.js';
import { fitDocument, fitsColumn, reconstructDocument } from '../../src/domain/json/rows.js';

const DECISION_SETTINGS = { maxTopLevelKeys: 20, maxDepth: 2, stabilityThreshold: 0.6 };

function planFor(name: string, documents: Record<string, unknown>[], sampleSize = 128): TablePlan {
  const analysis = analyseDocuments(documents, { sampleSize, maxDepth: 2 });
  return planTable(name, analysis, decideStorage(analysis, DECISION_SETTINGS).storageChoice);
}

/** What the database hands back for a row written from `values` (JSONB text parsed, int8 as text). */
function readBack(plan: TablePlan, values: Record<string, unknown>): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const column of plan.columns) {
    const value = values[column.column];
    if (value === null) row[column.column] = null;
    else if (column.sqlType === 'JSONB') row[column.column] = JSON.parse(value as string);
    else if (column.sqlType === 'BIGINT') row[column.column] = String(value);
    else row[column.column] = value;
  }
  return row;
}

describe('a value that does not fit goes to extra (SCHEMA_SAMPLE_SIZE=4, 9 documents)', () => {
  const documents: Record<string, unknown>[] = Array.from({ length: 9 }, (_, index) => ({
    sku: `S-${index}`,
    qty: index + 1,
  }));
  documents[1] = { sku: 'S-1', qty: 'many' }; // not sampled: the sample is documents 0, 2, 4, 6
  documents[4] = { sku: 'S-4', qty: null }; // sampled: qty may be NULL

  it('plans qty as a nullable BIGINT from the sampled documents', () => {
    const plan = planFor('stock', documents, 4);
    expect(plan.storageChoice).toBe('sql');
    expect(renderDdl(plan)).toContain('\n    qty BIGINT,\n');
  });

  it('stores qty NULL with "qty":"many" in extra and reconstructs it', () => {
    const plan = planFor('stock', documents, 4);
    const row = fitDocument(plan, documents[1] as Record<string, unknown>);
    expect(row).toEqual({ values: { sku: 'S-1', qty: null }, extra: { qty: 'many' } });
    expect(reconstructDocument(plan, readBack(plan, row.values), row.extra)).toEqual({
      sku: 'S-1',
      qty: 'many',
    });
  });

  it('stores fitting documents without extra', () => {
    const plan = planFor('stock', documents, 4);
    const row = fitDocument(plan, documents[3] as Record<string, unknown>);
    expect(row).toEqual({ values: { sku: 'S-3', qty: 4 }, extra: null });
    expect(reconstructDocument(plan, readBack(plan, row.values), row.extra)).toEqual({ sku: 'S-3', qty: 4 });
  });
});

describe('fitDocument', () => {
  const plan: TablePlan = {
    name: 'mixed',
    storageChoice: 'sql',
    columns: [
      { field: 'id', column: 'id_col', sqlType: 'BIGINT', notNull: true, indexed: true },
      { field: 'price', column: 'price', sqlType: 'DOUBLE PRECISION', notNull: false, indexed: false },
      { field: 'ok', column: 'ok', sqlType: 'BOOLEAN', notNull: false, indexed: false },
      { field: 'Name', column: 'name', sqlType: 'TEXT', notNull: false, indexed: true },
      { field: 'meta', column: 'meta', sqlType: 'JSONB', notNull: false, indexed: false },
    ],
  };

  it('binds each value to its column, JSONB as JSON text, and keeps the rest in extra in document order', () => {
    const row = fitDocument(plan, {
      id: 7,
      new_field: [1, 2],
      price: 3,
      ok: 'yes',
      Name: 42,
      meta: { nested: ['a', { b: null }] },
      gone: null,
    });
    expect(row.values).toEqual({
      id_col: 7,
      price: 3,
      ok: null,
      name: null,
      meta: '{"nested":["a",{"b":null}]}',
    });
    expect(Object.keys(row.extra ?? {})).toEqual(['new_field', 'ok', 'Name']);
    expect(row.extra).toEqual({ new_field: [1, 2], ok: 'yes', Name: 42 });
  });

  it('puts JSONB scalars in as JSON text too', () => {
    expect(fitDocument(plan, { id: 1, meta: 'text' }).values.meta).toBe('"text"');
    expect(fitDocument(plan, { id: 1, meta: null }).values.meta).toBeNull();
  });

  it('fits BIGINT only within ±(2^53−1)', () => {
    expect(fitsColumn(Number.MAX_SAFE_INTEGER, 'BIGINT')).toBe(true);
    expect(fitsColumn(-Number.MAX_SAFE_INTEGER, 'BIGINT')).toBe(true);
    expect(fitsColumn(2 ** 53, 'BIGINT')).toBe(false);
    expect(fitsColumn(-(2 ** 53), 'BIGINT')).toBe(false);
    expect(fitsColumn(1e300, 'BIGINT')).toBe(false);
    expect(fitsColumn(1.5, 'BIGINT')).toBe(false);
    expect(fitsColumn('1', 'BIGINT')).toBe(false);
    const row = fitDocument(plan, { id: 1, price: 2 ** 53 });
    expect(row.values.price).toBe(2 ** 53); // any number fits DOUBLE PRECISION
    const big = JSON.parse('{"id": 9007199254740993}') as Record<string, unknown>;
    expect(() => fitDocument(plan, big)).toThrow(PermanentProcessingError);
    const planWithOptionalId = {
      ...plan,
      columns: plan.columns.map((column) => ({ ...column, notNull: false })),
    };
    expect(fitDocument(planWithOptionalId, big)).toEqual({
      values: { id_col: null, price: null, ok: null, name: null, meta: null },
      extra: { id: 9007199254740992 },
    });
  });

  it('fits the other types strictly', () => {
    expect(fitsColumn(0.5, 'DOUBLE PRECISION')).toBe(true);
    expect(fitsColumn(3, 'DOUBLE PRECISION')).toBe(true);
    expect(fitsColumn('0.5', 'DOUBLE PRECISION')).toBe(false);
    expect(fitsColumn(false, 'BOOLEAN')).toBe(true);
    expect(fitsColumn(0, 'BOOLEAN')).toBe(false);
    expect(fitsColumn('', 'TEXT')).toBe(true);
    expect(fitsColumn(1, 'TEXT')).toBe(false);
    expect(fitsColumn([], 'JSONB')).toBe(true);
    expect(fitsColumn(0, 'JSONB')).toBe(true);
  });

  it('fails a document without a value for a NOT NULL column', () => {
    const expected = 'does not fit table mixed: column id_col is NOT NULL';
    expect(() => fitDocument(plan, { price: 1 })).toThrow(new PermanentProcessingError(expected));
    expect(() => fitDocument(plan, { id: null })).toThrow(expected);
    expect(() => fitDocument(plan, { id: 'seven' })).toThrow(expected); // would be NULL in the column
  });

  it('keeps keys such as __proto__ as plain data', () => {
    const document = JSON.parse('{"id": 1, "__proto__": {"polluted": true}}') as Record<string, unknown>;
    const row = fitDocument(plan, document);
    expect(Object.keys(row.extra ?? {})).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(row.extra)).toBe(Object.prototype);
    const rebuilt = reconstructDocument(plan, { id_col: '1' }, row.extra);
    expect(JSON.stringify(rebuilt)).toBe('{"id":1,"__proto__":{"polluted":true}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('reconstructDocument', () => {
  it('returns non-null columns under their field names, then extra, without explicit nulls', () => {
    const documents = [
      { id: 1, title: 'A', tags: ['x'], rating: 4.5, draft: false, note: null },
      { id: 2, title: 'B', tags: [], rating: 3, draft: true, note: 'n' },
    ];
    const plan = planFor('posts', documents);
    for (const document of documents) {
      const row = fitDocument(plan, document);
      const rebuilt = reconstructDocument(plan, readBack(plan, row.values), row.extra);
      const withoutNulls = Object.fromEntries(Object.entries(document).filter(([, value]) => value !== null));
      expect(rebuilt).toEqual(withoutNulls);
      expect(Object.keys(rebuilt)).toEqual(Object.keys(withoutNulls));
    }
  });

  it('reads int8 values given as bigint or text back as numbers', () => {
    const plan = planFor('counts', [{ n: 1, x: 0.5 }]);
    expect(reconstructDocument(plan, { n: 12n, x: '0.25' }, null)).toEqual({ n: 12, x: 0.25 });
    expect(reconstructDocument(plan, { n: '9007199254740991', x: null }, { y: 1 })).toEqual({
      n: 9007199254740991,
      y: 1,
    });
  });

  it('returns the stored doc of a JSONB collection', () => {
    const documents = [{ order: 'A', items: [{ sku: 'x' }] }];
    const plan = planFor('docs_orders', documents);
    expect(plan.storageChoice).toBe('jsonb');
    const row = fitDocument(plan, documents[0] as Record<string, unknown>);
    expect(row).toEqual({ values: { doc: '{"order":"A","items":[{"sku":"x"}]}' }, extra: null });
    expect(reconstructDocument(plan, { doc: JSON.parse(row.values.doc as string) }, null)).toEqual(
      documents[0],
    );
    expect(reconstructDocument(plan, { doc: row.values.doc }, null)).toEqual(documents[0]);
  });
});
