// The ingestion job queue of every process (serve, worker, the CLI commands that enqueue): BullMQ under one Redis
// key prefix when REDIS_URL is set, else the durable `jobs` table, which the server consumes when it starts.
import type { Logger } from '@quintet/kernel/log';
import { createBullJobQueue, createSqlJobQueue, type JobQueue } from '@quintet/kernel/queue';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from './database.js';

/** Redis key prefix of the ingestion queue; `serve`, `worker` and the enqueuing commands must agree on it. */
export const INGEST_QUEUE_PREFIX = 'rag';

export function createJobQueue(
  config: Pick<RagConfig, 'redisUrl'>,
  db: Pick<RagDb, 'kysely' | 'dialect'>,
  logger: Logger,
): JobQueue {
  if (config.redisUrl !== undefined)
    return createBullJobQueue(config.redisUrl, { prefix: INGEST_QUEUE_PREFIX, logger });
  return createSqlJobQueue(db.kysely, { table: 'jobs', dialect: db.dialect, logger });
}
