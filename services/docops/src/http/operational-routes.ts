// /healthz, /readyz, /metrics and /v1/meta (spec §3.8.2-3.8.5).
import { bearerMatches } from '@quintet/kernel/auth';
import { METRICS_CONTENT_TYPE, metricsText } from '@quintet/kernel/metrics';
import type { FastifyInstance } from 'fastify';
import { metaSkills, taskPayloadSchemas } from '../domain/skills.js';
import type { DocopsContext } from '../server.js';
import { serviceVersion } from '../version.js';
import { HttpError } from './errors.js';
import { guardDebugEndpoint } from './guard.js';

export const PRESETS = ['quick', 'template', 'strict'] as const;

export function registerOperationalRoutes(app: FastifyInstance, context: DocopsContext): void {
  const { config } = context;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (!context.ready) {
      throw new HttpError(503, 'NOT_READY', 'render pool is not ready', {
        idle_workers: context.pool.idleCount,
      });
    }
    reply.send({ status: 'ready', idle_workers: context.pool.idleCount });
  });

  app.get('/metrics', async (request, reply) => {
    if (!config.enableMetrics) throw new HttpError(404, 'NOT_FOUND', 'not found', { path: '/metrics' });
    if (config.metricsToken && !bearerMatches(request.headers.authorization, config.metricsToken)) {
      throw new HttpError(
        401,
        'UNAUTHORIZED',
        'a bearer token is required',
        { path: '/metrics' },
        { 'www-authenticate': 'Bearer' },
      );
    }
    reply.type(METRICS_CONTENT_TYPE).send(await metricsText(context.metricsRegistry));
  });

  app.get('/v1/meta', async (request) => {
    guardDebugEndpoint(request, config.enableMeta, config.webBasicAuth);
    const names = context.skills.names();
    return {
      supported_skills: names,
      supported_task_types: names,
      supported_presets: [...PRESETS],
      task_payload_schemas: taskPayloadSchemas(context.skills),
      skills: metaSkills(context.skills),
      features: {
        pdf_export: context.sofficePath !== null,
        split_run_placeholders: true,
        header_footer_placeholders: true,
      },
      limits: {
        max_upload_bytes: config.maxUploadBytes,
        max_template_uncompressed_bytes: config.maxTemplateUncompressedBytes,
        request_timeout_seconds: config.requestTimeoutSeconds,
        max_concurrency: config.maxConcurrency,
        queue_timeout_seconds: config.queueTimeoutSeconds,
      },
      version: serviceVersion(),
    };
  });
}
