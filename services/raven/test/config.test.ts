import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { environmentWithEnvFile, loadConfig, publicConfig, startupRefusal } from '../src/config.js';

describe('Raven Zero configuration', () => {
  it('has the seed defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      redisUrl: undefined,
      redisKeyPrefix: 'raven:',
      storagePath: './storage/uploads',
      tempPath: './storage/temp',
      maxFileSize: 10_485_760,
      allowedMimeTypes: [],
      downloadFailLimit: 10,
      downloadBlockWindowSeconds: 1800,
      cleanupIntervalMinutes: 10,
      orphanAgeMinutes: 15,
      secureShredPasses: 1,
      defaultExpiryMinutes: 10,
      maxExpiryMinutes: 60,
      defaultUses: 1,
      maxUses: 5,
      keyWords: 3,
      kdfLog2n: 15,
      corsOrigins: '*',
      logToFile: true,
      logDir: './logs',
    });
    expect(config.uploadRateLimit).toEqual(loadConfig({ UPLOAD_RATE_LIMIT: '30 per hour' }).uploadRateLimit);
    expect(config.healthRateLimit).toEqual(loadConfig({ HEALTH_RATE_LIMIT: '1/second' }).healthRateLimit);
  });

  it('accepts the misspelled health variable with a deprecation warning', () => {
    const config = loadConfig({ HEATLH_RATE_LIMIT: '2/second' });
    expect(config.healthRateLimit).toEqual(loadConfig({ HEALTH_RATE_LIMIT: '2/second' }).healthRateLimit);
    expect(config.warnings.join(' ')).toMatch(/HEATLH_RATE_LIMIT is deprecated/);
  });

  it('names the variable of every invalid value', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ REDIS_URL: 'http://x' }, /^REDIS_URL/],
      [{ MAX_FILE_SIZE: 'big' }, /^MAX_FILE_SIZE/],
      [{ UPLOAD_RATE_LIMIT: 'lots' }, /^UPLOAD_RATE_LIMIT/],
      [{ TRUSTED_PROXIES: '10.0.0.0/8,not-an-ip' }, /^TRUSTED_PROXIES/],
      [{ KEY_WORDS: '2' }, /^KEY_WORDS/],
      [{ KDF_LOG2_N: '18' }, /^KDF_LOG2_N/],
      [{ SECURE_SHRED_PASSES: '11' }, /^SECURE_SHRED_PASSES/],
      [{ MAX_EXPIRY_MINUTES: '10081' }, /^MAX_EXPIRY_MINUTES/],
      [{ MAX_USES: '101' }, /^MAX_USES/],
      [{ DEFAULT_USES: '6' }, /^DEFAULT_USES/],
      [{ ALLOWED_MIME_TYPES: '["image/*"' }, /^ALLOWED_MIME_TYPES/],
      [{ PUBLIC_BASE_URL: 'example.com' }, /^PUBLIC_BASE_URL/],
    ];
    for (const [env, message] of cases) expect(() => loadConfig(env), JSON.stringify(env)).toThrow(message);
  });

  it('reads allowed types as a JSON array or a comma list', () => {
    expect(loadConfig({ ALLOWED_MIME_TYPES: '["image/*","application/pdf"]' }).allowedMimeTypes).toEqual([
      'image/*',
      'application/pdf',
    ]);
    expect(loadConfig({ ALLOWED_MIME_TYPES: 'image/*, application/pdf' }).allowedMimeTypes).toEqual([
      'image/*',
      'application/pdf',
    ]);
  });

  it('refuses production and cluster workers without Redis', () => {
    expect(startupRefusal(loadConfig({ NODE_ENV: 'production' }))).toBe(
      'REDIS_URL is required in production (NODE_ENV=production): the embedded store cannot be shared between instances',
    );
    expect(startupRefusal(loadConfig({ WEB_CONCURRENCY: '2' }))).toMatch(/REDIS_URL is required/);
    expect(
      startupRefusal(loadConfig({ NODE_ENV: 'production', REDIS_URL: 'redis://valkey:6379/0' })),
    ).toBeNull();
  });

  it('loads ENV_FILE underneath the real environment and hides secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'raven-config-'));
    writeFileSync(join(dir, '.env'), 'MAX_USES=9\nKEY_WORDS=4\n');
    const env = environmentWithEnvFile({ KEY_WORDS: '5' }, dir);
    const config = loadConfig(env);
    expect(config.maxUses).toBe(9);
    expect(config.keyWords).toBe(5);
    const shown = publicConfig(
      loadConfig({ REDIS_URL: 'redis://user:pw@host:6379/0', METRICS_TOKEN: 't0ken' }),
    );
    expect(JSON.stringify(shown)).not.toContain('pw@');
    expect(JSON.stringify(shown)).not.toContain('t0ken');
  });
});
