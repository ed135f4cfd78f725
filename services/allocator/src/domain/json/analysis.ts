// Structure analysis of a JSON batch (spec §3.8.1): a deterministic sample is flattened into paths, each path
// gets presence/type statistics, and the batch gets the summary the storage decision and the schema reuse
// (structure hash) are based on.
import { canonicalJson, sha256Hex } from './canonical.js';

export type JsonType = 'null' | 'boolean' | 'integer' | 'float' | 'string' | 'array' | 'object';

export interface FieldStats {
  path: string;
  depth: number;
  /** number of sampled documents containing the path */
  presence: number;
  nullCount: number;
  /** non-null occurrences per type; when both integer and float occurred, the integers are counted as float */
  typeCounts: Partial<Record<JsonType, number>>;
  dominantType: JsonType;
  typeStability: number;
  /** longest string value, in characters (code points) */
  maxLength: number;
  /** 0-based rank of the path in order of first appearance */
  firstSeen: number;
}

export interface JsonAnalysis {
  documentsAnalyzed: number;
  topLevelKeys: number;
  maxDepth: number;
  fieldStability: number;
  typeStability: number;
  hasArrayOfObjects: boolean;
  structureHash: string;
  /** in order of first appearance */
  fields: FieldStats[];
  /** depth-1 keys in order of first appearance */
  topLevelFields: string[];
}

/** SCHEMA_SAMPLE_SIZE and SCHEMA_MAX_DEPTH. */
export interface AnalysisSettings {
  sampleSize: number;
  maxDepth: number;
}

/** Suffix of the path recorded for an array holding at least one object. */
export const ARRAY_OF_OBJECTS_SUFFIX = '[]';

// Tie-break order for the dominant type.
const DOMINANCE_ORDER: readonly JsonType[] = ['string', 'float', 'integer', 'boolean', 'array', 'object'];

interface PathRecord {
  path: string;
  depth: number;
  type: JsonType;
  value: unknown;
  /** true for the `<path>[]` record of an array of objects */
  arrayMarker: boolean;
}

interface PathAccumulator {
  path: string;
  depth: number;
  arrayMarker: boolean;
  presence: number;
  nullCount: number;
  typeCounts: Partial<Record<JsonType, number>>;
  maxLength: number;
}

