// One chat answer as a Server-Sent-Events stream (spec §3.7): the prompt, the offline extractive answerer or a
// remote provider with retries, citations with snippets and highlights, the error frames, the mid-stream budget
// (§3.8), stream slots and backpressure, and what is persisted afterwards (query_logs row, assistant message).
import { randomUUID } from 'node:crypto';
import type { Logger } from '@quintet/kernel/log';
import type { RagConfig } from '../config-types.js';
import type { RagMetrics } from '../http/metrics.js';
import type { StreamReservation } from './budgets.js';
import { guardDatabase, type RagDb } from './database.js';
import {
  createLlmProvider,
  type GenerationRequest,
  type PromptMessage,
  ProviderError,
  type ProviderName,
  streamWithRetries,
} from './providers/index.js';
import type { Candidate } from './retrieval.js';
import { recentMessages, recordAssistantTurn } from './sessions.js';
import type { SseStream } from './sse.js';
import type { StreamSlot, StreamSlots } from './stream-slots.js';
import { estimateTokens } from './text/analysis.js';
import { type ContextChunk, citedNumbers, extractiveAnswer, snippetAndHighlights } from './text/answer.js';
import { priceFor, queryCostUsd, Usd } from './text/costs.js';

export const MAX_QUESTION_CHARS = 32_000;
/** stored messages of the session used as history when the request carries none */
export const HISTORY_MESSAGES = 50;

export type ErrorCode =
  | 'stream_capacity_exceeded'
  | 'stream_backpressure'
  | 'upstream_unavailable'
  | 'upstream_rejected'
  | 'unexpected_error'
  | 'budget_exceeded';

/** The error frames of spec §3.7: status, retryAfterMs and the exact message of each code. */
export const ERROR_FRAMES: Readonly<
  Record<ErrorCode, { status: number; retryAfterMs?: number; message: string }>
> = {
  stream_capacity_exceeded: { status: 503, retryAfterMs: 500, message: 'Server is busy. Please try again.' },
  stream_backpressure: {
    status: 503,
    retryAfterMs: 250,
    message: 'Client too slow to receive stream. Please retry.',
  },
  upstream_unavailable: {
    status: 503,
    retryAfterMs: 1000,
    message: 'Service temporarily unavailable. Please try again.',
  },
  upstream_rejected: { status: 502, message: 'The model provider rejected the request.' },
  unexpected_error: {
    status: 500,
    message: 'An error occurred processing your request. Please try again.',
  },
  budget_exceeded: { status: 402, message: 'Monthly budget exceeded' },
};

