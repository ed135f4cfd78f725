// `openworld-chem simulate-stream` (spec §3.6, §4 items 14 and 27): replays a CSV's readings in time order as
// `{"time","species","concentration"}` records — to a WebSocket (paced below the server's per-connection limit,
// flushed, closed with 1000), else as JSON Lines to --out, else on stdout.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { ParsedReadings, ReadingTime } from '../domain/types.js';
import { type RunContext, runCommand } from './context.js';
import { readReadings } from './inputs.js';
import { nonNegativeNumber, positiveNumber } from './option-values.js';
import { CliError, ExitCode } from './output.js';
import { recordProvenance, writeOutput } from './records.js';

interface SimulateStreamOptions {
  source: string;
  delay: number;
  publishWs?: string;
  out?: string;
  token?: string;
  maxRate?: number;
}

export interface StreamRecord {
  time: ReadingTime;
  species: string;
  concentration: number;
}

/** Readings and flow samples as tidy records, in time order (ties keep file order). */
export function streamRecords(parsed: ParsedReadings): StreamRecord[] {
  return [...parsed.readings, ...parsed.flows]
    .sort((a, b) => a.t - b.t || a.line - b.line)
    .map((reading) => ({
      time: reading.time,
      species: reading.species,
      concentration: reading.concentration,
    }));
}

/** The URL as it may be shown: credentials and token query values hidden. */
function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '[REDACTED]';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/token|key|secret|password/i.test(key)) parsed.searchParams.set(key, '[REDACTED]');
    }
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

function networkError(message: string): CliError {
  return new CliError(message, ExitCode.NETWORK);
}

/**
 * Sends every record as one text message, at most `maxRate` per second and `delay` seconds apart, then waits
 * for the socket to flush and closes it with 1000. A refused or failed connection, or a close by the server
 * (1008 Unauthorized included), is exit 5 with the reason.
 */
async function publish(
  context: RunContext,
  url: string,
  records: readonly StreamRecord[],
  pacing: { intervalMs: number; token: string | undefined },
): Promise<number> {
  const { WebSocket } = await import('ws');
  const shown = displayUrl(url);
  let socket: InstanceType<typeof WebSocket>;
  try {
    socket = new WebSocket(url, {
      handshakeTimeout: 10_000,
      headers: pacing.token === undefined ? {} : { Authorization: `Bearer ${pacing.token}` },
    });
  } catch (error) {
    throw new CliError(`invalid WebSocket URL ${shown}: ${(error as Error).message}`, ExitCode.USAGE);
  }
  let closedBy: { code: number; reason: string } | null = null;
  let serverErrors = 0;
  const closed = new Promise<void>((resolve) => {
    socket.on('close', (code, reason) => {
      closedBy = { code, reason: reason.toString('utf8') };
      resolve();
    });
  });
  socket.on('message', (data) => {
    // The server answers dropped messages with {"type":"error","detail":...}; none is expected at this pace.
    serverErrors += 1;
    context.logger.warn('simulate_stream_server_error', 'server reported an error', { detail: String(data) });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_request, response) => {
      reject(networkError(`WebSocket handshake refused by ${shown}: HTTP ${response.statusCode}`));
      socket.terminate();
    });
    socket.once('error', (error) => reject(networkError(`cannot connect to ${shown}: ${error.message}`)));
  });
  socket.on('error', (error) => context.logger.warn('simulate_stream_socket_error', error.message));
  context.logger.info('simulate_stream_connected', 'connected', {
    url: shown,
    interval_ms: pacing.intervalMs,
  });

  // The server's close frame has arrived (the socket is CLOSING) but the closing handshake may still be in
  // progress: end the connection now, which reports the received code at once.
  const closedEarly = async (): Promise<CliError> => {
    if (closedBy === null) {
      socket.terminate();
      await Promise.race([closed, sleep(2000, undefined, { ref: false })]);
    }
    const close = closedBy as { code: number; reason: string } | null;
    return networkError(
      `WebSocket closed by the server: ${close?.code ?? 1006}${close?.reason ? ` ${close.reason}` : ''}`,
    );
  };
  let nextAt = 0;
  let lastSend: Promise<void> = Promise.resolve();
  for (const record of records) {
    const wait = nextAt - performance.now();
    if (wait > 0) await sleep(wait);
    if (closedBy !== null || socket.readyState !== WebSocket.OPEN) throw await closedEarly();
    lastSend = new Promise<void>((resolve, reject) => {
      socket.send(JSON.stringify(record), (error) => (error ? reject(error) : resolve()));
    });
    // Gaps are measured from the previous send, never caught up in a burst, so no 1-second window of the
    // server sees more than the allowed count.
    nextAt = performance.now() + pacing.intervalMs;
  }
  try {
    await lastSend;
    while (socket.bufferedAmount > 0 && closedBy === null) await sleep(5);
  } catch (error) {
    throw networkError(`sending to ${shown} failed: ${(error as Error).message}`);
  }
  if (closedBy !== null) throw await closedEarly();
  socket.close(1000);
  const timer = setTimeout(() => socket.terminate(), 5000);
  await closed;
  clearTimeout(timer);
  const close = closedBy as { code: number; reason: string } | null;
  if (close !== null && close.code !== 1000 && close.code !== 1005) throw await closedEarly();
  if (serverErrors > 0) context.note(`warning: the server reported ${serverErrors} error(s)`);
  return records.length;
}

