// The embedded PostgreSQL (PGlite): how it is created (template or initdb), the value parsers both dialects
// share, and the entry of the worker thread it can run in (`db.ts` starts it), so that its WebAssembly engine,
// its file layer and its result parsing use the second core instead of the event loop that serves requests.
//
// It imports packages only, never a sibling module: the tests start the thread from the TypeScript source,
// which Node runs by stripping its types, and that cannot resolve the `.js` names of sibling sources.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { gunzip } from 'node:zlib';
import { type Extensions, PGlite, types as pgliteTypes } from '@electric-sql/pglite';

// ---- value parsing shared by both dialects (see db.ts) ----

export const OID_INT8 = 20;
export const OID_NUMERIC = 1700;
export const OID_DATE = 1082;

export function parseInt8(text: string): number | bigint {
  const value = BigInt(text);
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value;
}

export function parseNumeric(text: string): number {
  return Number(text); // 'NaN' → NaN; 'Infinity' → Infinity
}

export function parseDate(text: string): Date | string {
  return /^\d{4}-\d{2}-\d{2}$/.test(text) ? new Date(`${text}T00:00:00Z`) : text; // 'infinity', BC dates: as text
}

const gunzipAsync = promisify(gunzip);

const PGLITE_PARSERS = { [OID_INT8]: parseInt8, [OID_NUMERIC]: parseNumeric, [pgliteTypes.DATE]: parseDate };

// ---- the engine, in this thread or in its own ----

/**
 * Bound parameters one statement may carry. PostgreSQL's protocol allows 65,535; PGlite reads the count back as
 * a signed 16-bit number and fails on more than 32,767 with a bare RangeError, so both dialects use the lower.
 */
export const MAX_STATEMENT_PARAMETERS = 32_767;

function tooManyParameters(count: number): Error {
  return Object.assign(
    new Error(
      `statement has ${count} bound parameters; the embedded database accepts at most ${MAX_STATEMENT_PARAMETERS}`,
    ),
    { code: '54000' }, // program_limit_exceeded
  );
}

/** What db.ts needs of an embedded engine, wherever it runs. */
export interface EmbeddedEngine {
  readonly closed: boolean;
  /** `blob`: the data a `copy … from '/dev/blob'` statement reads */
  query(sql: string, params: unknown[], blob?: Uint8Array): Promise<EngineResult>;
  /** several statements without parameters (simple protocol): the last one's rows, all rows affected */
  exec(sql: string): Promise<EngineResult>;
  /** closes the engine (PostgreSQL's shutdown checkpoint); safe to call twice */
  close(): Promise<void>;
}

export interface EngineResult {
  rows: unknown[];
  affectedRows: number;
}

export interface PgliteSettings {
  /** undefined → in memory */
  dataDir?: string;
  vector: boolean;
  sharedBuffers: string;
  /** gzipped data directory loaded into a database not yet initialised (see OpenDatabaseOptions.templatePath) */
  templatePath?: string;
}

export type EngineLog = (level: 'debug' | 'warn', fields: Record<string, unknown>, message: string) => void;

/** Opens PGlite in this thread: the existing database, or a new one from the template or initdb. */
export async function openPgliteEngine(settings: PgliteSettings, log: EngineLog): Promise<EmbeddedEngine> {
  const pglite = await createPglite(settings, log);
  try {
    if (settings.vector) await pglite.exec('create extension if not exists vector');
  } catch (error) {
    await pglite.close().catch(() => {});
    throw error;
  }
  return {
    get closed() {
      return pglite.closed;
    },
    async query(sql, params, blob) {
      if (params.length > MAX_STATEMENT_PARAMETERS) throw tooManyParameters(params.length);
      const result = await pglite.query(
        sql,
        params,
        blob === undefined ? undefined : { blob: new Blob([blob as Uint8Array<ArrayBuffer>]) },
      );
      return { rows: result.rows, affectedRows: result.affectedRows ?? 0 };
    },
    async exec(sql) {
      const results = await pglite.exec(sql);
      const affected = results.reduce((sum, result) => sum + (result.affectedRows ?? 0), 0);
      return { rows: results.at(-1)?.rows ?? [], affectedRows: affected };
    },
    async close() {
      if (!pglite.closed) await pglite.close();
    },
  };
}

// ---- the protocol between db.ts and the engine's thread ----

/** What the thread is started with (its workerData). */
export interface PgliteThreadData extends PgliteSettings {
  marker: typeof THREAD_MARKER;
}

export const THREAD_MARKER = 'quintet-pglite-thread';

/** main → thread; `exec` runs several statements without parameters (simple protocol). */
export type PgliteCall =
  | { kind: 'query'; sql: string; params: unknown[]; blob?: Uint8Array }
  | { kind: 'exec'; sql: string }
  | { kind: 'close' };

