import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkDocument, type DocumentChunk } from '../../src/domain/documents/chunk.js';
import { type DocumentBlock, extractDocument } from '../../src/domain/documents/extract.js';

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'allocator-chunk-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Distinct words w0 w1 … so that each word's position is known. */
function numberedWords(count: number, prefix = 'w'): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}${index}`);
}

function text(value: string, page: number | null = null): DocumentBlock {
  return { kind: 'text', text: value, page };
}

function heading(value: string, level = 1, page: number | null = null): DocumentBlock {
  return { kind: 'heading', text: value, page, level };
}

function wordsOf(chunks: readonly DocumentChunk[]): Set<string> {
  return new Set(chunks.flatMap((chunk) => chunk.text.split(/\s+/)));
}

describe('chunkDocument (spec §3.7)', () => {
  it('splits a 2 000-character Markdown section into ≥ 4 chunks ≤ 512 under its heading (acceptance 32)', async () => {
    const sentences: string[] = [];
    for (let index = 0; sentences.join(' ').length < 2000; index++) {
      sentences.push(`Sentence number ${index} talks about allocation of files and documents.`);
    }
    const body = sentences.join(' ');
    expect(body.length).toBeGreaterThanOrEqual(2000);
    const path = join(directory, 'notes.md');
    await writeFile(path, `# Heading\n\n${body}\n`);
    const document = await extractDocument(path, 'md');
    const chunks = chunkDocument(document.blocks, 512, 50);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    for (const chunk of chunks) {
      expect(chunk.text.length).toBeLessThanOrEqual(512);
      expect(chunk.parentHeading).toBe('Heading');
      expect(chunk.pageNumber).toBeNull();
      expect(chunk.elementType).toBe('text');
      // the heading is not chunk text
      expect(chunk.text).not.toContain('# Heading');
    }
    expect(chunks.map((chunk) => chunk.chunkIndex)).toEqual(chunks.map((_, index) => index));
    const covered = wordsOf(chunks);
    for (const word of body.split(' ')) expect(covered.has(word)).toBe(true);
  });

  it('starts each chunk with the tail of the previous one, up to the overlap', () => {
    const words = numberedWords(300);
    const chunks = chunkDocument([text(words.join(' '))], 100, 30);
    expect(chunks.length).toBeGreaterThan(5);
    for (let index = 1; index < chunks.length; index++) {
      const previous = (chunks[index - 1] as DocumentChunk).text;
      const current = (chunks[index] as DocumentChunk).text;
      const currentWords = current.split(' ');
      // the shared words are a suffix of the previous chunk and a prefix of this one, ≤ 30 characters
      let shared = 0;
      for (let count = 1; count < currentWords.length; count++) {
        if (previous.endsWith(` ${currentWords.slice(0, count).join(' ')}`)) shared = count;
      }
      expect(shared).toBeGreaterThan(0);
      expect(currentWords.slice(0, shared).join(' ').length).toBeLessThanOrEqual(30);
      // …and the rest is new
      expect(previous).not.toContain(currentWords[shared]);
    }
    const covered = wordsOf(chunks);
    for (const word of words) expect(covered.has(word)).toBe(true);
  });

  it('shares nothing between chunks when the overlap is 0', () => {
    const words = numberedWords(200);
    const chunks = chunkDocument([text(words.join(' '))], 80, 0);
    const seen = chunks.flatMap((chunk) => chunk.text.split(' '));
    expect(seen).toEqual(words);
    for (const chunk of chunks) expect(chunk.text.length).toBeLessThanOrEqual(80);
  });

  it('prefers paragraph, then line, then sentence boundaries', () => {
    const first = `First paragraph ${'alpha '.repeat(45).trim()}.`;
    const second = `Second paragraph ${'beta '.repeat(50).trim()}.`;
    const chunks = chunkDocument([text(`${first}\n\n${second}`)], 300, 40);
    expect(chunks.map((chunk) => chunk.text)).toEqual([first, second]);

    const sentenceA = `One ${'red '.repeat(30).trim()}.`;
    const sentenceB = `Two ${'green '.repeat(30).trim()}.`;
    const bySentence = chunkDocument([text(`${sentenceA} ${sentenceB}`)], 200, 0);
    expect(bySentence.map((chunk) => chunk.text)).toEqual([sentenceA, sentenceB]);
  });

  it('cuts a word longer than the chunk size, and nothing exceeds the size', () => {
    const long = 'x'.repeat(250);
    const chunks = chunkDocument([text(`short words ${long} end`)], 100, 10);
    for (const chunk of chunks) expect(chunk.text.length).toBeLessThanOrEqual(100);
    expect(chunks.map((chunk) => chunk.text).join('')).toContain('x'.repeat(100));
    expect(chunks[0]?.text).toBe('short words');
    expect(chunks.at(-1)?.text.endsWith('end')).toBe(true);
  });

  it('gives each chunk the latest heading and its page; text before any heading has none', () => {
    const chunks = chunkDocument(
      [
        text('Preface text.', 1),
        heading('Chapter One', 1, 1),
        text('Opening of chapter one.', 1),
        text('More of chapter one on the same page.', 1),
        text('Chapter one continues on page two.', 2),
        heading('Section 1.1', 2, 2),
        text('Inside the section.', 2),
      ],
      512,
      50,
    );
    expect(chunks).toEqual([
      { chunkIndex: 0, text: 'Preface text.', parentHeading: null, pageNumber: 1, elementType: 'text' },
      {
        chunkIndex: 1,
        text: 'Opening of chapter one.\n\nMore of chapter one on the same page.',
        parentHeading: 'Chapter One',
        pageNumber: 1,
        elementType: 'text',
      },
      {
        chunkIndex: 2,
        text: 'Chapter one continues on page two.',
        parentHeading: 'Chapter One',
        pageNumber: 2,
        elementType: 'text',
      },
      {
        chunkIndex: 3,
        text: 'Inside the section.',
        parentHeading: 'Section 1.1',
        pageNumber: 2,
        elementType: 'text',
      },
    ]);
  });

  it('drops empty text and trims chunks', () => {
    expect(chunkDocument([text('   \n\n  '), heading('Only a heading')], 512, 50)).toEqual([]);
    expect(chunkDocument([text('  padded  ')], 512, 50).map((chunk) => chunk.text)).toEqual(['padded']);
  });

  it('refuses sizes that cannot work', () => {
    expect(() => chunkDocument([text('x')], 1, 0)).toThrow(RangeError);
    expect(() => chunkDocument([text('x')], 100, 100)).toThrow(RangeError);
    expect(() => chunkDocument([text('x')], 100, -1)).toThrow(RangeError);
    expect(() => chunkDocument([text('x')], 10.5, 0)).toThrow(RangeError);
  });
});
