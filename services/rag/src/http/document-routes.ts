// Documents (spec §3.4): listing per store, details, chunk pages, the original file, re-index, soft delete and
// the admin restore. Foreign, deleted and unknown ids all answer the same 404 (no existence oracle).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { writeAudit } from '../domain/audit.js';
import {
  findOwnedDocument,
  getDocument,
  listDocumentChunks,
  listStoreDocuments,
  requestReindex,
  restoreDocument,
  softDeleteDocument,
} from '../domain/documents.js';
import type { RagContext } from './context.js';
import { detail, InputReader, pathInt, requireAdmin, requireUser } from './conventions.js';

const DOCUMENT_NOT_FOUND = 'Document not found';

function notFound() {
  return detail(404, DOCUMENT_NOT_FOUND);
}

export function registerDocumentRoutes(app: FastifyInstance, context: RagContext): void {
  const { db, logger } = context;

  app.get('/api/documents/store/:store_id', async (request) => {
    const user = await requireUser(request);
    const storeId = pathInt(request, 'store_id');
    const documents = await listStoreDocuments(db, user.id, storeId);
    if (documents === null) throw detail(404, 'Store not found');
    return documents;
  });

  app.get('/api/documents/:id', async (request) => {
    const user = await requireUser(request);
    const document = await getDocument(db, user.id, pathInt(request, 'id'));
    if (document === null) throw notFound();
    return document;
  });

  app.get('/api/documents/:id/chunks', async (request) => {
    const user = await requireUser(request);
    const id = pathInt(request, 'id');
    const query = InputReader.query(request);
    const offset = query.integer('offset', { min: 0 }) ?? 0;
    const limit = query.integer('limit', { min: 1, max: 200 }) ?? 50;
    query.done();
    const page = await listDocumentChunks(db, user.id, id, { offset, limit });
    if (page === null) throw notFound();
    return page;
  });

  app.get('/api/documents/:id/file', async (request, reply) => {
    const user = await requireUser(request);
    const document = await findOwnedDocument(db, user.id, pathInt(request, 'id'));
    if (document === null || document.storage_path === '') throw notFound();
    let size: number;
    try {
      size = (await stat(document.storage_path)).size;
    } catch {
      throw notFound();
    }
    return reply
      .header('content-type', document.mime_type)
      .header('content-disposition', `attachment; filename="${document.filename}"`)
      .header('x-content-type-options', 'nosniff')
      .header('content-length', size)
      .send(createReadStream(document.storage_path));
  });

  app.post('/api/documents/:id/reindex', async (request, reply) => {
    const user = await requireUser(request);
    const id = pathInt(request, 'id');
    const result = await requestReindex(db, user.id, id);
    if (result === 'not_found') throw notFound();
    if (result === 'busy') throw detail(409, 'Document is already being indexed');
    try {
      await context.ingestion.enqueue(id);
    } catch (error) {
      logger.error(
        { event: 'reindex_enqueue_failed', document_id: id, err: error },
        'reindex_enqueue_failed',
      );
      throw detail(503, 'Ingestion service busy/unavailable. Please try again later.');
    }
    logger.info(
      { event: 'document_reindex_requested', user_id: user.id, document_id: id },
      'document_reindex_requested',
    );
    return reply.code(202).send({ op_id: `doc-${id}` });
  });

  app.delete('/api/documents/:id', async (request, reply) => {
    const user = await requireUser(request);
    const id = pathInt(request, 'id');
    if (!(await softDeleteDocument(db, user.id, id))) throw notFound();
    logger.info(
      { event: 'document_soft_deleted', user_id: user.id, document_id: id },
      'document_soft_deleted',
    );
    return reply.code(202).send({ status: 'deletion_scheduled' });
  });

  app.post('/api/documents/:id/restore', async (request) => {
    const admin = await requireAdmin(request);
    const id = pathInt(request, 'id');
    const restored = await restoreDocument(db, id);
    if (restored === null) throw notFound();
    await writeAudit(db.kysely, logger, {
      adminUserId: admin.id,
      action: 'restore_document',
      targetType: 'document',
      targetId: id,
      metadata: { store_id: restored.store_id },
    });
    logger.info(
      { event: 'document_restored', admin_user_id: admin.id, document_id: id },
      'document_restored',
    );
    return restored;
  });
}
