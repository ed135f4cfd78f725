// The command tree of `file-allocator`. Each command loads what it needs lazily, so `--version` and
// `healthcheck` (the Docker HEALTHCHECK) start fast.
import { Command, InvalidArgumentError } from 'commander';
import { serviceVersion } from '../version.js';
import { backupCommand, restoreCommand } from './backup.js';
import { dlqDiscard, dlqList, dlqRequeue, dlqShow } from './dlq.js';
import { migrateCommand, openapiCommand, reembedCommand } from './maintenance.js';
import { healthcheckCommand, serveCommand, workerCommand } from './serve.js';

function integer(min: number, max: number) {
  return (value: string): number => {
    const number = Number(value.trim());
    if (!/^\d+$/.test(value.trim()) || number < min || number > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return number;
  };
}

// `file-allocator openapi | head` closes the pipe early: that is the reader's choice, not a failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command('file-allocator')
  .description('File Allocator API: ingest media, JSON and documents; cluster, decide schemas, search')
  .version(serviceVersion(), '-V, --version', 'print the version (the same as /health.version)')
  .showHelpAfterError();

program
  .command('serve')
  .description('migrate, then serve HTTP and run WORKER_THREADS job executors')
  .option('--host <host>', 'listen address (default APP_HOST or 0.0.0.0)')
  .option('--port <port>', 'listen port (default PORT, APP_PORT or 8000)', integer(0, 65535))
  .option(
    '--workers <n>',
    'HTTP worker processes (default WEB_CONCURRENCY or 1; >1 needs DATABASE_URL)',
    integer(1, 64),
  )
  .action(serveCommand);

program
  .command('worker')
  .description(
    'run job executors only (needs DATABASE_URL and the Redis queue); /live, /ready, /metrics on --port',
  )
  .option('--port <port>', 'port of the probe and metrics endpoints', integer(0, 65535), 8001)
  .action(workerCommand);

program
  .command('migrate')
  .description('apply pending catalog migrations and exit')
  .option('--status', 'list applied and pending migrations instead')
  .action(migrateCommand);

const dlq = program.command('dlq').description('the dead-letter queue (spec §3.14)');
dlq
  .command('list')
  .option('--job-type <type>', 'media, json or mixed')
  .option('--limit <n>', 'at most this many', integer(1, 1000), 100)
  .option('--json', 'print JSON')
  .action(dlqList);
dlq.command('show <job_id>').action(dlqShow);
dlq.command('requeue <job_id>').action(dlqRequeue);
dlq.command('discard <job_id>').action(dlqDiscard);

program
  .command('reembed')
  .description('recompute embeddings with the configured models, then every cluster centroid')
  .option('--kind <kind>', 'media or document (default both)')
  .option('--batch <n>', 'assets per batch', integer(1, 10_000), 50)
  .action(reembedCommand);

program
  .command('backup')
  .description('embedded mode: write the database and STORAGE_PATH into a .tar.gz')
  .requiredOption('--output <file>', 'archive to write')
  .action(backupCommand);

program
  .command('restore')
  .description('embedded mode: restore a backup archive')
  .requiredOption('--input <file>', 'archive to read')
  .option('--force', 'replace a non-empty database or storage')
  .action(restoreCommand);

program
  .command('healthcheck')
  .description('exit 0 when GET /ready of the local server answers 200 (Docker HEALTHCHECK)')
  .option('--url <url>', 'base URL (default http://127.0.0.1:$APP_PORT)')
  .action(healthcheckCommand);

program.command('openapi').description('print the OpenAPI document').action(openapiCommand);

await program.parseAsync(process.argv);
