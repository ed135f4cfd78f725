import { describe, expect, it } from 'vitest';
import {
  analyseDocuments,
  analysisDepth,
  type FieldStats,
  sampleDocuments,
} from '../../src/domain/json/analysis.js';

const DEFAULTS = { sampleSize: 128, maxDepth: 2 };

function field(fields: readonly FieldStats[], path: string): FieldStats {
  const found = fields.find((stats) => stats.path === path);
  if (found === undefined) throw new Error(`no stats for ${path}`);
  return found;
}

describe('sampling', () => {
  it('takes every document when the batch fits the sample size', () => {
    expect(sampleDocuments([10, 11, 12], 3)).toEqual([10, 11, 12]);
    expect(sampleDocuments([10, 11, 12], 128)).toEqual([10, 11, 12]);
  });

  it('takes the documents at ⌊i·n/k⌋ otherwise', () => {
    const indices = Array.from({ length: 9 }, (_, index) => index);
    expect(sampleDocuments(indices, 4)).toEqual([0, 2, 4, 6]);
    expect(
      sampleDocuments(
        Array.from({ length: 10 }, (_, index) => index),
        3,
      ),
    ).toEqual([0, 3, 6]);
  });

  it('analyses only the sampled documents', () => {
    const documents = Array.from({ length: 9 }, (_, index) => ({ n: index }) as Record<string, unknown>);
    documents[1] = { n: 1, only_in_second: true };
    const analysis = analyseDocuments(documents, { sampleSize: 4, maxDepth: 2 });
    expect(analysis.documentsAnalyzed).toBe(4);
    expect(analysis.topLevelFields).toEqual(['n']);
  });

  it('refuses an empty batch', () => {
    expect(() => analyseDocuments([], DEFAULTS)).toThrow(RangeError);
  });
});

describe('flattening', () => {
  it('uses the analysis depth max(SCHEMA_MAX_DEPTH + 3, 5)', () => {
    expect(analysisDepth(2)).toBe(5);
    expect(analysisDepth(1)).toBe(5);
    expect(analysisDepth(4)).toBe(7);
  });

  it('records nested object paths, array paths and array-of-object markers, never descending arrays', () => {
    const analysis = analyseDocuments(
      [{ user: { profile: { name: 'x' } }, tags: ['a'], items: [1, { sku: 's' }], empty: [] }],
      DEFAULTS,
    );
    expect(analysis.fields.map((stats) => [stats.path, stats.depth, stats.dominantType])).toEqual([
      ['user', 1, 'object'],
      ['user.profile', 2, 'object'],
      ['user.profile.name', 3, 'string'],
      ['tags', 1, 'array'],
      ['items', 1, 'array'],
      ['items[]', 1, 'array'],
      ['empty', 1, 'array'],
    ]);
    expect(analysis.topLevelFields).toEqual(['user', 'tags', 'items', 'empty']);
    expect(analysis.topLevelKeys).toBe(4);
    expect(analysis.maxDepth).toBe(3);
    expect(analysis.hasArrayOfObjects).toBe(true);
  });

  it('stops descending at depth D and does not mark arrays there', () => {
    const deep = { l1: { l2: { l3: { l4: { l5: { l6: 1 }, list: [{ a: 1 }] } } } } };
    const analysis = analyseDocuments([deep], DEFAULTS);
    expect(analysis.fields.map((stats) => stats.path)).toEqual([
      'l1',
      'l1.l2',
      'l1.l2.l3',
      'l1.l2.l3.l4',
      'l1.l2.l3.l4.l5',
      'l1.l2.l3.l4.list',
    ]);
    expect(analysis.maxDepth).toBe(5);
    expect(analysis.hasArrayOfObjects).toBe(false);
    // A deeper setting analyses deeper.
    expect(analyseDocuments([deep], { sampleSize: 128, maxDepth: 4 }).maxDepth).toBe(6);
  });

  it('marks an array of objects one level down with the depth of its array', () => {
    const analysis = analyseDocuments([{ order: { lines: [{ sku: 'a' }] } }], DEFAULTS);
    expect(field(analysis.fields, 'order.lines[]')).toMatchObject({ depth: 2, dominantType: 'array' });
    expect(analysis.maxDepth).toBe(2);
  });
});

