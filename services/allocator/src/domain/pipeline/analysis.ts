// The CPU-heavy part of processing one asset — image decode and derivatives with the built-in embedding,
// document text extraction and chunking — run in worker threads (spec §3.3 WORKER_THREADS), so a big input
// never blocks the HTTP loop and a job past its timeout can have its thread killed and replaced.
import {
  reviveThreadError,
  type SerializedThreadError,
  type ThreadEntry,
  ThreadPool,
  threadEntry,
} from '@quintet/kernel/thread-pool';
import { chunkDocument, type DocumentChunk } from '../documents/chunk.js';
import { type DocumentFormat, type ExtractedDocument, extractDocument } from '../documents/extract.js';
import { embedTextHashed } from '../documents/hash-embedder.js';
import { PermanentProcessingError } from '../errors.js';
import { type AnalysedImage, analyseImage } from '../media/image.js';
import { embedSmallImage } from '../media/visual-embedder.js';

export interface ImageTask {
  task: 'image';
  /** a file path, or the image bytes (frames, embedded images) */
  input: string | Uint8Array;
  maxPixels: number;
  maxSize: number;
}

export interface ImageTaskResult {
  image: AnalysedImage;
  /** builtin-visual-v1 embedding of image.small */
  builtinEmbedding: Float32Array;
}

export interface DocumentTask {
  task: 'document';
  path: string;
  format: DocumentFormat;
  chunkSize: number;
  chunkOverlap: number;
  /** compute builtin-hash-v1 embeddings of the chunks (false when an ONNX sentence model embeds them) */
  hashEmbeddings: boolean;
}

export interface DocumentTaskResult {
  document: ExtractedDocument;
  chunks: DocumentChunk[];
  /** chunk i's embedding, when requested */
  embeddings: Float32Array[] | null;
}

export type AnalysisTask = ImageTask | DocumentTask;
export type AnalysisResult = ImageTaskResult | DocumentTaskResult;

/** Runs one task on the calling thread (the worker entry calls this; so can tests). */
export async function runAnalysisTask(task: AnalysisTask): Promise<AnalysisResult> {
  if (task.task === 'image') {
    const input = typeof task.input === 'string' ? task.input : Buffer.from(task.input);
    const image = await analyseImage(input, { maxPixels: task.maxPixels, maxSize: task.maxSize });
    return { image, builtinEmbedding: embedSmallImage(image.small) };
  }
  const document = await extractDocument(task.path, task.format);
  const chunks = chunkDocument(document.blocks, task.chunkSize, task.chunkOverlap);
  if (chunks.length === 0) throw new PermanentProcessingError('document has no extractable text');
  return {
    document,
    chunks,
    embeddings: task.hashEmbeddings ? chunks.map((chunk) => embedTextHashed(chunk.text)) : null,
  };
}

/** Rebuilds the processing error classes across the thread boundary. */
function reviveError(data: SerializedThreadError): Error {
  if (data.name === 'PermanentProcessingError') return new PermanentProcessingError(data.message);
  return reviveThreadError(data);
}

const ENTRY: ThreadEntry = threadEntry(import.meta.url, 'analysis-entry');

/** WORKER_THREADS worker threads running analysis tasks. */
export function createAnalysisPool(size: number): ThreadPool<AnalysisTask, AnalysisResult> {
  return new ThreadPool<AnalysisTask, AnalysisResult>({
    entry: ENTRY,
    size,
    reviveError,
    maxTasksPerWorker: 500,
  });
}
