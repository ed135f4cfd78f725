import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileStorage,
  InsufficientStorageError,
  StorageError,
  type StorageFileOps,
  safeFileName,
} from '../src/domain/storage.js';

function errnoError(code: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: simulated`);
  error.code = code;
  return error;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file and directory below `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map((entry) => entry.replaceAll('\\', '/')).sort();
}

let workspace: string;
let root: string;
let storage: FileStorage;

beforeEach(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'allocator-storage-'));
  root = join(workspace, 'storage');
  storage = new FileStorage(root);
  await storage.ensureRoot();
});

afterEach(async () => {
  await chmod(workspace, 0o755).catch(() => undefined);
  await rm(workspace, { recursive: true, force: true });
});

describe('safeFileName', () => {
  it('keeps only the basename of POSIX and Windows paths', () => {
    expect(safeFileName('../../etc/passwd', 0)).toBe('passwd');
    expect(safeFileName('C:\\x\\y.png', 0)).toBe('y.png');
    expect(safeFileName('/abs/path/photo.jpg', 0)).toBe('photo.jpg');
  });

  it('removes leading dots', () => {
    expect(safeFileName('.hidden', 0)).toBe('hidden');
    expect(safeFileName('...config.json', 0)).toBe('config.json');
    expect(safeFileName('name..with.dots.txt', 0)).toBe('name..with.dots.txt');
  });

  it('removes NUL and other control characters', () => {
    expect(safeFileName('a\u0000b\u0007c\u001f\u007f\u0085.png', 0)).toBe('abc.png');
    expect(safeFileName('evil\u0000.png\n', 0)).toBe('evil.png');
    expect(safeFileName('\u0001..\u0002secret', 0)).toBe('secret');
  });

  it('falls back to file_{index} when nothing is left', () => {
    expect(safeFileName(undefined, 0)).toBe('file_0');
    expect(safeFileName('', 1)).toBe('file_1');
    expect(safeFileName('..', 2)).toBe('file_2');
    expect(safeFileName('uploads/', 3)).toBe('file_3');
    expect(safeFileName('\u0000\u0001', 4)).toBe('file_4');
  });

  it('truncates to 200 UTF-8 bytes without cutting a character', () => {
    const euros = `a${'€'.repeat(100)}`; // 301 bytes; '€' is 3 bytes
    expect(Buffer.byteLength(euros)).toBe(301);
    const cut = safeFileName(euros, 0);
    expect(cut).toBe(`a${'€'.repeat(66)}`);
    expect(Buffer.byteLength(cut)).toBe(199);

    const emoji = `ab${'🙂'.repeat(75)}`; // 302 bytes; each emoji is 4 bytes (a surrogate pair)
    const emojiCut = safeFileName(emoji, 0);
    expect(emojiCut).toBe(`ab${'🙂'.repeat(49)}`);
    expect(Buffer.byteLength(emojiCut)).toBe(198);

    expect(safeFileName('x'.repeat(300), 0)).toBe('x'.repeat(200));
  });
});

