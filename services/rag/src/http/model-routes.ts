// `GET /api/models` (spec §3.7): the backends, whether they are enabled, their default and allowed models.
import type { FastifyInstance } from 'fastify';
import { allowedModelsFor, defaultModelFor } from '../domain/providers/index.js';
import type { RagContext } from './context.js';
import { requireUser } from './conventions.js';

export function registerModelRoutes(app: FastifyInstance, context: RagContext): void {
  const { config } = context;
  app.get('/api/models', async (request) => {
    await requireUser(request);
    return {
      default_backend: config.defaultRagBackend,
      backends: {
        gemini_hosted: {
          enabled: config.enableGeminiBackend,
          mock: config.geminiMockMode,
          default_model: defaultModelFor(config, 'gemini_hosted'),
          models: allowedModelsFor(config, 'gemini_hosted'),
        },
        local_openai: {
          enabled: config.enableLocalOpenaiBackend,
          default_model: config.localLlmDefaultModel ?? null,
          models: allowedModelsFor(config, 'local_openai'),
        },
      },
    };
  });
}
