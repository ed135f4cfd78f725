// Search routes (spec §3.9): GET and POST /api/v1/search, GET /api/v1/objects/{id}/similar. Parameters are
// checked in the spec's order (query missing → 422; query length → 400; type → 400; limit/threshold → 422;
// cluster_id → 400); a search running past SEARCH_TIMEOUT_SECONDS answers 503.
import type { FastifyInstance } from 'fastify';
import type { AllocatorConfig } from '../config.js';
import {
  SEARCH_TYPES,
  SearchEngine,
  type SearchRequest,
  type SearchResponse,
  type SearchType,
  SimilarAssetNotFoundError,
  SimilarUnavailableError,
} from '../domain/search.js';
import type { SearchIndex } from '../domain/search-index.js';
import type { AllocatorRuntime } from '../runtime.js';
import { BodyReader, isUuid, parseId, QueryReader, sendJson } from './conventions.js';
import { apiError, badRequest, notFound } from './errors.js';

const MIN_QUERY_LENGTH = 2;
const MAX_QUERY_LENGTH = 500;

function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Trimmed query text, 2..500 characters (400 otherwise). */
function checkedQueryText(raw: string): string {
  const query = raw.trim();
  const length = characterCount(query);
  if (length < MIN_QUERY_LENGTH) throw badRequest('Query must be at least 2 characters');
  if (length > MAX_QUERY_LENGTH) throw badRequest('Query must be less than 500 characters');
  return query;
}

/** media | document | json, or null when absent (400 otherwise). */
function checkedType(raw: unknown): SearchType | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw === 'string' && (SEARCH_TYPES as readonly string[]).includes(raw)) return raw as SearchType;
  throw badRequest(`Invalid type '${String(raw)}': expected one of ${SEARCH_TYPES.join(', ')}`);
}

/** A cluster id filter: a UUID (400 otherwise), lower-cased. */
function checkedClusterId(raw: unknown): string | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw !== 'string' || !isUuid(raw)) throw badRequest('Invalid cluster_id: expected a UUID');
  return raw.toLowerCase();
}

function optionalText(raw: unknown): string | null {
  return typeof raw === 'string' && raw !== '' ? raw : null;
}

/** Comma-separated (or listed) tags, trimmed and lower-cased; null when none. */
function parsedTags(raw: readonly string[]): string[] | null {
  const tags = [
    ...new Set(
      raw
        .flatMap((value) => value.split(','))
        .map((tag) => tag.trim().toLowerCase())
        .filter((tag) => tag !== ''),
    ),
  ];
  return tags.length === 0 ? null : tags;
}

function searchFromQueryString(query: Record<string, unknown>, config: AllocatorConfig): SearchRequest {
  const reader = new QueryReader(query);
  const rawQuery = reader.required('query');
  const limit = reader.int('limit', config.searchDefaultLimit, 1, config.searchMaxLimit);
  const threshold = reader.number('threshold', config.searchDefaultThreshold, 0, 1);
  const includeDuplicates = reader.bool('include_duplicates', false);
  if (rawQuery === undefined) reader.finish();
  const text = checkedQueryText(rawQuery as string);
  const type = checkedType(reader.string('type'));
  reader.finish();
  const clusterId = checkedClusterId(reader.string('cluster_id'));
  const rawTags = query.tags;
  const tagValues = Array.isArray(rawTags)
    ? rawTags.map(String)
    : rawTags === undefined
      ? []
      : [String(rawTags)];
  return {
    query: text,
    type,
    limit,
    threshold,
    owner: optionalText(reader.string('owner')),
    clusterId,
    tags: parsedTags(tagValues),
    includeDuplicates,
  };
}

