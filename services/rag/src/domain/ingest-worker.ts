// The CPU-heavy part of indexing (spec §3.5, §7): parse → chunk → analyse (term frequencies) → local embedding.
// `analyseDocument` does it on the calling thread; `IngestWorkerPool` runs it in worker threads with a heap cap,
// so a large document neither blocks the HTTP loop nor can exhaust the process's memory. The worker side is
// ingest-worker-entry.ts.

import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { contentTerms, termFrequenciesOf } from './text/analysis.js';
import { type ChunkDraft, type ChunkOptions, chunkBlocks, extractedTokenCount } from './text/chunk.js';
import { localEmbeddingOfTerms } from './text/embedding.js';
import { ParseError, type ParseOptions, parseDocument } from './text/parse.js';

/** Default heap cap (V8 old generation) of one ingestion worker thread. */
export const INGEST_WORKER_MAX_OLD_GENERATION_MB = 512;
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

export interface AnalysedDocument {
  chunks: AnalysedChunk[];
  /** PDF pages or slides; null for other formats */
  pageCount: number | null;
  /** estimated tokens of the extracted text without the chunk overlap (what indexing is charged on) */
  tokenCount: number;
  /** chunk i's local embedding is [i × dim, (i + 1) × dim); null when none was requested */
  embeddings: Float32Array<ArrayBuffer> | null;
}

/** Parses, chunks and analyses one document on this thread. */
export async function analyseDocument(request: AnalyseRequest): Promise<AnalysedDocument> {
  const parsed = await parseDocument(request.path, request.mimeType, request.parse);
  const drafts = chunkBlocks(parsed.blocks, request.chunk);
  const dim = request.embeddingDim;
  const embeddings = dim === null ? null : new Float32Array(drafts.length * dim);
  const chunks = drafts.map((draft, index): AnalysedChunk => {
    // One analysis per chunk serves both the term frequencies and the local embedding.
    const terms = contentTerms(draft.text);
    const frequencies = termFrequenciesOf(terms);
    if (embeddings !== null && dim !== null) embeddings.set(localEmbeddingOfTerms(terms, dim), index * dim);
    return { ...draft, termsJson: JSON.stringify(frequencies.terms), termCount: frequencies.count };
  });
  return {
    chunks,
    pageCount: parsed.pageCount,
    tokenCount: extractedTokenCount(parsed.blocks),
    embeddings,
  };
}

// ---- messages between the pool and a worker ----

/**
 * An AnalysedDocument as a few large values: cloning thousands of small objects would hold the receiving
 * event loop for tens of milliseconds, one long string is a copy, and the typed arrays are transferred.
 */
export interface PackedDocument {
  /** every chunk's text, concatenated */
  texts: string;
  /** every chunk's terms JSON, concatenated */
  termsJson: string;
  /** per chunk: ordinal, page (−1: none), text length, terms JSON length, token count, term count */
  fields: Int32Array<ArrayBuffer>;
  pageCount: number | null;
  tokenCount: number;
  embeddings: Float32Array<ArrayBuffer> | null;
}

const FIELDS_PER_CHUNK = 6;

export function packDocument(document: AnalysedDocument): PackedDocument {
  const fields = new Int32Array(document.chunks.length * FIELDS_PER_CHUNK);
  document.chunks.forEach((chunk, index) => {
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
    texts: document.chunks.map((chunk) => chunk.text).join(''),
    termsJson: document.chunks.map((chunk) => chunk.termsJson).join(''),
    fields,
    pageCount: document.pageCount,
    tokenCount: document.tokenCount,
    embeddings: document.embeddings,
  };
}

export function unpackDocument(packed: PackedDocument): AnalysedDocument {
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
  return {
    chunks,
    pageCount: packed.pageCount,
    tokenCount: packed.tokenCount,
    embeddings: packed.embeddings,
  };
}

export type WorkerReply =
  | { ok: true; document: PackedDocument }
  | { ok: false; error: { name: string; message: string; code?: string } };

/** The thrown value as the worker sends it back (errors do not keep their class across threads). */
export function serializeError(error: unknown): Extract<WorkerReply, { ok: false }>['error'] {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
  };
}

function deserializeError(data: Extract<WorkerReply, { ok: false }>['error']): Error {
  if (data.name === 'ParseError') return new ParseError(data.message);
  const error = new Error(data.message);
  error.name = data.name;
  if (data.code !== undefined) Object.assign(error, { code: data.code });
  return error;
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

export type WorkerExitReason = 'recycled' | 'aborted' | 'oom' | 'crashed' | 'closed';

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
}

interface PooledWorker {
  worker: Worker;
  threadId: number;
  jobs: number;
  /** set once the worker is stopping or has died */
  exitReason: WorkerExitReason | null;
}

interface WorkerEntry {
  url: URL;
  execArgv: string[] | undefined;
}

/**
 * The compiled entry next to this module (dist/); when this module runs from its TypeScript source (the
 * tests), the TypeScript entry, loaded through tsx.
 */
function workerEntry(): WorkerEntry {
  if (!import.meta.url.endsWith('.ts'))
    return { url: new URL('./ingest-worker-entry.js', import.meta.url), execArgv: undefined };
  return {
    url: new URL('./ingest-worker-entry.ts', import.meta.url),
    execArgv: ['--import', import.meta.resolve('tsx')],
  };
}

