// Folder ingest scan (spec §3.13): which files under an allowed folder are ingested. Symlinked directories are
// not followed, files whose realpath leaves the allowed root are skipped, and `.allocatorignore` files apply
// gitignore rules relative to the directory that holds them — never substrings of absolute paths.
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, resolve, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';

export type ScanKind = 'image' | 'video' | 'audio' | 'document' | 'json';

export interface ScannedFile {
  /** Absolute realpath of the file. */
  path: string;
  /** Path below the scanned folder, `/`-separated (the link's own location for a symlinked file). */
  relativePath: string;
  kind: ScanKind;
  sizeBytes: number;
}

export interface FolderScan {
  files: ScannedFile[];
  stats: { total_files: number; total_size_bytes: number; by_type: Record<ScanKind, number> };
}

export const IGNORE_FILE_NAME = '.allocatorignore';

export const SUPPORTED_FOLDER_EXTENSIONS: Readonly<Record<string, ScanKind>> = Object.freeze({
  '.jpg': 'image',
  '.jpeg': 'image',
  '.png': 'image',
  '.gif': 'image',
  '.webp': 'image',
  '.bmp': 'image',
  '.tif': 'image',
  '.tiff': 'image',
  '.mp4': 'video',
  '.mov': 'video',
  '.mkv': 'video',
  '.webm': 'video',
  '.avi': 'video',
  '.m4v': 'video',
  '.mp3': 'audio',
  '.wav': 'audio',
  '.ogg': 'audio',
  '.flac': 'audio',
  '.m4a': 'audio',
  '.aac': 'audio',
  '.pdf': 'document',
  '.docx': 'document',
  '.pptx': 'document',
  '.epub': 'document',
  '.txt': 'document',
  '.md': 'document',
  '.html': 'document',
  '.htm': 'document',
  '.json': 'json',
});

// Entries that vanish or cannot be read while the tree is walked are left out rather than failing the scan.
const SKIPPABLE_FS_ERRORS = new Set(['ENOENT', 'ENOTDIR', 'EACCES', 'EPERM', 'ELOOP']);

/** Recursive scan under `root` (already realpath'd) of `folder`: symlinked dirs not followed, files whose realpath escapes `root` skipped, `.allocatorignore` files applied with gitignore semantics relative to their directory (the `ignore` package), the ignore files themselves never listed; sorted by relativePath. */
export async function scanFolder(folder: string, root: string): Promise<FolderScan> {
  const top = await realpath(folder);
  // Case-sensitive like git on Linux; every nested file's rules are rewritten relative to `top` and appended,
  // so deeper files come later and win, as in git.
  const rules = ignore({ ignorecase: false });
  const files: ScannedFile[] = [];
  await walkDirectory(top, '', { root, rules, files }, true);
  files.sort((a, b) => (a.relativePath < b.relativePath ? -1 : a.relativePath > b.relativePath ? 1 : 0));
  const byType: Record<ScanKind, number> = { image: 0, video: 0, audio: 0, document: 0, json: 0 };
  let totalSize = 0;
  for (const file of files) {
    byType[file.kind] += 1;
    totalSize += file.sizeBytes;
  }
  return { files, stats: { total_files: files.length, total_size_bytes: totalSize, by_type: byType } };
}

interface WalkContext {
  root: string;
  rules: Ignore;
  files: ScannedFile[];
}

async function walkDirectory(directory: string, relative: string, context: WalkContext, isTop: boolean) {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if (!isTop && isSkippable(error)) return;
    throw error;
  }

  const ignoreFile = entries.find((entry) => entry.name === IGNORE_FILE_NAME && entry.isFile());
  if (ignoreFile) {
    const text = await readFile(join(directory, IGNORE_FILE_NAME), 'utf8').catch((error: unknown) => {
      if (isSkippable(error)) return '';
      throw error;
    });
    context.rules.add(relative === '' ? text : rewriteRules(text, relative));
  }

  const candidates: Promise<ScannedFile | null>[] = [];
  const subdirectories: string[] = [];
  for (const entry of entries) {
    if (entry.name === IGNORE_FILE_NAME) continue;
    const entryRelative = relative === '' ? entry.name : `${relative}/${entry.name}`;
    const entryPath = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (!context.rules.ignores(`${entryRelative}/`)) subdirectories.push(entry.name);
    } else if (entry.isFile() || entry.isSymbolicLink()) {
      const kind = SUPPORTED_FOLDER_EXTENSIONS[extname(entry.name).toLowerCase()];
      if (kind === undefined || context.rules.ignores(entryRelative)) continue;
      candidates.push(inspectFile(entryPath, entryRelative, kind, context.root));
    }
  }
  for (const file of await Promise.all(candidates)) {
    if (file) context.files.push(file);
  }
  for (const name of subdirectories) {
    await walkDirectory(
      join(directory, name),
      relative === '' ? name : `${relative}/${name}`,
      context,
      false,
    );
  }
}

