// Hybrid retrieval (spec §3.6): BM25 over the lexical terms of the chunks in scope, cosine similarity over their
// embeddings, Reciprocal Rank Fusion of the two lists, a term-coverage gate, and the re-rank. The scope — DONE,
// live documents in live stores the caller owns — is part of every query (tenant isolation is never a filter
// applied afterwards).
import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { RagConfig } from '../config-types.js';
import { guardDatabase, type RagDb, watchedCache } from './database.js';
import {
  BM25_B,
  BM25_K1,
  bm25Idf,
  buildDocumentPostings,
  buildDocumentVectors,
  type DocumentPostings,
  type DocumentVectors,
  type PostingsRow,
  rankLexical,
  rankVectors,
  TermDictionary,
  unitVectorOf,
  VersionedCache,
} from './retrieval-index.js';
import { queryTerms as distinctQueryTerms } from './text/analysis.js';
import { splitSentences } from './text/chunk.js';
import { toPgVector } from './text/embedding.js';

export { BM25_B, BM25_K1, bm25Idf };

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
    const documents = await watchedCache<ScopeDocument[]>(
      db,
      'search-scope',
      SCOPE_TABLES,
      SCOPE_CACHE_ENTRIES,
    ).get(`${request.userId}|${storeIds.join(',')}|${JSON.stringify(request.metadataFilter ?? null)}`, () =>
      scopeDocuments(db, scopeQuery(request.userId, storeIds, filter)),
    );
    if (documents.length === 0) return { queryTerms, candidates: [], idf };
    const embedding = usableEmbedding(db, request.queryEmbedding);
    const inMemoryVectors = embedding !== undefined && db.dialect === 'pglite';
    const lexicalCache = cacheFor(db);
    const [postings, vectors] = await Promise.all([
      Promise.all(documents.map((document) => lexicalCache.get(db, document.id, document.version))),
      inMemoryVectors ? documentVectors(db, documents, embedding.length) : null,
    ]);
    const lexical = rankLexical(
      postings,
      queryTerms.map((term) => lexicalCache.termId(term)),
      settings.candidates,
    );
    totalChunks = lexical.totalChunks;
    for (const [index, term] of queryTerms.entries())
      documentFrequency.set(term, lexical.documentFrequencies[index] ?? 0);
    const vector =
      embedding === undefined
        ? []
        : vectors !== null
          ? rankVectors(vectors, embedding, settings.candidates)
          : await pgvectorRanking(db, documents, storeIds, embedding, settings.candidates);

    const fused = new Map<number, FusedEntry>();
    const entry = (id: number, documentIndex: number): FusedEntry => {
      let found = fused.get(id);
      if (found === undefined) {
        found = { id, documentIndex, lexical: 0, vector: null, fused: 0, coverage: 0, passesGate: false };
        fused.set(id, found);
      }
      return found;
    };
    for (const [index, row] of lexical.ranked.entries()) {
      const found = entry(row.id, row.documentIndex);
      found.fused += 1 / (settings.rrfK + index + 1);
      found.lexical = row.score;
    }
    for (const [index, row] of vector.entries()) {
      const found = entry(row.id, row.documentIndex);
      found.fused += 1 / (settings.rrfK + index + 1);
      found.vector = 1 - Number(row.distance);
    }
    if (fused.size === 0) return { queryTerms, candidates: [], idf };

    // Gate and re-rank in memory; only the kept candidates' rows are read.
    const required = requiredMatches(queryTerms.length, settings.minTermCoverage);
    for (const found of fused.values()) {
      const matched = queryTerms.length === 0 ? 0 : lexical.matched(found.id, found.documentIndex);
      found.coverage = queryTerms.length === 0 ? 0 : matched / queryTerms.length;
      found.passesGate = matched >= required;
    }
    const ranked = [...fused.values()].sort(rerankOrder);
    const kept = ranked.slice(0, settings.topK);
    let rows = await chunkRows(
      db,
      kept.map((found) => found.id),
    );
    // A chunk whose row vanished (its document re-indexed meanwhile) gives way to the next in line.
    if (rows.size < kept.length && ranked.length > kept.length)
      rows = await chunkRows(
        db,
        ranked.map((found) => found.id),
      );
    const candidates: Candidate[] = [];
    for (const found of ranked) {
      if (candidates.length >= settings.topK) break;
      const row = rows.get(found.id);
      const document = documents[found.documentIndex];
      if (row === undefined || document === undefined) continue;
      candidates.push({
        chunkId: row.id,
        documentId: document.id,
        storeId: row.store_id,
        ordinal: row.ordinal,
        page: row.page,
        text: row.text,
        title: document.display_name || document.filename,
        filename: document.filename,
        mimeType: document.mime_type,
        lexicalScore: found.lexical,
        vectorScore: found.vector,
        fused: found.fused,
        coverage: found.coverage,
        passesGate: found.passesGate,
        createdAt: row.created_at,
      });
    }
    return { queryTerms, candidates, idf };
  });
}

