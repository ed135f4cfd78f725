import { randomFill } from 'node:crypto';
import { lstat, open, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';

/** Overwrite block size; memory use is this one buffer whatever the file size. */
export const SHRED_BLOCK_BYTES = 1024 * 1024;

const randomFillAsync = promisify(randomFill);

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/**
 * Overwrites a file `passes` times with random bytes in 1 MiB blocks, fsyncs after each pass, then
 * unlinks it. passes = 0 only unlinks; a file that is already gone is not an error. A symbolic link
 * is removed without touching its target.
 */
export async function shredFile(path: string, passes: number): Promise<void> {
  if (!Number.isInteger(passes) || passes < 0) throw new RangeError('shred passes must be an integer ≥ 0');
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  if (info.isDirectory()) throw new Error(`refusing to shred a directory: ${path}`);
  if (passes > 0 && info.isFile()) {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r+');
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      const block = Buffer.alloc(Math.min(SHRED_BLOCK_BYTES, Math.max(size, 1)));
      for (let pass = 0; pass < passes; pass++) {
        for (let position = 0; position < size; position += block.length) {
          const length = Math.min(block.length, size - position);
          await randomFillAsync(block);
          let written = 0;
          while (written < length) {
            const { bytesWritten } = await handle.write(block, written, length - written, position + written);
            written += bytesWritten;
          }
        }
        await handle.sync();
      }
    } finally {
      await handle.close();
    }
  }
  await unlinkIfPresent(path);
}
