// Starts an OWSC dashboard in this process on a free port (temporary data and tmp directories, embedded store,
// environment overrides), captures its log lines, and opens WebSocket clients against it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@quintet/kernel/log';
import { createTestDatabase, testDatabaseUrl } from '@quintet/kernel/testing';
import WebSocket from 'ws';
import { loadConfig, type OwscConfig } from '../../src/config.js';
import type { OwscContext } from '../../src/http/context.js';
import { type DashboardOptions, startDashboard } from '../../src/server.js';

export type LogLine = Record<string, unknown>;

export interface TestDashboard {
  url: string;
  wsUrl: string;
  port: number;
  config: OwscConfig;
  dir: string;
  /** every log line so far, parsed */
  logs: LogLine[];
  /** every raw log line so far (for secret greps) */
  rawLogs: string[];
  context: OwscContext;
  close(): Promise<void>;
}

/** The environment of a test server: its own data/tmp directories, no inherited configuration. */
export function testEnv(dir: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    OW_SC_DATA_DIR: join(dir, 'data'),
    OW_SC_TMP_DIR: join(dir, 'tmp'),
    OW_SC_ARTIFACTS_DIR: join(dir, 'artifacts'),
    OW_SC_REPORTS_DIR: join(dir, 'reports'),
    PORT: '0',
    OW_SC_JOB_WORKERS: '1',
    OW_SC_SHUTDOWN_TIMEOUT_S: '2',
    LOG_LEVEL: 'info',
    ...overrides,
  };
}

/** The PostgreSQL test server (`TEST_DATABASE_URL`, else the local one on 5432). */
export /** Whether the PostgreSQL test server answers (asked once; under CI=true its absence fails the run). */
const postgresAvailable: Promise<boolean> = testDatabaseUrl().then((url) => url !== null);

export interface TestDashboardOptions extends Omit<DashboardOptions, 'logger' | 'signals'> {
  /**
   * `postgres`: a fresh database on the PostgreSQL test server, dropped on close (fast to open);
   * `embedded`: PGlite in the data directory, as a bare start-up would use.
   * Default: `embedded` when `env` names OW_SC_DATA_DIR (a restart on the same data) or when the PostgreSQL
   * test server is absent (outside CI), else `postgres`.
   */
  store?: 'postgres' | 'embedded';
}

/** Starts `startDashboard` on 127.0.0.1 and a free port with the given variables. */
export async function startTestDashboard(
  env: Record<string, string> = {},
  options: TestDashboardOptions = {},
): Promise<TestDashboard> {
  const usePostgres = env.OW_SC_DATA_DIR === undefined && (await postgresAvailable);
  const { store = usePostgres ? 'postgres' : 'embedded', ...dashboardOptions } = options;
  const dir = mkdtempSync(join(tmpdir(), 'owsc-http-'));
  const database =
    store === 'postgres' && env.DATABASE_URL === undefined ? await createTestDatabase('owsc_http') : null;
  const config = loadConfig(testEnv(dir, database === null ? env : { DATABASE_URL: database.url, ...env }));
  const logs: LogLine[] = [];
  const rawLogs: string[] = [];
  const logger = createLogger({
    name: 'owsc',
    level: config.logLevel,
    loggerField: false,
    destination: {
      write(line: string) {
        rawLogs.push(line);
        for (const part of line.split('\n')) if (part !== '') logs.push(JSON.parse(part) as LogLine);
      },
    },
  }).child({ service: 'owsc' });
  let running: Awaited<ReturnType<typeof startDashboard>>;
  try {
    running = await startDashboard(config, { ...dashboardOptions, logger, signals: false });
  } catch (error) {
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: running.url,
    wsUrl: running.url.replace(/^http/, 'ws'),
    port: running.port,
    config,
    dir,
    logs,
    rawLogs,
    context: running.context as OwscContext,
    close: async () => {
      await running.close();
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/** A WebSocket client that queues what it receives. */
export interface TestSocket {
  socket: WebSocket;
  /** every text message received so far, parsed */
  received: unknown[];
  /** resolves with the next message not yet taken (rejects after the timeout) */
  next(timeoutMs?: number): Promise<unknown>;
  /** resolves true when no message arrives within the time */
  silentFor(ms: number): Promise<boolean>;
  closed: Promise<CloseInfo>;
  send(value: unknown): void;
  close(): void;
}

/** Opens a client and waits for the handshake (rejects on an HTTP refusal such as 403). */
export function openSocket(
  url: string,
  options: { headers?: Record<string, string>; origin?: string } = {},
): Promise<TestSocket> {
  const socket = new WebSocket(url, {
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.origin ? { origin: options.origin } : {}),
  });
  const received: unknown[] = [];
  let taken = 0;
  const waiters: (() => void)[] = [];
  socket.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // keep the raw text
    }
    received.push(value);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<CloseInfo>((resolve) => {
    socket.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString('utf8') }));
  });
  const client: TestSocket = {
    socket,
    received,
    async next(timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (taken >= received.length) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return received[taken++];
    },
    async silentFor(ms) {
      const before = received.length;
      await new Promise((resolve) => setTimeout(resolve, ms));
      return received.length === before;
    },
    closed,
    send(value) {
      socket.send(typeof value === 'string' ? value : JSON.stringify(value));
    },
    close() {
      socket.close();
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(client));
    socket.once('unexpected-response', (_request, response) => {
      reject(new Error(`handshake refused: ${response.statusCode}`));
      socket.terminate();
    });
    socket.once('error', reject);
  });
}

/** Polls `check` until it holds or the time is up. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The value of a series line in Prometheus text (`name{labels} value`), or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
