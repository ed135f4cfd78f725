import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveModelDirectory } from '../../src/domain/models/resolve.js';

const root = mkdtempSync(join(tmpdir(), 'allocator-resolve-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const modelsDir = join(root, 'models');
mkdirSync(join(modelsDir, 'openai', 'clip-vit-base-patch32'), { recursive: true });
mkdirSync(join(root, 'elsewhere', 'my-clip'), { recursive: true });
writeFileSync(join(root, 'not-a-dir'), 'x');

describe('resolveModelDirectory', () => {
  it('selects the built-in embedders by name', () => {
    expect(resolveModelDirectory('builtin', modelsDir)).toEqual({ kind: 'builtin' });
    expect(resolveModelDirectory(' BUILTIN ', modelsDir)).toEqual({ kind: 'builtin' });
    expect(resolveModelDirectory('builtin-visual-v1', modelsDir)).toEqual({ kind: 'builtin' });
    expect(resolveModelDirectory('builtin-hash-v1', modelsDir)).toEqual({ kind: 'builtin' });
  });

  it('takes an existing directory path as it is', () => {
    const dir = join(root, 'elsewhere', 'my-clip');
    expect(resolveModelDirectory(dir, modelsDir)).toEqual({ kind: 'directory', dir });
    expect(resolveModelDirectory(relative(process.cwd(), dir), modelsDir)).toEqual({
      kind: 'directory',
      dir,
    });
  });

  it('resolves a hub-style id under MODELS_DIR', () => {
    expect(resolveModelDirectory('openai/clip-vit-base-patch32', modelsDir)).toEqual({
      kind: 'directory',
      dir: join(modelsDir, 'openai', 'clip-vit-base-patch32'),
    });
  });

  it('reports a missing model with every place it looked', () => {
    const result = resolveModelDirectory('sentence-transformers/all-mpnet-base-v2', modelsDir);
    expect(result.kind).toBe('missing');
    const reason = (result as { reason: string }).reason;
    expect(reason).toContain('sentence-transformers/all-mpnet-base-v2');
    expect(reason).toContain(join(modelsDir, 'sentence-transformers', 'all-mpnet-base-v2'));
    expect(reason).toContain('does not exist');
  });

  it('does not look under MODELS_DIR for an absolute path', () => {
    const missing = join(root, 'nowhere');
    const result = resolveModelDirectory(missing, modelsDir);
    expect(result).toEqual({
      kind: 'missing',
      reason: `model directory not found for "${missing}": ${missing} does not exist`,
    });
  });

  it('rejects a file where a directory is needed, and an empty value', () => {
    const file = join(root, 'not-a-dir');
    expect(resolveModelDirectory(file, modelsDir)).toEqual({
      kind: 'missing',
      reason: `model directory not found for "${file}": ${file} is not a directory`,
    });
    expect(resolveModelDirectory('  ', modelsDir).kind).toBe('missing');
  });
});