interface FusedEntry {
  id: number;
  /** position of the chunk's document in the scope list */
  documentIndex: number;
  lexical: number;
  vector: number | null;
  fused: number;
  coverage: number;
  passesGate: boolean;
}

/** Passing first by coverage, fused, id; then the rest by fused, id. */
function rerankOrder(
  a: Pick<Candidate, 'passesGate' | 'coverage' | 'fused'> & { id: number },
  b: Pick<Candidate, 'passesGate' | 'coverage' | 'fused'> & { id: number },
): number {
  if (a.passesGate !== b.passesGate) return a.passesGate ? -1 : 1;
  if (a.passesGate && a.coverage !== b.coverage) return b.coverage - a.coverage;
  if (a.fused !== b.fused) return b.fused - a.fused;
  return a.id - b.id;
}

/**
 * What decides a scope (the watch sees each table's own writes, not cascades: `users` stands for rows that
 * would go with a user). Embedded database only: see `watchedCache`.
 */
const SCOPE_TABLES = ['users', 'stores', 'documents'];
/** (caller, stores, metadata filter) scopes remembered between writes to SCOPE_TABLES */
const SCOPE_CACHE_ENTRIES = 256;

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

/** Postings of the cached documents, with one term dictionary shared by all of them. */
class LexicalIndexCache {
  private readonly dictionary = new TermDictionary();
  private readonly documents: VersionedCache<DocumentPostings>;

  constructor(maxPostings: number) {
    this.documents = new VersionedCache(maxPostings, (postings) => postings.chunkIndexes.length);
  }

  termId(term: string): number | undefined {
    return this.dictionary.idOf(term);
  }

  get(db: RagDb, documentId: number, version: string): Promise<DocumentPostings> {
    const cached = this.documents.cached(documentId, version);
    if (cached !== undefined) return Promise.resolve(cached);
    // Terms of evicted documents would pile up in the dictionary: start afresh when nothing is cached.
    if (this.documents.empty && this.dictionary.size > 0) this.dictionary.clear();
    return this.documents.get(documentId, version, () => this.load(db, documentId, version));
  }

  /**
   * Caches postings built from rows this process has just written (see `primeDocumentIndex`); a search of the
   * document meanwhile waits for them.
   */
  prime(documentId: number, version: string, rows: Promise<readonly PostingsRow[]>): Promise<unknown> {
    return this.documents.provide(
      documentId,
      version,
      rows.then((ready) => {
        if (this.documents.empty && this.dictionary.size > 0) this.dictionary.clear();
        return buildDocumentPostings(ready, this.dictionary);
      }),
    );
  }

