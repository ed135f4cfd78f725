import { describe, expect, it } from 'vitest';
import { contentTerms } from '../../../src/domain/text/analysis.js';
import {
  fnv1a32,
  localEmbedding,
  localEmbeddingOfTerms,
  toPgVector,
} from '../../../src/domain/text/embedding.js';

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let index = 0; index < a.length; index++) dot += (a[index] as number) * (b[index] as number);
  return dot;
}

function norm(vector: Float32Array): number {
  return Math.sqrt(cosine(vector, vector));
}

describe('fnv1a32', () => {
  it('matches the published FNV-1a 32-bit test vectors over UTF-8', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(fnv1a32('é')).toBe(fnv1a32('\u00e9'));
    expect(fnv1a32('é')).not.toBe(fnv1a32('e'));
  });
});

describe('localEmbedding', () => {
  const text = 'The quarterly revenue of the northern region grew by 12 percent.';

  it('is deterministic and L2-normalised with the requested dimension', () => {
    const first = localEmbedding(text, 384);
    const second = localEmbedding(text, 384);
    expect(first).toBeInstanceOf(Float32Array);
    expect(first.length).toBe(384);
    expect(Array.from(first)).toEqual(Array.from(second));
    expect(norm(first)).toBeCloseTo(1, 6);
    expect(localEmbedding(text, 64).length).toBe(64);
  });

  it('is pinned: the same vector on every run and machine', () => {
    // a change to the recipe changes this; stored embeddings would then need `reindex --all`
    const vector = localEmbedding('alpha beta', 8);
    expect(toPgVector(vector)).toBe('[0.13245323,0,0,0.7947194,0.26490647,0,0,-0.52981293]');
  });

  it('places similar texts closer than unrelated ones', () => {
    const base = localEmbedding(text, 384);
    const similar = localEmbedding('Revenue in the northern region grew 12 percent this quarter.', 384);
    const unrelated = localEmbedding('Bake the bread at two hundred degrees until golden brown.', 384);
    expect(cosine(base, similar)).toBeGreaterThan(0.5);
    expect(cosine(base, similar)).toBeGreaterThan(cosine(base, unrelated) + 0.3);
  });

  it('shares character trigrams between related word forms', () => {
    const a = localEmbedding('internationalization', 384);
    const b = localEmbedding('internationally', 384);
    const c = localEmbedding('zebra', 384);
    expect(cosine(a, b)).toBeGreaterThan(cosine(a, c));
  });

  it('equals the embedding of the already analysed terms; text without content terms gives zeros', () => {
    expect(Array.from(localEmbeddingOfTerms(contentTerms(text), 384))).toEqual(
      Array.from(localEmbedding(text, 384)),
    );
    expect(Array.from(localEmbedding('the of and ...', 16))).toEqual(new Array(16).fill(0));
    expect(() => localEmbedding(text, 0)).toThrow(RangeError);
  });
});

describe('toPgVector', () => {
  it('writes the pgvector text form with up to 8 decimals', () => {
    expect(toPgVector(new Float32Array([0, 0.5, -0.25, 1, -0.0000000001, 0.123456789]))).toBe(
      '[0,0.5,-0.25,1,0,0.12345679]',
    );
    expect(toPgVector(new Float32Array([]))).toBe('[]');
  });

  it('round-trips a unit vector within float32 resolution', () => {
    const vector = localEmbedding('round trip of an embedding', 384);
    const parsed = JSON.parse(toPgVector(vector)) as number[];
    parsed.forEach((value, index) => {
      expect(Math.abs(value - (vector[index] as number))).toBeLessThan(1e-7);
    });
  });
});
