// `serve`, `worker` and `demo` (spec §2.1, §3.11): the long-running processes. Production start-up rules are
// checked first; every violated rule is printed (one line each, naming the variable) and the process exits 1
// before listening.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Env } from '@quintet/kernel/config';
import { flushLogger, type Logger } from '@quintet/kernel/log';
import { onShutdownSignal } from '@quintet/kernel/service';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from '../domain/database.js';
import { createJobQueue } from './ingestion-queue.js';
import { CliFailure, loadCliConfig, openCliDatabase, runCommand, say } from './runtime.js';

export const WORKER_NEEDS_REDIS_MESSAGE =
  "REDIS_URL is required for the standalone worker; without Redis, 'serve' indexes in-process";
/** How long running ingestion jobs may finish on SIGTERM (spec §3.11). */
const DRAIN_MS = 10_000;

interface ServeFlags {
  host?: string;
  port?: number;
  workers?: number;
}

function portNumber(value: string): number {
  const port = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || port < 0 || port > 65535)
    throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return port;
}

function workerCount(value: string): number {
  const count = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || count < 1 || count > 64)
    throw new InvalidArgumentError('expected an integer from 1 to 64');
  return count;
}

/** Configuration for a long-running process: ConfigError or any production rule violated → CliFailure (exit 1). */
async function startupConfig(env: Env): Promise<RagConfig> {
  const config = await loadCliConfig(env);
  const { productionViolations, StartupRefusedError } = await import('../config.js');
  const violations = productionViolations(config, env);
  if (violations.length > 0) throw new CliFailure(new StartupRefusedError(violations).message);
  return config;
}

function withFlags(config: RagConfig, flags: ServeFlags): RagConfig {
  return {
    ...config,
    ...(flags.host === undefined ? {} : { host: flags.host }),
    ...(flags.port === undefined ? {} : { port: flags.port }),
    ...(flags.workers === undefined ? {} : { workers: flags.workers }),
  };
}

/** The service's own logger (JSON lines on stdout and LOG_FILE). */
async function serviceLogger(config: RagConfig): Promise<Logger> {
  const { createRagLogger } = await import('../server.js');
  return createRagLogger(config);
}

/** Starts the HTTP server (a cluster primary when workers > 1); it stops gracefully on SIGTERM/SIGINT. */
async function startHttp(config: RagConfig, logger: Logger): Promise<string> {
  const { startServer } = await import('../server.js');
  for (const warning of config.warnings) logger.warn({ event: 'config_warning', warning }, warning);
  const server = await startServer(config, { logger, workers: config.workers });
  return server.url;
}

async function serve(flags: ServeFlags): Promise<void> {
  await runCommand(async () => {
    const config = withFlags(await startupConfig(process.env), flags);
    const logger = await serviceLogger(config);
    await startHttp(config, logger);
    return undefined;
  });
}

async function worker(): Promise<void> {
  await runCommand(async () => {
    if ((process.env.REDIS_URL ?? '').trim() === '' && (process.env.REDIS_URL_FILE ?? '').trim() === '')
      throw new CliFailure(WORKER_NEEDS_REDIS_MESSAGE);
    const config = await startupConfig(process.env);
    if (config.redisUrl === undefined) throw new CliFailure(WORKER_NEEDS_REDIS_MESSAGE);
    const logger = await serviceLogger(config);
    const { createIngestionService } = await import('../domain/ingestion.js');
    const { createEmbedder } = await import('../domain/providers/index.js');
    const { runWatchdog } = await import('../domain/watchdog.js');
    const db = await openCliDatabase(config, logger);
    const queue = await createJobQueue(config, db, logger);
    const ingestion = createIngestionService({ db, config, logger, queue, embed: createEmbedder(config) });
    await ingestion.recoverOnStartup();
    ingestion.start(config.ingestWorkerConcurrency);
    const watchdogPass = () =>
      runWatchdog(db, ingestion, {
        ttlMinutes: config.watchdogTtlMinutes,
        maxAttempts: config.ingestMaxAttempts,
      })
        .then(({ reset, failed }) => {
          if (reset + failed > 0)
            logger.warn({ event: 'watchdog_recovered', reset, failed }, 'stuck documents recovered');
        })
        .catch((error: unknown) =>
          logger.error({ event: 'watchdog_failed', err: error }, 'watchdog pass failed'),
        );
    const watchdogTimer = setInterval(watchdogPass, config.watchdogCronMinutes * 60_000);
    logger.info(
      {
        event: 'worker_started',
        concurrency: config.ingestWorkerConcurrency,
        timeout_s: config.ingestJobTimeoutS,
      },
      'ingestion worker started',
    );
    onShutdownSignal(async () => {
      clearInterval(watchdogTimer);
      await ingestion.close(DRAIN_MS);
      await queue.close({ drainMs: 0 });
      await db.close();
      logger.info({ event: 'worker_stopped' }, 'ingestion worker stopped');
      await flushLogger(logger);
    }, logger);
    return undefined;
  });
}

