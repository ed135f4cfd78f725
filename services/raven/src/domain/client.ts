/**
 * The HTTP client behind `raven-zero upload|download|status|delete` (spec §3.1, §3.9). Plain functions over
 * `fetch`: bodies are streamed both ways, so memory stays constant whatever the file size.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, openAsBlob } from 'node:fs';
import { link, lstat, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { decodeRfc5987, sanitizeFilename } from './filename.js';
import { normalizeKey } from './wordlist.js';

/** `--server` when neither the option nor `RAVEN_SERVER` is given. */
export const DEFAULT_SERVER = 'http://127.0.0.1:8000';
/** Name of a stdin upload without `--name`. */
export const STDIN_FILENAME = 'stdin.bin';

/** Exit codes of the client commands (spec §3.1). */
export const EXIT_OK = 0;
export const EXIT_LOCAL = 1;
export const EXIT_REFUSED = 2;
export const EXIT_TRANSPORT = 3;

export type ClientExitCode = typeof EXIT_LOCAL | typeof EXIT_REFUSED | typeof EXIT_TRANSPORT;

/** A failure of a client command: a one-line message and the exit code it maps to. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly exitCode: ClientExitCode,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** Where a key lives: the server base URL (no trailing slash) and the normalized key. */
export interface KeyTarget {
  server: string;
  key: string;
}

/** The server base URL from `--server`, `RAVEN_SERVER`, else the default; checked and without trailing `/`. */
export function resolveServer(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw =
    option ?? (env.RAVEN_SERVER !== undefined && env.RAVEN_SERVER !== '' ? env.RAVEN_SERVER : DEFAULT_SERVER);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClientError(`invalid server URL: ${raw}`, EXIT_LOCAL);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ClientError(`invalid server URL (http or https expected): ${raw}`, EXIT_LOCAL);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

const KEY_ROUTE = /^(.*)\/(download|preview|status|files)\/([^/]+)\/?$/;

/**
 * A key or a full link. `<base>/download/<key>`, `/preview/<key>`, `/status/<key>`, `/files/<key>` and the
 * share link `<base>/d#<key>` are accepted: the server is then taken from the link, whatever `server` says.
 */
export function resolveTarget(keyOrUrl: string, server: string): KeyTarget {
  const text = keyOrUrl.trim();
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ClientError(`invalid link: ${text}`, EXIT_LOCAL);
    }
    const route = KEY_ROUTE.exec(url.pathname);
    let base: string | undefined;
    let rawKey: string | undefined;
    if (route !== null) {
      base = route[1];
      rawKey = route[3];
    } else if (/\/d\/?$/.test(url.pathname) && url.hash.length > 1) {
      base = url.pathname.replace(/\/d\/?$/, '');
      rawKey = url.hash.slice(1);
    }
    if (base === undefined || rawKey === undefined) {
      throw new ClientError(`not a Raven Zero link: ${text}`, EXIT_LOCAL);
    }
    const key = normalizeKey(rawKey);
    if (key === '') throw new ClientError(`no key in link: ${text}`, EXIT_LOCAL);
    return { server: `${url.origin}${base}`.replace(/\/+$/, ''), key };
  }
  const key = normalizeKey(text);
  if (key === '') throw new ClientError('a key is required', EXIT_LOCAL);
  return { server, key };
}

/** Header value for `X-Password`: UTF-8 bytes sent as they are (a header cannot carry other characters). */
function passwordHeader(password: string): string {
  return Buffer.from(password.normalize('NFC'), 'utf8').toString('latin1');
}

function describeTransportError(error: unknown, server: string): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  return `cannot reach ${server}: ${reason}`;
}

async function send(url: string, init: RequestInit & { duplex?: 'half' }, server: string): Promise<Response> {
  try {
    return await fetch(url, { redirect: 'manual', ...init });
  } catch (error) {
    throw new ClientError(describeTransportError(error, server), EXIT_TRANSPORT);
  }
}

