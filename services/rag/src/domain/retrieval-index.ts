// In-memory retrieval structures behind `retrieval.ts`: per-document postings (typed arrays) and unit vectors
// (stored dimension-major), the versioned cache that holds them, and the two top-N scans (BM25, cosine).
// Everything here is synchronous and allocation-light: a search over 50 000 chunks touches only its terms'
// postings and its embedding's non-zero dimensions, in contiguous arrays, and keeps the best N in a bounded
// heap instead of sorting everything.

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;

/** BM25 idf: ln(1 + (N − df + 0.5)/(df + 0.5)). */
export function bm25Idf(totalChunks: number, documentFrequency: number): number {
  return Math.log(1 + (totalChunks - documentFrequency + 0.5) / (documentFrequency + 0.5));
}

/**
 * Per-document values keyed by (document id, index version), least recently used evicted beyond `maxSize`
 * (a size unit each value reports); concurrent loads of one key share one promise. A new version of a
 * document replaces the old one, so a re-indexed document is never scored with its previous chunks.
 */
export class VersionedCache<T> {
  private readonly entries = new Map<string, { value: T; size: number }>();
  private readonly loading = new Map<string, Promise<T>>();
  /** entries being built by `provide`: their value, or undefined once that failed */
  private readonly provided = new Map<string, Promise<T | undefined>>();
  private cachedSize = 0;

  constructor(
    private readonly maxSize: number,
    private readonly sizeOf: (value: T) => number,
  ) {}

  /** The cached value (marked most recently used) without waiting for anything; undefined when absent. */
  cached(documentId: number, version: string): T | undefined {
    const key = `${documentId}:${version}`;
    const cached = this.entries.get(key);
    if (cached === undefined) return undefined;
    // Re-inserting marks it most recently used (a Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, cached);
    return cached.value;
  }

  async get(documentId: number, version: string, load: () => Promise<T>): Promise<T> {
    const cached = this.cached(documentId, version);
    if (cached !== undefined) return cached;
    const key = `${documentId}:${version}`;
    const provided = await this.provided.get(key);
    if (provided !== undefined) return provided;
    let pending = this.loading.get(key);
    if (pending === undefined) {
      pending = load().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    const value = await pending;
    if (!this.entries.has(key)) this.put(documentId, version, value);
    return value;
  }

  /**
   * Caches what `value` resolves to as the document's entry at `version`; a `get` of that entry meanwhile waits
   * for it instead of loading (a document's index is being built from what this process wrote).
   */
  provide(documentId: number, version: string, value: Promise<T>): Promise<T> {
    const key = `${documentId}:${version}`;
    const provided = value.then((resolved) => {
      this.put(documentId, version, resolved);
      return resolved;
    });
    // A get meanwhile that finds it failed loads the entry itself; the caller of provide sees the failure.
    const settled = provided
      .catch(() => undefined)
      .finally(() => {
        if (this.provided.get(key) === settled) this.provided.delete(key);
      });
    this.provided.set(key, settled);
    return provided;
  }

  /** Caches `value` as the document's entry at `version`, replacing its other versions. */
  put(documentId: number, version: string, value: T): void {
    const key = `${documentId}:${version}`;
    for (const stale of [...this.entries.keys()]) if (stale.startsWith(`${documentId}:`)) this.drop(stale);
    const size = this.sizeOf(value);
    this.entries.set(key, { value, size });
    this.cachedSize += size;
    for (const oldest of this.entries.keys()) {
      if (this.cachedSize <= this.maxSize || oldest === key) break;
      this.drop(oldest);
    }
  }

  get empty(): boolean {
    return this.entries.size === 0;
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.cachedSize -= entry.size;
  }
}

// ---- lexical ----

export interface DocumentPostings {
  /** chunk ids, ascending */
  chunkIds: Int32Array;
  /** content-term count of each chunk (BM25 document length) */
  lengths: Int32Array;
  totalLength: number;
  /** global term ids present in the document, ascending */
  termIds: Int32Array;
  /** postings of termIds[k]: positions offsets[k] … offsets[k + 1] − 1 of `chunkIndexes`/`frequencies` */
  offsets: Int32Array;
  /** index into chunkIds, ascending within a term */
  chunkIndexes: Int32Array;
  frequencies: Int32Array;
  /** k1 × (1 − b + b × length / avgdl) per chunk for the avgdl of the last scope it was scored in */
  lengthNorms: { avgdl: number; values: Float64Array } | null;
  /**
   * BM25 term of each posting of termIds[k] (keyed by k) for the idf and avgdl of the last scope it was scored
   * in: a repeated term costs an addition per posting instead of a division (at most one float per posting)
   */
  contributions: Map<number, { idf: number; avgdl: number; values: Float64Array }>;
}

export interface PostingsRow {
  id: number;
  terms: Record<string, number> | string;
  term_count: number;
}

/** Term → id dictionary shared by the cached documents (a query looks each of its terms up once). */
export class TermDictionary {
  private ids = new Map<string, number>();

