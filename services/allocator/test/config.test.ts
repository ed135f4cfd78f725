// The environment table (spec §3.3, S3–S10): `.env` with inline comments, real variables winning, secrets
// from files, defaults and refusals (acceptance 46, 47).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig, loadEnvironment } from '../src/config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'allocator-config-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

describe('.env', () => {
  test('the seed block parses with its inline comment; real variables win (acceptance 46)', async () => {
    await writeFile(
      join(dir, '.env'),
      [
        '# Database',
        'DB_POOL_SIZE=10',
        'QUEUE_BACKEND=inproc  # or redis',
        'CLUSTER_THRESHOLD=0.8  # comment',
        'WORKER_THREADS=4',
        'LOG_LEVEL=INFO',
        '',
      ].join('\n'),
    );
    const fromFile = loadConfig(loadEnvironment({}, dir));
    expect(fromFile.queueBackend).toBe('inproc');
    expect(fromFile.clusterThreshold).toBe(0.8);
    const overridden = loadConfig(loadEnvironment({ CLUSTER_THRESHOLD: '0.6' }, dir));
    expect(overridden.clusterThreshold).toBe(0.6);
  });

  test('ENV_FILE names another file; a missing named file is an error, a missing .env is fine', async () => {
    await writeFile(join(dir, 'custom.env'), 'WORKER_THREADS=7\n');
    expect(loadConfig(loadEnvironment({ ENV_FILE: 'custom.env' }, dir)).workerThreads).toBe(7);
    expect(() => loadEnvironment({ ENV_FILE: 'nope.env' }, dir)).toThrow(ConfigError);
    expect(loadConfig(loadEnvironment({}, join(dir, 'empty'))).workerThreads).toBe(4);
  });
});

describe('defaults and meanings', () => {
  test('the seed defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      dbPoolSize: 10,
      dbMaxOverflow: 20,
      storageBackend: 'fs://',
      host: '0.0.0.0',
      port: 8000,
      debug: false,
      logLevel: 'INFO',
      workerThreads: 4,
      queueBackend: 'inproc',
      embeddingModel: 'openai/clip-vit-base-patch32',
      clusterThreshold: 0.72,
      vlmEnabled: true,
      vlmFallbackToClip: true,
      metricsEnabled: true,
      tracingEnabled: false,
      allowedOrigins: ['http://localhost:3000', 'http://localhost:8000'],
      apiKeys: [],
    });
    expect(config.databaseUrl).toBeUndefined();
  });

  test('QUEUE_BACKEND: explicit wins; unset with REDIS_URL → redis (S7)', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/0' }).queueBackend).toBe('redis');
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/0', QUEUE_BACKEND: 'inproc' }).queueBackend).toBe(
      'inproc',
    );
    expect(() => loadConfig({ QUEUE_BACKEND: 'kafka' })).toThrow(/QUEUE_BACKEND/);
  });

  test('LOG_LEVEL in any case; DEBUG=true forces debug; PORT overrides APP_PORT', () => {
    expect(loadConfig({ LOG_LEVEL: 'warning' }).logLevel).toBe('WARNING');
    expect(loadConfig({ LOG_LEVEL: 'critical', DEBUG: 'true' }).logLevel).toBe('DEBUG');
    expect(loadConfig({ APP_PORT: '9000', PORT: '9100' }).port).toBe(9100);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });

  test('ALLOWED_ORIGINS as a comma list or a JSON array (S27)', () => {
    expect(loadConfig({ ALLOWED_ORIGINS: 'https://a.example, https://b.example' }).allowedOrigins).toEqual([
      'https://a.example',
      'https://b.example',
    ]);
    expect(loadConfig({ ALLOWED_ORIGINS: '["https://a.example"]' }).allowedOrigins).toEqual([
      'https://a.example',
    ]);
  });

  test('invalid values stop start-up naming the variable', () => {
    expect(() => loadConfig({ CLUSTER_THRESHOLD: '1.5' })).toThrow(/CLUSTER_THRESHOLD/);
    expect(() => loadConfig({ WORKER_THREADS: 'four' })).toThrow(/WORKER_THREADS/);
    expect(() => loadConfig({ STORAGE_BACKEND: 's3://bucket' })).toThrow(
      "unsupported STORAGE_BACKEND 's3://bucket': only fs:// is available",
    );
  });

  test('production without DATABASE_URL is refused (acceptance 47); FAULT_INJECT ignored in production', () => {
    expect(() => loadConfig({ ENVIRONMENT: 'production' })).toThrow(
      'DATABASE_URL is required when ENVIRONMENT=production',
    );
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/DATABASE_URL/);
    const production = loadConfig({
      ENVIRONMENT: 'production',
      DATABASE_URL: 'postgresql://postgres:postgres@db:5432/file_allocator',
      FAULT_INJECT_FAIL_OWNER: 'x',
    });
    expect(production.faultInjectFailOwner).toBeUndefined();
    expect(loadConfig({ FAULT_INJECT_FAIL_OWNER: 'x' }).faultInjectFailOwner).toBe('x');
  });

  test('secrets come from *_FILE first; DB_PASSWORD_FILE replaces the URL password (S28)', async () => {
    await writeFile(join(dir, 'gemini'), 'gemini-secret-value\n');
    await writeFile(join(dir, 'dbpass'), 's3cr3t/pw\n');
    await writeFile(join(dir, 'keys'), 'key-one,key-two\n');
    const config = loadConfig({
      GEMINI_API_KEY: 'ignored',
      GEMINI_API_KEY_FILE: join(dir, 'gemini'),
      DATABASE_URL: 'postgresql://postgres:postgres@db:5432/file_allocator',
      DB_PASSWORD_FILE: join(dir, 'dbpass'),
      API_KEY_FILE: join(dir, 'keys'),
    });
    expect(config.geminiApiKey).toBe('gemini-secret-value');
    expect(new URL(config.databaseUrl as string).password).toBe(encodeURIComponent('s3cr3t/pw'));
    expect(config.apiKeys).toEqual(['key-one', 'key-two']);
  });
});
