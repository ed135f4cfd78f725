// Everything a RAG route needs, built once per HTTP process by server.ts and reachable from any request as
// `request.server.rag` (see conventions.ts).
import type { RevocationStore } from '@quintet/kernel/jwt';
import type { Logger } from '@quintet/kernel/log';
import type { Redis } from '@quintet/kernel/redis';
import type { RagConfig } from '../config-types.js';
import type { BudgetService } from '../domain/budgets.js';
import type { RagDb } from '../domain/database.js';
import type { IngestionService } from '../domain/ingestion.js';
import type { StreamSlots } from '../domain/stream-slots.js';
import type { RagRateLimiter } from './conventions.js';
import type { RagMetrics } from './metrics.js';

/** Where the process is in its life (`/ready`, shutdown). */
export interface ProcessState {
  /** true once migrations ran and the routes are registered; false again while shutting down */
  ready: boolean;
  shuttingDown: boolean;
  startedAt: Date;
}

export interface RagContext {
  config: RagConfig;
  logger: Logger;
  db: RagDb;
  /** the shared Redis connection when REDIS_URL is set (rate limits, revocation), else null */
  redis: Redis | null;
  ingestion: IngestionService;
  /** global and feature rate limits (§3.1): Redis when configured, memory otherwise or while Redis is down */
  limiter: RagRateLimiter;
  /** revoked token ids: Redis `revoked:<jti>` with REDIS_URL, else the `revoked_tokens` table */
  revocations: RevocationStore;
  metrics: RagMetrics;
  /** chat stream slots of this process; `shutdown()` ends every open stream (graceful stop) */
  streams: StreamSlots;
  budgets: BudgetService;
  /** embeddings of the configured EMBEDDING_PROVIDER (queries at search/chat time, chunks at indexing) */
  embed: (texts: string[]) => Promise<Float32Array[]>;
  state: ProcessState;
}
