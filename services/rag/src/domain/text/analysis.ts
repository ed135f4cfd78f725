// Text analysis shared by indexing, retrieval, embeddings and answers (spec §3.5 step 2, §3.6): normalisation,
// the token estimate and content terms. Hot paths scan character codes instead of running regular expressions
// per token, because a 10 MB document goes through here several times during indexing.
import { stem } from 'porter2';
import { STOP_WORDS } from './stopwords.js';

/**
 * NFKC, `\r\n`/`\r` → `\n`, runs of horizontal whitespace → one space, no spaces at line ends, at most one
 * blank line in a row, trimmed.
 */
export function normalizeText(text: string): string {
  return text
    .normalize('NFKC')
    .replace(/\r\n?/g, '\n')
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** `max(1, floor(chars / 4))` for non-empty text, 0 for empty text. */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.max(1, Math.floor(text.length / 4));
}

const OTHER = 0;
const LETTER = 1;
const DIGIT = 2;
const UNKNOWN = 3;
const LETTER_PATTERN = /^\p{L}$/u;
const DIGIT_PATTERN = /^\p{N}$/u;

/** Character class per UTF-16 code unit of the BMP, filled lazily outside ASCII. */
const bmpClasses = new Uint8Array(0x10000).fill(UNKNOWN);
for (let code = 0; code < 0x80; code++) {
  const isLetter = (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
  bmpClasses[code] = isLetter ? LETTER : code >= 48 && code <= 57 ? DIGIT : OTHER;
}
// Lone surrogates never form a word on their own; pairs are classified as whole code points below.
bmpClasses.fill(OTHER, 0xd800, 0xe000);

function classifyCodePoint(codePoint: number): number {
  const character = String.fromCodePoint(codePoint);
  return LETTER_PATTERN.test(character) ? LETTER : DIGIT_PATTERN.test(character) ? DIGIT : OTHER;
}

function bmpClass(code: number): number {
  let kind = bmpClasses[code] as number;
  if (kind === UNKNOWN) {
    kind = classifyCodePoint(code);
    bmpClasses[code] = kind;
  }
  return kind;
}

/**
 * Calls `onWord(start, end, isNumber)` for every maximal run of letters/digits of `text` (UTF-16 offsets).
 * `isNumber` is true when the run consists of digits only.
 */
export function forEachWord(
  text: string,
  onWord: (start: number, end: number, isNumber: boolean) => void,
): void {
  const length = text.length;
  let start = -1;
  let digitsOnly = true;
  let index = 0;
  while (index < length) {
    const code = text.charCodeAt(index);
    let kind: number;
    let width = 1;
    if (code >= 0xd800 && code <= 0xdbff && index + 1 < length) {
      const low = text.charCodeAt(index + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        kind = classifyCodePoint(((code - 0xd800) << 10) + (low - 0xdc00) + 0x10000);
        width = 2;
      } else {
        kind = OTHER;
      }
    } else {
      kind = code < 0x80 ? (bmpClasses[code] as number) : bmpClass(code);
    }
    if (kind === OTHER) {
      if (start >= 0) {
        onWord(start, index, digitsOnly);
        start = -1;
      }
    } else {
      if (start < 0) {
        start = index;
        digitsOnly = true;
      }
      if (kind === LETTER) digitsOnly = false;
    }
    index += width;
  }
  if (start >= 0) onWord(start, length, digitsOnly);
}

const stemCache = new Map<string, string>();
const STEM_CACHE_LIMIT = 100_000;

function cachedStem(word: string): string {
  let stemmed = stemCache.get(word);
  if (stemmed === undefined) {
    stemmed = stem(word);
    if (stemCache.size >= STEM_CACHE_LIMIT) stemCache.clear();
    stemCache.set(word, stemmed);
  }
  return stemmed;
}

/**
 * The content term of one already lower-cased word, or null when the word is not one: numbers are kept as
 * they are; other words need ≥ 2 characters, must not be stop words, and are reduced by Porter2.
 */
export function contentTermOf(lowerWord: string, isNumber: boolean): string | null {
  if (isNumber) return lowerWord;
  if (lowerWord.length < 2 || STOP_WORDS.has(lowerWord)) return null;
  return cachedStem(lowerWord);
}

function lowerNormalized(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

/** Content terms of `text` in order, with repeats (lower-cased, NFKC, stop words removed, Porter2 stems). */
export function contentTerms(text: string): string[] {
  const lower = lowerNormalized(text);
  const terms: string[] = [];
  forEachWord(lower, (start, end, isNumber) => {
    const term = contentTermOf(lower.slice(start, end), isNumber);
    if (term !== null) terms.push(term);
  });
  return terms;
}

/** Distinct content terms in order of first appearance (the query term set Q of spec §3.6). */
export function queryTerms(text: string): string[] {
  return [...new Set(contentTerms(text))];
}

/** Term → frequency of the content terms of `text`; `count` is the number of content terms (with repeats). */
export function termFrequencies(text: string): { terms: Record<string, number>; count: number } {
  return termFrequenciesOf(contentTerms(text));
}

/**
 * As `termFrequencies`, for terms that were already analysed (so a chunk is analysed once). The record has no
 * prototype, so a term such as `constructor` is an ordinary key (and building it is far cheaper than a Map).
 */
export function termFrequenciesOf(terms: readonly string[]): {
  terms: Record<string, number>;
  count: number;
} {
  const counts: Record<string, number> = Object.create(null);
  for (const term of terms) counts[term] = (counts[term] ?? 0) + 1;
  return { terms: counts, count: terms.length };
}
