// The ingestion service a command needs to enqueue (watchdog, reindex) or consume (worker), on the queue of
// domain/job-queue.ts (loaded only when a command needs it).
import type { Logger } from '@quintet/kernel/log';
import type { JobQueue } from '@quintet/kernel/queue';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from '../domain/database.js';
import type { IngestionService } from '../domain/ingestion.js';

export async function createJobQueue(config: RagConfig, db: RagDb, logger: Logger): Promise<JobQueue> {
  const { createJobQueue: create } = await import('../domain/job-queue.js');
  return create(config, db, logger);
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
