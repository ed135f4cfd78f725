// SQL-or-JSONB decision (spec §3.8.2), the scoring of the original service: five rules add to a score in a
// fixed order (IEEE doubles, so 0.85 and 1.0 come out exactly as the original's), then three vetoes, then the
// 0.85 bar. The reason text lists every rule with ✓/✗ and the values compared.
import type { JsonAnalysis } from './analysis.js';

export type StorageChoice = 'sql' | 'jsonb';

/** SCHEMA_MAX_TOP_LEVEL_KEYS, SCHEMA_MAX_DEPTH, SCHEMA_STABILITY_THRESHOLD. */
export interface DecisionSettings {
  maxTopLevelKeys: number;
  maxDepth: number;
  stabilityThreshold: number;
}

export interface SchemaDecision {
  storageChoice: StorageChoice;
  /** rounded to 4 decimals */
  confidence: number;
  /** the unrounded rule score */
  score: number;
  reason: string;
}

/** Type stability needed for the type rule. */
export const TYPE_STABILITY_THRESHOLD = 0.9;
/** Score needed for SQL storage. */
export const SQL_SCORE_THRESHOLD = 0.85;

/** `value` with two decimals, rounding exact halves to even as the original's `:.2f` did. */
export function formatTwoDecimals(value: number): string {
  // Only odd multiples of 1/8 lie exactly halfway between two hundredths; toFixed would round those up.
  const eighths = value * 8;
  if (Number.isInteger(eighths) && Math.abs(eighths % 2) === 1) {
    const down = (Math.floor(value * 100) / 100).toFixed(2);
    const up = (Math.ceil(value * 100) / 100).toFixed(2);
    const lastDigit = Number(down.at(-1));
    return lastDigit % 2 === 0 ? down : up;
  }
  return value.toFixed(2);
}

/** A configured number the way the original printed its float settings (0.6 → "0.6", 1 → "1.0"). */
function formatSetting(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function roundConfidence(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

/** The decision for an analysed batch: storage choice, confidence, score and `decision_reason`. */
export function decideStorage(analysis: JsonAnalysis, settings: DecisionSettings): SchemaDecision {
  const { topLevelKeys, maxDepth, fieldStability, typeStability, hasArrayOfObjects } = analysis;
  let score = 0;
  const lines: string[] = [];

  const fewKeys = topLevelKeys <= settings.maxTopLevelKeys;
  if (fewKeys) {
    score += 0.25;
    lines.push(`✓ Manageable number of top-level keys (${topLevelKeys} ≤ ${settings.maxTopLevelKeys})`);
  } else {
    lines.push(`✗ Too many top-level keys (${topLevelKeys} > ${settings.maxTopLevelKeys})`);
  }

  const shallow = maxDepth <= settings.maxDepth;
  if (shallow) {
    score += 0.25;
    lines.push(`✓ Shallow nesting depth (${maxDepth} ≤ ${settings.maxDepth})`);
  } else {
    lines.push(`✗ Deep nesting detected (${maxDepth} > ${settings.maxDepth})`);
  }

  const threshold = formatSetting(settings.stabilityThreshold);
  if (fieldStability >= settings.stabilityThreshold) {
    score += 0.25;
    lines.push(`✓ High field stability (${formatTwoDecimals(fieldStability)} ≥ ${threshold})`);
  } else {
    lines.push(`✗ Low field stability (${formatTwoDecimals(fieldStability)} < ${threshold})`);
  }

  if (typeStability >= TYPE_STABILITY_THRESHOLD) {
    score += 0.15;
    lines.push(`✓ Consistent field types (${formatTwoDecimals(typeStability)})`);
  } else {
    lines.push(`✗ Inconsistent field types (${formatTwoDecimals(typeStability)})`);
  }

  if (!hasArrayOfObjects) {
    score += 0.1;
    lines.push('✓ No complex nested arrays');
  } else {
    lines.push('✗ Contains arrays of objects (requires child tables)');
  }

  const rules = lines.join('; ');
  let storageChoice: StorageChoice;
  let confidence: number;
  let prefix: string;
  if (hasArrayOfObjects) {
    [storageChoice, confidence, prefix] = ['jsonb', 0.95, 'JSONB storage required: '];
  } else if (!fewKeys) {
    [storageChoice, confidence, prefix] = ['jsonb', 0.9, 'JSONB storage required: '];
  } else if (!shallow) {
    [storageChoice, confidence, prefix] = ['jsonb', 0.9, 'JSONB storage required: '];
  } else if (score >= SQL_SCORE_THRESHOLD) {
    [storageChoice, confidence, prefix] = ['sql', score, 'SQL storage recommended: '];
  } else {
    [storageChoice, confidence, prefix] = ['jsonb', 1 - score, 'JSONB storage recommended: '];
  }
  return { storageChoice, confidence: roundConfidence(confidence), score, reason: prefix + rules };
}
