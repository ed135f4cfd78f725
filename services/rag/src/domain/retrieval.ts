// Hybrid retrieval (spec §3.6): BM25 over the lexical terms of the chunks in scope, cosine similarity over their
// embeddings, Reciprocal Rank Fusion of the two lists, a term-coverage gate, and the re-rank. The scope — DONE,
// live documents in live stores the caller owns — is part of every query (tenant isolation is never a filter
// applied afterwards).
import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { RagConfig } from '../config-types.js';
import { guardDatabase, type RagDb } from './database.js';
import { queryTerms as distinctQueryTerms } from './text/analysis.js';
import { splitSentences } from './text/chunk.js';
import { toPgVector } from './text/embedding.js';

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;

export interface RetrievalSettings {
  /** RAG_CANDIDATES: length of each ranked list (lexical, vector) */
  candidates: number;
  /** RAG_RRF_K */
  rrfK: number;
  /** RAG_MIN_TERM_COVERAGE */
  minTermCoverage: number;
  /** how many candidates to return (RAG_TOP_K for chat, the request's topK for /api/search) */
  topK: number;
}

export function retrievalSettings(
  config: Pick<RagConfig, 'ragCandidates' | 'ragRrfK' | 'ragMinTermCoverage' | 'ragTopK'>,
  topK: number = config.ragTopK,
): RetrievalSettings {
  return {
    candidates: config.ragCandidates,
    rrfK: config.ragRrfK,
    minTermCoverage: config.ragMinTermCoverage,
    topK,
  };
}

export interface Candidate {
  chunkId: number;
  documentId: number;
  storeId: number;
  ordinal: number;
  page: number | null;
  text: string;
  /** the document's display name (or its filename when that is empty) */
  title: string;
  filename: string;
  mimeType: string;
  lexicalScore: number;
  /** cosine similarity; null when the chunk is not in the vector list */
  vectorScore: number | null;
  /** RRF score over the lexical and vector lists */
  fused: number;
  /** matched query terms / |Q| */
  coverage: number;
  passesGate: boolean;
  createdAt: Date;
}

/** Metadata the chat's `metadataFilter` may restrict (spec §3.7): scalar or list values. */
export const METADATA_FILTER_COLUMNS = ['filename', 'mime_type', 'store_id', 'display_name'] as const;
type MetadataColumn = (typeof METADATA_FILTER_COLUMNS)[number];
type FilterScalar = string | number | boolean;

export interface SearchRequest {
  userId: number;
  storeIds: number[];
  query: string;
  config: RetrievalSettings;
  /** the query's embedding (same provider and dimension as the index); absent → lexical only */
  queryEmbedding?: Float32Array;
  metadataFilter?: Record<string, unknown>;
}

export interface SearchResult {
  /** Q: the distinct content terms of the query, in order of first appearance */
  queryTerms: string[];
  /** passing candidates first (coverage desc, fused desc, chunk id asc), then the rest by fused score; topK */
  candidates: Candidate[];
  /** BM25 idf over the scope (terms of Q; any other term counts as unseen) */
  idf: (term: string) => number;
}

/** BM25 idf: ln(1 + (N − df + 0.5)/(df + 0.5)). */
export function bm25Idf(totalChunks: number, documentFrequency: number): number {
  return Math.log(1 + (totalChunks - documentFrequency + 0.5) / (documentFrequency + 0.5));
}

/** Chunks a candidate must contain to pass: max(1, ceil(coverage × |Q|)); Infinity when Q is empty. */
export function requiredMatches(queryTermCount: number, minTermCoverage: number): number {
  if (queryTermCount === 0) return Number.POSITIVE_INFINITY;
  // The epsilon keeps 0.3 × 10 at 3 (binary floating point gives 3.0000000000000004).
  return Math.max(1, Math.ceil(minTermCoverage * queryTermCount - 1e-9));
}

const SUMMARY_INTENT = /\b(?:summar(?:y|ise|ize)|overview|outline|key\s+(?:points|findings))\b/i;

