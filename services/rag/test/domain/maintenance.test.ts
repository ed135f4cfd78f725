// Nightly maintenance (spec §2.3.14, §3.4): history pruning by the retention settings (0 = keep), the purge of
// data soft-deleted longer ago than PURGE_DELETED_AFTER_DAYS with its chunks and originals, and the schedule of
// `serve` (first pass after a delay, then periodically, logged).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagDb } from '../../src/domain/database.js';
import { pruneHistory, runMaintenance, startNightlyMaintenance } from '../../src/domain/maintenance.js';
import { capturingLogger, createDocument, createStore, createUser, pgliteBackend } from './rag-fixtures.js';

const DAY = 86_400_000;

describe('maintenance', () => {
  const backend = pgliteBackend();
  let db: RagDb;
  let uploads: string;
  let user: number;

  beforeAll(async () => {
    db = await backend.open();
    uploads = mkdtempSync(join(tmpdir(), 'rag-maintenance-'));
    user = await createUser(db);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(uploads, { recursive: true, force: true });
  });

  /** Chat messages and query logs created `ageDays` ago; returns nothing (counted by table). */
  async function addHistory(ageDays: number): Promise<void> {
    const createdAt = new Date(Date.now() - ageDays * DAY);
    const session = `session-${ageDays}-${Math.random().toString(16).slice(2)}`;
    await db.kysely
      .insertInto('chat_sessions')
      .values({ id: session, user_id: user, store_id: null, title: '' })
      .execute();
    await db.kysely
      .insertInto('chat_history')
      .values({
        user_id: user,
        store_id: null,
        session_id: session,
        role: 'user',
        content: 'q',
        sources: '[]',
        created_at: createdAt,
      })
      .execute();
    await db.kysely
      .insertInto('query_logs')
      .values({
        user_id: user,
        store_id: null,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: '0',
        model: 'offline',
        project_id: null,
        tags: null,
        created_at: createdAt,
      })
      .execute();
  }

  const counts = async () => ({
    chat: Number(
      (
        await db.kysely
          .selectFrom('chat_history')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    logs: Number(
      (
        await db.kysely
          .selectFrom('query_logs')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
  });

  it('prunes history older than the retention days, and keeps everything at 0', async () => {
    await db.kysely.deleteFrom('chat_history').execute();
    await db.kysely.deleteFrom('query_logs').execute();
    await addHistory(100);
    await addHistory(40);
    await addHistory(1);
    expect(await pruneHistory(db, { chatDays: 0, queryLogDays: 0 })).toEqual({
      chatMessages: 0,
      queryLogs: 0,
    });
    expect(await counts()).toEqual({ chat: 3, logs: 3 });
    expect(await pruneHistory(db, { chatDays: 30, queryLogDays: 90 })).toEqual({
      chatMessages: 2,
      queryLogs: 1,
    });
    expect(await counts()).toEqual({ chat: 1, logs: 2 });
  });

  it('one pass prunes per the settings and hard-deletes old soft-deleted stores and documents with their files and chunks', async () => {
    await db.kysely.deleteFrom('chat_history').execute();
    await db.kysely.deleteFrom('query_logs').execute();
    await addHistory(10);
    const store = await createStore(db, user, 'Kept');
    const oldDocument = await createDocument(db, store, uploads, 'old');
    const recentDocument = await createDocument(db, store, uploads, 'recent');
    const liveDocument = await createDocument(db, store, uploads, 'live');
    const oldStore = await createStore(db, user, 'Old');
    const inOldStore = await createDocument(db, oldStore, uploads, 'inside');
    await sql`insert into chunks (document_id, store_id, ordinal, text, token_count, terms, term_count)
      values (${oldDocument}, ${store}, 0, 'old chunk', 2, '{}'::jsonb, 0)`.execute(db.kysely);
    const now = Date.now();
    await db.kysely
      .updateTable('documents')
      .set({ deleted_at: new Date(now - 31 * DAY) })
      .where('id', '=', oldDocument)
      .execute();
    await db.kysely
      .updateTable('documents')
      .set({ deleted_at: new Date(now - 2 * DAY) })
      .where('id', '=', recentDocument)
      .execute();
    await db.kysely
      .updateTable('stores')
      .set({ deleted_at: new Date(now - 40 * DAY) })
      .where('id', '=', oldStore)
      .execute();
    const pathOf = async (id: number) =>
      (
        await db.kysely
          .selectFrom('documents')
          .select('storage_path')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).storage_path;
    const oldFile = await pathOf(oldDocument);
    const recentFile = await pathOf(recentDocument);
    const oldStoreFile = await pathOf(inOldStore);

    const result = await runMaintenance(db, {
      chatRetentionDays: 7,
      queryLogRetentionDays: 0,
      purgeDeletedAfterDays: 30,
      uploadDir: uploads,
    });
    expect(result).toEqual({ chatMessages: 1, queryLogs: 0, stores: 1, documents: 2, files: 2 });
    expect(await counts()).toEqual({ chat: 0, logs: 1 });
    const remaining = await db.kysely.selectFrom('documents').select('id').orderBy('id').execute();
    expect(remaining.map((row) => row.id)).toEqual(expect.arrayContaining([recentDocument, liveDocument]));
    expect(remaining.map((row) => row.id)).not.toContain(oldDocument);
    expect(remaining.map((row) => row.id)).not.toContain(inOldStore);
    const chunks = await db.kysely
      .selectFrom('chunks')
      .select('id')
      .where('document_id', '=', oldDocument)
      .execute();
    expect(chunks).toEqual([]);
    expect(existsSync(dirname(oldFile))).toBe(false);
    expect(existsSync(join(uploads, String(oldStore)))).toBe(false);
    expect(existsSync(oldStoreFile)).toBe(false);
    expect(existsSync(recentFile)).toBe(true);
  });

  it('the schedule runs its first pass after the delay, then periodically, logs the counts, and stops', async () => {
    const { logger, lines } = capturingLogger();
    await addHistory(50);
    const stop = startNightlyMaintenance(
      db,
      { chatRetentionDays: 30, queryLogRetentionDays: 30, purgeDeletedAfterDays: 30, uploadDir: uploads },
      logger,
      { firstRunMs: 150, intervalMs: 100 },
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(lines.filter((line) => line.event === 'maintenance_run')).toEqual([]);
      const runs = () => lines.filter((line) => line.event === 'maintenance_run');
      const deadline = Date.now() + 5_000;
      while (runs().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(runs()[0]).toMatchObject({ chatMessages: 1, queryLogs: 1, stores: 0, documents: 0 });
      expect(runs()[1]).toMatchObject({ chatMessages: 0, queryLogs: 0 });
    } finally {
      stop();
    }
    const runsAtStop = lines.filter((line) => line.event === 'maintenance_run').length;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(lines.filter((line) => line.event === 'maintenance_run').length).toBe(runsAtStop);
  });
});
