// `raven-zero sweep` (spec §3.1, §3.12): one-shot expired sweep + orphan cleanup through the compiled bin.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { runBin } from '../http/harness.js';

const redisUrl = await testRedisUrl();

interface Tree {
  dir: string;
  storage: string;
  temp: string;
  env: Record<string, string>;
}

const trees: string[] = [];
afterEach(() => {
  for (const dir of trees.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tree(): Tree {
  const dir = mkdtempSync(join(tmpdir(), 'raven-sweep-'));
  trees.push(dir);
  const storage = join(dir, 'uploads');
  const temp = join(dir, 'temp');
  mkdirSync(storage, { recursive: true });
  mkdirSync(temp, { recursive: true });
  return { dir, storage, temp, env: { STORAGE_PATH: storage, TEMP_PATH: temp, SECURE_SHRED_PASSES: '1' } };
}

function blobName(expiresAtMs: number): string {
  return `${expiresAtMs}-${randomBytes(16).toString('hex')}.rzb`;
}

/** Writes a file whose mtime is `ageMinutes` in the past. */
function put(dir: string, name: string, ageMinutes: number): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(64));
  const when = new Date(Date.now() - ageMinutes * 60_000);
  utimesSync(path, when, when);
  return name;
}

const list = (dir: string) => readdirSync(dir).sort();

function lastJson(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? '');
}

describe('raven-zero sweep, embedded store', () => {
  it('removes every blob and .part file (start-up rule), counting expired blobs as removed', () => {
    const t = tree();
    const now = Date.now();
    put(t.storage, blobName(now - 60_000), 0); // expired
    put(t.storage, blobName(now + 3_600_000), 0); // young orphan
    put(t.storage, blobName(now + 3_600_000), 120); // old orphan
    put(t.storage, 'notes.txt', 120); // not a blob: left alone
    put(t.temp, 'upload.part', 0);
    put(t.temp, 'other.tmp', 120); // not a .part: left alone
    const result = runBin(['sweep'], { ...t.env, ORPHAN_AGE_MINUTES: '1' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe('{"removed":1,"orphans":3}');
    expect(list(t.storage)).toEqual(['notes.txt']);
    expect(list(t.temp)).toEqual(['other.tmp']);
  });

  it('an empty or missing storage tree gives zeros', () => {
    const t = tree();
    rmSync(t.storage, { recursive: true });
    const result = runBin(['sweep'], t.env);
    expect(result.status).toBe(0);
    expect(lastJson(result.stdout)).toEqual({ removed: 0, orphans: 0 });
  });

  it('--help states the embedded rule', () => {
    const result = runBin(['sweep', '--help'], {});
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/EVERY blob and \.part file is removed regardless of age/);
  });
});

describe('raven-zero sweep, errors', () => {
  it('bad configuration: exit 1 with one line on stderr, nothing removed', () => {
    const t = tree();
    const name = put(t.storage, blobName(Date.now() - 60_000), 0);
    const result = runBin(['sweep'], { ...t.env, ORPHAN_AGE_MINUTES: 'soon' });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^ERROR: .*ORPHAN_AGE_MINUTES/);
    expect(list(t.storage)).toEqual([name]);
  });

  it('unreachable Redis: exit 1 with one line on stderr, nothing removed', () => {
    const t = tree();
    const name = put(t.storage, blobName(Date.now() - 60_000), 0);
    const result = runBin(['sweep'], {
      ...t.env,
      REDIS_URL: 'redis://127.0.0.1:1/0',
      REDIS_STARTUP_TIMEOUT_SECONDS: '1',
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^ERROR: /);
    expect(list(t.storage)).toEqual([name]);
  });
});

describe.skipIf(redisUrl === null)('raven-zero sweep, Redis store', () => {
  it('removes expired blobs, unreferenced blobs and .part files older than ORPHAN_AGE_MINUTES only', async () => {
    const t = tree();
    const prefix = `raven-sweep-test-${randomBytes(4).toString('hex')}:`;
    const now = Date.now();
    const future = now + 3_600_000;
    put(t.storage, blobName(now - 60_000), 0); // expired → removed
    const young = put(t.storage, blobName(future), 0); // young orphan → kept
    put(t.storage, blobName(future), 10); // old orphan → orphans
    const referenced = put(t.storage, blobName(future), 10); // old but referenced → kept
    put(t.temp, 'old.part', 10); // → orphans
    const youngPart = put(t.temp, 'young.part', 0); // → kept
    const redis = new Redis(redisUrl as string);
    try {
      await redis.set(`${prefix}blob:${referenced}`, '1', 'EX', 600);
      const result = runBin(['sweep'], {
        ...t.env,
        REDIS_URL: redisUrl as string,
        REDIS_KEY_PREFIX: prefix,
        ORPHAN_AGE_MINUTES: '5',
      });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout.trim()).toBe('{"removed":1,"orphans":2}');
      expect(list(t.storage)).toEqual([young, referenced].sort());
      expect(list(t.temp)).toEqual([youngPart]);
      expect(await redis.exists(`${prefix}sweep:lock`)).toBe(0);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
  });
});