  /** A document's postings, read a page of chunk rows at a time (see `pagedIndexRows`). */
  private async load(db: RagDb, documentId: number, version: string): Promise<DocumentPostings> {
    const rows = await pagedIndexRows(
      db,
      documentId,
      version,
      (after) => sql<PostingsRow>`
        select c.id, c.terms, c.term_count from chunks c join documents d on d.id = c.document_id
        where c.document_id = ${documentId} and c.generation = d.index_generation and ${INDEX_VERSION} = ${version}
          and c.id > ${after}
        order by c.id limit ${INDEX_PAGE_ROWS}`,
    );
    return buildDocumentPostings(rows, this.dictionary);
  }
}

/**
 * Chunk rows read per statement when a document's index is loaded: the one embedded connection is free for
 * other requests between pages, instead of being held for the whole document (10,000 chunks of a 10 MB file).
 */
const INDEX_PAGE_ROWS = 1_000;

/**
 * Every row of a document's index at `version`, a page at a time (keyset on the chunk id). Each page checks the
 * version, and so does a last statement: a re-index swapped in meanwhile changes it, and the rows read so far
 * are then dropped — what one statement over the whole document would have found once the swap was done. The
 * key of the old version is never asked for again.
 */
async function pagedIndexRows<Row extends { id: number }, Prepared = Row>(
  db: RagDb,
  documentId: number,
  version: string,
  page: (afterId: number) => RawBuilder<Row>,
  prepare: (row: Row) => Prepared = (row) => row as unknown as Prepared,
): Promise<Prepared[]> {
  const rows: Prepared[] = [];
  for (let after = 0; ; ) {
    const { rows: found } = await page(after).execute(db.kysely);
    // Prepared page by page: between pages the event loop serves requests.
    for (const row of found) rows.push(prepare(row));
    const last = found.at(-1);
    if (last === undefined || found.length < INDEX_PAGE_ROWS) break;
    after = last.id;
  }
  const { rows: current } = await sql<{ same: boolean }>`
    select ${INDEX_VERSION} = ${version} as same from documents d where d.id = ${documentId}`.execute(
    db.kysely,
  );
  return current[0]?.same === true ? rows : [];
}

/**
 * About 8 bytes each, plus up to 8 more for the BM25 terms of the postings queried: 30 M postings ≈ 240–480 MB
 * at most, far above a small team's corpus (50 000 chunks ≈ 8 M).
 */
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
  display_name: string;
  filename: string;
  mime_type: string;
}

/** The version of the index of document `d` (the `documents` row under the alias `d`). */
export const INDEX_VERSION = sql<string>`(extract(epoch from d.status_updated_at) * 1000000)::bigint::text`;

async function scopeDocuments(db: RagDb, scope: RawBuilder<unknown>): Promise<ScopeDocument[]> {
  const { rows } = await sql<ScopeDocument>`
    select d.id, ${INDEX_VERSION} as version, d.display_name, d.filename, d.mime_type
    from documents d where d.id in (${scope}) order by d.id`.execute(db.kysely);
  return rows;
}

/** The query embedding when vector retrieval can use it (pgvector present, the index's dimension). */
function usableEmbedding(db: RagDb, embedding: Float32Array | undefined): Float32Array | undefined {
  if (!db.vectorEnabled || embedding === undefined) return undefined;
  if (db.embeddingDim !== null && embedding.length !== db.embeddingDim) return undefined;
  return embedding;
}

/** PostgreSQL: pgvector's HNSW index (native code) does this best. */
async function pgvectorRanking(
  db: RagDb,
  documents: ScopeDocument[],
  storeIds: number[],
  embedding: Float32Array,
  limit: number,
): Promise<{ id: number; distance: number; documentIndex: number }[]> {
  const query = toPgVector(embedding);
  const documentIds = documents.map((document) => document.id);
  const { rows } = await sql<{ id: number; document_id: number; distance: number }>`
    select v.chunk_id as id, c.document_id, (v.embedding <=> ${query}::vector)::float8 as distance
    from chunk_vectors v join chunks c on c.id = v.chunk_id join documents d on d.id = c.document_id
    where v.store_id = any(${sql.val(storeIds)}::int[]) and c.document_id = any(${sql.val(documentIds)}::int[])
      and c.generation = d.index_generation
    order by v.embedding <=> ${query}::vector, v.chunk_id
    limit ${limit}`.execute(db.kysely);
  const positions = new Map(documentIds.map((id, index) => [id, index]));
  return rows.map((row) => ({
    id: row.id,
    distance: row.distance,
    documentIndex: positions.get(row.document_id) ?? -1,
  }));
}

