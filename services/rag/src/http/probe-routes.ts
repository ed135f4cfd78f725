// Probes and metrics (spec §2.3.1–2, §3.9): `/live` as soon as HTTP listens, `/ready` (database + Redis),
// `/health` (database, Gemini when really used, Redis when configured, the OpenAI-compatible server when it is the
// default backend), and `/metrics` for loopback clients, METRICS_ALLOW_ALL or the METRICS_TOKEN bearer.
import { parseBearerToken } from '@quintet/kernel/auth';
import { METRICS_CONTENT_TYPE, metricsText } from '@quintet/kernel/metrics';
import { constantTimeEqual } from '@quintet/kernel/security';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { RagConfig } from '../config-types.js';
import type { RagContext } from './context.js';
import { isLoopback } from './conventions.js';

const CHECK_TIMEOUT_MS = 2000;
const REMOTE_CACHE_MS = 30_000;

/** A remote check whose result is kept for 30 s (a probe every few seconds must not hammer the provider). */
function cachedCheck(check: () => Promise<boolean>): () => Promise<boolean> {
  let cached: { value: boolean; at: number } | undefined;
  let inFlight: Promise<boolean> | undefined;
  return async () => {
    if (cached !== undefined && Date.now() - cached.at < REMOTE_CACHE_MS) return cached.value;
    inFlight ??= check()
      .catch(() => false)
      .then((value) => {
        cached = { value, at: Date.now() };
        inFlight = undefined;
        return value;
      });
    return inFlight;
  };
}

async function getOk(url: string, headers: Record<string, string>): Promise<boolean> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
  await response.body?.cancel();
  return response.ok;
}

/** True when Gemini answers generation or embeddings for real (mock mode off). */
export function geminiInUse(config: RagConfig): boolean {
  if (config.geminiMockMode) return false;
  return config.enableGeminiBackend || config.embeddingProvider === 'gemini';
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerProbeRoutes(app: FastifyInstance, context: RagContext): void {
  const { config, db, redis, metrics } = context;

  const databaseUp = async () => {
    if (!context.state.ready) return false;
    try {
      await withTimeout(db.ping(), CHECK_TIMEOUT_MS);
      return true;
    } catch {
      return false;
    }
  };
  const redisUp = async () => {
    if (redis === null) return true;
    try {
      await withTimeout(redis.ping(), CHECK_TIMEOUT_MS);
      return true;
    } catch {
      return false;
    }
  };
  const geminiUp = cachedCheck(() =>
    getOk(`${config.geminiApiBaseUrl}/v1beta/models?pageSize=1`, {
      'x-goog-api-key': config.geminiApiKey ?? '',
    }),
  );
  const llmUp = cachedCheck(() =>
    getOk(
      `${config.localLlmBaseUrl ?? ''}/models`,
      config.localLlmApiKey === undefined ? {} : { authorization: `Bearer ${config.localLlmApiKey}` },
    ),
  );

  const json = (reply: FastifyReply, status: number, body: unknown) =>
    reply.code(status).header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body);

  app.get('/live', async (_request, reply) => json(reply, 200, { status: 'ok' }));

  app.get('/ready', async (_request, reply) => {
    const [database, redisOk] = await Promise.all([databaseUp(), redisUp()]);
    return json(reply, database && redisOk ? 200 : 503, { database, redis: redisOk });
  });

  app.get('/health', async (_request, reply) => {
    const [database, redisOk, gemini, llm] = await Promise.all([
      databaseUp(),
      redisUp(),
      geminiInUse(config) ? geminiUp() : Promise.resolve(true),
      config.defaultRagBackend === 'local_openai' ? llmUp() : Promise.resolve(true),
    ]);
    const body = { database, gemini_api: gemini, redis: redisOk, llm };
    return json(reply, database && redisOk && gemini && llm ? 200 : 503, body);
  });

  app.get('/metrics', async (request, reply) => {
    const token = config.metricsToken;
    const presented = parseBearerToken(request.headers.authorization);
    const allowed =
      config.metricsAllowAll ||
      isLoopback(request.clientIp) ||
      (token !== undefined && presented !== null && constantTimeEqual(presented, token));
    if (!allowed) return json(reply, 403, { detail: 'Forbidden' });
    try {
      const rows = await db.kysely
        .selectFrom('documents')
        .select(['status', (eb) => eb.fn.countAll<string>().as('count')])
        .where('deleted_at', 'is', null)
        .groupBy('status')
        .execute();
      for (const status of ['PENDING', 'RUNNING', 'DONE', 'ERROR']) {
        metrics.documents.set({ status }, Number(rows.find((row) => row.status === status)?.count ?? 0));
      }
    } catch (error) {
      request.log.warn({ err: error, event: 'metrics_documents_failed' }, 'metrics_documents_failed');
    }
    return reply
      .code(200)
      .header('content-type', METRICS_CONTENT_TYPE)
      .send(await metricsText(metrics.registry));
  });
}
