// Folder ingest scan and path resolution (spec §3.13 "Scan"; §7 folder rows; acceptance 36 at scan level).
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveIngestFolder, SUPPORTED_FOLDER_EXTENSIONS, scanFolder } from '../src/domain/folder-scan.js';

let base: string;
let root: string;
let folder: string;
let outside: string;

async function file(path: string, sizeBytes: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, Buffer.alloc(sizeBytes, 0x61));
}

async function text(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'alloc-scan-')));
  root = join(base, 'library');
  folder = join(root, 'photos');
  outside = join(base, 'outside');

  await text(
    join(folder, '.allocatorignore'),
    [
      '# build artefacts',
      '*.tmp',
      '!keep.tmp',
      'cache/',
      '/anchored.txt',
      '**/deep/*.md',
      'img?.gif',
      '',
      '# names of directories above the folder must not matter',
      'tmp',
      'library',
      'photos',
    ].join('\n'),
  );
  const r = (relative: string) => join(folder, relative);
  await file(r('photo.jpg'), 100);
  await file(r('.hidden.png'), 10);
  await file(r('Shot.JPEG'), 20);
  await file(r('img1.gif'), 5);
  await file(r('img10.gif'), 6);
  await file(r('clip.mp4'), 300);
  await file(r('song.mp3'), 200);
  await file(r('notes.md'), 40);
  await file(r('data.json'), 15);
  await file(r('anchored.txt'), 7);
  await file(r('scratch.tmp'), 3);
  await file(r('legacy.doc'), 9);
  await file(r('blob.bin'), 9);
  await file(r('README'), 9);
  await file(r('work.tmp/inside.png'), 11);
  await file(r('keep.tmp/inside.png'), 12);
  await file(r('UPPER.TMP/x.png'), 23);
  await file(r('cache/c.png'), 8);
  await file(r('deep/readme.md'), 8);
  await file(r('deep/keep.png'), 13);
  await file(r('a/b/deep/readme.md'), 8);
  await file(r('a/b/deep/more/readme.md'), 14);
  await file(r('a/anchored.txt'), 16);
  await file(r('a/cache/c.png'), 8);
  await file(r('local.png'), 19);
  await file(r('page.html'), 21);
  // Rules of a nested ignore file are relative to its own directory.
  await text(r('sub/.allocatorignore'), '/local.png\n*.html\nnested/\ndocs/*.txt\n');
  await file(r('sub/local.png'), 8);
  await file(r('sub/inner/local.png'), 17);
  await file(r('sub/page.html'), 8);
  await file(r('sub/inner/page.html'), 8);
  await file(r('sub/nested/n.png'), 8);
  await file(r('sub/docs/a.txt'), 8);
  await file(r('sub/inner/docs/a.txt'), 18);
  // A deeper ignore file overrides the folder's `cache/` for its own subtree.
  await text(r('other/.allocatorignore'), '!cache/\n');
  await file(r('other/cache/c.png'), 22);

  await file(join(outside, 'secret.jpg'), 50);
  await file(join(outside, 'more.png'), 50);
  await symlink(r('a'), r('linked-dir'));
  await symlink(outside, r('outside-dir'));
  await symlink(join(outside, 'secret.jpg'), r('escape.jpg'));
  await symlink(r('photo.jpg'), r('alias.png'));
  await symlink(r('nope.png'), r('dangling.png'));

  await mkdir(join(base, 'library-evil'), { recursive: true });
  await symlink(outside, join(root, 'escape'));
  await symlink(root, join(base, 'library-link'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('scanFolder', () => {
  it('lists exactly the supported, non-ignored files inside the root, sorted, with stats', async () => {
    const scan = await scanFolder(folder, root);
    const image = 'image';
    const document = 'document';
    expect(scan.files.map((entry) => [entry.relativePath, entry.kind, entry.sizeBytes])).toEqual([
      ['.hidden.png', image, 10],
      ['Shot.JPEG', image, 20],
      ['UPPER.TMP/x.png', image, 23],
      ['a/anchored.txt', document, 16],
      ['a/b/deep/more/readme.md', document, 14],
      ['alias.png', image, 100],
      ['clip.mp4', 'video', 300],
      ['data.json', 'json', 15],
      ['deep/keep.png', image, 13],
      ['img10.gif', image, 6],
      ['keep.tmp/inside.png', image, 12],
      ['local.png', image, 19],
      ['notes.md', document, 40],
      ['other/cache/c.png', image, 22],
      ['page.html', document, 21],
      ['photo.jpg', image, 100],
      ['song.mp3', 'audio', 200],
      ['sub/inner/docs/a.txt', document, 18],
      ['sub/inner/local.png', image, 17],
    ]);
    expect(scan.stats).toEqual({
      total_files: 19,
      total_size_bytes: 966,
      by_type: { image: 11, video: 1, audio: 1, document: 5, json: 1 },
    });
  });

  it('gives every file its absolute realpath; a symlinked file inside the root resolves to its target', async () => {
    const scan = await scanFolder(folder, root);
    const byRelative = new Map(scan.files.map((entry) => [entry.relativePath, entry.path]));
    expect(byRelative.get('photo.jpg')).toBe(join(folder, 'photo.jpg'));
    expect(byRelative.get('alias.png')).toBe(join(folder, 'photo.jpg'));
    expect(byRelative.get('sub/inner/local.png')).toBe(join(folder, 'sub', 'inner', 'local.png'));
    for (const entry of scan.files) expect(entry.path.startsWith(`${root}/`)).toBe(true);
  });

  it('never lists ignore files, links leaving the root, dangling links or symlinked directories', async () => {
    const scan = await scanFolder(folder, root);
    const relativePaths = scan.files.map((entry) => entry.relativePath);
    for (const excluded of ['escape.jpg', 'dangling.png', '.allocatorignore', 'sub/.allocatorignore']) {
      expect(relativePaths).not.toContain(excluded);
    }
    expect(
      relativePaths.filter((path) => path.startsWith('linked-dir/') || path.startsWith('outside-dir/')),
    ).toEqual([]);
    expect(scan.files.filter((entry) => entry.path.startsWith(outside))).toEqual([]);
  });

  it('applies a sub-folder’s own ignore file relative to it when that sub-folder is scanned', async () => {
    const scan = await scanFolder(join(folder, 'sub'), root);
    expect(scan.files.map((entry) => entry.relativePath)).toEqual(['inner/docs/a.txt', 'inner/local.png']);
  });

  it('skips a symlinked file whose target is outside the root even when the folder is the root', async () => {
    const scan = await scanFolder(root, root);
    const relativePaths = scan.files.map((entry) => entry.relativePath);
    expect(relativePaths).not.toContain('photos/escape.jpg');
    expect(relativePaths.some((path) => path.startsWith('escape/'))).toBe(false);
    expect(scan.stats.total_files).toBe(scan.files.length);
  });

  it('returns an empty scan for a folder without supported files', async () => {
    const empty = join(root, 'empty');
    await file(join(empty, 'notes.bin'), 4);
    expect(await scanFolder(empty, root)).toEqual({
      files: [],
      stats: {
        total_files: 0,
        total_size_bytes: 0,
        by_type: { image: 0, video: 0, audio: 0, document: 0, json: 0 },
      },
    });
  });
});

describe('SUPPORTED_FOLDER_EXTENSIONS', () => {
  it('is exactly the list of §3.13', () => {
    const byKind = (kind: string) =>
      Object.entries(SUPPORTED_FOLDER_EXTENSIONS)
        .filter(([, value]) => value === kind)
        .map(([extension]) => extension);
    expect(byKind('image')).toEqual(['.jpg', '.jpeg', '.png', '.gif', '.webp', '.bmp', '.tif', '.tiff']);
    expect(byKind('video')).toEqual(['.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v']);
    expect(byKind('audio')).toEqual(['.mp3', '.wav', '.ogg', '.flac', '.m4a', '.aac']);
    expect(byKind('document')).toEqual(['.pdf', '.docx', '.pptx', '.epub', '.txt', '.md', '.html', '.htm']);
    expect(byKind('json')).toEqual(['.json']);
    expect(Object.keys(SUPPORTED_FOLDER_EXTENSIONS)).toHaveLength(29);
  });
});

describe('resolveIngestFolder', () => {
  it('resolves a folder inside the root to its realpath', async () => {
    expect(await resolveIngestFolder(folder, root)).toEqual({ ok: true, folder, root });
    expect(await resolveIngestFolder(root, root)).toEqual({ ok: true, folder: root, root });
    expect(await resolveIngestFolder(`${folder}/sub/../a/`, root)).toEqual({
      ok: true,
      folder: join(folder, 'a'),
      root,
    });
  });

  it('takes a relative path relative to the root', async () => {
    expect(await resolveIngestFolder('photos/sub', root)).toEqual({
      ok: true,
      folder: join(folder, 'sub'),
      root,
    });
  });

  it('accepts a symlinked folder whose target is inside the root, and a symlinked root', async () => {
    expect(await resolveIngestFolder(join(folder, 'linked-dir'), root)).toEqual({
      ok: true,
      folder: join(folder, 'a'),
      root,
    });
    expect(
      await resolveIngestFolder(join(base, 'library-link', 'photos'), join(base, 'library-link')),
    ).toEqual({
      ok: true,
      folder,
      root,
    });
  });

  it('reports outside for paths outside the root, `..` tricks and symlinks leading out', async () => {
    const outsideCases = [
      outside,
      '/',
      `${root}/../outside`,
      `${folder}/../../outside`,
      '../outside',
      'photos/../../outside',
      join(base, 'library-evil'),
      join(root, 'escape'),
      join(folder, 'outside-dir'),
      join(root, 'escape', 'nope'),
      join(base, 'does-not-exist'),
    ];
    for (const requested of outsideCases) {
      expect({ requested, result: await resolveIngestFolder(requested, root) }).toEqual({
        requested,
        result: { ok: false, problem: 'outside' },
      });
    }
  });

  it('reports missing for a path inside the root that does not exist', async () => {
    expect(await resolveIngestFolder(join(root, 'nope'), root)).toEqual({ ok: false, problem: 'missing' });
    expect(await resolveIngestFolder(join(folder, 'a', 'nope', 'deeper'), root)).toEqual({
      ok: false,
      problem: 'missing',
    });
    expect(await resolveIngestFolder(join(folder, 'photo.jpg', 'child'), root)).toEqual({
      ok: false,
      problem: 'missing',
    });
    expect(await resolveIngestFolder(join(folder, 'dangling.png'), root)).toEqual({
      ok: false,
      problem: 'missing',
    });
  });

  it('reports not_directory for a file', async () => {
    expect(await resolveIngestFolder(join(folder, 'photo.jpg'), root)).toEqual({
      ok: false,
      problem: 'not_directory',
    });
    expect(await resolveIngestFolder(join(folder, 'alias.png'), root)).toEqual({
      ok: false,
      problem: 'not_directory',
    });
  });
});
