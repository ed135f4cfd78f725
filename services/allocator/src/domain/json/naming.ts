// Table and column names (spec §3.8.4, §3.8.5). Every name this module returns is a bare PostgreSQL
// identifier that needs no quoting: table names are always schema-qualified (`json_data.<name>`, where even
// keywords are accepted), and column names never collide with a keyword or with the fixed columns.
import type { StorageChoice } from './decision.js';

/** Longest hint kept as a table name. */
export const NAME_HINT_MAX_LENGTH = 48;
/** Longest column name before duplicate suffixes. */
export const COLUMN_NAME_MAX_LENGTH = 59;
/** A table name accepted on approval (`table_name`). */
export const TABLE_NAME_PATTERN: RegExp = /^[a-z_][a-z0-9_]{0,62}$/;

/** Columns every SQL table has. */
const FIXED_COLUMNS = ['id', 'extra', 'asset_id', 'created_at', 'updated_at'] as const;

/** The reserved key words listed by the specification. */
const SPEC_RESERVED_WORDS = [
  'all',
  'analyse',
  'analyze',
  'and',
  'any',
  'array',
  'as',
  'asc',
  'asymmetric',
  'both',
  'case',
  'cast',
  'check',
  'collate',
  'column',
  'constraint',
  'create',
  'current_catalog',
  'current_date',
  'current_role',
  'current_time',
  'current_timestamp',
  'current_user',
  'default',
  'deferrable',
  'desc',
  'distinct',
  'do',
  'else',
  'end',
  'except',
  'false',
  'fetch',
  'for',
  'foreign',
  'from',
  'grant',
  'group',
  'having',
  'in',
  'initially',
  'intersect',
  'into',
  'lateral',
  'leading',
  'limit',
  'localtime',
  'localtimestamp',
  'not',
  'null',
  'offset',
  'on',
  'only',
  'or',
  'order',
  'placing',
  'primary',
  'references',
  'returning',
  'select',
  'session_user',
  'some',
  'symmetric',
  'table',
  'then',
  'to',
  'trailing',
  'true',
  'union',
  'unique',
  'user',
  'using',
  'variadic',
  'when',
  'where',
  'window',
  'with',
] as const;

/**
 * Key words PostgreSQL (16+) also refuses as a bare column name: `system_user` became reserved, and the
 * "reserved (can be function or type)" class (`left`, `join`, `is`, …) is not allowed as a column name either.
 * Without them a field such as `left` would make the CREATE TABLE fail.
 */
const OTHER_NON_COLUMN_WORDS = [
  'system_user',
  'authorization',
  'binary',
  'collation',
  'concurrently',
  'cross',
  'current_schema',
  'freeze',
  'full',
  'ilike',
  'inner',
  'is',
  'isnull',
  'join',
  'left',
  'like',
  'natural',
  'notnull',
  'outer',
  'overlaps',
  'right',
  'similar',
  'tablesample',
  'verbose',
] as const;

/** Column names that get the `_col` suffix. */
export const SUFFIXED_COLUMN_NAMES: ReadonlySet<string> = new Set<string>([
  ...FIXED_COLUMNS,
  ...SPEC_RESERVED_WORDS,
  ...OTHER_NON_COLUMN_WORDS,
  'index',
  'key',
  'value',
]);

function lowerAscii(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

/** §3.8.4 hint sanitising; null when no usable hint. */
export function sanitiseNameHint(hint: string | null | undefined): string | null {
  if (hint === null || hint === undefined) return null;
  const name = lowerAscii(hint)
    .replace(/[ -]/g, '_')
    .replace(/[^a-z0-9_]/gu, '')
    .slice(0, NAME_HINT_MAX_LENGTH);
  if (name === '' || /^[0-9]/.test(name)) return null;
  return name;
}

/** The hint-less name of a new schema: `table_<hash8>` (sql) or `docs_<hash8>` (jsonb). */
export function defaultSchemaName(choice: StorageChoice, structureHash: string): string {
  return `${choice === 'sql' ? 'table' : 'docs'}_${structureHash.slice(0, 8)}`;
}

/** Name for a new schema: hint, else table_/docs_<hash8>; `isTaken(name)` true → `<name>_<hash8>`. */
export function chooseSchemaName(
  hint: string | null,
  choice: StorageChoice,
  structureHash: string,
  isTaken: (name: string) => boolean,
): string {
  const base = sanitiseNameHint(hint) ?? defaultSchemaName(choice, structureHash);
  if (!isTaken(base)) return base;
  const suffixed = `${base}_${structureHash.slice(0, 8)}`;
  if (!isTaken(suffixed)) return suffixed;
  // Not covered by the rule above (e.g. a schema renamed to exactly this name): count on so the name is free.
  for (let counter = 2; ; counter += 1) {
    const candidate = `${suffixed}_${counter}`;
    if (!isTaken(candidate)) return candidate;
  }
}

/** The §3.8.5 column name of one field, before duplicate handling. */
export function baseColumnName(field: string): string {
  let name = '';
  // Per character (code point), so one emoji becomes one `_`.
  for (const character of lowerAscii(field)) name += /^[a-z0-9_]$/.test(character) ? character : '_';
  if (/^[0-9]/.test(name)) name = `col_${name}`;
  if (name === '') name = 'col';
  if (SUFFIXED_COLUMN_NAMES.has(name)) name = `${name}_col`;
  return name.slice(0, COLUMN_NAME_MAX_LENGTH);
}

/** §3.8.5 column names for depth-1 fields, in order: reserved → _col suffix, truncation, _2/_3 duplicates. */
export function columnNames(fields: readonly string[]): Map<string, string> {
  const columns = new Map<string, string>();
  const used = new Set<string>();
  for (const field of fields) {
    if (columns.has(field)) continue;
    const base = baseColumnName(field);
    let name = base;
    for (let counter = 2; used.has(name); counter += 1) name = `${base}_${counter}`;
    used.add(name);
    columns.set(field, name);
  }
  return columns;
}

/** `id`, `…_id`/`…_key` in any case, or `…Id`/`…Key` after a lower-case letter or digit. */
export function isLikelyForeignKey(fieldName: string): boolean {
  return /^id$/i.test(fieldName) || /_(id|key)$/i.test(fieldName) || /[a-z0-9](Id|Key)$/.test(fieldName);
}
