// `/api/admin` (spec §3.9): users, roles, activation, budgets, usage, audit, system summary, the ingestion
// overview with retry, the watchdog and the deletions audit. Every route needs an admin and is rate-limited per
// admin and action; every mutation is audited.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { type Kysely, sql } from 'kysely';
import { listAudit, writeAudit } from '../domain/audit.js';
import { monthOf, usdNumber } from '../domain/budgets.js';
import { guardDatabase } from '../domain/database.js';
import { documentOut, resetDocumentForRetry } from '../domain/documents.js';
import type { DocumentStatus, RagDatabase } from '../domain/schema.js';
import { findUserById, type UserRow, updateUser } from '../domain/users.js';
import { runWatchdog } from '../domain/watchdog.js';
import type { RagContext } from './context.js';
import { type AuthUser, adminRateLimit, detail, InputReader, pathInt, requireAdmin } from './conventions.js';

const STATUSES: readonly DocumentStatus[] = ['PENDING', 'RUNNING', 'DONE', 'ERROR'];
const MAX_BUDGET_USD = 99_999_999.99;

async function budgetOf(db: Kysely<RagDatabase>, userId: number): Promise<number | null> {
  const row = await db
    .selectFrom('budgets')
    .select(sql<string>`monthly_limit_usd::text`.as('limit'))
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row === undefined ? null : usdNumber(row.limit);
}

function adminUserOut(row: UserRow, monthlyLimit: number | null) {
  return {
    id: row.id,
    email: row.email,
    is_admin: row.is_admin,
    is_active: row.is_active,
    admin_notes: row.admin_notes,
    monthly_limit_usd: monthlyLimit,
    created_at: row.created_at.toISOString(),
  };
}