describe('per-path statistics', () => {
  it('counts integers as floats when both occur', () => {
    const analysis = analyseDocuments([{ price: 1 }, { price: 2.5 }, { price: 3 }], DEFAULTS);
    expect(field(analysis.fields, 'price')).toMatchObject({
      typeCounts: { float: 3 },
      dominantType: 'float',
      typeStability: 1,
    });
  });

  it('keeps whole numbers integer when no fraction occurs', () => {
    const analysis = analyseDocuments([{ n: 1 }, { n: 2.0 }, { n: -7 }], DEFAULTS);
    expect(field(analysis.fields, 'n')).toMatchObject({
      typeCounts: { integer: 3 },
      dominantType: 'integer',
    });
  });

  it('does not let nulls lower the type stability', () => {
    const analysis = analyseDocuments([{ qty: 1 }, { qty: null }, { qty: 2 }], DEFAULTS);
    expect(field(analysis.fields, 'qty')).toMatchObject({
      presence: 3,
      nullCount: 1,
      dominantType: 'integer',
      typeStability: 1,
    });
    expect(analysis.typeStability).toBe(1);
  });

  it('calls a path that was only ever null `null`, with stability 1', () => {
    const analysis = analyseDocuments([{ note: null }, { note: null }], DEFAULTS);
    expect(field(analysis.fields, 'note')).toMatchObject({
      typeCounts: {},
      dominantType: 'null',
      typeStability: 1,
      nullCount: 2,
    });
  });

  it('breaks dominant-type ties in the order string, float, integer, boolean, array, object', () => {
    const pairs: [unknown, unknown, string][] = [
      [1.5, 'a', 'string'],
      [true, 1, 'integer'],
      [[], true, 'boolean'],
      [{}, [], 'array'],
      [{}, 'a', 'string'],
    ];
    for (const [first, second, expected] of pairs) {
      const stats = field(analyseDocuments([{ v: first }, { v: second }], DEFAULTS).fields, 'v');
      expect(stats.dominantType).toBe(expected);
      expect(stats.typeStability).toBe(0.5);
    }
  });

  it('takes the most frequent type and its share of non-null values', () => {
    const analysis = analyseDocuments([{ v: 1.5 }, { v: 'x' }, { v: 2.5 }, { v: null }], DEFAULTS);
    expect(field(analysis.fields, 'v')).toMatchObject({ dominantType: 'float', typeStability: 2 / 3 });
  });

  it('measures string length in characters', () => {
    const analysis = analyseDocuments([{ s: '😀😀' }, { s: 'abc' }, { s: 12345678 }], DEFAULTS);
    expect(field(analysis.fields, 's').maxLength).toBe(3);
  });

  it('ranks paths by first appearance across the sample', () => {
    const analysis = analyseDocuments([{ b: 1 }, { a: 1, b: 2 }, { c: { d: 1 } }], DEFAULTS);
    expect(analysis.fields.map((stats) => [stats.path, stats.firstSeen])).toEqual([
      ['b', 0],
      ['a', 1],
      ['c', 2],
      ['c.d', 3],
    ]);
    expect(analysis.topLevelFields).toEqual(['b', 'a', 'c']);
  });
});

describe('summary', () => {
  it('matches the specification example, structure hash included', () => {
    const analysis = analyseDocuments([{ name: 'a', age: 1 }], DEFAULTS);
    expect(analysis).toMatchObject({
      documentsAnalyzed: 1,
      topLevelKeys: 2,
      maxDepth: 1,
      fieldStability: 1,
      typeStability: 1,
      hasArrayOfObjects: false,
      structureHash: '4b05bfed633ceb1b4a4d9147ffeab6a76afe99e6338cff3ef54b60d5da863600',
      topLevelFields: ['name', 'age'],
    });
  });

  it('averages presence over depth-1 paths and stability over all paths', () => {
    const analysis = analyseDocuments([{ a: 1, b: { c: 'x' } }, { a: 'two' }], DEFAULTS);
    // depth-1 presence: a 1, b 0.5; type stability: a 0.5, b 1, b.c 1
    expect(analysis.fieldStability).toBe(0.75);
    expect(analysis.typeStability).toBe((0.5 + 1 + 1) / 3);
  });

  it('gives one structure hash per structure, whatever the key order or values', () => {
    const first = analyseDocuments([{ id: 1, tags: ['x'], meta: { a: true } }], DEFAULTS);
    const second = analyseDocuments([{ meta: { a: false }, tags: [], id: 99 }], DEFAULTS);
    const retyped = analyseDocuments([{ id: '1', tags: ['x'], meta: { a: true } }], DEFAULTS);
    expect(second.structureHash).toBe(first.structureHash);
    expect(retyped.structureHash).not.toBe(first.structureHash);
  });

  it('keeps odd keys as plain own data', () => {
    const documents = [JSON.parse('{"__proto__": {"x": 1}, "constructor": "c"}') as Record<string, unknown>];
    const analysis = analyseDocuments(documents, DEFAULTS);
    expect(analysis.topLevelFields).toEqual(['__proto__', 'constructor']);
    expect(field(analysis.fields, '__proto__.x').dominantType).toBe('integer');
  });
});
