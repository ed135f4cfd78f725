import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type BackgroundJobs, startBackgroundJobs } from '../../src/domain/jobs.js';
import { MemoryRavenStore } from '../../src/domain/store/memory-store.js';
import type { UploadRecord } from '../../src/domain/store/types.js';

const scratch = mkdtempSync(join(tmpdir(), 'raven-jobs-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const running: BackgroundJobs[] = [];
afterEach(() => {
  for (const jobs of running.splice(0)) jobs.stop();
});

let counter = 0;
function setup(env: Record<string, string> = {}) {
  const root = join(scratch, `j${counter++}`);
  const storage = join(root, 'storage');
  const temp = join(root, 'temp');
  mkdirSync(storage, { recursive: true });
  mkdirSync(temp, { recursive: true });
  const config = loadConfig({ STORAGE_PATH: storage, TEMP_PATH: temp, ORPHAN_AGE_MINUTES: '15', ...env });
  const store = new MemoryRavenStore();
  const logs: { event: string; fields: Record<string, unknown> }[] = [];
  const start = (embedded = false, runStartupCleanup = false): BackgroundJobs => {
    const jobs = startBackgroundJobs({
      config,
      store,
      instanceId: 'test-instance',
      embedded,
      runStartupCleanup,
      log: (event, fields) => logs.push({ event, fields }),
    });
    running.push(jobs);
    return jobs;
  };
  return { config, store, storage, temp, logs, start };
}

function blobName(expiresAtMs: number): string {
  return `${expiresAtMs}-${randomBytes(16).toString('hex')}.rzb`;
}

/** Writes a file and sets its mtime `ageMinutes` in the past. */
function place(dir: string, name: string, ageMinutes: number): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(64));
  const when = new Date(Date.now() - ageMinutes * 60_000);
  utimesSync(path, when, when);
  return name;
}

async function reference(store: MemoryRavenStore, blob: string, expiresAtMs: number): Promise<void> {
  const record: UploadRecord = {
    v: 1,
    state: 'active',
    salt: 'c2FsdA',
    blob,
    meta: 'bWV0YQ',
    pw: false,
    uses: 1,
    uses_total: 1,
    previewed: false,
    created_at: new Date().toISOString(),
    expires_at: new Date(expiresAtMs).toISOString(),
  };
  await store.createUpload(randomBytes(16).toString('hex'), record, expiresAtMs);
}

const ls = (dir: string): string[] => readdirSync(dir).sort();

describe('orphan cleanup and expired sweep (case 19)', () => {
  it('shreds old orphans and expired names, keeps young and referenced blobs and strangers', async () => {
    const h = setup();
    const later = Date.now() + 3_600_000;
    const oldOrphan = place(h.storage, blobName(later), 20);
    const youngOrphan = place(h.storage, blobName(later), 1);
    const oldReferenced = place(h.storage, blobName(later), 20);
    await reference(h.store, oldReferenced, later);
    const expiredYoung = place(h.storage, blobName(Date.now() - 1000), 0);
    const expiredReferenced = place(h.storage, blobName(Date.now() - 1), 0);
    const stranger = place(h.storage, 'README.txt', 60);
    const oldPart = place(h.temp, `${blobName(later)}.part`, 20);
    const youngPart = place(h.temp, `${blobName(later)}.part`, 1);
    const otherTemp = place(h.temp, 'scratch.tmp', 60);

    const jobs = h.start();
    expect(await jobs.runSweepNow()).toEqual({ removed: 2, orphans: 2 });
    expect(ls(h.storage)).toEqual([youngOrphan, oldReferenced, stranger].sort());
    expect(ls(h.temp)).toEqual([youngPart, otherTemp].sort());
    for (const gone of [oldOrphan, expiredYoung, expiredReferenced])
      expect(existsSync(join(h.storage, gone))).toBe(false);
    expect(existsSync(join(h.temp, oldPart))).toBe(false);

    // The stranger is logged once, whatever the number of runs.
    await jobs.runSweepNow();
    expect(h.logs.filter((l) => l.event === 'storage_unexpected_entry')).toHaveLength(1);
    expect(h.logs.filter((l) => l.event === 'sweep_completed')[0]?.fields).toMatchObject({
      removed: 2,
      orphans: 2,
    });
    expect(jobs.lastRunAt()).toBeInstanceOf(Date);
  });

  it('the periodic sweep removes an expired blob within one interval', async () => {
    const h = setup({ SWEEP_INTERVAL_SECONDS: '1' });
    h.start();
    const name = place(h.storage, blobName(Date.now() + 200), 0);
    const until = Date.now() + 3000;
    while (existsSync(join(h.storage, name)) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(h.storage, name))).toBe(false);
  });
});

