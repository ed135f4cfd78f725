// The CPU-heavy part of indexing (spec §3.5, §7): parse → chunk → analyse (term frequencies) → local embedding.
// `analyseDocument` does it on the calling thread; `IngestWorkerPool` runs it in worker threads with a heap cap,
// so a large document neither blocks the HTTP loop nor can exhaust the process's memory. The threads are the
// kernel's ThreadPool; the worker side is ingest-worker-entry.ts.

import { EventEmitter } from 'node:events';
import {
  reviveThreadError,
  type SerializedThreadError,
  THREAD_MAX_OLD_GENERATION_MB,
  ThreadCrashedError,
  type ThreadExitReason,
  ThreadOutOfMemoryError,
  ThreadPool,
  ThreadPoolClosedError,
  threadEntry,
} from '@quintet/kernel/thread-pool';
import { contentTerms, termFrequenciesOf } from './text/analysis.js';
import { type ChunkDraft, type ChunkOptions, chunkBlocks, extractedTokenCount } from './text/chunk.js';
import { localEmbeddingOfTerms } from './text/embedding.js';
import { ParseError, type ParseOptions, parseDocument } from './text/parse.js';

/** Default heap cap (V8 old generation) of one ingestion worker thread. */
export const INGEST_WORKER_MAX_OLD_GENERATION_MB = THREAD_MAX_OLD_GENERATION_MB;
/** How much lower than the process's the ingestion workers' scheduling priority is (Linux nice increment). */
export const INGEST_WORKER_NICENESS = 10;
/** An ingestion worker idle this long is stopped; the next document starts a new one (~0.1 s). */
export const INGEST_WORKER_IDLE_MS = 5_000;
export const DOCUMENT_TOO_LARGE_MESSAGE = 'Document too large to process in memory';

export interface AnalyseRequest {
  path: string;
  mimeType: string;
  parse: ParseOptions;
  chunk: ChunkOptions;
  /** dimension of the local embedding computed per chunk; null: none (no pgvector, or a remote provider) */
  embeddingDim: number | null;
}

export interface AnalysedChunk extends ChunkDraft {
  /** JSON of the chunk's term → frequency record (the `terms` column) */
  termsJson: string;
  /** content terms with repeats (the `term_count` column) */
  termCount: number;
}

/** Consecutive chunks of a document, as analysis hands them over. */
export interface AnalysedChunks {
  chunks: AnalysedChunk[];
  /** chunk i's local embedding is [i × dim, (i + 1) × dim); null when none was requested */
  embeddings: Float32Array<ArrayBuffer> | null;
}

/** What is known of a document once all its chunks have been handed over. */
export interface DocumentSummary {
  chunkCount: number;
  /** PDF pages or slides; null for other formats */
  pageCount: number | null;
  /** estimated tokens of the extracted text without the chunk overlap (what indexing is charged on) */
  tokenCount: number;
}

/**
 * Chunks analysed per hand-over: the first ones are written to the database while the rest are still being
 * analysed, instead of after the whole document (a 10 MB text is ~10,000 chunks and seconds of analysis).
 */
export const ANALYSIS_BATCH_CHUNKS = 250;

/**
 * Parses, chunks and analyses one document on this thread, handing its chunks to `onChunks` in order, in runs
 * of ANALYSIS_BATCH_CHUNKS.
 */
export async function analyseDocument(
  request: AnalyseRequest,
  onChunks: (chunks: AnalysedChunks) => void,
): Promise<DocumentSummary> {
  const parsed = await parseDocument(request.path, request.mimeType, request.parse);
  const drafts = chunkBlocks(parsed.blocks, request.chunk);
  const dim = request.embeddingDim;
  for (let start = 0; start < drafts.length; start += ANALYSIS_BATCH_CHUNKS) {
    const batch = drafts.slice(start, start + ANALYSIS_BATCH_CHUNKS);
    const embeddings = dim === null ? null : new Float32Array(batch.length * dim);
    const chunks = batch.map((draft, index): AnalysedChunk => {
      // One analysis per chunk serves both the term frequencies and the local embedding.
      const terms = contentTerms(draft.text);
      const frequencies = termFrequenciesOf(terms);
      if (embeddings !== null && dim !== null) embeddings.set(localEmbeddingOfTerms(terms, dim), index * dim);
      return { ...draft, termsJson: JSON.stringify(frequencies.terms), termCount: frequencies.count };
    });
    onChunks({ chunks, embeddings });
  }
  return {
    chunkCount: drafts.length,
    pageCount: parsed.pageCount,
    tokenCount: extractedTokenCount(parsed.blocks),
  };
}

