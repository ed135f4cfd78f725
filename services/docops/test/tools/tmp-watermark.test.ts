// `docops tmp-watermark` through the compiled bin (run `tsc -b` first).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));
const DIST_COMMAND = fileURLToPath(new URL('../../dist/cli/tmp-watermark.js', import.meta.url));

function docops(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
}

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'docops-watermark-'));
  // 3 regular files, 510 bytes: a.txt (10) at the top, big/ holding 300 + 200 bytes, small/ empty;
  // a symlink is not a regular file and is not counted.
  await writeFile(join(root, 'a.txt'), 'x'.repeat(10));
  await mkdir(join(root, 'big', 'nested'), { recursive: true });
  await writeFile(join(root, 'big', 'x.bin'), Buffer.alloc(300));
  await writeFile(join(root, 'big', 'nested', 'y.bin'), Buffer.alloc(200));
  await mkdir(join(root, 'small'));
  await symlink(join(root, 'a.txt'), join(root, 'link-to-a'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.skipIf(!existsSync(DIST_COMMAND))('docops tmp-watermark', () => {
  it('reports exact count, bytes and the largest children as JSON', () => {
    const result = docops('tmp-watermark', '--root', root, '--json');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(Object.keys(report)).toEqual(['root', 'count', 'bytes', 'top_n', 'warnings']);
    expect(report).toEqual({
      root,
      count: 3,
      bytes: 510,
      top_n: [
        { path: `${root}/big`, type: 'dir', bytes: 500 },
        { path: `${root}/a.txt`, type: 'file', bytes: 10 },
        { path: `${root}/small`, type: 'dir', bytes: 0 },
      ],
      warnings: [],
    });
  });

  it('limits top_n to --top-n', () => {
    const result = docops('tmp-watermark', '--root', root, '--json', '--top-n', '1');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).top_n).toEqual([{ path: `${root}/big`, type: 'dir', bytes: 500 }]);
  });

  it('exits 0 with a root_not_found warning for a missing root', () => {
    const missing = join(root, 'no-such-dir');
    const result = docops('tmp-watermark', '--root', missing, '--json');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      root: missing,
      count: 0,
      bytes: 0,
      top_n: [],
      warnings: [`root_not_found:${missing}`],
    });
  });

  it('prints a readable report without --json', () => {
    const result = docops('tmp-watermark', '--root', root);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`root: ${root}\n`);
    expect(result.stdout).toContain('count: 3\n');
    expect(result.stdout).toContain('bytes: 510\n');
    expect(result.stdout).toMatch(new RegExp(`500 +dir +${root}/big\\n`));
    const missing = docops('tmp-watermark', '--root', join(root, 'gone'));
    expect(missing.status).toBe(0);
    expect(missing.stdout).toContain(`root_not_found:${join(root, 'gone')}`);
  });

  it('treats a missing --root or a bad --top-n as usage errors (ERROR, exit 1)', () => {
    const noRoot = docops('tmp-watermark', '--json');
    expect(noRoot.status).toBe(1);
    expect(noRoot.stderr).toMatch(/^ERROR: .*--root/);
    const badTopN = docops('tmp-watermark', '--root', root, '--top-n', 'many');
    expect(badTopN.status).toBe(1);
    expect(badTopN.stderr).toMatch(/^ERROR: --top-n/);
  });
});
