// Sentence boundaries (spec §3.7) and chunking (spec §3.5 step 3). A chunk is a contiguous slice of one block,
// so the line breaks between its sentences survive; consecutive chunks of a block share whole trailing
// sentences as overlap.
import { estimateTokens } from './analysis.js';
import type { TextBlock } from './parse.js';

export interface ChunkDraft {
  /** 0-based position in the document */
  ordinal: number;
  page: number | null;
  text: string;
  tokenCount: number;
}

export interface ChunkOptions {
  chunkTokens: number;
  overlapTokens: number;
}

/** Words that end with a period without ending the sentence. */
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'vs', 'cf', 'fig', 'approx']);

function isWhitespace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13) || code === 0xa0 || code === 0x3000 || code === 0x2028;
}

/** Closing quotes and brackets that stay with the sentence they close. */
function isCloser(code: number): boolean {
  return (
    code === 34 ||
    code === 39 ||
    code === 41 ||
    code === 93 ||
    code === 125 ||
    code === 0xbb ||
    code === 0x2019 ||
    code === 0x201d
  );
}

function isAsciiLetter(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

/**
 * True when the period at `dot` belongs to an abbreviation: a token with a period between letters (`e.g.`,
 * `i.e.`, `U.S.`) or a listed title/abbreviation (`Dr.`).
 */
function isAbbreviation(text: string, dot: number): boolean {
  let tokenStart = dot;
  while (tokenStart > 0 && !isWhitespace(text.charCodeAt(tokenStart - 1))) tokenStart--;
  for (let index = tokenStart + 1; index < dot; index++) {
    if (
      text.charCodeAt(index) === 46 &&
      isAsciiLetter(text.charCodeAt(index - 1)) &&
      isAsciiLetter(text.charCodeAt(index + 1))
    ) {
      return true;
    }
  }
  let wordStart = dot;
  while (wordStart > tokenStart && isAsciiLetter(text.charCodeAt(wordStart - 1))) wordStart--;
  return dot - wordStart <= 6 && ABBREVIATIONS.has(text.slice(wordStart, dot).toLowerCase());
}

/**
 * Sentence spans of `text` as a flat list `[start0, end0, start1, end1, …]` (trimmed, non-empty). A boundary is
 * `.`, `!` or `?` (plus closing quotes/brackets) followed by whitespace or the end, or a line break; a period
 * inside a token (`17.25`) or of an abbreviation (`e.g.`) never ends a sentence.
 */
export function sentenceSpans(text: string): number[] {
  const spans: number[] = [];
  const length = text.length;
  let start = -1;
  let lastContent = -1;
  const close = (end: number) => {
    if (start >= 0) spans.push(start, end);
    start = -1;
  };
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === 10) {
      close(lastContent + 1);
      continue;
    }
    if (isWhitespace(code)) continue;
    if (start < 0) start = index;
    lastContent = index;
    if (code !== 46 && code !== 33 && code !== 63) continue;
    let after = index + 1;
    while (after < length && isCloser(text.charCodeAt(after))) after++;
    if (after < length && !isWhitespace(text.charCodeAt(after))) continue;
    if (code === 46 && isAbbreviation(text, index)) continue;
    close(after);
    index = after - 1;
  }
  close(lastContent + 1);
  return spans;
}

/** The sentences of `text` (spec §3.7 boundaries), trimmed, without empty ones. */
export function splitSentences(text: string): string[] {
  const spans = sentenceSpans(text);
  const sentences: string[] = [];
  for (let index = 0; index < spans.length; index += 2) {
    sentences.push(text.slice(spans[index] as number, spans[index + 1] as number));
  }
  return sentences;
}

/** Splits spans longer than `maxChars` at whitespace (or hard, when a window has none). */
function boundedSpans(text: string, spans: number[], maxChars: number): number[] {
  const bounded: number[] = [];
  for (let index = 0; index < spans.length; index += 2) {
    let start = spans[index] as number;
    const end = spans[index + 1] as number;
    while (end - start > maxChars) {
      let cut = start + maxChars;
      let space = cut;
      while (space > start + maxChars / 2 && !isWhitespace(text.charCodeAt(space))) space--;
      if (isWhitespace(text.charCodeAt(space))) {
        cut = space;
        while (cut > start && isWhitespace(text.charCodeAt(cut - 1))) cut--;
      } else {
        const code = text.charCodeAt(cut - 1);
        if (code >= 0xd800 && code <= 0xdbff) cut--; // never split a surrogate pair
      }
      bounded.push(start, cut);
      start = cut;
      while (start < end && isWhitespace(text.charCodeAt(start))) start++;
    }
    if (end > start) bounded.push(start, end);
  }
  return bounded;
}

/** The largest text length whose token estimate is ≤ `tokens`. */
function charsForTokens(tokens: number): number {
  return tokens * 4 + 3;
}

/**
 * Packs the sentences of each block into chunks of ≤ `chunkTokens` estimated tokens; a chunk never spans two
 * blocks (pages). The next chunk of a block starts with the previous chunk's trailing whole sentences that fit
 * in `overlapTokens` (and leave room for at least one new sentence). Over-long sentences are hard-split.
 */
export function chunkBlocks(blocks: readonly TextBlock[], options: ChunkOptions): ChunkDraft[] {
  const chunkTokens = Math.max(1, Math.floor(options.chunkTokens));
  const maxChars = charsForTokens(chunkTokens);
  const overlapTokens = Math.min(Math.floor(options.overlapTokens), chunkTokens - 1);
  const overlapChars = overlapTokens > 0 ? charsForTokens(overlapTokens) : -1;
  const chunks: ChunkDraft[] = [];
  for (const block of blocks) {
    const text = block.text;
    const spans = boundedSpans(text, sentenceSpans(text), maxChars);
    const count = spans.length / 2;
    const startOf = (sentence: number) => spans[sentence * 2] as number;
    const endOf = (sentence: number) => spans[sentence * 2 + 1] as number;
    let first = 0;
    while (first < count) {
      const chunkStart = startOf(first);
      let last = first;
      while (last + 1 < count && endOf(last + 1) - chunkStart <= maxChars) last++;
      const chunkText = text.slice(chunkStart, endOf(last));
      chunks.push({
        ordinal: chunks.length,
        page: block.page,
        text: chunkText,
        tokenCount: estimateTokens(chunkText),
      });
      if (last + 1 >= count) break;
      let next = last + 1;
      while (
        next - 1 > first &&
        endOf(last) - startOf(next - 1) <= overlapChars &&
        endOf(last + 1) - startOf(next - 1) <= maxChars
      ) {
        next--;
      }
      first = next;
    }
  }
  return chunks;
}

/** Estimated tokens of the extracted text itself (no overlap): what indexing is charged for (spec §3.5). */
export function extractedTokenCount(blocks: readonly TextBlock[]): number {
  let total = 0;
  for (const block of blocks) total += estimateTokens(block.text);
  return total;
}
