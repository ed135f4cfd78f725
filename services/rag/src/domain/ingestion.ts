// The ingestion job `index-document` (spec §3.5), at-least-once and idempotent: an atomic lease
// (PENDING → RUNNING), parse → chunk → analyse → embed (the CPU-heavy steps in a worker thread when the service
// runs jobs, see ingest-worker.ts), then ONE transaction that swaps the document's chunks, marks it
// DONE and writes the index cost row. A failure leaves the previous index (or none) untouched: no partial chunks.

import { copyIntoEmbedded, encodeBinaryCopy, isDatabaseUnavailable } from '@quintet/kernel/db';
import { NETWORK_UNAVAILABLE_CODES } from '@quintet/kernel/errors';
import type { Logger } from '@quintet/kernel/log';
import { type JobInfo, type JobQueue, type QueuedJob, RetryableJobError } from '@quintet/kernel/queue';
import { type RawBuilder, sql } from 'kysely';
import type { ModelPrice, RagConfig } from '../config-types.js';
import type { RagDb } from './database.js';
import {
  type AnalysedChunk,
  type AnalysedChunks,
  type AnalyseRequest,
  analyseDocument,
  type DocumentSummary,
  DocumentTooLargeError,
  IngestWorkerPool,
} from './ingest-worker.js';
import { INDEX_VERSION, type WrittenIndex } from './retrieval.js';
import { indexCostUsd, priceFor } from './text/costs.js';
import { toPgVector } from './text/embedding.js';
import { ParseError } from './text/parse.js';
import { runWatchdog } from './watchdog.js';

export const INDEX_DOCUMENT_JOB = 'index-document';
export const EMBED_BATCH_SIZE = 64;
/** Per-document cap on the uncompressed size of OOXML/ODF parts (spec §7). */
export const MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024;
export const LAST_ERROR_MAX_CHARS = 500;
/**
 * Chunks per staging batch. A statement holds the one embedded connection, so requests wait behind a whole
 * batch. R1 of bench/rag (10 MB of text; p95 of `GET /api/stores` answered while it is indexed), measured when
 * vectors still went in as text: 50 rows 7.4–7.6 s and 60–63 ms, 25 rows 7.8–8.7 s and 34–39 ms. With binary
 * vectors, 25 rows: 3.9–4.2 s and 21–31 ms.
 */
export const INSERT_BATCH_ROWS = 25;

/** Embeds texts (one vector per text, in order); errors with `status` 429/5xx or `retryable` are retried. */
export type EmbedFunction = (texts: string[], signal?: AbortSignal) => Promise<Float32Array[]>;

export interface IngestionDeps {
  db: RagDb;
  config: RagConfig;
  logger: Logger;
  embed: EmbedFunction;
  /**
   * Worker threads for parse → chunk → analyse, and for the embeddings too with EMBEDDING_PROVIDER=local
   * (remote providers are I/O: `embed` is called on this thread). Without it all of it runs on this thread.
   */
  worker?: IngestWorkerPool;
  /**
   * Given each index this process makes visible, as written (the server caches it for the first search);
   * when absent, the written rows are not kept.
   */
  onIndexed?: (index: WrittenIndex) => void;
}

export interface IndexDocumentOptions {
  /**
   * Take over a document left RUNNING by an earlier delivery of the same job (the queue re-delivers a job
   * whose worker died); otherwise a RUNNING document under a live lease is left alone.
   */
  takeOverRunning?: boolean;
}

/** 'failed': the document is now ERROR (no retry left, or a permanent error such as an unreadable file). */
export type IndexOutcome = 'done' | 'skipped' | 'failed';

/** A permanent indexing failure whose message is safe to show as is. */
export class IndexingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexingError';
  }
}

/** The index price (USD per million tokens) used for index cost rows and upload estimates. */
export function indexingPrice(config: Pick<RagConfig, 'modelPricing'>): ModelPrice {
  return priceFor('default', config.modelPricing);
}

/** `op-status`'s error text for a document (spec §3.4): null unless ERROR. */
export function operationError(status: string, lastError: string | null): string | null {
  return status === 'ERROR' ? `Indexing failed: ${lastError ?? 'unknown error'}` : null;
}

