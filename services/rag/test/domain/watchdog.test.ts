import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagDb } from '../../src/domain/database.js';
import { markStuckError, runWatchdog, stuckMessage } from '../../src/domain/watchdog.js';
import { createStore, createUser, testBackends } from './rag-fixtures.js';

const HOUR = 3600_000;

describe.each(await testBackends())('watchdog on $name', (backend) => {
  let db: RagDb;
  let alice: number;
  let bob: number;
  let aliceStore: number;
  let bobStore: number;

  beforeAll(async () => {
    db = await backend.open();
    alice = await createUser(db);
    bob = await createUser(db);
    aliceStore = await createStore(db, alice);
    bobStore = await createStore(db, bob);
  });
  afterAll(async () => {
    await db?.close();
    await backend.cleanup();
  });

  async function documentIn(
    storeId: number,
    state: {
      status: 'PENDING' | 'RUNNING' | 'DONE' | 'ERROR';
      attempts: number;
      ageMs: number;
      deleted?: boolean;
    },
  ): Promise<number> {
    const row = await db.kysely
      .insertInto('documents')
      .values({
        store_id: storeId,
        filename: 'a.txt',
        display_name: 'a.txt',
        mime_type: 'text/plain',
        size_bytes: 1,
        sha256: '0'.repeat(64),
        storage_path: '/nowhere',
        status: state.status,
        attempts: state.attempts,
        status_updated_at: new Date(Date.now() - state.ageMs),
        deleted_at: state.deleted ? new Date() : null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  const statusOf = (id: number) =>
    db.kysely
      .selectFrom('documents')
      .select(['status', 'attempts', 'last_error'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  it('resets stuck documents to PENDING and re-enqueues them, or fails them after the last attempt', async () => {
    const stuck = await documentIn(aliceStore, { status: 'RUNNING', attempts: 1, ageMs: 2 * HOUR });
    const exhausted = await documentIn(aliceStore, { status: 'RUNNING', attempts: 3, ageMs: 2 * HOUR });
    const fresh = await documentIn(aliceStore, { status: 'RUNNING', attempts: 1, ageMs: 5 * 60_000 });
    const deleted = await documentIn(aliceStore, {
      status: 'RUNNING',
      attempts: 1,
      ageMs: 2 * HOUR,
      deleted: true,
    });
    const done = await documentIn(aliceStore, { status: 'DONE', attempts: 1, ageMs: 2 * HOUR });
    const enqueued: number[] = [];
    const ingestion = { enqueue: async (id: number) => void enqueued.push(id) };

    expect(await runWatchdog(db, ingestion, { ttlMinutes: 60, maxAttempts: 3 })).toEqual({
      reset: 1,
      failed: 1,
    });
    expect(enqueued).toEqual([stuck]);
    expect(await statusOf(stuck)).toMatchObject({ status: 'PENDING', attempts: 1 });
    expect(await statusOf(exhausted)).toEqual({
      status: 'ERROR',
      attempts: 3,
      last_error: 'Indexing did not finish after 3 attempts',
    });
    expect(stuckMessage(3)).toBe('Indexing did not finish after 3 attempts');
    expect((await statusOf(fresh)).status).toBe('RUNNING');
    expect((await statusOf(deleted)).status).toBe('RUNNING');
    expect((await statusOf(done)).status).toBe('DONE');

    // A second pass finds nothing: the reset document's clock restarted.
    expect(await runWatchdog(db, ingestion, { ttlMinutes: 60, maxAttempts: 3 })).toEqual({
      reset: 0,
      failed: 0,
    });
    // TTL 0 (embedded start-up recovery) takes every live RUNNING document.
    expect(await runWatchdog(db, ingestion, { ttlMinutes: 0, maxAttempts: 3 })).toEqual({
      reset: 1,
      failed: 0,
    });
    expect(enqueued).toEqual([stuck, fresh]);
  });

  it('limits the admin pass to one owner', async () => {
    const mine = await documentIn(aliceStore, { status: 'RUNNING', attempts: 0, ageMs: 2 * HOUR });
    const theirs = await documentIn(bobStore, { status: 'RUNNING', attempts: 0, ageMs: 2 * HOUR });
    const enqueued: number[] = [];
    const result = await runWatchdog(
      db,
      { enqueue: async (id) => void enqueued.push(id) },
      { ttlMinutes: 30, maxAttempts: 3, userId: bob },
    );
    expect(result).toEqual({ reset: 1, failed: 0 });
    expect(enqueued).toEqual([theirs]);
    expect((await statusOf(mine)).status).toBe('RUNNING');
  });

  it('mark-stuck-error fails RUNNING documents older than the given minutes, and only those', async () => {
    await db.kysely
      .updateTable('documents')
      .set({ status: 'DONE' })
      .where('status', '=', 'RUNNING')
      .execute();
    const old = await documentIn(aliceStore, { status: 'RUNNING', attempts: 2, ageMs: 61 * 60_000 });
    const recent = await documentIn(aliceStore, { status: 'RUNNING', attempts: 1, ageMs: 10 * 60_000 });
    const pending = await documentIn(aliceStore, { status: 'PENDING', attempts: 0, ageMs: 2 * HOUR });
    expect(await markStuckError(db, 60)).toBe(1);
    expect(await statusOf(old)).toEqual({ status: 'ERROR', attempts: 2, last_error: stuckMessage(2) });
    expect((await statusOf(recent)).status).toBe('RUNNING');
    expect((await statusOf(pending)).status).toBe('PENDING');
    expect(await markStuckError(db, 60)).toBe(0);
  });
});
