// `openworld-chem dashboard` (spec §3.5, §3.6, §3.12, §7.4): starts the HTTP/WebSocket server and stays up
// until SIGTERM/SIGINT (handled by server.ts). `--no-serve` validates the whole configuration and prints the
// URL it would serve; `--reload` restarts the server whenever the compiled code changes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { checkWorkersStore, type OwscConfig } from '../config.js';
import { type RunContext, runCommand } from './context.js';
import { integerIn } from './option-values.js';
import { ExitCode, type ExitCodeValue, textLogLine } from './output.js';

interface DashboardOptions {
  host?: string;
  port?: number;
  serve: boolean;
  reload?: boolean;
  workers?: number;
}

/** The URL a browser on this machine uses for a bind address (a wildcard bind is reached on 127.0.0.1). */
export function dashboardUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}

/** What `--no-serve` reports besides the URL (stderr): never a secret, only whether it is set (spec §7.3). */
function configurationReport(config: OwscConfig, workers: number): string[] {
  return [
    `mode: ${config.production ? 'production' : 'development'}`,
    `api token: ${config.apiToken === undefined ? 'not set' : 'set'}`,
    `metrics: ${config.metricsProtect ? 'protected' : 'open'}`,
    `store: ${config.databaseUrl === undefined ? `embedded (${config.dataDir})` : 'postgresql'}`,
    `redis fan-out: ${config.redisUrl === undefined ? 'off' : `on (channel ${config.redisChannel})`}`,
    `workers: ${workers}`,
    ...config.warnings.map((warning) => `warning: ${warning}`),
  ];
}

/**
 * Runs the dashboard under `node --watch-path <dist>`: Node restarts it whenever a compiled file changes. This
 * process only forwards signals and exits with the watcher's status.
 */
async function runWithReload(context: RunContext): Promise<ExitCodeValue> {
  const distDirectory = fileURLToPath(new URL('..', import.meta.url));
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot locate the openworld-chem script to restart');
  const args = process.argv.slice(2).filter((arg) => arg !== '--reload');
  context.note(`reload: restarting the dashboard on changes under ${distDirectory}`);
  const child = spawn(
    process.execPath,
    ['--watch-path', distDirectory, '--watch-preserve-output', script, ...args],
    {
      stdio: 'inherit',
    },
  );
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  return new Promise<ExitCodeValue>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      process.off('SIGTERM', forward);
      process.off('SIGINT', forward);
      resolve(code === 0 || code === null ? ExitCode.OK : ExitCode.GENERIC);
    });
  });
}

/** The server's pino logger; with LOG_FORMAT=text (or --log-format text) its lines are rewritten as text. */
async function serverLogger(context: RunContext, config: OwscConfig) {
  const { createLogger } = await import('@quintet/kernel/log');
  const text = config.logFormat === 'text';
  const level = context.verbose ? 'debug' : config.logLevel;
  return createLogger({
    name: 'owsc',
    level,
    loggerField: false,
    ...(config.logFile === undefined ? {} : { file: config.logFile }),
    ...(text
      ? {
          destination: {
            write: (line: string) => {
              const { time, level: label, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
              process.stdout.write(textLogLine(String(time), String(label), String(msg ?? ''), fields));
            },
          },
        }
      : {}),
  }).child({ service: 'owsc' });
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('start the dashboard: HTTP API, WebSockets and the operator page')
    .option('-h, --host <host>', 'bind address (default: OW_SC_HOST, else 127.0.0.1)')
    .option('-p, --port <port>', 'port (default: PORT, APP_PORT, else 8000)', integerIn(0, 65_535))
    .option('--serve', 'start the server (default)', true)
    .option('--no-serve', 'only validate the configuration and print the URL it would serve')
    .option('--reload', 'development: restart when the compiled code changes')
    .option('--workers <n>', 'HTTP worker processes (default: OW_SC_WORKERS, else 1)', integerIn(1, 64))
    .action((options: DashboardOptions, command: Command) =>
      runCommand(command, async (context) => {
        const loaded = await context.config();
        const config: OwscConfig = {
          ...loaded,
          host: options.host ?? loaded.host,
          port: options.port ?? loaded.port,
          workers: options.workers ?? loaded.workers,
        };
        checkWorkersStore(config.workers, config.databaseUrl);
        const url = dashboardUrl(config.host, config.port);
        if (!options.serve || context.dryRun) {
          if (context.dryRun) context.wouldDo(`serve ${url}`);
          context.stdout(`${url}\n`);
          for (const line of configurationReport(config, config.workers)) context.note(line);
          return ExitCode.OK;
        }
        if (options.reload) return runWithReload(context);
        const { startDashboard } = await import('../server.js');
        const logger = await serverLogger(context, config);
        await startDashboard(config, { logger, workers: config.workers });
        return undefined;
      }),
    );
}
