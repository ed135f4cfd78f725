// One attempt of a job (spec §3.5–§3.7): its assets in `system_ids` order, then the children extracted from
// documents. Media: analyse → label → (critical section) dedup, cluster, move, commit. Documents: extract,
// chunk, embed, child media assets. JSON: per batch, through the schema pipeline. A PermanentProcessingError
// fails the asset; anything else fails the attempt.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { chunkRowsByParameters } from '@quintet/kernel/db';
import { namedLogger } from '@quintet/kernel/log';
import type { ThreadPool } from '@quintet/kernel/thread-pool';
import {
  type Kysely,
  type OperationNodeSource,
  type Selectable,
  sql,
  type Transaction,
  type Updateable,
} from 'kysely';
import type { AllocatorRuntime } from '../../runtime.js';
import { assignCluster, centroidWithMember, clusterBefore, findDuplicate } from '../clustering.js';
import type { AssetTable, CatalogDatabase } from '../database.js';
import { toVectorLiteral } from '../database.js';
import type { DocumentFormat } from '../documents/extract.js';
import { isPermanentError, PermanentProcessingError } from '../errors.js';
import type { JobRowSelected } from '../jobs.js';
import { processJsonBatch } from '../json-store.js';
import { type LineageEntry, lineageRows, recordLineage } from '../lineage.js';
import { processAudio } from '../media/audio.js';
import { type FfmpegTools, resolveFfmpegTools } from '../media/ffmpeg.js';
import type { MediaKind } from '../media/heuristic-labels.js';
import { createOcrEngine, type OcrEngine, type OcrResult, shouldOcr } from '../media/ocr.js';
import { processVideo } from '../media/video.js';
import { tokenize } from '../tokens.js';
import type { AnalysisResult, AnalysisTask, DocumentTaskResult, ImageTaskResult } from './analysis.js';
import { MediaLabeller } from './labels.js';

type Asset = Selectable<AssetTable>;

const DOCUMENT_FORMATS: Record<string, DocumentFormat> = {
  'application/pdf': 'pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'application/epub+zip': 'epub',
  'text/plain': 'txt',
  'text/markdown': 'md',
  'text/html': 'html',
};

/** Which kind label a media/document asset is measured under (asset_processing_duration_seconds{kind}). */
function durationKind(asset: Asset): string {
  if (asset.kind === 'json') return 'json';
  if (asset.kind === 'document') return 'document';
  return mediaKindOf(asset.content_type);
}

function mediaKindOf(contentType: string): MediaKind {
  if (contentType.startsWith('video/')) return 'video';
  if (contentType.startsWith('audio/')) return 'audio';
  return 'image';
}

interface AnalysedMedia {
  kind: MediaKind;
  image: ImageTaskResult['image'];
  embedding: Float32Array;
  metadata: Record<string, unknown>;
  frames: { frameIdx: number; timestampMs: number; embedding: Float32Array }[];
  ocr: OcrResult | null;
}

export class AssetProcessor {
  readonly #runtime: AllocatorRuntime;
  readonly #pool: ThreadPool<AnalysisTask, AnalysisResult>;
  readonly #ffmpeg: FfmpegTools;
  readonly #labeller: MediaLabeller;
  readonly #logger;
  #ocr: OcrEngine | null = null;

