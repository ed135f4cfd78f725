// Background jobs of one process (spec §3.12): expired-blob sweep, orphan cleanup, scheduler heartbeat.
// Timers are unref'd and never overlap: a tick that finds a run in progress (here or, through the store's
// sweep lock, in another instance) is skipped.
import { randomBytes } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RavenConfig } from '../config.js';
import { blobExpiry } from './blob.js';
import { shredFile } from './shred.js';
import type { RavenStore } from './store/types.js';

/** How long a sweep may hold `sweep:lock` before it expires on its own. */
export const SWEEP_LOCK_TTL_MS = 60_000;
/** How long the startup cleanup waits for another instance's sweep lock. */
export const STARTUP_LOCK_WAIT_MS = 10_000;
const LOCK_RETRY_MS = 250;
const PART_SUFFIX = '.part';

export interface SweepResult {
  /** expired blobs shredded */
  removed: number;
  /** orphaned blobs and stale `.part` files removed */
  orphans: number;
}

export interface BackgroundJobsOptions {
  config: RavenConfig;
  store: RavenStore;
  instanceId: string;
  /** embedded store: records do not survive a restart, so the startup cleanup shreds every blob and `.part` */
  embedded?: boolean;
  /** clock, ms since epoch */
  now?: () => number;
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** run the startup cleanup right away (default true); `startupCleanup()` returns that same run */
  runStartupCleanup?: boolean;
}

export interface BackgroundJobs {
  stop(): void;
  /** the last time this process's scheduler ran (heartbeat or sweep), null before the first run */
  lastRunAt(): Date | null;
  /** expired sweep + orphan cleanup now (skipped, with zeros, when a run is in progress or the lock is held) */
  runSweepNow(): Promise<SweepResult>;
  /** the startup cleanup (waits up to 10 s for the sweep lock); runs once, later calls return the same run */
  startupCleanup(): Promise<void>;
}

interface Entry {
  name: string;
  path: string;
}

async function listFiles(dir: string): Promise<Entry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.map((name) => ({ name, path: join(dir, name) }));
}

function describeError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : String((err as Error)?.message ?? err);
}

