import { describe, expect, it } from 'vitest';
import { analyseDocuments } from '../../src/domain/json/analysis.js';
import {
  adminFieldStats,
  planTable,
  renamePlan,
  renderDdl,
  type TablePlan,
} from '../../src/domain/json/ddl.js';
import { decideStorage } from '../../src/domain/json/decision.js';

const ANALYSIS_SETTINGS = { sampleSize: 128, maxDepth: 2 };
const DECISION_SETTINGS = { maxTopLevelKeys: 20, maxDepth: 2, stabilityThreshold: 0.6 };

const STABLE_USERS = [
  { id: 1, name: 'Alice', email: 'alice@example.com', age: 30, active: true },
  { id: 2, name: 'Bob', email: 'bob@example.com', age: 25, active: false },
  { id: 3, name: 'Charlie', email: 'charlie@example.com', age: 35, active: true },
  { id: 4, name: 'Diana', email: 'diana@example.com', age: 28, active: true },
  { id: 5, name: 'Eve', email: 'eve@example.com', age: 32, active: false },
];

const COMPLEX_ORDERS = [
  { order_id: 'ORD-001', customer: 'Alice', items: [{ sku: 'A1', qty: 2, price: 9.99 }], total: 19.98 },
  { order_id: 'ORD-002', customer: 'Bob', items: [{ sku: 'C3', qty: 5, price: 3.2 }], total: 16 },
];

function decidedPlan(name: string, documents: Record<string, unknown>[]): TablePlan {
  const analysis = analyseDocuments(documents, ANALYSIS_SETTINGS);
  return planTable(name, analysis, decideStorage(analysis, DECISION_SETTINGS).storageChoice);
}

const STABLE_USERS_DDL = [
  'CREATE TABLE IF NOT EXISTS json_data.stable_users (',
  '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
  '    id_col BIGINT NOT NULL,',
  '    name TEXT NOT NULL,',
  '    email TEXT NOT NULL,',
  '    age BIGINT NOT NULL,',
  '    active BOOLEAN NOT NULL,',
  '    extra JSONB,',
  '    asset_id UUID,',
  '    created_at TIMESTAMPTZ DEFAULT NOW(),',
  '    updated_at TIMESTAMPTZ DEFAULT NOW()',
  ');',
  'CREATE INDEX IF NOT EXISTS idx_stable_users_id_col ON json_data.stable_users (id_col);',
  'CREATE INDEX IF NOT EXISTS idx_stable_users_name ON json_data.stable_users (name);',
  'CREATE INDEX IF NOT EXISTS idx_stable_users_email ON json_data.stable_users (email);',
  'CREATE INDEX IF NOT EXISTS idx_stable_users_age ON json_data.stable_users (age);',
  'CREATE INDEX IF NOT EXISTS idx_stable_users_extra ON json_data.stable_users USING GIN (extra);',
].join('\n');

