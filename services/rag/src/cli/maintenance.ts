// Operator commands on the data (spec §3.11): migrate, cleanup-tmp, mark-stuck-error, watchdog, reindex, prune.
import type { Logger } from '@quintet/kernel/log';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from '../domain/database.js';
import { cleanupTmpDir, UPLOAD_WORKSPACE_PREFIX } from '../domain/tmp-files.js';
import { createCommandIngestion } from './ingestion-queue.js';
import {
  createCommandLogger,
  ExitCode,
  loadCliConfig,
  openCliDatabase,
  runCommand,
  say,
  withDatabase,
} from './runtime.js';

/** A whole number ≥ 0 (commander reports a bad value as a usage error, exit 2). */
export function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number >= 0');
  return Number(value.trim());
}

/** A positive integer id. */
export function positiveId(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1)
    throw new InvalidArgumentError('expected a positive integer');
  return Number(value.trim());
}

async function migrate(): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    const logger = createCommandLogger(config);
    const { MigrationsPendingError } = await import('../domain/database.js');
    // Opening without migrating lists what is pending (or opens a database already up to date).
    let pending: string[] = [];
    try {
      const db = await openCliDatabase(config, logger, { runMigrations: false });
      await db.close();
    } catch (error) {
      if (!(error instanceof MigrationsPendingError)) throw error;
      pending = error.pending;
    }
    if (pending.length === 0) {
      say('No pending migrations.');
      return ExitCode.OK;
    }
    const db = await openCliDatabase(config, logger, { runMigrations: true });
    await db.close();
    for (const name of pending) say(`Applied ${name}`);
    say(`Applied ${pending.length} migration(s).`);
    return ExitCode.OK;
  });
}

async function cleanupTmp(): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    if (config.tmpMaxAgeHours <= 0) {
      say(`TMP_MAX_AGE_HOURS is ${config.tmpMaxAgeHours}: cleanup is disabled, nothing removed.`);
      say(`Removed 0 stale temp file(s) from ${config.tmpDir}`);
      return ExitCode.OK;
    }
    const removed = await cleanupTmpDir(config.tmpDir, config.tmpMaxAgeHours);
    say(`Removed ${removed.files} stale temp file(s) from ${config.tmpDir}`);
    if (removed.stagingFolders > 0)
      say(
        `Removed ${removed.stagingFolders} stale upload staging folder(s) (${UPLOAD_WORKSPACE_PREFIX}*) from ${config.tmpDir}`,
      );
    return ExitCode.OK;
  });
}

interface CommandContext {
  config: RagConfig;
  logger: Logger;
}

/** Loads the configuration, opens the database for `work` and closes it; failures become exit 1. */
async function withCommandDatabase(
  work: (db: RagDb, context: CommandContext) => Promise<void>,
): Promise<void> {
  await runCommand(async () => {
    const config = await loadCliConfig();
    const logger = createCommandLogger(config);
    await withDatabase(config, logger, (db) => work(db, { config, logger }));
    return ExitCode.OK;
  });
}

async function markStuckErrorCommand(minutes: number): Promise<void> {
  await withCommandDatabase(async (db) => {
    const { markStuckError } = await import('../domain/watchdog.js');
    const count = await markStuckError(db, minutes);
    say(count === 0 ? 'No stuck documents found.' : `Marked ${count} document(s) as ERROR.`);
  });
}

async function watchdogCommand(flags: { ttlMinutes?: number }): Promise<void> {
  await withCommandDatabase(async (db, { config, logger }) => {
    const { runWatchdog } = await import('../domain/watchdog.js');
    const { ingestion, queue } = await createCommandIngestion(config, db, logger);
    try {
      const ttlMinutes = flags.ttlMinutes ?? config.watchdogTtlMinutes;
      const { reset, failed } = await runWatchdog(db, ingestion, {
        ttlMinutes,
        maxAttempts: config.ingestMaxAttempts,
      });
      say(
        `Watchdog (TTL ${ttlMinutes} min): reset ${reset} stuck document(s) to PENDING, marked ${failed} as ERROR.`,
      );
    } finally {
      await queue.close({ drainMs: 0 });
    }
  });
}

interface ReindexFlags {
  document?: number;
  store?: number;
  all?: boolean;
}

