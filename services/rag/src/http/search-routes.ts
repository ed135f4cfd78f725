// `POST /api/search` (spec §3.6): retrieval debugging — the fused top-K candidates with per-signal scores,
// passing ones first. No model call and no cost row.
import type { FastifyInstance } from 'fastify';
import { retrievalSettings, searchCandidates } from '../domain/retrieval.js';
import { snippetAndHighlights } from '../domain/text/answer.js';
import type { RagContext } from './context.js';
import { detail, InputReader, requireUser } from './conventions.js';
import { findOwnedStores } from './store-lookup.js';

const DEFAULT_TOP_K = 8;
const MAX_TOP_K = 50;
const MAX_QUERY_CHARS = 2000;

/** `storeIds`: a non-empty list of integers, else a 422 item on `reader`. */
export function readStoreIds(reader: InputReader, name: string): number[] | undefined {
  const raw = reader.source[name];
  if (raw === undefined || raw === null) {
    reader.fail(name, 'Field required', 'missing');
    return undefined;
  }
  if (!Array.isArray(raw)) {
    reader.fail(name, 'Input should be a valid list', 'list_type');
    return undefined;
  }
  if (raw.length === 0) {
    reader.fail(name, 'List should have at least 1 item after validation, not 0', 'too_short');
    return undefined;
  }
  const ids: number[] = [];
  for (const value of raw) {
    const id = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      reader.fail(name, 'Input should be a valid integer', 'int_type');
      return undefined;
    }
    ids.push(id);
  }
  return ids;
}

/** The query embedding when vector retrieval is on (same provider as the index), else undefined. */
export async function queryEmbedding(context: RagContext, query: string): Promise<Float32Array | undefined> {
  if (!context.db.vectorEnabled) return undefined;
  try {
    const [vector] = await context.embed([query]);
    return vector;
  } catch (error) {
    // Lexical retrieval still answers when the embedding provider is down.
    context.logger.warn({ event: 'query_embedding_failed', err: error }, 'query_embedding_failed');
    return undefined;
  }
}

export function registerSearchRoutes(app: FastifyInstance, context: RagContext): void {
  const { db, config } = context;

  app.post('/api/search', async (request) => {
    const user = await requireUser(request);
    const body = InputReader.body(request);
    const storeIds = readStoreIds(body, 'storeIds');
    const query = body.string('query', { required: true, min: 1, max: MAX_QUERY_CHARS });
    const topK = body.integer('topK', { min: 1, max: MAX_TOP_K }) ?? DEFAULT_TOP_K;
    body.done();
    const ids = storeIds as number[];
    const stores = await findOwnedStores(db, user.id, ids);
    if (stores.length !== new Set(ids).size) throw detail(404, 'Store not found');
    const started = performance.now();
    const result = await searchCandidates(db, {
      userId: user.id,
      storeIds: stores.map((store) => store.id),
      query: query as string,
      config: retrievalSettings(config, topK),
      queryEmbedding: await queryEmbedding(context, query as string),
    });
    context.metrics.retrievalSeconds.observe((performance.now() - started) / 1000);
    return {
      query,
      results: result.candidates.slice(0, topK).map((candidate, index) => ({
        rank: index + 1,
        documentId: candidate.documentId,
        storeId: candidate.storeId,
        chunkId: candidate.chunkId,
        title: candidate.title,
        filename: candidate.filename,
        page: candidate.page,
        snippet: snippetAndHighlights(candidate.text, result.queryTerms).snippet,
        score: candidate.fused,
        lexicalScore: candidate.lexicalScore,
        vectorScore: candidate.vectorScore,
        coverage: candidate.coverage,
        passesGate: candidate.passesGate,
      })),
    };
  });
}
