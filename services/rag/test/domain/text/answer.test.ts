import { describe, expect, it } from 'vitest';
import { queryTerms } from '../../../src/domain/text/analysis.js';
import {
  type ContextChunk,
  citedNumbers,
  extractiveAnswer,
  snippetAndHighlights,
} from '../../../src/domain/text/answer.js';

function chunk(chunkId: number, text: string): ContextChunk {
  return {
    chunkId,
    documentId: chunkId * 10,
    storeId: 1,
    title: `Doc ${chunkId}`,
    filename: `doc${chunkId}.md`,
    mimeType: 'text/markdown',
    page: null,
    text,
    score: 1 / chunkId,
  };
}

const idf = () => 1;

describe('extractiveAnswer', () => {
  const chunks = [
    chunk(
      1,
      'The company was founded in Oslo. The annual revenue reached 17.25 million euros in 2023, e.g. from exports.',
    ),
    chunk(2, 'Weather in Bergen is rainy. Employees enjoy the office.'),
  ];

  it('answers with the sentence holding the fact, verbatim, citing [1]', () => {
    const answer = extractiveAnswer('What was the annual revenue in 2023?', chunks, idf, { sentences: 3 });
    expect(answer.parts).toEqual([
      'The annual revenue reached 17.25 million euros in 2023, e.g. from exports. [1]',
    ]);
    expect(answer.cited.map((item) => item.chunkId)).toEqual([1]);
    expect(answer.citedSentences).toEqual([
      'The annual revenue reached 17.25 million euros in 2023, e.g. from exports.',
    ]);
  });

  it('numbers citations by first use, one part per sentence joined by one space', () => {
    const answer = extractiveAnswer(
      'Where was the company founded and how is the weather in Bergen?',
      chunks,
      idf,
      {
        sentences: 3,
      },
    );
    expect(answer.parts.join('')).toBe(
      'Weather in Bergen is rainy. [1] The company was founded in Oslo. [2]',
    );
    expect(answer.parts).toHaveLength(2);
    expect(answer.cited.map((item) => item.chunkId)).toEqual([2, 1]);
  });

  it('weights sentences by idf and keeps at most `sentences` of them, de-duplicated', () => {
    const repeated = [
      chunk(1, 'Alpha beta gamma.'),
      chunk(2, 'alpha  BETA gamma.'),
      chunk(3, 'Beta only here.'),
    ];
    const rareBeta = (term: string) => (term === 'beta' ? 5 : 1);
    const answer = extractiveAnswer('alpha beta', repeated, rareBeta, { sentences: 5 });
    expect(answer.parts).toEqual(['Alpha beta gamma. [1]', ' Beta only here. [2]']);
    expect(extractiveAnswer('alpha beta', repeated, rareBeta, { sentences: 1 }).parts).toEqual([
      'Alpha beta gamma. [1]',
    ]);
  });

  it('returns no parts when no sentence contains a query term', () => {
    expect(extractiveAnswer('quantum chromodynamics', chunks, idf, { sentences: 3 })).toEqual({
      parts: [],
      cited: [],
      citedSentences: [],
    });
    expect(extractiveAnswer('the of and', chunks, idf, { sentences: 3 }).parts).toEqual([]);
  });

  it('summary mode quotes the first two sentences of each context chunk', () => {
    const answer = extractiveAnswer('Summarize my uploads', chunks, idf, { sentences: 3, summary: true });
    expect(answer.parts.join('')).toBe(
      'The company was founded in Oslo. [1] The annual revenue reached 17.25 million euros in 2023, e.g. from exports. [1] Weather in Bergen is rainy. [2] Employees enjoy the office. [2]',
    );
  });
});

describe('citedNumbers', () => {
  it('lists markers in order of first use', () => {
    expect(citedNumbers('A [2]. B [1][2]. C [3, 4]. D [0] [x]')).toEqual([2, 1, 3, 4]);
    expect(citedNumbers('no citations')).toEqual([]);
  });
});

describe('snippetAndHighlights', () => {
  it('collapses whitespace and highlights whole-word, stem-aware, case-insensitive matches', () => {
    const result = snippetAndHighlights(
      'Revenue  grew.\nRevenues and REVENUE, prerevenue running',
      queryTerms('revenue run'),
    );
    expect(result.snippet).toBe('Revenue grew. Revenues and REVENUE, prerevenue running');
    expect(result.highlights).toEqual([
      [0, 7],
      [14, 22],
      [27, 34],
      [47, 54],
    ]);
    expect(result.highlights.map(([start, end]) => result.snippet.slice(start, end))).toEqual([
      'Revenue',
      'Revenues',
      'REVENUE',
      'running',
    ]);
  });

  it('cuts a long chunk to a 400-char window around the cited sentence', () => {
    const before = 'Filler words keep going here. '.repeat(30);
    const cited = 'The warranty lasts 24 months for every device.';
    const after = ' More filler text follows afterwards.'.repeat(30);
    const result = snippetAndHighlights(before + cited + after, queryTerms('warranty months'), cited);
    expect(result.snippet.length).toBeLessThanOrEqual(400);
    expect(result.snippet.length).toBeGreaterThan(350);
    expect(result.snippet).toContain(cited);
    const at = result.snippet.indexOf(cited);
    expect(at).toBeGreaterThan(100);
    expect(result.highlights.map(([start, end]) => result.snippet.slice(start, end))).toEqual([
      'warranty',
      'months',
    ]);
    expect(result.highlights[0]?.[0]).toBe(at + 4);
  });

  it('keeps at most 20 sorted highlights', () => {
    const result = snippetAndHighlights('budget '.repeat(30), ['budget']);
    expect(result.highlights).toHaveLength(20);
    const starts = result.highlights.map(([start]) => start);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    expect(snippetAndHighlights('nothing here', []).highlights).toEqual([]);
  });
});