/** The question asks for a summary/overview (spec §3.6 summary intent). */
export function isSummaryIntent(question: string): boolean {
  return SUMMARY_INTENT.test(question);
}

/** Ranked candidates for `query` within the caller's scope. */
export async function searchCandidates(db: RagDb, request: SearchRequest): Promise<SearchResult> {
  const queryTerms = distinctQueryTerms(request.query);
  const settings = request.config;
  const storeIds = [...new Set(request.storeIds.filter((id) => Number.isSafeInteger(id)))];
  const filter = metadataCondition(request.metadataFilter);
  let totalChunks = 0;
  const documentFrequency = new Map<string, number>();
  const idf = (term: string) => bm25Idf(totalChunks, documentFrequency.get(term) ?? 0);
  if (storeIds.length === 0) return { queryTerms, candidates: [], idf };

  return guardDatabase(async () => {
    const documents = await scopeDocuments(db, scopeQuery(request.userId, storeIds, filter));
    if (documents.length === 0) return { queryTerms, candidates: [], idf };
    const lexical = await lexicalScores(db, documents, queryTerms, settings.candidates);
    totalChunks = lexical.totalChunks;
    for (const [term, df] of lexical.documentFrequency) documentFrequency.set(term, df);
    const vector =
      db.vectorEnabled && request.queryEmbedding !== undefined
        ? await vectorRanking(db, documents, storeIds, request.queryEmbedding, settings.candidates)
        : [];

    const fused = new Map<number, { lexical: number; vector: number | null; fused: number }>();
    const add = (id: number, rank: number, update: { lexical?: number; vector?: number }) => {
      const entry = fused.get(id) ?? { lexical: 0, vector: null, fused: 0 };
      entry.fused += 1 / (settings.rrfK + rank);
      if (update.lexical !== undefined) entry.lexical = update.lexical;
      if (update.vector !== undefined) entry.vector = update.vector;
      fused.set(id, entry);
    };
    for (const [index, row] of lexical.ranked.entries()) add(row.id, index + 1, { lexical: row.score });
    for (const [index, row] of vector.entries()) add(row.id, index + 1, { vector: 1 - Number(row.distance) });
    if (fused.size === 0) return { queryTerms, candidates: [], idf };

    const details = await candidateDetails(db, [...fused.keys()]);
    const required = requiredMatches(queryTerms.length, settings.minTermCoverage);
    const candidates: Candidate[] = details.map((row) => {
      const scores = fused.get(row.id) ?? { lexical: 0, vector: null, fused: 0 };
      const matched = queryTerms.length === 0 ? 0 : lexical.matched(row.id, row.document_id);
      return {
        chunkId: row.id,
        documentId: row.document_id,
        storeId: row.store_id,
        ordinal: row.ordinal,
        page: row.page,
        text: row.text,
        title: row.display_name || row.filename,
        filename: row.filename,
        mimeType: row.mime_type,
        lexicalScore: scores.lexical,
        vectorScore: scores.vector,
        fused: scores.fused,
        coverage: queryTerms.length === 0 ? 0 : matched / queryTerms.length,
        passesGate: matched >= required,
        createdAt: row.created_at,
      };
    });
    candidates.sort(rerankOrder);
    return { queryTerms, candidates: candidates.slice(0, settings.topK), idf };
  });
}

/** Passing first by coverage, fused, id; then the rest by fused, id. */
function rerankOrder(a: Candidate, b: Candidate): number {
  if (a.passesGate !== b.passesGate) return a.passesGate ? -1 : 1;
  if (a.passesGate && a.coverage !== b.coverage) return b.coverage - a.coverage;
  if (a.fused !== b.fused) return b.fused - a.fused;
  return a.chunkId - b.chunkId;
}

/** Ids of the documents in scope: DONE, live, in live stores of `userId` among `storeIds`. */
function scopeQuery(userId: number, storeIds: number[], filter: RawBuilder<SqlBool>): RawBuilder<unknown> {
  return sql`
    select d.id from documents d join stores s on s.id = d.store_id
    where s.user_id = ${userId} and s.id = any(${sql.val(storeIds)}::int[]) and s.deleted_at is null
      and d.deleted_at is null and d.status = 'DONE' and ${filter}`;
}

