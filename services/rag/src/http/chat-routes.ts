// `POST /api/chat` (spec §3.7): request parsing (AssistantUI/AI-SDK shapes, camel and snake aliases), the
// pre-stream checks answered as plain JSON errors in the spec's order, then the event stream (domain/chat.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ChatPlan, estimatedPromptCostUsd, MAX_QUESTION_CHARS, streamChat } from '../domain/chat.js';
import {
  allowedModelsFor,
  defaultModelFor,
  type PromptMessage,
  providerNameFor,
} from '../domain/providers/index.js';
import {
  isSummaryIntent,
  METADATA_FILTER_COLUMNS,
  retrievalSettings,
  searchCandidates,
  summaryContext,
} from '../domain/retrieval.js';
import { lastMessageId, recordUserTurn, sanitizeSessionId, sessionOwner } from '../domain/sessions.js';
import { SseStream } from '../domain/sse.js';
import type { RagContext } from './context.js';
import { detail, featureRateLimit, InputReader, requireUser } from './conventions.js';
import { queryEmbedding, readStoreIds } from './search-routes.js';
import { findOwnedStores } from './store-lookup.js';

/** camel → snake aliases; giving both forms of one field is a 422. */
const ALIASES: readonly [string, string][] = [
  ['storeIds', 'store_ids'],
  ['sessionId', 'session_id'],
  ['threadId', 'thread_id'],
];
const TEXT_KEYS = ['content', 'text', 'message', 'value', 'parts', 'values'] as const;
const MAX_TAGS = 5;
const TAG_KEY_MAX = 32;
const TAG_VALUE_MAX = 128;

type Scalar = string | number | boolean | null;

/** The text of a message's content: a string, a list of strings / `{type:"text", text}` parts. */
export function contentText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const parts = value.flatMap((part) => {
      if (typeof part === 'string') return [part];
      if (part !== null && typeof part === 'object') {
        const record = part as Record<string, unknown>;
        if ((record.type === undefined || record.type === 'text') && typeof record.text === 'string')
          return [record.text];
      }
      return [];
    });
    return parts.length > 0 ? parts.join('') : undefined;
  }
  return undefined;
}

/** The text of one AssistantUI/AI-SDK message (`content`, `text`, `message`, `value`, `parts`, `values`). */
export function messageText(message: Record<string, unknown>): string | undefined {
  for (const key of TEXT_KEYS) {
    const text = contentText(message[key]);
    if (text !== undefined) return text;
  }
  return undefined;
}

interface ParsedMessages {
  lastUserText: string | undefined;
  /** the messages before the last user message */
  history: PromptMessage[];
}

export function parseMessages(raw: unknown): ParsedMessages | null {
  if (!Array.isArray(raw)) return null;
  const messages = raw.flatMap((item) => {
    if (item === null || typeof item !== 'object') return [];
    const record = item as Record<string, unknown>;
    const role = record.role === 'assistant' ? 'assistant' : record.role === 'user' ? 'user' : null;
    const text = messageText(record);
    return role === null || text === undefined ? [] : [{ role, content: text } as PromptMessage];
  });
  let last = -1;
  messages.forEach((message, index) => {
    if (message.role === 'user') last = index;
  });
  if (last < 0) return { lastUserText: undefined, history: messages };
  return { lastUserText: messages[last]?.content, history: messages.slice(0, last) };
}

/** The first five scalar entries of `tags`, keys ≤ 32 and values ≤ 128 characters. */
export function keptTags(tags: Record<string, unknown>): Record<string, Scalar> {
  const kept: Record<string, Scalar> = {};
  for (const [key, value] of Object.entries(tags)) {
    if (Object.keys(kept).length >= MAX_TAGS) break;
    if (value !== null && typeof value === 'object') continue;
    if (typeof value === 'undefined') continue;
    kept[key.slice(0, TAG_KEY_MAX)] =
      typeof value === 'string' ? value.slice(0, TAG_VALUE_MAX) : (value as Scalar);
  }
  return kept;
}

function isScalar(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

/** The checked metadata filter, or a 400 message (spec §3.7). */
function metadataFilterOf(context: RagContext, raw: unknown): Record<string, unknown> {
  const { config } = context;
  if (!config.allowMetadataFilters) throw detail(400, 'Metadata filters are disabled on this deployment.');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw detail(400, 'metadataFilter must be an object');
  const allowed = new Set(
    config.metadataFilterAllowedKeys.filter((key) =>
      (METADATA_FILTER_COLUMNS as readonly string[]).includes(key),
    ),
  );
  for (const [key, value] of Object.entries(raw)) {
    if (!allowed.has(key)) throw detail(400, `Metadata filter key not allowed: ${key}`);
    const valid = isScalar(value) || (Array.isArray(value) && value.length > 0 && value.every(isScalar));
    if (!valid)
      throw detail(400, `Metadata filter value for ${key} must be a scalar or a non-empty list of scalars`);
  }
  return raw as Record<string, unknown>;
}

function integerLike(value: unknown): number | null | undefined {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value) && Number.isSafeInteger(Number(value)))
    return Number(value);
  return undefined;
}

