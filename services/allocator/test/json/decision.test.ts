import { describe, expect, it } from 'vitest';
import { analyseDocuments, type JsonAnalysis } from '../../src/domain/json/analysis.js';
import { decideStorage, formatTwoDecimals } from '../../src/domain/json/decision.js';

const ANALYSIS_SETTINGS = { sampleSize: 128, maxDepth: 2 };
const DECISION_SETTINGS = { maxTopLevelKeys: 20, maxDepth: 2, stabilityThreshold: 0.6 };

function decide(documents: Record<string, unknown>[]) {
  return decideStorage(analyseDocuments(documents, ANALYSIS_SETTINGS), DECISION_SETTINGS);
}

const STABLE_USERS = [
  { id: 1, name: 'Alice', email: 'alice@example.com', age: 30, active: true },
  { id: 2, name: 'Bob', email: 'bob@example.com', age: 25, active: false },
  { id: 3, name: 'Charlie', email: 'charlie@example.com', age: 35, active: true },
  { id: 4, name: 'Diana', email: 'diana@example.com', age: 28, active: true },
  { id: 5, name: 'Eve', email: 'eve@example.com', age: 32, active: false },
];

const COMPLEX_ORDERS = [
  {
    order_id: 'ORD-001',
    customer: 'Alice',
    items: [
      { sku: 'A1', qty: 2, price: 9.99 },
      { sku: 'B2', qty: 1, price: 24.5 },
    ],
    total: 44.48,
  },
  { order_id: 'ORD-002', customer: 'Bob', items: [{ sku: 'C3', qty: 5, price: 3.2 }], total: 16.5 },
];

const UNSTABLE_EVENTS = [
  { event: 'login', user_id: 1, timestamp: '2024-01-01T10:00:00Z' },
  { event: 'purchase', order_id: 123, total: 99.99 },
  { event: 'logout', duration: 3600, page: '/home' },
  { event: 'error', error: 'timeout', code: 504 },
];

function analysisWith(overrides: Partial<JsonAnalysis>): JsonAnalysis {
  return {
    documentsAnalyzed: 1,
    topLevelKeys: 5,
    maxDepth: 1,
    fieldStability: 1,
    typeStability: 1,
    hasArrayOfObjects: false,
    structureHash: '0'.repeat(64),
    fields: [],
    topLevelFields: [],
    ...overrides,
  };
}

