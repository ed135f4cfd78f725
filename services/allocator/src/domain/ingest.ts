// Accepting an ingest (spec §3.4): JSON documents validated, spooled files detected and hashed, then — in one
// transaction — raw rows, assets, the job and lineage; files moved under incoming/; the job enqueued. An
// idempotency key replays the original job for the same content and conflicts for other content.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { chunkRowsByParameters, isUniqueViolation, MAX_STATEMENT_PARAMETERS } from '@quintet/kernel/db';
import { type Insertable, type Selectable, sql } from 'kysely';
import type { AllocatorConfig } from '../config.js';
import type { AllocatorRuntime } from '../runtime.js';
import type { AssetRawTable, AssetStatus, AssetTable, JobTable, JobType, LineageTable } from './database.js';
import { DETECTION_HEAD_BYTES, type DetectedType, detectFileType, sizeClass } from './detect.js';
import { canonicalJson, sha256Hex } from './json/canonical.js';
import { type LineageEntry, lineageRows } from './lineage.js';
import { safeFileName } from './storage.js';

/** A client-caused problem with its HTTP status and error code (the route renders it). */
export class IngestProblem extends Error {
  override readonly name = 'IngestProblem';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: string[],
  ) {
    super(message);
  }
}

export interface SpooledFile {
  tempPath: string;
  filename: string | undefined;
  declaredMime: string | undefined;
  sizeBytes: number;
  sha256: string;
  detected: DetectedType;
  /** the documents of a JSON file (validated) */
  documents?: Record<string, unknown>[];
}

export interface IngestRequest {
  /** the idempotency key; null → a generated UUID */
  requestId: string | null;
  files: SpooledFile[];
  payload: Record<string, unknown>[] | null;
  owner: string | null;
  comments: string | null;
  collectionName: string | null;
  tags: string[];
  priority: number;
  callbackUrl: string | null;
  batchId: string | null;
}

export interface IngestAccepted {
  jobId: string;
  systemIds: string[];
  requestId: string;
  createdAt: Date;
  replayed: boolean;
  jobType: JobType;
}

/** The per-item byte limit of a kind (MAX_*_BYTES). */
export function itemLimit(config: AllocatorConfig, kind: ReturnType<typeof sizeClass>): number {
  switch (kind) {
    case 'image':
      return config.maxImageBytes;
    case 'video':
      return config.maxVideoBytes;
    case 'audio':
      return config.maxAudioBytes;
    case 'document':
      return config.maxDocumentBytes;
    case 'json':
      return config.maxJsonBytes;
  }
}

export function itemTooLargeMessage(filename: string, size: number, limit: number, kind: string): string {
  return `File ${filename}: ${size} bytes exceeds maximum ${limit} bytes for ${kind}`;
}

/** JSON text → its documents (spec §3.4 step 6), or the 400 of the first rule it breaks. */
export function parseJsonDocuments(text: string, label = 'JSON payload'): Record<string, unknown>[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new IngestProblem(400, 'invalid_json', `Invalid JSON in ${label}: ${(error as Error).message}`);
  }
  return jsonDocumentsOf(value);
}

/** An already-parsed payload → its documents, with the §3.4 step 6 rules. */
export function jsonDocumentsOf(value: unknown): Record<string, unknown>[] {
  const isObject = (item: unknown) => item !== null && typeof item === 'object' && !Array.isArray(item);
  if (Array.isArray(value)) {
    if (value.length === 0) throw new IngestProblem(400, 'bad_request', 'JSON array cannot be empty');
    value.forEach((item, index) => {
      if (!isObject(item) || Object.keys(item as object).length === 0)
        throw new IngestProblem(400, 'bad_request', `JSON array element ${index} must be a non-empty object`);
    });
    return value as Record<string, unknown>[];
  }
  if (!isObject(value))
    throw new IngestProblem(400, 'bad_request', 'JSON payload must be an object or array');
  if (Object.keys(value as object).length === 0)
    throw new IngestProblem(400, 'bad_request', 'JSON object cannot be empty');
  return [value as Record<string, unknown>];
}