// ---- lexical index ----
//
// BM25 needs, per query, N and avgdl over the scope, df of each query term over the scope and tf/dl of every
// chunk holding a query term. Computing that in SQL touches every such chunk's `terms` (a head term is in most
// chunks), which costs hundreds of milliseconds at 50 000 chunks. Instead each document's postings are read
// once into memory, keyed by the document's id and the time its index was swapped in (`status_updated_at`, set
// in the same transaction as the chunks): a re-index changes the key, so a cached entry is never stale, in
// this process or any other. Which documents count is still decided by SQL on every query (the scope).

interface DocumentPostings {
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
}

/**
 * Per-document values keyed by (document id, index version), least recently used evicted beyond `maxSize`
 * (a size unit each value reports); concurrent loads of one key share one promise.
 */
class VersionedCache<T> {
  private readonly entries = new Map<string, { value: T; size: number }>();
  private readonly loading = new Map<string, Promise<T>>();
  private cachedSize = 0;

  constructor(
    private readonly maxSize: number,
    private readonly sizeOf: (value: T) => number,
  ) {}

  async get(documentId: number, version: string, load: () => Promise<T>): Promise<T> {
    const key = `${documentId}:${version}`;
    const cached = this.entries.get(key);
    if (cached !== undefined) {
      // Re-inserting marks it most recently used (a Map keeps insertion order).
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached.value;
    }
    let pending = this.loading.get(key);
    if (pending === undefined) {
      pending = load().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    const value = await pending;
    if (!this.entries.has(key)) {
      for (const stale of [...this.entries.keys()]) if (stale.startsWith(`${documentId}:`)) this.drop(stale);
      const size = this.sizeOf(value);
      this.entries.set(key, { value, size });
      this.cachedSize += size;
      for (const oldest of this.entries.keys()) {
        if (this.cachedSize <= this.maxSize || oldest === key) break;
        this.drop(oldest);
      }
    }
    return value;
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

/** Postings of the cached documents, with one term dictionary shared by all of them. */
class LexicalIndexCache {
  private termIds = new Map<string, number>();
  private readonly documents: VersionedCache<DocumentPostings>;

  constructor(maxPostings: number) {
    this.documents = new VersionedCache(maxPostings, (postings) => postings.chunkIndexes.length);
  }

  termId(term: string): number | undefined {
    return this.termIds.get(term);
  }

  get(db: RagDb, documentId: number, version: string): Promise<DocumentPostings> {
    // Terms of evicted documents would pile up in the dictionary: start afresh when nothing is cached.
    if (this.documents.empty && this.termIds.size > 0) this.termIds = new Map();
    return this.documents.get(documentId, version, () => this.load(db, documentId, version));
  }

  /** The version check makes a key never hold another index's chunks (a re-index racing the load). */
  private async load(db: RagDb, documentId: number, version: string): Promise<DocumentPostings> {
    const { rows } = await sql<{ id: number; terms: Record<string, number> | string; term_count: number }>`
      select c.id, c.terms, c.term_count from chunks c join documents d on d.id = c.document_id
      where c.document_id = ${documentId} and c.generation = d.index_generation and ${INDEX_VERSION} = ${version}
      order by c.id`.execute(db.kysely);
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
    const entries = [...localIndex.entries()].map(([term, local]) => {
      let id = this.termIds.get(term);
      if (id === undefined) {
        id = this.termIds.size;
        this.termIds.set(term, id);
      }
      return { id, local };
    });
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
        const at = startOfLocal[local] ?? 0;
        startOfLocal[local] = at + 1;
        chunkIndexes[at] = position;
        frequencies[at] = terms[term] ?? 0;
      }
    }
    return { chunkIds, lengths, totalLength, termIds, offsets, chunkIndexes, frequencies };
  }
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

/** About 8 bytes each: 30 M postings ≈ 240 MB at most, far above a small team's corpus (50 000 chunks ≈ 8 M). */
const MAX_CACHED_POSTINGS = 30_000_000;
const caches = new WeakMap<RagDb, LexicalIndexCache>();

function cacheFor(db: RagDb): LexicalIndexCache {
  let cache = caches.get(db);
  if (cache === undefined) {
    cache = new LexicalIndexCache(MAX_CACHED_POSTINGS);
    caches.set(db, cache);
  }
  return cache;
}

interface ScopeDocument {
  id: number;
  /** when the document's current index was swapped in (µs): its chunks never change without this changing */
  version: string;
}

const INDEX_VERSION = sql<string>`(extract(epoch from d.status_updated_at) * 1000000)::bigint::text`;

interface LexicalScores {
  totalChunks: number;
  documentFrequency: Map<string, number>;
  /** best first, at most `limit` */
  ranked: { id: number; score: number }[];
  /** chunk id → number of query terms it holds, for every chunk in scope holding one */
  matched: (chunkId: number, documentId: number) => number;
}

async function scopeDocuments(db: RagDb, scope: RawBuilder<unknown>): Promise<ScopeDocument[]> {
  const { rows } = await sql<ScopeDocument>`
    select d.id, ${INDEX_VERSION} as version
    from documents d where d.id in (${scope}) order by d.id`.execute(db.kysely);
  return rows;
}

async function lexicalScores(
  db: RagDb,
  documents: ScopeDocument[],
  queryTerms: string[],
  limit: number,
): Promise<LexicalScores> {
  const cache = cacheFor(db);
  const loaded = await Promise.all(documents.map((document) => cache.get(db, document.id, document.version)));
  const byDocument = new Map(
    documents.map((document, index) => [document.id, loaded[index] as DocumentPostings]),
  );
  let totalChunks = 0;
  let totalLength = 0;
  for (const postings of loaded) {
    totalChunks += postings.chunkIds.length;
    totalLength += postings.totalLength;
  }
  const avgdl = totalChunks === 0 ? 1 : Math.max(totalLength / totalChunks, 1e-9);
  const termIds = queryTerms.map((term) => cache.termId(term));
  // Each query term's postings range in each document.
  const ranges: ([number, number] | null)[][] = loaded.map((postings) =>
    termIds.map((id): [number, number] | null => {
      if (id === undefined) return null;
      const at = binarySearch(postings.termIds, id);
      return at < 0 ? null : [postings.offsets[at] as number, postings.offsets[at + 1] as number];
    }),
  );
  const documentFrequency = new Map<string, number>();
  for (const [index, term] of queryTerms.entries()) {
    let df = 0;
    for (const documentRanges of ranges) {
      const range = documentRanges[index];
      if (range) df += range[1] - range[0];
    }
    documentFrequency.set(term, df);
  }
  const top: { id: number; score: number }[] = [];
  let floor = Number.NEGATIVE_INFINITY;
  for (const [documentIndex, postings] of loaded.entries()) {
    const documentRanges = ranges[documentIndex] ?? [];
    if (documentRanges.every((range) => range === null)) continue;
    const scores = new Float64Array(postings.chunkIds.length);
    for (const [termIndex, term] of queryTerms.entries()) {
      const range = documentRanges[termIndex];
      if (!range) continue;
      const idf = bm25Idf(totalChunks, documentFrequency.get(term) ?? 0);
      for (let at = range[0]; at < range[1]; at++) {
        const chunk = postings.chunkIndexes[at] as number;
        const tf = postings.frequencies[at] as number;
        const length = postings.lengths[chunk] as number;
        scores[chunk] =
          (scores[chunk] ?? 0) +
          (idf * tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + (BM25_B * length) / avgdl));
      }
    }
    for (let chunk = 0; chunk < scores.length; chunk++) {
      const score = scores[chunk] as number;
      if (score <= 0 || (top.length >= limit && score < floor)) continue;
      top.push({ id: postings.chunkIds[chunk] as number, score });
      if (top.length > limit * 4) {
        top.sort(byScore);
        top.length = limit;
        floor = top[limit - 1]?.score ?? floor;
      }
    }
  }
  top.sort(byScore);
  const matched = (chunkId: number, documentId: number) => {
    const postings = byDocument.get(documentId);
    if (postings === undefined) return 0;
    const chunk = binarySearch(postings.chunkIds, chunkId);
    if (chunk < 0) return 0;
    const documentRanges = ranges[documents.findIndex((document) => document.id === documentId)] ?? [];
    let count = 0;
    for (const range of documentRanges)
      if (range && binarySearch(postings.chunkIndexes, chunk, range[0], range[1]) >= 0) count++;
    return count;
  };
  return { totalChunks, documentFrequency, ranked: top.slice(0, limit), matched };
}

function byScore(a: { id: number; score: number }, b: { id: number; score: number }): number {
  return b.score - a.score || a.id - b.id;
}

async function vectorRanking(
  db: RagDb,
  documents: ScopeDocument[],
  storeIds: number[],
  embedding: Float32Array,
  limit: number,
): Promise<{ id: number; distance: number }[]> {
  if (db.embeddingDim !== null && embedding.length !== db.embeddingDim) return [];
  if (db.dialect === 'pglite') return memoryVectorRanking(db, documents, embedding, limit);
  // PostgreSQL: pgvector's HNSW index (native code) does this best.
  const query = toPgVector(embedding);
  const documentIds = documents.map((document) => document.id);
  const { rows } = await sql<{ id: number; distance: number }>`
    select v.chunk_id as id, (v.embedding <=> ${query}::vector)::float8 as distance
    from chunk_vectors v join chunks c on c.id = v.chunk_id join documents d on d.id = c.document_id
    where v.store_id = any(${sql.val(storeIds)}::int[]) and c.document_id = any(${sql.val(documentIds)}::int[])
      and c.generation = d.index_generation
    order by v.embedding <=> ${query}::vector, v.chunk_id
    limit ${limit}`.execute(db.kysely);
  return rows;
}

// ---- vectors in memory (PGlite) ----
//
// pgvector compiled to WebAssembly scans ~500 000 vector dimensions per millisecond and building its HNSW index
// there is slow (see DESIGN.md), so embedded mode keeps each document's unit vectors in memory (same keys as
// the postings) and scans them exactly in JavaScript. Local embeddings of a short query are sparse (its terms,
// bigrams and trigrams touch a few dozen of the 384 dimensions), so the scan reads only those dimensions.

interface DocumentVectors {
  chunkIds: Int32Array;
  /** unit vectors, chunk after chunk */
  vectors: Float32Array;
}

/** 4 bytes each: 60 M floats ≈ 240 MB (≈ 156 000 chunks of 384 dimensions). */
const MAX_CACHED_VECTOR_FLOATS = 60_000_000;
const vectorCaches = new WeakMap<RagDb, VersionedCache<DocumentVectors>>();

function vectorCacheFor(db: RagDb): VersionedCache<DocumentVectors> {
  let cache = vectorCaches.get(db);
  if (cache === undefined) {
    cache = new VersionedCache(MAX_CACHED_VECTOR_FLOATS, (entry) => entry.vectors.length);
    vectorCaches.set(db, cache);
  }
  return cache;
}

function unit(vector: Float32Array): Float32Array {
  let norm = 0;
  for (let index = 0; index < vector.length; index++) norm += (vector[index] as number) ** 2;
  norm = Math.sqrt(norm);
  if (norm > 0)
    for (let index = 0; index < vector.length; index++) vector[index] = (vector[index] as number) / norm;
  return vector;
}

async function loadVectors(
  db: RagDb,
  documentId: number,
  version: string,
  dim: number,
): Promise<DocumentVectors> {
  const { rows } = await sql<{ id: number; embedding: string }>`
    select v.chunk_id as id, v.embedding::text as embedding
    from chunk_vectors v join chunks c on c.id = v.chunk_id join documents d on d.id = c.document_id
    where c.document_id = ${documentId} and c.generation = d.index_generation and ${INDEX_VERSION} = ${version}
    order by v.chunk_id`.execute(db.kysely);
  const chunkIds = new Int32Array(rows.length);
  const vectors = new Float32Array(rows.length * dim);
  for (const [position, row] of rows.entries()) {
    chunkIds[position] = row.id;
    vectors.set(
      unit(Float32Array.from(JSON.parse(row.embedding) as number[])).subarray(0, dim),
      position * dim,
    );
  }
  return { chunkIds, vectors };
}

/** The `size` best (highest score) of a stream of (id, score), kept in a min-heap. */
class TopScores {
  readonly ids: number[] = [];
  readonly scores: number[] = [];
  constructor(private readonly size: number) {}

