// Graceful shutdown of the real process (§2.4, §7 "Restart mid-job", §8 case 42): SIGTERM while a slow client
// is still sending a 5 MiB upload.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { multipart, PDF, type RunningRaven, startRaven } from '../http/harness.js';

const GRACE_SECONDS = 3;
const FILE_SIZE = 5 * 1024 * 1024;
const sharedRedis = await testRedisUrl();

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

type Outcome = { status: number; body: string } | { error: string };

/** A multipart upload whose body the test writes by hand, at its own pace. */
function slowUpload(url: string) {
  const content = randomBytes(FILE_SIZE);
  PDF.copy(content, 0, 0, 8);
  const { body, contentType } = multipart([
    { name: 'file', filename: 'big.pdf', contentType: 'application/pdf', data: content },
  ]);
  let sent = 0;
  const req = httpRequest(`${url}/upload/`, {
    method: 'POST',
    headers: { 'content-type': contentType, 'content-length': String(body.length) },
  });
  const outcome = new Promise<Outcome>((done) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', (err) => done({ error: err.message }));
    });
    req.on('error', (err) => done({ error: err.message }));
  });
  const write = (bytes: number) => {
    const end = Math.min(body.length, sent + bytes);
    req.write(body.subarray(sent, end));
    sent = end;
  };
  return {
    outcome,
    /** sends the rest in 256 KiB pieces, one every `intervalMs` */
    async finish(intervalMs: number) {
      while (sent < body.length) {
        write(256 * 1024);
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      req.end();
    },
    write,
    destroy: () => req.destroy(),
  };
}

function exited(raven: RunningRaven): Promise<{ code: number | null; afterMs: number }> {
  const signalledAt = Date.now();
  return new Promise((done) => {
    if (raven.process.exitCode !== null) {
      done({ code: raven.process.exitCode, afterMs: 0 });
      return;
    }
    raven.process.once('exit', (code) => done({ code, afterMs: Date.now() - signalledAt }));
  });
}

describe('SIGTERM during a slow 5 MiB upload (case 42)', () => {
  let raven: RunningRaven | undefined;
  let dir = '';
  afterEach(async () => {
    if (raven && raven.process.exitCode === null) raven.process.kill('SIGKILL');
    await raven?.stop();
    raven = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes the upload when the client finishes within the grace period, then exits 0', async () => {
    dir = mkdtempSync(join(tmpdir(), 'raven-e2e-term-'));
    const storagePath = join(dir, 'uploads');
    const tempPath = join(dir, 'temp');
    raven = await startRaven({
      STORAGE_PATH: storagePath,
      TEMP_PATH: tempPath,
      SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
    });
    const client = slowUpload(raven.url);
    client.write(1024 * 1024);
    expect(await until(() => list(tempPath).some((name) => name.endsWith('.part')), 5000)).toBe(true);

    const exit = exited(raven);
    raven.process.kill('SIGTERM');
    // 4 MiB more, spread over ~0.8 s: well inside the grace period
    await client.finish(50);
    const outcome = await client.outcome;
    expect(outcome).toMatchObject({ status: 201 });
    const created = JSON.parse((outcome as { body: string }).body) as { size: number };
    expect(created.size).toBe(FILE_SIZE);

    const { code, afterMs } = await exit;
    expect(code).toBe(0);
    expect(afterMs).toBeLessThanOrEqual((GRACE_SECONDS + 1) * 1000);
    expect(list(tempPath).filter((name) => name.endsWith('.part'))).toEqual([]);
    expect(list(storagePath)).toHaveLength(1);
  }, 30_000);

  it.skipIf(sharedRedis === null)(
    'drops an upload still stalled at the end of the grace period: no partial file, no record, exit 0',
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'raven-e2e-term-'));
      const storagePath = join(dir, 'uploads');
      const tempPath = join(dir, 'temp');
      const prefix = `raven-e2e-term-${randomBytes(4).toString('hex')}:`;
      const admin = new Redis(sharedRedis as string);
      try {
        raven = await startRaven({
          STORAGE_PATH: storagePath,
          TEMP_PATH: tempPath,
          SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
          REDIS_URL: sharedRedis as string,
          REDIS_KEY_PREFIX: prefix,
        });
        const client = slowUpload(raven.url);
        client.write(1024 * 1024);
        expect(await until(() => list(tempPath).some((name) => name.endsWith('.part')), 5000)).toBe(true);

        const exit = exited(raven);
        raven.process.kill('SIGTERM');
        // the client never sends the rest
        const outcome = await client.outcome;
        expect('status' in outcome && outcome.status === 201).toBe(false);

        const { code, afterMs } = await exit;
        expect(code).toBe(0);
        expect(afterMs).toBeLessThanOrEqual((GRACE_SECONDS + 1) * 1000);
        expect(list(storagePath)).toEqual([]);
        expect(list(tempPath)).toEqual([]);
        expect(await admin.keys(`${prefix}upload:*`)).toEqual([]);
        expect(await admin.keys(`${prefix}blob:*`)).toEqual([]);
        client.destroy();
      } finally {
        const leftovers = await admin.keys(`${prefix}*`);
        if (leftovers.length > 0) await admin.del(...leftovers);
        admin.disconnect();
      }
    },
    30_000,
  );
});
