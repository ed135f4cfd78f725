// Search execution (spec §3.9): a text query ranked lexically by the in-memory index and, with a semantic
// model, by vector distance in SQL over the HNSW indexes (CLIP text tower → media, ONNX sentence model →
// document chunks); "similar to this" ranks media by distance to one asset's embedding. Results are shaped as
// §3.9.1 says.
import { type RawBuilder, sql } from 'kysely';
import type { Catalog } from './database.js';
import { toVectorLiteral } from './database.js';
import type { MediaEmbedder, TextEmbedder } from './embedders.js';
import type { EntryFilter, EntryKind, RankedHit, SearchIndex, VectorHit } from './search-index.js';
import { queryTerms } from './tokens.js';

export type SearchType = 'media' | 'document' | 'json';
export const SEARCH_TYPES: readonly SearchType[] = ['media', 'document', 'json'];

const ENTRY_KIND_OF: Record<SearchType, EntryKind> = {
  media: 'media',
  document: 'document_chunk',
  json: 'json',
};

/** Vector candidates fetched per requested result: filters and the lexical merge discard some. */
const VECTOR_OVERSAMPLING = 4;
/** pgvector's default hnsw.ef_search: an HNSW scan returns at most this many rows unless raised. */
const DEFAULT_EF_SEARCH = 40;
const QUERY_EMBEDDING_CACHE_SIZE = 256;

/** A validated search (§3.9.1): the query already trimmed, the tags lower-cased. */
export interface SearchRequest {
  query: string;
  type: SearchType | null;
  limit: number;
  threshold: number;
  owner: string | null;
  clusterId: string | null;
  tags: string[] | null;
  includeDuplicates: boolean;
}

export interface SimilarRequest {
  limit: number;
  threshold: number;
  includeDuplicates: boolean;
}

export interface SearchResultItem {
  id: string;
  kind: EntryKind;
  uri: string | null;
  content_type: string;
  size_bytes: number;
  owner: string | null;
  tags: string[];
  similarity_score: number;
  cluster: { id: string; name: string | null } | null;
  thumbnail_uri: string | null;
  /** null for JSON assets: their content is the object's `document`, not a file */
  content_url: string | null;
  thumbnail_url: string | null;
  created_at: string;
  metadata: Record<string, unknown>;
  match_sources: string[];
}

export interface SearchResponse {
  query: string;
  results: SearchResultItem[];
  total: number;
  query_time_ms: number;
  filters_applied: {
    type: SearchType | null;
    owner: string | null;
    cluster_id: string | null;
    tags: string[] | null;
    min_similarity: number;
    limit: number;
  };
}

export interface SearchDependencies {
  catalog: Catalog;
  mediaEmbedder: MediaEmbedder;
  textEmbedder: TextEmbedder;
}

/** `similar` asked for an asset that does not exist. */
export class SimilarAssetNotFoundError extends Error {
  override readonly name = 'SimilarAssetNotFoundError';
}

/** `similar` asked for an asset that is not media or has no embedding yet. */
export class SimilarUnavailableError extends Error {
  override readonly name = 'SimilarUnavailableError';
}

/** Runs searches against one index; keeps the last query embeddings, since popular queries repeat. */
export class SearchEngine {
  readonly #dependencies: SearchDependencies;
  readonly #index: SearchIndex;
  readonly #mediaQueryVectors = new Map<string, Promise<Float32Array | null>>();
  readonly #chunkQueryVectors = new Map<string, Promise<Float32Array | null>>();
  #iterativeScan: Promise<boolean> | null = null;

  constructor(dependencies: SearchDependencies, index: SearchIndex) {
    this.#dependencies = dependencies;
    this.#index = index;
  }