export const DEMO_EMAIL = 'demo@example.com';
export const DEMO_STORE_NAME = 'Demo';
const SAMPLE_REPORT = fileURLToPath(new URL('../../docs/demo/sample-report.md', import.meta.url));

/** The demo's environment: dev login, mock mode, embedded database and uploads under `dataDir`. */
export function demoEnvironment(env: Env, dataDir: string): Env {
  const demo: Record<string, string | undefined> = { ...env };
  for (const name of [
    'DATABASE_URL',
    'DATABASE_URL_FILE',
    'REDIS_URL',
    'REDIS_URL_FILE',
    'UPLOAD_DIR',
    'NODE_ENV',
  ])
    delete demo[name];
  return {
    ...demo,
    ENVIRONMENT: 'development',
    ALLOW_DEV_LOGIN: 'true',
    GEMINI_MOCK_MODE: 'true',
    ENABLE_GEMINI_BACKEND: 'true',
    DEFAULT_RAG_BACKEND: 'gemini_hosted',
    DATA_DIR: dataDir,
  };
}

/**
 * Seeds the demo user, its store "Demo" and docs/demo/sample-report.md (PENDING: the server indexes it on start);
 * does nothing that already exists. Returns the document id.
 */
export async function seedDemo(db: RagDb, config: RagConfig): Promise<number> {
  const { findOrCreateUser } = await import('../domain/users.js');
  const user = await findOrCreateUser(db.kysely, DEMO_EMAIL);
  const store =
    (await db.kysely
      .selectFrom('stores')
      .select('id')
      .where('user_id', '=', user.id)
      .where('display_name', '=', DEMO_STORE_NAME)
      .where('deleted_at', 'is', null)
      .executeTakeFirst()) ??
    (await db.kysely
      .insertInto('stores')
      .values({
        user_id: user.id,
        display_name: DEMO_STORE_NAME,
        fs_name: `fileSearchStores/local-${randomBytes(16).toString('hex')}`,
        backend: 'gemini_hosted',
      })
      .returning('id')
      .executeTakeFirstOrThrow());
  const existing = await db.kysely
    .selectFrom('documents')
    .select('id')
    .where('store_id', '=', store.id)
    .where('filename', '=', 'sample-report.md')
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  if (existing !== undefined) return existing.id;
  const { readFile } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  const bytes = await readFile(SAMPLE_REPORT);
  return db.kysely.transaction().execute(async (trx) => {
    const document = await trx
      .insertInto('documents')
      .values({
        store_id: store.id,
        filename: 'sample-report.md',
        display_name: 'sample-report.md',
        mime_type: 'text/markdown',
        size_bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        storage_path: '',
        status: 'PENDING',
        status_updated_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const directory = join(config.uploadDir, String(store.id), String(document.id));
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const storagePath = join(directory, 'sample-report.md');
    await copyFile(SAMPLE_REPORT, storagePath);
    await trx
      .updateTable('documents')
      .set({ storage_path: storagePath })
      .where('id', '=', document.id)
      .execute();
    return document.id;
  });
}

async function demo(flags: ServeFlags & { dataDir: string }): Promise<void> {
  await runCommand(async () => {
    const env = demoEnvironment(process.env, flags.dataDir);
    const config = withFlags(await startupConfig(env), { ...flags, workers: 1 });
    const logger = await serviceLogger(config);
    const db = await openCliDatabase(config, logger);
    try {
      await seedDemo(db, config);
    } finally {
      await db.close();
    }
    const url = await startHttp(config, logger);
    say(
      `Demo running at ${url}: sign in as ${DEMO_EMAIL} with the dev login; store "${DEMO_STORE_NAME}" holds sample-report.md.`,
    );
    return undefined;
  });
}

export function registerServeCommands(program: Command): void {
  const listenOptions = (command: Command) =>
    command
      .option('--host <host>', 'listen address (default 0.0.0.0)')
      .addOption(
        new Option('--port <port>', 'listen port (default PORT, else APP_PORT, else 8000)').argParser(
          portNumber,
        ),
      );
  listenOptions(program.command('serve').description('start the HTTP API and web UI'))
    .addOption(
      new Option('--workers <n>', 'HTTP worker processes (default WEB_CONCURRENCY or 1)').argParser(
        workerCount,
      ),
    )
    .action((flags: ServeFlags) => serve(flags));
  program
    .command('worker')
    .description(
      'consume ingestion jobs from Redis (INGEST_WORKER_CONCURRENCY, INGEST_JOB_TIMEOUT_S) and run the watchdog',
    )
    .action(() => worker());
  listenOptions(
    program.command('demo').description('seed demo@example.com with a "Demo" store and serve in mock mode'),
  )
    .option('--data-dir <dir>', 'embedded database and uploads', './demo-data')
    .action((flags: ServeFlags & { dataDir: string }) => demo(flags));
}
