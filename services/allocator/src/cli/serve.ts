// `serve`, `worker` and `healthcheck` (spec §3.2): the long-running processes and the Docker probe.
import cluster from 'node:cluster';
import { flushLogger } from '@quintet/kernel/log';
import { onShutdownSignal, runWithWorkers } from '@quintet/kernel/service';
import type { AllocatorConfig } from '../config.js';
import { CliFailure, cliConfig, runCommand } from './runtime.js';

interface ServeFlags {
  host?: string;
  port?: number;
  workers?: number;
}

/** Embedded PGlite is single-process: several HTTP workers or instances need PostgreSQL (spec S20). */
export const SINGLE_PROCESS_MESSAGE =
  'WEB_CONCURRENCY>1 needs DATABASE_URL: the embedded database can only be opened by one process';
export const WORKER_REQUIREMENTS_MESSAGE =
  "'file-allocator worker' needs DATABASE_URL and QUEUE_BACKEND=redis (without them, 'serve' runs the executors)";

async function runServer(config: AllocatorConfig, options: { http: boolean }): Promise<void> {
  const { createAllocatorLogger, startServer } = await import('../server.js');
  const logger = createAllocatorLogger(config);
  try {
    const server = await startServer(config, { logger, http: options.http });
    onShutdownSignal(async () => {
      await server.close();
      await flushLogger(logger);
    }, logger);
  } catch (error) {
    await flushLogger(logger);
    throw error;
  }
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  await runCommand(async () => {
    const base = cliConfig();
    const config: AllocatorConfig = {
      ...base,
      ...(flags.host === undefined ? {} : { host: flags.host }),
      ...(flags.port === undefined ? {} : { port: flags.port }),
      ...(flags.workers === undefined ? {} : { webConcurrency: flags.workers }),
    };
    if (config.webConcurrency > 1 && config.databaseUrl === undefined)
      throw new CliFailure(SINGLE_PROCESS_MESSAGE);
    if (config.webConcurrency > 1 && cluster.isPrimary) {
      const { createAllocatorLogger } = await import('../server.js');
      const logger = createAllocatorLogger(config);
      await runWithWorkers({
        workers: config.webConcurrency,
        logger,
        shutdownTimeoutMs: config.shutdownTimeoutMs + 5000,
        startWorker: () => runServer(config, { http: true }),
      });
      return undefined;
    }
    await runServer(config, { http: true });
    return undefined;
  });
}

export async function workerCommand(flags: { port: number }): Promise<void> {
  await runCommand(async () => {
    const config = { ...cliConfig(), port: flags.port };
    if (config.databaseUrl === undefined || config.queueBackend !== 'redis')
      throw new CliFailure(WORKER_REQUIREMENTS_MESSAGE);
    await runServer(config, { http: false });
    return undefined;
  });
}

export async function healthcheckCommand(flags: { url?: string }): Promise<void> {
  await runCommand(async () => {
    let base = flags.url;
    if (base === undefined) {
      const config = cliConfig();
      base = `http://127.0.0.1:${config.port}`;
    }
    try {
      const response = await fetch(new URL('/ready', base), { signal: AbortSignal.timeout(5000) });
      if (response.status === 200) return 0;
      process.stderr.write(`not ready: HTTP ${response.status}\n`);
      return 1;
    } catch (error) {
      process.stderr.write(`not reachable: ${(error as Error).message}\n`);
      return 1;
    }
  });
}