  /** §3.9.1: lexical matches over every field, merged with vector matches when a semantic model is loaded. */
  async search(request: SearchRequest): Promise<SearchResponse> {
    const started = performance.now();
    await this.#index.ready();
    const filter: EntryFilter = {
      kind: request.type === null ? null : ENTRY_KIND_OF[request.type],
      owner: request.owner,
      clusterId: request.clusterId,
      tags: request.tags,
      includeDuplicates: request.includeDuplicates,
    };
    const candidates = request.limit * VECTOR_OVERSAMPLING;
    const [mediaHits, chunkHits] = await Promise.all([
      request.type === null || request.type === 'media'
        ? this.#mediaVectorHits(request, candidates)
        : Promise.resolve([]),
      request.type === null || request.type === 'document'
        ? this.#chunkVectorHits(request, candidates)
        : Promise.resolve([]),
    ]);
    const hits = this.#index.rank(queryTerms(request.query), {
      filter,
      threshold: request.threshold,
      limit: request.limit,
      vectorHits: mediaHits.length === 0 ? chunkHits : [...mediaHits, ...chunkHits],
    });
    return shapeResponse(this.#dependencies.catalog, request.query, hits, started, {
      type: request.type,
      owner: request.owner,
      cluster_id: request.clusterId,
      tags: request.tags,
      min_similarity: request.threshold,
      limit: request.limit,
    });
  }

  /** §3.9.3: done media ranked by 1 − cosine distance / 2 to the asset's embedding, itself excluded. */
  async similar(assetId: string, request: SimilarRequest): Promise<SearchResponse> {
    const started = performance.now();
    const { catalog } = this.#dependencies;
    const target = await catalog
      .selectFrom('asset')
      .select(['kind', 'embedding_model', sql<boolean>`embedding is not null`.as('embedded')])
      .where('id', '=', assetId)
      .executeTakeFirst();
    if (target === undefined) throw new SimilarAssetNotFoundError(`Object ${assetId} not found`);
    if (target.kind !== 'media')
      throw new SimilarUnavailableError(
        `Similar search needs a media asset; ${assetId} is a ${target.kind} asset`,
      );
    if (!target.embedded) throw new SimilarUnavailableError(`Asset ${assetId} has no embedding yet`);
    await this.#index.ready();
    const candidates = Math.max(request.limit * 2, request.limit + 10);
    const targetEmbedding = sql`(select embedding from asset where id = ${assetId})`;
    const rows = await this.#vectorQuery<{ id: string; distance: number }>(
      candidates,
      sql`
        select id, embedding <=> ${targetEmbedding} as distance from asset
        where kind = 'media' and status = 'done' and embedding is not null and id <> ${assetId}
          ${target.embedding_model === null ? sql`` : sql`and embedding_model = ${target.embedding_model}`}
          ${request.includeDuplicates ? sql`` : sql`and duplicate_type is distinct from 'exact'`}
        order by embedding <=> ${targetEmbedding}
        limit ${candidates}`,
    );
    const hits = this.#index.rank([], {
      filter: {
        kind: 'media',
        owner: null,
        clusterId: null,
        tags: null,
        includeDuplicates: request.includeDuplicates,
      },
      threshold: request.threshold,
      limit: request.limit,
      vectorHits: rows.map((row) => ({ id: row.id, score: 1 - Number(row.distance) / 2 })),
    });
    return shapeResponse(catalog, assetId, hits, started, {
      type: 'media',
      owner: null,
      cluster_id: null,
      tags: null,
      min_similarity: request.threshold,
      limit: request.limit,
    });
  }

  /** CLIP text tower → media ranked in SQL by the HNSW index; none with the built-in embedder. */
  async #mediaVectorHits(request: SearchRequest, candidates: number): Promise<VectorHit[]> {
    const { mediaEmbedder } = this.#dependencies;
    if (!mediaEmbedder.status.text_search) return [];
    const vector = await cachedEmbedding(this.#mediaQueryVectors, request.query, (text) =>
      mediaEmbedder.embedText(text),
    );
    if (vector === null) return [];
    const literal = toVectorLiteral(vector);
    const rows = await this.#vectorQuery<{ id: string; distance: number }>(
      candidates,
      sql`
        select id, embedding <=> ${literal}::vector as distance from asset
        where kind = 'media' and status = 'done' and embedding is not null
          and embedding_model = ${mediaEmbedder.status.model}
          ${request.owner === null ? sql`` : sql`and owner = ${request.owner}`}
          ${request.clusterId === null ? sql`` : sql`and cluster_id = ${request.clusterId}`}
          ${request.includeDuplicates ? sql`` : sql`and duplicate_type is distinct from 'exact'`}
        order by embedding <=> ${literal}::vector
        limit ${candidates}`,
    );
    return rows.map((row) => ({ id: row.id, score: 1 - Number(row.distance) / 2 }));
  }

  /** ONNX sentence model → document chunks ranked in SQL by the HNSW index; none with builtin-hash-v1. */
  async #chunkVectorHits(request: SearchRequest, candidates: number): Promise<VectorHit[]> {
    const { textEmbedder } = this.#dependencies;
    if (!textEmbedder.semantic) return [];
    const vector = await cachedEmbedding(this.#chunkQueryVectors, request.query, (text) =>
      textEmbedder.embed(text),
    );
    if (vector === null) return [];
    const literal = toVectorLiteral(vector);
    const rows = await this.#vectorQuery<{ id: string; distance: number }>(
      candidates,
      sql`
        select id, embedding <=> ${literal}::vector as distance from document_chunk
        where embedding is not null and embedding_model = ${textEmbedder.modelId}
        order by embedding <=> ${literal}::vector
        limit ${candidates}`,
    );
    return rows.map((row) => ({ id: row.id, score: 1 - Number(row.distance) / 2 }));
  }

  /**
   * A nearest-neighbour query over an HNSW index. An HNSW scan yields at most `hnsw.ef_search` rows before the
   * WHERE clause filters them, so ef_search is raised to the number of candidates and, with pgvector ≥ 0.8,
   * the scan is iterative: filtered-out rows do not shorten the answer (the order is restored by ranking).
   */
  async #vectorQuery<Row>(candidates: number, query: RawBuilder<Row>): Promise<Row[]> {
    const { catalog } = this.#dependencies;
    this.#iterativeScan ??= supportsIterativeScan(catalog);
    const iterative = await this.#iterativeScan;
    const efSearch = Math.min(1000, Math.max(DEFAULT_EF_SEARCH, Math.ceil(candidates)));
    if (!iterative && efSearch === DEFAULT_EF_SEARCH) return (await query.execute(catalog)).rows;
    return catalog.transaction().execute(async (trx) => {
      await sql.raw(`set local hnsw.ef_search = ${efSearch}`).execute(trx);
      if (iterative) await sql.raw(`set local hnsw.iterative_scan = relaxed_order`).execute(trx);
      return (await query.execute(trx)).rows;
    });
  }
}

