/**
 * Temp workspaces: one directory per unit of work, registered while in flight, removed after it; a sweeper
 * for directories left behind by a crash or restart; and a watermark report of a temp tree.
 */
import type { Dirent, Stats } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

const SAFE_ID = /^[A-Za-z0-9._-]+$/;

export interface SweeperOptions {
  intervalMs: number;
  olderThanMs: number;
  /** Called after each sweep that removed something. */
  onSweep?: (removed: string[]) => void;
  onError?: (error: unknown) => void;
}

/** Workspaces `<root>/<prefix><id>` of this process, tracked while in flight. */
export class WorkspaceRegistry {
  readonly root: string;
  readonly prefix: string;
  readonly #inFlight = new Set<string>();

  constructor(options: { root: string; prefix: string }) {
    if (!options.prefix || options.prefix.includes('/')) throw new Error('prefix must be a non-empty name');
    this.root = resolve(options.root);
    this.prefix = options.prefix;
    mkdirSync(this.root, { recursive: true });
  }

  /** Creates `<root>/<prefix><id>` and registers it as in flight; returns its path. */
  async create(id: string): Promise<string> {
    if (!SAFE_ID.test(id) || id === '.' || id === '..')
      throw new Error(`invalid workspace id: ${JSON.stringify(id)}`);
    const path = join(this.root, this.prefix + id);
    await mkdir(this.root, { recursive: true });
    await mkdir(path, { mode: 0o700 });
    this.#inFlight.add(path);
    return path;
  }

  /** Removes a workspace and unregisters it; a missing directory is not an error. */
  async remove(path: string): Promise<void> {
    const target = resolve(path);
    if (dirname(target) !== this.root || !basename(target).startsWith(this.prefix)) {
      throw new Error('not a workspace of this registry');
    }
    try {
      await rm(target, { recursive: true, force: true, maxRetries: 2 });
    } finally {
      this.#inFlight.delete(target);
    }
  }

  /** Paths of the workspaces in flight. */
  inFlight(): string[] {
    return [...this.#inFlight];
  }

  /** Removes every workspace in flight (shutdown). */
  async removeAll(): Promise<void> {
    await Promise.allSettled(this.inFlight().map((path) => this.remove(path)));
  }

  /** Removes `<prefix>*` directories not in flight whose mtime is older than the age; returns their paths. */
  async sweep(options: { olderThanMs: number }): Promise<string[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.root, { withFileTypes: true });
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return [];
      throw error;
    }
    const cutoff = Date.now() - options.olderThanMs;
    const removed: string[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || !entry.name.startsWith(this.prefix)) continue;
      const path = join(this.root, entry.name);
      if (this.#inFlight.has(path)) continue;
      try {
        const info = await lstat(path);
        if (!info.isDirectory() || info.mtimeMs > cutoff) continue;
        await rm(path, { recursive: true, force: true, maxRetries: 2 });
        removed.push(path);
      } catch {
        // Gone already (another process swept it) or not removable now: the next sweep tries again.
      }
    }
    return removed;
  }

  /** Sweeps now, then every `intervalMs` (the timer does not keep the process alive); returns a stop function. */
  startSweeper(options: SweeperOptions): () => void {
    let running = false;
    const run = () => {
      if (running) return;
      running = true;
      this.sweep({ olderThanMs: options.olderThanMs })
        .then((removed) => {
          if (removed.length > 0) options.onSweep?.(removed);
        })
        .catch((error: unknown) => options.onError?.(error))
        .finally(() => {
          running = false;
        });
    };
    run();
    const timer = setInterval(run, options.intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

export interface TmpWatermarkEntry {
  path: string;
  type: 'file' | 'dir';
  bytes: number;
}

export interface TmpWatermark {
  root: string;
  count: number;
  bytes: number;
  top_n: TmpWatermarkEntry[];
  warnings: string[];
}

/**
 * Regular files under `root` (count, total bytes) and its largest direct children; symlinks are never
 * followed. Problems become warnings (`root_not_found:<root>`, `stat_failed:<path>:<code>`); never throws.
 */
export async function tmpWatermark(root: string, topN: number): Promise<TmpWatermark> {
  const report: TmpWatermark = { root, count: 0, bytes: 0, top_n: [], warnings: [] };
  let rootInfo: Stats;
  try {
    rootInfo = await stat(root);
  } catch (error) {
    const code = errorCode(error);
    report.warnings.push(code === 'ENOENT' ? `root_not_found:${root}` : `stat_failed:${root}:${code}`);
    return report;
  }
  if (!rootInfo.isDirectory()) {
    report.warnings.push(`root_not_a_directory:${root}`);
    return report;
  }

  const children = await listDir(root, report.warnings);
  const top: TmpWatermarkEntry[] = [];
  for (const name of children) {
    const path = root.endsWith('/') ? `${root}${name}` : `${root}/${name}`;
    const info = await lstatOrWarn(path, report.warnings);
    if (!info) continue;
    if (info.isFile()) {
      report.count++;
      report.bytes += info.size;
      top.push({ path, type: 'file', bytes: info.size });
    } else if (info.isDirectory()) {
      const totals = await measureDir(path, report.warnings);
      report.count += totals.count;
      report.bytes += totals.bytes;
      top.push({ path, type: 'dir', bytes: totals.bytes });
    }
  }
  top.sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  report.top_n = top.slice(0, Math.max(0, Math.floor(topN)));
  return report;
}

async function measureDir(dir: string, warnings: string[]): Promise<{ count: number; bytes: number }> {
  const totals = { count: 0, bytes: 0 };
  for (const name of await listDir(dir, warnings)) {
    const path = `${dir}/${name}`;
    const info = await lstatOrWarn(path, warnings);
    if (!info) continue;
    if (info.isFile()) {
      totals.count++;
      totals.bytes += info.size;
    } else if (info.isDirectory()) {
      const sub = await measureDir(path, warnings);
      totals.count += sub.count;
      totals.bytes += sub.bytes;
    }
  }
  return totals;
}

async function listDir(dir: string, warnings: string[]): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    const code = errorCode(error);
    // A directory removed while being measured (a workspace finishing) is simply no longer there.
    if (code !== 'ENOENT') warnings.push(`stat_failed:${dir}:${code}`);
    return [];
  }
}

async function lstatOrWarn(path: string, warnings: string[]): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    const code = errorCode(error);
    if (code !== 'ENOENT') warnings.push(`stat_failed:${path}:${code}`);
    return null;
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