export type PgliteRequest = PgliteCall & { id: number };

/** An error as it crosses the thread: its name and message plus PostgreSQL's fields (code, detail, …). */
export interface PgliteThreadError {
  name: string;
  message: string;
  fields: Record<string, string | number>;
  /** the stack inside the thread, where a failure of the engine itself happened */
  stack?: string;
}

/** thread → main */
export type PgliteMessage =
  | { kind: 'ready' }
  | { kind: 'failed'; error: PgliteThreadError }
  | { kind: 'log'; level: 'debug' | 'warn'; fields: Record<string, unknown>; message: string }
  | { id: number; kind: 'result'; rows: unknown[]; affectedRows: number }
  | { id: number; kind: 'error'; error: PgliteThreadError };

export function serializeError(error: unknown): PgliteThreadError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  const fields: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(error))
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  return {
    name: error.name,
    message: error.message,
    fields,
    ...(error.stack === undefined ? {} : { stack: error.stack }),
  };
}

/** Starts PGlite, loading the template into a database not yet initialised, or running initdb without one. */
async function createPglite(data: PgliteSettings, log: EngineLog): Promise<PGlite> {
  const { dataDir } = data;
  const extensions: Extensions = data.vector
    ? { vector: (await import('@electric-sql/pglite/vector')).vector }
    : {};
  const settings = {
    ...(dataDir === undefined ? {} : { dataDir }),
    extensions,
    parsers: PGLITE_PARSERS,
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${data.sharedBuffers}`],
  };
  const where = dataDir ?? 'memory';
  if (dataDir !== undefined && existsSync(join(dataDir, 'PG_VERSION'))) {
    log('debug', { dataDir }, 'opening the existing PGlite database');
    return PGlite.create(settings);
  }
  const loadDataDir =
    data.templatePath === undefined ? undefined : await readTemplate(data.templatePath, log);
  if (loadDataDir !== undefined) {
    // Whatever a failed load wrote is removed before initdb, which needs the directory as it was.
    const entriesBefore = dataDir === undefined ? [] : readdirSync(dataDir);
    try {
      const engine = await PGlite.create({ ...settings, loadDataDir });
      log(
        'debug',
        { dataDir: where, templatePath: data.templatePath },
        'created the PGlite database from the template',
      );
      return engine;
    } catch (error) {
      log(
        'warn',
        { err: error, templatePath: data.templatePath },
        'the PGlite template did not load; running initdb',
      );
      if (dataDir !== undefined) removeEntriesExcept(dataDir, entriesBefore);
    }
  }
  log('debug', { dataDir: where }, 'creating the PGlite database with initdb');
  return PGlite.create(settings);
}

/** The template as an uncompressed tar (native gunzip beats PGlite's own), or undefined when unusable. */
async function readTemplate(path: string, log: EngineLog): Promise<Blob | undefined> {
  let compressed: Buffer;
  try {
    compressed = await readFile(path);
  } catch (error) {
    log('debug', { templatePath: path, reason: (error as NodeJS.ErrnoException).code }, 'no PGlite template');
    return undefined;
  }
  try {
    // gunzip verifies the checksum: a damaged file is caught here, before anything touches the data directory.
    const tar = await gunzipAsync(compressed);
    checkDataDirTar(tar);
    return new Blob([tar], { type: 'application/x-tar' });
  } catch (error) {
    log('warn', { err: error, templatePath: path }, 'the PGlite template is unreadable; running initdb');
    return undefined;
  }
}

// ---- data-directory archives (here, not in pglite-template.ts: the engine's thread loads this module alone) ----

export const TAR_BLOCK = 512;

/** One entry's header in a data-directory archive (ustar: regular files and directories only). */
export interface TarHeader {
  /** relative to the data directory, without leading or trailing slashes */
  path: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
}

function field(block: Uint8Array, start: number, length: number): string {
  return new TextDecoder().decode(block.subarray(start, start + length)).replace(/\0.*$/s, '');
}

/**
 * The header in the 512-byte `block` at byte `offset` of an archive; null for an end-of-archive block. Throws on
 * a bad checksum, a path that could leave the directory, or an entry type other than file and directory.
 */
export function parseTarHeader(block: Uint8Array, offset: number): TarHeader | null {
  if (block.every((byte) => byte === 0)) return null;
  // The checksum sums the header with its own 8-byte field read as spaces.
  let sum = 8 * 0x20;
  for (let index = 0; index < TAR_BLOCK; index++) if (index < 148 || index >= 156) sum += block[index] ?? 0;
  if (Number.parseInt(field(block, 148, 8).trim(), 8) !== sum)
    throw new Error(`bad tar header checksum at byte ${offset}`);
  const prefix = field(block, 345, 155);
  const name = prefix === '' ? field(block, 0, 100) : `${prefix}/${field(block, 0, 100)}`;
  const path = name.replace(/^\/+/, '').replace(/\/+$/, '');
  if (path.split('/').some((part) => part === '..' || part === '.'))
    throw new Error(`unsafe path in the archive: ${name}`);
  const typeFlag = field(block, 156, 1);
  if (typeFlag !== '5' && typeFlag !== '0' && typeFlag !== '')
    throw new Error(`unsupported tar entry type "${typeFlag}" for ${name}`);
  return {
    path,
    type: typeFlag === '5' ? 'directory' : 'file',
    mode: Number.parseInt(field(block, 100, 8).trim() || '0', 8),
    size: Number.parseInt(field(block, 124, 12).trim() || '0', 8),
  };
}

/** Bytes an entry's data takes in the archive (rounded up to whole blocks). */
export function tarDataBlocks(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

/**
 * Throws unless `tar` is a whole data-directory archive: every header right (parseTarHeader), no entry cut
 * short, the end marker present, PG_VERSION among the entries. PGlite would otherwise retry a broken archive as
 * gzip, and that failure escapes as an unhandled rejection that ends the process.
 */
export function checkDataDirTar(tar: Uint8Array): void {
  let hasVersion = false;
  for (let offset = 0; offset + TAR_BLOCK <= tar.length; ) {
    const header = parseTarHeader(tar.subarray(offset, offset + TAR_BLOCK), offset);
    if (header === null) {
      if (!hasVersion) throw new Error('the archive holds no PG_VERSION');
      return;
    }
    if (header.path === 'PG_VERSION') hasVersion = true;
    offset += TAR_BLOCK + (header.type === 'file' ? tarDataBlocks(header.size) : 0);
    if (offset > tar.length) throw new Error('the archive is cut short');
  }
  throw new Error('the archive has no end marker');
}

/** Removes what `dir` holds apart from `keep` (a failed template load leaves the directory as it was). */
export function removeEntriesExcept(dir: string, keep: readonly string[]): void {
  const kept = new Set(keep);
  for (const entry of readdirSync(dir))
    if (!kept.has(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
}

// ---- the thread ----

function post(message: PgliteMessage): void {
  parentPort?.postMessage(message);
}

/** Log lines go to the main thread's logger; errors in them travel as their fields. */
function postLog(level: 'debug' | 'warn', fields: Record<string, unknown>, message: string): void {
  const plain = Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [
      key,
      value instanceof Error ? serializeError(value) : value,
    ]),
  );
  post({ kind: 'log', level, fields: plain, message });
}

async function run(request: PgliteRequest, engine: EmbeddedEngine): Promise<PgliteMessage> {
  switch (request.kind) {
    case 'exec':
      return { id: request.id, kind: 'result', ...(await engine.exec(request.sql)) };
    case 'query':
      return {
        id: request.id,
        kind: 'result',
        ...(await engine.query(request.sql, request.params, request.blob)),
      };
    case 'close':
      await engine.close();
      return { id: request.id, kind: 'result', rows: [], affectedRows: 0 };
  }
}

/**
 * A transaction's next statement usually follows its answer within a fraction of a millisecond; waiting for
 * it here, awake, spares the thread going to sleep and being woken again (a lone `select $1::int` through the
 * thread: 334 µs without this, 263 µs with it, 150 µs of it in PGlite). After SPIN_MS without a statement the
 * thread sleeps until the port wakes it.
 */
const SPIN_MS = 0.2;

function awaitNextBriefly(port: MessagePort, handle: (request: PgliteRequest) => void): void {
  const until = performance.now() + SPIN_MS;
  do {
    const next = receiveMessageOnPort(port);
    if (next !== undefined) {
      handle(next.message as PgliteRequest);
      return;
    }
  } while (performance.now() < until);
}

async function serve(data: PgliteThreadData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  let engine: EmbeddedEngine;
  try {
    engine = await openPgliteEngine(data, postLog);
  } catch (error) {
    post({ kind: 'failed', error: serializeError(error) });
    return;
  }
  let inFlight = 0;
  const handle = (request: PgliteRequest): void => {
    inFlight++;
    // PGlite queues concurrent calls itself; the main thread decides which caller holds the connection.
    run(request, engine)
      .catch(
        (error: unknown): PgliteMessage => ({ id: request.id, kind: 'error', error: serializeError(error) }),
      )
      .then((reply) => {
        post(reply);
        inFlight--;
        // After closing, nothing keeps this thread's loop alive once the port is closed: it ends by itself.
        if (request.kind === 'close') port.close();
        else if (inFlight === 0) awaitNextBriefly(port, handle);
      });
  };
  port.on('message', handle);
  post({ kind: 'ready' });
}

const startedWith = workerData as Partial<PgliteThreadData> | null;
if (startedWith?.marker === THREAD_MARKER) void serve(startedWith as PgliteThreadData);
