// SQL through one query layer (Kysely) on either PGlite — PostgreSQL compiled to WebAssembly, embedded in the
// process, the default — or a PostgreSQL server for many instances. Both dialects return the same JavaScript
// values:
// - int8 (bigint, count(*)): a number, or a BigInt beyond Number.MAX_SAFE_INTEGER (PGlite's own rule);
// - numeric (avg(), sum(bigint)): a number (a double: digits beyond ~15 significant ones are rounded);
// - timestamptz: a Date; timestamp without time zone: a Date read as UTC; date: a Date at UTC midnight.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  type KyselyConfig,
  PostgresAdapter,
  PostgresDialect,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  sql,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import { ConfigError } from './config.js';
import { NETWORK_UNAVAILABLE_CODES } from './errors.js';
import type { Logger } from './log.js';
import {
  type EmbeddedEngine,
  type EngineResult,
  MAX_STATEMENT_PARAMETERS,
  OID_DATE,
  OID_INT8,
  OID_NUMERIC,
  openPgliteEngine,
  type PgliteCall,
  type PgliteMessage,
  type PgliteRequest,
  type PgliteSettings,
  type PgliteThreadData,
  type PgliteThreadError,
  parseDate,
  parseInt8,
  parseNumeric,
  removeEntriesExcept,
  THREAD_MARKER,
} from './pglite-engine.js';
import {
  extractDataDirArchive,
  gzipTemplate,
  migratedTemplateName,
  staleMigratedTemplates,
  tarDirectory,
  writeFileAtomically,
} from './pglite-template.js';
import { threadEntry } from './thread-pool.js';

export { MAX_STATEMENT_PARAMETERS };

/** Which engine a Database runs on. */
export type SqlDialect = 'pglite' | 'postgres';

/** One schema change: plain SQL, possibly several statements, applied once per namespace. */
export interface Migration {
  name: string;
  sql: string;
}

/** Where and how to open a Database. */
export interface OpenDatabaseOptions {
  /** postgres:// (or postgresql://) URL → PostgreSQL through a pg Pool; undefined → PGlite */
  url?: string;
  /** PGlite data directory (created if missing); undefined → in-memory PGlite */
  dataDir?: string;
  /** load pgvector (PGlite: the bundled extension; PostgreSQL: CREATE EXTENSION IF NOT EXISTS vector) */
  vector?: boolean;
  /** PostgreSQL pool size (default 10) */
  poolSize?: number;
  /** shown in pg_stat_activity (PostgreSQL) */
  applicationName?: string;
  /** receives errors of idle pooled connections (PostgreSQL), which would otherwise go unnoticed */
  logger?: Logger;
  /**
   * PGlite: gzipped data directory loaded into a new database instead of running initdb (seconds faster);
   * default: the template built next to this module (dist/pglite-template.tar.gz); null: always run initdb.
   * A missing or damaged template falls back to initdb.
   */
  templatePath?: string | null;
  /**
   * PGlite: PostgreSQL's `shared_buffers` (default `16MB`). The server default of 128MB is all held in the
   * process's WASM memory (an idle service would sit near 700 MB RSS); embedded data sets are small, and the
   * operating system caches the files underneath anyway.
   */
  sharedBuffers?: string;
  /**
   * PGlite: run the engine in a worker thread of its own (default true). Its statements then use the second
   * core instead of the event loop, for about 20 MB more memory (another V8 heap; 50 MB unless glibc's trim
   * threshold is fixed, see memory.ts) and a thread hand-off per statement; a service with little database
   * work and a tight memory budget turns it off.
   */
  thread?: boolean;
  /** told the statement kind (`select`, `insert`, `update`, `delete`, `other`) and duration of every query */
  onQuery?: (operation: QueryOperation, seconds: number) => void;
}

export type QueryOperation = 'select' | 'insert' | 'update' | 'delete' | 'other';

const QUERY_OPERATIONS = new Set<string>(['select', 'insert', 'update', 'delete']);

