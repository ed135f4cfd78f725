// Starts a whole RAG Assistant server in this process on a free port (temporary DATA_DIR/TMP_DIR, environment
// overrides, a fresh PostgreSQL database or embedded PGlite), captures its log lines, and offers the calls most
// tests need: register, login, authenticated requests carrying the CSRF header.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@quintet/kernel/log';
import { createTestDatabase, testDatabaseUrl } from '@quintet/kernel/testing';
import { loadConfig } from '../../src/config.js';
import type { RagConfig } from '../../src/config-types.js';
import { setPasswordHashCostForTests } from '../../src/domain/passwords.js';
import type { RagContext } from '../../src/http/context.js';
import { startServer } from '../../src/server.js';

// bcrypt at cost 12 takes ~250 ms per hash in JavaScript; suites that register many users use the lowest cost.
setPasswordHashCostForTests(4);

export type LogLine = Record<string, unknown>;

export const TEST_JWT_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
export const TEST_PASSWORD = 'Abcdef1!';

export interface TestResponse {
  status: number;
  headers: Headers;
  /** parsed JSON when the body is JSON, else the text */
  body: unknown;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** raw body (sent as is) */
  raw?: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  /** adds `Authorization: Bearer <token>` */
  token?: string;
  /** omit `X-Requested-With` (CSRF tests) */
  noCsrf?: boolean;
}

export interface TestServer {
  url: string;
  config: RagConfig;
  dir: string;
  logs: LogLine[];
  rawLogs: string[];
  context: RagContext;
  /** which database the server runs on */
  store: 'postgres' | 'embedded';
  request(method: string, path: string, options?: RequestOptions): Promise<TestResponse>;
  close(): Promise<void>;
}

/** The environment of a test server: its own data/tmp directories, a real JWT secret, no inherited config. */
export function testEnv(dir: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ENVIRONMENT: 'test',
    DATA_DIR: join(dir, 'data'),
    TMP_DIR: join(dir, 'tmp'),
    JWT_SECRET: TEST_JWT_SECRET,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    WATCHDOG_CRON_MINUTES: '0',
    ...overrides,
  };
}

let postgresAvailable: Promise<boolean> | undefined;

export interface TestServerOptions {
  /**
   * `postgres`: a fresh database on the PostgreSQL test server, dropped on close (fast); `embedded`: PGlite in
   * DATA_DIR as a bare start-up uses. Default: postgres when the test server answers, else embedded; always
   * embedded with RAG_TEST_STORE=embedded (the `rag-embedded` test project runs these files again that way).
   */
  store?: 'postgres' | 'embedded';
  /** reuse this directory (restart on the same data) instead of a new temporary one; not removed on close */
  dir?: string;
}

/** Starts `startServer` on 127.0.0.1 and a free port with the given variables. */
export async function startTestServer(
  env: Record<string, string> = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  postgresAvailable ??= testDatabaseUrl().then((url) => url !== null);
  const store =
    options.store ??
    (env.DATABASE_URL !== undefined ||
    (process.env.RAG_TEST_STORE !== 'embedded' && (await postgresAvailable))
      ? 'postgres'
      : 'embedded');
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rag-http-'));
  const database =
    store === 'postgres' && env.DATABASE_URL === undefined ? await createTestDatabase('rag_http') : null;
  const cleanup = async () => {
    await database?.drop();
    if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
  };
  let config: RagConfig;
  try {
    config = loadConfig(testEnv(dir, database === null ? env : { DATABASE_URL: database.url, ...env }));
  } catch (error) {
    await cleanup();
    throw error;
  }
  const logs: LogLine[] = [];
  const rawLogs: string[] = [];
  const logger = createLogger({
    name: 'rag',
    level: config.logLevel,
    loggerField: false,
    destination: {
      write(line: string) {
        rawLogs.push(line);
        for (const part of line.split('\n')) if (part !== '') logs.push(JSON.parse(part) as LogLine);
      },
    },
  });
  let running: Awaited<ReturnType<typeof startServer>>;
  try {
    running = await startServer(config, { logger, signals: false, workers: 1 });
  } catch (error) {
    await cleanup();
    throw error;
  }
  const url = running.url;
  return {
    url,
    config,
    dir,
    logs,
    rawLogs,
    context: running.context as RagContext,
    store,
    request: (method, path, requestOptions = {}) => sendRequest(url, method, path, requestOptions),
    close: async () => {
      await running.close();
      await cleanup();
    },
  };
}

/** Headers of an authenticated state-changing call: the bearer token and the CSRF header. */
export function authHeaders(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}`, 'x-requested-with': 'XMLHttpRequest' };
}

export async function sendRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<TestResponse> {
  const headers: Record<string, string> = {};
  if (!options.noCsrf) headers['x-requested-with'] = 'XMLHttpRequest';
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | Uint8Array<ArrayBuffer> | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  Object.assign(headers, options.headers);
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  let parsed: unknown = text;
  if ((response.headers.get('content-type') ?? '').includes('json') && text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Registers a user (200 expected) with the default strong password. */
export async function register(
  server: TestServer,
  email: string,
  password = TEST_PASSWORD,
): Promise<TestResponse> {
  return server.request('POST', '/api/auth/register', { body: { email, password } });
}

/** Logs in and returns the access token (throws unless 200). */
export async function login(server: TestServer, email: string, password = TEST_PASSWORD): Promise<string> {
  const response = await server.request('POST', '/api/auth/login', { body: { email, password } });
  if (response.status !== 200) throw new Error(`login failed: ${response.status} ${response.text}`);
  return (response.body as { access_token: string }).access_token;
}

export interface TestUser {
  id: number;
  email: string;
  token: string;
}

/** Registers and logs in a user; `admin: true` promotes it in the database first. */
export async function createUser(
  server: TestServer,
  email: string,
  options: { admin?: boolean } = {},
): Promise<TestUser> {
  const registered = await register(server, email);
  if (registered.status !== 200) throw new Error(`register failed: ${registered.status} ${registered.text}`);
  const kysely = server.context.db.kysely;
  if (options.admin)
    await kysely
      .updateTable('users')
      .set({ is_admin: true })
      .where('email', '=', email.toLowerCase())
      .execute();
  const row = await kysely
    .selectFrom('users')
    .select('id')
    .where('email', '=', email.toLowerCase())
    .executeTakeFirstOrThrow();
  return { id: row.id, email: email.toLowerCase(), token: await login(server, email) };
}

/** Waits until at least 5 s remain in the current fixed 60 s rate-limit window (so a burst stays in one). */
export async function awayFromMinuteBoundary(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 5000) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

/** Polls `check` until it holds or the time is up. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