  offer(id: number, score: number): void {
    const { ids, scores } = this;
    if (ids.length < this.size) {
      ids.push(id);
      scores.push(score);
      let child = ids.length - 1;
      while (child > 0) {
        const parent = (child - 1) >> 1;
        if ((scores[parent] as number) <= (scores[child] as number)) break;
        this.swap(parent, child);
        child = parent;
      }
      return;
    }
    if (score <= (scores[0] as number)) return;
    ids[0] = id;
    scores[0] = score;
    let parent = 0;
    for (;;) {
      const left = 2 * parent + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < ids.length && (scores[left] as number) < (scores[smallest] as number)) smallest = left;
      if (right < ids.length && (scores[right] as number) < (scores[smallest] as number)) smallest = right;
      if (smallest === parent) return;
      this.swap(parent, smallest);
      parent = smallest;
    }
  }

  private swap(a: number, b: number): void {
    [this.ids[a], this.ids[b]] = [this.ids[b] as number, this.ids[a] as number];
    [this.scores[a], this.scores[b]] = [this.scores[b] as number, this.scores[a] as number];
  }
}

async function memoryVectorRanking(
  db: RagDb,
  documents: ScopeDocument[],
  embedding: Float32Array,
  limit: number,
): Promise<{ id: number; distance: number }[]> {
  const dim = embedding.length;
  const cache = vectorCacheFor(db);
  const loaded = await Promise.all(
    documents.map((document) =>
      cache.get(document.id, document.version, () => loadVectors(db, document.id, document.version, dim)),
    ),
  );
  const query = unit(Float32Array.from(embedding));
  const dimensions: number[] = [];
  for (let index = 0; index < dim; index++) if (query[index] !== 0) dimensions.push(index);
  const used = Int32Array.from(dimensions);
  const weights = Float64Array.from(dimensions, (index) => query[index] as number);
  const best = new TopScores(limit);
  for (const entry of loaded) {
    const { vectors, chunkIds } = entry;
    for (let position = 0, base = 0; position < chunkIds.length; position++, base += dim) {
      let dot = 0;
      for (let k = 0; k < used.length; k++)
        dot += (vectors[base + (used[k] as number)] as number) * (weights[k] as number);
      best.offer(chunkIds[position] as number, dot);
    }
  }
  const ranked = best.ids.map((id, index) => ({ id, distance: 1 - (best.scores[index] as number) }));
  ranked.sort((a, b) => a.distance - b.distance || a.id - b.id);
  return ranked;
}

