// Leftovers in TMP_DIR (spec §2.3.11, §3.11 cleanup-tmp): regular files, and the per-request upload staging
// folders `upload-<hex>` a crash leaves behind. Never touches the database.
import { lstat, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Prefix of the per-request upload staging folders in TMP_DIR. */
export const UPLOAD_WORKSPACE_PREFIX = 'upload-';

/**
 * Deletes, directly inside `dir`, regular files and `upload-*` staging folders (with their contents) whose mtime
 * is older than `maxAgeHours`; symlinks and other entries are left alone. A missing `dir` removes nothing.
 */
export async function cleanupTmpDir(
  dir: string,
  maxAgeHours: number,
  now = Date.now(),
): Promise<{ files: number; stagingFolders: number }> {
  const removed = { files: 0, stagingFolders: 0 };
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw error;
  }
  const cutoff = now - maxAgeHours * 3_600_000;
  for (const name of entries) {
    const path = join(dir, name);
    try {
      const info = await lstat(path);
      if (info.mtimeMs >= cutoff) continue;
      if (info.isFile()) {
        await unlink(path);
        removed.files++;
      } else if (info.isDirectory() && name.startsWith(UPLOAD_WORKSPACE_PREFIX)) {
        await rm(path, { recursive: true, force: true });
        removed.stagingFolders++;
      }
    } catch (error) {
      // An entry an upload finished with in the meantime is not an error.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return removed;
}
