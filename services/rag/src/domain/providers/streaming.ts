// What every remote generation provider shares: the event and error types, a streaming POST that yields the
// `data:` payloads of a Server-Sent-Events response with an idle timeout, and the retry rule of spec §3.7
// (connection/5xx/429/timeout failures before the first delta are retried; after it there is no retry).

export type ProviderEvent =
  | { type: 'delta'; text: string }
  | { type: 'usage'; promptTokens: number; completionTokens: number };

export interface PromptMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface GenerationRequest {
  model: string;
  /** fixed instructions + numbered sources (+ the request's own `system`) */
  system: string;
  /** the conversation history, then the user question last */
  messages: PromptMessage[];
}

export interface LlmProvider {
  readonly name: 'gemini' | 'local_openai';
  /** Streams one attempt; throws ProviderError. Aborting `signal` cancels the upstream request. */
  stream(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<ProviderEvent>;
}

/**
 * `rejected`: the provider refused the request (400/401/403/404) — never retried. `unavailable`: connection
 * failure, 5xx, 429, timeout or a stream cut short — retried before the first delta.
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    readonly kind: 'rejected' | 'unavailable',
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
  get retryable(): boolean {
    return this.kind === 'unavailable';
  }
}

const REJECTED_STATUSES = new Set([400, 401, 403, 404]);

/** The error for a non-2xx upstream status. */
export function statusError(status: number): Error {
  if (REJECTED_STATUSES.has(status))
    return new ProviderError('rejected', `provider answered ${status}`, status);
  if (status === 429 || status >= 500)
    return new ProviderError('unavailable', `provider answered ${status}`, status);
  return new Error(`provider answered ${status}`);
}

export interface StreamingPost {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  idleTimeoutMs: number;
}

/**
 * POSTs JSON and yields each `data:` payload of the SSE response. The idle timeout covers the wait for the
 * response and every gap between chunks. Returning early or aborting `signal` cancels the upstream request.
 */
export async function* streamSseData(post: StreamingPost, signal: AbortSignal): AsyncGenerator<string> {
  const upstream = new AbortController();
  const onAbort = () => upstream.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  let timedOut = false;
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      timedOut = true;
      upstream.abort();
    }, post.idleTimeoutMs);
  };
  const failure = (error: unknown): Error => {
    if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error('aborted');
    if (timedOut) return new ProviderError('unavailable', 'provider timed out');
    if (error instanceof ProviderError) return error;
    return new ProviderError('unavailable', 'provider connection failed');
  };
  try {
    arm();
    let response: Response;
    try {
      response = await fetch(post.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...post.headers },
        body: JSON.stringify(post.body),
        signal: upstream.signal,
      });
    } catch (error) {
      throw failure(error);
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel().catch(() => {});
      throw statusError(response.status);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      arm();
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw failure(error);
      }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        if (line.startsWith('data:')) yield line.slice(5).trimStart();
      }
    }
    const last = buffer.trim();
    if (last.startsWith('data:')) yield last.slice(5).trimStart();
  } finally {
    clearTimeout(idle);
    signal.removeEventListener('abort', onAbort);
    // Stops the upstream request when the consumer returned early (disconnect, budget, error frame).
    upstream.abort();
  }
}

export function parseJson(payload: string): unknown {
  try {
    return JSON.parse(payload);
  } catch {
    throw new ProviderError('unavailable', 'provider sent malformed data');
  }
}

export interface RetryOptions {
  /** retries after the first attempt (GEMINI_STREAM_RETRY_ATTEMPTS) */
  attempts: number;
  /** wait before retry number `retry` (1-based); default min(8, 2^(retry-1)) seconds */
  delayMs?: (retry: number) => number;
}

export function defaultRetryDelayMs(retry: number): number {
  return Math.min(8, 2 ** (retry - 1)) * 1000;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Streams with the retry rule; `onAttempt` hears of every attempt's outcome (metrics). */
export async function* streamWithRetries(
  provider: LlmProvider,
  request: GenerationRequest,
  signal: AbortSignal,
  options: RetryOptions,
  onAttempt?: (status: 'success' | 'error') => void,
): AsyncGenerator<ProviderEvent> {
  const delayMs = options.delayMs ?? defaultRetryDelayMs;
  for (let retry = 0; ; retry++) {
    let started = false;
    try {
      for await (const event of provider.stream(request, signal)) {
        if (event.type === 'delta') started = true;
        yield event;
      }
      onAttempt?.('success');
      return;
    } catch (error) {
      onAttempt?.('error');
      const retryable = error instanceof ProviderError && error.retryable;
      if (started || !retryable || retry >= options.attempts || signal.aborted) throw error;
      await sleep(delayMs(retry + 1), signal);
    }
  }
}