export function registerAdminRoutes(app: FastifyInstance, context: RagContext): void {
  const { db, config } = context;
  const kysely = db.kysely;

  /** requireAdmin, then the per-admin limit of this action. */
  const admin = async (
    request: Parameters<typeof requireAdmin>[0],
    reply: Parameters<typeof adminRateLimit>[2],
    action: string,
  ): Promise<AuthUser> => {
    const user = await requireAdmin(request);
    await adminRateLimit(context, request, reply, user.id, action);
    return user;
  };

  app.get('/api/admin/users', async (request, reply) => {
    await admin(request, reply, 'list_users');
    const reader = InputReader.query(request);
    const limit = reader.integer('limit', { min: 1, max: 500 }) ?? 100;
    reader.done();
    const rows = await guardDatabase(() =>
      kysely
        .selectFrom('users')
        .leftJoin('budgets', 'budgets.user_id', 'users.id')
        .selectAll('users')
        .select(sql<string | null>`budgets.monthly_limit_usd::text`.as('limit'))
        .orderBy('users.id', 'desc')
        .limit(limit)
        .execute(),
    );
    return rows.map((row) => adminUserOut(row, row.limit === null ? null : usdNumber(row.limit)));
  });

  /** The shared steps of a role or activation change: 404, the self-protection rule, update, audit, answer. */
  async function changeUser(
    log: FastifyBaseLogger,
    callerId: number,
    userId: number,
    options: {
      selfRefusal: string | null;
      change: Parameters<typeof updateUser>[2];
      action: string;
      metadata: Record<string, unknown>;
    },
  ) {
    if ((await guardDatabase(() => findUserById(kysely, userId))) === undefined)
      throw detail(404, 'User not found');
    if (userId === callerId && options.selfRefusal !== null) throw detail(400, options.selfRefusal);
    const updated = await updateUser(kysely, userId, options.change);
    if (updated === undefined) throw detail(404, 'User not found');
    await writeAudit(kysely, log, {
      adminUserId: callerId,
      action: options.action,
      targetType: 'user',
      targetId: userId,
      metadata: options.metadata,
    });
    return adminUserOut(updated, await budgetOf(kysely, userId));
  }

  app.post('/api/admin/users/:id/role', async (request, reply) => {
    const caller = await admin(request, reply, 'set_user_role');
    const userId = pathInt(request, 'id');
    const reader = InputReader.body(request);
    const isAdmin = reader.boolean('is_admin', { required: true });
    const notes = reader.string('admin_notes', { max: 2000 });
    reader.done();
    return changeUser(request.log, caller.id, userId, {
      selfRefusal: isAdmin === false ? 'Admins cannot remove their own admin access' : null,
      change: { is_admin: isAdmin as boolean, ...(notes === undefined ? {} : { admin_notes: notes }) },
      action: 'set_user_role',
      metadata: { is_admin: isAdmin },
    });
  });

  app.post('/api/admin/users/:id/active', async (request, reply) => {
    const caller = await admin(request, reply, 'set_user_active');
    const userId = pathInt(request, 'id');
    const reader = InputReader.body(request);
    const isActive = reader.boolean('is_active', { required: true });
    reader.done();
    return changeUser(request.log, caller.id, userId, {
      selfRefusal: isActive === false ? 'Admins cannot deactivate themselves' : null,
      change: { is_active: isActive as boolean },
      action: 'set_user_active',
      metadata: { is_active: isActive },
    });
  });

  app.post('/api/admin/budgets/:user_id', async (request, reply) => {
    const caller = await admin(request, reply, 'set_budget');
    const userId = pathInt(request, 'user_id');
    const reader = InputReader.body(request);
    const limit = reader.number('monthly_limit_usd', { required: true, min: 0, max: MAX_BUDGET_USD });
    reader.done();
    if ((await guardDatabase(() => findUserById(kysely, userId))) === undefined)
      throw detail(404, 'User not found');
    const amount = (limit as number).toFixed(2);
    await kysely
      .insertInto('budgets')
      .values({ user_id: userId, monthly_limit_usd: amount })
      .onConflict((conflict) =>
        conflict.column('user_id').doUpdateSet({ monthly_limit_usd: amount, updated_at: new Date() }),
      )
      .execute();
    const stored = await budgetOf(kysely, userId);
    await writeAudit(kysely, request.log, {
      adminUserId: caller.id,
      action: 'set_budget',
      targetType: 'user',
      targetId: userId,
      metadata: { monthly_limit_usd: stored },
    });
    return { monthly_limit_usd: stored };
  });

  app.delete('/api/admin/budgets/:user_id', async (request, reply) => {
    const caller = await admin(request, reply, 'delete_budget');
    const userId = pathInt(request, 'user_id');
    await guardDatabase(() => kysely.deleteFrom('budgets').where('user_id', '=', userId).execute());
    await writeAudit(kysely, request.log, {
      adminUserId: caller.id,
      action: 'delete_budget',
      targetType: 'user',
      targetId: userId,
    });
    return reply.code(204).send();
  });

  app.get('/api/admin/usage', async (request, reply) => {
    await admin(request, reply, 'usage');
    const reader = InputReader.query(request);
    const month = reader.string('month') ?? monthOf(new Date());
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      reader.fail('month', "String should match pattern '^\\d{4}-\\d{2}$'", 'string_pattern_mismatch');
    }
    reader.done();
    return guardDatabase(() => context.budgets.usage(month));
  });

  app.get('/api/admin/audit', async (request, reply) => {
    await admin(request, reply, 'audit');
    const reader = InputReader.query(request);
    const limit = reader.integer('limit', { min: 1, max: 200 }) ?? 50;
    reader.done();
    const rows = await guardDatabase(() => listAudit(kysely, limit));
    return rows.map((row) => ({ ...row, created_at: row.created_at.toISOString() }));
  });

  app.get('/api/admin/audit/deletions', async (request, reply) => {
    await admin(request, reply, 'audit_deletions');
    const rows = await guardDatabase(() =>
      kysely
        .selectFrom('stores')
        .leftJoin('users', 'users.id', 'stores.deleted_by')
        .select(['stores.id as store_id', 'stores.deleted_at', 'users.email as deleted_by'])
        .where('stores.deleted_at', 'is not', null)
        .orderBy('stores.deleted_at', 'desc')
        .execute(),
    );
    return rows.map((row) => ({
      store_id: row.store_id,
      deleted_at: row.deleted_at?.toISOString() ?? null,
      deleted_by: row.deleted_by,
    }));
  });

  app.get('/api/admin/system/summary', async (request, reply) => {
    await admin(request, reply, 'system_summary');
    const count = (table: 'users' | 'stores' | 'documents' | 'chunks') =>
      kysely
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .executeTakeFirstOrThrow()
        .then((row) => Number(row.count));
    const [users, stores, documents, chunks, byStatus] = await guardDatabase(() =>
      Promise.all([
        count('users'),
        count('stores'),
        count('documents'),
        count('chunks'),
        kysely
          .selectFrom('documents')
          .select(['status', (eb) => eb.fn.countAll<string>().as('count')])
          .groupBy('status')
          .execute(),
      ]),
    );
    const documentsByStatus = Object.fromEntries(
      STATUSES.map((status) => [status, Number(byStatus.find((row) => row.status === status)?.count ?? 0)]),
    );
    return {
      users,
      stores,
      documents,
      documents_by_status: documentsByStatus,
      chunks,
      active_streams: context.streams.active,
    };
  });

  app.get('/api/admin/documents', async (request, reply) => {
    await admin(request, reply, 'list_documents');
    const reader = InputReader.query(request);
    const status = reader.string('status');
    if (status !== undefined && !STATUSES.includes(status as DocumentStatus)) {
      reader.fail('status', "Input should be 'PENDING', 'RUNNING', 'DONE' or 'ERROR'", 'enum');
    }
    const limit = reader.integer('limit', { min: 1, max: 500 }) ?? 100;
    reader.done();
    let query = kysely
      .selectFrom('documents')
      .innerJoin('stores', 'stores.id', 'documents.store_id')
      .innerJoin('users', 'users.id', 'stores.user_id')
      .selectAll('documents')
      .select('users.email as owner_email')
      .where('documents.deleted_at', 'is', null)
      .orderBy('documents.status_updated_at', 'desc')
      .orderBy('documents.id', 'desc')
      .limit(limit);
    if (status !== undefined) query = query.where('documents.status', '=', status as DocumentStatus);
    const rows = await guardDatabase(() => query.execute());
    return rows.map((row) => ({ ...documentOut(row), owner_email: row.owner_email, attempts: row.attempts }));
  });

  app.post('/api/admin/documents/:id/retry', async (request, reply) => {
    const caller = await admin(request, reply, 'retry_document');
    const documentId = pathInt(request, 'id');
    if (!(await resetDocumentForRetry(db, documentId, config.watchdogTtlMinutes))) {
      const exists = await kysely
        .selectFrom('documents')
        .select('id')
        .where('id', '=', documentId)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (exists === undefined) throw detail(404, 'Document not found');
      throw detail(409, 'Document is not in ERROR state or stuck');
    }
    await context.ingestion.enqueue(documentId);
    await writeAudit(kysely, request.log, {
      adminUserId: caller.id,
      action: 'retry_document',
      targetType: 'document',
      targetId: documentId,
    });
    return reply.code(202).send({ op_id: `doc-${documentId}` });
  });

  app.post('/api/admin/watchdog/reset-stuck', async (request, reply) => {
    const caller = await admin(request, reply, 'watchdog_reset');
    const reader = new InputReader('body', request.body ?? {});
    const targetUser = reader.integer('user_id');
    const ttlMinutes = reader.integer('ttl_minutes', { min: 1, max: 10_080 }) ?? 30;
    reader.done();
    const result = await runWatchdog(db, context.ingestion, {
      ttlMinutes,
      maxAttempts: config.ingestMaxAttempts,
      ...(targetUser === undefined ? {} : { userId: targetUser }),
    });
    await writeAudit(kysely, request.log, {
      adminUserId: caller.id,
      action: 'watchdog_reset',
      targetType: 'documents',
      targetId: null,
      metadata: { reset_count: result.reset, ttl_minutes: ttlMinutes, target_user_id: targetUser ?? null },
    });
    return { reset_count: result.reset };
  });
}