describe('decideStorage on the original sample sets', () => {
  it('stable_users → sql with confidence 1.0', () => {
    expect(decide(STABLE_USERS)).toEqual({
      storageChoice: 'sql',
      confidence: 1,
      score: 1,
      reason:
        'SQL storage recommended: ✓ Manageable number of top-level keys (5 ≤ 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    });
  });

  it('complex_orders (array of objects) → jsonb, required, 0.95', () => {
    expect(decide(COMPLEX_ORDERS)).toEqual({
      storageChoice: 'jsonb',
      confidence: 0.95,
      score: 0.9,
      reason:
        'JSONB storage required: ✓ Manageable number of top-level keys (4 ≤ 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ' +
        '✗ Contains arrays of objects (requires child tables)',
    });
  });

  it('30 top-level keys → jsonb 0.9', () => {
    const document = Object.fromEntries(
      Array.from({ length: 30 }, (_, index) => [`field_${index + 1}`, index]),
    );
    const decision = decide([document]);
    expect(decision.storageChoice).toBe('jsonb');
    expect(decision.confidence).toBe(0.9);
    expect(decision.reason).toBe(
      'JSONB storage required: ✗ Too many top-level keys (30 > 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    );
  });

  it('nesting depth 4 → jsonb 0.9', () => {
    const decision = decide([{ config: { database: { primary: { host: 'db1' } } } }]);
    expect(decision.storageChoice).toBe('jsonb');
    expect(decision.confidence).toBe(0.9);
    expect(decision.reason).toBe(
      'JSONB storage required: ✓ Manageable number of top-level keys (1 ≤ 20); ✗ Deep nesting detected (4 > 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    );
  });

  it('field stability 0.33 → jsonb recommended with confidence 0.25', () => {
    const analysis = analyseDocuments(UNSTABLE_EVENTS, ANALYSIS_SETTINGS);
    expect(analysis.topLevelKeys).toBe(9);
    expect(analysis.fieldStability).toBeCloseTo(1 / 3, 12);
    expect(decideStorage(analysis, DECISION_SETTINGS)).toEqual({
      storageChoice: 'jsonb',
      confidence: 0.25,
      score: 0.75,
      reason:
        'JSONB storage recommended: ✓ Manageable number of top-level keys (9 ≤ 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✗ Low field stability (0.33 < 0.6); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    });
  });
});

describe('score arithmetic', () => {
  it('reaches exactly 0.85 with unstable types and still chooses sql', () => {
    const decision = decide([{ a: 1 }, { a: 'x' }, { a: 2 }, { a: 'y' }]);
    expect(decision.score).toBe(0.85);
    expect(decision.storageChoice).toBe('sql');
    expect(decision.confidence).toBe(0.85);
    expect(decision.reason).toBe(
      'SQL storage recommended: ✓ Manageable number of top-level keys (1 ≤ 20); ✓ Shallow nesting depth (1 ≤ 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✗ Inconsistent field types (0.50); ✓ No complex nested arrays',
    );
  });

  it('inverts a low score into the JSONB confidence, rounded to 4 decimals', () => {
    const decision = decide([{ a: 1, b: 1 }, { a: 'x' }, { c: 1 }]);
    expect(decision.score).toBe(0.5 + 0.1);
    expect(decision.storageChoice).toBe('jsonb');
    expect(decision.confidence).toBe(0.4);
    expect(decision.reason.startsWith('JSONB storage recommended: ')).toBe(true);
  });

  it('adds the rules in the specified order in IEEE doubles', () => {
    // 0.25 + 0.25 + 0.25 + 0.15 + 0.10 is exactly 1; 0.25 + 0.25 + 0.25 + 0.10 equals the literal 0.85.
    expect(decideStorage(analysisWith({}), DECISION_SETTINGS).score).toBe(1);
    expect(decideStorage(analysisWith({ typeStability: 0.5 }), DECISION_SETTINGS).score).toBe(0.85);
    expect(
      decideStorage(analysisWith({ fieldStability: 0.1, typeStability: 0.1 }), DECISION_SETTINGS).score,
    ).toBe(0.6);
  });

  it('applies the vetoes in order: arrays of objects, then keys, then depth', () => {
    const everything = decideStorage(
      analysisWith({ hasArrayOfObjects: true, topLevelKeys: 30, maxDepth: 4 }),
      DECISION_SETTINGS,
    );
    expect(everything).toMatchObject({ storageChoice: 'jsonb', confidence: 0.95, score: 0.4 });
    expect(everything.reason).toBe(
      'JSONB storage required: ✗ Too many top-level keys (30 > 20); ✗ Deep nesting detected (4 > 2); ' +
        '✓ High field stability (1.00 ≥ 0.6); ✓ Consistent field types (1.00); ' +
        '✗ Contains arrays of objects (requires child tables)',
    );
    const keysAndDepth = decideStorage(analysisWith({ topLevelKeys: 21, maxDepth: 3 }), DECISION_SETTINGS);
    expect(keysAndDepth).toMatchObject({ storageChoice: 'jsonb', confidence: 0.9 });
    expect(
      keysAndDepth.reason.startsWith('JSONB storage required: ✗ Too many top-level keys (21 > 20)'),
    ).toBe(true);
  });

  it('compares at the limits inclusively', () => {
    const atLimits = decideStorage(
      analysisWith({ topLevelKeys: 20, maxDepth: 2, fieldStability: 0.6, typeStability: 0.9 }),
      DECISION_SETTINGS,
    );
    expect(atLimits).toMatchObject({ storageChoice: 'sql', confidence: 1 });
  });
});

describe('decision_reason lines', () => {
  it('has one positive and one negative text per rule', () => {
    const positive = decideStorage(analysisWith({ topLevelKeys: 5, maxDepth: 1 }), DECISION_SETTINGS);
    expect(positive.reason.replace('SQL storage recommended: ', '').split('; ')).toEqual([
      '✓ Manageable number of top-level keys (5 ≤ 20)',
      '✓ Shallow nesting depth (1 ≤ 2)',
      '✓ High field stability (1.00 ≥ 0.6)',
      '✓ Consistent field types (1.00)',
      '✓ No complex nested arrays',
    ]);
    const negative = decideStorage(
      analysisWith({
        topLevelKeys: 25,
        maxDepth: 3,
        fieldStability: 0.33,
        typeStability: 0.5,
        hasArrayOfObjects: true,
      }),
      DECISION_SETTINGS,
    );
    expect(negative.reason.replace('JSONB storage required: ', '').split('; ')).toEqual([
      '✗ Too many top-level keys (25 > 20)',
      '✗ Deep nesting detected (3 > 2)',
      '✗ Low field stability (0.33 < 0.6)',
      '✗ Inconsistent field types (0.50)',
      '✗ Contains arrays of objects (requires child tables)',
    ]);
  });

  it('prints the configured limits', () => {
    const decision = decideStorage(analysisWith({ fieldStability: 0.9 }), {
      maxTopLevelKeys: 8,
      maxDepth: 3,
      stabilityThreshold: 1,
    });
    expect(decision.reason).toBe(
      'JSONB storage recommended: ✓ Manageable number of top-level keys (5 ≤ 8); ✓ Shallow nesting depth (1 ≤ 3); ' +
        '✗ Low field stability (0.90 < 1.0); ✓ Consistent field types (1.00); ✓ No complex nested arrays',
    );
    expect(decision.confidence).toBe(0.25);
  });
});

describe('formatTwoDecimals', () => {
  it('rounds like the original (exact halves to even)', () => {
    expect(formatTwoDecimals(1)).toBe('1.00');
    expect(formatTwoDecimals(1 / 3)).toBe('0.33');
    expect(formatTwoDecimals(2 / 3)).toBe('0.67');
    expect(formatTwoDecimals(0.125)).toBe('0.12');
    expect(formatTwoDecimals(0.375)).toBe('0.38');
    expect(formatTwoDecimals(0.625)).toBe('0.62');
    expect(formatTwoDecimals(0.875)).toBe('0.88');
    expect(formatTwoDecimals(0.995)).toBe('0.99');
  });
});