/** Kysely's log hook as `onQuery` calls (failed queries are timed too). */
function queryLog(onQuery: OpenDatabaseOptions['onQuery']): KyselyConfig['log'] {
  if (onQuery === undefined) return undefined;
  return (event) => {
    // The leading keyword; a statement starting with a CTE (`with …`) counts as `other`.
    const keyword = /^\s*(\w+)/.exec(event.query.sql)?.[1]?.toLowerCase() ?? '';
    onQuery(
      QUERY_OPERATIONS.has(keyword) ? (keyword as QueryOperation) : 'other',
      event.queryDurationMillis / 1000,
    );
  };
}

/** `shared_buffers` of embedded PGlite unless a caller chooses otherwise (see OpenDatabaseOptions). */
export const DEFAULT_PGLITE_SHARED_BUFFERS = '16MB';

/** Connections of a Database now: PostgreSQL's pool, or PGlite's one embedded connection. */
export interface ConnectionStats {
  /** connections open */
  total: number;
  idle: number;
  /** queries waiting for a connection */
  waiting: number;
  /** the pool's maximum */
  max: number;
}

/** An open database: the Kysely handle plus health, migrations and shutdown. */
export interface Database<DB> {
  readonly kysely: Kysely<DB>;
  readonly dialect: SqlDialect;
  /** the connection pool's state (for health endpoints and metrics) */
  connections(): ConnectionStats;
  /** one cheap round trip; rejects when the database is unreachable */
  ping(): Promise<void>;
  /**
   * Applies the migrations not yet applied, in order, each in its own transaction, recorded in table
   * quintet_migrations(namespace, name, applied_at); concurrent callers (two processes on one PostgreSQL) are
   * serialised with an advisory lock; returns the names applied now.
   */
  migrate(namespace: string, migrations: readonly Migration[]): Promise<string[]>;
  /** releases the pool or the embedded engine and its data directory lock; safe to call twice */
  close(): Promise<void>;
}

const DEFAULT_POOL_SIZE = 10;
const CONNECT_TIMEOUT_MS = 5000;
const LOCK_FILE = '.quintet.lock';
// One advisory lock key for every namespace: migrations are rare, so serialising all of them costs nothing.
const MIGRATION_LOCK_KEY = 0x71_75_69_6e; // "quin"
const VECTOR_MISSING_MESSAGE = 'the vector extension is not installed on this PostgreSQL server';
// "../dist/" resolves to the same file from dist/db.js and from src/db.ts (tests run the sources).
const DEFAULT_TEMPLATE_PATH = fileURLToPath(new URL('../dist/pglite-template.tar.gz', import.meta.url));

/** What `prepareEmbeddedDatabase` creates a database with. */
export interface PrepareEmbeddedOptions
  extends Pick<OpenDatabaseOptions, 'vector' | 'sharedBuffers' | 'templatePath'> {
  dataDir: string;
  /**
   * Where the service's migrated templates are (`buildMigratedTemplate`): when the one for these migrations is
   * there, the new database is that archive unpacked, with no PGlite started.
   */
  migratedTemplateDir?: string;
  /** told when a migrated template is there but unusable (the database is then created the long way) */
  logger?: Logger;
}

/**
 * Creates an embedded database on `options.dataDir` and applies the migrations of each namespace; returns the
 * names applied, or [] when the directory already holds a database (its pending migrations are the opener's).
 * From a migrated template when there is one for exactly these migrations; otherwise in a short-lived child
 * process, from the base template (or initdb): creating and migrating grows PGlite's WebAssembly heap and the
 * C allocator's arenas, and neither shrinks, so that memory never belongs to the long-running process that opens
 * the database afterwards. The directory must not be open elsewhere.
 */