/** The original API.md body: {query, type, limit, threshold, owner, cluster_id, tags, include_duplicates, filters: {kind, owner}}. */
function searchFromBody(body: BodyReader, config: AllocatorConfig): SearchRequest {
  const rawQuery = body.string('query', { required: true });
  const limit = body.int('limit', { min: 1, max: config.searchMaxLimit }) ?? config.searchDefaultLimit;
  let threshold = body.number('threshold');
  if (threshold !== undefined && (threshold < 0 || threshold > 1)) {
    body.issue(
      'threshold',
      'Input should be between 0 and 1',
      threshold < 0 ? 'greater_than_equal' : 'less_than_equal',
    );
    threshold = undefined;
  }
  const includeDuplicates = body.bool('include_duplicates', false);
  const rawFilters = body.raw('filters');
  let filters: Record<string, unknown> = {};
  if (rawFilters !== undefined && rawFilters !== null) {
    if (typeof rawFilters === 'object' && !Array.isArray(rawFilters))
      filters = rawFilters as Record<string, unknown>;
    else body.issue('filters', 'Input should be a valid object', 'dict_type');
  }
  const rawTags = body.raw('tags');
  let tagValues: string[] = [];
  if (typeof rawTags === 'string') tagValues = [rawTags];
  else if (Array.isArray(rawTags) && rawTags.every((tag) => typeof tag === 'string')) tagValues = rawTags;
  else if (rawTags !== undefined && rawTags !== null)
    body.issue('tags', 'Input should be a list of strings or a comma-separated string', 'list_type');
  const rawOwner = body.raw('owner') ?? filters.owner;
  if (rawOwner !== undefined && rawOwner !== null && typeof rawOwner !== 'string')
    body.issue('owner', 'Input should be a valid string', 'string_type');
  if (rawQuery === undefined) body.finish();
  const text = checkedQueryText(rawQuery as string);
  const rawType = body.raw('type');
  const type = checkedType(
    rawType === undefined || rawType === null || rawType === '' ? filters.kind : rawType,
  );
  body.finish();
  const clusterId = checkedClusterId(body.raw('cluster_id'));
  return {
    query: text,
    type,
    limit,
    threshold: threshold ?? config.searchDefaultThreshold,
    owner: optionalText(rawOwner),
    clusterId,
    tags: parsedTags(tagValues),
    includeDuplicates,
  };
}

/** Registers the search routes over the process's index. */
export function registerSearchRoutes(
  app: FastifyInstance,
  runtime: AllocatorRuntime,
  index: SearchIndex,
): void {
  const { config, metrics } = runtime;
  const engine = new SearchEngine(runtime, index);

  /** Runs one search under the timeout, counting it in search_queries_total and search_latency_seconds. */
  async function measured(
    searchType: 'text' | 'similar',
    work: () => Promise<SearchResponse>,
  ): Promise<SearchResponse> {
    const started = performance.now();
    try {
      const response = await withinTimeout(work, config.searchTimeoutMs);
      metrics.searchLatency.observe({ search_type: searchType }, (performance.now() - started) / 1000);
      metrics.searchQueries.inc({ search_type: searchType, status: 'success' });
      return response;
    } catch (error) {
      metrics.searchQueries.inc({ search_type: searchType, status: 'failure' });
      throw error;
    }
  }

  app.get('/api/v1/search', async (request, reply) => {
    const response = await measured('text', async () => {
      const search = searchFromQueryString(request.query as Record<string, unknown>, config);
      return engine.search(search);
    });
    return sendJson(reply, 200, response);
  });

  app.post('/api/v1/search', async (request, reply) => {
    const response = await measured('text', async () =>
      engine.search(searchFromBody(BodyReader.from(request), config)),
    );
    return sendJson(reply, 200, response);
  });

  app.get('/api/v1/objects/:id/similar', async (request, reply) => {
    const response = await measured('similar', async () => {
      const assetId = parseId((request.params as { id?: string }).id);
      const reader = new QueryReader(request.query as Record<string, unknown>);
      const limit = reader.int('limit', config.searchDefaultLimit, 1, config.searchMaxLimit);
      const threshold = reader.number('threshold', config.searchDefaultThreshold, 0, 1);
      const includeDuplicates = reader.bool('include_duplicates', false);
      reader.finish();
      try {
        return await engine.similar(assetId, { limit, threshold, includeDuplicates });
      } catch (error) {
        if (error instanceof SimilarAssetNotFoundError) throw notFound(error.message);
        if (error instanceof SimilarUnavailableError) throw badRequest(error.message);
        throw error;
      }
    });
    return sendJson(reply, 200, response);
  });
}

/** The work's result, or 503 when it runs past `timeoutMs` (checked by a timer and again on completion). */
async function withinTimeout<T>(work: () => Promise<T>, timeoutMs: number): Promise<T> {
  const started = performance.now();
  const tooLate = () =>
    apiError(503, 'service_unavailable', `Search did not finish within ${timeoutMs / 1000} seconds`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooLate()), timeoutMs);
  });
  try {
    const result = await Promise.race([work(), timeout]);
    if (performance.now() - started > timeoutMs) throw tooLate();
    return result;
  } finally {
    clearTimeout(timer);
  }
}