/** pgvector 0.8 added iterative index scans (`hnsw.iterative_scan`); older servers reject the setting. */
async function supportsIterativeScan(catalog: Catalog): Promise<boolean> {
  try {
    const result = await sql<{ version: string }>`
      select extversion as version from pg_extension where extname = 'vector'`.execute(catalog);
    const [major = 0, minor = 0] = (result.rows[0]?.version ?? '0.0').split('.').map(Number);
    return major > 0 || minor >= 8;
  } catch {
    return false;
  }
}

/** A bounded cache of query embeddings (oldest evicted); a failed embedding is not kept. */
function cachedEmbedding(
  cache: Map<string, Promise<Float32Array | null>>,
  text: string,
  embed: (text: string) => Promise<Float32Array> | null,
): Promise<Float32Array | null> {
  const cached = cache.get(text);
  if (cached !== undefined) return cached;
  const pending = Promise.resolve(embed(text));
  cache.set(text, pending);
  pending.catch(() => cache.delete(text));
  if (cache.size > QUERY_EMBEDDING_CACHE_SIZE) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  return pending;
}

/** The response body; metadata too large to be held in the index is read for the results that show it. */
async function shapeResponse(
  catalog: Catalog,
  query: string,
  hits: readonly RankedHit[],
  started: number,
  filtersApplied: SearchResponse['filters_applied'],
): Promise<SearchResponse> {
  const unheld = hits
    .filter((hit) => hit.entry.chunk === null && hit.entry.asset.metadataJson === null)
    .map((hit) => hit.entry.asset.id);
  const metadataOf = new Map<string, Record<string, unknown>>();
  if (unheld.length > 0) {
    const rows = await catalog
      .selectFrom('asset')
      .select(['id', 'metadata'])
      .where('id', 'in', unheld)
      .execute();
    for (const row of rows) metadataOf.set(row.id, row.metadata);
  }
  const results = hits.map((hit) => toResultItem(hit, metadataOf.get(hit.entry.asset.id)));
  return {
    query,
    results,
    total: results.length,
    query_time_ms: Math.round((performance.now() - started) * 1000) / 1000,
    filters_applied: filtersApplied,
  };
}

/** One result item of §3.9.1; a document chunk shows its document's uri, owner and tags. */
export function toResultItem(hit: RankedHit, readMetadata?: Record<string, unknown>): SearchResultItem {
  const { entry } = hit;
  const { asset, chunk } = entry;
  return {
    id: entry.id,
    kind: entry.kind,
    uri: asset.uri,
    content_type: asset.contentType,
    size_bytes: asset.sizeBytes,
    owner: asset.owner,
    tags: [...asset.tags],
    similarity_score: hit.score,
    cluster: asset.clusterId === null ? null : { id: asset.clusterId, name: asset.clusterName },
    thumbnail_uri: asset.thumbnailUri,
    content_url: asset.kind === 'json' ? null : `/api/v1/objects/${asset.id}/content`,
    thumbnail_url: asset.thumbnailUri === null ? null : `/api/v1/objects/${asset.id}/thumbnail`,
    created_at: asset.createdAt.toISOString(),
    metadata:
      chunk === null
        ? asset.metadataJson === null
          ? (readMetadata ?? {})
          : (JSON.parse(asset.metadataJson) as Record<string, unknown>)
        : {
            chunk_text: chunk.text,
            chunk_index: chunk.chunkIndex,
            chunk_parent_heading: chunk.parentHeading,
            chunk_page_number: chunk.pageNumber,
            source_asset_id: asset.id,
          },
    match_sources: hit.matchSources,
  };
}