// ---- messages between the pool and a worker ----

/**
 * AnalysedChunks as a few large values: cloning hundreds of small objects would hold the receiving event loop,
 * one long string is a copy, and the typed arrays are transferred.
 */
export interface PackedChunks {
  /** every chunk's text, concatenated */
  texts: string;
  /** every chunk's terms JSON, concatenated */
  termsJson: string;
  /** per chunk: ordinal, page (−1: none), text length, terms JSON length, token count, term count */
  fields: Int32Array<ArrayBuffer>;
  embeddings: Float32Array<ArrayBuffer> | null;
}

const FIELDS_PER_CHUNK = 6;

/** The worker's form of a run of chunks; its typed arrays are transferred (see ingest-worker-entry.ts). */
export function packChunks(analysed: AnalysedChunks): PackedChunks {
  const fields = new Int32Array(analysed.chunks.length * FIELDS_PER_CHUNK);
  analysed.chunks.forEach((chunk, index) => {
    fields.set(
      [
        chunk.ordinal,
        chunk.page ?? -1,
        chunk.text.length,
        chunk.termsJson.length,
        chunk.tokenCount,
        chunk.termCount,
      ],
      index * FIELDS_PER_CHUNK,
    );
  });
  return {
    texts: analysed.chunks.map((chunk) => chunk.text).join(''),
    termsJson: analysed.chunks.map((chunk) => chunk.termsJson).join(''),
    fields,
    embeddings: analysed.embeddings,
  };
}

/** The AnalysedChunks a PackedChunks stands for. */
export function unpackChunks(packed: PackedChunks): AnalysedChunks {
  const { fields } = packed;
  const chunks: AnalysedChunk[] = [];
  let textAt = 0;
  let termsAt = 0;
  for (let at = 0; at < fields.length; at += FIELDS_PER_CHUNK) {
    const page = fields[at + 1] as number;
    const textLength = fields[at + 2] as number;
    const termsLength = fields[at + 3] as number;
    chunks.push({
      ordinal: fields[at] as number,
      page: page < 0 ? null : page,
      text: packed.texts.slice(textAt, textAt + textLength),
      termsJson: packed.termsJson.slice(termsAt, termsAt + termsLength),
      tokenCount: fields[at + 4] as number,
      termCount: fields[at + 5] as number,
    });
    textAt += textLength;
    termsAt += termsLength;
  }
  return { chunks, embeddings: packed.embeddings };
}

/** ParseError keeps its class across the thread boundary: a parse failure is permanent, not retried. */
function reviveError(data: SerializedThreadError): Error {
  return data.name === 'ParseError' ? new ParseError(data.message) : reviveThreadError(data);
}

// ---- the pool ----

/** The worker ran out of its heap cap: the document is too large (a permanent failure, not retried). */
export class DocumentTooLargeError extends Error {
  override name = 'DocumentTooLargeError';
  constructor(options?: { cause?: unknown }) {
    super(DOCUMENT_TOO_LARGE_MESSAGE, options);
  }
}

/** The worker died without an answer for another reason than memory. */
export class IngestWorkerCrashedError extends Error {
  override name = 'IngestWorkerCrashedError';
}

export class IngestWorkerPoolClosedError extends Error {
  override name = 'IngestWorkerPoolClosedError';
  constructor() {
    super('The ingestion worker pool is closed');
  }
}

