// Chooses the models at start (spec §3.6.3, §3.7): EMBEDDING_MODEL → CLIP ONNX directory or the built-in
// visual embedder (with the reason when a requested model could not be loaded); TEXT_EMBEDDING_MODEL → the
// ONNX sentence model or builtin-hash-v1.
import type { Logger } from '@quintet/kernel/log';
import { BUILTIN_TEXT_MODEL, embedTextHashed, TEXT_DIMENSION } from './documents/hash-embedder.js';
import type { EmbedderStatus, MediaEmbedder, TextEmbedder } from './embedders.js';
import { BUILTIN_VISUAL_MODEL, embedSmallImage, VISUAL_DIMENSION } from './media/visual-embedder.js';
import { type ClipModel, loadClipModel, zeroShotCategory } from './models/clip.js';
import { resolveModelDirectory } from './models/resolve.js';
import { loadSentenceModel } from './models/sentence.js';

export interface ModelSettings {
  embeddingModel: string;
  embeddingModelRequired: boolean;
  embeddingDim: number;
  textEmbeddingModel: string;
  modelsDir: string;
}

/** Start-up refused because a required model is missing or does not fit the catalog. */
export class ModelRefusedError extends Error {
  override readonly name = 'ModelRefusedError';
}

function builtinMediaEmbedder(requested: string, fallbackReason: string | null): MediaEmbedder {
  const status: EmbedderStatus = {
    model: BUILTIN_VISUAL_MODEL,
    dimension: VISUAL_DIMENSION,
    text_search: false,
    requested,
    fallback_reason: fallbackReason,
  };
  return {
    status,
    embedImage: async (image) => embedSmallImage(image.small),
    embedText: () => null,
    zeroShotCategory: async () => null,
    close: async () => {},
  };
}

function clipMediaEmbedder(model: ClipModel, requested: string): MediaEmbedder {
  return {
    status: {
      model: model.modelId,
      dimension: model.dimension,
      text_search: true,
      requested,
      fallback_reason: null,
    },
    embedImage: (image) => model.embedImage(image.jpeg),
    embedText: (text) => model.embedText(text),
    zeroShotCategory: async (embedding) => (await zeroShotCategory(model, embedding)).category,
    close: () => model.close(),
  };
}

/** The visual embedder EMBEDDING_MODEL asks for, or the built-in one with a WARNING when it cannot load. */
export async function setupMediaEmbedder(settings: ModelSettings, logger: Logger): Promise<MediaEmbedder> {
  const requested = settings.embeddingModel;
  const resolved = resolveModelDirectory(requested, settings.modelsDir);
  let embedder: MediaEmbedder;
  if (resolved.kind === 'builtin') embedder = builtinMediaEmbedder(requested, null);
  else {
    let reason: string;
    if (resolved.kind === 'missing') reason = resolved.reason;
    else {
      try {
        const model = await loadClipModel(resolved.dir);
        embedder = clipMediaEmbedder(model, requested);
        reason = '';
      } catch (error) {
        reason = `cannot load ${resolved.dir}: ${(error as Error).message}`;
      }
    }
    if (reason !== '') {
      if (settings.embeddingModelRequired)
        throw new ModelRefusedError(`EMBEDDING_MODEL '${requested}' could not be loaded: ${reason}`);
      logger.warn(
        { requested, fallback: BUILTIN_VISUAL_MODEL, reason },
        'embedding model unavailable, using the built-in visual embedder',
      );
      embedder = builtinMediaEmbedder(requested, reason);
    }
  }
  // biome-ignore lint/style/noNonNullAssertion: every branch above assigns it
  const chosen = embedder!;
  if (chosen.status.dimension !== settings.embeddingDim) {
    await chosen.close();
    throw new ModelRefusedError(
      `EMBEDDING_DIM=${settings.embeddingDim} does not match the ${chosen.status.dimension}-dimensional model ${chosen.status.model}: set EMBEDDING_DIM=${chosen.status.dimension} (a catalog created with another dimension needs 'file-allocator reembed')`,
    );
  }
  return chosen;
}

/** The text embedder TEXT_EMBEDDING_MODEL asks for, or builtin-hash-v1 when it is missing. */
export async function setupTextEmbedder(settings: ModelSettings, logger: Logger): Promise<TextEmbedder> {
  const builtin: TextEmbedder = {
    modelId: BUILTIN_TEXT_MODEL,
    dimension: TEXT_DIMENSION,
    semantic: false,
    embed: async (text) => embedTextHashed(text),
    close: async () => {},
  };
  const resolved = resolveModelDirectory(settings.textEmbeddingModel, settings.modelsDir);
  if (resolved.kind !== 'directory') {
    if (resolved.kind === 'missing')
      logger.info(
        { requested: settings.textEmbeddingModel, reason: resolved.reason },
        'text embedding model not installed, using builtin-hash-v1',
      );
    return builtin;
  }
  try {
    const model = await loadSentenceModel(resolved.dir);
    if (model.dimension !== TEXT_DIMENSION) {
      await model.close();
      logger.warn(
        { requested: settings.textEmbeddingModel, dimension: model.dimension },
        `text embedding model is not ${TEXT_DIMENSION}-dimensional, using builtin-hash-v1`,
      );
      return builtin;
    }
    return {
      modelId: model.modelId,
      dimension: model.dimension,
      semantic: true,
      embed: (text) => model.embed(text),
      close: () => model.close(),
    };
  } catch (error) {
    logger.warn(
      { requested: settings.textEmbeddingModel, reason: (error as Error).message },
      'text embedding model could not be loaded, using builtin-hash-v1',
    );
    return builtin;
  }
}