interface DetailRow {
  id: number;
  document_id: number;
  store_id: number;
  ordinal: number;
  page: number | null;
  text: string;
  created_at: Date;
  display_name: string;
  filename: string;
  mime_type: string;
}

async function candidateDetails(db: RagDb, chunkIds: number[]): Promise<DetailRow[]> {
  const { rows } = await sql<DetailRow>`
    select c.id, c.document_id, c.store_id, c.ordinal, c.page, c.text, c.created_at,
      d.display_name, d.filename, d.mime_type
    from chunks c join documents d on d.id = c.document_id
    where c.id = any(${sql.val(chunkIds)}::int[])`.execute(db.kysely);
  return rows;
}

function metadataCondition(filter: Record<string, unknown> | undefined): RawBuilder<SqlBool> {
  if (filter === undefined) return sql<SqlBool>`true`;
  const conditions: RawBuilder<SqlBool>[] = [];
  for (const [key, raw] of Object.entries(filter)) {
    if (!(METADATA_FILTER_COLUMNS as readonly string[]).includes(key))
      throw new Error(`Unsupported metadata filter key: ${key}`);
    const column = key as MetadataColumn;
    const values = (Array.isArray(raw) ? raw : [raw]).filter((value): value is FilterScalar =>
      ['string', 'number', 'boolean'].includes(typeof value),
    );
    if (values.length === 0) return sql<SqlBool>`false`;
    if (column === 'store_id') {
      const ids = values.map(Number).filter(Number.isSafeInteger);
      conditions.push(sql<SqlBool>`d.store_id = any(${sql.val(ids)}::int[])`);
    } else {
      const texts = values.map(String);
      conditions.push(sql<SqlBool>`${sql.ref(`d.${column}`)} = any(${sql.val(texts)}::text[])`);
    }
  }
  return conditions.length === 0 ? sql<SqlBool>`true` : sql<SqlBool>`(${sql.join(conditions, sql` and `)})`;
}

