// /health/ (rate-limited), /livez, /readyz, /metrics (spec §3.9, §5 B7).
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { METRICS_CONTENT_TYPE, metricsText } from '@quintet/kernel/metrics';
import { describeRule } from '@quintet/kernel/rate-limit';
import { isRedisUnavailable } from '@quintet/kernel/redis';
import { constantTimeEqual } from '@quintet/kernel/security';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WORDLIST_SIZE } from '../domain/wordlist.js';
import { serviceVersion } from '../version.js';
import { clientIdentity } from './client.js';
import type { RavenContext } from './context.js';
import { sendDetail } from './errors.js';

type ServiceState = 'online' | 'offline';
const state = (ok: boolean): ServiceState => (ok ? 'online' : 'offline');

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The four dependency states of `/health/` and `/readyz`. */
export async function serviceStates(context: RavenContext): Promise<Record<string, ServiceState>> {
  const { config } = context;
  const [redis, storage] = await Promise.all([
    context.store.ping().then(
      () => true,
      () => false,
    ),
    Promise.all([writable(config.storagePath), writable(config.tempPath)]).then(([a, b]) => a && b),
  ]);
  const lastRun = context.schedulerLastRunMs();
  const scheduler = lastRun !== null && Date.now() - lastRun <= 3 * config.heartbeatIntervalSeconds * 1000;
  return {
    redis: state(redis),
    storage: state(storage),
    scheduler: state(scheduler),
    diceware: state(context.wordlist.size === WORDLIST_SIZE),
  };
}

const isHealthy = (services: Record<string, ServiceState>) =>
  services.redis === 'online' && services.storage === 'online' && services.diceware === 'online';

async function health(request: FastifyRequest, reply: FastifyReply, context: RavenContext) {
  const { config } = context;
  let decision: Awaited<ReturnType<RavenContext['limiter']['hit']>> | null;
  try {
    decision = await context.limiter.hit('health', clientIdentity(request, context), config.healthRateLimit);
  } catch (error) {
    if (!isRedisUnavailable(error)) throw error;
    // The limiter lives in the store that is down: the probe is answered (degraded) rather than refused,
    // since reporting that outage is what it is for.
    decision = null;
  }
  if (decision && !decision.allowed) {
    context.metrics.rateLimited.inc({ bucket: 'health' });
    request.log.warn({ bucket: 'health' }, 'rate_limited');
    return sendDetail(reply, 429, `Rate limit exceeded: ${describeRule(config.healthRateLimit)}`, {
      'retry-after': String(decision.retryAfterSeconds),
    });
  }
  const services = await serviceStates(context);
  const healthy = isHealthy(services);
  if (!healthy) reply.header('retry-after', '5');
  return reply
    .code(healthy ? 200 : 503)
    .type('application/json')
    .send({
      status: healthy ? 'healthy' : 'degraded',
      version: serviceVersion(),
      timestamp: new Date().toISOString(),
      services,
      uptime_seconds: Math.floor((Date.now() - context.startedAt.getTime()) / 1000),
      started_at: context.startedAt.toISOString(),
      store: context.storeKind,
    });
}

async function metrics(request: FastifyRequest, reply: FastifyReply, context: RavenContext) {
  const token = context.config.metricsToken;
  if (token !== undefined) {
    const header = request.headers.authorization ?? '';
    const given = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim() ?? '';
    if (!constantTimeEqual(given, token)) {
      return sendDetail(reply, 401, 'Unauthorized', { 'www-authenticate': 'Bearer' });
    }
  }
  return reply.type(METRICS_CONTENT_TYPE).send(await metricsText(context.metricsRegistry));
}

/** Registers the operational routes. */
export function registerOperationalRoutes(app: FastifyInstance, context: RavenContext): void {
  for (const url of ['/health', '/health/']) {
    app.get(url, { exposeHeadRoute: false }, (request, reply) => health(request, reply, context));
  }
  app.get('/livez', async (_request, reply) => reply.type('application/json').send({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const services = await serviceStates(context);
    if (context.ready && isHealthy(services)) return reply.type('application/json').send({ status: 'ready' });
    return reply
      .code(503)
      .header('retry-after', '5')
      .type('application/json')
      .send({ status: 'not_ready', services });
  });
  app.get('/metrics', (request, reply) => metrics(request, reply, context));
}
