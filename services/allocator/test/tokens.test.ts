import { describe, expect, it } from 'vitest';
import { lexicalScore, queryTerms, termMatches, tokenize } from '../src/domain/tokens.js';

describe('tokenize (spec §3.9.2)', () => {
  it('splits camelCase and a digit followed by an upper-case letter', () => {
    expect(tokenize('camelCase')).toEqual(['camel', 'case']);
    expect(tokenize('invoice2024Final')).toEqual(['invoice2024', 'final']);
    // no boundary between two upper-case letters
    expect(tokenize('HTMLParser')).toEqual(['htmlparser']);
  });

  it('splits on every character that is not a letter or digit and drops single characters', () => {
    expect(tokenize('IMG_2041.jpg')).toEqual(['img', '2041', 'jpg']);
    expect(tokenize('a b cd e-f gh!')).toEqual(['cd', 'gh']);
    expect(tokenize('iPhone')).toEqual(['phone']);
    expect(tokenize('  ')).toEqual([]);
  });

  it('applies NFKC before lower-casing', () => {
    expect(tokenize('Straße')).toEqual(['straße']);
    expect(tokenize('ＳＴＲＡＳＳＥ ２０４１')).toEqual(['strasse', '2041']);
    expect(tokenize('ﬁle')).toEqual(['file']);
    // a decomposed accent is composed, so the word is not cut at the combining mark
    expect(tokenize('cafe\u0301 menu')).toEqual(['café', 'menu']);
  });

  it('keeps letters of every script', () => {
    expect(tokenize('Ελληνικά κείμενο, русский текст')).toEqual(['ελληνικά', 'κείμενο', 'русский', 'текст']);
  });
});

describe('queryTerms', () => {
  it('returns the distinct tokens in order of first appearance', () => {
    expect(queryTerms('Red red CAR, car and redCar')).toEqual(['red', 'car', 'and']);
  });
});

describe('termMatches', () => {
  it('matches equal tokens and prefixes of terms with at least three characters', () => {
    expect(termMatches('red', 'red')).toBe(true);
    expect(termMatches('red', 'reddish')).toBe(true);
    expect(termMatches('re', 're')).toBe(true);
    expect(termMatches('re', 'red')).toBe(false);
    expect(termMatches('car', 'scar')).toBe(false);
    expect(termMatches('reddish', 'red')).toBe(false);
  });
});

describe('lexicalScore', () => {
  it('is 0.5 + 0.5·m/T over the distinct terms, with the fields that matched in field order', () => {
    const fields = { filename: ['red', 'bike'], tags: ['cars', 'outdoor'], ocr: ['nothing'] };
    expect(lexicalScore(['red', 'car'], fields)).toEqual({ score: 1, matchedFields: ['filename', 'tags'] });
    expect(lexicalScore(['car', 'red', 'blue'], fields)).toEqual({
      score: 0.5 + 0.5 * (2 / 3),
      matchedFields: ['filename', 'tags'],
    });
    expect(lexicalScore(['outdoor', 'sky', 'sea', 'sun'], fields)).toEqual({
      score: 0.625,
      matchedFields: ['tags'],
    });
  });

  it('counts a term once even when several fields match it, and repeated terms once', () => {
    const fields = { filename: ['sunset'], labels: ['sunset', 'beach'] };
    expect(lexicalScore(['sunset', 'sunset', 'dog'], fields)).toEqual({
      score: 0.75,
      matchedFields: ['filename', 'labels'],
    });
  });

  it('is null when no term matches or there are no terms', () => {
    expect(lexicalScore(['zebra'], { filename: ['red'] })).toBeNull();
    expect(lexicalScore([], { filename: ['red'] })).toBeNull();
    expect(lexicalScore(['re'], { filename: ['red'] })).toBeNull();
  });
});