  constructor(runtime: AllocatorRuntime, pool: ThreadPool<AnalysisTask, AnalysisResult>) {
    this.#runtime = runtime;
    this.#pool = pool;
    const { config } = runtime;
    this.#ffmpeg = resolveFfmpegTools({
      ...(config.ffmpegPath === undefined ? {} : { ffmpegPath: config.ffmpegPath }),
      ...(config.ffprobePath === undefined ? {} : { ffprobePath: config.ffprobePath }),
    });
    this.#labeller = new MediaLabeller(runtime);
    this.#logger = namedLogger(runtime.logger, 'allocator.media');
  }

  get ffmpegTools(): FfmpegTools {
    return this.#ffmpeg;
  }

  get labeller(): MediaLabeller {
    return this.#labeller;
  }

  /** Embeddings of a done media asset with the current model (for `reembed`): the asset and its video frames. */
  async mediaEmbeddings(
    asset: Asset,
    signal: AbortSignal,
  ): Promise<Pick<AnalysedMedia, 'embedding' | 'frames'>> {
    const path = await this.#sourcePath(asset);
    const media = await this.#analyseMedia(asset, path, signal);
    return { embedding: media.embedding, frames: media.frames };
  }

  async close(): Promise<void> {
    await this.#ocr?.close();
    this.#ocr = null;
  }

  /** Processes every non-terminal asset of the job, in order; throws on a transient failure. */
  async processJob(job: JobRowSelected, signal: AbortSignal): Promise<void> {
    const db = this.#runtime.catalog;
    const handledBatches = new Set<string>();
    for (;;) {
      signal.throwIfAborted();
      // Re-read each round: documents add child assets to the job as they are processed.
      const next = await db
        .selectFrom('asset')
        .selectAll()
        .where('job_id', '=', job.id)
        .where('status', 'in', ['queued', 'processing'])
        .orderBy('position')
        .executeTakeFirst();
      if (next === undefined) return;
      if (next.kind === 'json') {
        const key = next.json_batch ?? next.id;
        if (handledBatches.has(key)) throw new Error(`JSON batch ${key} left assets unsettled`);
        handledBatches.add(key);
        await this.#timed('json', () =>
          processJsonBatch(this.#runtime, {
            jobId: job.id,
            requestId: job.request_id,
            batchKey: key,
            hint: jsonHint(job),
          }),
        );
        continue;
      }
      await this.#processOne(job, next, signal);
    }
  }

  async #timed<T>(kind: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.#runtime.metrics.assetDuration.observe({ kind }, (performance.now() - started) / 1000);
    }
  }

  async #processOne(job: JobRowSelected, asset: Asset, signal: AbortSignal): Promise<void> {
    const db = this.#runtime.catalog;
    await db
      .updateTable('asset')
      .set({ status: 'processing', updated_at: sql`clock_timestamp()` as never })
      .where('id', '=', asset.id)
      .execute();
    await recordLineage(db, {
      requestId: job.request_id,
      assetId: asset.id,
      stage: 'processing_start',
      detail: { job_id: job.id, kind: asset.kind },
    });
    try {
      await this.#timed(durationKind(asset), () =>
        asset.kind === 'document'
          ? this.#processDocument(job, asset, signal)
          : this.#processMedia(job, asset, signal),
      );
    } catch (error) {
      if (!isPermanentError(error)) throw error;
      const message = (error as Error).message;
      await db
        .updateTable('asset')
        .set({ status: 'failed', error_message: message, updated_at: sql`clock_timestamp()` as never })
        .where('id', '=', asset.id)
        .execute();
      await recordLineage(db, {
        requestId: job.request_id,
        assetId: asset.id,
        stage: 'processing_error',
        success: false,
        errorMessage: message,
        detail: { job_id: job.id, permanent: true },
      });
      this.#logger.warn({ job_id: job.id, asset_id: asset.id, error: message }, 'asset failed permanently');
      this.#runtime.changes.assetsChanged([asset.id]);
    }
  }

  /** The file to process: the raw upload, or — when an earlier attempt already moved it — the moved file. */
  async #sourcePath(asset: Asset): Promise<string> {
    const { storage, catalog } = this.#runtime;
    if (asset.raw_asset_id !== null) {
      const raw = await catalog
        .selectFrom('asset_raw')
        .select('uri')
        .where('id', '=', asset.raw_asset_id)
        .executeTakeFirst();
      if (raw !== undefined) {
        const path = storage.resolve(raw.uri);
        if (existsSync(path)) return path;
      }
    }
    if (asset.uri?.startsWith('fs://')) {
      const path = storage.resolve(asset.uri);
      if (existsSync(path)) return path;
    }
    const moved = await findMovedFile(storage.root, asset.id);
    if (moved !== null) return moved;
    throw new PermanentProcessingError('the uploaded file is missing from storage');
  }

  // ------------------------------------------------------------------------------------------------ media

  async #analyseImage(
    input: string | Buffer,
    signal: AbortSignal,
  ): Promise<{ result: ImageTaskResult; embedding: Float32Array }> {
    const { config, mediaEmbedder } = this.#runtime;
    const task: AnalysisTask = {
      task: 'image',
      input: typeof input === 'string' ? input : new Uint8Array(input),
      maxPixels: config.maxImagePixels,
      maxSize: config.maxImageSize,
    };
    const result = (await this.#pool.run(task, signal)) as ImageTaskResult;
    const embedding =
      mediaEmbedder.status.text_search || mediaEmbedder.status.model !== 'builtin-visual-v1'
        ? await mediaEmbedder.embedImage({
            small: result.image.small,
            jpeg: Buffer.from(result.image.normalisedJpeg),
          })
        : result.builtinEmbedding;
    return { result, embedding };
  }

  async #analyseMedia(asset: Asset, path: string, signal: AbortSignal): Promise<AnalysedMedia> {
    const kind = mediaKindOf(asset.content_type);
    const { config } = this.#runtime;
    if (kind === 'image') {
      const { result, embedding } = await this.#analyseImage(path, signal);
      const ocr = await this.#maybeOcr(result.image, signal);
      return { kind, image: result.image, embedding, metadata: {}, frames: [], ocr };
    }
    if (kind === 'video') {
      const video = await processVideo(this.#ffmpeg, path, {
        keyframes: config.videoKeyframes,
        embedFrame: async (frameJpeg) => (await this.#analyseImage(frameJpeg, signal)).embedding,
        signal,
      });
      const { result } = await this.#analyseImage(video.firstFrameJpeg, signal);
      return {
        kind,
        image: result.image,
        embedding: video.embedding,
        metadata: { ...video.metadata, keyframes: video.frames.length },
        frames: video.frames,
        ocr: null,
      };
    }
    const audio = await processAudio(this.#ffmpeg, path, { signal });
    const { result, embedding } = await this.#analyseImage(audio.waveformPng, signal);
    return { kind, image: result.image, embedding, metadata: { ...audio.metadata }, frames: [], ocr: null };
  }

  async #maybeOcr(image: ImageTaskResult['image'], signal: AbortSignal): Promise<OcrResult | null> {
    if (!this.#runtime.config.ocrEnabled || !shouldOcr(image.edgeDensity)) return null;
    signal.throwIfAborted();
    try {
      this.#ocr ??= createOcrEngine();
      return await this.#ocr.recognize(Buffer.from(image.normalisedJpeg));
    } catch (error) {
      // OCR is a bonus: its failure is logged and the asset goes on without text.
      this.#logger.warn({ err: error }, 'OCR failed');
      return null;
    }
  }

  async #processMedia(job: JobRowSelected, asset: Asset, signal: AbortSignal): Promise<void> {
    const runtime = this.#runtime;
    const { config, storage, catalog } = runtime;
    const path = await this.#sourcePath(asset);
    const media = await this.#analyseMedia(asset, path, signal);
    const { image } = media;
    const labels = await this.#labeller.label({
      kind: media.kind,
      image,
      embedding: media.embedding,
      ocrWordCount: media.ocr?.wordCount ?? 0,
    });
    signal.throwIfAborted();
    const originalFilename =
      typeof asset.metadata.original_filename === 'string' ? asset.metadata.original_filename : null;
    const tags = mergeTags(labels?.tags ?? [], asset.user_tags);
    const metadata: Record<string, unknown> = {
      ...asset.metadata,
      ...media.metadata,
      width: media.kind === 'audio' ? null : (media.metadata.width ?? image.width),
      height: media.kind === 'audio' ? null : (media.metadata.height ?? image.height),
      format: image.format,
      exif: image.exif,
      perceptual_hash: image.perceptualHash,
      dominant_colors: image.dominantColors,
      original_filename: originalFilename,
      ...(labels?.metadata ?? {}),
      ...(media.ocr === null
        ? {}
        : {
            ocr_text: media.ocr.text,
            ocr_confidence: media.ocr.confidence,
            ocr_word_count: media.ocr.wordCount,
            ocr_bounding_boxes: media.ocr.words,
            contains_text: media.ocr.wordCount > 0,
          }),
    };
    const ext = storedExtensionOf(asset, originalFilename);
    await runtime.clusterLock(async () => {
      const duplicate = await findDuplicate(
        catalog,
        {
          sha256: asset.sha256,
          perceptualHash: image.perceptualHash,
          embedding: media.embedding,
          excludeAssetId: asset.id,
        },
        { hammingThreshold: config.dedupHammingThreshold, minSimilarity: config.dedupNearMinSimilarity },
        runtime.perceptualHashes,
      );
      if (duplicate?.type === 'exact') {
        await this.#commitExactDuplicate(job, asset, duplicate.assetId, path, metadata);
        return;
      }
      const assignment = await assignCluster(catalog, media.embedding, {
        centroids: runtime.clusterCentroids,
        newThreshold: config.clusterThreshold,
        suggestedName: labels?.suggestedClusterName ?? null,
        onCreated: () => runtime.metrics.clustersCreated.inc(),
      });
      const finalUri = await storage.moveFile(path, storage.mediaPath(assignment.clusterId, asset.id, ext));
      const thumbnailUri = await storage.writeFile(
        storage.thumbnailPath(assignment.clusterId, asset.id),
        Buffer.from(image.thumbnailJpeg),
      );
      const searchTokens = tokenize(
        [
          originalFilename === null ? '' : originalFilename.replace(/\.[^.]*$/, ''),
          tags.join(' '),
          labels?.searchText ?? '',
          media.ocr?.text ?? '',
          asset.comments ?? '',
          assignment.clusterName,
        ].join(' '),
      );
      if (duplicate?.type === 'near') metadata.phash_distance = duplicate.distance;
      const lineage: LineageEntry[] = [
        {
          requestId: job.request_id,
          assetId: asset.id,
          stage: 'clustered',
          detail: {
            cluster_id: assignment.clusterId,
            cluster_name: assignment.clusterName,
            similarity: round4(assignment.similarity),
            created: assignment.created,
          },
        },
        {
          requestId: job.request_id,
          assetId: asset.id,
          stage: 'processing_complete',
          detail: { cluster_id: assignment.clusterId, final_uri: finalUri, thumbnail_uri: thumbnailUri },
        },
      ];
      if (duplicate?.type === 'near')
        lineage.unshift({
          requestId: job.request_id,
          assetId: asset.id,
          stage: 'deduplication',
          detail: {
            duplicate_of: duplicate.assetId,
            duplicate_type: 'near',
            phash_distance: duplicate.distance,
          },
        });
      await fileClusteredMedia(catalog, {
        assetId: asset.id,
        changes: {
          uri: finalUri,
          thumbnail_uri: thumbnailUri,
          embedding: toVectorLiteral(media.embedding),
          embedding_model: runtime.mediaEmbedder.status.model,
          cluster_id: assignment.clusterId,
          perceptual_hash: image.perceptualHash,
          tags,
          metadata: JSON.stringify(metadata),
          search_tokens: [...new Set(searchTokens)],
          duplicate_of: duplicate?.type === 'near' ? duplicate.assetId : null,
          duplicate_type: duplicate?.type === 'near' ? 'near' : null,
          status: 'done',
          error_message: null,
          updated_at: sql`clock_timestamp()` as never,
        },
        clusterId: assignment.clusterId,
        embedding: media.embedding,
        frames: media.frames,
        lineage,
      });
      if (duplicate?.type === 'near') runtime.metrics.duplicatesDetected.inc({ type: 'near' });
    });
    runtime.changes.assetsChanged([asset.id]);
  }

  /** §3.6.5 exact duplicate: shares the original's file, cluster, embedding and labels; its own upload is deleted. */
  async #commitExactDuplicate(
    job: JobRowSelected,
    asset: Asset,
    originalId: string,
    sourcePath: string,
    ownMetadata: Record<string, unknown>,
  ): Promise<void> {
    const { catalog, storage } = this.#runtime;
    const original = await catalog
      .selectFrom('asset')
      .selectAll()
      .where('id', '=', originalId)
      .executeTakeFirstOrThrow();
    const labelMetadata = Object.fromEntries(
      Object.entries(original.metadata).filter(([key]) => key.startsWith('vlm_')),
    );
    const labelTags = Array.isArray(original.metadata.vlm_tags)
      ? (original.metadata.vlm_tags as string[])
      : original.tags;
    const metadata = {
      ...ownMetadata,
      ...labelMetadata,
      original_filename: ownMetadata.original_filename ?? null,
    };
    await catalog.transaction().execute(async (tx) => {
      await tx
        .updateTable('asset')
        .set({
          uri: original.uri,
          thumbnail_uri: original.thumbnail_uri,
          embedding: original.embedding,
          embedding_model: original.embedding_model,
          cluster_id: original.cluster_id,
          perceptual_hash: original.perceptual_hash,
          tags: mergeTags(labelTags, asset.user_tags),
          metadata: JSON.stringify(metadata),
          search_tokens: [
            ...new Set([...original.search_tokens, ...tokenize(String(metadata.original_filename ?? ''))]),
          ],
          duplicate_of: original.id,
          duplicate_type: 'exact',
          status: 'done',
          error_message: null,
          updated_at: sql`clock_timestamp()` as never,
        })
        .where('id', '=', asset.id)
        .execute();
      await recordLineage(tx, {
        requestId: job.request_id,
        assetId: asset.id,
        stage: 'deduplication',
        detail: { duplicate_of: original.id, duplicate_type: 'exact', cluster_id: original.cluster_id },
      });
    });
    // No second copy is kept: the upload goes once the row points at the original's file.
    if (sourcePath.startsWith(join(storage.root, 'incoming')))
      await storage.removeUri(storage.uriFor(sourcePath.slice(storage.root.length + 1)));
    this.#runtime.metrics.duplicatesDetected.inc({ type: 'exact' });
  }

  // --------------------------------------------------------------------------------------------- documents

  async #processDocument(job: JobRowSelected, asset: Asset, signal: AbortSignal): Promise<void> {
    const runtime = this.#runtime;
    const { config, storage, catalog, textEmbedder } = runtime;
    const format = DOCUMENT_FORMATS[asset.content_type];
    if (format === undefined)
      throw new PermanentProcessingError(`unsupported document type ${asset.content_type}`);
    const path = await this.#sourcePath(asset);
    const analysed = (await this.#pool.run(
      {
        task: 'document',
        path,
        format,
        chunkSize: config.docChunkSize,
        chunkOverlap: config.docChunkOverlap,
        hashEmbeddings: !textEmbedder.semantic,
      },
      signal,
    )) as DocumentTaskResult;
    const embeddings =
      analysed.embeddings ??
      (await Promise.all(analysed.chunks.map((chunk) => textEmbedder.embed(chunk.text))));
    signal.throwIfAborted();
    const originalFilename =
      typeof asset.metadata.original_filename === 'string' ? asset.metadata.original_filename : null;
    const ext = storedExtensionOf(asset, originalFilename);
    const finalUri = await storage.moveFile(path, storage.documentPath(asset.id, ext));
    const headings = analysed.document.blocks
      .filter((block) => block.kind === 'heading')
      .map((block) => block.text);
    // Embedded images become child media assets of this job: their bytes are spooled like uploads.
    const children = await Promise.all(
      analysed.document.images.map(async (image, index) => {
        const childId = randomUUID();
        const partId = `embedded-${asset.id.slice(0, 8)}-${index}`;
        const name = `${image.name.replace(/[^A-Za-z0-9._-]/g, '_') || `image_${index}`}`;
        const uri = await storage.writeFile(
          storage.incomingPath(job.request_id, partId, name),
          Buffer.from(image.bytes),
        );
        return { childId, partId, uri, image, name };
      }),
    );
    const metadata = {
      ...asset.metadata,
      document_chunk_count: analysed.chunks.length,
      document_parent_headings: headings,
      embedded_media_count: children.length,
      page_count: analysed.document.pageCount,
      title: analysed.document.title,
    };
    await catalog.transaction().execute(async (tx) => {
      await tx.deleteFrom('document_chunk').where('asset_id', '=', asset.id).execute();
      for (let start = 0; start < analysed.chunks.length; start += 200) {
        const slice = analysed.chunks.slice(start, start + 200);
        await tx
          .insertInto('document_chunk')
          .values(
            slice.map((chunk, offset) => ({
              id: randomUUID(),
              asset_id: asset.id,
              chunk_index: chunk.chunkIndex,
              text: chunk.text,
              parent_heading: chunk.parentHeading,
              page_number: chunk.pageNumber,
              element_type: chunk.elementType,
              embedding: vectorOrNull(embeddings[start + offset] as Float32Array),
              embedding_model: textEmbedder.modelId,
              search_tokens: [...new Set(tokenize(`${chunk.parentHeading ?? ''} ${chunk.text}`))],
            })),
          )
          .execute();
      }
      const position = await nextPosition(tx, job.id);
      for (const [index, child] of children.entries()) {
        const rawId = randomUUID();
        await tx
          .insertInto('asset_raw')
          .values({
            id: rawId,
            request_id: job.request_id,
            part_id: child.partId,
            uri: child.uri,
            size_bytes: child.image.bytes.byteLength,
            content_type: child.image.mime,
          })
          .execute();
        await tx
          .insertInto('asset')
          .values({
            id: child.childId,
            kind: 'media',
            uri: null,
            sha256: await sha256Of(child.image.bytes),
            content_type: child.image.mime,
            size_bytes: child.image.bytes.byteLength,
            owner: asset.owner,
            comments: asset.comments,
            status: 'queued',
            parent_asset_id: asset.id,
            raw_asset_id: rawId,
            job_id: job.id,
            position: position + index,
            user_tags: asset.user_tags,
            metadata: JSON.stringify({
              original_filename: child.name,
              extracted_from: asset.id,
              page_number: child.image.page,
            }),
            cluster_id: null,
            schema_id: null,
            embedding: null,
            embedding_model: null,
            perceptual_hash: null,
            duplicate_of: null,
            duplicate_type: null,
            storage_id: null,
            thumbnail_uri: null,
            error_message: null,
            json_batch: null,
          })
          .execute();
        await recordLineage(tx, {
          requestId: job.request_id,
          assetId: child.childId,
          stage: 'embedded_media_created',
          detail: { parent_asset_id: asset.id, page_number: child.image.page },
        });
      }
      await tx
        .updateTable('asset')
        .set({
          uri: finalUri,
          status: 'done',
          error_message: null,
          metadata: JSON.stringify(metadata),
          search_tokens: [
            ...new Set(
              tokenize(`${originalFilename ?? ''} ${asset.comments ?? ''} ${analysed.document.title ?? ''}`),
            ),
          ],
          updated_at: sql`clock_timestamp()` as never,
        })
        .where('id', '=', asset.id)
        .execute();
      await recordLineage(tx, {
        requestId: job.request_id,
        assetId: asset.id,
        stage: 'document_processing_complete',
        detail: { final_uri: finalUri, chunks: analysed.chunks.length, embedded_media: children.length },
      });
    });
    runtime.changes.assetsChanged([asset.id]);
  }
}

