// Data-directory templates for the embedded database. The kernel's base template (scripts/
// build-pglite-template.mjs) spares a new database initdb; a *migrated* template — a service's whole schema
// already applied, built when the service is built — spares it starting PGlite at all: a new data directory is
// the archive unpacked, which takes a tenth of a second where creating and migrating take seconds. A migrated
// template is named by a fingerprint of everything that decides its contents (PGlite's version, pgvector, each
// migration's name and SQL), so a service never unpacks a schema other than the one it would have migrated to.
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import { createGunzip, gzipSync } from 'node:zlib';
import { parseTarHeader, TAR_BLOCK, tarDataBlocks } from './pglite-engine.js';

/** Bumped whenever what a migrated template holds, or how it is named, changes. */
const TEMPLATE_FORMAT = 1;
const TEMPLATE_FILE = /^pglite-schema-[0-9a-f]{16}\.tar\.gz$/;

export interface TemplateMigrationSet {
  namespace: string;
  migrations: readonly { name: string; sql: string }[];
}

/** `pglite-schema-<fingerprint>.tar.gz`: the migrated template for these migrations (and pgvector or not). */
export function migratedTemplateName(vector: boolean, namespaces: readonly TemplateMigrationSet[]): string {
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        format: TEMPLATE_FORMAT,
        pglite: pgliteVersion(),
        vector,
        namespaces: namespaces.map(({ namespace, migrations }) => ({
          namespace,
          migrations: migrations.map(({ name, sql }) => ({ name, sql })),
        })),
      }),
    )
    .digest('hex');
  return `pglite-schema-${fingerprint.slice(0, 16)}.tar.gz`;
}

/** The installed PGlite's package.json (its `exports` do not expose it: walk up from the entry point). */
export function pglitePackageJsonPath(): string {
  let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json of @electric-sql/pglite not found');
    dir = parent;
  }
  return join(dir, 'package.json');
}

let cachedPgliteVersion: string | undefined;

/** The installed PGlite's version: its data directories are only known to load in the same version. */
function pgliteVersion(): string {
  cachedPgliteVersion ??= (JSON.parse(readFileSync(pglitePackageJsonPath(), 'utf8')) as { version: string })
    .version;
  return cachedPgliteVersion;
}

/** Older migrated templates in `dir` (another schema or PGlite version): the build removes them. */
export function staleMigratedTemplates(dir: string, current: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => TEMPLATE_FILE.test(name) && name !== current)
    .map((name) => join(dir, name));
}

/** Writes `data` to `path` through a temporary file renamed into place: a reader never sees half of it. */
export function writeFileAtomically(path: string, data: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const partial = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, data);
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
}

// ---- tar (ustar: regular files and directories, which is all a data directory holds) ----

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, mode: number, size: number, type: '0' | '5'): Buffer {
  const block = Buffer.alloc(TAR_BLOCK);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    // ustar keeps up to 155 bytes of directories apart from the last 100 of the name.
    const cut = name.lastIndexOf('/', name.length - 1);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(base) > 100 || Buffer.byteLength(prefix) > 155)
      throw new Error(`path too long for a tar header: ${name}`);
  }
  block.write(base, 0, 100, 'utf8');
  block.write(octal(mode & 0o7777, 8), 100, 8, 'ascii');
  block.write(octal(0, 8), 108, 8, 'ascii');
  block.write(octal(0, 8), 116, 8, 'ascii');
  block.write(octal(size, 12), 124, 12, 'ascii');
  block.write(octal(0, 12), 136, 12, 'ascii');
  block.write(' '.repeat(8), 148, 8, 'ascii');
  block.write(type, 156, 1, 'ascii');
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/**
 * The tree under `dir` as a tar archive (paths relative to `dir`, in name order, so the same tree gives the same
 * bytes), leaving out the names in `exclude` at its top.
 */
export function tarDirectory(dir: string, exclude: readonly string[] = []): Buffer {
  const blocks: Buffer[] = [];
  const walk = (relative: string) => {
    const names = readdirSync(relative === '' ? dir : join(dir, relative)).sort();
    for (const name of names) {
      if (relative === '' && exclude.includes(name)) continue;
      const path = relative === '' ? name : `${relative}/${name}`;
      const stat = lstatSync(join(dir, path));
      if (stat.isDirectory()) {
        blocks.push(header(`${path}/`, stat.mode, 0, '5'));
        walk(path);
      } else if (stat.isFile()) {
        const data = readFileSync(join(dir, path));
        blocks.push(header(path, stat.mode, data.length, '0'), data);
        const padding = (TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK;
        if (padding > 0) blocks.push(Buffer.alloc(padding));
      } else throw new Error(`not a file or directory: ${join(dir, path)}`);
    }
  };
  walk('');
  blocks.push(Buffer.alloc(2 * TAR_BLOCK));
  return Buffer.concat(blocks);
}

/**
 * Unpacks the gzipped data-directory archive at `path` into `dir` as it is read (a few blocks in memory at a
 * time: the serving process must not keep tens of MB for it). Throws — leaving whatever was written, for the
 * caller to remove — on a damaged archive (gzip's checksum, parseTarHeader's checks), one cut short or without
 * PG_VERSION.
 */
export async function extractDataDirArchive(path: string, dir: string): Promise<void> {
  const root = resolve(dir);
  const target = (relative: string): string => {
    const full = join(root, ...relative.split('/'));
    if (!full.startsWith(root + sep)) throw new Error(`unsafe path in the archive: ${relative}`);
    return full;
  };
  /** the file being written: its descriptor, bytes still to come, then the padding to its block boundary */
  let file: { fd: number; left: number; padding: number } | null = null;
  let skip = 0;
  let pending: Buffer = Buffer.alloc(0);
  /** archive offset of pending[0] */
  let offset = 0;
  let ended = false;
  let hasVersion = false;
  try {
    for await (const chunk of createReadStream(path).pipe(createGunzip({ chunkSize: 64 * 1024 }))) {
      pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
      let at = 0;
      while (!ended) {
        if (file !== null) {
          const take = Math.min(file.left, pending.length - at);
          if (take > 0) writeSync(file.fd, pending, at, take);
          at += take;
          file.left -= take;
          if (file.left > 0) break;
          closeSync(file.fd);
          skip = file.padding;
          file = null;
        }
        const skipped = Math.min(skip, pending.length - at);
        at += skipped;
        skip -= skipped;
        if (skip > 0 || pending.length - at < TAR_BLOCK) break;
        const header = parseTarHeader(pending.subarray(at, at + TAR_BLOCK), offset + at);
        at += TAR_BLOCK;
        if (header === null) {
          ended = true;
          break;
        }
        if (header.path === 'PG_VERSION') hasVersion = true;
        if (header.type === 'directory') {
          if (header.path !== '')
            mkdirSync(target(header.path), { recursive: true, mode: header.mode & 0o777 || 0o700 });
          continue;
        }
        const full = target(header.path);
        mkdirSync(dirname(full), { recursive: true, mode: 0o700 });
        file = {
          fd: openSync(full, 'w', header.mode & 0o777 || 0o600),
          left: header.size,
          padding: tarDataBlocks(header.size) - header.size,
        };
      }
      offset += at;
      pending = pending.subarray(at);
    }
  } finally {
    if (file !== null) closeSync(file.fd);
  }
  if (!ended) throw new Error('the archive is cut short');
  if (!hasVersion) throw new Error('the archive holds no PG_VERSION');
}

export function gzipTemplate(tar: Uint8Array): Buffer {
  return gzipSync(tar, { level: 9 });
}