export async function prepareEmbeddedDatabase(
  options: PrepareEmbeddedOptions,
  namespaces: readonly { namespace: string; migrations: readonly Migration[] }[],
): Promise<string[]> {
  if (existsSync(join(options.dataDir, 'PG_VERSION'))) return [];
  if (options.migratedTemplateDir !== undefined && (await unpackMigratedTemplate(options, namespaces)))
    return namespaces.flatMap(({ migrations }) => migrations.map((migration) => migration.name));
  const entry = threadEntry(import.meta.url, 'pglite-prepare');
  const child = spawn(process.execPath, [...(entry.execArgv ?? []), fileURLToPath(entry.url)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const { dataDir, vector, sharedBuffers, templatePath } = options;
  child.stdin.end(JSON.stringify({ options: { dataDir, vector, sharedBuffers, templatePath }, namespaces }));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    const reason = Buffer.concat(stderr).toString().trim().split('\n').at(-1) || `exit ${signal ?? code}`;
    throw new Error(`Preparing the embedded database in ${options.dataDir} failed: ${reason}`);
  }
  return (JSON.parse(Buffer.concat(stdout).toString()) as { applied: string[] }).applied;
}

/**
 * Unpacks the migrated template for `namespaces` into the new, empty `options.dataDir`; false (the directory
 * as it was) when there is none for them, the directory holds something already, or the archive is damaged.
 */
async function unpackMigratedTemplate(
  options: PrepareEmbeddedOptions,
  namespaces: readonly { namespace: string; migrations: readonly Migration[] }[],
): Promise<boolean> {
  const { dataDir } = options;
  const path = join(
    options.migratedTemplateDir as string,
    migratedTemplateName(options.vector === true, namespaces),
  );
  if (!existsSync(path)) return false;
  mkdirSync(dataDir, { recursive: true });
  let release: () => void;
  try {
    release = lockDataDir(dataDir);
  } catch (error) {
    throw new Error(`Preparing the embedded database in ${dataDir} failed: ${(error as Error).message}`);
  }
  try {
    const before = readdirSync(dataDir);
    // Anything but the lock (a half-created database, say) is left to the long way, which reports it.
    if (before.some((name) => name !== LOCK_FILE)) return false;
    try {
      await extractDataDirArchive(path, dataDir);
      return true;
    } catch (error) {
      removeEntriesExcept(dataDir, before);
      options.logger?.warn(
        { err: error, templatePath: path },
        'the migrated database template is unusable; creating the database from the base template',
      );
      return false;
    }
  } finally {
    release();
  }
}

/**
 * Writes the migrated template for `namespaces` into `dir` (unless it is there already) and removes the ones
 * for other migrations: a database created from the base template, migrated, closed and archived. A service's
 * build runs this, so that `prepareEmbeddedDatabase` with `migratedTemplateDir: dir` finds it.
 */
export async function buildMigratedTemplate(
  dir: string,
  options: Pick<OpenDatabaseOptions, 'vector' | 'templatePath'>,
  namespaces: readonly { namespace: string; migrations: readonly Migration[] }[],
): Promise<{ path: string; built: boolean }> {
  const vector = options.vector === true;
  const name = migratedTemplateName(vector, namespaces);
  const path = join(dir, name);
  const built = !existsSync(path);
  if (built) {
    const scratch = mkdtempSync(join(tmpdir(), 'quintet-template-'));
    try {
      const dataDir = join(scratch, 'pglite');
      await prepareEmbeddedDatabase(
        {
          dataDir,
          vector,
          ...(options.templatePath === undefined ? {} : { templatePath: options.templatePath }),
        },
        namespaces,
      );
      writeFileAtomically(path, gzipTemplate(tarDirectory(dataDir, [LOCK_FILE])));
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  for (const stale of staleMigratedTemplates(dir, name)) rmSync(stale, { force: true });
  return { path, built };
}

/** Opens PGlite (in memory or on `dataDir`) or a PostgreSQL pool (`url`) behind one Kysely handle. */
export async function openDatabase<DB>(options: OpenDatabaseOptions): Promise<Database<DB>> {
  if (options.url !== undefined) return openPostgres<DB>(options.url, options);
  return openPglite<DB>(options);
}

async function openPostgres<DB>(url: string, options: OpenDatabaseOptions): Promise<Database<DB>> {
  validateDatabaseUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // TCP keep-alive notices a server that vanished without closing the socket (no per-query timeout: a
    // long migration or report query is legitimate).
    keepAlive: true,
    ...(options.applicationName === undefined ? {} : { application_name: options.applicationName }),
    types: { getTypeParser: postgresTypeParser },
  });
  // Without a listener, an idle client losing its server (restart, failover) would crash the process.
  pool.on('error', (error) => {
    options.logger?.warn({ err: error, database: redactDatabaseUrl(url) }, 'idle database connection failed');
  });
  // A client checked out for a query emits 'error' too when its server goes away mid-query; the query itself
  // rejects (and the caller answers 503), so the event only needs a listener to keep the process alive.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      options.logger?.debug({ err: error }, 'database connection lost during a query');
    });
  });
  const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), log: queryLog(options.onQuery) });
  const max = options.poolSize ?? DEFAULT_POOL_SIZE;
  const database = createDatabase(
    kysely,
    'postgres',
    async () => {
      if (!pool.ending && !pool.ended) await pool.end();
    },
    () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max }),
  );
  if (options.vector) {
    try {
      await sql`create extension if not exists vector`.execute(kysely);
    } catch (error) {
      await database.close();
      const code = sqlState(error);
      // 0A000: "extension is not available" (PostgreSQL 15+); 58P01: no control file (older servers).
      if (code === '0A000' || code === '58P01') throw new Error(VECTOR_MISSING_MESSAGE, { cause: error });
      throw error;
    }
  }
  return database;
}