describe('FileStorage URIs and paths', () => {
  it('maps relative paths to fs:// URIs and back to absolute paths inside the root', () => {
    expect(storage.uriFor('media/clusters/c1/a1.png')).toBe('fs://media/clusters/c1/a1.png');
    expect(storage.resolve('fs://media/clusters/c1/a1.png')).toBe(
      join(root, 'media', 'clusters', 'c1', 'a1.png'),
    );
  });

  it.each([
    'fs://../outside.txt',
    'fs://media/../../outside.txt',
    'fs://media/..',
    'fs:///etc/passwd',
    'fs://',
    'fs://media//a.png',
    'fs://media/./a.png',
    'fs://media\\..\\..\\x',
    'fs://media/a\u0000.png',
    'file:///etc/passwd',
    '/etc/passwd',
    'media/a.png',
  ])('rejects the URI %j', (uri) => {
    expect(() => storage.resolve(uri)).toThrow(StorageError);
  });

  it('refuses to build URIs that could escape the root', () => {
    expect(() => storage.uriFor('../x')).toThrow(StorageError);
    expect(() => storage.uriFor('/abs/x')).toThrow(StorageError);
    expect(() => storage.uriFor('')).toThrow(StorageError);
  });

  it('builds the layout of the storage contract', () => {
    expect(storage.incomingPath('req-1', 'part-2', 'photo.png')).toBe('incoming/req-1/part-2/photo.png');
    expect(storage.mediaPath('c1', 'a1', '.png')).toBe('media/clusters/c1/a1.png');
    expect(storage.mediaPath('c1', 'a1', '')).toBe('media/clusters/c1/a1');
    expect(storage.thumbnailPath('c1', 'a1')).toBe('media/derived/c1/a1/thumb.jpg');
    expect(storage.documentPath('a1', '.pdf')).toBe('documents/a1/a1.pdf');
  });

  it('encodes client-chosen ids so they cannot add or climb directories', () => {
    const path = storage.incomingPath('..', 'a/b', 'x.png');
    expect(path).toBe('incoming/%2E%2E/a%2Fb/x.png');
    expect(storage.resolve(storage.uriFor(path))).toBe(join(root, 'incoming', '%2E%2E', 'a%2Fb', 'x.png'));
    expect(storage.incomingPath('key with spaces', 'p', 'x.png')).toBe(
      'incoming/key%20with%20spaces/p/x.png',
    );
    const long = storage.incomingPath('k'.repeat(255), 'p', 'x.png').split('/')[1] ?? '';
    expect(long.length).toBe(200);
    expect(() => storage.incomingPath('', 'p', 'x.png')).toThrow(StorageError);
  });

  it('rejects unsafe file names and extensions', () => {
    expect(() => storage.incomingPath('r', 'p', '../x.png')).toThrow(StorageError);
    expect(() => storage.incomingPath('r', 'p', '')).toThrow(StorageError);
    expect(() => storage.mediaPath('c', 'a', '/../../x')).toThrow(StorageError);
    expect(() => storage.documentPath('a', 'pdf')).toThrow(StorageError);
  });
});

describe('FileStorage.writeFile', () => {
  it('writes the bytes and leaves no temp file behind', async () => {
    const uri = await storage.writeFile('media/derived/c1/a1/thumb.jpg', Buffer.from('jpeg bytes'));
    expect(uri).toBe('fs://media/derived/c1/a1/thumb.jpg');
    expect(await readFile(storage.resolve(uri), 'utf8')).toBe('jpeg bytes');
    expect(await readdir(join(root, 'media/derived/c1/a1'))).toEqual(['thumb.jpg']);
  });

  it('replaces an existing file', async () => {
    await storage.writeFile('documents/a/a.txt', Buffer.from('old'));
    await storage.writeFile('documents/a/a.txt', Buffer.from('new content'));
    expect(await readFile(join(root, 'documents/a/a.txt'), 'utf8')).toBe('new content');
    expect(await readdir(join(root, 'documents/a'))).toEqual(['a.txt']);
  });

  it('rejects paths outside the root and writes nothing', async () => {
    await expect(storage.writeFile('../escape.txt', Buffer.from('x'))).rejects.toThrow(StorageError);
    await expect(storage.writeFile('/tmp/escape.txt', Buffer.from('x'))).rejects.toThrow(StorageError);
    expect(await exists(join(workspace, 'escape.txt'))).toBe(false);
  });

  it('maps a full disk to InsufficientStorageError and never leaves a truncated file', async () => {
    const full = new FileStorage(root, {
      write: async (handle, data) => {
        await handle.write(data.subarray(0, 2));
        throw errnoError('ENOSPC');
      },
    });
    await storage.writeFile('media/clusters/c/keep.png', Buffer.from('original'));
    const failure = full.writeFile('media/clusters/c/keep.png', Buffer.from('replacement'));
    await expect(failure).rejects.toThrow(InsufficientStorageError);
    await expect(failure).rejects.toThrow('insufficient storage');
    expect(await readFile(join(root, 'media/clusters/c/keep.png'), 'utf8')).toBe('original');
    expect(await readdir(join(root, 'media/clusters/c'))).toEqual(['keep.png']);

    await expect(full.writeFile('documents/d/d.pdf', Buffer.from('pdf'))).rejects.toThrow(
      InsufficientStorageError,
    );
    expect(await tree(root)).toEqual([
      'media',
      'media/clusters',
      'media/clusters/c',
      'media/clusters/c/keep.png',
    ]);
  });

  it('maps an exceeded quota (EDQUOT) the same way', async () => {
    const quota = new FileStorage(root, {
      write: async () => {
        throw errnoError('EDQUOT');
      },
    });
    await expect(quota.writeFile('a/b.txt', Buffer.from('x'))).rejects.toThrow(InsufficientStorageError);
  });

  it('passes other errors through unchanged', async () => {
    const broken = new FileStorage(root, {
      write: async () => {
        throw errnoError('EIO');
      },
    });
    await expect(broken.writeFile('a/b.txt', Buffer.from('x'))).rejects.toMatchObject({ code: 'EIO' });
  });
});