/** The file as scanned, or null when it is a symlinked directory, dangling, or resolves outside `root`. */
async function inspectFile(path: string, relativePath: string, kind: ScanKind, root: string) {
  try {
    const real = await realpath(path);
    if (!isWithin(real, root)) return null;
    const info = await stat(real);
    if (!info.isFile()) return null;
    return { path: real, relativePath, kind, sizeBytes: info.size } satisfies ScannedFile;
  } catch (error) {
    if (isSkippable(error)) return null;
    throw error;
  }
}

/**
 * Rewrites the rules of `<directory>/.allocatorignore` so they can live in one matcher rooted at the scanned
 * folder: a pattern with a slash before its end is anchored to `directory`, any other pattern is prefixed
 * with `directory` and a `**` segment so it matches at any depth below it, exactly as git reads a nested
 * .gitignore.
 */
function rewriteRules(text: string, directory: string): string[] {
  const prefix = escapeGlob(directory);
  const rewritten: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    if (rawLine.startsWith('#') || rawLine.trim() === '') continue;
    const negated = rawLine.startsWith('!');
    const pattern = negated ? rawLine.slice(1) : rawLine;
    const withoutDirectorySlash = pattern.trimEnd().replace(/\/$/, '');
    const anchored = withoutDirectorySlash.includes('/');
    const body = anchored ? pattern.replace(/^\/+/, '') : pattern;
    if (body.trim() === '' || body.trim() === '/') continue;
    rewritten.push(`${negated ? '!' : ''}${prefix}/${anchored ? '' : '**/'}${body}`);
  }
  return rewritten;
}

/** A literal path as a gitignore pattern: glob characters escaped, and a leading `#`/`!` that would change the line's meaning. */
function escapeGlob(path: string): string {
  return path.replace(/[\\*?[\]]/g, '\\$&').replace(/^[#!]/, '\\$&');
}

/** Resolves a requested folder against INGEST_ALLOWED_ROOT: realpath; errors 'outside' | 'missing' | 'not_directory'. */
export async function resolveIngestFolder(
  requested: string,
  allowedRoot: string,
): Promise<
  { ok: true; folder: string; root: string } | { ok: false; problem: 'outside' | 'missing' | 'not_directory' }
> {
  const root = await realpathOrNull(resolve(allowedRoot));
  if (root === null) {
    // Nothing can exist below a root that does not exist; still say 'outside' for paths outside it.
    return {
      ok: false,
      problem: isWithin(resolve(allowedRoot, requested), resolve(allowedRoot)) ? 'missing' : 'outside',
    };
  }
  if (requested.includes('\0')) return { ok: false, problem: 'missing' };
  // Relative paths are taken relative to the allowed root, never to the server's working directory.
  const candidate = isAbsolute(requested) ? resolve(requested) : resolve(root, requested);
  const folder = await realpathOrNull(candidate);
  if (folder === null) {
    // A missing path is only reported as missing when where it would be is inside the root, so probing
    // cannot reveal what exists elsewhere (symlinked ancestors included).
    const wouldBe = await realpathOfNearestAncestor(candidate);
    return { ok: false, problem: isWithin(wouldBe, root) ? 'missing' : 'outside' };
  }
  if (!isWithin(folder, root)) return { ok: false, problem: 'outside' };
  const info = await stat(folder).catch(() => null);
  if (info === null) return { ok: false, problem: 'missing' };
  if (!info.isDirectory()) return { ok: false, problem: 'not_directory' };
  return { ok: true, folder, root };
}

/** `path` with its longest existing ancestor replaced by that ancestor's realpath. */
async function realpathOfNearestAncestor(path: string): Promise<string> {
  const tail: string[] = [];
  let current = path;
  for (;;) {
    const real = await realpathOrNull(current);
    if (real !== null) return join(real, ...tail.reverse());
    const parent = resolve(current, '..');
    if (parent === current) return path;
    tail.push(current.slice(parent.length).replace(/^[/\\]+/, ''));
    current = parent;
  }
}

async function realpathOrNull(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

function isWithin(path: string, root: string): boolean {
  if (path === root) return true;
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function isSkippable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && SKIPPABLE_FS_ERRORS.has(code);
}
