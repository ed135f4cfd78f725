// Document and store queries behind the routes and the CLI (spec §3.3, §3.4): listings, owner-checked reads
// (null for "not found", never an existence oracle), chunk pages, re-index requests, soft delete, restore and
// the purge of soft-deleted data after PURGE_DELETED_AFTER_DAYS.
import { rm } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { type Selectable, sql } from 'kysely';
import { guardDatabase, type RagDb } from './database.js';
import type { DocumentStatus, DocumentsTable } from './schema.js';

export type DocumentRow = Selectable<DocumentsTable>;

export interface DocumentOut {
  id: number;
  store_id: number;
  filename: string;
  display_name: string;
  status: DocumentStatus;
  size_bytes: number;
  created_at: string;
  gcs_uri: null;
  mime_type: string;
  page_count: number | null;
  chunk_count: number | null;
  token_count: number | null;
  last_error: string | null;
  status_updated_at: string;
}

export function documentOut(row: DocumentRow): DocumentOut {
  return {
    id: row.id,
    store_id: row.store_id,
    filename: row.filename,
    display_name: row.display_name,
    status: row.status,
    size_bytes: Number(row.size_bytes),
    created_at: row.created_at.toISOString(),
    gcs_uri: null,
    mime_type: row.mime_type,
    page_count: row.page_count,
    chunk_count: row.chunk_count,
    token_count: row.token_count,
    last_error: row.last_error,
    status_updated_at: row.status_updated_at.toISOString(),
  };
}