async function openPglite<DB>(options: OpenDatabaseOptions): Promise<Database<DB>> {
  const sharedBuffers = options.sharedBuffers ?? DEFAULT_PGLITE_SHARED_BUFFERS;
  if (!/^\d+(kB|MB|GB)?$/.test(sharedBuffers))
    throw new Error(`invalid shared_buffers value "${sharedBuffers}"`);
  let releaseLock = () => {};
  if (options.dataDir !== undefined) {
    mkdirSync(options.dataDir, { recursive: true });
    releaseLock = lockDataDir(options.dataDir);
  }
  const settings: PgliteSettings = {
    vector: options.vector === true,
    sharedBuffers,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.templatePath === null ? {} : { templatePath: options.templatePath ?? DEFAULT_TEMPLATE_PATH }),
  };
  let engine: EmbeddedEngine;
  try {
    engine =
      options.thread === false
        ? await openPgliteEngine(settings, (level, fields, message) =>
            options.logger?.[level](fields, message),
          )
        : await PgliteThread.start(settings, options.logger);
  } catch (error) {
    releaseLock();
    throw error;
  }
  const kysely = new Kysely<DB>({ dialect: new PgliteDialect(engine), log: queryLog(options.onQuery) });
  return createDatabase(
    kysely,
    'pglite',
    async () => {
      try {
        await engine.close();
      } finally {
        releaseLock();
      }
    },
    // One embedded connection; statements queue inside PGlite, not in a pool.
    () => ({ total: 1, idle: 1, waiting: 0, max: 1 }),
  );
}

const PGLITE_THREAD_ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './pglite-engine.ts' : './pglite-engine.js',
  import.meta.url,
);
const PGLITE_CLOSED = 'PGlite is closed';
/** How long a closed database's thread may take to end by itself before it is terminated. */
const THREAD_EXIT_GRACE_MS = 2_000;

/**
 * The embedded engine in its worker thread (pglite-engine.ts), seen from the main thread: statements go over
 * its message port. The thread keeps the process alive only while a statement is in flight, as a socket would.
 */
class PgliteThread implements EmbeddedEngine {
  private readonly pending = new Map<
    number,
    { resolve: (result: EngineResult) => void; reject: (error: Error) => void }
  >();
  private nextId = 1;
  private stopped: Error | undefined;
  private closing: Promise<void> | undefined;
  private readonly exited: Promise<void>;