/** The server's `detail` made one line. */
function detailText(detail: unknown): string {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((entry) => {
        const item = entry as { loc?: unknown[]; msg?: string };
        const field = Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : undefined;
        return field === undefined ? String(item.msg) : `${String(field)}: ${String(item.msg)}`;
      })
      .join('; ');
  }
  if (detail !== null && typeof detail === 'object') {
    const record = detail as { error?: unknown; message?: unknown; retry_after_seconds?: unknown };
    const text = String(record.error ?? record.message ?? JSON.stringify(detail));
    return typeof record.retry_after_seconds === 'number'
      ? `${text} (retry after ${record.retry_after_seconds} s)`
      : text;
  }
  return JSON.stringify(detail);
}

/** Turns a non-2xx answer into a ClientError: 4xx → exit 2, anything else → exit 3. */
async function failure(response: Response): Promise<ClientError> {
  let message = response.statusText || 'error';
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { detail?: unknown };
    if (body !== null && typeof body === 'object' && 'detail' in body) message = detailText(body.detail);
  } catch {
    if (text.trim() !== '') message = text.trim().split('\n')[0] ?? message;
  }
  const code = response.status >= 400 && response.status < 500 ? EXIT_REFUSED : EXIT_TRANSPORT;
  return new ClientError(`server answered ${response.status}: ${message}`, code, response.status);
}

async function readJson(response: Response): Promise<{ text: string; body: Record<string, unknown> }> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw new ClientError(`connection lost while reading the answer: ${String(error)}`, EXIT_TRANSPORT);
  }
  try {
    const body = JSON.parse(text) as unknown;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    return { text, body: body as Record<string, unknown> };
  } catch {
    throw new ClientError(`unexpected answer from the server (status ${response.status})`, EXIT_TRANSPORT);
  }
}

// ---------------------------------------------------------------------------------------------------------
// upload

export type UploadSource = { path: string } | { stream: Readable };

export interface UploadOptions {
  server: string;
  source: UploadSource;
  /** the name sent to the server; default: the file's base name, or `stdin.bin` for a stream */
  name?: string | undefined;
  expiry?: number | undefined;
  uses?: number | undefined;
  password?: string | undefined;
}

export interface UploadResult {
  /** the 201 body exactly as received */
  raw: string;
  body: Record<string, unknown>;
}

/** A filename as a multipart header parameter, escaped as browsers do (WHATWG: `"` CR LF percent-encoded). */
function multipartFilename(name: string): string {
  return name.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function uploadFields(options: UploadOptions): [string, string][] {
  const fields: [string, string][] = [];
  if (options.expiry !== undefined) fields.push(['expiry', String(options.expiry)]);
  if (options.uses !== undefined) fields.push(['uses', String(options.uses)]);
  if (options.password !== undefined && options.password !== '') fields.push(['password', options.password]);
  return fields;
}

/** multipart/form-data as a stream: the fields first (so the server can reject them early), then the file. */
function streamingMultipart(
  fields: [string, string][],
  filename: string,
  file: Readable,
): { boundary: string; body: Readable } {
  const boundary = `----RavenZeroBoundary${randomBytes(12).toString('hex')}`;
  async function* parts(): AsyncGenerator<Buffer> {
    for (const [name, value] of fields) {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
      );
    }
    yield Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${multipartFilename(filename)}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
    for await (const chunk of file) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { boundary, body: Readable.from(parts()) };
}

/** Uploads one file (streamed from disk or from a stream such as stdin) with `POST /upload/`. */
export async function uploadFile(options: UploadOptions): Promise<UploadResult> {
  const fields = uploadFields(options);
  const url = `${options.server}/upload/`;
  let response: Response;
  if ('path' in options.source) {
    const path = options.source.path;
    let blob: Blob;
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new Error('not a regular file');
      // File-backed: the body is read from disk while it is sent, never held in memory.
      blob = await openAsBlob(path);
    } catch (error) {
      throw new ClientError(`cannot read ${path}: ${(error as Error).message}`, EXIT_LOCAL);
    }
    const form = new FormData();
    for (const [name, value] of fields) form.append(name, value);
    form.append('file', blob, options.name ?? basename(path));
    response = await send(url, { method: 'POST', body: form }, options.server);
  } else {
    const { boundary, body } = streamingMultipart(
      fields,
      options.name ?? STDIN_FILENAME,
      options.source.stream,
    );
    response = await send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: Readable.toWeb(body) as unknown as RequestInit['body'],
        duplex: 'half',
      },
      options.server,
    );
  }
  if (response.status !== 201 && response.status !== 200) throw await failure(response);
  const { text, body } = await readJson(response);
  return { raw: text.trim(), body };
}

