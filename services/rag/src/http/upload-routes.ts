// `POST /api/upload` and `GET /api/upload/op-status/{op_id}` (spec §3.4). The nine checks run in order and the
// first failure answers; the body streams to a 0600 file in a private workspace under TMP_DIR with the size cap
// enforced while streaming, and nothing is left anywhere (workspace, UPLOAD_DIR, documents row) on any failure.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  discardRequestBody,
  MultipartFormatError,
  MultipartLimitError,
  type ReceivedFile,
  receiveMultipart,
} from '@quintet/kernel/multipart';
import { WorkspaceRegistry } from '@quintet/kernel/tmp';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { guardDatabase } from '../domain/database.js';
import { findOwnedDocument } from '../domain/documents.js';
import { indexingPrice, operationError } from '../domain/ingestion.js';
import { indexCostUsd } from '../domain/text/costs.js';
import {
  checkFileContent,
  LEGACY_OFFICE_MIMES,
  resolveUploadMime,
  safeFilename,
  unsupportedMimeMessage,
} from '../domain/text/upload-checks.js';
import { UPLOAD_WORKSPACE_PREFIX } from '../domain/tmp-files.js';
import type { RagContext } from './context.js';
import { detail, featureRateLimit, InputReader, requireUser } from './conventions.js';
import { findOwnedStores } from './store-lookup.js';