  private constructor(private readonly worker: Worker) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: PgliteMessage) => {
      if (message.kind !== 'result' && message.kind !== 'error') return;
      const call = this.pending.get(message.id);
      if (call === undefined) return;
      this.pending.delete(message.id);
      if (this.pending.size === 0) worker.unref();
      if (message.kind === 'result') call.resolve(message);
      else call.reject(reviveError(message.error));
    });
    const stop = (reason: string) => {
      this.stopped ??= new Error(`${PGLITE_CLOSED}: ${reason}`);
      for (const call of this.pending.values()) call.reject(this.stopped);
      this.pending.clear();
    };
    worker.on('error', (error) => stop(`the database thread failed (${error.message})`));
    worker.on('exit', (code) => stop(`the database thread stopped (exit code ${code})`));
  }

  /** Starts the thread and waits until the database is open (template loaded or initdb run, pgvector created). */
  static async start(settings: PgliteSettings, logger: Logger | undefined): Promise<PgliteThread> {
    const data: PgliteThreadData = { ...settings, marker: THREAD_MARKER };
    const worker = new Worker(PGLITE_THREAD_ENTRY, {
      workerData: data,
      // The parent's flags (a loader, --input-type of an -e script) are not this entry's; the TypeScript
      // source the tests start needs none (pglite-engine.ts).
      execArgv: [],
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: PgliteMessage) => {
        if (message.kind === 'log') {
          logger?.[message.level](message.fields, message.message);
        } else if (message.kind === 'ready') {
          settle();
          resolve();
        } else if (message.kind === 'failed') {
          settle();
          void worker.terminate();
          reject(reviveError(message.error));
        }
      };
      const onExit = (code: number) => {
        settle();
        reject(new Error(`The database thread stopped while opening the database (exit code ${code})`));
      };
      const onError = (error: Error) => {
        settle();
        reject(error);
      };
      const settle = () => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.once('error', onError);
    });
    const thread = new PgliteThread(worker);
    worker.unref();
    return thread;
  }

  get closed(): boolean {
    return this.stopped !== undefined || this.closing !== undefined;
  }

  query(sql: string, params: unknown[], blob?: Uint8Array): Promise<EngineResult> {
    return this.send({ kind: 'query', sql, params, ...(blob === undefined ? {} : { blob }) });
  }

  exec(sql: string): Promise<EngineResult> {
    return this.send({ kind: 'exec', sql });
  }

  /**
   * Closes the engine (PostgreSQL's shutdown checkpoint) and ends the thread; safe to call twice. The thread
   * leaves by itself once it has answered: terminating a thread is the path on which Node has crashed when
   * other threads start meanwhile (nodejs/node#56312), so terminate() is only the fallback.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.stopped === undefined) {
        try {
          await this.send({ kind: 'close' }, true);
        } finally {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<'late'>((resolve) => {
            timer = setTimeout(() => resolve('late'), THREAD_EXIT_GRACE_MS);
          });
          if ((await Promise.race([this.exited, late])) === 'late') await this.worker.terminate();
          clearTimeout(timer);
        }
      }
    })();
    return this.closing;
  }

  private send(call: PgliteCall, closing = false): Promise<{ rows: unknown[]; affectedRows: number }> {
    if (this.stopped !== undefined) return Promise.reject(this.stopped);
    if (this.closing !== undefined && !closing) return Promise.reject(new Error(PGLITE_CLOSED));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...call, id } satisfies PgliteRequest);
    });
  }
}

/** The thread's error as an Error again, with PostgreSQL's fields (code, detail, constraint, …) on it. */
function reviveError(serialized: PgliteThreadError): Error {
  const error = new Error(serialized.message);
  error.name = serialized.name;
  Object.assign(error, serialized.fields);
  // Where the thread failed says more than where its answer arrived.
  if (serialized.stack !== undefined)
    error.stack = `${serialized.stack}\n    --- answered by the database thread to:\n${error.stack?.split('\n').slice(1).join('\n') ?? ''}`;
  return error;
}

/** `release` frees what Kysely's destroy leaves behind: it skips drivers that never ran a query. */
function createDatabase<DB>(
  kysely: Kysely<DB>,
  dialect: SqlDialect,
  release: () => Promise<void>,
  connections: () => ConnectionStats,
): Database<DB> {
  let closing: Promise<void> | undefined;
  return {
    kysely,
    dialect,
    connections,
    async ping() {
      await sql`select 1`.execute(kysely);
    },
    migrate: (namespace, migrations) => migrate(kysely, namespace, migrations),
    close() {
      closing ??= kysely.destroy().finally(release);
      return closing;
    },
  };
}

