// Gemini over REST (spec §3.7): `streamGenerateContent?alt=sse` for answers and `batchEmbedContents` for
// embeddings. The API key travels only in the `x-goog-api-key` header, never in a URL.
import { postJson, toVector } from './openai-compatible.js';
import {
  type GenerationRequest,
  type LlmProvider,
  ProviderError,
  type ProviderEvent,
  parseJson,
  streamSseData,
} from './streaming.js';

export interface GeminiOptions {
  baseUrl: string;
  apiKey: string;
  temperature: number;
  maxOutputTokens: number;
  idleTimeoutMs: number;
}

interface GeminiChunk {
  candidates?: { content?: { parts?: { text?: unknown }[] } }[];
  usageMetadata?: { promptTokenCount?: unknown; candidatesTokenCount?: unknown };
}

function modelUrl(baseUrl: string, model: string, method: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/v1beta/models/${encodeURIComponent(model)}:${method}`;
}

export function geminiProvider(options: GeminiOptions): LlmProvider {
  return {
    name: 'gemini',
    async *stream(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<ProviderEvent> {
      const payloads = streamSseData(
        {
          url: `${modelUrl(options.baseUrl, request.model, 'streamGenerateContent')}?alt=sse`,
          headers: { 'x-goog-api-key': options.apiKey },
          body: {
            systemInstruction: { parts: [{ text: request.system }] },
            contents: request.messages.map((message) => ({
              role: message.role === 'assistant' ? 'model' : 'user',
              parts: [{ text: message.content }],
            })),
            generationConfig: { temperature: options.temperature, maxOutputTokens: options.maxOutputTokens },
          },
          idleTimeoutMs: options.idleTimeoutMs,
        },
        signal,
      );
      let usage: ProviderEvent | undefined;
      for await (const payload of payloads) {
        const chunk = parseJson(payload) as GeminiChunk;
        for (const part of chunk.candidates?.[0]?.content?.parts ?? []) {
          if (typeof part.text === 'string' && part.text !== '') yield { type: 'delta', text: part.text };
        }
        const metadata = chunk.usageMetadata;
        if (metadata && typeof metadata.promptTokenCount === 'number') {
          usage = {
            type: 'usage',
            promptTokens: metadata.promptTokenCount,
            completionTokens:
              typeof metadata.candidatesTokenCount === 'number' ? metadata.candidatesTokenCount : 0,
          };
        }
      }
      // Gemini repeats the running usage on every chunk: the last one counts.
      if (usage) yield usage;
    },
  };
}

/** `batchEmbedContents` for a batch of texts, in input order. */
export async function geminiEmbeddings(
  options: { baseUrl: string; apiKey: string; model: string; timeoutMs: number },
  texts: readonly string[],
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  const model = options.model.startsWith('models/') ? options.model.slice(7) : options.model;
  const body = await postJson(
    modelUrl(options.baseUrl, model, 'batchEmbedContents'),
    { 'x-goog-api-key': options.apiKey },
    { requests: texts.map((text) => ({ model: `models/${model}`, content: { parts: [{ text }] } })) },
    options.timeoutMs,
    signal,
  );
  const embeddings = (body as { embeddings?: { values?: unknown }[] }).embeddings;
  if (!Array.isArray(embeddings) || embeddings.length !== texts.length) {
    throw new ProviderError('unavailable', 'embedding response has the wrong shape');
  }
  return embeddings.map((item) => toVector(item.values));
}