async function reindexCommand(flags: ReindexFlags): Promise<void> {
  const chosen = [flags.document !== undefined, flags.store !== undefined, flags.all === true].filter(
    Boolean,
  );
  if (chosen.length !== 1) {
    process.stderr.write('usage: rag-assistant reindex (--document ID | --store ID | --all)\n');
    process.exitCode = ExitCode.USAGE;
    return;
  }
  await withCommandDatabase(async (db, { config, logger }) => {
    const { markForReindex } = await import('../domain/documents.js');
    const target =
      flags.document !== undefined
        ? { documentId: flags.document }
        : flags.store !== undefined
          ? { storeId: flags.store }
          : { all: true as const };
    if (flags.all && db.embeddingDim !== null && db.embeddingDim !== config.embeddingDim) {
      const { resetVectorDimension } = await import('../domain/database.js');
      await resetVectorDimension(db, config.embeddingDim);
    }
    const ids = await markForReindex(db, target);
    const { ingestion, queue } = await createCommandIngestion(config, db, logger);
    try {
      for (const id of ids) await ingestion.enqueue(id);
    } finally {
      await queue.close({ drainMs: 0 });
    }
    say(
      ids.length === 0
        ? 'No documents to re-index (none found, or they are already PENDING/RUNNING).'
        : `Queued ${ids.length} document(s) for re-indexing: ${ids.join(', ')}`,
    );
    if (ids.length > 0 && config.redisUrl === undefined)
      say('The server indexes them when it starts (embedded queue).');
  });
}

async function pruneCommand(flags: { chatDays?: number; queryLogDays?: number }): Promise<void> {
  await withCommandDatabase(async (db, { config }) => {
    const chatDays = flags.chatDays ?? config.chatRetentionDays;
    const queryLogDays = flags.queryLogDays ?? config.queryLogRetentionDays;
    const { pruneHistory } = await import('../domain/maintenance.js');
    const { chatMessages, queryLogs } = await pruneHistory(db, { chatDays, queryLogDays });
    say(
      `Deleted ${chatMessages} chat message(s) older than ${chatDays === 0 ? '(kept: 0 = keep)' : `${chatDays} day(s)`} ` +
        `and ${queryLogs} query log row(s) older than ${queryLogDays === 0 ? '(kept: 0 = keep)' : `${queryLogDays} day(s)`}.`,
    );
  });
}

export function registerMaintenanceCommands(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (forward-only, idempotent) and print their ids')
    .action(() => migrate());
  program
    .command('cleanup-tmp')
    .description(
      `delete regular files and ${UPLOAD_WORKSPACE_PREFIX}* upload staging folders in TMP_DIR older than TMP_MAX_AGE_HOURS (never opens the database)`,
    )
    .action(() => cleanupTmp());
  program
    .command('mark-stuck-error')
    .description('set documents RUNNING for longer than [minutes] (default 60) to ERROR')
    .argument('[minutes]', 'minutes a document must have been RUNNING', wholeNumber, 60)
    .action((minutes: number) => markStuckErrorCommand(minutes));
  program
    .command('watchdog')
    .description('one watchdog pass: stuck RUNNING documents back to PENDING (re-enqueued) or ERROR')
    .addOption(
      new Option(
        '--ttl-minutes <n>',
        'stuck after this many minutes (default WATCHDOG_TTL_MINUTES)',
      ).argParser(wholeNumber),
    )
    .action((flags: { ttlMinutes?: number }) => watchdogCommand(flags));
  program
    .command('reindex')
    .description('enqueue re-indexing of one document, one store or everything')
    .addOption(new Option('--document <id>', 'one document').argParser(positiveId))
    .addOption(new Option('--store <id>', 'every document of a store').argParser(positiveId))
    .option('--all', 'every live document (also resets the embedding dimension)')
    .action((flags: ReindexFlags) => reindexCommand(flags));
  program
    .command('prune')
    .description(
      'delete old chat messages and query logs (defaults: CHAT_RETENTION_DAYS, QUERY_LOG_RETENTION_DAYS; 0 = keep)',
    )
    .addOption(new Option('--chat-days <n>', 'delete chat messages older than N days').argParser(wholeNumber))
    .addOption(
      new Option('--query-log-days <n>', 'delete query log rows older than N days').argParser(wholeNumber),
    )
    .action((flags: { chatDays?: number; queryLogDays?: number }) => pruneCommand(flags));
}
