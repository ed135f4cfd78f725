// Document chunking (spec §3.7). Headings are not chunk text: each one becomes the `parent_heading` of the
// chunks that follow it. The text between two headings on one page is one section, cut by a recursive
// character splitter: split on the first separator the text contains, merge the pieces greedily up to the
// chunk size, and cut pieces that are still too long with the next separator. Separators stay attached to the
// piece they end, so the pieces of a text concatenate back to it and no word is ever lost between chunks.
import type { DocumentBlock } from './extract.js';

export interface DocumentChunk {
  chunkIndex: number;
  text: string;
  parentHeading: string | null;
  pageNumber: number | null;
  elementType: 'text';
}

/** Paragraph, line, sentence, word, then code point (the last resort for over-long words). */
const SEPARATORS = ['\n\n', '\n', '. ', ' ', ''] as const;

interface Section {
  text: string;
  heading: string | null;
  page: number | null;
}

/** §3.7 chunking: headings become parent_heading; recursive character splitter with overlap; ≤ chunkSize chars; every source word in some chunk. */
export function chunkDocument(
  blocks: readonly DocumentBlock[],
  chunkSize: number,
  chunkOverlap: number,
): DocumentChunk[] {
  if (!Number.isInteger(chunkSize) || chunkSize < 2) {
    throw new RangeError(`Chunk size must be an integer ≥ 2, got ${chunkSize}`);
  }
  if (!Number.isInteger(chunkOverlap) || chunkOverlap < 0 || chunkOverlap >= chunkSize) {
    throw new RangeError(`Chunk overlap must be an integer in 0..${chunkSize - 1}, got ${chunkOverlap}`);
  }
  const chunks: DocumentChunk[] = [];
  for (const section of sections(blocks)) {
    for (const piece of splitRecursively(section.text, SEPARATORS, chunkSize, chunkOverlap)) {
      const text = piece.trim();
      if (text === '') continue;
      chunks.push({
        chunkIndex: chunks.length,
        text,
        parentHeading: section.heading,
        pageNumber: section.page,
        elementType: 'text',
      });
    }
  }
  return chunks;
}

/** Consecutive text blocks of one page under the same heading, joined as paragraphs. */
function sections(blocks: readonly DocumentBlock[]): Section[] {
  const result: Section[] = [];
  let heading: string | null = null;
  let current: Section | null = null;
  for (const block of blocks) {
    if (block.kind === 'heading') {
      const text = block.text.replace(/\s+/g, ' ').trim();
      if (text === '') continue;
      heading = text;
      current = null;
      continue;
    }
    if (block.text.trim() === '') continue;
    if (current !== null && current.page === block.page) {
      current.text += `\n\n${block.text}`;
    } else {
      current = { text: block.text, heading, page: block.page };
      result.push(current);
    }
  }
  return result;
}

/** `text` cut after every occurrence of `separator` (kept at the end of its piece); code points for "". */
function splitKeepingSeparator(text: string, separator: string): string[] {
  if (separator === '') return Array.from(text);
  const pieces: string[] = [];
  let start = 0;
  for (;;) {
    const at = text.indexOf(separator, start);
    if (at < 0) break;
    pieces.push(text.slice(start, at + separator.length));
    start = at + separator.length;
  }
  if (start < text.length) pieces.push(text.slice(start));
  return pieces;
}

function splitRecursively(
  text: string,
  separators: readonly string[],
  chunkSize: number,
  chunkOverlap: number,
): string[] {
  const separatorIndex = separators.findIndex((separator) => separator === '' || text.includes(separator));
  const separator = separators[separatorIndex] ?? '';
  const finer = separators.slice(separatorIndex + 1);
  const chunks: string[] = [];
  let fitting: string[] = [];
  for (const piece of splitKeepingSeparator(text, separator)) {
    if (piece.length <= chunkSize) {
      fitting.push(piece);
      continue;
    }
    if (fitting.length > 0) {
      chunks.push(...mergePieces(fitting, chunkSize, chunkOverlap));
      fitting = [];
    }
    // only a code point can be left without a finer separator, and it is never longer than 2 ≤ chunkSize
    if (finer.length === 0) chunks.push(piece);
    else chunks.push(...splitRecursively(piece, finer, chunkSize, chunkOverlap));
  }
  if (fitting.length > 0) chunks.push(...mergePieces(fitting, chunkSize, chunkOverlap));
  return chunks;
}

/**
 * Greedy merge of pieces (each ≤ chunkSize) into chunks ≤ chunkSize. When a chunk is full, the next one
 * starts with the last pieces of it that fit in chunkOverlap and still leave room for the next piece.
 */
function mergePieces(pieces: readonly string[], chunkSize: number, chunkOverlap: number): string[] {
  const chunks: string[] = [];
  const current: string[] = [];
  let total = 0;
  for (const piece of pieces) {
    if (current.length > 0 && total + piece.length > chunkSize) {
      chunks.push(current.join(''));
      while (current.length > 0 && (total > chunkOverlap || total + piece.length > chunkSize)) {
        total -= (current.shift() as string).length;
      }
    }
    current.push(piece);
    total += piece.length;
  }
  if (current.length > 0) chunks.push(current.join(''));
  return chunks;
}
