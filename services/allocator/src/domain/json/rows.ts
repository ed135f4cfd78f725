// Documents ↔ table rows (spec §3.8.6). A document's depth-1 values go to their columns when they fit the
// column type; everything else (a value of another type, keys the analysed sample never had) is kept in
// `extra`, so a row always reconstructs to the document minus its explicit nulls.
import { PermanentProcessingError } from '../errors.js';
import type { SqlType, TablePlan } from './ddl.js';

export interface SqlRow {
  /** column → JS value ready for a bound parameter (JSONB values as JSON text); every column, null for NULL */
  values: Record<string, unknown>;
  /** the values that did not fit and the keys without a column; null when there are none */
  extra: Record<string, unknown> | null;
}

/** Column of a JSONB collection. */
export const DOC_COLUMN = 'doc';

/** Sets an own property, also for keys such as `__proto__` that plain assignment would treat specially. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** True when `value` (not null) can be stored in a column of `type` without loss. */
export function fitsColumn(value: unknown, type: SqlType): boolean {
  switch (type) {
    case 'BIGINT':
      // Only integers JavaScript represents exactly, so the value reads back unchanged.
      return (
        typeof value === 'number' && Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER
      );
    case 'DOUBLE PRECISION':
      return typeof value === 'number' && Number.isFinite(value);
    case 'BOOLEAN':
      return typeof value === 'boolean';
    case 'TEXT':
      return typeof value === 'string';
    case 'JSONB':
      return value !== undefined;
  }
}

/** §3.8.6: fit a document to the columns; throws PermanentProcessingError `does not fit table <t>: column <c> is NOT NULL`. */
export function fitDocument(plan: TablePlan, document: Record<string, unknown>): SqlRow {
  if (plan.storageChoice === 'jsonb') {
    const values: Record<string, unknown> = {};
    setOwn(values, DOC_COLUMN, JSON.stringify(document));
    return { values, extra: null };
  }
  const columnByField = new Map(plan.columns.map((column) => [column.field, column]));
  const values: Record<string, unknown> = {};
  for (const column of plan.columns) setOwn(values, column.column, null);

  const extra: Record<string, unknown> = {};
  let extraKeys = 0;
  for (const [field, value] of Object.entries(document)) {
    if (value === undefined) continue;
    const column = columnByField.get(field);
    if (column !== undefined && (value === null || fitsColumn(value, column.sqlType))) {
      const bound = value === null || column.sqlType !== 'JSONB' ? value : JSON.stringify(value);
      setOwn(values, column.column, bound);
      continue;
    }
    if (value === null) continue; // a null without a column carries no information (nulls are not preserved)
    setOwn(extra, field, value);
    extraKeys += 1;
  }

  for (const column of plan.columns) {
    if (column.notNull && values[column.column] === null) {
      throw new PermanentProcessingError(
        `does not fit table ${plan.name}: column ${column.column} is NOT NULL`,
      );
    }
  }
  return { values, extra: extraKeys === 0 ? null : extra };
}

/** A column value as the database driver returned it, back as the JSON value it was stored from. */
function decodeColumn(value: unknown, type: SqlType): unknown {
  if (type === 'BIGINT' || type === 'DOUBLE PRECISION') {
    // int8 comes back as a string or a bigint depending on the driver.
    if (typeof value === 'bigint' || typeof value === 'string') return Number(value);
  }
  return value;
}

/** §3.8.6 reconstruction: non-null columns under their field names, then extra's keys. */
export function reconstructDocument(
  plan: TablePlan,
  row: Record<string, unknown>,
  extra: Record<string, unknown> | null,
): Record<string, unknown> {
  if (plan.storageChoice === 'jsonb') {
    const doc = row[DOC_COLUMN];
    return (typeof doc === 'string' ? JSON.parse(doc) : doc) as Record<string, unknown>;
  }
  const document: Record<string, unknown> = {};
  for (const column of plan.columns) {
    const value = row[column.column];
    if (value === null || value === undefined) continue;
    setOwn(document, column.field, decodeColumn(value, column.sqlType));
  }
  for (const [key, value] of Object.entries(extra ?? {})) setOwn(document, key, value);
  return document;
}