/** Human-readable lines for an upload result. */
export function formatUpload(body: Record<string, unknown>, now = Date.now()): string {
  const lines = [
    `key:          ${String(body.key)}`,
    `share_url:    ${String(body.share_url)}`,
    `download_url: ${String(body.download_url)}`,
  ];
  const expiry = typeof body.expiry === 'string' ? body.expiry : undefined;
  if (expiry !== undefined) {
    const minutes = Math.max(0, Math.round((Date.parse(expiry) - now) / 60_000));
    lines.push(`expires:      ${expiry} (in about ${minutes} min, ${String(body.uses)} download(s))`);
  }
  if (body.password_protected === true) lines.push('password:     required');
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// download

export interface DownloadOptions extends KeyTarget {
  /** a path, `-` for `stdout`, or undefined for the server's filename in `cwd` */
  output?: string | undefined;
  password?: string | undefined;
  force?: boolean | undefined;
  stdout: Writable;
  cwd: string;
}

export interface DownloadResult {
  /** the file written, or `-` */
  path: string;
  bytes: number;
  sha256: string;
}

/** The filename of a `Content-Disposition` value (`filename*` wins), made safe for the local disk. */
export function filenameFromDisposition(value: string | null): string | undefined {
  if (value === null) return undefined;
  const extended = /filename\*\s*=\s*([^;]+)/i.exec(value);
  let name =
    extended?.[1] !== undefined ? decodeRfc5987(extended[1].trim().replace(/^"|"$/g, '')) : undefined;
  if (name === undefined) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/i.exec(value);
    name = plain?.[1]?.replace(/\\(.)/g, '$1') ?? plain?.[2]?.trim();
  }
  if (name === undefined || name === '') return undefined;
  return sanitizeFilename(name);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function isRegularFileOrAbsent(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return true;
  }
}

/** `name (1).ext`, `name (2).ext`, … : the first name not taken in `dir`. */
async function freeName(dir: string, name: string): Promise<string> {
  const ext = extname(name);
  const stem = ext === '' || ext === name ? name : name.slice(0, -ext.length);
  for (let n = 1; n < 10_000; n += 1) {
    const candidate = join(dir, `${stem} (${n})${ext === name ? '' : ext}`);
    if (!(await exists(candidate))) return candidate;
  }
  throw new ClientError(`no free file name for ${name} in ${dir}`, EXIT_LOCAL);
}

/** Thrown inside the pipeline when the body does not match `X-SHA256`. */
class IntegrityError extends Error {}