async function migrate<DB>(
  kysely: Kysely<DB>,
  namespace: string,
  migrations: readonly Migration[],
): Promise<string[]> {
  const names = new Set<string>();
  for (const migration of migrations) {
    if (names.has(migration.name)) throw new Error(`Duplicate migration name ${namespace}/${migration.name}`);
    names.add(migration.name);
  }
  const lock = sql`select pg_advisory_xact_lock(${sql.lit(MIGRATION_LOCK_KEY)})`;
  const alreadyApplied = await kysely.transaction().execute(async (trx) => {
    await lock.execute(trx);
    // Created under the lock: two servers running CREATE TABLE IF NOT EXISTS at once can both try to create it.
    await sql`create table if not exists quintet_migrations (
      namespace text not null,
      name text not null,
      applied_at timestamptz not null default now(),
      primary key (namespace, name)
    )`.execute(trx);
    const { rows } = await sql<{
      name: string;
    }>`select name from quintet_migrations where namespace = ${namespace}`.execute(trx);
    return new Set(rows.map((row) => row.name));
  });
  const appliedNow: string[] = [];
  for (const migration of migrations) {
    if (alreadyApplied.has(migration.name)) continue;
    const applied = await kysely.transaction().execute(async (trx) => {
      await lock.execute(trx);
      // Checked again under the lock: another caller may have applied it since the first read.
      const { rows } =
        await sql`select 1 from quintet_migrations where namespace = ${namespace} and name = ${migration.name}`.execute(
          trx,
        );
      if (rows.length > 0) return false;
      try {
        await sql.raw(migration.sql).execute(trx);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`Migration ${namespace}/${migration.name} failed: ${reason}`, { cause: error });
      }
      await sql`insert into quintet_migrations (namespace, name) values (${namespace}, ${migration.name})`.execute(
        trx,
      );
      return true;
    });
    if (applied) appliedNow.push(migration.name);
  }
  return appliedNow;
}

/** Throws a ConfigError naming DATABASE_URL unless `url` is a postgres:// or postgresql:// URL with a host. */
export function validateDatabaseUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(
      'DATABASE_URL',
      `must be a postgres:// or postgresql:// URL, not ${parsed.protocol}//`,
    );
  }
  if (parsed.hostname === '' && !parsed.searchParams.has('host'))
    throw new ConfigError('DATABASE_URL', 'has no host');
}