/** Reads the head of a file for type detection. */
async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(DETECTION_HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, DETECTION_HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Copies a local file into TMP_DIR while hashing it and detects its type (folder ingest); null when the type
 * is unsupported; IngestProblem for a per-item limit or invalid JSON.
 */
export async function spoolLocalFile(
  runtime: AllocatorRuntime,
  path: string,
  filename: string,
): Promise<SpooledFile | null> {
  const { config } = runtime;
  const head = await readHead(path);
  const detected = await detectFileType(head, undefined, filename);
  if (detected === null) return null;
  const size = (await stat(path)).size;
  const kind = sizeClass(detected);
  const limit = itemLimit(config, kind);
  if (size > limit)
    throw new IngestProblem(413, 'payload_too_large', itemTooLargeMessage(filename, size, limit, kind));
  const spoolDir = join(config.tmpDir, `folder-${randomUUID()}`);
  await mkdir(spoolDir, { recursive: true });
  const tempPath = join(spoolDir, 'data');
  const hash = createHash('sha256');
  try {
    await pipeline(
      createReadStream(path),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(tempPath),
    );
    const spooled: SpooledFile = {
      tempPath,
      filename,
      declaredMime: undefined,
      sizeBytes: size,
      sha256: hash.digest('hex'),
      detected,
    };
    if (detected.kind === 'json') {
      const { readFile } = await import('node:fs/promises');
      spooled.documents = parseJsonDocuments(await readFile(tempPath, 'utf8'), `file ${filename}`);
    }
    return spooled;
  } catch (error) {
    await rm(spoolDir, { recursive: true, force: true });
    throw error;
  }
}

/** SHA-256 over the ordered file hashes, the canonical payload, owner, comments, collection_name. */
export function ingestFingerprint(request: IngestRequest): string {
  return sha256Hex(
    canonicalJson({
      files: request.files.map((file) => file.sha256),
      payload: request.payload,
      owner: request.owner,
      comments: request.comments,
      collection_name: request.collectionName,
    }),
  );
}

function jobTypeOf(request: IngestRequest): JobType {
  const hasFiles = request.files.length > 0;
  const hasPayload = request.payload !== null && request.payload.length > 0;
  if (hasFiles && hasPayload) return 'mixed';
  return hasFiles ? 'media' : 'json';
}

type JobRow = Selectable<JobTable>;

/** The 409 of a reused idempotency key with other content. */
export const IDEMPOTENCY_CONFLICT_MESSAGE = 'Idempotency key was already used with a different request';

function replayOf(job: JobRow, fingerprint: string): IngestAccepted {
  if (job.fingerprint !== fingerprint)
    throw new IngestProblem(409, 'idempotency_conflict', IDEMPOTENCY_CONFLICT_MESSAGE);
  return {
    jobId: job.id,
    systemIds: job.asset_ids,
    requestId: job.request_id,
    createdAt: job.created_at,
    replayed: true,
    jobType: job.job_type,
  };
}

interface PlannedAsset {
  id: string;
  kind: 'media' | 'document' | 'json';
  contentType: string;
  sha256: string;
  sizeBytes: number;
  rawId: string | null;
  document: Record<string, unknown> | null;
  jsonBatch: string | null;
  originalFilename: string | null;
  detectedExt: string | null;
}

/** A JSON document's asset: hashed and sized as its canonical JSON (spec §3.4). */
function jsonAsset(
  document: Record<string, unknown>,
  origin: Pick<PlannedAsset, 'rawId' | 'jsonBatch' | 'originalFilename' | 'detectedExt'>,
): PlannedAsset {
  const text = canonicalJson(document);
  return {
    id: randomUUID(),
    kind: 'json',
    contentType: 'application/json',
    sha256: sha256Hex(text),
    sizeBytes: Buffer.byteLength(text),
    document,
    ...origin,
  };
}

/** Removes the spool directories of the given files (the whole request spool lives under one directory each). */
export async function discardSpooledFiles(files: readonly SpooledFile[]): Promise<void> {
  await Promise.all(files.map((file) => rm(join(file.tempPath, '..'), { recursive: true, force: true })));
}

/**
 * Stores everything of one ingest in one transaction, moves the spooled files under incoming/, and enqueues the
 * job. Spooled files are consumed (moved or removed) whatever the outcome.
 */
export async function acceptIngest(
  runtime: AllocatorRuntime,
  request: IngestRequest,
): Promise<IngestAccepted> {
  const { catalog, storage, config } = runtime;
  const fingerprint = ingestFingerprint(request);
  const requestId = request.requestId ?? randomUUID();
  try {
    if (request.requestId !== null) {
      const existing = await catalog
        .selectFrom('job')
        .selectAll()
        .where('request_id', '=', requestId)
        .executeTakeFirst();
      if (existing !== undefined) return replayOf(existing, fingerprint);
    }
    const jobId = randomUUID();
    const assets: PlannedAsset[] = [];
    const moves: { from: string; to: string; rawId: string; partId: string; file: SpooledFile }[] = [];
    request.files.forEach((file, index) => {
      const partId = `part_${index}`;
      const rawId = randomUUID();
      const name = safeFileName(file.filename, index);
      moves.push({
        from: file.tempPath,
        to: storage.incomingPath(requestId, partId, name),
        rawId,
        partId,
        file,
      });
      const originalFilename =
        file.filename === undefined ? null : basename(file.filename.replaceAll('\\', '/'));
      if (file.detected.kind === 'json') {
        for (const document of file.documents ?? [])
          assets.push(
            jsonAsset(document, {
              rawId,
              jsonBatch: partId,
              originalFilename,
              detectedExt: file.detected.ext,
            }),
          );
      } else {
        assets.push({
          id: randomUUID(),
          kind: file.detected.kind,
          contentType: file.detected.mime,
          sha256: file.sha256,
          sizeBytes: file.sizeBytes,
          rawId,
          document: null,
          jsonBatch: null,
          originalFilename,
          detectedExt: file.detected.ext,
        });
      }
    });
    for (const document of request.payload ?? [])
      assets.push(
        jsonAsset(document, { rawId: null, jsonBatch: 'payload', originalFilename: null, detectedExt: null }),
      );
    const jobType = jobTypeOf(request);
    const systemIds = assets.map((asset) => asset.id);
    // Files first: a failed transaction removes them again, and a committed row never points at a missing file.
    const movedUris: string[] = [];
    try {
      for (const move of moves) movedUris.push(await storage.moveFile(move.from, move.to));
    } catch (error) {
      await Promise.all(movedUris.map((uri) => storage.removeUri(uri)));
      throw error;
    }
    const rows: IngestRows = {
      job: {
        id: jobId,
        request_id: requestId,
        fingerprint,
        job_type: jobType,
        status: 'queued',
        priority: request.priority,
        job_data: JSON.stringify({
          owner: request.owner,
          comments: request.comments,
          collection_name: request.collectionName,
          tags: request.tags,
          file_count: request.files.length,
          payload_documents: request.payload?.length ?? 0,
        }),
        asset_ids: systemIds,
        owner: request.owner,
        max_retries: config.jobMaxRetries,
        callback_url: request.callbackUrl,
        batch_id: request.batchId,
      },
      raws: moves.map((move, index) => ({
        id: move.rawId,
        request_id: requestId,
        part_id: move.partId,
        uri: movedUris[index] as string,
        size_bytes: move.file.sizeBytes,
        content_type: move.file.detected.mime,
      })),
      assets: assets.map((asset, position) => ({
        id: asset.id,
        kind: asset.kind,
        uri: null,
        sha256: asset.sha256,
        content_type: asset.contentType,
        size_bytes: asset.sizeBytes,
        owner: request.owner,
        comments: request.comments,
        status: 'queued',
        error_message: null,
        cluster_id: null,
        schema_id: null,
        parent_asset_id: null,
        raw_asset_id: asset.rawId,
        job_id: jobId,
        position,
        user_tags: request.tags,
        tags: asset.kind === 'media' ? [] : request.tags,
        embedding: null,
        embedding_model: null,
        perceptual_hash: null,
        duplicate_of: null,
        duplicate_type: null,
        storage_id: null,
        thumbnail_uri: null,
        document: asset.document === null ? null : JSON.stringify(asset.document),
        json_batch: asset.jsonBatch,
        metadata: JSON.stringify({
          original_filename: asset.originalFilename,
          ...(asset.detectedExt === null ? {} : { detected_ext: asset.detectedExt }),
        }),
      })),
      lineage: lineageRows(assets.flatMap((asset) => acceptedLineage(asset, requestId, jobId))),
    };
    let createdAt: Date;
    try {
      createdAt = await insertIngest(catalog, rows);
    } catch (error) {
      await Promise.all(movedUris.map((uri) => storage.removeUri(uri)));
      if (request.requestId !== null && isUniqueViolation(error)) {
        // A concurrent request with the same key won the race: answer as its replay (or its conflict).
        const winner = await catalog
          .selectFrom('job')
          .selectAll()
          .where('request_id', '=', requestId)
          .executeTakeFirst();
        if (winner !== undefined) return replayOf(winner, fingerprint);
      }
      throw error;
    }
    try {
      await runtime.jobs.enqueue(jobId, { priority: request.priority });
    } catch (error) {
      // The queue is down: undo the ingest so no job row is left orphaned (spec §7, Redis down → 503).
      await removeJobCompletely(runtime, jobId, requestId);
      throw error;
    }
    return { jobId, systemIds, requestId, createdAt, replayed: false, jobType };
  } finally {
    await discardSpooledFiles(request.files);
  }
}

interface IngestRows {
  job: Insertable<JobTable>;
  raws: Insertable<AssetRawTable>[];
  assets: Insertable<AssetTable>[];
  lineage: Insertable<LineageTable>[];
}

/**
 * Writes the rows of one ingest atomically and returns the job's created_at. An ingest that fits one statement
 * (every upload of a few files) is written as one statement of data-modifying CTEs: one round trip and no
 * transaction holding the connection. A large JSON batch is written in a transaction, in statements of
 * bounded size.
 */
async function insertIngest(catalog: AllocatorRuntime['catalog'], rows: IngestRows): Promise<Date> {
  const tables = [
    { table: 'asset_raw', rows: rows.raws },
    { table: 'asset', rows: rows.assets },
    { table: 'lineage', rows: rows.lineage },
  ] as const;
  const parameters = [rows.job, ...rows.raws, ...rows.assets, ...rows.lineage].reduce(
    (sum, row) => sum + Object.keys(row).length,
    0,
  );
  if (parameters <= MAX_STATEMENT_PARAMETERS) {
    const parts = [sql`job_row as (${catalog.insertInto('job').values(rows.job).returning('created_at')})`];
    for (const { table, rows: values } of tables)
      if (values.length > 0)
        parts.push(sql`${sql.id(`${table}_rows`)} as (${catalog.insertInto(table).values(values as never)})`);
    const { rows: written } = await sql<{
      created_at: Date;
    }>`with ${sql.join(parts)} select created_at from job_row`.execute(catalog);
    return (written[0] as { created_at: Date }).created_at;
  }
  return catalog.transaction().execute(async (tx) => {
    const job = await tx.insertInto('job').values(rows.job).returning('created_at').executeTakeFirstOrThrow();
    for (const { table, rows: values } of tables)
      for (const chunk of chunkRowsByParameters(values as readonly object[]))
        await tx
          .insertInto(table)
          .values(chunk as never)
          .execute();
    return job.created_at;
  });
}

/** The lineage of an accepted asset (spec §3.10): accepted, then raw stored or JSON validated. */
function acceptedLineage(asset: PlannedAsset, requestId: string, jobId: string): LineageEntry[] {
  const entries: LineageEntry[] = [
    { requestId, assetId: asset.id, stage: 'ingest_accepted', detail: { job_id: jobId, kind: asset.kind } },
  ];
  if (asset.rawId !== null && asset.kind !== 'json')
    entries.push({
      requestId,
      assetId: asset.id,
      stage: 'raw_stored',
      detail: { raw_asset_id: asset.rawId },
    });
  if (asset.kind === 'json')
    entries.push({
      requestId,
      assetId: asset.id,
      stage: 'json_validated',
      detail: { batch: asset.jsonBatch },
    });
  return entries;
}

/** Deletes a just-created job with its assets, raw rows, lineage and incoming files. */
async function removeJobCompletely(
  runtime: AllocatorRuntime,
  jobId: string,
  requestId: string,
): Promise<void> {
  await runtime.catalog.transaction().execute(async (tx) => {
    await tx.deleteFrom('asset').where('job_id', '=', jobId).execute();
    await tx.deleteFrom('asset_raw').where('request_id', '=', requestId).execute();
    await tx.deleteFrom('lineage').where('request_id', '=', requestId).execute();
    await tx.deleteFrom('job').where('id', '=', jobId).execute();
  });
  await runtime.storage.removeTree(`incoming/${requestId}`).catch(() => {});
}

// ------------------------------------------------------------------------------------------------ status

const SETTLED: readonly AssetStatus[] = ['done', 'failed', 'pending_review'];

/** The GET /ingest/{id}/status body (spec §3.5) of a job; null when unknown. */
export async function jobStatusBody(
  runtime: AllocatorRuntime,
  jobId: string,
): Promise<Record<string, unknown> | null> {
  const { catalog } = runtime;
  const job = await catalog.selectFrom('job').selectAll().where('id', '=', jobId).executeTakeFirst();
  if (job === undefined) return null;
  const assets = await catalog
    .selectFrom('asset')
    .select([
      'id',
      'kind',
      'status',
      'cluster_id',
      'schema_id',
      'duplicate_of',
      'error_message',
      'position',
      'parent_asset_id',
    ])
    .where('job_id', '=', jobId)
    .orderBy('position')
    .execute();
  const progress = { queued: 0, processing: 0, done: 0, failed: 0, pending_review: 0, total: assets.length };
  for (const asset of assets) progress[asset.status]++;
  const terminal = job.status === 'done' || job.status === 'failed';
  let status: string;
  if (terminal) {
    const failed = progress.failed;
    status = failed === 0 ? 'done' : failed === assets.length ? 'failed' : 'partial';
    if (assets.length === 0 && job.status === 'failed') status = 'failed';
  } else if (job.status === 'processing' || progress.processing > 0) status = 'processing';
  else if (assets.some((asset) => SETTLED.includes(asset.status))) status = 'processing';
  else status = 'queued';
  const iso = (value: Date | null) => (value === null ? null : value.toISOString());
  return {
    job_id: job.id,
    request_id: job.request_id,
    job_type: job.job_type,
    status,
    progress,
    assets: assets.map((asset) => ({
      system_id: asset.id,
      kind: asset.kind,
      status: asset.status,
      cluster_id: asset.cluster_id,
      schema_id: asset.schema_id,
      duplicate_of: asset.duplicate_of,
      error_message: asset.error_message,
    })),
    created_at: job.created_at.toISOString(),
    updated_at: job.updated_at.toISOString(),
    started_at: iso(job.started_at),
    completed_at: iso(job.completed_at),
    retry_count: job.retry_count,
    max_retries: job.max_retries,
    next_retry_at: iso(job.next_retry_at),
    dead_letter: job.dead_letter,
    error_message: job.error_message,
    batch_id: job.batch_id,
  };
}
