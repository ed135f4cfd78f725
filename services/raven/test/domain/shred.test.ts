import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SHRED_BLOCK_BYTES, shredFile } from '../../src/domain/shred.js';

const scratch = mkdtempSync(join(tmpdir(), 'raven-shred-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** The FileHandle class is not exported; its prototype is reachable through any open handle. */
async function fileHandlePrototype(): Promise<object> {
  const handle = await open(join(scratch, '.probe'), 'w');
  const proto = Object.getPrototypeOf(handle) as object;
  await handle.close();
  return proto;
}

/** A file plus a hard link to it: the link keeps the inode's data readable after the shredder unlinks. */
function fileWithWitness(name: string, content: Buffer): { path: string; witness: string } {
  const path = join(scratch, name);
  const witness = join(scratch, `${name}.witness`);
  writeFileSync(path, content);
  linkSync(path, witness);
  return { path, witness };
}

describe('shredFile', () => {
  it('overwrites the data in place with random bytes, fsyncs, then unlinks', async () => {
    const original = randomBytes(2 * SHRED_BLOCK_BYTES + 12345);
    const { path, witness } = fileWithWitness('secret.rzb', original);
    const proto = await fileHandlePrototype();
    const writes = vi.spyOn(proto as { write: (...a: unknown[]) => unknown }, 'write');
    const sync = vi.spyOn(proto as { sync: () => unknown }, 'sync');

    await shredFile(path, 2);

    expect(existsSync(path)).toBe(false);
    const after = readFileSync(witness);
    expect(after).toHaveLength(original.length);
    expect(after.equals(original)).toBe(false);
    // No 4 KiB page of the original survives.
    for (let i = 0; i < original.length; i += 4096) {
      expect(after.subarray(i, i + 4096).equals(original.subarray(i, i + 4096))).toBe(false);
    }
    expect(after.equals(Buffer.alloc(original.length))).toBe(false);
    // 3 blocks per pass, 2 passes; one fsync per pass.
    expect(writes.mock.calls.length).toBeGreaterThanOrEqual(6);
    expect(sync).toHaveBeenCalledTimes(2);
    const lastSync = sync.mock.invocationCallOrder[1] ?? 0;
    expect(writes.mock.invocationCallOrder.every((n) => n < lastSync)).toBe(true);
  });

  it('writes in blocks of at most 1 MiB', async () => {
    const { path } = fileWithWitness('blocks.rzb', randomBytes(3 * SHRED_BLOCK_BYTES));
    const proto = await fileHandlePrototype();
    const writes = vi.spyOn(proto as { write: (...a: unknown[]) => unknown }, 'write');
    await shredFile(path, 1);
    expect(writes.mock.calls.length).toBe(3);
    for (const call of writes.mock.calls) expect(call[2]).toBeLessThanOrEqual(SHRED_BLOCK_BYTES);
  });

  it('passes = 0 only unlinks: no writes, data unchanged behind the hard link', async () => {
    const original = randomBytes(5000);
    const { path, witness } = fileWithWitness('plain.rzb', original);
    const proto = await fileHandlePrototype();
    const writes = vi.spyOn(proto as { write: (...a: unknown[]) => unknown }, 'write');
    await shredFile(path, 0);
    expect(existsSync(path)).toBe(false);
    expect(writes).not.toHaveBeenCalled();
    expect(readFileSync(witness).equals(original)).toBe(true);
  });

  it('a missing file is not an error', async () => {
    await expect(shredFile(join(scratch, 'never-existed.rzb'), 3)).resolves.toBeUndefined();
    await expect(shredFile(join(scratch, 'never-existed.rzb'), 0)).resolves.toBeUndefined();
  });

  it('shreds empty files', async () => {
    const path = join(scratch, 'empty.rzb');
    writeFileSync(path, '');
    await shredFile(path, 3);
    expect(existsSync(path)).toBe(false);
  });

  it('removes a symbolic link without touching its target', async () => {
    const target = join(scratch, 'target.txt');
    const link = join(scratch, 'link.rzb');
    writeFileSync(target, 'keep me');
    symlinkSync(target, link);
    await shredFile(link, 2);
    expect(existsSync(link)).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('rejects directories and invalid pass counts', async () => {
    const dir = join(scratch, 'dir.rzb');
    mkdirSync(dir);
    await expect(shredFile(dir, 1)).rejects.toThrow(/directory/);
    expect(existsSync(dir)).toBe(true);
    await expect(shredFile(join(scratch, 'x'), -1)).rejects.toThrow(RangeError);
    await expect(shredFile(join(scratch, 'x'), 1.5)).rejects.toThrow(RangeError);
  });
});