/**
 * Up to `size` worker threads analysing documents, reused for `maxJobsPerWorker` documents (warm caches, no
 * start-up per document). A worker is terminated when its job aborts and replaced on demand after it died;
 * idle workers do not keep the process alive.
 */
export class IngestWorkerPool extends EventEmitter<IngestWorkerPoolEvents> {
  readonly #size: number;
  readonly #maxOldGenerationSizeMb: number;
  readonly #maxJobsPerWorker: number;
  readonly #entry = workerEntry();
  readonly #idle: PooledWorker[] = [];
  readonly #busy = new Set<PooledWorker>();
  readonly #waiting: (() => void)[] = [];
  #closed = false;

  constructor(options: IngestWorkerPoolOptions) {
    super();
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new RangeError('size must be an integer ≥ 1');
    this.#size = options.size;
    this.#maxOldGenerationSizeMb = options.maxOldGenerationSizeMb ?? INGEST_WORKER_MAX_OLD_GENERATION_MB;
    this.#maxJobsPerWorker = Math.max(1, options.maxJobsPerWorker ?? 50);
  }

  /** Worker threads analysing a document right now. */
  get busyCount(): number {
    return this.#busy.size;
  }

  /** Analyses `request` in a worker; rejects with `signal.reason` when it aborts (the worker is terminated). */
  async run(request: AnalyseRequest, signal: AbortSignal): Promise<AnalysedDocument> {
    await this.#turn(signal);
    const pooled = this.#idle.pop() ?? this.#spawn();
    this.#busy.add(pooled);
    pooled.worker.ref();
    let reusable = false;
    try {
      const document = await this.#analyseOn(pooled, request, signal);
      pooled.jobs++;
      reusable = pooled.jobs < this.#maxJobsPerWorker;
      return document;
    } finally {
      this.#busy.delete(pooled);
      if (reusable && !this.#closed) {
        pooled.worker.unref();
        this.#idle.push(pooled);
      } else {
        this.#stop(pooled, this.#closed ? 'closed' : 'recycled');
      }
      this.#waiting.shift()?.();
    }
  }

  /** Terminates every worker; running jobs reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#idle, ...this.#busy];
    this.#idle.length = 0;
    for (const pooled of all) this.#stop(pooled, 'closed');
    for (const wake of this.#waiting.splice(0)) wake();
  }

  /** Resolves once fewer than `size` documents are being analysed. */
  async #turn(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.#closed) throw new IngestWorkerPoolClosedError();
      signal.throwIfAborted();
      if (this.#busy.size < this.#size) return;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = this.#waiting.indexOf(wake);
          if (index >= 0) this.#waiting.splice(index, 1);
          reject(signal.reason);
        };
        const wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.#waiting.push(wake);
      });
    }
  }

  #spawn(): PooledWorker {
    const worker = new Worker(this.#entry.url, {
      ...(this.#entry.execArgv === undefined ? {} : { execArgv: this.#entry.execArgv }),
      resourceLimits: { maxOldGenerationSizeMb: this.#maxOldGenerationSizeMb },
    });
    const pooled: PooledWorker = { worker, threadId: worker.threadId, jobs: 0, exitReason: null };
    // A worker that dies while idle is dropped from the pool (its 'error' must not become an uncaught one).
    worker.on('error', (error: Error) => {
      pooled.exitReason ??= isOutOfMemory(error) ? 'oom' : 'crashed';
    });
    worker.once('exit', () => {
      const index = this.#idle.indexOf(pooled);
      if (index >= 0) this.#idle.splice(index, 1);
      this.emit('exit', pooled.threadId, pooled.exitReason ?? 'crashed');
    });
    this.emit('spawn', pooled.threadId);
    return pooled;
  }

  #analyseOn(pooled: PooledWorker, request: AnalyseRequest, signal: AbortSignal): Promise<AnalysedDocument> {
    const { worker } = pooled;
    return new Promise<AnalysedDocument>((resolve, reject) => {
      let failure: Error | null = null;
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMessage = (reply: WorkerReply) => {
        cleanup();
        if (reply.ok) resolve(unpackDocument(reply.document));
        else reject(deserializeError(reply.error));
      };
      const onError = (error: Error) => {
        // 'exit' follows; remember why the worker died.
        failure = isOutOfMemory(error)
          ? new DocumentTooLargeError({ cause: error })
          : new IngestWorkerCrashedError(`Indexing worker failed: ${error.message}`, { cause: error });
      };
      const onExit = (exitCode: number) => {
        cleanup();
        const error =
          failure ??
          (this.#closed
            ? new IngestWorkerPoolClosedError()
            : new IngestWorkerCrashedError(`Indexing worker stopped unexpectedly (exit code ${exitCode})`));
        reject(error);
      };
      const onAbort = () => {
        cleanup();
        this.#stop(pooled, 'aborted');
        reject(signal.reason);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.once('exit', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
      worker.postMessage(request);
    });
  }

  /** Terminates a worker the pool no longer wants (its exit is reported with `reason`). */
  #stop(pooled: PooledWorker, reason: WorkerExitReason): void {
    const index = this.#idle.indexOf(pooled);
    if (index >= 0) this.#idle.splice(index, 1);
    if (pooled.exitReason !== null) return;
    pooled.exitReason = reason;
    pooled.worker.terminate().catch(() => {});
  }
}

function isOutOfMemory(error: Error): boolean {
  return (error as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY';
}