describe('SQL table DDL', () => {
  it('stable_users → the exact table, id as id_col, no placeholder', () => {
    const plan = decidedPlan('stable_users', STABLE_USERS);
    expect(plan.storageChoice).toBe('sql');
    const ddl = renderDdl(plan);
    expect(ddl).toBe(STABLE_USERS_DDL);
    expect(ddl).toContain('id_col BIGINT NOT NULL');
    expect(ddl).toContain('email TEXT NOT NULL');
    expect(ddl).not.toContain('{table_name}');
  });

  it('maps every JSON type to its column type', () => {
    const analysis = analyseDocuments(
      [{ s: 'x', i: 1, f: 1.5, b: true, a: [1], o: { k: 1 }, n: null }],
      ANALYSIS_SETTINGS,
    );
    const plan = planTable('types', analysis, 'sql');
    expect(plan.columns.map((column) => [column.column, column.sqlType, column.notNull])).toEqual([
      ['s', 'TEXT', true],
      ['i', 'BIGINT', true],
      ['f', 'DOUBLE PRECISION', true],
      ['b', 'BOOLEAN', true],
      ['a', 'JSONB', true],
      ['o', 'JSONB', true],
      ['n', 'TEXT', false],
    ]);
  });

  it('applies the index rules and NOT NULL only to always present, never null fields', () => {
    const documents: Record<string, unknown>[] = [
      {
        id: 1,
        user_id: 'u1',
        orderKey: 'k1',
        score: 10,
        partial: 1,
        ratio: 0.5,
        flag: true,
        label: 'a',
        width: 3,
        video: 'v',
        paid: 1,
        meta_id: { a: 1 },
      },
      { id: 2, score: 11, partial: 2, ratio: 0.25, flag: false, label: 'b' },
      { id: 3, score: 12, partial: 3, ratio: 1.5, flag: true, label: 'c' },
      { id: 4, score: 13, partial: null, ratio: 2.5, flag: true, label: 'd' },
      { id: 5, score: 14, ratio: 3.5, flag: false, label: 5 },
    ];
    const analysis = analyseDocuments(documents, ANALYSIS_SETTINGS);
    const ddl = renderDdl(planTable('events', analysis, 'sql'));
    expect(ddl).toBe(
      [
        'CREATE TABLE IF NOT EXISTS json_data.events (',
        '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
        '    id_col BIGINT NOT NULL,',
        '    user_id TEXT,',
        '    orderkey TEXT,',
        '    score BIGINT NOT NULL,',
        '    partial BIGINT,',
        '    ratio DOUBLE PRECISION NOT NULL,',
        '    flag BOOLEAN NOT NULL,',
        '    label TEXT NOT NULL,',
        '    width BIGINT,',
        '    video TEXT,',
        '    paid BIGINT,',
        '    meta_id JSONB,',
        '    extra JSONB,',
        '    asset_id UUID,',
        '    created_at TIMESTAMPTZ DEFAULT NOW(),',
        '    updated_at TIMESTAMPTZ DEFAULT NOW()',
        ');',
        // id, *_id, camel-case Key: by name; score: present everywhere, stable integer.
        'CREATE INDEX IF NOT EXISTS idx_events_id_col ON json_data.events (id_col);',
        'CREATE INDEX IF NOT EXISTS idx_events_user_id ON json_data.events (user_id);',
        'CREATE INDEX IF NOT EXISTS idx_events_orderkey ON json_data.events (orderkey);',
        'CREATE INDEX IF NOT EXISTS idx_events_score ON json_data.events (score);',
        'CREATE INDEX IF NOT EXISTS idx_events_meta_id ON json_data.events USING GIN (meta_id);',
        'CREATE INDEX IF NOT EXISTS idx_events_extra ON json_data.events USING GIN (extra);',
      ].join('\n'),
    );
    // partial: presence 0.8 is not > 0.8; label: stability 0.8 is not > 0.9; ratio/flag: not integer or string.
  });

  it('cuts index names to 63 characters and keeps them distinct within the table', () => {
    const table = 't'.repeat(48);
    const analysis = analyseDocuments(
      [{ description_long_a: 'x', description_long_b: 'y' }],
      ANALYSIS_SETTINGS,
    );
    const lines = renderDdl(planTable(table, analysis, 'sql')).split('\n');
    const first = `idx_${table}_descriptio`;
    expect(first).toHaveLength(63);
    expect(lines).toContain(
      `CREATE INDEX IF NOT EXISTS ${first} ON json_data.${table} (description_long_a);`,
    );
    expect(lines).toContain(
      `CREATE INDEX IF NOT EXISTS ${first.slice(0, 61)}_2 ON json_data.${table} (description_long_b);`,
    );
    expect(lines.at(-1)).toBe(
      `CREATE INDEX IF NOT EXISTS idx_${table}_extra ON json_data.${table} USING GIN (extra);`,
    );
  });
});

