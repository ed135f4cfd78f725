// Table plans and their DDL (spec §3.8.5). A plan is the storable description of a data table (plain JSON, kept
// in the schema's metadata); the DDL text is rendered from it, so a rename on approval re-renders the same
// table under the new name and no placeholder ever reaches the stored DDL.
import type { FieldStats, JsonAnalysis, JsonType } from './analysis.js';
import type { StorageChoice } from './decision.js';
import { columnNames, isLikelyForeignKey, TABLE_NAME_PATTERN } from './naming.js';

export type SqlType = 'TEXT' | 'BIGINT' | 'DOUBLE PRECISION' | 'BOOLEAN' | 'JSONB';

export interface ColumnPlan {
  /** the document's depth-1 key */
  field: string;
  column: string;
  sqlType: SqlType;
  notNull: boolean;
  indexed: boolean;
}

export interface TablePlan {
  name: string;
  storageChoice: StorageChoice;
  /** empty for a JSONB collection */
  columns: ColumnPlan[];
}

/** The admin API's per-path statistics (§3.11 `fields`). */
export interface AdminFieldStats {
  dominant_type: JsonType;
  type_stability: number;
  presence: number;
  null_fraction: number;
  max_length: number;
  is_likely_fk: boolean;
  column: string | null;
}

/** The PostgreSQL schema holding every data table. */
export const DATA_SCHEMA = 'json_data';
/** PostgreSQL's identifier length limit (index names are cut to it). */
export const IDENTIFIER_MAX_LENGTH = 63;

const COLUMN_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const SQL_TYPE_NAMES: ReadonlySet<string> = new Set<SqlType>([
  'TEXT',
  'BIGINT',
  'DOUBLE PRECISION',
  'BOOLEAN',
  'JSONB',
]);

const SQL_TYPES: Record<JsonType, SqlType> = {
  string: 'TEXT',
  integer: 'BIGINT',
  float: 'DOUBLE PRECISION',
  boolean: 'BOOLEAN',
  array: 'JSONB',
  object: 'JSONB',
  null: 'TEXT',
};

/** The SQL type of a field whose dominant type is `type`. */
export function sqlTypeFor(type: JsonType): SqlType {
  return SQL_TYPES[type];
}

/** The index rule: an id/key-like name, or a stable, nearly always present integer/string field. */
export function shouldIndex(stats: FieldStats, documentsAnalyzed: number): boolean {
  if (isLikelyForeignKey(stats.path)) return true;
  const presence = documentsAnalyzed === 0 ? 0 : stats.presence / documentsAnalyzed;
  return (
    presence > 0.8 &&
    stats.typeStability > 0.9 &&
    (stats.dominantType === 'integer' || stats.dominantType === 'string')
  );
}

function topLevelStats(analysis: JsonAnalysis): Map<string, FieldStats> {
  const byField = new Map<string, FieldStats>();
  for (const stats of analysis.fields) {
    if (stats.depth === 1 && !byField.has(stats.path)) byField.set(stats.path, stats);
  }
  return byField;
}

/** The table for an analysed batch: one column per depth-1 field (sql), none for a JSONB collection. */
export function planTable(name: string, analysis: JsonAnalysis, choice: StorageChoice): TablePlan {
  if (choice === 'jsonb') return { name, storageChoice: choice, columns: [] };
  const statsByField = topLevelStats(analysis);
  const names = columnNames(analysis.topLevelFields);
  const columns: ColumnPlan[] = [];
  for (const field of analysis.topLevelFields) {
    const stats = statsByField.get(field);
    const column = names.get(field);
    if (stats === undefined || column === undefined) continue;
    columns.push({
      field,
      column,
      sqlType: sqlTypeFor(stats.dominantType),
      notNull: stats.presence === analysis.documentsAnalyzed && stats.nullCount === 0,
      indexed: shouldIndex(stats, analysis.documentsAnalyzed),
    });
  }
  return { name, storageChoice: choice, columns };
}

function assertIdentifiers(plan: TablePlan): void {
  // The plan is read back from storage before rendering; refuse anything that is not a bare identifier.
  if (!TABLE_NAME_PATTERN.test(plan.name)) throw new RangeError(`invalid table name: ${plan.name}`);
  for (const column of plan.columns) {
    if (!COLUMN_PATTERN.test(column.column)) throw new RangeError(`invalid column name: ${column.column}`);
    if (!SQL_TYPE_NAMES.has(column.sqlType)) throw new RangeError(`invalid column type: ${column.sqlType}`);
  }
}