/** The JSON type of a parsed JSON value (`integer` = a number without fractional part). */
export function jsonTypeOf(value: unknown): JsonType {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  if (typeof value === 'string') return 'string';
  if (Array.isArray(value)) return 'array';
  return 'object';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The documents analysed: all when n ≤ k, else those at ⌊i·n/k⌋ for i = 0..k−1. */
export function sampleDocuments<T>(documents: readonly T[], sampleSize: number): T[] {
  const n = documents.length;
  const k = Math.max(1, Math.floor(sampleSize));
  if (n <= k) return [...documents];
  const sample: T[] = [];
  for (let i = 0; i < k; i += 1) sample.push(documents[Math.floor((i * n) / k)] as T);
  return sample;
}

/** The analysis depth D = max(SCHEMA_MAX_DEPTH + 3, 5). */
export function analysisDepth(maxDepth: number): number {
  return Math.max(maxDepth + 3, 5);
}

/**
 * Flattens one document into path records, in document order. A path met twice within one document (a key
 * containing a dot, e.g. `"a.b"` next to `"a": {"b": …}`) keeps its first occurrence, so presence counts
 * documents.
 */
function flattenDocument(document: Record<string, unknown>, limit: number): PathRecord[] {
  const records: PathRecord[] = [];
  const seen = new Set<string>();
  const record = (entry: PathRecord): void => {
    const identity = recordIdentity(entry);
    if (seen.has(identity)) return;
    seen.add(identity);
    records.push(entry);
  };
  const walk = (object: Record<string, unknown>, prefix: string, depth: number): void => {
    for (const [key, value] of Object.entries(object)) {
      if (value === undefined) continue;
      const path = prefix === '' ? key : `${prefix}.${key}`;
      record({ path, depth, type: jsonTypeOf(value), value, arrayMarker: false });
      if (depth >= limit) continue;
      if (isPlainObject(value)) {
        walk(value, path, depth + 1);
      } else if (Array.isArray(value) && value.some(isPlainObject)) {
        // The marker keeps the array's depth: it describes the elements, it is not a deeper key.
        record({ path: `${path}${ARRAY_OF_OBJECTS_SUFFIX}`, depth, type: 'array', value, arrayMarker: true });
      }
    }
  };
  walk(document, '', 1);
  return records;
}

// A key literally named `x[]` and the marker of an array `x` stay apart, so a marker is never lost.
function recordIdentity(entry: PathRecord): string {
  return `${entry.arrayMarker ? 'marker' : 'key'}:${entry.path}`;
}

function characterLength(text: string): number {
  let length = 0;
  for (const _ of text) length += 1;
  return length;
}

function dominantOf(typeCounts: Partial<Record<JsonType, number>>): { type: JsonType; count: number } {
  let best: { type: JsonType; count: number } = { type: 'null', count: 0 };
  for (const type of DOMINANCE_ORDER) {
    const count = typeCounts[type] ?? 0;
    if (count > best.count) best = { type, count };
  }
  return best;
}

function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/** Deterministic sample (⌊i·n/k⌋), flatten with depth max(maxDepth+3,5), per-path statistics, summary, structure hash. */
export function analyseDocuments(
  documents: readonly Record<string, unknown>[],
  settings: AnalysisSettings,
): JsonAnalysis {
  if (documents.length === 0) throw new RangeError('at least one document is needed for an analysis');
  const sample = sampleDocuments(documents, settings.sampleSize);
  const limit = analysisDepth(settings.maxDepth);

  const accumulators = new Map<string, PathAccumulator>();
  for (const document of sample) {
    for (const entry of flattenDocument(document, limit)) {
      const identity = recordIdentity(entry);
      let accumulator = accumulators.get(identity);
      if (accumulator === undefined) {
        accumulator = {
          path: entry.path,
          depth: entry.depth,
          arrayMarker: entry.arrayMarker,
          presence: 0,
          nullCount: 0,
          typeCounts: {},
          maxLength: 0,
        };
        accumulators.set(identity, accumulator);
      }
      accumulator.presence += 1;
      if (entry.type === 'null') {
        accumulator.nullCount += 1;
        continue;
      }
      accumulator.typeCounts[entry.type] = (accumulator.typeCounts[entry.type] ?? 0) + 1;
      if (typeof entry.value === 'string') {
        accumulator.maxLength = Math.max(accumulator.maxLength, characterLength(entry.value));
      }
    }
  }

  const fields: FieldStats[] = [];
  const topLevelFields: string[] = [];
  const dominantTypes: Record<string, JsonType> = {};
  for (const accumulator of accumulators.values()) {
    const typeCounts = { ...accumulator.typeCounts };
    if (typeCounts.integer !== undefined && typeCounts.float !== undefined) {
      // Mixed numbers are one float field: whole numbers are valid floats.
      typeCounts.float += typeCounts.integer;
      delete typeCounts.integer;
    }
    const nonNull = accumulator.presence - accumulator.nullCount;
    const dominant = dominantOf(typeCounts);
    const stats: FieldStats = {
      path: accumulator.path,
      depth: accumulator.depth,
      presence: accumulator.presence,
      nullCount: accumulator.nullCount,
      typeCounts,
      dominantType: dominant.type,
      typeStability: nonNull === 0 ? 1 : dominant.count / nonNull,
      maxLength: accumulator.maxLength,
      firstSeen: fields.length,
    };
    fields.push(stats);
    if (accumulator.depth === 1 && !accumulator.arrayMarker) topLevelFields.push(accumulator.path);
    Object.defineProperty(dominantTypes, accumulator.path, {
      value: dominant.type,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  const documentsAnalyzed = sample.length;
  // A `[]` marker of a top-level array is itself a depth-1 path, so it takes part in the field stability.
  const depthOnePaths = fields.filter((field) => field.depth === 1);
  return {
    documentsAnalyzed,
    topLevelKeys: topLevelFields.length,
    maxDepth: fields.reduce((deepest, field) => Math.max(deepest, field.depth), 0),
    fieldStability: mean(depthOnePaths.map((field) => field.presence / documentsAnalyzed)),
    typeStability: mean(fields.map((field) => field.typeStability)),
    hasArrayOfObjects: [...accumulators.values()].some((accumulator) => accumulator.arrayMarker),
    structureHash: sha256Hex(canonicalJson(dominantTypes)),
    fields,
    topLevelFields,
  };
}
