// Which answerer and which embedder the configuration selects (spec §3.6, §3.7): the offline extractive
// answerer for gemini_hosted stores in mock mode, Gemini for gemini_hosted otherwise, the OpenAI-compatible
// server for local_openai stores; embeddings from the local feature hashing, Gemini or the OpenAI-compatible server.
import type { RagConfig } from '../../config-types.js';
import type { RagBackend } from '../schema.js';
import { localEmbedding } from '../text/embedding.js';
import { geminiEmbeddings, geminiProvider } from './gemini.js';
import { openAiCompatibleEmbeddings, openAiCompatibleProvider } from './openai-compatible.js';
import type { LlmProvider } from './streaming.js';

export type ProviderName = 'offline' | 'gemini' | 'local_openai';

export {
  type GenerationRequest,
  type LlmProvider,
  type PromptMessage,
  ProviderError,
  type ProviderEvent,
  streamWithRetries,
} from './streaming.js';

const DEFAULT_GEMINI_EMBEDDING_MODEL = 'text-embedding-004';
/** the batch size of remote embedding calls (spec §3.5) */
export const EMBEDDING_BATCH = 64;

/** The provider that answers questions on a store of `backend`. */
export function providerNameFor(
  config: Pick<RagConfig, 'geminiMockMode'>,
  backend: RagBackend,
): ProviderName {
  if (backend === 'local_openai') return 'local_openai';
  return config.geminiMockMode ? 'offline' : 'gemini';
}

/** The remote client for a provider name other than `offline`. */
export function createLlmProvider(config: RagConfig, name: 'gemini' | 'local_openai'): LlmProvider {
  const common = {
    temperature: config.llmTemperature,
    maxOutputTokens: config.llmMaxOutputTokens,
    idleTimeoutMs: config.llmStreamIdleTimeoutS * 1000,
  };
  if (name === 'gemini') {
    return geminiProvider({ ...common, baseUrl: config.geminiApiBaseUrl, apiKey: config.geminiApiKey ?? '' });
  }
  return openAiCompatibleProvider({
    ...common,
    baseUrl: config.localLlmBaseUrl ?? '',
    apiKey: config.localLlmApiKey,
  });
}

/** The default model of a store backend. */
export function defaultModelFor(config: RagConfig, backend: RagBackend): string {
  return backend === 'local_openai'
    ? (config.localLlmDefaultModel ?? config.defaultModel)
    : config.defaultModel;
}

/** The models a store backend accepts (spec §3.7). */
export function allowedModelsFor(config: RagConfig, backend: RagBackend): string[] {
  if (backend === 'gemini_hosted') return [...config.allowedModels];
  const models = [...config.localLlmModels];
  if (config.localLlmDefaultModel && !models.includes(config.localLlmDefaultModel)) {
    models.unshift(config.localLlmDefaultModel);
  }
  return models;
}

/**
 * Embeds texts with the configured EMBEDDING_PROVIDER, in batches of 64. Remote failures throw ProviderError
 * (`retryable` for connection failures, 429/5xx and timeouts).
 */
export function createEmbedder(
  config: Pick<
    RagConfig,
    | 'embeddingProvider'
    | 'embeddingModel'
    | 'embeddingDim'
    | 'geminiApiBaseUrl'
    | 'geminiApiKey'
    | 'geminiIngestionTimeoutS'
    | 'localLlmBaseUrl'
    | 'localLlmApiKey'
    | 'localLlmDefaultModel'
  >,
): (texts: string[], signal?: AbortSignal) => Promise<Float32Array[]> {
  const timeoutMs = config.geminiIngestionTimeoutS * 1000;
  const batch =
    (embedBatch: (texts: string[], signal?: AbortSignal) => Promise<Float32Array[]>) =>
    async (texts: string[], signal?: AbortSignal) => {
      const vectors: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += EMBEDDING_BATCH) {
        vectors.push(...(await embedBatch(texts.slice(start, start + EMBEDDING_BATCH), signal)));
      }
      return vectors;
    };
  switch (config.embeddingProvider) {
    case 'gemini':
      return batch((texts, signal) =>
        geminiEmbeddings(
          {
            baseUrl: config.geminiApiBaseUrl,
            apiKey: config.geminiApiKey ?? '',
            model: config.embeddingModel ?? DEFAULT_GEMINI_EMBEDDING_MODEL,
            timeoutMs,
          },
          texts,
          signal,
        ),
      );
    case 'local_openai':
      return batch((texts, signal) =>
        openAiCompatibleEmbeddings(
          {
            baseUrl: config.localLlmBaseUrl ?? '',
            apiKey: config.localLlmApiKey,
            model: config.embeddingModel ?? config.localLlmDefaultModel ?? '',
            timeoutMs,
          },
          texts,
          signal,
        ),
      );
    default:
      return async (texts) => texts.map((text) => localEmbedding(text, config.embeddingDim));
  }
}