describe('FileStorage.moveFile', () => {
  async function incomingFile(content: string): Promise<string> {
    const uri = await storage.writeFile(
      storage.incomingPath('req', 'part', 'photo.png'),
      Buffer.from(content),
    );
    return storage.resolve(uri);
  }

  it('renames into place and removes the emptied incoming directories', async () => {
    const source = await incomingFile('png bytes');
    const uri = await storage.moveFile(source, storage.mediaPath('c1', 'a1', '.png'));
    expect(uri).toBe('fs://media/clusters/c1/a1.png');
    expect(await readFile(storage.resolve(uri), 'utf8')).toBe('png bytes');
    expect(await tree(root)).toEqual([
      'media',
      'media/clusters',
      'media/clusters/c1',
      'media/clusters/c1/a1.png',
    ]);
    expect(await exists(root)).toBe(true);
  });

  it('keeps directories that still hold other files', async () => {
    const source = await incomingFile('one');
    await storage.writeFile(storage.incomingPath('req', 'other-part', 'b.png'), Buffer.from('two'));
    await storage.moveFile(source, 'media/clusters/c1/a1.png');
    expect(await tree(join(root, 'incoming'))).toEqual(['req', 'req/other-part', 'req/other-part/b.png']);
  });

  it('is idempotent: a repeated move after success is done', async () => {
    const source = await incomingFile('png bytes');
    const target = storage.mediaPath('c1', 'a1', '.png');
    await storage.moveFile(source, target);
    await expect(storage.moveFile(source, target)).resolves.toBe('fs://media/clusters/c1/a1.png');
    expect(await readFile(join(root, target), 'utf8')).toBe('png bytes');
  });

  it('fails when neither the source nor the target exists', async () => {
    await expect(
      storage.moveFile(join(root, 'incoming/none/x.png'), 'media/clusters/c/x.png'),
    ).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(await tree(root)).toEqual([]);
  });

  it('moves a file from outside the root without touching its directory', async () => {
    const spool = join(workspace, 'spool');
    await mkdir(spool);
    await writeFile(join(spool, 'upload'), 'spooled');
    await storage.moveFile(join(spool, 'upload'), 'incoming/r/p/upload.txt');
    expect(await readFile(join(root, 'incoming/r/p/upload.txt'), 'utf8')).toBe('spooled');
    expect(await exists(spool)).toBe(true);
    expect(await readdir(spool)).toEqual([]);
  });

  it('rejects a target outside the root', async () => {
    const source = await incomingFile('x');
    await expect(storage.moveFile(source, '../stolen.png')).rejects.toThrow(StorageError);
    expect(await exists(source)).toBe(true);
  });

  it('copies, syncs and deletes when rename crosses devices', async () => {
    const renames: string[] = [];
    const crossDevice = new FileStorage(root, {
      rename: async (from) => {
        renames.push(from);
        throw errnoError('EXDEV');
      },
    });
    const source = await incomingFile('cross-device bytes');
    const uri = await crossDevice.moveFile(source, 'media/clusters/c2/a2.png');
    expect(renames).toEqual([source]);
    expect(await readFile(crossDevice.resolve(uri), 'utf8')).toBe('cross-device bytes');
    expect(await exists(source)).toBe(false);
    expect(await tree(root)).toEqual([
      'media',
      'media/clusters',
      'media/clusters/c2',
      'media/clusters/c2/a2.png',
    ]);
    await expect(crossDevice.moveFile(source, 'media/clusters/c2/a2.png')).resolves.toBe(uri);
    expect(await readFile(crossDevice.resolve(uri), 'utf8')).toBe('cross-device bytes');
  });

  it('maps a full disk during the cross-device copy to InsufficientStorageError and keeps the source', async () => {
    const ops: Partial<StorageFileOps> = {
      rename: async () => {
        throw errnoError('EXDEV');
      },
      copyFile: async (_from, to) => {
        await writeFile(to, 'trunc');
        throw errnoError('ENOSPC');
      },
    };
    const full = new FileStorage(root, ops);
    const source = await incomingFile('must survive');
    await expect(full.moveFile(source, 'media/clusters/c3/a3.png')).rejects.toThrow(InsufficientStorageError);
    expect(await readFile(source, 'utf8')).toBe('must survive');
    expect(await exists(join(root, 'media'))).toBe(false);
  });

  it('maps ENOSPC from rename to InsufficientStorageError', async () => {
    const full = new FileStorage(root, {
      rename: async () => {
        throw errnoError('ENOSPC');
      },
    });
    const source = await incomingFile('x');
    await expect(full.moveFile(source, 'media/clusters/c/a.png')).rejects.toThrow('insufficient storage');
    expect(await exists(source)).toBe(true);
  });
});

