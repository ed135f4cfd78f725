// The offline extractive answerer and citation helpers (spec §3.7): deterministic, no model. Sentences of the
// retrieved chunks are scored by the idf of the query terms they contain, the best ones are quoted verbatim
// with `[n]` markers, and each cited chunk gets a snippet with highlight offsets.
import { contentTermOf, contentTerms, estimateTokens, forEachWord, queryTerms } from './analysis.js';
import { splitSentences } from './chunk.js';

export interface ContextChunk {
  chunkId: number;
  documentId: number;
  storeId: number;
  title: string;
  filename: string;
  mimeType: string;
  page: number | null;
  text: string;
  score: number;
}

export interface ExtractiveOptions {
  /** how many sentences to answer with (`RAG_ANSWER_SENTENCES`) */
  sentences: number;
  /**
   * summary intent (spec §3.6): the chunks are the summary context; the first two sentences of each are quoted
   * in chunk order, whether or not they contain query terms
   */
  summary?: boolean;
}

export interface ExtractiveAnswer {
  /** one text-delta each: `sentence [n]`, every part after the first starting with a space */
  parts: string[];
  /** the cited chunks in citation-number order (`[1]` is `cited[0]`) */
  cited: ContextChunk[];
  /** for each cited chunk, the first sentence quoted from it (the snippet's anchor) */
  citedSentences: string[];
}

interface ScoredSentence {
  text: string;
  rank: number;
  position: number;
  score: number;
}

const SUMMARY_SENTENCES_PER_CHUNK = 2;
const SNIPPET_LIMIT = 400;
const HIGHLIGHT_LIMIT = 20;
/** how far the window edges move to avoid cutting a word */
const WORD_EDGE_SLACK = 30;

function scoreSentences(
  question: string,
  chunks: readonly ContextChunk[],
  idf: (term: string) => number,
): ScoredSentence[] {
  const wanted = new Set(queryTerms(question));
  const scored: ScoredSentence[] = [];
  if (wanted.size === 0) return scored;
  chunks.forEach((chunk, rank) => {
    splitSentences(chunk.text).forEach((text, position) => {
      const matched = new Set(contentTerms(text).filter((term) => wanted.has(term)));
      if (matched.size === 0) return;
      let weight = 0;
      for (const term of matched) weight += idf(term);
      const score = weight / Math.sqrt(1 + estimateTokens(text) / 25) + 0.1 / (rank + 1);
      scored.push({ text, rank, position, score });
    });
  });
  return scored.sort((a, b) => b.score - a.score || a.rank - b.rank || a.position - b.position);
}

function summarySentences(chunks: readonly ContextChunk[]): ScoredSentence[] {
  return chunks.flatMap((chunk, rank) =>
    splitSentences(chunk.text)
      .slice(0, SUMMARY_SENTENCES_PER_CHUNK)
      .map((text, position) => ({ text, rank, position, score: 0 })),
  );
}

function dedupeKey(sentence: string): string {
  return sentence.toLowerCase().replace(/\s+/g, '');
}

/**
 * The offline answer: the best `sentences` sentences containing ≥ 1 query term, scored
 * `Σ idf(distinct query terms) / sqrt(1 + tokens/25) + 0.1/(chunk rank + 1)`, de-duplicated
 * (case/space-insensitive), each quoted verbatim and followed by ` [n]` (n numbered by first use). No part when
 * nothing qualifies (the caller then refuses).
 */
export function extractiveAnswer(
  question: string,
  chunks: readonly ContextChunk[],
  idf: (term: string) => number,
  options: ExtractiveOptions,
): ExtractiveAnswer {
  const ranked = options.summary ? summarySentences(chunks) : scoreSentences(question, chunks, idf);
  const limit = options.summary ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(options.sentences));
  const seen = new Set<string>();
  const numbers = new Map<number, number>(); // chunk rank → citation number
  const answer: ExtractiveAnswer = { parts: [], cited: [], citedSentences: [] };
  for (const sentence of ranked) {
    if (answer.parts.length >= limit) break;
    const key = dedupeKey(sentence.text);
    if (seen.has(key)) continue;
    seen.add(key);
    let number = numbers.get(sentence.rank);
    if (number === undefined) {
      number = numbers.size + 1;
      numbers.set(sentence.rank, number);
      answer.cited.push(chunks[sentence.rank] as ContextChunk);
      answer.citedSentences.push(sentence.text);
    }
    answer.parts.push(`${answer.parts.length > 0 ? ' ' : ''}${sentence.text} [${number}]`);
  }
  return answer;
}

