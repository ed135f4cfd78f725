// What the pipeline and search need from the configured models (spec §3.6.2, §3.6.3, §3.7): the visual
// embedder (built-in or CLIP) and the text embedder for document chunks (built-in hash or ONNX sentence model).
import type { RgbImage } from './media/image.js';

/** `/health.embedder` (spec §3.17.3). */
export interface EmbedderStatus {
  model: string;
  dimension: number;
  text_search: boolean;
  requested: string;
  fallback_reason: string | null;
}

export interface MediaEmbedder {
  readonly status: EmbedderStatus;
  /** 512-d (EMBEDDING_DIM) L2-normalised embedding of a decoded image */
  embedImage(image: { small: RgbImage; jpeg: Buffer }): Promise<Float32Array>;
  /** the text tower (CLIP only); null with the built-in embedder, whose search is lexical */
  embedText(text: string): Promise<Float32Array> | null;
  /** zero-shot primary category (CLIP only) */
  zeroShotCategory(embedding: Float32Array): Promise<string | null>;
  close(): Promise<void>;
}

export interface TextEmbedder {
  readonly modelId: string;
  readonly dimension: number;
  /** true for an ONNX sentence model: chunk search also ranks by vector */
  readonly semantic: boolean;
  embed(text: string): Promise<Float32Array>;
  close(): Promise<void>;
}