/**
 * `idx_<table>_<suffix>` cut to 63 characters. When the cut makes two names of one table equal, the later one
 * ends in `_2`, `_3`, … instead, so no index is silently skipped by IF NOT EXISTS.
 */
function indexNamer(table: string): (suffix: string) => string {
  const used = new Set<string>();
  return (suffix) => {
    const full = `idx_${table}_${suffix}`.slice(0, IDENTIFIER_MAX_LENGTH);
    let name = full;
    for (let counter = 2; used.has(name); counter += 1) {
      const tail = `_${counter}`;
      name = full.slice(0, IDENTIFIER_MAX_LENGTH - tail.length) + tail;
    }
    used.add(name);
    return name;
  };
}

/** The exact DDL text of §3.8.5 (statements separated by newlines, each ending with ';'). */
export function renderDdl(plan: TablePlan): string {
  assertIdentifiers(plan);
  const table = `${DATA_SCHEMA}.${plan.name}`;
  const indexName = indexNamer(plan.name);
  if (plan.storageChoice === 'jsonb') {
    return [
      `CREATE TABLE IF NOT EXISTS ${table} (`,
      '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
      '    doc JSONB NOT NULL,',
      '    asset_id UUID,',
      '    created_at TIMESTAMPTZ DEFAULT NOW(),',
      '    updated_at TIMESTAMPTZ DEFAULT NOW()',
      ');',
      `CREATE INDEX IF NOT EXISTS ${indexName('doc')} ON ${table} USING GIN (doc);`,
    ].join('\n');
  }
  const lines = [
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    '    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),',
  ];
  for (const column of plan.columns) {
    lines.push(`    ${column.column} ${column.sqlType}${column.notNull ? ' NOT NULL' : ''},`);
  }
  lines.push(
    '    extra JSONB,',
    '    asset_id UUID,',
    '    created_at TIMESTAMPTZ DEFAULT NOW(),',
    '    updated_at TIMESTAMPTZ DEFAULT NOW()',
    ');',
  );
  for (const column of plan.columns) {
    if (!column.indexed) continue;
    const method = column.sqlType === 'JSONB' ? 'USING GIN ' : '';
    lines.push(
      `CREATE INDEX IF NOT EXISTS ${indexName(column.column)} ON ${table} ${method}(${column.column});`,
    );
  }
  lines.push(`CREATE INDEX IF NOT EXISTS ${indexName('extra')} ON ${table} USING GIN (extra);`);
  return lines.join('\n');
}

/** Re-renders the plan under another name (approval with table_name). */
export function renamePlan(plan: TablePlan, newName: string): TablePlan {
  if (!TABLE_NAME_PATTERN.test(newName)) throw new RangeError(`invalid table name: ${newName}`);
  return { ...plan, name: newName, columns: plan.columns.map((column) => ({ ...column })) };
}

/** The last segment of a path, the name the foreign-key heuristic looks at. */
function fieldNameOf(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot === -1 ? path : path.slice(dot + 1);
}

/** The admin API's `fields` object: per path {dominant_type, type_stability, presence, null_fraction, …, column}. */
export function adminFieldStats(
  analysis: JsonAnalysis,
  plan: TablePlan | null,
): Record<string, AdminFieldStats> {
  const columnOf = new Map<string, string>();
  for (const column of plan?.columns ?? []) columnOf.set(column.field, column.column);
  const result: Record<string, AdminFieldStats> = {};
  for (const stats of analysis.fields) {
    if (Object.hasOwn(result, stats.path)) continue;
    const entry: AdminFieldStats = {
      dominant_type: stats.dominantType,
      type_stability: stats.typeStability,
      presence: analysis.documentsAnalyzed === 0 ? 0 : stats.presence / analysis.documentsAnalyzed,
      null_fraction: stats.presence === 0 ? 0 : stats.nullCount / stats.presence,
      max_length: stats.maxLength,
      is_likely_fk: isLikelyForeignKey(fieldNameOf(stats.path)),
      column: stats.depth === 1 ? (columnOf.get(stats.path) ?? null) : null,
    };
    Object.defineProperty(result, stats.path, {
      value: entry,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return result;
}
