import { describe, expect, it } from 'vitest';
import {
  contentTerms,
  estimateTokens,
  normalizeText,
  queryTerms,
  termFrequencies,
} from '../../../src/domain/text/analysis.js';
import { STOP_WORDS } from '../../../src/domain/text/stopwords.js';

describe('normalizeText', () => {
  it('applies NFKC, unifies line ends and collapses runs of spaces', () => {
    expect(normalizeText('ﬁle  one\r\ntwo\t\t three\rfour \n five\u00a0six')).toBe(
      'file one\ntwo three\nfour\nfive six',
    );
  });

  it('keeps at most one blank line and trims', () => {
    expect(normalizeText('  a\n\n\n\nb  ')).toBe('a\n\nb');
  });
});

describe('estimateTokens', () => {
  it('is max(1, floor(chars / 4)) for non-empty text and 0 for empty text', () => {
    expect(estimateTokens('')).toBe(0);
    expect(estimateTokens('a')).toBe(1);
    expect(estimateTokens('abcdefg')).toBe(1);
    expect(estimateTokens('abcdefgh')).toBe(2);
    expect(estimateTokens('x'.repeat(1203))).toBe(300);
  });
});

describe('contentTerms', () => {
  it('lower-cases, drops stop words and 1-letter words, keeps numbers and stems with Porter2', () => {
    expect(contentTerms('The Runners were running 5 km to a café, e.g. in 17.25 minutes')).toEqual([
      'runner',
      'run',
      '5',
      'km',
      'café',
      '17',
      '25',
      'minut',
    ]);
  });

  it('splits on every character that is not a letter or digit, including apostrophes', () => {
    expect(contentTerms("don't stop-words; ID:42")).toEqual(['stop', 'word', 'id', '42']);
  });

  it('handles letters outside ASCII and NFKC forms', () => {
    expect(contentTerms('Ｆｕｌｌｗｉｄｔｈ Größe 東京')).toEqual(['fullwidth', 'größe', '東京']);
  });

  it('bundles a standard English stop-word list', () => {
    expect(STOP_WORDS.size).toBeGreaterThan(140);
    for (const word of ['the', 'and', 'of', 'is', 'what', 'which', 'don'])
      expect(STOP_WORDS.has(word)).toBe(true);
    expect(STOP_WORDS.has('revenue')).toBe(false);
  });

  it('query terms are distinct, in order of first appearance', () => {
    expect(queryTerms('Revenue and revenues of the revenue team')).toEqual(['revenu', 'team']);
  });
});

describe('termFrequencies', () => {
  it('counts each content term and the total', () => {
    const result = termFrequencies('Cats chase cats; the cat sleeps. constructor');
    expect(result.count).toBe(6);
    expect({ ...result.terms }).toEqual({ cat: 3, chase: 1, sleep: 1, constructor: 1 });
    expect(JSON.parse(JSON.stringify(result.terms))).toEqual({ cat: 3, chase: 1, sleep: 1, constructor: 1 });
  });
});