// ---- vectors in memory (PGlite) ----
//
// pgvector compiled to WebAssembly scans ~500 000 vector dimensions per millisecond and building its HNSW index
// there is slow (see DESIGN.md), so embedded mode keeps each document's unit vectors in memory (same keys as
// the postings) and scans them exactly in JavaScript (retrieval-index.ts).

/** 4 bytes each: 60 M floats ≈ 240 MB (≈ 156 000 chunks of 384 dimensions). */
const MAX_CACHED_VECTOR_FLOATS = 60_000_000;
const vectorCaches = new WeakMap<RagDb, VersionedCache<DocumentVectors>>();

function vectorCacheFor(db: RagDb): VersionedCache<DocumentVectors> {
  let cache = vectorCaches.get(db);
  if (cache === undefined) {
    cache = new VersionedCache(MAX_CACHED_VECTOR_FLOATS, (entry) => entry.columns.length);
    vectorCaches.set(db, cache);
  }
  return cache;
}

function documentVectors(db: RagDb, documents: ScopeDocument[], dim: number): Promise<DocumentVectors[]> {
  const cache = vectorCacheFor(db);
  return Promise.all(
    documents.map((document) => {
      const cached = cache.cached(document.id, document.version);
      if (cached !== undefined) return cached;
      return cache.get(document.id, document.version, () =>
        loadVectors(db, document.id, document.version, dim),
      );
    }),
  );
}

async function loadVectors(
  db: RagDb,
  documentId: number,
  version: string,
  dim: number,
): Promise<DocumentVectors> {
  const rows = await pagedIndexRows(
    db,
    documentId,
    version,
    (after) => sql<{ id: number; embedding: string }>`
      select v.chunk_id as id, v.embedding::text as embedding
      from chunk_vectors v join chunks c on c.id = v.chunk_id join documents d on d.id = c.document_id
      where c.document_id = ${documentId} and c.generation = d.index_generation and ${INDEX_VERSION} = ${version}
        and v.chunk_id > ${after}
      order by v.chunk_id limit ${INDEX_PAGE_ROWS}`,
    (row) => ({ id: row.id, embedding: unitVectorOf(row.embedding) }),
  );
  return buildDocumentVectors(rows, dim);
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

/** The columns of a chunk a candidate shows; a chunk row never changes (a re-index writes new rows). */
type ChunkRow = Pick<DetailRow, 'id' | 'store_id' | 'ordinal' | 'page' | 'text' | 'created_at'>;

/** Recently shown chunks (≈ 1 kB each), so repeated questions read no chunk rows at all. */
const MAX_CACHED_CHUNK_ROWS = 8192;
const chunkRowCaches = new WeakMap<RagDb, Map<number, ChunkRow>>();

/** The rows of `chunkIds` that exist (or existed when the scope was read), by id. */
async function chunkRows(db: RagDb, chunkIds: number[]): Promise<Map<number, ChunkRow>> {
  let cache = chunkRowCaches.get(db);
  if (cache === undefined) {
    cache = new Map();
    chunkRowCaches.set(db, cache);
  }
  const found = new Map<number, ChunkRow>();
  const missing: number[] = [];
  for (const id of chunkIds) {
    const row = cache.get(id);
    if (row === undefined) missing.push(id);
    else {
      // Re-inserting marks it most recently used.
      cache.delete(id);
      cache.set(id, row);
      found.set(id, row);
    }
  }
  if (missing.length === 0) return found;
  const { rows } = await sql<ChunkRow>`
    select c.id, c.store_id, c.ordinal, c.page, c.text, c.created_at from chunks c
    where c.id = any(${sql.val(missing)}::int[])`.execute(db.kysely);
  for (const row of rows) {
    found.set(row.id, row);
    cache.set(row.id, row);
  }
  for (const oldest of cache.keys()) {
    if (cache.size <= MAX_CACHED_CHUNK_ROWS) break;
    cache.delete(oldest);
  }
  return found;
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
    const { rows } = await sql<IndexedDocument>`
      select d.id, ${INDEX_VERSION} as version
      from documents d join stores s on s.id = d.store_id
      where d.status = 'DONE' and d.deleted_at is null and s.deleted_at is null
      order by d.status_updated_at desc`.execute(db.kysely);
    return rows;
  });
  for (const document of documents) await warmDocument(db, document);
  return { documents: documents.length };
}