  idOf(term: string): number | undefined {
    return this.ids.get(term);
  }

  intern(term: string): number {
    let id = this.ids.get(term);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(term, id);
    }
    return id;
  }

  get size(): number {
    return this.ids.size;
  }

  clear(): void {
    this.ids = new Map();
  }
}

/** Postings of one document from its chunk rows (ascending chunk id). */
export function buildDocumentPostings(
  rows: readonly PostingsRow[],
  dictionary: TermDictionary,
): DocumentPostings {
  const chunkIds = new Int32Array(rows.length);
  const lengths = new Int32Array(rows.length);
  let totalLength = 0;
  // Pass 1: the document's distinct terms and how many chunks hold each.
  const localIndex = new Map<string, number>();
  const chunkCounts: number[] = [];
  const parsed: Record<string, number>[] = [];
  for (const [position, row] of rows.entries()) {
    chunkIds[position] = row.id;
    lengths[position] = row.term_count;
    totalLength += row.term_count;
    const terms =
      typeof row.terms === 'string' ? (JSON.parse(row.terms) as Record<string, number>) : row.terms;
    parsed.push(terms);
    for (const term in terms) {
      const local = localIndex.get(term);
      if (local === undefined) {
        localIndex.set(term, chunkCounts.length);
        chunkCounts.push(1);
      } else chunkCounts[local] = (chunkCounts[local] ?? 0) + 1;
    }
  }
  // Terms ordered by global id, so a query finds a term by binary search.
  const entries = [...localIndex.entries()].map(([term, local]) => ({ id: dictionary.intern(term), local }));
  entries.sort((a, b) => a.id - b.id);
  const termIds = new Int32Array(entries.length);
  const offsets = new Int32Array(entries.length + 1);
  const startOfLocal = new Int32Array(entries.length);
  let total = 0;
  for (const [rank, entry] of entries.entries()) {
    termIds[rank] = entry.id;
    offsets[rank] = total;
    startOfLocal[entry.local] = total;
    total += chunkCounts[entry.local] ?? 0;
  }
  offsets[entries.length] = total;
  // Pass 2: fill the postings in chunk order.
  const chunkIndexes = new Int32Array(total);
  const frequencies = new Int32Array(total);
  for (const [position, terms] of parsed.entries()) {
    for (const term in terms) {
      const local = localIndex.get(term) as number;
      const at = startOfLocal[local] as number;
      startOfLocal[local] = at + 1;
      chunkIndexes[at] = position;
      frequencies[at] = terms[term] ?? 0;
    }
  }
  return {
    chunkIds,
    lengths,
    totalLength,
    termIds,
    offsets,
    chunkIndexes,
    frequencies,
    lengthNorms: null,
    contributions: new Map(),
  };
}

/** Position of `value` in the ascending `array`, or −1. */
function binarySearch(array: Int32Array, value: number, from = 0, to = array.length): number {
  let low = from;
  let high = to - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const found = array[middle] as number;
    if (found === value) return middle;
    if (found < value) low = middle + 1;
    else high = middle - 1;
  }
  return -1;
}

export interface RankedChunk {
  id: number;
  score: number;
  /** position of the chunk's document in the list that was ranked */
  documentIndex: number;
}

/**
 * The `size` best of a stream of (id, score): highest score first, lower id first among equal scores (the
 * order a full sort would give). A bounded heap whose root is the worst kept entry.
 */
export class TopScores {
  private readonly ids: Int32Array;
  private readonly scores: Float64Array;
  /** a caller's value carried along with each entry (here: the index of the chunk's document) */
  private readonly tags: Int32Array;
  private count = 0;

  constructor(private readonly size: number) {
    this.ids = new Int32Array(Math.max(size, 0));
    this.scores = new Float64Array(Math.max(size, 0));
    this.tags = new Int32Array(Math.max(size, 0));
  }

