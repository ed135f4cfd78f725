// `migrate`, `reembed` and `openapi` (spec §3.2).

import { join } from 'node:path';
import { sql } from 'kysely';
import { recomputeCentroid } from '../domain/clustering.js';
import {
  catalogEmbeddingDimension,
  migrateCatalog,
  migrationStatus,
  openCatalog,
  toVectorLiteral,
} from '../domain/database.js';
import { cliConfig, commandLogger, runCommand, say } from './runtime.js';

export async function migrateCommand(flags: { status?: boolean }): Promise<void> {
  await runCommand(async () => {
    const config = cliConfig();
    const logger = await commandLogger(config);
    const database = await openCatalog({
      databaseUrl: config.databaseUrl,
      pgliteDir: join(config.dataDir, 'pglite'),
      poolSize: 2,
      embeddingDim: config.embeddingDim,
      logger,
    });
    try {
      if (flags.status) {
        const status = await migrationStatus(database.kysely, config.embeddingDim);
        for (const name of status.applied) say(`applied  ${name}`);
        for (const name of status.pending) say(`pending  ${name}`);
        const dimension = await catalogEmbeddingDimension(database.kysely);
        if (dimension !== null) say(`embedding dimension ${dimension}`);
        return 0;
      }
      const applied = await migrateCatalog(database, config.embeddingDim);
      say(applied.length === 0 ? 'catalog is up to date' : `applied ${applied.join(', ')}`);
      return 0;
    } finally {
      await database.close();
    }
  });
}

/**
 * Recomputes every embedding made by another model than the configured one (so a second run does nothing and an
 * interrupted run resumes), then every cluster centroid. Progress on stderr.
 */
export async function reembedCommand(flags: { kind?: string; batch: number }): Promise<void> {
  await runCommand(async () => {
    const config = cliConfig();
    const logger = await commandLogger(config);
    const { createRuntime } = await import('../server.js');
    const started = await createRuntime(config, { logger });
    const { runtime, runner } = started;
    const db = runtime.catalog;
    const signal = new AbortController().signal;
    try {
      if (flags.kind === undefined || flags.kind === 'media') {
        const model = runtime.mediaEmbedder.status.model;
        let done = 0;
        for (;;) {
          const assets = await db
            .selectFrom('asset')
            .selectAll()
            .where('kind', '=', 'media')
            .where('status', '=', 'done')
            .where((eb) => eb.or([eb('duplicate_type', 'is', null), eb('duplicate_type', '!=', 'exact')]))
            .where((eb) => eb.or([eb('embedding_model', 'is', null), eb('embedding_model', '!=', model)]))
            .orderBy('created_at')
            .limit(flags.batch)
            .execute();
          if (assets.length === 0) break;
          for (const asset of assets) {
            try {
              const { embedding, frames } = await runner.processor.mediaEmbeddings(asset, signal);
              await db.transaction().execute(async (tx) => {
                const vector = toVectorLiteral(embedding);
                await tx
                  .updateTable('asset')
                  .set({ embedding: vector, embedding_model: model })
                  .where('id', '=', asset.id)
                  .execute();
                // Exact duplicates share the original's embedding.
                await tx
                  .updateTable('asset')
                  .set({ embedding: vector, embedding_model: model })
                  .where('duplicate_of', '=', asset.id)
                  .where('duplicate_type', '=', 'exact')
                  .execute();
                for (const frame of frames)
                  await tx
                    .updateTable('video_frame')
                    .set({ embedding: toVectorLiteral(frame.embedding) })
                    .where('asset_id', '=', asset.id)
                    .where('frame_idx', '=', frame.frameIdx)
                    .execute();
              });
            } catch (error) {
              // An asset that cannot be re-read keeps its old embedding; mark it so the loop moves on.
              process.stderr.write(`asset ${asset.id}: ${(error as Error).message}\n`);
              await db
                .updateTable('asset')
                .set({ embedding_model: model })
                .where('id', '=', asset.id)
                .execute();
            }
            done++;
          }
          process.stderr.write(`media: ${done} re-embedded\n`);
        }
        const clusters = await db.selectFrom('cluster').select('id').execute();
        for (const cluster of clusters) await recomputeCentroid(db, cluster.id);
        process.stderr.write(`centroids: ${clusters.length} recomputed\n`);
      }
      if (flags.kind === undefined || flags.kind === 'document') {
        const model = runtime.textEmbedder.modelId;
        let done = 0;
        for (;;) {
          const chunks = await db
            .selectFrom('document_chunk')
            .select(['id', 'text', 'parent_heading'])
            .where((eb) => eb.or([eb('embedding_model', 'is', null), eb('embedding_model', '!=', model)]))
            .limit(flags.batch * 10)
            .execute();
          if (chunks.length === 0) break;
          for (const chunk of chunks) {
            const embedding = await runtime.textEmbedder.embed(chunk.text);
            await db
              .updateTable('document_chunk')
              .set({ embedding: toVectorLiteral(embedding), embedding_model: model })
              .where('id', '=', chunk.id)
              .execute();
          }
          done += chunks.length;
          process.stderr.write(`document chunks: ${done} re-embedded\n`);
        }
      }
      await sql`select 1`.execute(db);
      say('reembed complete');
      return 0;
    } finally {
      await started.close();
    }
  });
}

export async function openapiCommand(): Promise<void> {
  await runCommand(async () => {
    const { openApiDocument } = await import('../http/openapi.js');
    const { serviceVersion } = await import('../version.js');
    say(JSON.stringify(openApiDocument(serviceVersion()), null, 2));
    return 0;
  });
}
