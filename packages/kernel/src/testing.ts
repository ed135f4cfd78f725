// Test-server discovery shared by every contract suite: the scale backends run against a real server when one
// is reachable, and skip loudly (or fail, in CI) when it is not.

import { connect, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';

const PING_TIMEOUT_MS = 1000;

/**
 * The Redis test server URL (`TEST_REDIS_URL`, else `redis://127.0.0.1:6379/15`) when it answers PING within
 * 1 s; otherwise null with one line on stderr, or an Error when `CI=true`.
 */
export async function testRedisUrl(): Promise<string | null> {
  const url = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379/15';
  if (await pings(url)) return url;
  if (process.env.CI === 'true') {
    throw new Error(`The Redis test server is required in CI but is not reachable at ${url}`);
  }
  process.stderr.write(`Redis test server not reachable at ${url}: skipping Redis tests\n`);
  return null;
}

async function pings(url: string): Promise<boolean> {
  let client: Redis | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: PING_TIMEOUT_MS,
      commandTimeout: PING_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    const connected = client;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS);
    });
    await Promise.race([connected.connect().then(() => connected.ping()), timeout]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    client?.disconnect();
  }
}

/**
 * The PostgreSQL test server URL (`TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/test`) when it
 * answers `select 1` within 1 s; otherwise null with one line on stderr, or an Error when `CI=true`.
 */
export async function testDatabaseUrl(): Promise<string | null> {
  const url = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  if (await answersSql(url)) return url;
  if (process.env.CI === 'true') {
    throw new Error(`The PostgreSQL test server is required in CI but is not reachable at ${url}`);
  }
  process.stderr.write(`PostgreSQL test server not reachable at ${url}: skipping PostgreSQL tests\n`);
  return null;
}

async function answersSql(url: string): Promise<boolean> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PING_TIMEOUT_MS,
    query_timeout: PING_TIMEOUT_MS,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Debian's Chromium, driven by playwright-core in browser tests (browsers are never downloaded). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Launch options for headless Chromium on a machine without a network: as root (no sandbox), without GPU,
 * and without the background connections that a closed network would refuse many times over.
 */
export const CHROMIUM_LAUNCH_OPTIONS = {
  executablePath: CHROMIUM_PATH,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/**
 * An empty database of its own on the PostgreSQL test server (named `<prefix>_<pid>_<random>`), with a `drop()`
 * that removes it even while connections are open.
 */
export async function createTestDatabase(
  prefix: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const name = `${prefix}_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const asAdmin = async (statement: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await asAdmin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => asAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/**
 * A TCP proxy to a test server (PostgreSQL, Redis) that a test can cut — every open connection dropped, new
 * ones refused — and restore on the same port, to play an outage and its recovery.
 */
export class CuttableProxy {
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** A proxy in front of the host and port of `url` (a postgres:// or redis:// URL). */
  static for(url: string, defaultPort: number): CuttableProxy {
    const parsed = new URL(url);
    return new CuttableProxy(parsed.hostname, Number(parsed.port || defaultPort));
  }

  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  async start(port = 0): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  async restore(): Promise<void> {
    await this.start(this.port);
  }
}