/**
 * Downloads (consuming one use) and verifies the body against `X-SHA256` while it streams. An explicit
 * output that exists is refused before any request unless `force`; a file is written under a temporary
 * name and renamed only once verified, so a mismatch or a cut connection leaves no output behind.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const toStdout = options.output === '-';
  const explicit = options.output !== undefined && !toStdout ? join(options.cwd, options.output) : undefined;
  if (explicit !== undefined && !options.force && (await exists(explicit))) {
    throw new ClientError(`refusing to overwrite ${options.output} (use --force)`, EXIT_LOCAL);
  }
  // A directory that cannot take the file is found out before a use is consumed.
  if (!toStdout) {
    const folder = explicit === undefined ? options.cwd : dirname(explicit);
    const ok = await stat(folder).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (!ok) throw new ClientError(`no such directory: ${folder}`, EXIT_LOCAL);
  }

  const headers: Record<string, string> = {};
  if (options.password !== undefined) headers['x-password'] = passwordHeader(options.password);
  const response = await send(
    `${options.server}/download/${encodeURIComponent(options.key)}`,
    { method: 'GET', headers },
    options.server,
  );
  if (response.status !== 200) throw await failure(response);
  const expected = response.headers.get('x-sha256')?.trim().toLowerCase();
  if (response.body === null) throw new ClientError('the server sent no body', EXIT_TRANSPORT);
  const body = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
  if (expected === undefined || !/^[0-9a-f]{64}$/.test(expected)) {
    body.destroy();
    throw new ClientError(
      'the server sent no X-SHA256 header: the download cannot be verified',
      EXIT_TRANSPORT,
    );
  }

  const hash = createHash('sha256');
  let bytes = 0;
  const verify = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      const actual = hash.digest('hex');
      callback(actual === expected ? null : new IntegrityError(actual));
    },
  });

  const fail = (error: unknown): ClientError =>
    error instanceof IntegrityError
      ? new ClientError(
          `integrity check failed: X-SHA256 ${expected}, received ${error.message}`,
          EXIT_TRANSPORT,
        )
      : error instanceof ClientError
        ? error
        : typeof (error as { syscall?: unknown }).syscall === 'string'
          ? new ClientError(`cannot write the output: ${(error as Error).message}`, EXIT_LOCAL)
          : new ClientError(`download interrupted: ${(error as Error).message}`, EXIT_TRANSPORT);

  if (toStdout) {
    try {
      await pipeline(body, verify, options.stdout, { end: false });
    } catch (error) {
      throw fail(error);
    }
    return { path: '-', bytes, sha256: expected };
  }

  let target = explicit;
  if (target === undefined) {
    const name = filenameFromDisposition(response.headers.get('content-disposition')) ?? `${options.key}.bin`;
    target = join(options.cwd, name);
    // The name is known only now, after the use was consumed: never clobber, pick a free name instead.
    if (!options.force && (await exists(target))) target = await freeName(options.cwd, name);
  }

  // Special files (e.g. /dev/null with --force) are written in place; regular files via a temporary name.
  const direct = !(await isRegularFileOrAbsent(target));
  const temporary = direct
    ? target
    : join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.part`);
  try {
    await pipeline(body, verify, createWriteStream(temporary, { flags: direct ? 'w' : 'wx', mode: 0o600 }));
  } catch (error) {
    if (!direct) await rm(temporary, { force: true });
    throw fail(error);
  }
  try {
    if (!direct) {
      if (options.force || explicit !== undefined) {
        await rename(temporary, target);
      } else {
        // no-clobber move: link fails if the name was taken meanwhile
        await link(temporary, target);
        await rm(temporary, { force: true });
      }
    }
  } catch (error) {
    await rm(temporary, { force: true });
    throw new ClientError(`cannot write ${target}: ${(error as Error).message}`, EXIT_LOCAL);
  }
  return { path: target, bytes, sha256: expected };
}

// ---------------------------------------------------------------------------------------------------------
// status and delete

export interface StatusResult {
  raw: string;
  body: Record<string, unknown>;
}

/** `GET /status/{key}` — never consumes anything. */
export async function fetchStatus(target: KeyTarget): Promise<StatusResult> {
  const response = await send(
    `${target.server}/status/${encodeURIComponent(target.key)}`,
    { method: 'GET' },
    target.server,
  );
  if (response.status !== 200) throw await failure(response);
  const { text, body } = await readJson(response);
  return { raw: text.trim(), body };
}

/** Human-readable lines for a status object. */
export function formatStatus(body: Record<string, unknown>): string {
  return `${Object.entries(body)
    .map(([name, value]) => `${`${name}:`.padEnd(19)}${value === null ? '-' : String(value)}`)
    .join('\n')}\n`;
}

/** `DELETE /files/{key}` — destroys the upload now. */
export async function deleteUpload(target: KeyTarget & { password?: string | undefined }): Promise<void> {
  const headers: Record<string, string> = {};
  if (target.password !== undefined) headers['x-password'] = passwordHeader(target.password);
  const response = await send(
    `${target.server}/files/${encodeURIComponent(target.key)}`,
    { method: 'DELETE', headers },
    target.server,
  );
  if (response.status !== 204 && response.status !== 200) throw await failure(response);
  await response.body?.cancel().catch(() => undefined);
}