/** Prints the records as JSON Lines on stdout, `delay` seconds apart (in one write when there is no delay). */
async function printRecords(
  context: RunContext,
  records: readonly StreamRecord[],
  delayMs: number,
): Promise<void> {
  if (delayMs <= 0) {
    const chunk: string[] = [];
    for (const record of records) {
      chunk.push(JSON.stringify(record));
      if (chunk.length === 10_000) context.stdout(`${chunk.splice(0).join('\n')}\n`);
    }
    if (chunk.length > 0) context.stdout(`${chunk.join('\n')}\n`);
    return;
  }
  for (const [index, record] of records.entries()) {
    if (index > 0) await sleep(delayMs);
    context.stdout(`${JSON.stringify(record)}\n`);
  }
}

export function registerSimulateStreamCommand(program: Command): void {
  program
    .command('simulate-stream')
    .description('replay a CSV of readings in time order: to a WebSocket, a JSON Lines file or stdout')
    .requiredOption('-s, --source <csv>', 'readings CSV (tidy or wide)')
    .option(
      '-d, --delay <seconds>',
      'pause between records when publishing or printing (not with --out)',
      nonNegativeNumber,
      0.1,
    )
    .option('--publish-ws <url>', 'send each record to this WebSocket, e.g. ws://127.0.0.1:8000/ws/effluent')
    .option('--out <path>', 'write the records as JSON Lines to this file')
    .option('--token <token>', 'bearer token for the WebSocket (default: OW_SC_API_TOKEN)')
    .option(
      '--max-rate <n>',
      'most messages per second (default: 0.9 x OW_SC_WS_MSGS_PER_SEC)',
      positiveNumber,
    )
    .action((options: SimulateStreamOptions, command: Command) =>
      runCommand(command, async (context) => {
        const config = await context.config();
        const records = streamRecords(await readReadings(context, options.source));
        context.completeJob();
        context.logger.info('simulate_stream_start', 'stream replay started', {
          records: records.length,
          target: options.publishWs === undefined ? (options.out ?? 'stdout') : displayUrl(options.publishWs),
        });
        if (options.publishWs !== undefined) {
          const maxRate =
            options.maxRate ?? (config.wsMessagesPerSecond > 0 ? 0.9 * config.wsMessagesPerSecond : 0);
          const intervalMs = Math.max(options.delay * 1000, maxRate > 0 ? 1000 / maxRate : 0);
          if (context.dryRun) {
            context.wouldDo(
              `publish ${records.length} record(s) to ${displayUrl(options.publishWs)}, one per ${intervalMs.toFixed(1)} ms`,
            );
            return undefined;
          }
          const sent = await publish(context, options.publishWs, records, {
            intervalMs,
            token: options.token ?? config.apiToken,
          });
          context.logger.info('simulate_stream_end', 'stream replay finished', { sent });
          context.note(`published ${sent} record(s) to ${displayUrl(options.publishWs)}`);
          return undefined;
        }
        if (options.out !== undefined) {
          const lines = records.map((record) => JSON.stringify(record));
          await writeOutput(context, options.out, lines.length === 0 ? '' : `${lines.join('\n')}\n`);
          await recordProvenance(context, {
            step: 'simulate_stream',
            params: {},
            inputs: [options.source],
            outputs: [options.out],
          });
        } else {
          await printRecords(context, records, options.delay * 1000);
        }
        context.logger.info('simulate_stream_end', 'stream replay finished', { sent: records.length });
        return undefined;
      }),
    );
}
