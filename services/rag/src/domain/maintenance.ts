// The nightly maintenance of `serve` (spec §2.3.14, §3.4): chat history and query logs older than
// CHAT_RETENTION_DAYS / QUERY_LOG_RETENTION_DAYS (0 = keep) are pruned, and stores/documents soft-deleted longer
// ago than PURGE_DELETED_AFTER_DAYS are hard-deleted with their chunks and their originals under UPLOAD_DIR.
// `rag-assistant prune` runs the pruning half by hand.
import type { Logger } from '@quintet/kernel/log';
import { sql } from 'kysely';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from './database.js';
import { purgeDeleted } from './documents.js';

/** Deletes chat messages and query-log rows older than the given days (0 = keep); returns the counts. */
export async function pruneHistory(
  db: RagDb,
  options: { chatDays: number; queryLogDays: number },
): Promise<{ chatMessages: number; queryLogs: number }> {
  let chatMessages = 0;
  let queryLogs = 0;
  if (options.chatDays > 0) {
    const result = await db.kysely
      .deleteFrom('chat_history')
      .where('created_at', '<', sql<Date>`now() - make_interval(days => ${options.chatDays})`)
      .executeTakeFirst();
    chatMessages = Number(result.numDeletedRows);
  }
  if (options.queryLogDays > 0) {
    const result = await db.kysely
      .deleteFrom('query_logs')
      .where('created_at', '<', sql<Date>`now() - make_interval(days => ${options.queryLogDays})`)
      .executeTakeFirst();
    queryLogs = Number(result.numDeletedRows);
  }
  return { chatMessages, queryLogs };
}

export type MaintenanceSettings = Pick<
  RagConfig,
  'chatRetentionDays' | 'queryLogRetentionDays' | 'purgeDeletedAfterDays' | 'uploadDir'
>;

export interface MaintenanceResult {
  chatMessages: number;
  queryLogs: number;
  /** hard-deleted stores and documents, and removed document directories under UPLOAD_DIR */
  stores: number;
  documents: number;
  files: number;
}

/** One maintenance pass: prune the history per the retention settings, then purge old soft-deleted data. */
export async function runMaintenance(db: RagDb, settings: MaintenanceSettings): Promise<MaintenanceResult> {
  const pruned = await pruneHistory(db, {
    chatDays: settings.chatRetentionDays,
    queryLogDays: settings.queryLogRetentionDays,
  });
  const purged = await purgeDeleted(db, settings.purgeDeletedAfterDays, settings.uploadDir);
  return { ...pruned, ...purged };
}

/** The first pass runs a minute after start (not during start-up), then once a day. */
export const MAINTENANCE_FIRST_RUN_MS = 60_000;
export const MAINTENANCE_INTERVAL_MS = 24 * 3_600_000;

/**
 * Runs `runMaintenance` after `firstRunMs`, then every `intervalMs`, logging `maintenance_run` (with the counts)
 * or `maintenance_failed`. The timers never keep the process alive; a pass still running when the next is due is
 * not doubled. Returns the stop function.
 */
export function startNightlyMaintenance(
  db: RagDb,
  settings: MaintenanceSettings,
  logger: Logger,
  options: { firstRunMs?: number; intervalMs?: number } = {},
): () => void {
  let running = false;
  const pass = () => {
    if (running) return;
    running = true;
    runMaintenance(db, settings)
      .then((result) => logger.info({ event: 'maintenance_run', ...result }, 'maintenance_run'))
      .catch((error: unknown) =>
        logger.warn({ event: 'maintenance_failed', err: error }, 'maintenance_failed'),
      )
      .finally(() => {
        running = false;
      });
  };
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    pass();
    interval = setInterval(pass, options.intervalMs ?? MAINTENANCE_INTERVAL_MS).unref();
  }, options.firstRunMs ?? MAINTENANCE_FIRST_RUN_MS).unref();
  return () => {
    clearTimeout(first);
    clearInterval(interval);
  };
}