// A path starts a word (after a space, quote, bracket or `=`/`:`), so `application/pdf` is not one.
const PATH_PATTERN = /(?<=^|[\s'"`(=:])(?:[A-Za-z]:\\|\.{0,2}\/)[^\s'"`,;()<>]*(?:[\\/][^\s'"`,;()<>]*)*/g;
const SECRET_PATTERNS: [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [REDACTED]'],
  [/\b((?:api[_-]?)?key|token|secret|password|passwd)(\s*[=:]\s*)[^\s&,;]+/gi, '$1$2[REDACTED]'],
  [/\bAIza[0-9A-Za-z_-]{20,}/g, '[REDACTED]'],
  [/\bsk-[0-9A-Za-z_-]{16,}/g, '[REDACTED]'],
];

/** A failure reason fit for `last_error`: one line, no filesystem paths or secrets, ≤ 500 characters. */
export function sanitizeFailureReason(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  // URLs keep their host (useful: which provider failed) but lose the path; other absolute paths go entirely.
  message = message.replace(/\b(https?:\/\/[^/\s]+)\/\S*/gi, '$1');
  message = message.replace(PATH_PATTERN, (match, offset: number, whole: string) =>
    /https?:$/i.test(whole.slice(Math.max(0, offset - 6), offset)) ? match : '[path]',
  );
  for (const [pattern, replacement] of SECRET_PATTERNS) message = message.replace(pattern, replacement);
  message = message
    .replace(/\p{Cc}+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (message === '') message = 'unknown error';
  return message.length > LAST_ERROR_MAX_CHARS ? `${message.slice(0, LAST_ERROR_MAX_CHARS - 1)}…` : message;
}

/** Transient failures worth another attempt: provider 429/5xx/timeouts, network errors, database outages. */
export function isRetryableFailure(error: unknown): boolean {
  if (error instanceof RetryableJobError) return true;
  if (error instanceof IndexingError || error instanceof ParseError || error instanceof DocumentTooLargeError)
    return false;
  if (isDatabaseUnavailable(error)) return true;
  const candidate = error as {
    status?: unknown;
    statusCode?: unknown;
    retryable?: unknown;
    code?: unknown;
    name?: unknown;
  };
  if (candidate?.retryable === true) return true;
  const status = Number(candidate?.status ?? candidate?.statusCode);
  if (status === 429 || (status >= 500 && status <= 599)) return true;
  if (candidate?.name === 'TimeoutError') return true;
  return typeof candidate?.code === 'string' && NETWORK_UNAVAILABLE_CODES.has(candidate.code);
}

interface LeasedDocument {
  id: number;
  store_id: number;
  user_id: number;
  storage_path: string;
  mime_type: string;
  attempts: number;
}

/**
 * Indexes one document. Returns 'skipped' when there is nothing to do (deleted, DONE, RUNNING under a live
 * lease, or the lease was lost to another worker before the swap). Retryable failures with attempts left put
 * the document back to PENDING and throw RetryableJobError (the queue retries with backoff); other failures
 * set ERROR with a sanitized `last_error` and return 'failed'.
 */
export async function indexDocument(
  deps: IngestionDeps,
  documentId: number,
  signal: AbortSignal,
  options: IndexDocumentOptions = {},
): Promise<IndexOutcome> {
  const { db, config, logger } = deps;
  const lease = await leaseDocument(
    db,
    documentId,
    config.ingestJobTimeoutS,
    options.takeOverRunning ?? false,
  );
  if (lease === undefined) {
    logger.info({ event: 'ingest_skipped', document_id: documentId }, 'nothing to index');
    return 'skipped';
  }
  const started = performance.now();
  logger.info({ event: 'ingest_started', document_id: documentId, attempt: lease.attempts }, 'indexing');
  try {
    const committed = await untilAborted(signal, config.ingestJobTimeoutS, () =>
      buildAndSwap(deps, lease, signal),
    );
    if (!committed) {
      logger.warn(
        { event: 'ingest_lease_lost', document_id: documentId },
        'another job took the document over',
      );
      return 'skipped';
    }
    logger.info(
      { event: 'ingest_done', document_id: documentId, dur_ms: Math.round(performance.now() - started) },
      'indexed',
    );
    return 'done';
  } catch (error) {
    return recordFailure(deps, lease, error);
  }
}

/** Runs `work`, rejecting as soon as `signal` aborts (the late result of `work` is dropped; its swap then finds the lease gone). */
async function untilAborted<T>(signal: AbortSignal, timeoutS: number, work: () => Promise<T>): Promise<T> {
  const timeout = () => new IndexingTimeoutError(timeoutS);
  if (signal.aborted) throw timeout();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(timeout());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work(), aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The job ran past INGEST_JOB_TIMEOUT_S: a failed attempt, retried while attempts remain. */
class IndexingTimeoutError extends RetryableJobError {
  constructor(seconds: number) {
    super(`Timed out after ${seconds} s`);
    this.name = 'IndexingTimeoutError';
  }
}

async function leaseDocument(
  db: RagDb,
  documentId: number,
  timeoutS: number,
  takeOverRunning: boolean,
): Promise<LeasedDocument | undefined> {
  // A RUNNING lease is live for INGEST_JOB_TIMEOUT_S: no job may run longer, so an older one is abandoned.
  const { rows } = await sql<LeasedDocument>`
    update documents d set status = 'RUNNING', attempts = d.attempts + 1, status_updated_at = now()
    from stores s
    where d.id = ${documentId} and s.id = d.store_id and d.deleted_at is null and (
      d.status = 'PENDING' or (d.status = 'RUNNING' and (
        ${takeOverRunning} or d.status_updated_at < now() - make_interval(secs => ${timeoutS}))))
    returning d.id, d.store_id, s.user_id, d.storage_path, d.mime_type, d.attempts`.execute(db.kysely);
  return rows[0];
}

async function buildAndSwap(
  deps: IngestionDeps,
  lease: LeasedDocument,
  signal: AbortSignal,
): Promise<boolean> {
  const { db, config } = deps;
  const embedLocally = deps.worker !== undefined && db.vectorEnabled && config.embeddingProvider === 'local';
  const request: AnalyseRequest = {
    path: lease.storage_path,
    mimeType: lease.mime_type,
    parse: { pdfMaxPages: config.pdfMaxPages, maxUncompressedBytes: MAX_UNCOMPRESSED_BYTES },
    chunk: { chunkTokens: config.ragChunkTokens, overlapTokens: config.ragChunkOverlap },
    embeddingDim: embedLocally ? config.embeddingDim : null,
  };
  // The new generation is written in short statements while the document is still being analysed (invisible
  // to readers), then made visible together with DONE and the cost row in one small transaction: atomic for
  // readers, without holding PGlite's only connection for the seconds a large document takes to insert.
  const generation = await nextGeneration(db);
  const written: WrittenIndex['chunks'] | null = deps.onIndexed === undefined ? null : [];
  let visible = false;
  try {
    const summary = await analyseAndStage(deps, lease, request, generation, signal, written);
    if (summary.chunkCount === 0) throw new IndexingError('No extractable text');
    signal.throwIfAborted();
    // Charged on the extracted text without the chunk overlap (spec §3.5 step 5, §4.15).
    const tokens = summary.tokenCount;
    const cost = indexCostUsd(tokens, indexingPrice(config));
    const version = await db.kysely.transaction().execute(async (trx) => {
      const marked = await trx
        .updateTable('documents as d')
        .set({
          status: 'DONE',
          index_generation: generation,
          chunk_count: summary.chunkCount,
          page_count: summary.pageCount,
          token_count: tokens,
          last_error: null,
          status_updated_at: sql`now()`,
        })
        .where('d.id', '=', lease.id)
        .where('d.status', '=', 'RUNNING')
        .where('d.attempts', '=', lease.attempts)
        .returning(INDEX_VERSION.as('version'))
        .executeTakeFirst();
      if (marked === undefined) return null; // the lease was lost: change nothing
      await trx
        .insertInto('query_logs')
        .values({
          user_id: lease.user_id,
          store_id: lease.store_id,
          prompt_tokens: tokens,
          completion_tokens: 0,
          cost_usd: cost,
          model: 'INDEX',
          tags: JSON.stringify({ document_id: lease.id }),
        })
        .execute();
      return marked.version;
    });
    visible = version !== null;
    if (version !== null && written !== null)
      deps.onIndexed?.({ documentId: lease.id, version, chunks: written });
  } finally {
    // What is not visible now never will be: these staged rows (failure, lost lease), or every older
    // generation. Newer ones (a re-index started meanwhile) are left to their own job.
    await deleteChunks(
      db,
      lease.id,
      visible ? sql`generation < ${generation}` : sql`generation = ${generation}`,
    ).catch((error: unknown) =>
      deps.logger.warn(
        { event: 'ingest_cleanup_failed', document_id: lease.id, err: error },
        'chunk cleanup failed',
      ),
    );
  }
  return visible;
}

/**
 * Analyses the document (in a worker thread when there is a pool) and stages each run of chunks as soon as it is
 * handed over, one run after another, so that writing overlaps the analysis of the rest. Resolves once every
 * chunk is staged; a failure on either side stops the other, and nothing is still writing when it rejects.
 */
async function analyseAndStage(
  deps: IngestionDeps,
  lease: LeasedDocument,
  request: AnalyseRequest,
  generation: number,
  signal: AbortSignal,
  written: WrittenIndex['chunks'] | null,
): Promise<DocumentSummary> {
  const { db } = deps;
  const stagingFailed = new AbortController();
  const analysisSignal = AbortSignal.any([signal, stagingFailed.signal]);
  let staging: Promise<void> = Promise.resolve();
  const onChunks = (analysed: AnalysedChunks) => {
    staging = staging.then(async () => {
      const vectors = !db.vectorEnabled
        ? null
        : analysed.embeddings === null
          ? await embedInBatches(deps, analysed.chunks, signal)
          : vectorsOf(analysed, db.embeddingDim);
      await stageChunks(db, lease, analysed.chunks, vectors, generation, signal, written);
    });
    // The analysis (a worker thread) stops with the staging error as its reason.
    staging.catch((error: unknown) => stagingFailed.abort(error));
  };
  try {
    const summary = await (deps.worker?.run(request, analysisSignal, onChunks) ??
      analyseDocument(request, onChunks));
    await staging;
    return summary;
  } catch (error) {
    await staging.catch(() => {});
    throw error;
  }
}

async function nextGeneration(db: RagDb): Promise<number> {
  const { rows } = await sql<{
    generation: number;
  }>`select nextval('chunk_generations')::int as generation`.execute(db.kysely);
  const generation = rows[0]?.generation;
  if (generation === undefined) throw new Error('no chunk generation');
  return generation;
}

/** Deletes the document's chunks matching `which`, a batch at a time (their vectors go by cascade). */
async function deleteChunks(db: RagDb, documentId: number, which: RawBuilder<unknown>): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ id: number }>`
      delete from chunks where id in (
        select id from chunks where document_id = ${documentId} and ${which} limit ${INSERT_BATCH_ROWS * 5})
      returning id`.execute(db.kysely);
    if (rows.length === 0) return;
    await yieldToEventLoop();
  }
}

async function embedInBatches(
  deps: IngestionDeps,
  drafts: readonly AnalysedChunk[],
  signal: AbortSignal,
): Promise<Float32Array[]> {
  const expected = deps.db.embeddingDim;
  const vectors: Float32Array[] = [];
  for (let start = 0; start < drafts.length; start += EMBED_BATCH_SIZE) {
    signal.throwIfAborted();
    const texts = drafts.slice(start, start + EMBED_BATCH_SIZE).map((draft) => draft.text);
    const batch = await deps.embed(texts, signal);
    if (batch.length !== texts.length)
      throw new IndexingError(
        `The embedding provider returned ${batch.length} vectors for ${texts.length} texts`,
      );
    for (const vector of batch) {
      checkDimension(vector.length, expected);
      vectors.push(vector);
    }
    await yieldToEventLoop();
  }
  return vectors;
}

/** The worker's local embeddings, one view per chunk into its single array. */
function vectorsOf(analysed: AnalysedChunks, expected: number | null): Float32Array[] {
  const { chunks, embeddings } = analysed;
  if (embeddings === null || chunks.length === 0) return [];
  const dim = embeddings.length / chunks.length;
  checkDimension(dim, expected);
  return chunks.map((_, index) => embeddings.subarray(index * dim, (index + 1) * dim));
}

function checkDimension(dim: number, expected: number | null): void {
  if (expected !== null && dim !== expected)
    throw new IndexingError(
      `Embedding dimension ${dim} does not match the index (${expected}); check EMBEDDING_DIM`,
    );
}

/**
 * Writes the chunks (and vectors) of `generation` a batch at a time, with no transaction holding the connection
 * while this thread builds the next statement: on PostgreSQL the chunk rows and their vectors go in one statement
 * (a data-modifying CTE); on the embedded database the vectors follow in a binary copy (insertBatch).
 */
async function stageChunks(
  db: RagDb,
  lease: LeasedDocument,
  drafts: readonly AnalysedChunk[],
  vectors: Float32Array[] | null,
  generation: number,
  signal: AbortSignal,
  written: WrittenIndex['chunks'] | null,
): Promise<void> {
  for (let start = 0; start < drafts.length; start += INSERT_BATCH_ROWS) {
    signal.throwIfAborted();
    const batch = drafts.slice(start, start + INSERT_BATCH_ROWS);
    const batchVectors = vectors?.slice(start, start + batch.length) ?? null;
    const ids = await insertBatch(db, lease, batch, batchVectors, generation);
    if (written !== null)
      for (const [index, draft] of batch.entries())
        written.push({
          id: ids.get(draft.ordinal) as number,
          terms: draft.termsJson,
          termCount: draft.termCount,
          embedding: batchVectors?.[index] ?? null,
        });
    await yieldToEventLoop();
  }
}

/** Inserts one batch; returns the new chunk ids by ordinal. */
async function insertBatch(
  db: RagDb,
  lease: LeasedDocument,
  batch: readonly AnalysedChunk[],
  vectors: Float32Array[] | null,
  generation: number,
): Promise<Map<number, number>> {
  const chunks = db.kysely
    .insertInto('chunks')
    .values(
      batch.map((draft) => ({
        document_id: lease.id,
        store_id: lease.store_id,
        ordinal: draft.ordinal,
        page: draft.page,
        text: draft.text,
        token_count: draft.tokenCount,
        terms: draft.termsJson,
        term_count: draft.termCount,
        generation,
      })),
    )
    .returning(['id', 'ordinal']);
  const idsOf = (rows: readonly { id: number; ordinal: number }[]) =>
    new Map(rows.map((row) => [row.ordinal, row.id]));
  if (vectors === null) return idsOf(await chunks.execute());
  if (vectors.length !== batch.length) throw new Error('chunk/vector mismatch');
  if (db.dialect === 'pglite') {
    // Two statements: the vectors in PostgreSQL's binary form, which pgvector reads ~25× faster than their text
    // in WebAssembly. A failure between them leaves rows of an unpublished generation, removed with it.
    const ids = idsOf(await chunks.execute());
    const rows = batch.map((draft, index) => [
      ids.get(draft.ordinal) as number,
      lease.store_id,
      vectors[index] as Float32Array,
    ]);
    await copyIntoEmbedded(
      db.kysely,
      "copy chunk_vectors (chunk_id, store_id, embedding) from '/dev/blob' with (format binary)",
      encodeBinaryCopy(rows),
    );
    return ids;
  }
  // Ordinals are unique within a document's generation: they pair each new chunk id with its vector. The
  // vectors' insert runs to completion although the statement only returns the chunks' ids.
  const pairs = batch.map(
    (draft, index) => sql`(${draft.ordinal}::integer, ${toPgVector(vectors[index] as Float32Array)})`,
  );
  const { rows } = await sql<{ id: number; ordinal: number }>`
    with inserted as (${chunks}),
    vectors as (
      insert into chunk_vectors (chunk_id, store_id, embedding)
      select inserted.id, ${lease.store_id}::integer, pairs.embedding::vector
      from inserted join (values ${sql.join(pairs)}) as pairs (ordinal, embedding) using (ordinal))
    select id, ordinal from inserted`.execute(db.kysely);
  return idsOf(rows);
}

/** Lets timers, I/O and waiting requests' statements run between batches of a long write. */
function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

async function recordFailure(
  deps: IngestionDeps,
  lease: LeasedDocument,
  error: unknown,
): Promise<IndexOutcome> {
  const { db, config, logger } = deps;
  const reason = sanitizeFailureReason(error);
  const retry = isRetryableFailure(error) && lease.attempts < config.ingestMaxAttempts;
  const updated = await db.kysely
    .updateTable('documents')
    .set({ status: retry ? 'PENDING' : 'ERROR', last_error: reason, status_updated_at: sql`now()` })
    .where('id', '=', lease.id)
    .where('status', '=', 'RUNNING')
    .where('attempts', '=', lease.attempts)
    .executeTakeFirst();
  const fields = { document_id: lease.id, attempt: lease.attempts, reason };
  if (Number(updated.numUpdatedRows) === 0) {
    logger.warn({ event: 'ingest_lease_lost', ...fields }, 'indexing failed after the lease was lost');
    return 'skipped';
  }
  if (retry) {
    logger.warn({ event: 'ingest_retry', ...fields }, 'indexing failed; will retry');
    throw new RetryableJobError(reason, { cause: error });
  }
  logger.error({ event: 'ingest_failed', ...fields }, 'indexing failed');
  return 'failed';
}

// ---- the service around the queue ----

export interface IngestionService {
  /** queues indexing of a PENDING document; rejects when the queue does not accept the job */
  enqueue(documentId: number): Promise<void>;
  /**
   * Consumes `index-document` jobs in this process (default INGEST_CONCURRENCY parallel jobs), analysing
   * documents in as many worker threads (unless `worker` was given, or `cpuWork` is 'inline').
   */
  start(concurrency?: number): void;
  /**
   * Start-up recovery (spec §3.9), before start(): embedded (PGlite) mode treats RUNNING documents as stuck at
   * once (the process that ran them is gone); PENDING documents without a queued job are enqueued.
   */
  recoverOnStartup(): Promise<{ reset: number; failed: number; enqueued: number }>;
  /**
   * Stops taking jobs and waits up to `drainMs` for running ones (unfinished ones are recovered later), then
   * stops the worker threads it started.
   */
  close(drainMs: number): Promise<void>;
}

export interface IngestionServiceDeps extends IngestionDeps {
  queue: JobQueue;
  /** where start() runs the CPU-heavy steps when no `worker` pool is given (default 'worker') */
  cpuWork?: 'worker' | 'inline';
  /** heap cap of each worker thread the service starts (default INGEST_WORKER_MAX_OLD_GENERATION_MB) */
  workerMaxOldGenerationSizeMb?: number;
  /** told how each job attempt ended (the `rag_ingest_jobs_total{status}` counter) */
  onJobOutcome?: (status: IndexOutcome | 'retry') => void;
}

interface IndexJobPayload {
  documentId: number;
}

/** Backoff before retry `attempt` + 1: 1 s, 4 s, 16 s, … (spec §3.5). */
export function ingestBackoffMs(attempt: number): number {
  return 1000 * 4 ** Math.max(0, attempt - 1);
}

export function createIngestionService(deps: IngestionServiceDeps): IngestionService {
  const { db, config, logger, queue } = deps;
  let jobDeps: IngestionDeps = deps;
  /** the pool start() created (closed by close()); a pool passed in `deps.worker` belongs to the caller */
  let ownPool: IngestWorkerPool | null = null;

  /** One job id per PENDING state: duplicate enqueues of that state collapse, a later reset gets a new job. */
  async function jobIdFor(documentId: number): Promise<string | undefined> {
    const row = await db.kysely
      .selectFrom('documents')
      .select(['attempts', 'status_updated_at'])
      .where('id', '=', documentId)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : `doc-${documentId}-${row.attempts}-${row.status_updated_at.getTime()}`;
  }

  async function enqueue(documentId: number): Promise<void> {
    const jobId = (await jobIdFor(documentId)) ?? `doc-${documentId}-${Date.now()}`;
    const payload: IndexJobPayload = { documentId };
    await queue.add(INDEX_DOCUMENT_JOB, payload, { jobId, attempts: config.ingestMaxAttempts });
    logger.info({ event: 'ingest_enqueued', document_id: documentId, job_id: jobId }, 'indexing queued');
  }

  async function handle(job: QueuedJob<IndexJobPayload>): Promise<void> {
    const documentId = Number(job.payload.documentId);
    if (!Number.isSafeInteger(documentId)) {
      logger.error({ event: 'ingest_bad_job', job_id: job.id }, 'index job without a document id');
      return;
    }
    const outcome = await indexDocument(jobDeps, documentId, job.signal, {
      takeOverRunning: job.attempt > 1,
    });
    deps.onJobOutcome?.(outcome);
  }

  async function onFinalFailure(job: JobInfo<IndexJobPayload>, error: unknown): Promise<void> {
    // The handler records failures itself; this covers a job the queue gave up on without that (e.g. the
    // database was down while recording): the document must not stay PENDING/RUNNING with no job.
    const documentId = Number(job.payload.documentId);
    if (!Number.isSafeInteger(documentId)) return;
    await db.kysely
      .updateTable('documents')
      .set({ status: 'ERROR', last_error: sanitizeFailureReason(error), status_updated_at: sql`now()` })
      .where('id', '=', documentId)
      .where('status', 'in', ['PENDING', 'RUNNING'])
      .execute();
  }

  return {
    enqueue,
    start(concurrency = config.ingestConcurrency) {
      if (deps.worker === undefined && (deps.cpuWork ?? 'worker') === 'worker' && ownPool === null) {
        ownPool = new IngestWorkerPool({
          size: concurrency,
          ...(deps.workerMaxOldGenerationSizeMb === undefined
            ? {}
            : { maxOldGenerationSizeMb: deps.workerMaxOldGenerationSizeMb }),
        });
        jobDeps = { ...deps, worker: ownPool };
      }
      queue.process<IndexJobPayload>(INDEX_DOCUMENT_JOB, handle, {
        concurrency,
        timeoutMs: config.ingestJobTimeoutS * 1000,
        maxAttempts: config.ingestMaxAttempts,
        backoffMs: ingestBackoffMs,
        onFailed: (job: JobInfo<IndexJobPayload>, error: unknown, final: boolean) => {
          deps.onJobOutcome?.(final ? 'failed' : 'retry');
          if (!final) return;
          onFinalFailure(job, error).catch((failure: unknown) =>
            logger.error(
              { event: 'ingest_final_failure_unrecorded', err: failure, job_id: job.id },
              'could not mark ERROR',
            ),
          );
        },
      });
    },
    async recoverOnStartup() {
      const { reset, failed } =
        db.dialect === 'pglite'
          ? await runWatchdog(db, { enqueue }, { ttlMinutes: 0, maxAttempts: config.ingestMaxAttempts })
          : { reset: 0, failed: 0 };
      const pending = await db.kysely
        .selectFrom('documents')
        .select(['id', 'attempts', 'status_updated_at'])
        .where('status', '=', 'PENDING')
        .where('deleted_at', 'is', null)
        .orderBy('id')
        .execute();
      let enqueued = 0;
      for (const row of pending) {
        const jobId = `doc-${row.id}-${row.attempts}-${row.status_updated_at.getTime()}`;
        if (await queue.hasPending(INDEX_DOCUMENT_JOB, jobId)) continue;
        await enqueue(row.id);
        enqueued++;
      }
      if (reset + failed + enqueued > 0)
        logger.info(
          { event: 'ingest_recovered', reset, failed, enqueued },
          'ingestion recovered at start-up',
        );
      return { reset, failed, enqueued };
    },
    async close(drainMs) {
      try {
        await queue.close({ drainMs });
      } finally {
        await ownPool?.close();
        ownPool = null;
        jobDeps = deps;
      }
    },
  };
}
