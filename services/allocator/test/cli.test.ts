// The `file-allocator` bin as an operator runs it (spec §3.2, §7): version, start-up refusals, serve with a
// graceful SIGTERM and a restart that finishes queued jobs, healthcheck, migrate --status, backup/restore.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testDatabaseUrl } from '@quintet/kernel/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { multipartBody, solidPng } from './harness.js';

const BIN = fileURLToPath(new URL('../bin/file-allocator.js', import.meta.url));
const VERSION = (await import('../package.json', { with: { type: 'json' } })).default.version;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'allocator-cli-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: join(root, 'data'),
    STORAGE_PATH: join(root, 'storage'),
    EMBEDDING_MODEL: 'builtin',
    TEXT_EMBEDDING_MODEL: 'builtin',
    OCR_ENABLED: 'false',
    WORKER_THREADS: '1',
    ...extra,
  };
}

function run(args: string[], env: NodeJS.ProcessEnv = baseEnv()) {
  return spawnSync(process.execPath, [BIN, ...args], { env, cwd: root, encoding: 'utf8', timeout: 60_000 });
}

interface Server {
  child: ChildProcess;
  url: string;
  output: string[];
  exited: Promise<number | null>;
}

async function startServe(env: NodeJS.ProcessEnv): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0'], {
    env,
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${output.join('')}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        output.push(line);
        try {
          const parsed = JSON.parse(line) as { message?: string; url?: string };
          if (parsed.message === 'File Allocator started' && parsed.url !== undefined) {
            clearTimeout(timer);
            resolve(parsed.url);
          }
        } catch {
          // a non-JSON line fails the JSON-lines assertion below
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
    child.once('exit', () => reject(new Error(`serve exited: ${output.join('\n')}`)));
  });
  return { child, url, output, exited };
}

describe('one-shot commands', () => {
  test('--version prints the package version', () => {
    const result = run(['--version']);
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe(VERSION);
  });

  test('production without DATABASE_URL → exit 1 with the message (acceptance 47)', () => {
    const result = run(['serve'], baseEnv({ ENVIRONMENT: 'production' }));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('DATABASE_URL is required when ENVIRONMENT=production');
  });

  test('an invalid value names its variable; WEB_CONCURRENCY>1 without DATABASE_URL is refused', () => {
    const bad = run(['serve'], baseEnv({ CLUSTER_THRESHOLD: '2' }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('CLUSTER_THRESHOLD');
    const workers = run(['serve', '--workers', '2']);
    expect(workers.status).toBe(1);
    expect(workers.stderr).toContain('WEB_CONCURRENCY>1 needs DATABASE_URL');
  });

  test('a PostgreSQL server without pgvector is refused with a clear message (the test server has none)', async () => {
    const url = await testDatabaseUrl();
    if (url === null) return;
    const result = run(['serve', '--port', '0'], baseEnv({ DATABASE_URL: url }));
    expect(result.status).toBe(1);
    const { host, pathname } = new URL(url);
    expect(result.stderr).toContain(`PostgreSQL at ${host}${pathname} lacks the pgvector extension`);
    expect(result.stderr).not.toContain('postgres@');
  });

  test('healthcheck against nothing listening → exit 1', () => {
    const result = run(['healthcheck', '--url', 'http://127.0.0.1:9']);
    expect(result.status).toBe(1);
  });
});

describe('serve', () => {
  test('SIGTERM with jobs queued exits 0; the restart finishes every job (acceptance 39); migrate, backup, restore', async () => {
    const env = baseEnv({ JOB_RETRY_BASE_MS: '50' });
    const first = await startServe(env);
    expect(
      spawnSync(process.execPath, [BIN, 'healthcheck', '--url', first.url], { encoding: 'utf8' }).status,
    ).toBe(0);
    const jobIds: string[] = [];
    for (let index = 0; index < 6; index++) {
      const png = await solidPng([index * 40, 120, 255 - index * 40], {
        width: 320,
        height: 240,
        noise: 8,
        seed: index + 3,
      });
      const { body, contentType } = multipartBody([
        { filename: `p${index}.png`, data: png, contentType: 'image/png' },
      ]);
      const response = await fetch(`${first.url}/api/v1/ingest`, {
        method: 'POST',
        body: new Uint8Array(body),
        headers: { 'content-type': contentType },
      });
      expect(response.status).toBe(202);
      jobIds.push(((await response.json()) as { job_id: string }).job_id);
    }
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    for (const line of first.output) expect(() => JSON.parse(line)).not.toThrow();
    expect(first.output.some((line) => line.includes('File Allocator stopped'))).toBe(true);

    const second = await startServe(env);
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const statuses = await Promise.all(
          jobIds.map(
            async (id) =>
              ((await (await fetch(`${second.url}/api/v1/ingest/${id}/status`)).json()) as { status: string })
                .status,
          ),
        );
        if (statuses.every((status) => status === 'done')) break;
        if (Date.now() > deadline) throw new Error(`jobs not finished: ${statuses.join(',')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
    const mediaFiles = readdirSync(join(root, 'storage', 'media', 'clusters'), {
      recursive: true,
      withFileTypes: true,
    }).filter((entry) => entry.isFile());
    expect(mediaFiles).toHaveLength(6);

    const status = run(['migrate', '--status'], env);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain('applied  001_catalog');

    const archive = join(root, 'backup.tar.gz');
    const backup = run(['backup', '--output', archive], env);
    expect(backup.status, backup.stderr).toBe(0);
    expect(existsSync(archive)).toBe(true);
    const target = baseEnv({
      DATA_DIR: join(root, 'restored-data'),
      STORAGE_PATH: join(root, 'restored-storage'),
    });
    const restore = run(['restore', '--input', archive], target);
    expect(restore.status, restore.stderr).toBe(0);
    const refused = run(['restore', '--input', archive], target);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('--force');
    const restoredFiles = readdirSync(join(root, 'restored-storage', 'media', 'clusters'), {
      recursive: true,
      withFileTypes: true,
    }).filter((entry) => entry.isFile());
    expect(restoredFiles).toHaveLength(6);
    const restored = await startServe(target);
    try {
      const response = await fetch(`${restored.url}/api/v1/ingest/${jobIds[0]}/status`);
      expect(((await response.json()) as { status: string }).status).toBe('done');
    } finally {
      restored.child.kill('SIGTERM');
      await restored.exited;
    }
  }, 120_000);

  test('a .env file in the working directory is read (its inline comment stripped)', async () => {
    const dir = await mkdtemp(join(root, 'envdir-'));
    await writeFile(join(dir, '.env'), 'STORAGE_BACKEND=s3://bucket  # not supported\n');
    const result = spawnSync(process.execPath, [BIN, 'migrate', '--status'], {
      env: baseEnv(),
      cwd: dir,
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("unsupported STORAGE_BACKEND 's3://bucket': only fs:// is available");
  });
});