  /** Whether (id, score) ranks below (otherId, otherScore). */
  private static worse(score: number, id: number, otherScore: number, otherId: number): boolean {
    return score < otherScore || (score === otherScore && id > otherId);
  }

  /** The lowest score a new entry must beat (or tie with a lower id) once the heap is full. */
  get floor(): number {
    return this.count < this.size ? Number.NEGATIVE_INFINITY : (this.scores[0] as number);
  }

  offer(id: number, score: number, tag = 0): void {
    const { ids, scores, tags } = this;
    if (this.size <= 0) return;
    if (this.count < this.size) {
      let child = this.count++;
      while (child > 0) {
        const parent = (child - 1) >> 1;
        if (!TopScores.worse(score, id, scores[parent] as number, ids[parent] as number)) break;
        ids[child] = ids[parent] as number;
        scores[child] = scores[parent] as number;
        tags[child] = tags[parent] as number;
        child = parent;
      }
      ids[child] = id;
      scores[child] = score;
      tags[child] = tag;
      return;
    }
    if (!TopScores.worse(scores[0] as number, ids[0] as number, score, id)) return;
    // Sift the new entry down from the root.
    let parent = 0;
    const count = this.count;
    for (;;) {
      const left = 2 * parent + 1;
      if (left >= count) break;
      const right = left + 1;
      let worst = left;
      if (
        right < count &&
        TopScores.worse(
          scores[right] as number,
          ids[right] as number,
          scores[left] as number,
          ids[left] as number,
        )
      )
        worst = right;
      if (!TopScores.worse(scores[worst] as number, ids[worst] as number, score, id)) break;
      ids[parent] = ids[worst] as number;
      scores[parent] = scores[worst] as number;
      tags[parent] = tags[worst] as number;
      parent = worst;
    }
    ids[parent] = id;
    scores[parent] = score;
    tags[parent] = tag;
  }

  /** The kept entries, best first. */
  sorted(): RankedChunk[] {
    const result: RankedChunk[] = [];
    for (let index = 0; index < this.count; index++)
      result.push({
        id: this.ids[index] as number,
        score: this.scores[index] as number,
        documentIndex: this.tags[index] as number,
      });
    return result.sort((a, b) => b.score - a.score || a.id - b.id);
  }
}

/** One score buffer shared by both scans and reused across searches (safe: the scans never await). */
let scratch = new Float64Array(0);
function scratchOf(length: number): Float64Array {
  if (scratch.length < length) scratch = new Float64Array(Math.max(length, scratch.length * 2));
  return scratch;
}

function lengthNormsOf(postings: DocumentPostings, avgdl: number): Float64Array {
  const memo = postings.lengthNorms;
  if (memo !== null && memo.avgdl === avgdl) return memo.values;
  const values = new Float64Array(postings.lengths.length);
  for (let chunk = 0; chunk < values.length; chunk++)
    values[chunk] = BM25_K1 * (1 - BM25_B + (BM25_B * (postings.lengths[chunk] as number)) / avgdl);
  postings.lengthNorms = { avgdl, values };
  return values;
}

/** idf × tf × (k1 + 1) / (tf + norm) of each posting of the document's k-th term. */
function contributionsOf(
  postings: DocumentPostings,
  termPosition: number,
  idf: number,
  avgdl: number,
): Float64Array {
  const memo = postings.contributions.get(termPosition);
  if (memo !== undefined && memo.idf === idf && memo.avgdl === avgdl) return memo.values;
  const norms = lengthNormsOf(postings, avgdl);
  const start = postings.offsets[termPosition] as number;
  const values = new Float64Array((postings.offsets[termPosition + 1] as number) - start);
  for (let index = 0; index < values.length; index++) {
    const tf = postings.frequencies[start + index] as number;
    const chunk = postings.chunkIndexes[start + index] as number;
    values[index] = (idf * tf * (BM25_K1 + 1)) / (tf + (norms[chunk] as number));
  }
  postings.contributions.set(termPosition, { idf, avgdl, values });
  return values;
}

export interface LexicalRanking {
  totalChunks: number;
  /** df of each query term over the scope, in query-term order */
  documentFrequencies: number[];
  /** best first (score desc, chunk id asc), at most `limit`, only chunks holding a query term */
  ranked: RankedChunk[];
  /** how many query terms the chunk holds; 0 for chunks out of scope */
  matched: (chunkId: number, documentIndex: number) => number;
}

