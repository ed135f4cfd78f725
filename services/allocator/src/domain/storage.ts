// File storage under STORAGE_PATH (spec §3.19): `fs://<relative path>` URIs that never leave the root, atomic
// writes (temp name in the same directory, fsync, rename), moves that also work across devices, and removal of
// the empty directories that moves and deletes leave behind. Disk-full errors surface as
// InsufficientStorageError so callers can answer 503 / retry (spec §7).
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  mkdir,
  open,
  rename,
  rm,
  rmdir,
  stat,
  statfs,
  unlink,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';

/** A URI or path that is invalid or would resolve outside the storage root. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
}

/** The disk (or quota) is full while writing or moving a file. */
export class InsufficientStorageError extends Error {
  override readonly name = 'InsufficientStorageError';
  constructor(options?: { cause?: unknown }) {
    super('insufficient storage', options);
  }
}

/** The file-system steps FileStorage delegates, replaceable to simulate device boundaries and full disks. */
export interface StorageFileOps {
  /** Moves a file from another directory into place (fails with EXDEV across devices). */
  rename(from: string, to: string): Promise<void>;
  /** Copies a file's bytes (the cross-device move path). */
  copyFile(from: string, to: string): Promise<void>;
  /** Writes all of `data` to an open file. */
  write(handle: FileHandle, data: Buffer): Promise<void>;
}

const NATIVE_OPS: StorageFileOps = {
  rename: (from, to) => rename(from, to),
  copyFile: (from, to) => copyFile(from, to, constants.COPYFILE_EXCL),
  write: async (handle, data) => {
    await handle.writeFile(data);
  },
};

const URI_SCHEME = 'fs://';
/** Longest path segment built from an id; file systems allow 255 bytes, temp names need a little more room. */
const MAX_SEGMENT_BYTES = 200;
const SAFE_NAME_MAX_BYTES = 200;
const OPEN_RETRIES = 3;

/** Replaces lone UTF-16 surrogates with U+FFFD, as UTF-8 encoding would. */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** ENOSPC/EDQUOT become InsufficientStorageError; other errors pass through unchanged. */
function storageFailure(error: unknown): unknown {
  const code = errorCode(error);
  return code === 'ENOSPC' || code === 'EDQUOT' ? new InsufficientStorageError({ cause: error }) : error;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

/** Makes a rename durable; some file systems cannot fsync a directory, which is not worth failing for. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function tempName(): string {
  return `.${randomBytes(8).toString('hex')}.tmp`;
}

/** Checks a relative storage path (forward slashes, no empty, `.` or `..` segments, not absolute). */
function checkRelativePath(relativePath: string): void {
  if (relativePath === '' || relativePath.startsWith('/')) {
    throw new StorageError(`Invalid storage path: ${JSON.stringify(relativePath)}`);
  }
  if (relativePath.includes('\\') || relativePath.includes('\0')) {
    throw new StorageError(`Invalid storage path: ${JSON.stringify(relativePath)}`);
  }
  const segments = relativePath.split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new StorageError(`Invalid storage path: ${JSON.stringify(relativePath)}`);
  }
}

/**
 * An id as one path segment: characters outside `[A-Za-z0-9._:-]` are percent-encoded and all-dot values
 * escaped, so ids chosen by clients (request ids, idempotency keys) can neither add nor climb directories.
 */
