// `docops serve [--host H] [--port P] [--workers N]` — the HTTP server (spec §3.7.1, S1, S2).
import cluster from 'node:cluster';
import { ConfigError, resolvePort } from '@quintet/kernel/config';
import { createLogger, flushLogger } from '@quintet/kernel/log';
import { onShutdownSignal, runWithWorkers } from '@quintet/kernel/service';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { loadSkillRegistry } from '../domain/skills.js';
import { startDocopsServer } from '../server.js';
import { newCommand, runAction, UsageError } from './common.js';

interface ServeFlags {
  host?: string;
  port?: string;
  workers?: string;
}

async function serve(flags: ServeFlags): Promise<number | undefined> {
  let config: ReturnType<typeof loadConfig>;
  let port: number;
  try {
    config = loadConfig(process.env);
    port = resolvePort(flags.port, process.env, ['PORT', 'APP_PORT'], 8000);
    if (flags.workers !== undefined) {
      const workers = Number(flags.workers);
      if (!Number.isInteger(workers) || workers < 1)
        throw new UsageError(`--workers must be a positive integer, got "${flags.workers}"`);
      config.workers = workers;
    }
    // An invalid skill registry stops start-up here, before any worker is forked.
    loadSkillRegistry(config.skillsDir);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError) throw new UsageError(error.message);
    throw error;
  }
  const host = flags.host ?? config.host;
  const logger = createLogger({
    name: 'docops',
    level: config.logLevel,
    ...(config.logFile ? { file: config.logFile } : {}),
  });

  await runWithWorkers({
    workers: config.workers,
    logger,
    shutdownTimeoutMs: (config.shutdownGraceSeconds + 5) * 1000,
    startWorker: async () => {
      const server = await startDocopsServer(config, logger, host, port);
      const address = server.app.server.address();
      const boundPort = typeof address === 'object' && address ? address.port : port;
      logger.info(
        {
          event: 'listening',
          url: `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
          port: boundPort,
          start_method: config.startMethod,
          max_concurrency: config.maxConcurrency,
          worker: cluster.isWorker ? cluster.worker?.id : null,
        },
        'docops listening',
      );
      onShutdownSignal(async () => {
        await server.close();
        logger.info({ event: 'stopped' }, 'docops stopped');
        await flushLogger(logger);
      }, logger);
    },
  });
  return undefined;
}

export function registerServeCommand(program: Command): void {
  program.addCommand(
    newCommand('serve')
      .description('start the HTTP API, the web console and the render-process pool')
      .option('--host <host>', 'listen address (default DOCOPS_HOST or 127.0.0.1)')
      .option('--port <port>', 'listen port (default PORT, APP_PORT or 8000)')
      .option('--workers <n>', 'HTTP worker processes (default DOCOPS_WORKERS, WEB_CONCURRENCY or 1)')
      .action((flags: ServeFlags) => runAction(() => serve(flags))),
  );
}