/** A live store of `userId`, else null. */
async function ownedLiveStore(db: RagDb, userId: number, storeId: number): Promise<{ id: number } | null> {
  const row = await db.kysely
    .selectFrom('stores')
    .select('id')
    .where('id', '=', storeId)
    .where('user_id', '=', userId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row ?? null;
}

/** Live documents of a live store the caller owns, newest first; null when the store is not theirs/live. */
export async function listStoreDocuments(
  db: RagDb,
  userId: number,
  storeId: number,
): Promise<DocumentOut[] | null> {
  return guardDatabase(async () => {
    if ((await ownedLiveStore(db, userId, storeId)) === null) return null;
    const rows = await db.kysely
      .selectFrom('documents')
      .selectAll()
      .where('store_id', '=', storeId)
      .where('deleted_at', 'is', null)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(documentOut);
  });
}

/** The document row when it is live, in a live store owned by `userId`; else null. */
export async function findOwnedDocument(
  db: RagDb,
  userId: number,
  documentId: number,
): Promise<DocumentRow | null> {
  if (!Number.isSafeInteger(documentId)) return null;
  return guardDatabase(async () => {
    const row = await db.kysely
      .selectFrom('documents as d')
      .innerJoin('stores as s', 's.id', 'd.store_id')
      .selectAll('d')
      .where('d.id', '=', documentId)
      .where('s.user_id', '=', userId)
      .where('d.deleted_at', 'is', null)
      .where('s.deleted_at', 'is', null)
      .executeTakeFirst();
    return row ?? null;
  });
}

export async function getDocument(
  db: RagDb,
  userId: number,
  documentId: number,
): Promise<DocumentOut | null> {
  const row = await findOwnedDocument(db, userId, documentId);
  return row === null ? null : documentOut(row);
}

export interface ChunkOut {
  id: number;
  ordinal: number;
  page: number | null;
  text: string;
  token_count: number;
}

export interface ChunkPage {
  document_id: number;
  total: number;
  chunks: ChunkOut[];
}

/** A page of the document's chunks in ordinal order; null when the document is not the caller's (or deleted). */
export async function listDocumentChunks(
  db: RagDb,
  userId: number,
  documentId: number,
  page: { offset: number; limit: number },
): Promise<ChunkPage | null> {
  const document = await findOwnedDocument(db, userId, documentId);
  if (document === null) return null;
  return guardDatabase(async () => {
    const [count, chunks] = await Promise.all([
      db.kysely
        .selectFrom('chunks')
        .select((eb) => eb.fn.countAll<number>().as('total'))
        .where('document_id', '=', documentId)
        .where('generation', '=', document.index_generation)
        .executeTakeFirstOrThrow(),
      db.kysely
        .selectFrom('chunks')
        .select(['id', 'ordinal', 'page', 'text', 'token_count'])
        .where('document_id', '=', documentId)
        .where('generation', '=', document.index_generation)
        .orderBy('ordinal')
        .offset(page.offset)
        .limit(page.limit)
        .execute(),
    ]);
    return { document_id: documentId, total: Number(count.total), chunks };
  });
}

export interface AdminDocumentOut extends DocumentOut {
  owner_email: string;
  attempts: number;
}

/** Ingestion overview for admins (spec §3.9): live documents of every user, newest status change first. */
export async function listDocumentsForAdmin(
  db: RagDb,
  options: { status?: DocumentStatus; limit: number },
): Promise<AdminDocumentOut[]> {
  return guardDatabase(async () => {
    let query = db.kysely
      .selectFrom('documents as d')
      .innerJoin('stores as s', 's.id', 'd.store_id')
      .innerJoin('users as u', 'u.id', 's.user_id')
      .selectAll('d')
      .select('u.email as owner_email')
      .where('d.deleted_at', 'is', null)
      .orderBy('d.status_updated_at', 'desc')
      .orderBy('d.id', 'desc')
      .limit(options.limit);
    if (options.status !== undefined) query = query.where('d.status', '=', options.status);
    const rows = await query.execute();
    return rows.map(({ owner_email, ...row }) => ({
      ...documentOut(row),
      owner_email,
      attempts: row.attempts,
    }));
  });
}

export type ReindexResult = 'queued' | 'busy' | 'not_found';

/**
 * Puts a DONE/ERROR document back to PENDING (attempts reset) so the caller can enqueue it; the old chunks stay
 * until the new index replaces them in one transaction. 'busy' while PENDING/RUNNING (409).
 */
export async function requestReindex(
  db: RagDb,
  userId: number | null,
  documentId: number,
): Promise<ReindexResult> {
  return guardDatabase(async () => {
    const { rows } = await sql<{ id: number }>`
      update documents d set status = 'PENDING', attempts = 0, last_error = null, status_updated_at = now()
      from stores s
      where d.id = ${documentId} and s.id = d.store_id and d.deleted_at is null and s.deleted_at is null
        and d.status in ('DONE', 'ERROR') and (${userId}::int is null or s.user_id = ${userId}::int)
      returning d.id`.execute(db.kysely);
    if (rows.length > 0) return 'queued';
    const exists =
      userId === null
        ? await db.kysely
            .selectFrom('documents')
            .select('id')
            .where('id', '=', documentId)
            .where('deleted_at', 'is', null)
            .executeTakeFirst()
        : await findOwnedDocument(db, userId, documentId);
    return exists ? 'busy' : 'not_found';
  });
}

/**
 * Admin retry (spec §3.9): an ERROR document, or one RUNNING for longer than `stuckAfterMinutes`, goes back to
 * PENDING with its attempts reset; returns false when there is no such live document.
 */
export async function resetDocumentForRetry(
  db: RagDb,
  documentId: number,
  stuckAfterMinutes: number,
): Promise<boolean> {
  return guardDatabase(async () => {
    const { rows } = await sql<{ id: number }>`
      update documents set status = 'PENDING', attempts = 0, last_error = null, status_updated_at = now()
      where id = ${documentId} and deleted_at is null and (status = 'ERROR' or (status = 'RUNNING'
        and status_updated_at < now() - make_interval(mins => ${stuckAfterMinutes})))
      returning id`.execute(db.kysely);
    return rows.length > 0;
  });
}

/** Document ids to re-index for the CLI (`--document`, `--store`, `--all`), after putting them back to PENDING. */
export async function markForReindex(
  db: RagDb,
  target: { documentId: number } | { storeId: number } | { all: true },
): Promise<number[]> {
  const condition =
    'documentId' in target
      ? sql`d.id = ${target.documentId}`
      : 'storeId' in target
        ? sql`d.store_id = ${target.storeId}`
        : sql`true`;
  return guardDatabase(async () => {
    const { rows } = await sql<{ id: number }>`
      update documents d set status = 'PENDING', attempts = 0, last_error = null, status_updated_at = now()
      from stores s
      where s.id = d.store_id and d.deleted_at is null and s.deleted_at is null
        and d.status in ('DONE', 'ERROR') and ${condition}
      returning d.id`.execute(db.kysely);
    return rows.map((row) => row.id).sort((a, b) => a - b);
  });
}

/** Soft-deletes a live document of the caller: it leaves retrieval at once. False → 404. */
export async function softDeleteDocument(db: RagDb, userId: number, documentId: number): Promise<boolean> {
  return guardDatabase(async () => {
    const { rows } = await sql<{ id: number }>`
      update documents d set deleted_at = now(), deleted_by = ${userId}
      from stores s
      where d.id = ${documentId} and s.id = d.store_id and s.user_id = ${userId}
        and d.deleted_at is null and s.deleted_at is null
      returning d.id`.execute(db.kysely);
    return rows.length > 0;
  });
}

/** Admin restore of a soft-deleted document (searchable again without re-indexing); null → 404. */
export async function restoreDocument(
  db: RagDb,
  documentId: number,
): Promise<{ document_id: number; store_id: number } | null> {
  return guardDatabase(async () => {
    const row = await db.kysely
      .updateTable('documents')
      .set({ deleted_at: null, deleted_by: null })
      .where('id', '=', documentId)
      .where('deleted_at', 'is not', null)
      .returning(['id', 'store_id'])
      .executeTakeFirst();
    return row === undefined ? null : { document_id: row.id, store_id: row.store_id };
  });
}

/**
 * Soft-deletes a live store of the caller and, with the same timestamp, its live documents (spec §3.3): all of
 * it leaves retrieval at once. False → 404 `Store not found`.
 */
export async function softDeleteStore(db: RagDb, userId: number, storeId: number): Promise<boolean> {
  return guardDatabase(() =>
    db.kysely.transaction().execute(async (trx) => {
      const { rows } = await sql<{ deleted_at: Date }>`
        update stores set deleted_at = now(), deleted_by = ${userId}
        where id = ${storeId} and user_id = ${userId} and deleted_at is null
        returning deleted_at`.execute(trx);
      const deletedAt = rows[0]?.deleted_at;
      if (deletedAt === undefined) return false;
      await trx
        .updateTable('documents')
        .set({ deleted_at: deletedAt, deleted_by: userId })
        .where('store_id', '=', storeId)
        .where('deleted_at', 'is', null)
        .execute();
      return true;
    }),
  );
}

/** Admin restore of a soft-deleted store and the documents deleted with it (same timestamp). False → 404. */
export async function restoreStore(db: RagDb, storeId: number): Promise<boolean> {
  return guardDatabase(() =>
    db.kysely.transaction().execute(async (trx) => {
      const store = await trx
        .selectFrom('stores')
        .select('deleted_at')
        .where('id', '=', storeId)
        .forUpdate()
        .executeTakeFirst();
      if (store === undefined || store.deleted_at === null) return false;
      await trx
        .updateTable('documents')
        .set({ deleted_at: null, deleted_by: null })
        .where('store_id', '=', storeId)
        .where('deleted_at', '=', store.deleted_at)
        .execute();
      await trx
        .updateTable('stores')
        .set({ deleted_at: null, deleted_by: null })
        .where('id', '=', storeId)
        .execute();
      return true;
    }),
  );
}

/**
 * Hard-deletes stores and documents soft-deleted more than `days` days ago (chunks and vectors go with them by
 * cascade) and removes their kept originals under `uploadDir`. Returns the counts.
 */
export async function purgeDeleted(
  db: RagDb,
  days: number,
  uploadDir: string,
): Promise<{ stores: number; documents: number; files: number }> {
  const { stores, documents } = await guardDatabase(() =>
    db.kysely.transaction().execute(async (trx) => {
      const cutoff = sql<Date>`now() - make_interval(days => ${Math.max(0, days)})`;
      const { rows: deletedDocuments } = await sql<{ storage_path: string }>`
        delete from documents d
        where d.deleted_at < ${cutoff}
           or d.store_id in (select id from stores where deleted_at < ${cutoff})
        returning d.storage_path`.execute(trx);
      const { rows: deletedStores } = await sql<{ id: number }>`
        delete from stores where deleted_at < ${cutoff} returning id`.execute(trx);
      return { stores: deletedStores, documents: deletedDocuments };
    }),
  );
  const root = resolve(uploadDir);
  let files = 0;
  for (const { storage_path } of documents) {
    // Originals live in UPLOAD_DIR/<store>/<document>/<name>: remove that document directory, never outside.
    const directory = dirname(resolve(storage_path));
    const inside = relative(root, directory);
    if (
      inside === '' ||
      inside.startsWith('..') ||
      inside.startsWith(sep) ||
      resolve(root, inside) !== directory
    )
      continue;
    await rm(directory, { recursive: true, force: true });
    files++;
  }
  for (const { id } of stores) await rm(resolve(root, String(id)), { recursive: true, force: true });
  return { stores: stores.length, documents: documents.length, files };
}