function idSegment(value: string): string {
  if (value === '') throw new StorageError('Empty path segment');
  let encoded = '';
  for (const character of wellFormed(value)) {
    encoded += /^[A-Za-z0-9._:-]$/.test(character)
      ? character
      : Array.from(
          Buffer.from(character, 'utf8'),
          (byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
        ).join('');
  }
  if (/^\.+$/.test(encoded)) encoded = encoded.replaceAll('.', '%2E');
  if (encoded.length > MAX_SEGMENT_BYTES) {
    const digest = createHash('sha256').update(value).digest('hex').slice(0, 16);
    encoded = `${encoded.slice(0, MAX_SEGMENT_BYTES - 17)}-${digest}`;
  }
  return encoded;
}

function checkExtension(ext: string): string {
  if (!/^(\.[A-Za-z0-9]{1,16})?$/.test(ext))
    throw new StorageError(`Invalid file extension: ${JSON.stringify(ext)}`);
  return ext;
}

/** fs:// storage under one root. URIs are `fs://<relative path>`; a URI never contains `..`; every resolved path is checked to be inside the root. */
export class FileStorage {
  readonly root: string;
  private readonly ops: StorageFileOps;

  constructor(root: string, ops: Partial<StorageFileOps> = {}) {
    this.root = resolve(root);
    this.ops = { ...NATIVE_OPS, ...ops };
  }

  /** Creates the root directory when missing. */
  async ensureRoot(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  /** 'fs://' + the relative path with forward slashes; throws StorageError for paths that could escape. */
  uriFor(relativePath: string): string {
    const normalised = sep === '\\' ? relativePath.replaceAll('\\', '/') : relativePath;
    checkRelativePath(normalised);
    return URI_SCHEME + normalised;
  }

  /** The absolute path of a URI; throws StorageError if it is malformed or outside the root. */
  resolve(uri: string): string {
    if (!uri.startsWith(URI_SCHEME)) throw new StorageError(`Not a storage URI: ${JSON.stringify(uri)}`);
    return this.absolute(uri.slice(URI_SCHEME.length));
  }

  /** incoming/{request_id}/{part_id}/{safe_name} */
  incomingPath(requestId: string, partId: string, safeName: string): string {
    if (safeName !== safeFileName(safeName, 0))
      throw new StorageError(`Unsafe file name: ${JSON.stringify(safeName)}`);
    return `incoming/${idSegment(requestId)}/${idSegment(partId)}/${safeName}`;
  }

  /** media/clusters/{cluster_id}/{asset_id}{ext} */
  mediaPath(clusterId: string, assetId: string, ext: string): string {
    return `media/clusters/${idSegment(clusterId)}/${idSegment(assetId)}${checkExtension(ext)}`;
  }

  /** media/derived/{cluster_id}/{asset_id}/thumb.jpg */
  thumbnailPath(clusterId: string, assetId: string): string {
    return `media/derived/${idSegment(clusterId)}/${idSegment(assetId)}/thumb.jpg`;
  }

  /** documents/{asset_id}/{asset_id}{ext} */
  documentPath(assetId: string, ext: string): string {
    const segment = idSegment(assetId);
    return `documents/${segment}/${segment}${checkExtension(ext)}`;
  }

  /** Writes bytes atomically: temp name in the same directory, fsync, rename; returns the URI. */
  async writeFile(relativePath: string, data: Buffer): Promise<string> {
    const target = this.absolute(relativePath);
    const dir = dirname(target);
    for (let attempt = 1; ; attempt++) {
      const temp = join(dir, tempName());
      let handle: FileHandle;
      try {
        await mkdir(dir, { recursive: true });
        handle = await open(temp, 'wx');
      } catch (error) {
        // A concurrent cleanup may remove the freshly created directory; create it again.
        if (errorCode(error) === 'ENOENT' && attempt < OPEN_RETRIES) continue;
        throw storageFailure(error);
      }
      try {
        try {
          await this.ops.write(handle, data);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        await this.removeEmptyDirectories(dir).catch(() => undefined);
        throw storageFailure(error);
      }
      await syncDirectory(dir);
      return this.uriFor(relativePath);
    }
  }

  /** Moves a file (rename; across devices copy+fsync+delete); idempotent: if the source is gone and the target exists, it is done. Removes emptied source directories up to the root. */
  async moveFile(fromAbsolute: string, toRelative: string): Promise<string> {
    const source = resolve(fromAbsolute);
    const target = this.absolute(toRelative);
    const uri = this.uriFor(toRelative);
    if (source === target) return uri;
    // A retried job may find its earlier attempt already finished the move.
    if (!(await exists(source)) && (await exists(target))) {
      if (this.isInside(source)) await this.removeEmptyDirectories(dirname(source));
      return uri;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dirname(target), { recursive: true });
        await this.ops.rename(source, target);
        break;
      } catch (error) {
        const code = errorCode(error);
        if (code === 'EXDEV') {
          await this.copyAcrossDevices(source, target);
          break;
        }
        if (code === 'ENOENT') {
          // Either an earlier attempt already moved the file, or the target directory vanished meanwhile.
          const sourceGone = !(await exists(source));
          if (sourceGone && (await exists(target))) break;
          if (!sourceGone && attempt < OPEN_RETRIES) continue;
        }
        await this.removeEmptyDirectories(dirname(target)).catch(() => undefined);
        throw storageFailure(error);
      }
    }
    await syncDirectory(dirname(target));
    if (this.isInside(source)) await this.removeEmptyDirectories(dirname(source));
    return uri;
  }

  /** Deletes a URI's file (missing is fine) and removes emptied parent directories up to the root. */
  async removeUri(uri: string): Promise<void> {
    const path = this.resolve(uri);
    try {
      await unlink(path);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    await this.removeEmptyDirectories(dirname(path));
  }

  /** Deletes a directory below the root with everything in it, then its emptied parents. */
  async removeTree(relativeDir: string): Promise<void> {
    const path = this.absolute(relativeDir);
    await rm(path, { recursive: true, force: true });
    await this.removeEmptyDirectories(dirname(path));
  }

  /** True when a probe file can be created and deleted in the root. */
  async isWritable(): Promise<boolean> {
    const probe = join(this.root, `.write-probe-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(this.root, { recursive: true });
      const handle = await open(probe, 'wx');
      try {
        await this.ops.write(handle, Buffer.from('probe'));
      } finally {
        await handle.close();
      }
      await unlink(probe);
      return true;
    } catch {
      await rm(probe, { force: true }).catch(() => undefined);
      return false;
    }
  }

  /** Free (available to this process) and total bytes of the file system holding the root. */
  async freeSpace(): Promise<{ freeBytes: number; totalBytes: number }> {
    const info = await statfs(this.root);
    return { freeBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize };
  }

  /** Copies into a temp file next to the target, fsyncs, renames it into place, then deletes the source. */
  private async copyAcrossDevices(source: string, target: string): Promise<void> {
    const temp = join(dirname(target), tempName());
    try {
      await this.ops.copyFile(source, temp);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      await this.removeEmptyDirectories(dirname(target)).catch(() => undefined);
      throw storageFailure(error);
    }
    await rm(source, { force: true });
  }

  private absolute(relativePath: string): string {
    checkRelativePath(relativePath);
    const path = resolve(this.root, relativePath);
    if (!this.isInside(path))
      throw new StorageError(`Storage path outside the root: ${JSON.stringify(relativePath)}`);
    return path;
  }

  /** True for paths strictly below the root. */
  private isInside(path: string): boolean {
    const prefix = this.root.endsWith(sep) ? this.root : this.root + sep;
    return path.startsWith(prefix) && path.length > prefix.length;
  }

  /** Removes `dir` and its parents while they are empty, stopping below the root. */
  private async removeEmptyDirectories(dir: string): Promise<void> {
    for (let current = dir; this.isInside(current); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch (error) {
        // Already gone (a concurrent cleanup): keep climbing; not empty or anything else: stop.
        if (errorCode(error) !== 'ENOENT') return;
      }
    }
  }
}

function truncateUtf8(text: string, maxBytes: number): string {
  let bytes = 0;
  let result = '';
  for (const character of text) {
    bytes += Buffer.byteLength(character, 'utf8');
    if (bytes > maxBytes) break;
    result += character;
  }
  return result;
}

/** §3.4 safe_name: basename, separators/control chars/leading dots removed, ≤ 200 UTF-8 bytes (never cutting a character); empty → file_{index}. */
export function safeFileName(filename: string | undefined, index: number): string {
  const base =
    wellFormed(filename ?? '')
      .split(/[\\/]/)
      .pop() ?? '';
  const cleaned = base.replace(/\p{Cc}/gu, '').replace(/^\.+/, '');
  const truncated = truncateUtf8(cleaned, SAFE_NAME_MAX_BYTES);
  return truncated === '' ? `file_${index}` : truncated;
}