export function errorFrame(code: ErrorCode): Record<string, unknown> {
  const { status, retryAfterMs, message } = ERROR_FRAMES[code];
  return {
    type: 'error',
    code,
    message,
    errorText: message,
    status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

const INSTRUCTIONS = [
  'You answer questions using only the numbered sources below.',
  'Cite the sources you use with their markers, like [1] or [2], right after the statement they support.',
  'Do not use any other knowledge.',
].join(' ');

/** Everything decided before the stream starts (the route's pre-stream checks). */
export interface ChatPlan {
  userId: number;
  sessionId: string;
  storeIds: number[];
  question: string;
  /** the request's messages before the current user turn; null → the session's stored history */
  history: PromptMessage[] | null;
  /** the id of the stored user message of this turn (history is read before it) */
  userMessageId: number | undefined;
  model: string;
  provider: ProviderName;
  /** the request's own `system` text, appended to the instructions */
  system: string | undefined;
  tags: Record<string, string | number | boolean | null>;
  projectId: number | null;
  /** the context chunks in citation-number order ([1] first); empty → refusal */
  context: Candidate[];
  /** true when the context is the summary intent's (the offline answerer quotes it) */
  summary: boolean;
  queryTerms: string[];
  idf: (term: string) => number;
}

export interface ChatDeps {
  config: RagConfig;
  db: RagDb;
  logger: Logger;
  metrics: RagMetrics;
  streams: StreamSlots;
}

/** The prompt cost estimate of the budget pre-check: question + context at the model's input price. */
export function estimatedPromptCostUsd(
  config: RagConfig,
  plan: Pick<ChatPlan, 'question' | 'context' | 'model'>,
): string {
  if (plan.context.length === 0) return '0';
  const tokens = estimateTokens(`${plan.question}\n${plan.context.map((chunk) => chunk.text).join('\n')}`);
  return queryCostUsd(tokens, 0, priceFor(plan.model, config.modelPricing));
}

/** `[n] <title> (page p)` + text for each chunk, while the total stays within RAG_MAX_CONTEXT_TOKENS. */
export function systemPrompt(
  config: RagConfig,
  context: readonly Candidate[],
  extra: string | undefined,
): string {
  const refusal = `If the sources do not contain the answer, reply exactly: ${config.ragNoAnswerText}`;
  const lines = [`${INSTRUCTIONS} ${refusal}`, '', 'Sources:'];
  let budget = config.ragMaxContextTokens;
  context.forEach((chunk, index) => {
    const heading = `[${index + 1}] ${chunk.title}${chunk.page === null ? '' : ` (page ${chunk.page})`}`;
    const entry = `${heading}\n${chunk.text}`;
    const tokens = estimateTokens(entry);
    if (tokens > budget) return;
    budget -= tokens;
    lines.push(entry, '');
  });
  if (extra !== undefined && extra.trim() !== '') lines.push(extra.trim());
  return lines.join('\n').trimEnd();
}

/** Oldest messages dropped until the history fits `32 000 − len(question) − len(system)` characters. */
export function trimHistory(history: readonly PromptMessage[], room: number): PromptMessage[] {
  const kept: PromptMessage[] = [];
  let used = 0;
  for (let index = history.length - 1; index >= 0; index--) {
    const message = history[index] as PromptMessage;
    used += message.content.length;
    if (used > room) break;
    kept.unshift(message);
  }
  return kept;
}

function contextChunk(candidate: Candidate): ContextChunk {
  return {
    chunkId: candidate.chunkId,
    documentId: candidate.documentId,
    storeId: candidate.storeId,
    title: candidate.title,
    filename: candidate.filename,
    mimeType: candidate.mimeType,
    page: candidate.page,
    text: candidate.text,
    score: candidate.fused,
  };
}

/** A `source-document` frame for citation number `n`. */
export function sourceFrame(
  n: number,
  chunk: Pick<
    Candidate,
    'chunkId' | 'documentId' | 'storeId' | 'title' | 'filename' | 'mimeType' | 'page' | 'text' | 'fused'
  >,
  queryTerms: readonly string[],
  citedSentence?: string,
): Record<string, unknown> {
  const { snippet, highlights } = snippetAndHighlights(chunk.text, queryTerms, citedSentence);
  return {
    type: 'source-document',
    sourceId: `cit-${n - 1}`,
    mediaType: chunk.mimeType,
    title: chunk.title,
    filename: chunk.filename,
    snippet,
    documentId: chunk.documentId,
    storeId: chunk.storeId,
    chunkId: chunk.chunkId,
    page: chunk.page,
    score: chunk.fused,
    highlights,
  };
}

const MARKER_AT_END = /\s*\[\d+\]\s*$/;

interface Outcome {
  answer: string;
  sources: Record<string, unknown>[];
  grounded: boolean;
  promptTokens: number;
  completionTokens: number;
}

/** A failure that ends the stream with an error frame. */
class StreamStop extends Error {
  constructor(readonly code: ErrorCode | 'client_disconnect') {
    super(code);
  }
}

/** The running answer of one stream: text so far, token counts, and the budget watch. */
class Turn {
  readonly textId = randomUUID();
  answer = '';
  promptTokens = 0;
  completionTokens = 0;
  reportedUsage = false;

  constructor(
    private readonly sse: SseStream,
    private readonly budgetCheck: (completionTokens: number) => boolean,
  ) {}

  /** Sends a text delta; `charged` deltas are checked against the stream's remaining budget first. */
  delta(text: string, charged = true): void {
    this.answer += text;
    if (!this.reportedUsage) this.completionTokens = estimateTokens(this.answer);
    if (charged && !this.budgetCheck(estimateTokens(this.answer))) throw new StreamStop('budget_exceeded');
    this.frame({ type: 'text-delta', id: this.textId, delta: text });
  }

  frame(frame: object): void {
    if (this.sse.disconnected.aborted) throw new StreamStop('client_disconnect');
    if (!this.sse.send(frame)) {
      throw new StreamStop(this.sse.disconnected.aborted ? 'client_disconnect' : 'stream_backpressure');
    }
  }
}

/**
 * Streams the answer of `plan` on `sse` (headers not yet sent), holding `reservation` until the final row is
 * written. Never throws: every failure ends with an error frame and `[DONE]` (or nothing, once the client left).
 */
export async function streamChat(
  deps: ChatDeps,
  plan: ChatPlan,
  sse: SseStream,
  headers: Record<string, string | number | string[] | undefined>,
  reservation: StreamReservation,
): Promise<void> {
  const { config, logger, metrics } = deps;
  const log = logger.child({ user_id: plan.userId, session_id: plan.sessionId, provider: plan.provider });
  const slot = await deps.streams.acquire(sse.disconnected).catch(() => null);
  sse.open(headers, plan.sessionId);
  if (slot === null) {
    reservation.release();
    log.warn({ event: 'chat_stream_rejected', code: 'stream_capacity_exceeded' }, 'chat_stream_rejected');
    sse.send(errorFrame('stream_capacity_exceeded'));
    sse.end();
    return;
  }
  metrics.activeStreams.set(deps.streams.active);
  const upstream = new AbortController();
  const stopUpstream = () => upstream.abort();
  sse.disconnected.addEventListener('abort', stopUpstream, { once: true });
  slot.shutdown.addEventListener('abort', stopUpstream, { once: true });

  const price = priceFor(plan.model, config.modelPricing);
  const remaining = reservation.remainingUsd();
  const estimatedPrompt = estimateTokens(
    `${plan.question}\n${plan.context.map((chunk) => chunk.text).join('\n')}`,
  );
  const withinBudget = (promptTokens: number, completionTokens: number) =>
    remaining === null ||
    !new Usd(queryCostUsd(promptTokens, completionTokens, price)).greaterThan(remaining);
  const turn = new Turn(sse, (completion) =>
    withinBudget(turn.reportedUsage ? turn.promptTokens : estimatedPrompt, completion),
  );
  const started = Date.now();
  log.info(
    { event: 'chat_stream_started', store_ids: plan.storeIds, model: plan.model },
    'chat_stream_started',
  );
  try {
    turn.frame({ type: 'start', messageId: randomUUID() });
    turn.frame({ type: 'text-start', id: turn.textId });
    const outcome =
      plan.context.length === 0
        ? refuse(config, turn)
        : plan.provider === 'offline'
          ? answerOffline(config, plan, turn)
          : await answerWithLlm(deps, plan, turn, upstream.signal, slot);
    if (!withinBudget(outcome.promptTokens, outcome.completionTokens))
      throw new StreamStop('budget_exceeded');
    turn.frame({ type: 'text-end', id: turn.textId });
    for (const source of outcome.sources) turn.frame(source);
    const costUsd =
      outcome.promptTokens + outcome.completionTokens === 0
        ? '0'
        : queryCostUsd(outcome.promptTokens, outcome.completionTokens, price);
    await writeQueryLog(deps.db, plan, {
      promptTokens: outcome.promptTokens,
      completionTokens: outcome.completionTokens,
      costUsd,
    });
    await recordAssistantTurn(deps.db, {
      sessionId: plan.sessionId,
      userId: plan.userId,
      storeId: plan.storeIds[0] as number,
      content: outcome.answer.trim(),
      sources: outcome.sources,
    });
    turn.frame({
      type: 'finish',
      finishReason: 'stop',
      promptTokens: outcome.promptTokens,
      completionTokens: outcome.completionTokens,
      usage: {
        prompt_tokens: outcome.promptTokens,
        completion_tokens: outcome.completionTokens,
        model: plan.model,
      },
      provider: plan.provider,
      grounded: outcome.grounded,
      costUsd: Number(costUsd),
    });
    if (!outcome.grounded) metrics.refusals.inc();
    metrics.llmTokens.inc({ model: plan.model, type: 'prompt' }, outcome.promptTokens);
    metrics.llmTokens.inc({ model: plan.model, type: 'completion' }, outcome.completionTokens);
    log.info(
      {
        event: 'chat_stream_completed',
        grounded: outcome.grounded,
        prompt_tokens: outcome.promptTokens,
        completion_tokens: outcome.completionTokens,
        sources: outcome.sources.length,
        dur_ms: Date.now() - started,
      },
      'chat_stream_completed',
    );
    sse.end();
  } catch (error) {
    upstream.abort();
    const code = failureCode(error, sse, slot);
    log.warn(
      {
        event: 'chat_stream_failed',
        code,
        completion_tokens: turn.completionTokens,
        dur_ms: Date.now() - started,
      },
      'chat_stream_failed',
    );
    if (!(error instanceof StreamStop || error instanceof ProviderError)) {
      log.error({ event: 'chat_stream_error', err: error }, 'chat_stream_error');
    }
    // Only the completion tokens already received are charged for a failed stream.
    await writeQueryLog(deps.db, plan, {
      promptTokens: turn.reportedUsage
        ? turn.promptTokens
        : plan.provider === 'offline'
          ? 0
          : estimatedPrompt,
      completionTokens: turn.completionTokens,
      costUsd: turn.completionTokens > 0 ? queryCostUsd(0, turn.completionTokens, price) : '0',
      errorCode: code,
    }).catch((logError: unknown) =>
      log.error({ event: 'chat_query_log_failed', err: logError }, 'chat_query_log_failed'),
    );
    if (code !== 'client_disconnect') sse.send(errorFrame(code));
    sse.end();
  } finally {
    sse.disconnected.removeEventListener('abort', stopUpstream);
    slot.shutdown.removeEventListener('abort', stopUpstream);
    reservation.release();
    slot.release();
    metrics.activeStreams.set(deps.streams.active);
  }
}

function failureCode(error: unknown, sse: SseStream, slot: StreamSlot): ErrorCode | 'client_disconnect' {
  if (sse.disconnected.aborted) return 'client_disconnect';
  if (error instanceof StreamStop) return error.code;
  if (slot.shutdown.aborted) return 'upstream_unavailable';
  if (error instanceof ProviderError)
    return error.kind === 'rejected' ? 'upstream_rejected' : 'upstream_unavailable';
  return 'unexpected_error';
}

function refuse(config: RagConfig, turn: Turn): Outcome {
  turn.reportedUsage = true;
  turn.delta(config.ragNoAnswerText, false);
  return {
    answer: config.ragNoAnswerText,
    sources: [],
    grounded: false,
    promptTokens: 0,
    completionTokens: 0,
  };
}

/** The offline extractive answer: cited sentences, or the summary context quoted; one delta per sentence. */
function answerOffline(config: RagConfig, plan: ChatPlan, turn: Turn): Outcome {
  let parts: string[];
  let cited: { chunk: Candidate; sentence: string | undefined }[];
  if (plan.summary) {
    parts = plan.context.map(
      (chunk, index) => `${index === 0 ? '' : ' '}${chunk.text.trim()} [${index + 1}]`,
    );
    cited = plan.context.map((chunk) => ({ chunk, sentence: undefined }));
  } else {
    const byId = new Map(plan.context.map((chunk) => [chunk.chunkId, chunk]));
    const result = extractiveAnswer(plan.question, plan.context.map(contextChunk), plan.idf, {
      sentences: config.ragAnswerSentences,
    });
    parts = result.parts;
    cited = result.cited.map((chunk, index) => ({
      chunk: byId.get(chunk.chunkId) as Candidate,
      sentence: result.parts
        .find((part) => part.trimEnd().endsWith(`[${index + 1}]`))
        ?.replace(MARKER_AT_END, '')
        .trim(),
    }));
  }
  if (parts.length === 0) return refuse(config, turn);
  for (const part of parts) turn.delta(part);
  const answer = parts.join('');
  const promptTokens = estimateTokens(`${plan.question}\n${cited.map(({ chunk }) => chunk.text).join('\n')}`);
  const completionTokens = estimateTokens(answer);
  turn.reportedUsage = true;
  turn.promptTokens = promptTokens;
  turn.completionTokens = completionTokens;
  return {
    answer,
    sources: cited.map(({ chunk, sentence }, index) =>
      sourceFrame(index + 1, chunk, plan.queryTerms, sentence),
    ),
    grounded: true,
    promptTokens,
    completionTokens,
  };
}

async function answerWithLlm(
  deps: ChatDeps,
  plan: ChatPlan,
  turn: Turn,
  signal: AbortSignal,
  slot: StreamSlot,
): Promise<Outcome> {
  const { config, metrics } = deps;
  const provider = createLlmProvider(config, plan.provider as 'gemini' | 'local_openai');
  const system = systemPrompt(config, plan.context, plan.system);
  const storedHistory =
    plan.history ?? (await recentMessages(deps.db, plan.sessionId, HISTORY_MESSAGES, plan.userMessageId));
  const history = trimHistory(storedHistory, MAX_QUESTION_CHARS - plan.question.length - system.length);
  const request: GenerationRequest = {
    model: plan.model,
    system,
    messages: [...history, { role: 'user', content: plan.question }],
  };
  const sent = estimateTokens(`${system}\n${request.messages.map((message) => message.content).join('\n')}`);
  let usage: { promptTokens: number; completionTokens: number } | undefined;
  const operation = 'stream_generate';
  const timer = Date.now();
  const onAttempt = (status: 'success' | 'error') => {
    metrics.llmCalls.inc({ provider: plan.provider, operation, status });
    if (plan.provider === 'gemini') {
      metrics.geminiCalls.inc({ operation, status });
      metrics.geminiLatency.observe({ operation }, (Date.now() - timer) / 1000);
    }
  };
  for await (const event of streamWithRetries(
    provider,
    request,
    signal,
    { attempts: config.geminiStreamRetryAttempts },
    onAttempt,
  )) {
    if (slot.shutdown.aborted) throw new StreamStop('upstream_unavailable');
    if (event.type === 'delta') turn.delta(event.text);
    else {
      usage = { promptTokens: event.promptTokens, completionTokens: event.completionTokens };
      turn.reportedUsage = true;
      turn.promptTokens = usage.promptTokens;
      turn.completionTokens = usage.completionTokens;
    }
  }
  const answer = turn.answer;
  if (answer.trim() === '') throw new ProviderError('unavailable', 'provider sent an empty answer');
  const completionTokens = usage?.completionTokens || estimateTokens(answer);
  const promptTokens = usage?.promptTokens || sent;
  if (answer.trim() === config.ragNoAnswerText.trim()) {
    return { answer, sources: [], grounded: false, promptTokens, completionTokens };
  }
  const numbers = citedNumbers(answer).filter((n) => n >= 1 && n <= plan.context.length);
  const cited =
    numbers.length > 0
      ? [...new Set(numbers)].sort((a, b) => a - b)
      : plan.context.map((_, index) => index + 1);
  return {
    answer,
    sources: cited.map((n) => sourceFrame(n, plan.context[n - 1] as Candidate, plan.queryTerms)),
    grounded: true,
    promptTokens,
    completionTokens,
  };
}

async function writeQueryLog(
  db: RagDb,
  plan: ChatPlan,
  row: { promptTokens: number; completionTokens: number; costUsd: string; errorCode?: string },
): Promise<void> {
  const tags = row.errorCode === undefined ? plan.tags : { ...plan.tags, error_code: row.errorCode };
  await guardDatabase(() =>
    db.kysely
      .insertInto('query_logs')
      .values({
        user_id: plan.userId,
        store_id: plan.storeIds[0] ?? null,
        prompt_tokens: row.promptTokens,
        completion_tokens: row.completionTokens,
        cost_usd: row.costUsd,
        model: plan.model.slice(0, 100),
        project_id: plan.projectId,
        tags: Object.keys(tags).length === 0 ? null : JSON.stringify(tags),
      })
      .execute(),
  );
}
