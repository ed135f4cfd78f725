// The ingestion service a command needs to enqueue (watchdog, reindex) or consume (worker): BullMQ when REDIS_URL
// is set, else the embedded durable queue in the `jobs` table, which the server consumes when it starts.

import type { Logger } from '@quintet/kernel/log';
import type { JobQueue } from '@quintet/kernel/queue';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from '../domain/database.js';
import type { IngestionService } from '../domain/ingestion.js';

/** Redis key prefix of the ingestion queue; `serve` and `worker` must agree on it. */
export const INGEST_QUEUE_PREFIX = 'rag';

export async function createJobQueue(config: RagConfig, db: RagDb, logger: Logger): Promise<JobQueue> {
  const { createBullJobQueue, createSqlJobQueue } = await import('@quintet/kernel/queue');
  if (config.redisUrl !== undefined)
    return createBullJobQueue(config.redisUrl, { prefix: INGEST_QUEUE_PREFIX, logger });
  return createSqlJobQueue(db.kysely, { table: 'jobs', dialect: db.dialect, logger });
}

export async function createCommandIngestion(
  config: RagConfig,
  db: RagDb,
  logger: Logger,
): Promise<{ ingestion: IngestionService; queue: JobQueue }> {
  const { createIngestionService } = await import('../domain/ingestion.js');
  const { createEmbedder } = await import('../domain/providers/index.js');
  const queue = await createJobQueue(config, db, logger);
  const ingestion = createIngestionService({ db, config, logger, queue, embed: createEmbedder(config) });
  return { ingestion, queue };
}