/** Citation numbers of `[n]` (and `[n, m]`) markers in order of first use. */
export function citedNumbers(answer: string): number[] {
  const numbers: number[] = [];
  for (const match of answer.matchAll(/\[(\d+(?:\s*,\s*\d+)*)\]/g)) {
    for (const item of (match[1] as string).split(',')) {
      const number = Number(item.trim());
      if (number >= 1 && !numbers.includes(number)) numbers.push(number);
    }
  }
  return numbers;
}

function isSpace(code: number | undefined): boolean {
  return code === undefined || code === 32;
}

/** Start of the 400-char window: centred on the anchor, which stays whole when it fits. */
function windowStart(text: string, anchor: number, anchorLength: number): number {
  const centred =
    anchorLength >= SNIPPET_LIMIT ? anchor : anchor - Math.floor((SNIPPET_LIMIT - anchorLength) / 2);
  return Math.max(0, Math.min(centred, text.length - SNIPPET_LIMIT));
}

function firstTermOffset(text: string, terms: ReadonlySet<string>): number {
  let found = -1;
  forEachWord(text, (start, end, isNumber) => {
    if (found < 0 && terms.has(contentTermOf(text.slice(start, end).toLowerCase(), isNumber) ?? ''))
      found = start;
  });
  return Math.max(0, found);
}

/**
 * The source snippet of a cited chunk and its highlights: the whitespace-collapsed chunk text, or when longer
 * than 400 chars a 400-char window around the cited sentence (or the first query term). Highlights are
 * `[start, end)` offsets of whole words whose content term is a query term (case-insensitive, stem-aware),
 * at most 20, sorted.
 */
export function snippetAndHighlights(
  chunkText: string,
  queryTermList: readonly string[],
  citedSentence?: string,
): { snippet: string; highlights: [number, number][] } {
  const terms = new Set(queryTermList);
  const collapsed = chunkText.replace(/\s+/g, ' ').trim();
  let snippet = collapsed;
  if (collapsed.length > SNIPPET_LIMIT) {
    const sentence = citedSentence?.replace(/\s+/g, ' ').trim() ?? '';
    const sentenceAt = sentence === '' ? -1 : collapsed.indexOf(sentence);
    const start =
      sentenceAt >= 0
        ? windowStart(collapsed, sentenceAt, sentence.length)
        : windowStart(collapsed, firstTermOffset(collapsed, terms), 0);
    let from = start;
    let to = start + SNIPPET_LIMIT;
    // do not cut words in half at the window's edges (the cited sentence is never shortened)
    if (from > 0 && !isSpace(collapsed.charCodeAt(from - 1)) && (sentenceAt < 0 || from !== sentenceAt)) {
      const space = collapsed.indexOf(' ', from);
      if (space >= 0 && space - from < WORD_EDGE_SLACK) from = space + 1;
    }
    if (to < collapsed.length && !isSpace(collapsed.charCodeAt(to))) {
      const space = collapsed.lastIndexOf(' ', to);
      const sentenceEnd = sentenceAt >= 0 ? sentenceAt + sentence.length : 0;
      if (space > from && to - space < WORD_EDGE_SLACK && space >= sentenceEnd) to = space;
    }
    snippet = collapsed.slice(from, to).trim();
  }
  const highlights: [number, number][] = [];
  if (terms.size > 0) {
    forEachWord(snippet, (start, end, isNumber) => {
      if (highlights.length >= HIGHLIGHT_LIMIT) return;
      const term = contentTermOf(snippet.slice(start, end).toLowerCase(), isNumber);
      if (term !== null && terms.has(term)) highlights.push([start, end]);
    });
  }
  return { snippet, highlights };
}
