import { describe, expect, it } from 'vitest';
import { estimateTokens } from '../../../src/domain/text/analysis.js';
import { chunkBlocks, extractedTokenCount, splitSentences } from '../../../src/domain/text/chunk.js';

describe('splitSentences', () => {
  it('splits after . ! ? followed by whitespace and at line breaks', () => {
    expect(splitSentences('First one. Second one! Third one?\nFourth line\nFifth.')).toEqual([
      'First one.',
      'Second one!',
      'Third one?',
      'Fourth line',
      'Fifth.',
    ]);
  });

  it('never splits inside 17.25 or after e.g. / i.e.', () => {
    expect(
      splitSentences('The price rose to 17.25 USD, e.g. for fuel. Costs fell, i.e. overall. Done'),
    ).toEqual(['The price rose to 17.25 USD, e.g. for fuel.', 'Costs fell, i.e. overall.', 'Done']);
  });

  it('keeps closing quotes with their sentence and ignores a period not followed by whitespace', () => {
    expect(splitSentences('He said "stop." Then left. See example.com now.')).toEqual([
      'He said "stop."',
      'Then left.',
      'See example.com now.',
    ]);
  });

  it('returns nothing for blank text', () => {
    expect(splitSentences(' \n \n')).toEqual([]);
  });
});

function sentence(index: number): string {
  return `Sentence number ${index} talks about topic ${index * 7} in detail.`;
}

describe('chunkBlocks', () => {
  const page1 = Array.from({ length: 40 }, (_, index) => sentence(index)).join(' ');
  const page2 = Array.from({ length: 5 }, (_, index) => sentence(100 + index)).join('\n');
  const chunks = chunkBlocks(
    [
      { page: 1, text: page1 },
      { page: 2, text: page2 },
    ],
    { chunkTokens: 60, overlapTokens: 20 },
  );

  it('numbers chunks from 0 and never lets one span two pages', () => {
    expect(chunks.map((chunk) => chunk.ordinal)).toEqual(chunks.map((_, index) => index));
    for (const chunk of chunks) {
      const source = chunk.page === 1 ? page1 : page2;
      expect(source.includes(chunk.text)).toBe(true);
    }
    expect(chunks.filter((chunk) => chunk.page === 2).length).toBeGreaterThan(0);
    expect(chunks.at(-1)?.text.endsWith(sentence(104))).toBe(true);
  });

  it('keeps each chunk within chunkTokens, with the token estimate as count', () => {
    for (const chunk of chunks) {
      expect(chunk.tokenCount).toBe(estimateTokens(chunk.text));
      expect(chunk.tokenCount).toBeLessThanOrEqual(60);
    }
  });

  it('starts the next chunk with whole trailing sentences of the previous one, within overlapTokens', () => {
    const onPage1 = chunks.filter((chunk) => chunk.page === 1);
    expect(onPage1.length).toBeGreaterThan(3);
    for (let index = 1; index < onPage1.length; index++) {
      const previous = splitSentences((onPage1[index - 1] as { text: string }).text);
      const current = splitSentences((onPage1[index] as { text: string }).text);
      const first = current[0] as string;
      const at = previous.indexOf(first);
      expect(at).toBeGreaterThan(0);
      const overlap = previous.slice(at);
      expect(current.slice(0, overlap.length)).toEqual(overlap);
      expect(estimateTokens(overlap.join(' '))).toBeLessThanOrEqual(20);
      expect(current.length).toBeGreaterThan(overlap.length);
    }
  });

  it('covers every sentence of the document', () => {
    const seen = new Set(chunks.flatMap((chunk) => splitSentences(chunk.text)));
    for (let index = 0; index < 40; index++) expect(seen.has(sentence(index))).toBe(true);
    for (let index = 100; index < 105; index++) expect(seen.has(sentence(index))).toBe(true);
  });

  it('keeps line breaks between sentences inside a chunk', () => {
    expect(chunks.find((chunk) => chunk.page === 2)?.text).toContain('\n');
  });

  it('hard-splits a single over-long sentence, at whitespace where possible', () => {
    const words = Array.from({ length: 300 }, (_, index) => `word${index}`).join(' ');
    const split = chunkBlocks([{ page: null, text: words }], { chunkTokens: 50, overlapTokens: 10 });
    expect(split.length).toBeGreaterThan(5);
    for (const chunk of split) {
      expect(chunk.tokenCount).toBeLessThanOrEqual(50);
      expect(chunk.text).toMatch(/^word\d+( word\d+)*$/);
    }
    expect(split.map((chunk) => chunk.text).join(' ')).toBe(words);
    const unbroken = chunkBlocks([{ page: null, text: 'x'.repeat(1000) }], {
      chunkTokens: 50,
      overlapTokens: 0,
    });
    expect(unbroken.map((chunk) => chunk.text.length)).toEqual([203, 203, 203, 203, 188]);
  });

  it('without overlap, chunks partition the sentences', () => {
    const plain = chunkBlocks([{ page: null, text: page1 }], { chunkTokens: 60, overlapTokens: 0 });
    expect(plain.flatMap((chunk) => splitSentences(chunk.text))).toEqual(splitSentences(page1));
  });

  it('skips empty blocks and counts extracted tokens without overlap', () => {
    expect(chunkBlocks([{ page: 1, text: '' }], { chunkTokens: 300, overlapTokens: 50 })).toEqual([]);
    expect(
      extractedTokenCount([
        { page: 1, text: 'abcdefgh' },
        { page: 2, text: 'abc' },
      ]),
    ).toBe(3);
  });
});