/**
 * Summary intent context: the first two sentences of each of the three most recently indexed documents in scope,
 * one candidate per document (newest first), marked as passing since they are the answer's grounding.
 */
export async function summaryContext(db: RagDb, userId: number, storeIds: number[]): Promise<Candidate[]> {
  const ids = [...new Set(storeIds.filter((id) => Number.isSafeInteger(id)))];
  if (ids.length === 0) return [];
  const rows = await guardDatabase(async () => {
    const { rows: found } = await sql<DetailRow>`
      select c.id, c.document_id, c.store_id, c.ordinal, c.page, c.text, c.created_at,
        d.display_name, d.filename, d.mime_type
      from (${scopeQuery(userId, ids, sql<SqlBool>`true`)}
            order by d.status_updated_at desc, d.id desc limit 3) as recent
      join documents d on d.id = recent.id
      join lateral (
        select * from chunks c where c.document_id = d.id and c.generation = d.index_generation
        order by c.ordinal limit 1
      ) c on true
      order by d.status_updated_at desc, d.id desc`.execute(db.kysely);
    return found;
  });
  return rows.map((row) => ({
    chunkId: row.id,
    documentId: row.document_id,
    storeId: row.store_id,
    ordinal: row.ordinal,
    page: row.page,
    text: splitSentences(row.text).slice(0, 2).join(' '),
    title: row.display_name || row.filename,
    filename: row.filename,
    mimeType: row.mime_type,
    lexicalScore: 0,
    vectorScore: null,
    fused: 0,
    coverage: 0,
    passesGate: true,
    createdAt: row.created_at,
  }));
}

/**
 * Loads the in-memory postings (and, on PGlite, vectors) of every indexed live document, so the first searches
 * after start-up do not pay for it (≈ 3–7 s at 50 000 chunks). Safe to run in the background while serving.
 */
export async function warmRetrievalCache(db: RagDb): Promise<{ documents: number }> {
  const documents = await guardDatabase(async () => {
    const { rows } = await sql<ScopeDocument>`
      select d.id, ${INDEX_VERSION} as version
      from documents d join stores s on s.id = d.store_id
      where d.status = 'DONE' and d.deleted_at is null and s.deleted_at is null
      order by d.status_updated_at desc`.execute(db.kysely);
    return rows;
  });
  const lexical = cacheFor(db);
  const vectors = vectorCacheFor(db);
  const dim = db.embeddingDim;
  for (const document of documents) {
    await guardDatabase(() => lexical.get(db, document.id, document.version));
    if (db.dialect === 'pglite' && db.vectorEnabled && dim !== null)
      await guardDatabase(() =>
        vectors.get(document.id, document.version, () => loadVectors(db, document.id, document.version, dim)),
      );
  }
  return { documents: documents.length };
}
