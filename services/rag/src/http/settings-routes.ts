// `/api/settings` (spec §3.9): public branding read, admin update (validated, audited).
import type { FastifyInstance } from 'fastify';
import { writeAudit } from '../domain/audit.js';
import { guardDatabase } from '../domain/database.js';
import {
  getSettings,
  SettingsValidationError,
  saveSettings,
  settingsAuditMetadata,
  validateSettings,
} from '../domain/settings.js';
import type { RagContext } from './context.js';
import { adminRateLimit, detail, InputReader, requireAdmin } from './conventions.js';

export function registerSettingsRoutes(app: FastifyInstance, context: RagContext): void {
  const { db } = context;

  app.get('/api/settings', async () => guardDatabase(() => getSettings(db.kysely)));

  app.post('/api/settings', async (request, reply) => {
    const admin = await requireAdmin(request);
    await adminRateLimit(context, request, reply, admin.id, 'update_settings');
    const reader = new InputReader('body', request.body ?? {});
    reader.done();
    let changes: ReturnType<typeof validateSettings>;
    try {
      changes = validateSettings(reader.source);
    } catch (error) {
      if (error instanceof SettingsValidationError) throw detail(400, error.message);
      throw error;
    }
    if (Object.keys(changes).length > 0) {
      await guardDatabase(() => saveSettings(db.kysely, changes));
      await writeAudit(db.kysely, request.log, {
        adminUserId: admin.id,
        action: 'update_settings',
        targetType: 'settings',
        targetId: null,
        metadata: settingsAuditMetadata(changes),
      });
    }
    return getSettings(db.kysely);
  });
}
