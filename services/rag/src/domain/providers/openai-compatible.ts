// OpenAI-compatible servers (Ollama, vLLM, llama.cpp server, LM Studio): streaming chat completions and
// embeddings (spec §3.6, §3.7).
import {
  type GenerationRequest,
  type LlmProvider,
  ProviderError,
  type ProviderEvent,
  parseJson,
  statusError,
  streamSseData,
} from './streaming.js';

export interface OpenAiCompatibleOptions {
  /** `…/v1` */
  baseUrl: string;
  /** blank or `EMPTY` means none */
  apiKey: string | undefined;
  temperature: number;
  maxOutputTokens: number;
  idleTimeoutMs: number;
}

function authorization(apiKey: string | undefined): Record<string, string> {
  const key = apiKey?.trim() ?? '';
  return key === '' || key === 'EMPTY' ? {} : { authorization: `Bearer ${key}` };
}

function endpoint(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${path}`;
}

interface CompletionChunk {
  choices?: { delta?: { content?: unknown } }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

export function openAiCompatibleProvider(options: OpenAiCompatibleOptions): LlmProvider {
  return {
    name: 'local_openai',
    async *stream(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<ProviderEvent> {
      const payloads = streamSseData(
        {
          url: endpoint(options.baseUrl, '/chat/completions'),
          headers: authorization(options.apiKey),
          body: {
            model: request.model,
            messages: [{ role: 'system', content: request.system }, ...request.messages],
            stream: true,
            stream_options: { include_usage: true },
            temperature: options.temperature,
            max_tokens: options.maxOutputTokens,
          },
          idleTimeoutMs: options.idleTimeoutMs,
        },
        signal,
      );
      for await (const payload of payloads) {
        if (payload === '[DONE]') return;
        const chunk = parseJson(payload) as CompletionChunk;
        const content = chunk.choices?.[0]?.delta?.content;
        if (typeof content === 'string' && content !== '') yield { type: 'delta', text: content };
        const usage = chunk.usage;
        if (usage && typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number') {
          yield {
            type: 'usage',
            promptTokens: usage.prompt_tokens,
            completionTokens: usage.completion_tokens,
          };
        }
      }
      // The stream closed without `[DONE]`: the answer may be cut short.
      throw new ProviderError('unavailable', 'provider stream ended early');
    },
  };
}

/** `POST {base}/embeddings` for a batch of texts, in input order. */
export async function openAiCompatibleEmbeddings(
  options: Pick<OpenAiCompatibleOptions, 'baseUrl' | 'apiKey'> & { model: string; timeoutMs: number },
  texts: readonly string[],
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  const body = await postJson(
    endpoint(options.baseUrl, '/embeddings'),
    authorization(options.apiKey),
    { model: options.model, input: texts },
    options.timeoutMs,
    signal,
  );
  const data = (body as { data?: { embedding?: unknown; index?: unknown }[] }).data;
  if (!Array.isArray(data) || data.length !== texts.length) {
    throw new ProviderError('unavailable', 'embedding response has the wrong shape');
  }
  const ordered = [...data].sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0));
  return ordered.map((item) => toVector(item.embedding));
}

export function toVector(values: unknown): Float32Array {
  if (!Array.isArray(values) || values.some((value) => typeof value !== 'number')) {
    throw new ProviderError('unavailable', 'embedding response has the wrong shape');
  }
  return Float32Array.from(values as number[]);
}

/** A JSON POST with a timeout; HTTP failures become ProviderError (retryable or not). */
export async function postJson(
  url: string,
  headers: Record<string, string>,
  body: unknown,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<unknown> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: combined,
    });
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw statusError(response.status);
    }
    return await response.json();
  } catch (error) {
    if (error instanceof ProviderError) throw error;
    if (signal?.aborted) throw error;
    throw new ProviderError(
      'unavailable',
      timeout.aborted ? 'provider timed out' : 'provider connection failed',
    );
  }
}
