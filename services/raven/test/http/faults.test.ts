// Failure modes of the real process (§2.4, §7): restarts with and without Redis, Redis stopping mid-run and
// coming back on the same port, and a full disk. Assertions are on what clients see and on the storage tree.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMBEDDED_STORE, freePort, PDF, type RunningRaven, startRaven, upload } from './harness.js';

const sharedRedis = await testRedisUrl();
const haveRedisServer = spawnSync('redis-server', ['--version']).status === 0;

const UNAVAILABLE = { detail: 'Service temporarily unavailable' };

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Blobs and partial files (anything else, e.g. a health probe, is not an upload). */
function uploadFiles(path: string): string[] {
  return list(path).filter((name) => name.endsWith('.rzb') || name.endsWith('.part'));
}

function pdfPayload(size: number): Buffer {
  const content = randomBytes(size);
  PDF.copy(content, 0, 0, 8);
  return content;
}

async function create(raven: RunningRaven, data: Buffer, fields: Record<string, string> = {}) {
  const response = await upload(raven.url, [
    { name: 'file', filename: 'doc.pdf', contentType: 'application/pdf', data },
    ...Object.entries(fields).map(([name, value]) => ({ name, value })),
  ]);
  expect(response.status).toBe(201);
  return (await response.json()) as { key: string; size: number };
}

async function fetchBytes(url: string, init?: RequestInit) {
  const response = await fetch(url, init);
  return { response, body: Buffer.from(await response.arrayBuffer()) };
}

async function cleanPrefix(admin: Redis, prefix: string): Promise<void> {
  const leftovers = await admin.keys(`${prefix}*`);
  if (leftovers.length > 0) await admin.del(...leftovers);
}