export function startBackgroundJobs(options: BackgroundJobsOptions): BackgroundJobs {
  const { config, store, instanceId } = options;
  const embedded = options.embedded ?? false;
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});
  const lockOwner = `${instanceId}:${randomBytes(8).toString('hex')}`;
  const orphanAgeMs = config.orphanAgeMinutes * 60_000;
  const passes = config.secureShredPasses;
  const reportedStrangers = new Set<string>();

  let lastRun: Date | null = null;
  let running: Promise<SweepResult> | null = null;
  let stopped = false;
  let startup: Promise<void> | null = null;
  const timers: NodeJS.Timeout[] = [];

  const markRun = (): void => {
    lastRun = new Date(now());
  };

  async function shred(path: string, what: string): Promise<boolean> {
    try {
      await shredFile(path, passes);
      return true;
    } catch (err) {
      log('shred_failed', { what, error: describeError(err) });
      return false;
    }
  }

  async function ageMs(path: string): Promise<number | null> {
    try {
      const info = await lstat(path);
      return now() - info.mtimeMs;
    } catch {
      return null;
    }
  }

  /** Shreds every blob whose name says it has expired. */
  async function sweepExpired(): Promise<number> {
    let removed = 0;
    for (const entry of await listFiles(config.storagePath)) {
      const expiry = blobExpiry(entry.name);
      if (expiry !== null && expiry <= now() && (await shred(entry.path, 'expired_blob'))) removed++;
    }
    return removed;
  }

  /** Blobs without a reference and stale `.part` files, older than ORPHAN_AGE_MINUTES (or all, `everything`). */
  async function cleanOrphans(everything: boolean): Promise<number> {
    let orphans = 0;
    for (const entry of await listFiles(config.storagePath)) {
      if (blobExpiry(entry.name) === null) {
        if (!reportedStrangers.has(entry.name)) {
          reportedStrangers.add(entry.name);
          log('storage_unexpected_entry', { entry: entry.name });
        }
        continue;
      }
      if (!everything) {
        const age = await ageMs(entry.path);
        if (age === null || age < orphanAgeMs) continue;
        if (await store.hasBlobReference(entry.name)) continue;
      }
      if (await shred(entry.path, 'orphan_blob')) orphans++;
    }
    for (const entry of await listFiles(config.tempPath)) {
      if (!entry.name.endsWith(PART_SUFFIX)) continue;
      if (!everything) {
        const age = await ageMs(entry.path);
        if (age === null || age < orphanAgeMs) continue;
      }
      if (await shred(entry.path, 'partial_upload')) orphans++;
    }
    return orphans;
  }

  async function withLock(wait: boolean, job: () => Promise<SweepResult>): Promise<SweepResult | null> {
    const deadline = now() + STARTUP_LOCK_WAIT_MS;
    const started = Date.now();
    for (;;) {
      if (await store.acquireSweepLock(lockOwner, SWEEP_LOCK_TTL_MS)) break;
      if (!wait || stopped || Date.now() - started >= STARTUP_LOCK_WAIT_MS || now() >= deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
    }
    try {
      return await job();
    } finally {
      await store.releaseSweepLock(lockOwner).catch(() => {});
    }
  }

  /** One run at a time in this process; the sweep lock keeps other instances out. */
  function exclusive(kind: string, wait: boolean, job: () => Promise<SweepResult>): Promise<SweepResult> {
    if (running) return running.then(() => ({ removed: 0, orphans: 0 }));
    const run = (async (): Promise<SweepResult> => {
      markRun();
      try {
        const result = await withLock(wait, job);
        if (result === null) {
          log('sweep_skipped', { kind, reason: 'lock_held' });
          return { removed: 0, orphans: 0 };
        }
        log('sweep_completed', { kind, removed: result.removed, orphans: result.orphans });
        return result;
      } catch (err) {
        log('sweep_failed', { kind, error: describeError(err) });
        return { removed: 0, orphans: 0 };
      } finally {
        markRun();
        running = null;
      }
    })();
    running = run;
    return run;
  }

  const periodicSweep = (): void => {
    if (stopped || running) return;
    void exclusive('expired', false, async () => ({ removed: await sweepExpired(), orphans: 0 }));
  };
  const periodicCleanup = (): void => {
    if (stopped || running) return;
    void exclusive('orphans', false, async () => ({ removed: 0, orphans: await cleanOrphans(false) }));
  };
  const beat = (): void => {
    if (stopped) return;
    store.heartbeat(instanceId, 3 * config.heartbeatIntervalSeconds).then(markRun, (err: unknown) => {
      log('heartbeat_failed', { error: describeError(err) });
    });
  };

  function startupCleanup(): Promise<void> {
    if (startup === null) {
      startup = (async () => {
        // Wait for a run of this process (should one be going) so that the startup cleanup is not skipped.
        if (running) await running;
        await exclusive('startup', true, async () => {
          if (embedded) return { removed: 0, orphans: await cleanOrphans(true) };
          const removed = await sweepExpired();
          return { removed, orphans: await cleanOrphans(false) };
        });
      })();
    }
    return startup;
  }

  const every = (ms: number, tick: () => void): void => {
    const timer = setInterval(tick, ms);
    timer.unref();
    timers.push(timer);
  };
  every(config.sweepIntervalSeconds * 1000, periodicSweep);
  every(config.cleanupIntervalMinutes * 60_000, periodicCleanup);
  every(config.heartbeatIntervalSeconds * 1000, beat);
  beat();
  if (options.runStartupCleanup ?? true) void startupCleanup();

  return {
    stop(): void {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      timers.length = 0;
    },
    lastRunAt: () => lastRun,
    runSweepNow: () =>
      exclusive('manual', false, async () => {
        const removed = await sweepExpired();
        return { removed, orphans: await cleanOrphans(false) };
      }),
    startupCleanup,
  };
}
