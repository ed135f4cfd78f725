import { describe, expect, it } from 'vitest';
import {
  BUILTIN_TEXT_MODEL,
  embedTextHashed,
  fnv1a32,
  TEXT_DIMENSION,
} from '../../src/domain/documents/hash-embedder.js';

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let index = 0; index < a.length; index++) dot += (a[index] as number) * (b[index] as number);
  return dot;
}

function norm(vector: Float32Array): number {
  return Math.sqrt(cosine(vector, vector));
}

describe('builtin-hash-v1 (spec §3.7)', () => {
  it('names the model and its dimension', () => {
    expect(BUILTIN_TEXT_MODEL).toBe('builtin-hash-v1');
    expect(TEXT_DIMENSION).toBe(768);
  });

  it('hashes with FNV-1a 32-bit over UTF-8 (published test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    // UTF-8 bytes, not UTF-16 code units: "é" is 0xC3 0xA9
    expect(fnv1a32('é')).toBe(0x1e9de8c1);
  });

  it('puts one token at index hash mod 768 with the sign of bit 31', () => {
    const vector = embedTextHashed('Hello');
    const hash = fnv1a32('hello');
    const expectedIndex = hash % 768;
    const expectedSign = hash >= 0x80000000 ? -1 : 1;
    expect(vector.length).toBe(768);
    expect(vector[expectedIndex]).toBeCloseTo(expectedSign, 6);
    expect([...vector].filter((value) => value !== 0)).toHaveLength(1);
  });

  it('weights features by 1 + ln(tf) and adds adjacent bigrams', () => {
    const vector = embedTextHashed('rain rain');
    const token = fnv1a32('rain');
    const bigram = fnv1a32('rain rain');
    expect(token % 768).not.toBe(bigram % 768);
    const expected = new Float64Array(768);
    expected[token % 768] = (token >= 0x80000000 ? -1 : 1) * (1 + Math.log(2));
    expected[bigram % 768] = bigram >= 0x80000000 ? -1 : 1;
    const length = Math.hypot(...expected);
    for (let index = 0; index < 768; index++) {
      expect(vector[index]).toBeCloseTo((expected[index] as number) / length, 6);
    }
  });

  it('is deterministic, L2-normalised and insensitive to case and NFKC variants', () => {
    const text = 'Quarterly revenue grew in the northern region';
    const first = embedTextHashed(text);
    expect(embedTextHashed(text)).toEqual(first);
    expect(norm(first)).toBeCloseTo(1, 5);
    expect(embedTextHashed('QUARTERLY Revenue grew in the ｎｏｒｔｈｅｒｎ region')).toEqual(first);
  });

  it('places similar texts closer than unrelated ones', () => {
    const fox = embedTextHashed('the quick brown fox jumps over the lazy dog');
    const similar = embedTextHashed('a quick brown fox jumped over the lazy dog');
    const unrelated = embedTextHashed('stock market prices fell sharply on monday');
    expect(cosine(fox, similar)).toBeGreaterThan(0.5);
    expect(cosine(fox, similar)).toBeGreaterThan(cosine(fox, unrelated) + 0.3);
  });

  it('gives the zero vector to a text without tokens', () => {
    expect([...embedTextHashed('- ! a ?')].every((value) => value === 0)).toBe(true);
  });
});