async function openChat(request: FastifyRequest, reply: FastifyReply, context: RagContext): Promise<void> {
  const { config, db } = context;
  const user = await requireUser(request);
  const body = InputReader.body(request);
  for (const [camel, snake] of ALIASES) {
    if (body.has(camel) && body.has(snake))
      body.fail(snake, `Give either ${camel} or ${snake}, not both`, 'value_error');
  }
  const storeKey = body.has('storeIds') || !body.has('store_ids') ? 'storeIds' : 'store_ids';
  const storeIds = readStoreIds(body, storeKey);
  const questionField = body.string('question');
  const system = body.string('system');
  const model = body.string('model', { trim: true });
  const rawSession = ['sessionId', 'session_id', 'threadId', 'thread_id']
    .map((key) => body.source[key])
    .find((value) => value !== undefined && value !== null);
  if (rawSession !== undefined && typeof rawSession !== 'string')
    body.fail('sessionId', 'Input should be a valid string', 'string_type');
  const parsedMessages = body.has('messages') ? parseMessages(body.source.messages) : null;
  if (body.has('messages') && parsedMessages === null)
    body.fail('messages', 'Input should be a valid list', 'list_type');
  body.done();

  // Stores: all live and the caller's, one backend.
  const ids = storeIds as number[];
  const stores = await findOwnedStores(db, user.id, ids);
  if (stores.length !== new Set(ids).size) throw detail(404, 'Store not found');
  const backends = new Set(stores.map((store) => store.backend));
  if (backends.size > 1) throw detail(400, 'Selected stores use different backends');
  const backend = (stores[0] as (typeof stores)[number]).backend;

  const question =
    (questionField !== undefined && questionField.trim() !== ''
      ? questionField
      : parsedMessages?.lastUserText) ?? '';
  if (question.trim() === '') throw detail(400, 'Missing question');
  if (question.length > MAX_QUESTION_CHARS)
    throw detail(400, `Question too long (max ${MAX_QUESTION_CHARS} characters)`);
  await featureRateLimit(context, request, reply, `user:${user.id}:chat`, config.chatRateLimitPerMinute);

  const projectId = integerLike(body.source.projectId);
  if (projectId === undefined) throw detail(400, 'projectId must be an integer');
  const rawTags = body.source.tags;
  if (rawTags !== undefined && rawTags !== null && (typeof rawTags !== 'object' || Array.isArray(rawTags))) {
    throw detail(400, 'tags must be an object');
  }
  const tags = rawTags ? keptTags(rawTags as Record<string, unknown>) : {};
  const metadataFilter = body.has('metadataFilter')
    ? metadataFilterOf(context, body.source.metadataFilter)
    : undefined;

  const chosenModel = model !== undefined && model !== '' ? model : defaultModelFor(config, backend);
  if (!allowedModelsFor(config, backend).includes(chosenModel))
    throw detail(400, 'Unsupported model requested');

  const sessionId = sanitizeSessionId(rawSession);
  const owner = await sessionOwner(db, sessionId);
  if (owner !== null && owner !== user.id) throw detail(404, 'Session not found');

  // Retrieval (its size decides the budget pre-check's prompt estimate).
  const started = performance.now();
  const search = await searchCandidates(db, {
    userId: user.id,
    storeIds: stores.map((store) => store.id),
    query: question,
    config: retrievalSettings(config),
    queryEmbedding: await queryEmbedding(context, question),
    metadataFilter,
  });
  context.metrics.retrievalSeconds.observe((performance.now() - started) / 1000);
  let contextChunks = search.candidates.filter((candidate) => candidate.passesGate);
  let summary = false;
  if (contextChunks.length === 0 && isSummaryIntent(question)) {
    contextChunks = await summaryContext(
      db,
      user.id,
      stores.map((store) => store.id),
    );
    summary = contextChunks.length > 0;
  }
  if (contextChunks.length === 0 && !config.ragRefuseWithoutContext) {
    contextChunks = search.candidates.slice(0, config.ragTopK);
  }

  const provider = providerNameFor(config, backend);
  const planBase = { question, context: contextChunks, model: chosenModel };
  const reservation = await context.budgets.reserveStream(user.id, estimatedPromptCostUsd(config, planBase));

  let plan: ChatPlan;
  try {
    await recordUserTurn(db, { sessionId, userId: user.id, storeId: ids[0] as number, question });
    plan = {
      userId: user.id,
      sessionId,
      storeIds: stores.map((store) => store.id),
      question,
      history:
        parsedMessages !== null && parsedMessages.history.length > 0
          ? parsedMessages.history
          : parsedMessages === null
            ? null
            : [],
      userMessageId: await lastMessageId(db, sessionId),
      model: chosenModel,
      provider,
      system,
      tags,
      projectId,
      context: contextChunks,
      summary,
      queryTerms: search.queryTerms,
      idf: search.idf,
    };
  } catch (error) {
    reservation.release();
    throw error;
  }

  // From here on every outcome is a stream: the response is written directly.
  const headers = reply.getHeaders() as Record<string, string | number | string[] | undefined>;
  reply.hijack();
  const sse = new SseStream(reply.raw, {
    keepaliveSecs: config.streamKeepaliveSecs,
    maxBufferBytes: config.streamMaxBufferBytes,
  });
  await streamChat(
    {
      config,
      db,
      logger: context.logger.child({ request_id: request.id }),
      metrics: context.metrics,
      streams: context.streams,
    },
    plan,
    sse,
    headers,
    reservation,
  );
}

export function registerChatRoutes(app: FastifyInstance, context: RagContext): void {
  app.post('/api/chat', (request, reply) => openChat(request, reply, context));
}