describe('JSONB collection DDL', () => {
  it('complex_orders → the exact collection DDL', () => {
    const plan = decidedPlan('docs_orders', COMPLEX_ORDERS);
    expect(plan).toEqual({ name: 'docs_orders', storageChoice: 'jsonb', columns: [] });
    expect(renderDdl(plan)).toBe(
      [
        'CREATE TABLE IF NOT EXISTS json_data.docs_orders (',
        '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
        '    doc JSONB NOT NULL,',
        '    asset_id UUID,',
        '    created_at TIMESTAMPTZ DEFAULT NOW(),',
        '    updated_at TIMESTAMPTZ DEFAULT NOW()',
        ');',
        'CREATE INDEX IF NOT EXISTS idx_docs_orders_doc ON json_data.docs_orders USING GIN (doc);',
      ].join('\n'),
    );
  });
});

describe('plans', () => {
  it('survive a JSON round trip and render the same DDL', () => {
    const plan = decidedPlan('stable_users', STABLE_USERS);
    const stored = JSON.parse(JSON.stringify(plan)) as TablePlan;
    expect(stored).toEqual(plan);
    expect(renderDdl(stored)).toBe(STABLE_USERS_DDL);
  });

  it('re-render under a new name on approval', () => {
    const plan = decidedPlan('stable_users', STABLE_USERS);
    const renamed = renamePlan(plan, 'people');
    expect(renderDdl(renamed)).toBe(STABLE_USERS_DDL.replaceAll('stable_users', 'people'));
    expect(plan.name).toBe('stable_users');
    expect(() => renamePlan(plan, 'People')).toThrow(RangeError);
    expect(() => renamePlan(plan, 'x; DROP TABLE y')).toThrow(RangeError);
  });

  it('refuse to render identifiers that are not bare names', () => {
    const plan = decidedPlan('stable_users', STABLE_USERS);
    expect(() => renderDdl({ ...plan, name: 'users (id int); DROP TABLE x; --' })).toThrow(RangeError);
    const [first] = plan.columns;
    if (first === undefined) throw new Error('the plan has columns');
    const tampered = { ...plan, columns: [{ ...first, column: 'a b' }] };
    expect(() => renderDdl(tampered)).toThrow(RangeError);
    const badType = { ...plan, columns: [{ ...first, sqlType: 'TEXT); DROP' as 'TEXT' }] };
    expect(() => renderDdl(badType)).toThrow(RangeError);
  });
});

describe('adminFieldStats', () => {
  it('describes every path with fractions, the FK guess and its column', () => {
    const documents = [
      { id: 1, owner: { user_id: 7 }, note: null },
      { id: 2, owner: { user_id: 8 }, note: 'hello' },
      { id: 3, note: null },
      { id: 4, owner: { user_id: 9 }, note: null },
    ];
    const analysis = analyseDocuments(documents, ANALYSIS_SETTINGS);
    const stats = adminFieldStats(analysis, planTable('owners', analysis, 'sql'));
    expect(stats).toEqual({
      id: {
        dominant_type: 'integer',
        type_stability: 1,
        presence: 1,
        null_fraction: 0,
        max_length: 0,
        is_likely_fk: true,
        column: 'id_col',
      },
      owner: {
        dominant_type: 'object',
        type_stability: 1,
        presence: 0.75,
        null_fraction: 0,
        max_length: 0,
        is_likely_fk: false,
        column: 'owner',
      },
      'owner.user_id': {
        dominant_type: 'integer',
        type_stability: 1,
        presence: 0.75,
        null_fraction: 0,
        max_length: 0,
        is_likely_fk: true,
        column: null,
      },
      note: {
        dominant_type: 'string',
        type_stability: 1,
        presence: 1,
        null_fraction: 0.75,
        max_length: 5,
        is_likely_fk: false,
        column: 'note',
      },
    });
    expect(adminFieldStats(analysis, null).id?.column).toBeNull();
  });
});