/** A zero vector (text without tokens) has no direction: stored as NULL so cosine distances stay defined. */
function vectorOrNull(vector: Float32Array): string | null {
  return vector.some((value) => value !== 0) ? toVectorLiteral(vector) : null;
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

/** The comments/collection hint of a job's JSON (spec §3.8.4: collection_name, else comments). */
function jsonHint(job: JobRowSelected): string | null {
  const data = job.job_data as { collection_name?: unknown; comments?: unknown };
  if (typeof data.collection_name === 'string' && data.collection_name !== '') return data.collection_name;
  if (typeof data.comments === 'string' && data.comments !== '') return data.comments;
  return null;
}

/** §3.6.7: tags lower-cased, trimmed, whitespace collapsed, deduplicated in order, ≤ 64 chars each, ≤ 30. */
export function mergeTags(labelTags: readonly string[], userTags: readonly string[]): string[] {
  const tags: string[] = [];
  for (const raw of [...labelTags, ...userTags]) {
    const tag = raw.toLowerCase().trim().replace(/\s+/g, ' ').slice(0, 64);
    if (tag !== '' && !tags.includes(tag)) tags.push(tag);
    if (tags.length === 30) break;
  }
  return tags;
}

function storedExtensionOf(asset: Asset, originalFilename: string | null): string {
  const fromName = originalFilename === null ? '' : extname(originalFilename).toLowerCase();
  if (/^\.[a-z0-9]{1,10}$/.test(fromName)) return fromName;
  const canonical = asset.metadata.detected_ext;
  return typeof canonical === 'string' ? canonical : '';
}

type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;

interface ClusteredMedia {
  assetId: string;
  changes: Updateable<AssetTable>;
  clusterId: string;
  embedding: Float32Array;
  frames: readonly { frameIdx: number; timestampMs: number; embedding: Float32Array }[];
  lineage: readonly LineageEntry[];
}

/**
 * Files a processed media asset under its cluster: the asset row, the cluster's centroid moved by it
 * (§3.6.6), its video frames and its lineage. The caller holds the cluster lock, so the member count and
 * centroid read first stay true until the writes. Without frames (every image) the writes are one statement
 * of data-modifying CTEs, atomic without a transaction; a video's new frames replace earlier ones under
 * UNIQUE (asset_id, frame_idx), an order sibling CTEs do not guarantee, so videos are written in a transaction.
 */
async function fileClusteredMedia(catalog: Kysely<CatalogDatabase>, media: ClusteredMedia): Promise<void> {
  const write = async (db: Executor, asOneStatement: boolean) => {
    const before = await clusterBefore(db, media.clusterId, media.assetId);
    const centroid = centroidWithMember(before.centroid, media.embedding, before.members);
    const statements: (OperationNodeSource & { execute(): Promise<unknown> })[] = [
      db.updateTable('asset').set(media.changes).where('id', '=', media.assetId),
      db
        .updateTable('cluster')
        .set({
          centroid: centroid === null ? null : toVectorLiteral(centroid),
          updated_at: sql<Date>`clock_timestamp()`,
        })
        .where('id', '=', media.clusterId),
      db.deleteFrom('video_frame').where('asset_id', '=', media.assetId),
      ...(media.frames.length === 0
        ? []
        : [
            db.insertInto('video_frame').values(
              media.frames.map((frame) => ({
                id: randomUUID(),
                asset_id: media.assetId,
                frame_idx: frame.frameIdx,
                timestamp_ms: Math.round(frame.timestampMs),
                embedding: toVectorLiteral(frame.embedding),
              })),
            ),
          ]),
      ...chunkRowsByParameters(lineageRows(media.lineage)).map((rows) =>
        db.insertInto('lineage').values(rows),
      ),
    ];
    if (!asOneStatement) {
      for (const statement of statements) await statement.execute();
      return;
    }
    const parts = statements.map((statement, index) => sql`${sql.id(`write_${index}`)} as (${statement})`);
    await sql`with ${sql.join(parts)} select 1`.execute(db);
  };
  if (media.frames.length === 0) await write(catalog, true);
  else await catalog.transaction().execute((tx) => write(tx, false));
}

async function nextPosition(tx: Transaction<CatalogDatabase>, jobId: string): Promise<number> {
  const row = await tx
    .selectFrom('asset')
    .select((eb) => eb.fn.max('position').as('max'))
    .where('job_id', '=', jobId)
    .executeTakeFirst();
  return Number(row?.max ?? 0) + 1;
}

async function sha256Of(bytes: Uint8Array): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(bytes).digest('hex');
}

/** A media file already moved by an earlier attempt: media/clusters/<any>/<asset id><ext>. */
async function findMovedFile(root: string, assetId: string): Promise<string | null> {
  const clustersDir = join(root, 'media', 'clusters');
  let clusters: string[];
  try {
    clusters = await readdir(clustersDir);
  } catch {
    clusters = [];
  }
  for (const cluster of clusters) {
    let files: string[];
    try {
      files = await readdir(join(clustersDir, cluster));
    } catch {
      continue;
    }
    const match = files.find((file) => file.startsWith(assetId));
    if (match !== undefined) return join(clustersDir, cluster, match);
  }
  const documentDir = join(root, 'documents', assetId);
  try {
    const files = await readdir(documentDir);
    const match = files.find((file) => file.startsWith(assetId));
    if (match !== undefined) return join(documentDir, match);
  } catch {
    // no document folder either
  }
  return null;
}