const UNAVAILABLE_CODES = new Set([
  ...NETWORK_UNAVAILABLE_CODES,
  // SQLSTATE: the server is shutting down, restarting, or has no connection slot left.
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Cannot use a pool after calling end on the pool',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'driver has already been destroyed',
  'PGlite is closed',
];

/** True for connection-level failures (refused, reset, timeout, terminated, pool closed): the caller answers 503. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return someCause(error, (current) => {
    const code = (current as { code?: unknown }).code;
    // Class 08 is "connection exception", but 08P01 (protocol violation) comes from a live server about a
    // malformed message, such as one with more bound parameters than the protocol can count.
    if (
      typeof code === 'string' &&
      (UNAVAILABLE_CODES.has(code) || (code.startsWith('08') && code !== '08P01'))
    )
      return true;
    return UNAVAILABLE_MESSAGES.some((text) => current.message.startsWith(text));
  });
}

/**
 * Rows split into groups whose values fit one statement's bound parameters (one parameter per value of a row
 * object), in order; `limit` defaults to MAX_STATEMENT_PARAMETERS.
 */
export function chunkRowsByParameters<T extends object>(
  rows: readonly T[],
  limit: number = MAX_STATEMENT_PARAMETERS,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let parameters = 0;
  for (const row of rows) {
    const count = Object.keys(row).length;
    if (current.length > 0 && parameters + count > limit) {
      chunks.push(current);
      current = [];
      parameters = 0;
    }
    current.push(row);
    parameters += count;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** True for unique-constraint violations (SQLSTATE 23505) on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  return someCause(error, (current) => (current as { code?: unknown }).code === '23505');
}

/** The URL with any password (in the user info or a `password` parameter) replaced by ***, for logs. */
export function redactDatabaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: still hide whatever sits between "user:" and "@".
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
  if (parsed.password !== '') parsed.password = '***';
  if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
  return parsed.toString();
}

/** Walks an error, its causes and the members of an AggregateError (Node's multi-address connect failures). */
function someCause(error: unknown, test: (error: Error) => boolean): boolean {
  const pending: unknown[] = [error];
  for (let seen = 0; pending.length > 0 && seen < 20; seen++) {
    const current = pending.shift();
    if (!(current instanceof Error)) continue;
    if (test(current)) return true;
    if (current.cause !== undefined) pending.push(current.cause);
    if (current instanceof AggregateError) pending.push(...current.errors);
  }
  return false;
}

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

// ---- value parsing shared by both dialects ----

const OID_TIMESTAMP = 1114;
const OID_TIMESTAMPTZ = 1184;

function postgresTypeParser(oid: number, format?: 'text' | 'binary'): (text: string) => unknown {
  const builtin = pg.types.getTypeParser(oid, format ?? 'text') as (text: string) => unknown;
  if (format === 'binary') return builtin;
  switch (oid) {
    case OID_INT8:
      return parseInt8;
    case OID_NUMERIC:
      return parseNumeric;
    case OID_DATE:
      return parseDate;
    case OID_TIMESTAMP: {
      const parseTimestamptz = pg.types.getTypeParser(OID_TIMESTAMPTZ, 'text') as (text: string) => unknown;
      return (text) => (/^\d/.test(text) ? parseTimestamptz(`${text}+00`) : parseTimestamptz(text));
    }
    default:
      return builtin;
  }
}

// ---- PGlite data directory lock ----

/**
 * Claims `dataDir` for this process with `<dataDir>/.quintet.lock` holding the pid: two engines writing one
 * directory would corrupt it. A lock left by a process that no longer runs is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readLock(path), 10);
      if (Number.isInteger(holder) && holder > 0 && processRuns(holder)) {
        const who = holder === process.pid ? 'this process' : `process ${holder}`;
        throw new Error(`The database directory ${dataDir} is already open in ${who} (lock file ${path})`);
      }
      rmSync(path, { force: true }); // stale: its process is gone
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (readLock(path).trim() === String(process.pid)) rmSync(path, { force: true });
    };
  }
  throw new Error(`Could not lock the database directory ${dataDir} (lock file ${path})`);
}

function readLock(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by another user
  }
}

// ---- Kysely dialect for PGlite ----

/**
 * PGlite is one connection: the driver hands it to one Kysely caller at a time (a transaction keeps it until
 * commit or rollback), so concurrent transactions never interleave. Inside `kysely.transaction()` use the
 * transaction handle: the outer handle would wait for the connection the transaction holds.
 */
class PgliteDialect implements Dialect {
  constructor(private readonly engine: EmbeddedEngine) {}
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PgliteDriver(this.engine);
  }
  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
}

/** A column of encodeBinaryCopy: PostgreSQL `integer`, or pgvector's `vector`. */
export type BinaryCopyValue = number | Float32Array;

const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Rows in PostgreSQL's binary COPY format, for `copy … from … with (format binary)`: a number is an `integer`
 * (int4), a Float32Array a pgvector `vector` (its binary form: dimension, a reserved int16, big-endian float4s).
 */
export function encodeBinaryCopy(rows: readonly (readonly BinaryCopyValue[])[]): Buffer {
  let size = COPY_SIGNATURE.length + 8 + 2;
  for (const row of rows) {
    size += 2;
    for (const value of row) size += 4 + (typeof value === 'number' ? 4 : 4 + 4 * value.length);
  }
  const out = Buffer.alloc(size);
  let at = COPY_SIGNATURE.copy(out, 0);
  at = out.writeInt32BE(0, at); // flags
  at = out.writeInt32BE(0, at); // header extension length
  for (const row of rows) {
    at = out.writeInt16BE(row.length, at);
    for (const value of row) {
      if (typeof value === 'number') {
        at = out.writeInt32BE(4, at);
        at = out.writeInt32BE(value, at);
        continue;
      }
      at = out.writeInt32BE(4 + 4 * value.length, at);
      at = out.writeInt16BE(value.length, at);
      at = out.writeInt16BE(0, at);
      for (let index = 0; index < value.length; index++) at = out.writeFloatBE(value[index] as number, at);
    }
  }
  out.writeInt16BE(-1, at); // end of data
  return out;
}