export type WorkerExitReason = ThreadExitReason;

export interface IngestWorkerPoolEvents {
  spawn: [threadId: number];
  /** a worker stopped: terminated by the pool (recycled, aborted, closed) or died (oom, crashed) */
  exit: [threadId: number, reason: WorkerExitReason];
}

export interface IngestWorkerPoolOptions {
  /** documents analysed at once (one worker thread each); more wait their turn */
  size: number;
  /** V8 old-generation cap of each worker (default INGEST_WORKER_MAX_OLD_GENERATION_MB) */
  maxOldGenerationSizeMb?: number;
  /** documents a worker analyses before it is replaced (default 50; 1 = a fresh worker per document) */
  maxJobsPerWorker?: number;
  /** a worker idle this long is stopped (default INGEST_WORKER_IDLE_MS) */
  idleTimeoutMs?: number;
}

const ENTRY = threadEntry(import.meta.url, 'ingest-worker-entry');

/** The pool's failures in this service's terms; an abort's reason passes through unchanged. */
function ingestFailure(error: unknown): unknown {
  if (error instanceof ThreadOutOfMemoryError) return new DocumentTooLargeError({ cause: error.cause });
  if (error instanceof ThreadPoolClosedError) return new IngestWorkerPoolClosedError();
  if (error instanceof ThreadCrashedError) {
    if (error.exitCode !== null)
      return new IngestWorkerCrashedError(
        `Indexing worker stopped unexpectedly (exit code ${error.exitCode})`,
      );
    const reason = error.cause instanceof Error ? error.cause.message : String(error.cause);
    return new IngestWorkerCrashedError(`Indexing worker failed: ${reason}`, { cause: error.cause });
  }
  return error;
}

/**
 * Up to `size` worker threads analysing documents, reused for `maxJobsPerWorker` documents (warm caches, no
 * start-up per document). A worker is terminated when its job aborts and replaced on demand after it died;
 * idle workers do not keep the process alive.
 */
export class IngestWorkerPool extends EventEmitter<IngestWorkerPoolEvents> {
  readonly #threads: ThreadPool<AnalyseRequest, DocumentSummary, PackedChunks>;

  constructor(options: IngestWorkerPoolOptions) {
    super();
    this.#threads = new ThreadPool<AnalyseRequest, DocumentSummary, PackedChunks>({
      entry: ENTRY,
      size: options.size,
      // Analysis is background work: on a busy machine the requests and the database thread, which writes the
      // chunks as they come, go first.
      niceness: INGEST_WORKER_NICENESS,
      maxOldGenerationSizeMb: options.maxOldGenerationSizeMb ?? INGEST_WORKER_MAX_OLD_GENERATION_MB,
      maxTasksPerWorker: options.maxJobsPerWorker ?? 50,
      // An analysing worker holds tens of MB (its heap, the parsers): between bursts of uploads it is let go.
      idleTimeoutMs: options.idleTimeoutMs ?? INGEST_WORKER_IDLE_MS,
      reviveError,
    });
    this.#threads.on('spawn', (threadId) => this.emit('spawn', threadId));
    this.#threads.on('exit', (threadId, reason) => this.emit('exit', threadId, reason));
  }

  /** Worker threads analysing a document right now. */
  get busyCount(): number {
    return this.#threads.busyCount;
  }

  /**
   * Analyses `request` in a worker, handing its chunks to `onChunks` as they are ready; rejects with
   * `signal.reason` when it aborts (the worker is terminated), or with what `onChunks` throws.
   */
  async run(
    request: AnalyseRequest,
    signal: AbortSignal,
    onChunks: (chunks: AnalysedChunks) => void,
  ): Promise<DocumentSummary> {
    try {
      return await this.#threads.run(request, signal, [], (packed) => onChunks(unpackChunks(packed)));
    } catch (error) {
      throw ingestFailure(error);
    }
  }

  /** Terminates every worker; running jobs reject. */
  async close(): Promise<void> {
    await this.#threads.close();
  }
}