/** A document's index as this process has just written it (ingestion), at `version` (INDEX_VERSION). */
export interface WrittenIndex {
  documentId: number;
  version: string;
  /** every chunk of the index, ascending id: its terms JSON, term count and embedding (null: none) */
  chunks: { id: number; terms: string; termCount: number; embedding: Float32Array | null }[];
}

/**
 * Caches the postings (and, on the embedded database, the vectors) of an index this process has just written,
 * from the rows it wrote: the first search over the document finds them in memory, and nothing is read back
 * from the database (for a 10 MB file that would be seconds of the one embedded connection). The rows are
 * parsed a slice at a time, letting the event loop serve requests in between.
 */
export async function primeDocumentIndex(db: RagDb, index: WrittenIndex): Promise<void> {
  const { documentId, version } = index;
  // The in-memory index looks chunk ids up by binary search.
  const chunks = [...index.chunks].sort((a, b) => a.id - b.id);
  const dim = db.embeddingDim;
  // An index without vectors is left to the first search, which reads what exists.
  const withVectors =
    db.dialect === 'pglite' &&
    db.vectorEnabled &&
    dim !== null &&
    chunks.every((chunk) => chunk.embedding !== null);
  // Both are registered before the first slice: a search from now on waits for them instead of reading the
  // document's index back from the database.
  const postings = cacheFor(db).prime(
    documentId,
    version,
    inSlices(chunks, (chunk) => ({
      id: chunk.id,
      terms: JSON.parse(chunk.terms) as Record<string, number>,
      term_count: chunk.termCount,
    })),
  );
  const vectors = withVectors
    ? vectorCacheFor(db).provide(
        documentId,
        version,
        postings
          .then(() =>
            inSlices(chunks, (chunk) => ({
              id: chunk.id,
              embedding: unitVectorOf(chunk.embedding as Float32Array),
            })),
          )
          .then((rows) => buildDocumentVectors(rows, dim)),
      )
    : null;
  await Promise.all([postings, vectors]);
}

/** `map` over `items`, yielding to the event loop after every slice of PRIME_SLICE items. */
async function inSlices<T, R>(items: readonly T[], map: (item: T) => R): Promise<R[]> {
  const mapped: R[] = [];
  for (let start = 0; start < items.length; start += PRIME_SLICE) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const item of items.slice(start, start + PRIME_SLICE)) mapped.push(map(item));
  }
  return mapped;
}

const PRIME_SLICE = 500;

type IndexedDocument = Pick<ScopeDocument, 'id' | 'version'>;

async function warmDocument(db: RagDb, document: IndexedDocument): Promise<void> {
  await guardDatabase(() => cacheFor(db).get(db, document.id, document.version));
  const dim = db.embeddingDim;
  if (db.dialect === 'pglite' && db.vectorEnabled && dim !== null)
    await guardDatabase(() =>
      vectorCacheFor(db).get(document.id, document.version, () =>
        loadVectors(db, document.id, document.version, dim),
      ),
    );
}