/**
 * BM25 (k1, b, the spec's idf) over the chunks of `documents` for the query terms' dictionary ids (undefined:
 * a term no cached document holds).
 */
export function rankLexical(
  documents: readonly DocumentPostings[],
  termIds: readonly (number | undefined)[],
  limit: number,
): LexicalRanking {
  let totalChunks = 0;
  let totalLength = 0;
  for (const postings of documents) {
    totalChunks += postings.chunkIds.length;
    totalLength += postings.totalLength;
  }
  const avgdl = totalChunks === 0 ? 1 : Math.max(totalLength / totalChunks, 1e-9);
  const termCount = termIds.length;
  // Postings range [start, end) of query term t in document d at ranges[(d × termCount + t) × 2].
  const ranges = new Int32Array(documents.length * termCount * 2);
  // Position of query term t among document d's terms (−1: absent) at termPositions[d × termCount + t].
  const termPositions = new Int32Array(documents.length * termCount).fill(-1);
  const documentFrequencies = new Array<number>(termCount).fill(0);
  for (const [documentIndex, postings] of documents.entries()) {
    for (let term = 0; term < termCount; term++) {
      const id = termIds[term];
      const at = id === undefined ? -1 : binarySearch(postings.termIds, id);
      if (at < 0) continue;
      termPositions[documentIndex * termCount + term] = at;
      const slot = (documentIndex * termCount + term) * 2;
      ranges[slot] = postings.offsets[at] as number;
      ranges[slot + 1] = postings.offsets[at + 1] as number;
      documentFrequencies[term] =
        (documentFrequencies[term] as number) + (ranges[slot + 1] as number) - (ranges[slot] as number);
    }
  }
  const idfs = documentFrequencies.map((df) => bm25Idf(totalChunks, df));
  const top = new TopScores(limit);
  for (const [documentIndex, postings] of documents.entries()) {
    const chunkCount = postings.chunkIds.length;
    let touched = false;
    for (let term = 0; term < termCount && !touched; term++) {
      const slot = (documentIndex * termCount + term) * 2;
      touched = (ranges[slot + 1] as number) > (ranges[slot] as number);
    }
    if (!touched) continue;
    const scores = scratchOf(chunkCount);
    scores.fill(0, 0, chunkCount);
    const { chunkIndexes } = postings;
    for (let term = 0; term < termCount; term++) {
      const termPosition = termPositions[documentIndex * termCount + term] as number;
      if (termPosition < 0) continue;
      const contributions = contributionsOf(postings, termPosition, idfs[term] as number, avgdl);
      const start = postings.offsets[termPosition] as number;
      for (let index = 0; index < contributions.length; index++) {
        const chunk = chunkIndexes[start + index] as number;
        scores[chunk] = (scores[chunk] as number) + (contributions[index] as number);
      }
    }
    const { chunkIds } = postings;
    let floor = top.floor;
    for (let chunk = 0; chunk < chunkCount; chunk++) {
      const score = scores[chunk] as number;
      if (score <= 0 || score < floor) continue;
      top.offer(chunkIds[chunk] as number, score, documentIndex);
      floor = top.floor;
    }
  }
  const matched = (chunkId: number, documentIndex: number): number => {
    const postings = documents[documentIndex];
    if (postings === undefined) return 0;
    const chunk = binarySearch(postings.chunkIds, chunkId);
    if (chunk < 0) return 0;
    let count = 0;
    for (let term = 0; term < termCount; term++) {
      const slot = (documentIndex * termCount + term) * 2;
      const start = ranges[slot] as number;
      const end = ranges[slot + 1] as number;
      if (end > start && binarySearch(postings.chunkIndexes, chunk, start, end) >= 0) count++;
    }
    return count;
  };
  return { totalChunks, documentFrequencies, ranked: top.sorted(), matched };
}

// ---- vectors ----

export interface DocumentVectors {
  /** chunk ids, ascending */
  chunkIds: Int32Array;
  dim: number;
  /**
   * unit vectors stored dimension-major: component d of chunk i at d × chunkIds.length + i, so a query reads
   * each of its non-zero dimensions as one contiguous run
   */
  columns: Float32Array;
}