describe.skipIf(sharedRedis === null)('restart with Redis', () => {
  it('an upload made before the restart still downloads after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raven-faults-'));
    const prefix = `raven-faults-${randomBytes(4).toString('hex')}:`;
    const env = {
      REDIS_URL: sharedRedis as string,
      REDIS_KEY_PREFIX: prefix,
      STORAGE_PATH: join(dir, 'uploads'),
      TEMP_PATH: join(dir, 'temp'),
    };
    const admin = new Redis(sharedRedis as string);
    const content = pdfPayload(300_000);
    try {
      const first = await startRaven(env);
      const created = await create(first, content, { uses: '2' });
      const before = await fetchBytes(`${first.url}/download/${created.key}`);
      expect(before.response.status).toBe(200);
      expect(before.body.equals(content)).toBe(true);
      expect(await first.stop()).toBe(0);

      const second = await startRaven(env);
      try {
        const status = await fetch(`${second.url}/status/${created.key}`);
        expect(status.status).toBe(200);
        expect(await status.json()).toMatchObject({ status: 'active', remaining_uses: 1 });
        const after = await fetchBytes(`${second.url}/download/${created.key}`);
        expect(after.response.status).toBe(200);
        expect(after.body.equals(content)).toBe(true);
        const last = await fetch(`${second.url}/download/${created.key}`);
        expect(last.status).toBe(410);
      } finally {
        expect(await second.stop()).toBe(0);
      }
    } finally {
      await cleanPrefix(admin, prefix);
      admin.disconnect();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('restart in embedded mode', () => {
  it('the old link answers 404 and the startup sweep leaves no blob or .part file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raven-faults-'));
    const storagePath = join(dir, 'uploads');
    const tempPath = join(dir, 'temp');
    const env = { ...EMBEDDED_STORE, STORAGE_PATH: storagePath, TEMP_PATH: tempPath };
    try {
      const first = await startRaven(env);
      const created = await create(first, pdfPayload(100_000), { uses: '3' });
      expect(uploadFiles(storagePath)).toHaveLength(1);
      expect(await first.stop()).toBe(0);
      // what a crash mid-upload would leave behind
      writeFileSync(
        join(tempPath, `${Date.now() + 600_000}-${randomBytes(16).toString('hex')}.rzb.part`),
        'x',
      );
      expect(uploadFiles(storagePath)).toHaveLength(1);
      expect(uploadFiles(tempPath)).toHaveLength(1);

      const second = await startRaven(env);
      try {
        expect(uploadFiles(storagePath)).toEqual([]);
        expect(uploadFiles(tempPath)).toEqual([]);
        const download = await fetch(`${second.url}/download/${created.key}`);
        expect(download.status).toBe(404);
        expect(await download.json()).toEqual({ detail: 'File not found' });
        const status = await fetch(`${second.url}/status/${created.key}`);
        expect(await status.json()).toMatchObject({ status: 'expired_or_burned', expires_at: null });
      } finally {
        expect(await second.stop()).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe.skipIf(!haveRedisServer)('Redis stops mid-run and comes back on the same port', () => {
  let port = 0;
  let server: ChildProcess | undefined;
  const startRedis = async () => {
    server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    for (let attempt = 0; ; attempt++) {
      const client = new Redis(`redis://127.0.0.1:${port}/15`, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.ping();
        return client;
      } catch (error) {
        client.disconnect();
        if (attempt >= 100) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const stopRedis = () =>
    new Promise<void>((done) => {
      const current = server;
      server = undefined;
      if (!current || current.exitCode !== null) {
        done();
        return;
      }
      current.once('exit', () => done());
      current.kill('SIGKILL');
    });
  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await stopRedis();
  });

  it('answers 503 quickly while Redis is gone, reports it offline, and recovers without a restart', async () => {
    const prefix = `raven-faults-${randomBytes(4).toString('hex')}:`;
    let admin = await startRedis();
    const raven = await startRaven({
      REDIS_URL: `redis://127.0.0.1:${port}/15`,
      REDIS_KEY_PREFIX: prefix,
      REDIS_COMMAND_TIMEOUT_MS: '500',
      HEALTH_RATE_LIMIT: '100/second',
    });
    try {
      const before = await create(raven, PDF, { uses: '2' });
      expect(await admin.exists(`${prefix}kdf`)).toBe(1);
      admin.disconnect();
      await stopRedis();

      const requests: [string, () => Promise<Response>][] = [
        ['status', () => fetch(`${raven.url}/status/${before.key}`)],
        ['preview', () => fetch(`${raven.url}/preview/${before.key}`)],
        ['download', () => fetch(`${raven.url}/download/${before.key}`)],
        ['delete', () => fetch(`${raven.url}/files/${before.key}`, { method: 'DELETE' })],
        ['upload', () => upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }])],
      ];
      for (const [name, send] of requests) {
        const started = Date.now();
        const response = await send();
        const elapsed = Date.now() - started;
        expect({ name, status: response.status }).toEqual({ name, status: 503 });
        expect(response.headers.get('retry-after')).toBe('5');
        expect(await response.json()).toEqual(UNAVAILABLE);
        expect(elapsed).toBeLessThan(3000);
      }
      // nothing of the refused upload is left on disk
      expect(uploadFiles(raven.tempPath)).toEqual([]);
      expect(uploadFiles(raven.storagePath)).toHaveLength(1);

      const health = await fetch(`${raven.url}/health/`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({
        status: 'degraded',
        store: 'redis',
        services: { redis: 'offline', storage: 'online', diceware: 'online' },
      });
      const ready = await fetch(`${raven.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        status: 'not_ready',
        services: { redis: 'offline', storage: 'online' },
      });
      expect((await fetch(`${raven.url}/livez`)).status).toBe(200);

      // a fresh Redis on the same port: the metadata (and the KDF record) are gone
      admin = await startRedis();
      expect(await admin.exists(`${prefix}kdf`)).toBe(0);
      let recovered: Response | undefined;
      for (let attempt = 0; attempt < 60; attempt++) {
        recovered = await upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }]);
        if (recovered.status === 201) break;
        await recovered.arrayBuffer();
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(recovered?.status).toBe(201);
      const after = (await (recovered as Response).json()) as { key: string };
      expect(await admin.exists(`${prefix}kdf`)).toBe(1);

      const download = await fetchBytes(`${raven.url}/download/${after.key}`);
      expect(download.response.status).toBe(200);
      expect(download.body.equals(PDF)).toBe(true);
      const lost = await fetch(`${raven.url}/download/${before.key}`);
      expect(lost.status).toBe(404);
      const healthy = await fetch(`${raven.url}/health/`);
      expect(healthy.status).toBe(200);
      expect(await healthy.json()).toMatchObject({ status: 'healthy', services: { redis: 'online' } });
    } finally {
      expect(await raven.stop()).toBe(0);
      await cleanPrefix(admin, prefix).catch(() => {});
      admin.disconnect();
    }
  }, 60_000);
});

describe('disk full', () => {
  let mountDir = '';
  let mounted = false;
  beforeAll(() => {
    mountDir = mkdtempSync(join(tmpdir(), 'raven-faults-tmpfs-'));
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountDir], {
      encoding: 'utf8',
    });
    mounted = mount.status === 0;
    if (!mounted) {
      const reason = (mount.stderr || mount.error?.message || '').trim();
      process.stderr.write(`cannot mount a small tmpfs (${reason}): skipping the disk-full test\n`);
    }
  });
  afterAll(() => {
    if (mounted) spawnSync('umount', [mountDir]);
    rmSync(mountDir, { recursive: true, force: true });
  });

  it('answers 507, keeps no partial file and no record, and still serves other requests', async (ctx) => {
    if (!mounted) ctx.skip('cannot mount a tmpfs');
    const storagePath = join(mountDir, 'uploads');
    const tempPath = join(mountDir, 'temp');
    mkdirSync(storagePath, { recursive: true });
    const prefix = `raven-faults-${randomBytes(4).toString('hex')}:`;
    const redisEnv: Record<string, string> =
      sharedRedis === null ? {} : { REDIS_URL: sharedRedis, REDIS_KEY_PREFIX: prefix };
    const admin = sharedRedis === null ? undefined : new Redis(sharedRedis);
    const raven = await startRaven({ STORAGE_PATH: storagePath, TEMP_PATH: tempPath, ...redisEnv });
    try {
      const kept = await create(raven, PDF, { uses: '2' });

      const tooBig = await upload(raven.url, [
        { name: 'file', filename: 'big.pdf', contentType: 'application/pdf', data: pdfPayload(1024 * 1024) },
      ]);
      expect(tooBig.status).toBe(507);
      expect(await tooBig.json()).toEqual({ detail: 'Insufficient storage: the file could not be stored' });
      expect(uploadFiles(tempPath)).toEqual([]);
      expect(uploadFiles(storagePath)).toHaveLength(1);
      if (admin) expect(await admin.keys(`${prefix}upload:*`)).toHaveLength(1);

      // nothing else is affected
      const download = await fetchBytes(`${raven.url}/download/${kept.key}`);
      expect(download.response.status).toBe(200);
      expect(download.body.equals(PDF)).toBe(true);
      const small = await create(raven, PDF);
      const status = await fetch(`${raven.url}/status/${small.key}`);
      expect(await status.json()).toMatchObject({ status: 'active', remaining_uses: 1 });
      expect(uploadFiles(storagePath)).toHaveLength(2);
      if (admin) expect(await admin.keys(`${prefix}upload:*`)).toHaveLength(2);
    } finally {
      expect(await raven.stop()).toBe(0);
      if (admin) {
        await cleanPrefix(admin, prefix);
        admin.disconnect();
      }
    }
  }, 30_000);
});