describe('startup cleanup', () => {
  it('embedded mode shreds every blob and partial file regardless of age', async () => {
    const h = setup();
    const later = Date.now() + 3_600_000;
    const referenced = place(h.storage, blobName(later), 0);
    await reference(h.store, referenced, later);
    place(h.storage, blobName(later), 0);
    place(h.temp, `${blobName(later)}.part`, 0);
    const stranger = place(h.storage, 'keep.me', 0);
    const jobs = h.start(true, true);
    await jobs.startupCleanup();
    await jobs.startupCleanup();
    expect(ls(h.storage)).toEqual([stranger]);
    expect(ls(h.temp)).toEqual([]);
  });

  it('non-embedded startup keeps young blobs', async () => {
    const h = setup();
    const young = place(h.storage, blobName(Date.now() + 3_600_000), 0);
    const jobs = h.start(false, true);
    await jobs.startupCleanup();
    expect(ls(h.storage)).toEqual([young]);
  });
});

describe('sweep lock and overlap', () => {
  it('a held lock skips the periodic sweep; the startup cleanup waits for it', async () => {
    const h = setup();
    const expired = place(h.storage, blobName(Date.now() - 1000), 0);
    expect(await h.store.acquireSweepLock('other-instance', 60_000)).toBe(true);
    const jobs = h.start();
    expect(await jobs.runSweepNow()).toEqual({ removed: 0, orphans: 0 });
    expect(existsSync(join(h.storage, expired))).toBe(true);
    expect(h.logs.some((l) => l.event === 'sweep_skipped')).toBe(true);

    const startup = jobs.startupCleanup();
    await new Promise((r) => setTimeout(r, 400));
    expect(existsSync(join(h.storage, expired))).toBe(true);
    await h.store.releaseSweepLock('other-instance');
    await startup;
    expect(existsSync(join(h.storage, expired))).toBe(false);
    // The lock is released by its owner when the sweep ends.
    expect(await h.store.acquireSweepLock('other-instance', 60_000)).toBe(true);
  });

  it('runs never overlap within a process', async () => {
    const h = setup();
    for (let i = 0; i < 5; i++) place(h.storage, blobName(Date.now() - 1000), 0);
    const jobs = h.start();
    const results = await Promise.all([jobs.runSweepNow(), jobs.runSweepNow(), jobs.runSweepNow()]);
    expect(results.reduce((sum, r) => sum + r.removed, 0)).toBe(5);
    expect(results.filter((r) => r.removed > 0)).toHaveLength(1);
    expect(ls(h.storage)).toEqual([]);
  });
});

describe('heartbeat', () => {
  it('writes the instance heartbeat at start with a TTL of three intervals', async () => {
    const h = setup({ HEARTBEAT_INTERVAL_SECONDS: '20' });
    const before = Date.now();
    const jobs = h.start();
    await new Promise((r) => setTimeout(r, 20));
    const beat = h.store.entries().find((e) => e.key === 'raven:health:heartbeat:test-instance');
    expect(beat).toBeDefined();
    expect(beat?.expiresAtMs).toBeGreaterThanOrEqual(before + 60_000);
    expect(beat?.expiresAtMs).toBeLessThanOrEqual(Date.now() + 60_000);
    expect(jobs.lastRunAt()).toBeInstanceOf(Date);
  });
});