/** Scales `vector` to unit length in place (zero stays zero). */
function normalize(vector: Float32Array | Float64Array): void {
  let norm = 0;
  for (let index = 0; index < vector.length; index++) norm += (vector[index] as number) ** 2;
  norm = Math.sqrt(norm);
  if (norm > 0)
    for (let index = 0; index < vector.length; index++) vector[index] = (vector[index] as number) / norm;
}

/** A chunk's embedding, from its pgvector text `[x,y,…]` or a copy of the vector, scaled to unit length. */
export function unitVectorOf(embedding: string | Float32Array): Float32Array {
  const vector =
    typeof embedding === 'string' ? Float32Array.from(JSON.parse(embedding) as number[]) : embedding.slice();
  normalize(vector);
  return vector;
}

/**
 * Vectors of one document from its rows (ascending chunk id). `embedding` is the pgvector text `[x,y,…]`, or
 * what `unitVectorOf` made of it (a loader parsing each page of rows as it arrives).
 */
export function buildDocumentVectors(
  rows: readonly { id: number; embedding: string | Float32Array }[],
  dim: number,
): DocumentVectors {
  const count = rows.length;
  const chunkIds = new Int32Array(count);
  const columns = new Float32Array(count * dim);
  for (const [position, row] of rows.entries()) {
    chunkIds[position] = row.id;
    const vector = typeof row.embedding === 'string' ? unitVectorOf(row.embedding) : row.embedding;
    const used = Math.min(dim, vector.length);
    for (let d = 0; d < used; d++) columns[d * count + position] = vector[d] as number;
  }
  return { chunkIds, dim, columns };
}

function columnOf(columns: Float32Array, dimension: number, count: number): Float32Array {
  return columns.subarray(dimension * count, (dimension + 1) * count);
}

/**
 * The `limit` chunks most similar to `embedding` (cosine = dot product of unit vectors), as cosine distance,
 * nearest first (distance asc, chunk id asc). Only the query's non-zero dimensions are read.
 */
export function rankVectors(
  documents: readonly DocumentVectors[],
  embedding: Float32Array,
  limit: number,
): { id: number; distance: number; documentIndex: number }[] {
  const query = Float32Array.from(embedding);
  normalize(query);
  const dimensions: number[] = [];
  for (let index = 0; index < query.length; index++) if (query[index] !== 0) dimensions.push(index);
  const weights = Float64Array.from(dimensions, (index) => query[index] as number);
  const top = new TopScores(limit);
  for (const [documentIndex, { chunkIds, columns, dim }] of documents.entries()) {
    const count = chunkIds.length;
    if (count === 0) continue;
    const scores = scratchOf(count);
    scores.fill(0, 0, count);
    const used = dimensions.findIndex((dimension) => dimension >= dim);
    const usedCount = used < 0 ? dimensions.length : used;
    let k = 0;
    // Four dimensions per pass: a quarter of the score reads and writes, the same additions in the same order.
    for (; k + 4 <= usedCount; k += 4) {
      const first = columnOf(columns, dimensions[k] as number, count);
      const second = columnOf(columns, dimensions[k + 1] as number, count);
      const third = columnOf(columns, dimensions[k + 2] as number, count);
      const fourth = columnOf(columns, dimensions[k + 3] as number, count);
      const w1 = weights[k] as number;
      const w2 = weights[k + 1] as number;
      const w3 = weights[k + 2] as number;
      const w4 = weights[k + 3] as number;
      for (let position = 0; position < count; position++) {
        let score = scores[position] as number;
        score += (first[position] as number) * w1;
        score += (second[position] as number) * w2;
        score += (third[position] as number) * w3;
        score += (fourth[position] as number) * w4;
        scores[position] = score;
      }
    }
    for (; k < usedCount; k++) {
      const column = columnOf(columns, dimensions[k] as number, count);
      const weight = weights[k] as number;
      for (let position = 0; position < count; position++)
        scores[position] = (scores[position] as number) + (column[position] as number) * weight;
    }
    let floor = top.floor;
    for (let position = 0; position < count; position++) {
      const score = scores[position] as number;
      if (score < floor) continue;
      top.offer(chunkIds[position] as number, score, documentIndex);
      floor = top.floor;
    }
  }
  const ranked = top
    .sorted()
    .map(({ id, score, documentIndex }) => ({ id, distance: 1 - score, documentIndex }));
  return ranked.sort((a, b) => a.distance - b.distance || a.id - b.id);
}
