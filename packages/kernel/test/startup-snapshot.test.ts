import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStartupSnapshot, usableStartupSnapshot } from '../src/startup-snapshot.js';
import { WorkerPool } from '../src/workers.js';

const kernelDist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const scratch = mkdtempSync(join(tmpdir(), 'kernel-snapshot-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const entry = join(scratch, 'entry.mjs');
const helper = join(scratch, 'greeting.mjs');
const blob = join(scratch, 'worker.blob');

beforeAll(async () => {
  // The builder's environment reaches the entry (e.g. a warm-up job's material); its result is in the heap.
  writeFileSync(helper, "export const greet = (name) => 'hello ' + name;\n");
  writeFileSync(
    entry,
    [
      "import { startupSnapshot } from 'node:v8';",
      `import { serveJobs } from ${JSON.stringify(join(kernelDist, 'worker-child.js'))};`,
      "import { greet } from './greeting.mjs';",
      'const warmed = greet(process.env.WARM_WITH);',
      'startupSnapshot.setDeserializeMainFunction(() => {',
      '  serveJobs(async (payload) => ({ text: greet(payload.name), warmed, argv: process.argv.slice(1) }));',
      '});',
      '',
    ].join('\n'),
  );
  await buildStartupSnapshot({ entry, blob, env: { WARM_WITH: 'build time' } });
}, 60_000);

describe('startup snapshots', () => {
  it('builds a blob whose processes serve WorkerPool jobs with the heap of the build', async () => {
    expect(usableStartupSnapshot(blob)).toBe(blob);
    const stamp = JSON.parse(readFileSync(`${blob}.json`, 'utf8'));
    expect(stamp).toMatchObject({ node: process.version, arch: process.arch, platform: process.platform });
    // Every bundled file: the entry, its helper, and the kernel's worker-child with what it imports.
    const inputs = Object.keys(stamp.inputs);
    expect(inputs).toEqual(expect.arrayContaining(['entry.mjs', 'greeting.mjs']));
    const kernelFiles = inputs.filter((path) => !['entry.mjs', 'greeting.mjs'].includes(path));
    expect(kernelFiles.some((path) => path.endsWith('/worker-child.js'))).toBe(true);
    for (const path of kernelFiles) expect(join(scratch, path).startsWith(`${kernelDist}/`)).toBe(true);
    const pool = new WorkerPool({
      script: entry,
      execArgv: ['--snapshot-blob', blob],
      mode: 'spawn',
      slots: 1,
    });
    try {
      await pool.start();
      const { result } = await pool.run<{ text: string; warmed: string; argv: string[] }>(
        { name: 'job' },
        { timeoutMs: 10_000 },
      );
      expect(result).toEqual({ text: 'hello job', warmed: 'hello build time', argv: [entry] });
    } finally {
      await pool.close({ graceMs: 0 });
    }
    // Neither the bundle nor a partial blob is left beside it.
    expect(() => readFileSync(`${blob}.cjs`)).toThrow();
    expect(() => readFileSync(`${blob}.partial`)).toThrow();
  });

  it('refuses a blob whose sources changed or that another Node binary built', () => {
    const original = readFileSync(helper, 'utf8');
    const stampPath = `${blob}.json`;
    const stamp = readFileSync(stampPath, 'utf8');
    try {
      writeFileSync(helper, original.replace('hello', 'hi'));
      expect(usableStartupSnapshot(blob)).toBeNull();
      writeFileSync(helper, original);
      expect(usableStartupSnapshot(blob)).toBe(blob);
      writeFileSync(stampPath, stamp.replace(process.version, 'v0.0.1'));
      expect(usableStartupSnapshot(blob)).toBeNull();
    } finally {
      writeFileSync(helper, original);
      writeFileSync(stampPath, stamp);
    }
    expect(usableStartupSnapshot(join(scratch, 'missing.blob'))).toBeNull();
  });

  it('reports a failing build and leaves no blob behind', async () => {
    const broken = join(scratch, 'broken.mjs');
    writeFileSync(broken, "throw new Error('cannot build this one');\n");
    const target = join(scratch, 'broken.blob');
    await expect(buildStartupSnapshot({ entry: broken, blob: target })).rejects.toThrow(
      /cannot build this one/,
    );
    expect(usableStartupSnapshot(target)).toBeNull();
    expect(() => readFileSync(target)).toThrow();
    expect(() => readFileSync(`${target}.partial`)).toThrow();
  });
});
