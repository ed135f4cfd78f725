// Configuration (spec §2.3.7–9, §3.13; acceptance 2 and 3).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, StartupRefusedError } from '../src/config.js';

function refusal(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof StartupRefusedError) return error.violations;
    throw error;
  }
  throw new Error('expected a start-up refusal');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config.environment).toBe('development');
    expect(config.port).toBe(8000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.rateLimitPerMinute).toBe(120);
    expect(config.maxJsonBytes).toBe(10 * 1024 * 1024);
    expect(config.corsOrigins).toEqual(['http://localhost:5173']);
    expect(config.ingestInProcess).toBe(true);
    expect(config.modelPricing.default).toEqual({
      input_price: '0.30',
      output_price: '2.50',
      index_price: '0.0015',
    });
    expect(config.modelPricing['gemini-2.5-pro']).toEqual({
      input_price: '1.25',
      output_price: '10',
      index_price: '0.0015',
    });
    expect(loadConfig({ APP_PORT: '9001' }).port).toBe(9001);
    expect(loadConfig({ PORT: '9002', APP_PORT: '9001' }).port).toBe(9002);
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins).toEqual([
      'https://a.example',
      'https://b.example',
    ]);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/15' }).ingestInProcess).toBe(false);
  });

  it('lists every violated production rule, each naming its variable (acceptance 2)', () => {
    const violations = refusal({ ENVIRONMENT: 'production', ALLOW_DEV_LOGIN: 'true' });
    const text = violations.join('\n');
    for (const name of ['ALLOW_DEV_LOGIN', 'DATABASE_URL', 'JWT_SECRET', 'REDIS_URL', 'CORS_ORIGINS']) {
      expect(text).toContain(name);
    }
    expect(new Set(violations).size).toBe(violations.length);
    expect(refusal({ NODE_ENV: 'production' }).join('\n')).toContain('DATABASE_URL');
    expect(refusal({ ENVIRONMENT: 'staging', STRICT_MODE: 'false' }).join('\n')).toContain('STRICT_MODE');
  });

  it('accepts a complete production configuration', () => {
    const config = loadConfig({
      ENVIRONMENT: 'production',
      DATABASE_URL: 'postgresql+psycopg2://rag:s3cret-Pass@db:5432/rag',
      REDIS_URL: 'redis://redis:6379/0',
      JWT_SECRET: 'a'.repeat(64),
      CORS_ORIGINS: '["https://rag.example.com"]',
      GEMINI_MOCK_MODE: 'true',
      ALLOW_MOCK_IN_PROD: 'true',
    });
    expect(config.strictEnvironment).toBe(true);
    expect(() =>
      loadConfig({
        ENVIRONMENT: 'production',
        DATABASE_URL: 'postgresql://rag:postgres@db:5432/rag',
        REDIS_URL: 'redis://redis:6379/0',
        JWT_SECRET: 'a'.repeat(64),
        CORS_ORIGINS: 'https://rag.example.com',
        ALLOW_MOCK_IN_PROD: 'true',
      }),
    ).toThrow(/DATABASE_URL has a blank or default database password/);
  });

  it('refuses GEMINI_MOCK_MODE=false without a key in any environment (acceptance 3)', () => {
    expect(refusal({ GEMINI_MOCK_MODE: 'false' }).join('\n')).toContain('GEMINI_API_KEY');
    expect(loadConfig({ GEMINI_MOCK_MODE: 'false', GEMINI_API_KEY: 'k' }).geminiMockMode).toBe(false);
  });

  it('reads secrets from _FILE first (trimmed) and names a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rag-config-'));
    const file = join(dir, 'jwt_secret');
    writeFileSync(file, `  ${'s'.repeat(40)}\n`);
    expect(loadConfig({ JWT_SECRET_FILE: file, JWT_SECRET: 'x'.repeat(40) }).jwtSecret).toBe('s'.repeat(40));
    const missing = join(dir, 'nope');
    expect(() => loadConfig({ JWT_SECRET_FILE: missing })).toThrow(
      `JWT_SECRET_FILE points to missing file: ${missing}`,
    );
    expect(() => loadConfig({ REDIS_URL_FILE: missing })).toThrow(
      `REDIS_URL_FILE points to missing file: ${missing}`,
    );
  });

  it('stops on invalid values, naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
      [{ ENVIRONMENT: 'prod' }, 'ENVIRONMENT'],
      [{ RATE_LIMIT_PER_MINUTE: 'many' }, 'RATE_LIMIT_PER_MINUTE'],
      [{ STRICT_MODE: 'maybe' }, 'STRICT_MODE'],
      [{ TRUSTED_PROXY_IPS: '10.0.0.0/99' }, 'TRUSTED_PROXY_IPS'],
      [{ UPLOAD_PROFILE: 'everything' }, 'UPLOAD_PROFILE'],
      [
        { UPLOAD_PROFILE: 'custom', ALLOWED_UPLOAD_MIMES: 'application/x-msdownload' },
        'ALLOWED_UPLOAD_MIMES',
      ],
      [{ CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    ];
    for (const [env, variable] of cases) {
      let caught: unknown;
      try {
        loadConfig(env);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).message).toContain(variable);
    }
  });
});
