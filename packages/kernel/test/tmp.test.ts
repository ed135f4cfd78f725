import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tmpWatermark, WorkspaceRegistry } from '../src/tmp.js';

let scratch: string;
beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'kernel-tmp-'));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function age(path: string, ms: number): Promise<void> {
  const when = new Date(Date.now() - ms);
  await utimes(path, when, when);
}

describe('WorkspaceRegistry', () => {
  it('creates the root and a registered workspace, and removes it', async () => {
    const root = join(scratch, 'nested', 'root');
    const registry = new WorkspaceRegistry({ root, prefix: 'job-' });
    expect(existsSync(root)).toBe(true);

    const path = await registry.create('abc123');
    expect(path).toBe(join(root, 'job-abc123'));
    expect(existsSync(path)).toBe(true);
    expect(registry.inFlight()).toEqual([path]);
    await writeFile(join(path, 'upload.bin'), 'data');

    await registry.remove(path);
    expect(existsSync(path)).toBe(false);
    expect(registry.inFlight()).toEqual([]);
    await expect(registry.remove(path)).resolves.toBeUndefined();
  });

  it('refuses ids that are not plain names and paths outside the registry', async () => {
    const registry = new WorkspaceRegistry({ root: scratch, prefix: 'job-' });
    await expect(registry.create('../escape')).rejects.toThrow('invalid workspace id');
    await expect(registry.create('a/b')).rejects.toThrow('invalid workspace id');
    await expect(registry.remove(join(scratch, 'other'))).rejects.toThrow('not a workspace');
    await expect(registry.remove(tmpdir())).rejects.toThrow('not a workspace');
  });

  it('removes every workspace in flight on removeAll', async () => {
    const registry = new WorkspaceRegistry({ root: scratch, prefix: 'job-' });
    const paths = await Promise.all(['1', '2', '3'].map((id) => registry.create(id)));
    await registry.removeAll();
    expect(paths.some((p) => existsSync(p))).toBe(false);
    expect(registry.inFlight()).toEqual([]);
  });

  it('sweeps old leftovers only: in-flight, young and foreign entries stay', async () => {
    const registry = new WorkspaceRegistry({ root: scratch, prefix: 'job-' });
    const inFlight = await registry.create('live');
    await age(inFlight, 3_600_000);

    const old = join(scratch, 'job-crashed');
    await mkdir(join(old, 'deep'), { recursive: true });
    await writeFile(join(old, 'deep', 'f'), 'x');
    await age(old, 3_600_000);
    const young = join(scratch, 'job-other-process');
    await mkdir(young);
    const foreign = join(scratch, 'keep-me');
    await mkdir(foreign);
    await age(foreign, 3_600_000);
    const file = join(scratch, 'job-file');
    await writeFile(file, 'not a directory');
    await age(file, 3_600_000);

    const removed = await registry.sweep({ olderThanMs: 60_000 });
    expect(removed).toEqual([old]);
    expect((await readdir(scratch)).sort()).toEqual(['job-file', 'job-live', 'job-other-process', 'keep-me']);
  });

  it('runs the sweeper at once and stops it', async () => {
    const registry = new WorkspaceRegistry({ root: scratch, prefix: 'job-' });
    const old = join(scratch, 'job-left');
    await mkdir(old);
    await age(old, 3_600_000);
    const swept: string[][] = [];
    const stop = registry.startSweeper({
      intervalMs: 60_000,
      olderThanMs: 1000,
      onSweep: (r) => swept.push(r),
    });
    await expect.poll(() => swept).toEqual([[old]]);
    stop();
    expect(existsSync(old)).toBe(false);
  });
});

describe('tmpWatermark', () => {
  it('counts regular files recursively and lists the largest direct children', async () => {
    const root = join(scratch, 'tree');
    await mkdir(join(root, 'big', 'inner', 'deeper'), { recursive: true });
    await mkdir(join(root, 'empty'));
    await mkdir(join(root, 'same-a'));
    await writeFile(join(root, 'big', 'a.bin'), Buffer.alloc(1000));
    await writeFile(join(root, 'big', 'inner', 'b.bin'), Buffer.alloc(500));
    await writeFile(join(root, 'big', 'inner', 'deeper', 'c.bin'), Buffer.alloc(250));
    await writeFile(join(root, 'top.txt'), Buffer.alloc(700));
    await writeFile(join(root, 'same-a', 'x'), Buffer.alloc(100));
    await writeFile(join(root, 'same-b'), Buffer.alloc(100));
    await writeFile(join(root, 'zero'), '');
    // Symlinks are neither followed nor counted, even when they point at large content elsewhere.
    const outside = join(scratch, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'huge'), Buffer.alloc(5000));
    await symlink(outside, join(root, 'link-dir'));
    await symlink(join(outside, 'huge'), join(root, 'link-file'));

    const report = await tmpWatermark(root, 4);
    expect(report).toEqual({
      root,
      count: 7,
      bytes: 2650,
      top_n: [
        { path: `${root}/big`, type: 'dir', bytes: 1750 },
        { path: `${root}/top.txt`, type: 'file', bytes: 700 },
        { path: `${root}/same-a`, type: 'dir', bytes: 100 },
        { path: `${root}/same-b`, type: 'file', bytes: 100 },
      ],
      warnings: [],
    });

    const all = await tmpWatermark(root, 10);
    expect(all.top_n.map((e) => e.path.slice(root.length + 1))).toEqual([
      'big',
      'top.txt',
      'same-a',
      'same-b',
      'empty',
      'zero',
    ]);
    expect((await tmpWatermark(root, 0)).top_n).toEqual([]);
  });

  it('keeps the root as given in paths', async () => {
    await writeFile(join(scratch, 'f'), 'abc');
    const report = await tmpWatermark(`${scratch}/`, 10);
    expect(report.root).toBe(`${scratch}/`);
    expect(report.top_n).toEqual([{ path: `${scratch}/f`, type: 'file', bytes: 3 }]);
  });

  it('warns about a missing root instead of throwing', async () => {
    const missing = join(scratch, 'nope');
    await expect(tmpWatermark(missing, 10)).resolves.toEqual({
      root: missing,
      count: 0,
      bytes: 0,
      top_n: [],
      warnings: [`root_not_found:${missing}`],
    });
  });
});