describe('FileStorage removal', () => {
  it('removeUri deletes the file and its emptied parents, never the root', async () => {
    const uri = await storage.writeFile('media/derived/c1/a1/thumb.jpg', Buffer.from('t'));
    await storage.removeUri(uri);
    expect(await exists(root)).toBe(true);
    expect(await tree(root)).toEqual([]);
  });

  it('removeUri tolerates a missing file and keeps non-empty directories', async () => {
    await storage.writeFile('media/clusters/c1/keep.png', Buffer.from('k'));
    await storage.removeUri('fs://media/clusters/c1/gone.png');
    expect(await tree(root)).toEqual([
      'media',
      'media/clusters',
      'media/clusters/c1',
      'media/clusters/c1/keep.png',
    ]);
  });

  it('removeUri refuses URIs outside the root', async () => {
    await writeFile(join(workspace, 'victim.txt'), 'v');
    await expect(storage.removeUri('fs://../victim.txt')).rejects.toThrow(StorageError);
    expect(await exists(join(workspace, 'victim.txt'))).toBe(true);
  });

  it('removeTree deletes a directory tree and its emptied parents', async () => {
    await storage.writeFile('media/derived/c1/a1/thumb.jpg', Buffer.from('1'));
    await storage.writeFile('media/derived/c1/a2/thumb.jpg', Buffer.from('2'));
    await storage.writeFile('media/clusters/c1/a1.png', Buffer.from('3'));
    await storage.removeTree('media/derived/c1');
    expect(await tree(root)).toEqual([
      'media',
      'media/clusters',
      'media/clusters/c1',
      'media/clusters/c1/a1.png',
    ]);
    await storage.removeTree('media/derived/none');
    await expect(storage.removeTree('..')).rejects.toThrow(StorageError);
    await expect(storage.removeTree('')).rejects.toThrow(StorageError);
    expect(await exists(workspace)).toBe(true);
  });
});

describe('FileStorage health probes', () => {
  it('isWritable is true for a writable root and leaves nothing behind', async () => {
    expect(await storage.isWritable()).toBe(true);
    expect(await tree(root)).toEqual([]);
  });

  it.skipIf(process.getuid?.() === 0)('isWritable is false for a read-only directory', async () => {
    await chmod(root, 0o555);
    expect(await storage.isWritable()).toBe(false);
    await chmod(root, 0o755);
  });

  it('isWritable is false when the file system refuses writes (read-only mount)', async () => {
    const readOnly = new FileStorage(root, {
      write: async () => {
        throw errnoError('EROFS');
      },
    });
    expect(await readOnly.isWritable()).toBe(false);
    expect(await tree(root)).toEqual([]);
  });

  it('isWritable is false when the root is not a directory', async () => {
    const file = join(workspace, 'not-a-dir');
    await writeFile(file, 'x');
    expect(await new FileStorage(file).isWritable()).toBe(false);
  });

  it('freeSpace reports the file system of the root', async () => {
    const { freeBytes, totalBytes } = await storage.freeSpace();
    expect(totalBytes).toBeGreaterThan(0);
    expect(freeBytes).toBeGreaterThanOrEqual(0);
    expect(freeBytes).toBeLessThanOrEqual(totalBytes);
  });

  it('ensureRoot creates a missing nested root', async () => {
    const nested = new FileStorage(join(workspace, 'a', 'b', 'c'));
    await nested.ensureRoot();
    expect((await stat(nested.root)).isDirectory()).toBe(true);
  });
});
