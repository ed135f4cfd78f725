// `raven-zero serve [--host H] [--port P] [--workers N]` — the HTTP server (spec §3.14).
import cluster from 'node:cluster';
import { join } from 'node:path';
import { ConfigError, resolvePort } from '@quintet/kernel/config';
import { createLogger, flushLogger, type Logger } from '@quintet/kernel/log';
import { onShutdownSignal, runWithWorkers } from '@quintet/kernel/service';
import type { Command } from 'commander';
import { environmentWithEnvFile, loadConfig, type RavenConfig, startupRefusal } from '../config.js';
import { startRavenServer } from '../server.js';

interface ServeFlags {
  host?: string;
  port?: string;
  workers?: string;
}

/** The Raven Zero logger: `timestamp`, lower-case `level` (debug|info|warning|error), `event` (spec §2.3). */
export function createRavenLogger(
  config: Pick<RavenConfig, 'logLevel' | 'logToFile' | 'logDir' | 'logMaxBytes' | 'logBackups'>,
): Logger {
  return createLogger({
    name: 'raven_zero',
    level: config.logLevel,
    timeKey: 'timestamp',
    messageKey: 'event',
    levelLabels: { warn: 'warning', fatal: 'error', trace: 'debug' },
    loggerField: false,
    redact: ['headers["x-password"]', 'req.headers["x-password"]', 'key'],
    ...(config.logToFile
      ? {
          file: join(config.logDir, 'raven_zero.log'),
          fileMaxSize: `${config.logMaxBytes}B`,
          fileKeep: config.logBackups,
          classicRotation: true,
        }
      : {}),
  });
}

function fail(message: string): never {
  process.stderr.write(`ERROR: ${message}\n`);
  process.exit(1);
}

async function serve(flags: ServeFlags): Promise<void> {
  let config: RavenConfig;
  let port: number;
  try {
    config = loadConfig(environmentWithEnvFile(process.env));
    port = resolvePort(flags.port, process.env, ['PORT'], 8000);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  if (flags.workers !== undefined) {
    const workers = Number(flags.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
      fail(`--workers must be an integer from 1 to 64, got "${flags.workers}"`);
    }
    config.workers = workers;
  }
  const host = flags.host ?? config.host;
  const logger = createRavenLogger(config);
  const refusal = startupRefusal(config);
  if (refusal !== null) {
    logger.error({ reason: refusal }, 'startup_refused');
    await flushLogger(logger);
    fail(refusal);
  }
  for (const warning of config.warnings) logger.warn({ warning }, 'config_warning');
  if (!cluster.isWorker) logger.info({ workers: config.workers, host, port }, 'app_starting');

  await runWithWorkers({
    workers: config.workers,
    logger,
    shutdownTimeoutMs: (config.shutdownGraceSeconds + 5) * 1000,
    startWorker: async () => {
      let server: Awaited<ReturnType<typeof startRavenServer>>;
      try {
        server = await startRavenServer(config, logger, host, port);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        logger.error({ error: message }, 'startup_failed');
        await flushLogger(logger);
        fail(message);
      }
      const address = server.app.server.address();
      const boundPort = typeof address === 'object' && address ? address.port : port;
      logger.info(
        {
          port: boundPort,
          host,
          store: server.context.storeKind,
          worker: cluster.isWorker ? cluster.worker?.id : null,
        },
        'app_started',
      );
      onShutdownSignal(async () => {
        await server.close();
        logger.info({}, 'application_shutdown');
        await flushLogger(logger);
      }, logger);
    },
  });
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('start the HTTP server')
    .option('--host <host>', 'listen address (default HOST or 127.0.0.1)')
    .option('--port <port>', 'listen port (default PORT or 8000)')
    .option(
      '--workers <n>',
      'HTTP worker processes (default WEB_CONCURRENCY or 1; more than 1 needs REDIS_URL)',
    )
    .action((flags: ServeFlags) => serve(flags));
}