/** The data of copyIntoEmbedded's statement, carried as its only "parameter" to the embedded connection. */
class CopyData {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Embedded database only: runs `statement` — `copy <table> (<columns>) from '/dev/blob' with (…)` — with `data`
 * as what it reads, on the connection `executor` holds (in turn with every other statement, or inside a
 * transaction when `executor` is one). Returns the rows copied. `with (format binary)` spares PostgreSQL parsing text: a vector's
 * 384 components as text cost pgvector's float parser (software long-double arithmetic in WebAssembly) ~25×
 * what their binary form does. The statement is compiled already: Kysely plugins (a WriteWatch) do not see it.
 */
export async function copyIntoEmbedded<DB>(
  executor: Kysely<DB>,
  statement: string,
  data: Uint8Array,
): Promise<number> {
  if (!/^\s*copy\s[^;]*\sfrom\s+'\/dev\/blob'/i.test(statement))
    throw new Error("copyIntoEmbedded runs one `copy … from '/dev/blob'` statement");
  const result = await executor.executeQuery(CompiledQuery.raw(statement, [new CopyData(data)]));
  return Number(result.numAffectedRows ?? 0);
}

class PgliteConnection implements DatabaseConnection {
  constructor(private readonly engine: EmbeddedEngine) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const [first] = compiledQuery.parameters;
    if (first instanceof CopyData) {
      const result = await this.engine.query(compiledQuery.sql, [], first.bytes);
      return { rows: [], numAffectedRows: BigInt(result.affectedRows) };
    }
    if (compiledQuery.parameters.length === 0) {
      // The simple protocol accepts several statements (migrations); the extended one only one.
      const result = await this.engine.exec(compiledQuery.sql);
      return { rows: result.rows as R[], ...affectedRows(compiledQuery, result.affectedRows) };
    }
    const result = await this.engine.query(compiledQuery.sql, [...compiledQuery.parameters]);
    return { rows: result.rows as R[], ...affectedRows(compiledQuery, result.affectedRows) };
  }

  // PGlite returns whole results: streaming just slices them.
  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize = 100,
  ): AsyncIterableIterator<QueryResult<R>> {
    const { rows } = await this.executeQuery<R>(compiledQuery);
    for (let start = 0; start < rows.length; start += chunkSize)
      yield { rows: rows.slice(start, start + chunkSize) };
  }
}

function affectedRows(compiledQuery: CompiledQuery, count: number): { numAffectedRows?: bigint } {
  const kind = compiledQuery.query.kind;
  const writes =
    kind === 'InsertQueryNode' ||
    kind === 'UpdateQueryNode' ||
    kind === 'DeleteQueryNode' ||
    kind === 'MergeQueryNode';
  return writes ? { numAffectedRows: BigInt(count) } : {};
}

class PgliteDriver implements Driver {
  private readonly connection: PgliteConnection;
  private held = false;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly engine: EmbeddedEngine) {
    this.connection = new PgliteConnection(engine);
  }

  async init(): Promise<void> {
    if (this.engine.closed) throw new Error(PGLITE_CLOSED);
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.engine.closed) throw new Error(PGLITE_CLOSED);
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    return this.connection;
  }

  async releaseConnection(): Promise<void> {
    const next = this.waiting.shift();
    if (next)
      next(); // hand over directly, so no newcomer slips in between
    else this.held = false;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let statement = 'begin';
    if (settings.isolationLevel || settings.accessMode) {
      statement = 'start transaction';
      if (settings.isolationLevel) statement += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) statement += ` ${settings.accessMode}`;
    }
    await connection.executeQuery(CompiledQuery.raw(statement));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`));
  }

  async destroy(): Promise<void> {
    await this.engine.close();
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