const STAGING_SWEEP_INTERVAL_MS = 3_600_000;
/** Room for boundaries, part headers and the text fields around the file of a multipart body. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const MAX_FIELD_BYTES = 16 * 1024;
const MAX_PARTS = 10;
const DISPLAY_NAME_MAX = 255;

export const FILE_TOO_LARGE = 'File too large';
export const CONTENT_MISMATCH = 'File content does not match declared type';
export const QUEUE_UNAVAILABLE = 'Ingestion service busy/unavailable. Please try again later.';

function isNoSpace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function insufficientStorage() {
  return detail(507, 'Insufficient storage');
}

/** Moves a file, copying when TMP_DIR and UPLOAD_DIR are on different file systems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EXDEV') throw error;
    await copyFile(from, to);
    await unlink(from);
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

function missingField(name: string) {
  return { loc: ['body', name], msg: 'Field required', type: 'missing' };
}

export function registerUploadRoutes(app: FastifyInstance, context: RagContext): void {
  const { config, db, logger } = context;
  const workspaces = new WorkspaceRegistry({ root: config.tmpDir, prefix: UPLOAD_WORKSPACE_PREFIX });
  // Staging folders a crash left behind: swept at start-up, then hourly, at the age cleanup-tmp uses; folders of
  // uploads in flight in this process are never touched.
  if (config.tmpMaxAgeHours > 0) {
    const stopSweeper = workspaces.startSweeper({
      intervalMs: STAGING_SWEEP_INTERVAL_MS,
      olderThanMs: config.tmpMaxAgeHours * 3_600_000,
      onSweep: (removed) =>
        logger.info({ event: 'upload_staging_swept', count: removed.length }, 'upload_staging_swept'),
      onError: (error) =>
        logger.warn({ event: 'upload_staging_sweep_failed', err: error }, 'upload_staging_sweep_failed'),
    });
    app.addHook('onClose', async () => stopSweeper());
  }
  const uploadCap = config.maxUploadBytes;

  /** After an early answer: read and discard the rest of the body (up to 2 × the cap) so the client sees it. */
  const drain = (request: FastifyRequest, reply: FastifyReply) => {
    if (request.raw.complete) return;
    reply.header('connection', 'close');
    discardRequestBody(request.raw, 2 * uploadCap);
  };

  const receive = async (
    request: FastifyRequest,
    workspace: string,
  ): Promise<{ fields: Map<string, string>; file: ReceivedFile | undefined }> => {
    try {
      const received = await receiveMultipart(request.raw, {
        fileFields: ['file'],
        directory: workspace,
        maxFileBytes: uploadCap,
        maxFieldBytes: MAX_FIELD_BYTES,
        maxParts: MAX_PARTS,
      });
      return { fields: received.fields, file: received.files.get('file') };
    } catch (error) {
      if (error instanceof MultipartLimitError) {
        if (error.kind === 'file') {
          logger.info({ event: 'upload_too_large', max_bytes: uploadCap }, 'upload_too_large');
          throw detail(413, FILE_TOO_LARGE);
        }
        throw detail(413, 'Request body too large');
      }
      if (error instanceof MultipartFormatError) {
        throw detail(422, [{ loc: ['body'], msg: 'Invalid multipart body', type: 'value_error' }]);
      }
      if (isNoSpace(error)) throw insufficientStorage();
      throw error;
    }
  };

  app.post('/api/upload', async (request, reply) => {
    const user = await requireUser(request);
    await featureRateLimit(
      context,
      request,
      reply,
      `user:${user.id}:upload`,
      config.uploadRateLimitPerMinute,
    );
    const mediaType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'multipart/form-data') {
      drain(request, reply);
      throw detail(422, [missingField('storeId'), missingField('file')]);
    }
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > uploadCap + MULTIPART_OVERHEAD_BYTES) {
      logger.info({ event: 'upload_too_large', max_bytes: uploadCap }, 'upload_too_large');
      drain(request, reply);
      throw detail(413, FILE_TOO_LARGE);
    }

    const workspace = await workspaces.create(randomBytes(12).toString('hex'));
    let documentId: number | null = null;
    let documentDir: string | null = null;
    try {
      const { fields, file } = await receive(request, workspace);

      // 3. fields
      const reader = new InputReader('body', Object.fromEntries(fields));
      const storeId = reader.integer('storeId', { required: true });
      const displayName = reader.string('displayName', { max: DISPLAY_NAME_MAX, trim: true });
      if (file === undefined) reader.issues.push(missingField('file'));
      reader.done();
      const received = file as ReceivedFile;

      // 4. store
      const [store] = await findOwnedStores(db, user.id, [storeId as number]);
      if (store === undefined) throw detail(404, 'Store not found');

      // 5. MIME type
      const partType = (received as ReceivedFile & { mimeType?: string }).mimeType;
      const mimeType = resolveUploadMime(partType, received.filename);
      if (LEGACY_OFFICE_MIMES.has(mimeType) || !config.allowedUploadMimes.includes(mimeType)) {
        logger.info(
          { event: 'upload_invalid_mime', user_id: user.id, mime_type: mimeType },
          'upload_invalid_mime',
        );
        throw detail(415, unsupportedMimeMessage(mimeType, config.uploadProfile, config.allowedUploadMimes));
      }

      // 6. size (the cap was enforced while streaming)
      if (received.bytes === 0) throw detail(400, 'File is empty');
      await chmod(received.path, 0o600);

      // 7. content
      if (!(await checkFileContent(received.path, mimeType))) throw detail(415, CONTENT_MISMATCH);

      // 8. budget
      const estimatedTokens = Math.floor(received.bytes / 4);
      const estimatedCost = indexCostUsd(estimatedTokens, indexingPrice(config));
      await context.budgets.checkUpload(user.id, estimatedCost);

      // 9. store the file and the row, then enqueue
      const filename = safeFilename(received.filename);
      const title = displayName !== undefined && displayName !== '' ? displayName : filename;
      const sha256 = await sha256Of(received.path);
      const row = await guardDatabase(() =>
        db.kysely
          .insertInto('documents')
          .values({
            store_id: store.id,
            filename,
            display_name: title,
            mime_type: mimeType,
            size_bytes: received.bytes,
            sha256,
            storage_path: '',
            status: 'PENDING',
          })
          .returning('id')
          .executeTakeFirstOrThrow(),
      );
      documentId = row.id;
      documentDir = join(config.uploadDir, String(store.id), String(documentId));
      const storagePath = join(documentDir, filename);
      try {
        await mkdir(documentDir, { recursive: true, mode: 0o700 });
        await moveFile(received.path, storagePath);
      } catch (error) {
        if (isNoSpace(error)) throw insufficientStorage();
        throw error;
      }
      await guardDatabase(() =>
        db.kysely
          .updateTable('documents')
          .set({ storage_path: storagePath })
          .where('id', '=', row.id)
          .execute(),
      );
      const stored = row.id;
      documentId = null;
      documentDir = null;
      try {
        await context.ingestion.enqueue(stored);
      } catch (error) {
        logger.error(
          { event: 'upload_enqueue_failed', document_id: stored, err: error },
          'upload_enqueue_failed',
        );
        await guardDatabase(() =>
          db.kysely
            .updateTable('documents')
            .set({
              status: 'ERROR',
              last_error: 'Ingestion queue unavailable',
              status_updated_at: new Date(),
            })
            .where('id', '=', stored)
            .execute(),
        ).catch(() => {});
        throw detail(503, QUEUE_UNAVAILABLE);
      }
      logger.info(
        {
          event: 'upload_enqueued',
          user_id: user.id,
          store_id: store.id,
          document_id: stored,
          size_bytes: received.bytes,
        },
        'upload_enqueued',
      );
      return {
        op_id: `doc-${stored}`,
        document_id: stored,
        file_display_name: title,
        estimated_tokens: estimatedTokens,
        estimated_cost_usd: Number(estimatedCost),
      };
    } catch (error) {
      drain(request, reply);
      if (documentId !== null) {
        const orphan = documentId;
        await guardDatabase(() => db.kysely.deleteFrom('documents').where('id', '=', orphan).execute()).catch(
          () => {},
        );
      }
      if (documentDir !== null) await rm(documentDir, { recursive: true, force: true }).catch(() => {});
      throw error;
    } finally {
      await workspaces.remove(workspace).catch(() => {});
    }
  });

  app.get('/api/upload/op-status/:op_id', async (request) => {
    const user = await requireUser(request);
    const opId = String((request.params as { op_id?: unknown }).op_id ?? '');
    if (!opId.startsWith('doc-')) throw detail(400, 'Invalid op id');
    const suffix = opId.slice(4);
    if (!/^\d+$/.test(suffix) || !Number.isSafeInteger(Number(suffix)))
      throw detail(400, 'Invalid op id format');
    const document = await findOwnedDocument(db, user.id, Number(suffix));
    if (document === null) throw detail(404, 'Document not found');
    return {
      status: document.status,
      error: operationError(document.status, document.last_error),
      document_id: document.id,
      chunk_count: document.chunk_count,
      page_count: document.page_count,
      attempts: document.attempts,
      updated_at: document.status_updated_at.toISOString(),
    };
  });
}
