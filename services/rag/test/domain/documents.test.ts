import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RagDb } from '../../src/domain/database.js';
import {
  getDocument,
  listDocumentChunks,
  listDocumentsForAdmin,
  listStoreDocuments,
  markForReindex,
  purgeDeleted,
  resetDocumentForRetry,
  softDeleteDocument,
} from '../../src/domain/documents.js';
import { createDocument, createStore, createUser, testBackends } from './rag-fixtures.js';

const DAY = 86_400_000;

describe.each(await testBackends())('documents on $name', (backend) => {
  let db: RagDb;
  let uploads: string;
  let alice: number;
  let bob: number;
  let store: number;

  beforeAll(async () => {
    db = await backend.open();
    uploads = mkdtempSync(join(tmpdir(), 'rag-docs-'));
    alice = await createUser(db, `alice-${Date.now()}@example.com`);
    bob = await createUser(db);
    store = await createStore(db, alice);
  });
  afterAll(async () => {
    await db?.close();
    await backend.cleanup();
    rmSync(uploads, { recursive: true, force: true });
  });

  it('lists live documents newest first as DocumentOut, and answers null for a store that is not the caller’s', async () => {
    const older = await createDocument(db, store, uploads, 'one', {
      filename: 'one.txt',
      mimeType: 'text/plain',
    });
    const newer = await createDocument(db, store, uploads, 'two!', {
      filename: 'two.txt',
      mimeType: 'text/plain',
    });
    const gone = await createDocument(db, store, uploads, 'three', {
      filename: 'three.txt',
      mimeType: 'text/plain',
    });
    await db.kysely
      .updateTable('documents')
      .set({ created_at: new Date('2030-01-01T00:00:00Z') })
      .where('id', 'in', [older, newer])
      .execute();
    expect(await softDeleteDocument(db, bob, gone)).toBe(false);
    expect(await softDeleteDocument(db, alice, gone)).toBe(true);

    const listed = await listStoreDocuments(db, alice, store);
    expect(listed?.map((document) => document.id)).toEqual([newer, older]);
    expect(listed?.[0]).toEqual({
      id: newer,
      store_id: store,
      filename: 'two.txt',
      display_name: 'two.txt',
      status: 'PENDING',
      size_bytes: 4,
      created_at: '2030-01-01T00:00:00.000Z',
      gcs_uri: null,
      mime_type: 'text/plain',
      page_count: null,
      chunk_count: null,
      token_count: null,
      last_error: null,
      status_updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(await listStoreDocuments(db, bob, store)).toBeNull();
    expect(await getDocument(db, alice, newer)).toMatchObject({ id: newer });
    expect(await getDocument(db, bob, newer)).toBeNull();
    expect(await getDocument(db, alice, gone)).toBeNull();
    expect(await getDocument(db, alice, 999_999)).toBeNull();
  });

  it('pages chunks in ordinal order, only for the owner', async () => {
    const id = await createDocument(db, store, uploads, 'x');
    await db.kysely
      .insertInto('chunks')
      .values(
        [2, 0, 1].map((ordinal) => ({
          document_id: id,
          store_id: store,
          ordinal,
          page: ordinal + 1,
          text: `chunk ${ordinal}`,
          token_count: 2,
          terms: '{}',
          term_count: 0,
        })),
      )
      .execute();
    const page = await listDocumentChunks(db, alice, id, { offset: 1, limit: 1 });
    expect(page).toEqual({
      document_id: id,
      total: 3,
      chunks: [{ id: expect.any(Number), ordinal: 1, page: 2, text: 'chunk 1', token_count: 2 }],
    });
    expect(await listDocumentChunks(db, bob, id, { offset: 0, limit: 50 })).toBeNull();
  });

  it('lists documents for admins with owner and attempts, filtered by status', async () => {
    const id = await createDocument(db, store, uploads, 'err');
    await db.kysely
      .updateTable('documents')
      .set({ status: 'ERROR', attempts: 3, last_error: 'Encrypted PDF' })
      .where('id', '=', id)
      .execute();
    const errors = await listDocumentsForAdmin(db, { status: 'ERROR', limit: 100 });
    expect(errors.map((document) => document.id)).toContain(id);
    expect(errors.every((document) => document.status === 'ERROR')).toBe(true);
    expect(errors.find((document) => document.id === id)).toMatchObject({
      owner_email: expect.stringMatching(/^alice-/),
      attempts: 3,
      last_error: 'Encrypted PDF',
    });
  });

  it('resets ERROR or long-RUNNING documents for an admin retry, and marks documents for the reindex command', async () => {
    const own = await createStore(db, alice, 'Retry');
    const failed = await createDocument(db, own, uploads, 'a');
    const running = await createDocument(db, own, uploads, 'b');
    const busy = await createDocument(db, own, uploads, 'c');
    const done = await createDocument(db, own, uploads, 'd');
    const set = (id: number, status: 'ERROR' | 'RUNNING' | 'DONE', ageMs = 0) =>
      db.kysely
        .updateTable('documents')
        .set({ status, attempts: 3, last_error: 'x', status_updated_at: new Date(Date.now() - ageMs) })
        .where('id', '=', id)
        .execute();
    await set(failed, 'ERROR');
    await set(running, 'RUNNING', 2 * 3600_000);
    await set(busy, 'RUNNING');
    await set(done, 'DONE');
    expect(await resetDocumentForRetry(db, failed, 30)).toBe(true);
    expect(await resetDocumentForRetry(db, running, 30)).toBe(true);
    expect(await resetDocumentForRetry(db, busy, 30)).toBe(false);
    expect(await resetDocumentForRetry(db, done, 30)).toBe(false);
    const row = await db.kysely
      .selectFrom('documents')
      .select(['status', 'attempts', 'last_error'])
      .where('id', '=', failed)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'PENDING', attempts: 0, last_error: null });

    expect(await markForReindex(db, { storeId: own })).toEqual([done]);
    await set(done, 'DONE');
    expect(await markForReindex(db, { documentId: done })).toEqual([done]);
    expect(await markForReindex(db, { documentId: done })).toEqual([]); // already PENDING
  });

  it('purges data soft-deleted longer ago than the retention, with the kept originals', async () => {
    const old = await createDocument(db, store, uploads, 'old');
    const recent = await createDocument(db, store, uploads, 'recent');
    const oldStore = await createStore(db, alice, 'Old');
    const inOldStore = await createDocument(db, oldStore, uploads, 'inside');
    const now = Date.now();
    await db.kysely
      .updateTable('documents')
      .set({ deleted_at: new Date(now - 31 * DAY) })
      .where('id', '=', old)
      .execute();
    await db.kysely
      .updateTable('documents')
      .set({ deleted_at: new Date(now - DAY) })
      .where('id', '=', recent)
      .execute();
    await db.kysely
      .updateTable('stores')
      .set({ deleted_at: new Date(now - 40 * DAY) })
      .where('id', '=', oldStore)
      .execute();
    const paths = await db.kysely
      .selectFrom('documents')
      .select(['id', 'storage_path'])
      .where('id', 'in', [old, recent, inOldStore])
      .execute();
    const pathOf = (id: number) => paths.find((row) => row.id === id)?.storage_path ?? '';

    expect(await purgeDeleted(db, 30, uploads)).toEqual({ stores: 1, documents: 2, files: 2 });
    const left = await db.kysely
      .selectFrom('documents')
      .select('id')
      .where('id', 'in', [old, recent, inOldStore])
      .execute();
    expect(left.map((row) => row.id)).toEqual([recent]);
    expect(existsSync(dirname(pathOf(old)))).toBe(false);
    expect(existsSync(dirname(pathOf(inOldStore)))).toBe(false);
    expect(existsSync(pathOf(recent))).toBe(true);
    expect(await purgeDeleted(db, 30, uploads)).toEqual({ stores: 0, documents: 0, files: 0 });
  });
});
