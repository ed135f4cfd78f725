// `/api/stores` (spec §3.3): list, create (name checks on the raw input, backend switches, per-user cap),
// soft delete with the store's documents, and the admin restore.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { type Kysely, sql } from 'kysely';
import { writeAudit } from '../domain/audit.js';
import { guardDatabase } from '../domain/database.js';
import { restoreStore, softDeleteStore } from '../domain/documents.js';
import type { RagBackend, RagDatabase } from '../domain/schema.js';
import type { RagContext } from './context.js';
import { adminRateLimit, detail, InputReader, pathInt, requireAdmin, requireUser } from './conventions.js';

export interface StoreOut {
  id: number;
  display_name: string;
  fs_name: string;
  backend: RagBackend;
  created_at: string;
  document_count: number;
}

const FORBIDDEN_NAME_PATTERNS = [
  '<script',
  '<iframe',
  'javascript:',
  'onerror=',
  'onload=',
  'onclick=',
  'eval(',
];
const BACKENDS: readonly RagBackend[] = ['gemini_hosted', 'local_openai'];

/** True when the raw name contains a forbidden pattern (case-insensitive). */
export function hasForbiddenNamePattern(raw: string): boolean {
  const lower = raw.toLowerCase();
  return FORBIDDEN_NAME_PATTERNS.some((pattern) => lower.includes(pattern));
}

/** The name as stored: control and format characters removed, then trimmed. */
export function cleanStoreName(raw: string): string {
  return raw.replace(/[\p{Cc}\p{Cf}]/gu, '').trim();
}

/** The stores of `where`, each with its live document count, newest first. */
async function storesOut(
  db: Kysely<RagDatabase>,
  filter: { userId?: number; storeId?: number },
): Promise<StoreOut[]> {
  let query = db
    .selectFrom('stores')
    .select([
      'stores.id',
      'stores.display_name',
      'stores.fs_name',
      'stores.backend',
      'stores.created_at',
      sql<string>`(select count(*) from documents d where d.store_id = stores.id and d.deleted_at is null)`.as(
        'document_count',
      ),
    ])
    .orderBy('stores.id', 'desc');
  if (filter.userId !== undefined)
    query = query.where('stores.user_id', '=', filter.userId).where('stores.deleted_at', 'is', null);
  if (filter.storeId !== undefined) query = query.where('stores.id', '=', filter.storeId);
  const rows = await query.execute();
  return rows.map((row) => ({
    id: row.id,
    display_name: row.display_name,
    fs_name: row.fs_name,
    backend: row.backend,
    created_at: row.created_at.toISOString(),
    document_count: Number(row.document_count),
  }));
}

export function registerStoreRoutes(app: FastifyInstance, context: RagContext): void {
  const { config, db, logger } = context;

  app.get('/api/stores', async (request) => {
    const user = await requireUser(request);
    return guardDatabase(() => storesOut(db.kysely, { userId: user.id }));
  });

  app.post('/api/stores', async (request) => {
    const user = await requireUser(request);
    const reader = InputReader.body(request);
    const raw = reader.string('display_name', { required: true });
    let name: string | undefined;
    if (raw !== undefined) {
      if (hasForbiddenNamePattern(raw)) {
        reader.fail('display_name', 'Value error, Display name contains forbidden content');
      } else {
        name = cleanStoreName(raw);
        if (name.length < 1)
          reader.fail('display_name', 'String should have at least 1 character', 'string_too_short');
        else if ([...name].length > 100) {
          reader.fail('display_name', 'String should have at most 100 characters', 'string_too_long');
        }
      }
    }
    const backendRaw = reader.string('backend');
    if (backendRaw !== undefined && !BACKENDS.includes(backendRaw as RagBackend)) {
      reader.fail('backend', "Input should be 'gemini_hosted' or 'local_openai'", 'enum');
    }
    reader.done();
    const backend = (backendRaw as RagBackend | undefined) ?? config.defaultRagBackend;
    const enabled =
      backend === 'gemini_hosted' ? config.enableGeminiBackend : config.enableLocalOpenaiBackend;
    if (!enabled) throw detail(400, `${backend} backend is disabled`);

    const storeId = await guardDatabase(() =>
      db.kysely.transaction().execute(async (tx) => {
        // Two creates of one user at once must not both pass the cap.
        await sql`select pg_advisory_xact_lock(hashtext(${`stores:${user.id}`}))`.execute(tx);
        const live = await tx
          .selectFrom('stores')
          .select((eb) => eb.fn.countAll<string>().as('count'))
          .where('user_id', '=', user.id)
          .where('deleted_at', 'is', null)
          .executeTakeFirstOrThrow();
        if (Number(live.count) >= config.maxStoresPerUser) {
          throw detail(429, `Maximum ${config.maxStoresPerUser} stores per user`);
        }
        const row = await tx
          .insertInto('stores')
          .values({
            user_id: user.id,
            display_name: name as string,
            fs_name: `fileSearchStores/local-${randomBytes(16).toString('hex')}`,
            backend,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        return row.id;
      }),
    );
    logger.info({ event: 'store_created', user_id: user.id, store_id: storeId }, 'store_created');
    const [store] = await storesOut(db.kysely, { storeId });
    return store;
  });

  app.delete('/api/stores/:id', async (request, reply) => {
    const user = await requireUser(request);
    const storeId = pathInt(request, 'id');
    if (!(await softDeleteStore(db, user.id, storeId))) throw detail(404, 'Store not found');
    request.log.info(
      { event: 'store_soft_deleted', user_id: user.id, store_id: storeId },
      'store_soft_deleted',
    );
    return reply.code(202).send({ status: 'deletion_scheduled' });
  });

  app.post('/api/stores/:id/restore', async (request, reply) => {
    const admin = await requireAdmin(request);
    const storeId = pathInt(request, 'id');
    await adminRateLimit(context, request, reply, admin.id, 'restore_store');
    if (!(await restoreStore(db, storeId))) throw detail(404, 'Store not found');
    await writeAudit(db.kysely, request.log, {
      adminUserId: admin.id,
      action: 'restore_store',
      targetType: 'store',
      targetId: storeId,
    });
    const [store] = await storesOut(db.kysely, { storeId });
    return store;
  });
}
