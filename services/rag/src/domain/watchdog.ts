// Stuck ingestion (spec §3.9), one behaviour for the cron, the admin endpoint, the CLI and start-up recovery:
// a live document RUNNING for longer than the TTL goes back to PENDING and is re-enqueued while attempts remain,
// else to ERROR. `markStuckError` is the operator's override that fails them outright.
import type { Logger } from '@quintet/kernel/log';
import { sql } from 'kysely';
import type { RagConfig } from '../config-types.js';
import { guardDatabase, type RagDb } from './database.js';

export interface WatchdogOptions {
  /** RUNNING for longer than this is stuck (0: every RUNNING document, as at embedded start-up) */
  ttlMinutes: number;
  /** INGEST_MAX_ATTEMPTS */
  maxAttempts: number;
  /** only this owner's documents (admin endpoint) */
  userId?: number;
}

export function stuckMessage(attempts: number): string {
  return `Indexing did not finish after ${attempts} attempts`;
}

/** One watchdog pass: returns how many documents were reset (and re-enqueued) and how many were failed. */
export async function runWatchdog(
  db: RagDb,
  ingestion: { enqueue(documentId: number): Promise<void> },
  options: WatchdogOptions,
): Promise<{ reset: number; failed: number }> {
  const ownerFilter =
    options.userId === undefined
      ? sql`true`
      : sql`d.store_id in (select id from stores where user_id = ${options.userId})`;
  // One statement decides every stuck document, so two watchdogs (two processes) never both re-enqueue one.
  const { rows } = await guardDatabase(() =>
    sql<{ id: number; status: 'PENDING' | 'ERROR' }>`
      update documents d set
        status = case when d.attempts < ${options.maxAttempts} then 'PENDING' else 'ERROR' end,
        last_error = case when d.attempts < ${options.maxAttempts} then d.last_error
          else 'Indexing did not finish after ' || d.attempts || ' attempts' end,
        status_updated_at = now()
      where d.status = 'RUNNING' and d.deleted_at is null
        and d.status_updated_at <= now() - make_interval(mins => ${Math.max(0, options.ttlMinutes)})
        and ${ownerFilter}
      returning d.id, d.status`.execute(db.kysely),
  );
  let reset = 0;
  let failed = 0;
  for (const row of rows) {
    if (row.status === 'PENDING') {
      await ingestion.enqueue(row.id);
      reset++;
    } else failed++;
  }
  return { reset, failed };
}

/** Sets documents RUNNING for longer than `minutes` to ERROR; returns how many (CLI `mark-stuck-error`). */
export async function markStuckError(db: RagDb, minutes: number): Promise<number> {
  const { rows } = await guardDatabase(() =>
    sql<{ id: number }>`
      update documents d set status = 'ERROR',
        last_error = 'Indexing did not finish after ' || d.attempts || ' attempts',
        status_updated_at = now()
      where d.status = 'RUNNING' and d.deleted_at is null
        and d.status_updated_at < now() - make_interval(mins => ${Math.max(0, minutes)})
      returning d.id`.execute(db.kysely),
  );
  return rows.length;
}

/**
 * Runs the watchdog every WATCHDOG_CRON_MINUTES with WATCHDOG_TTL_MINUTES (serve and worker); returns the
 * function that stops it. A failed pass (database down) is logged and retried at the next tick.
 */
export function scheduleWatchdog(
  db: RagDb,
  ingestion: { enqueue(documentId: number): Promise<void> },
  config: Pick<RagConfig, 'watchdogCronMinutes' | 'watchdogTtlMinutes' | 'ingestMaxAttempts'>,
  logger: Logger,
): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    runWatchdog(db, ingestion, {
      ttlMinutes: config.watchdogTtlMinutes,
      maxAttempts: config.ingestMaxAttempts,
    })
      .then(({ reset, failed }) => {
        if (reset + failed > 0)
          logger.warn({ event: 'ingest_watchdog', reset, failed }, 'stuck documents recovered');
      })
      .catch((error: unknown) =>
        logger.error({ event: 'ingest_watchdog_failed', err: error }, 'watchdog pass failed'),
      )
      .finally(() => {
        running = false;
      });
  }, Math.max(1, config.watchdogCronMinutes) * 60_000);
  timer.unref();
  return () => clearInterval(timer);
}
