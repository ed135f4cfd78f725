// Startup snapshots for worker processes. A one-job process (WorkerPool `spawn` mode) otherwise pays for loading
// and compiling its code, and for a warm-up job, every time it starts. Node can instead start from a heap
// snapshot taken after all of that (`node --snapshot-blob <blob>`); the snapshot's deserialize-main function
// then serves jobs. The entry is bundled into one CommonJS file first (a snapshot builder cannot load modules).
// A blob only fits the Node binary that built it and holds the code as it was then, so a sidecar records the
// binary and a hash of every bundled source file; any difference means "start the plain script instead" (a
// stale snapshot would run old code), never a failure.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

/** Recorded next to the blob (`<blob>.json`). */
interface SnapshotStamp {
  node: string;
  arch: string;
  platform: string;
  /** SHA-256 of each bundled file, by path relative to the blob's directory */
  inputs: Record<string, string>;
}

function runtimeMatches(stamp: Partial<SnapshotStamp>): boolean {
  return stamp.node === process.version && stamp.arch === process.arch && stamp.platform === process.platform;
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export interface BuildStartupSnapshotOptions {
  /** The compiled ESM entry; it calls `v8.startupSnapshot.setDeserializeMainFunction`. */
  entry: string;
  /** Where the blob goes; the bundle is written beside it as `<blob>.cjs`, the stamp as `<blob>.json`. */
  blob: string;
  /** Extra environment of the snapshot builder (e.g. what a warm-up job needs). */
  env?: Record<string, string>;
}

/** Bundles `entry` (esbuild, a build-time tool) and builds the blob with this Node binary. */
export async function buildStartupSnapshot(options: BuildStartupSnapshotOptions): Promise<void> {
  const { build } = await import('esbuild');
  const bundle = `${options.blob}.cjs`;
  const workingDir = dirname(options.entry);
  const result = await build({
    absWorkingDir: workingDir,
    metafile: true,
    entryPoints: [options.entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    outfile: bundle,
    logLevel: 'error',
  });
  const partial = `${options.blob}.partial`;
  const partialStamp = `${options.blob}.json.partial`;
  try {
    const stderr: Buffer[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--snapshot-blob', partial, '--build-snapshot', bundle], {
        env: { PATH: process.env.PATH ?? '', ...options.env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.on('error', reject);
      child.on('exit', resolve);
    });
    if (code !== 0) {
      throw new Error(`snapshot build failed (exit ${code}): ${Buffer.concat(stderr).toString().trim()}`);
    }
    const blobDir = dirname(options.blob);
    const inputs: Record<string, string> = {};
    for (const input of Object.keys(result.metafile.inputs)) {
      const path = resolve(workingDir, input);
      inputs[relative(blobDir, path)] = fileHash(path);
    }
    const stamp: SnapshotStamp = {
      node: process.version,
      arch: process.arch,
      platform: process.platform,
      inputs,
    };
    // Readers never see a half-written stamp: both files are renamed into place.
    writeFileSync(partialStamp, `${JSON.stringify(stamp)}\n`);
    renameSync(partial, options.blob);
    renameSync(partialStamp, `${options.blob}.json`);
  } finally {
    rmSync(partial, { force: true });
    rmSync(partialStamp, { force: true });
    rmSync(bundle, { force: true });
  }
}

/**
 * `blob` when it exists, was built by this Node binary and every bundled file is unchanged since; null
 * otherwise (start the plain script). Hashing the sources costs a few milliseconds, once per process start.
 */
export function usableStartupSnapshot(blob: string): string | null {
  try {
    const stamp = JSON.parse(readFileSync(`${blob}.json`, 'utf8')) as Partial<SnapshotStamp>;
    if (!runtimeMatches(stamp) || !stamp.inputs || !statSync(blob).isFile()) return null;
    const blobDir = dirname(blob);
    for (const [path, hash] of Object.entries(stamp.inputs)) {
      if (fileHash(resolve(blobDir, path)) !== hash) return null;
    }
    return blob;
  } catch {
    return null;
  }
}
