// Probes, metrics and the small read-only API of spec §3.5: /health, /livez, /readyz, /metrics, /api/status,
// /api/health, /api/streams, /api/permit.

import { bearerMatches } from '@quintet/kernel/auth';
import { METRICS_CONTENT_TYPE, metricsText } from '@quintet/kernel/metrics';
import type { FastifyInstance } from 'fastify';
import { serviceVersion } from '../version.js';
import type { OwscContext } from './context.js';
import { sendDetail, type ValidationIssue, validationError } from './conventions.js';
import type { StreamMessage } from './websocket.js';

export const SERVICE_NAME = 'openworld-specialty-chemicals';
const DB_CHECK_TIMEOUT_MS = 2000;
const DEFAULT_STREAM_LIMIT = 100;

/** Resolves true when the store answers a ping within the timeout. */
async function storeUp(context: OwscContext): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), DB_CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      context.store.ping().then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `limit` of /api/streams: an integer ≥ 1 (default 100), else the 422 issue. */
function streamLimit(raw: unknown): number | ValidationIssue {
  if (raw === undefined) return DEFAULT_STREAM_LIMIT;
  const text = String(raw).trim();
  if (!/^[+-]?\d+$/.test(text)) {
    return {
      loc: ['query', 'limit'],
      msg: 'Input should be a valid integer',
      type: 'int_parsing',
      input: String(raw),
    };
  }
  const value = Number(text);
  if (value < 1) {
    return {
      loc: ['query', 'limit'],
      msg: 'Input should be greater than or equal to 1',
      type: 'greater_than_equal',
      input: String(raw),
      ctx: { ge: 1 },
    };
  }
  return value;
}

/** Registers the probes, `/metrics` and the read-only API routes. */
export function registerOperationalRoutes(app: FastifyInstance, context: OwscContext): void {
  const { config, state, metrics, streams } = context;
  const version = serviceVersion();
  const healthBody = JSON.stringify({ status: 'healthy', service: SERVICE_NAME, version });

  app.get('/health', (_request, reply) => {
    reply.type('application/json; charset=utf-8').send(healthBody);
  });

  app.get('/livez', (_request, reply) => {
    reply.send({ status: 'live', timestamp: Date.now() / 1000 });
  });

  app.get('/readyz', async (_request, reply) => {
    const db = await storeUp(context);
    const redis = context.redisStatus();
    const bufferSize = streams.buffer.size;
    if (state.ready && !state.shuttingDown && db && redis !== 'down') {
      return reply.send({ status: 'ready', buffer_size: bufferSize });
    }
    return reply.code(503).send({
      status: 'not_ready',
      buffer_size: bufferSize,
      checks: { db: db ? 'up' : 'down', redis, shutting_down: state.shuttingDown },
    });
  });

  app.get('/metrics', async (request, reply) => {
    if (config.metricsProtect) {
      const token = config.metricsToken ?? '';
      if (!bearerMatches(request.headers.authorization, token)) {
        return sendDetail(reply, 401, 'Unauthorized', { 'www-authenticate': 'Bearer' });
      }
    }
    return reply.type(METRICS_CONTENT_TYPE).send(await metricsText(metrics.registry));
  });

  app.get('/api/status', (_request, reply) => {
    const redis = context.redisStatus();
    reply.send({
      status: redis === 'down' ? 'degraded' : 'operational',
      buffer_size: streams.buffer.size,
      max_buffer: streams.buffer.capacity,
      active_connections: streams.activeConnections,
      uptime: (Date.now() - state.startedAt.getTime()) / 1000,
      started_at: state.startedAt.toISOString(),
      version,
      instance_id: state.instanceId,
      redis,
      workers: config.workers,
    });
  });

  app.get('/api/health', (_request, reply) => {
    reply.send({ status: 'ok' });
  });

  app.get('/api/streams', (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const limit = streamLimit(query.limit);
    if (typeof limit !== 'number') throw validationError([limit]);
    const species = typeof query.species === 'string' && query.species !== '' ? query.species : undefined;
    const filter = species === undefined ? undefined : (item: StreamMessage) => item.species === species;
    reply.send({ count: streams.buffer.count(filter), data: streams.buffer.last(limit, filter) });
  });

  app.get('/api/permit', (_request, reply) => {
    const { permit } = config;
    reply.send({
      limits_mgL: permit.limits_mgL,
      rolling_window: permit.rolling_window,
      actions: permit.actions,
      daily_max_limits_mgL: permit.daily_max_limits_mgL,
      monthly_average_limits_mgL: permit.monthly_average_limits_mgL,
      timezone: permit.timezone,
      source: config.permitSource,
    });
  });
}
