// The content half of the API: uploads, documents, search, chat, sessions and models.
import type { FastifyInstance } from 'fastify';
import { registerChatRoutes } from './chat-routes.js';
import type { RagContext } from './context.js';
import { registerDocumentRoutes } from './document-routes.js';
import { registerModelRoutes } from './model-routes.js';
import { registerSearchRoutes } from './search-routes.js';
import { registerSessionRoutes } from './session-routes.js';
import { registerUploadRoutes } from './upload-routes.js';

export function registerContentRoutes(app: FastifyInstance, context: RagContext): void {
  // Upload bodies are streamed by the route itself (never buffered by the framework).
  if (!app.hasContentTypeParser('multipart/form-data')) {
    app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => done(null));
  }
  registerUploadRoutes(app, context);
  registerDocumentRoutes(app, context);
  registerSearchRoutes(app, context);
  registerChatRoutes(app, context);
  registerSessionRoutes(app, context);
  registerModelRoutes(app, context);
}
