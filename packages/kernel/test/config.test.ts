import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  envBool,
  envDurationMs,
  envEnum,
  envInt,
  envList,
  envNumber,
  envSecret,
  envSize,
  isProduction,
  resolvePort,
} from '../src/config.js';

describe('config readers', () => {
  it('reads booleans in every documented spelling and rejects others naming the variable', () => {
    for (const word of ['1', 'true', 'YES', 'On']) expect(envBool({ FLAG: word }, 'FLAG', false)).toBe(true);
    for (const word of ['0', 'False', 'no', 'OFF']) expect(envBool({ FLAG: word }, 'FLAG', true)).toBe(false);
    expect(envBool({}, 'FLAG', true)).toBe(true);
    expect(() => envBool({ FLAG: 'maybe' }, 'FLAG', true)).toThrow(/^FLAG: /);
  });

  it('checks integers and numbers with their ranges', () => {
    expect(envInt({ N: '42' }, 'N', 1)).toBe(42);
    expect(() => envInt({ N: '4.2' }, 'N', 1)).toThrow(ConfigError);
    expect(() => envInt({ N: '0' }, 'N', 1, { min: 1 })).toThrow(/N: must be >= 1/);
    expect(envNumber({ T: '0.5' }, 'T', 60, { min: 0, exclusiveMin: true })).toBe(0.5);
    expect(() => envNumber({ T: '0' }, 'T', 60, { min: 0, exclusiveMin: true })).toThrow(/T: must be > 0/);
    expect(() => envNumber({ T: 'abc' }, 'T', 60)).toThrow(/T: expected a number/);
  });

  it('reads enums, lists, sizes and durations', () => {
    expect(envEnum({ M: 'Spawn' }, 'M', ['spawn', 'cold'] as const, 'cold')).toBe('spawn');
    expect(() => envEnum({ M: 'x' }, 'M', ['spawn'] as const, 'spawn')).toThrow(/M: expected one of spawn/);
    expect(envList({ L: ' a, ,b ' }, 'L')).toEqual(['a', 'b']);
    expect(envSize({ S: '10MB' }, 'S', 0)).toBe(10 * 1024 * 1024);
    expect(envSize({ S: '512k' }, 'S', 0)).toBe(512 * 1024);
    expect(() => envSize({ S: '10 parsecs' }, 'S', 0)).toThrow(/S: expected a size/);
    expect(envDurationMs({ D: '500ms' }, 'D', 0)).toBe(500);
    expect(envDurationMs({ D: '30' }, 'D', 0)).toBe(30_000);
    expect(envDurationMs({ D: '5m' }, 'D', 0)).toBe(300_000);
  });

  it('prefers NAME_FILE over NAME for secrets and strips one trailing newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'from-file\n\n');
    expect(envSecret({ S: 'from-env', S_FILE: file }, 'S')).toBe('from-file\n');
    expect(envSecret({ S: 'from-env' }, 'S')).toBe('from-env');
    expect(() => envSecret({ S_FILE: join(dir, 'missing') }, 'S')).toThrow(/S_FILE: cannot read/);
  });

  it('knows production and resolves the port from the flag, then the variables in order', () => {
    expect(isProduction({ NODE_ENV: 'production' })).toBe(true);
    expect(isProduction({ ENVIRONMENT: 'Production' })).toBe(true);
    expect(isProduction({ NODE_ENV: 'development' })).toBe(false);
    expect(resolvePort('9000', { PORT: '1' }, ['PORT'], 8000)).toBe(9000);
    expect(resolvePort(undefined, { PORT: '8100', APP_PORT: '8200' }, ['PORT', 'APP_PORT'], 8000)).toBe(8100);
    expect(resolvePort(undefined, { APP_PORT: '8200' }, ['PORT', 'APP_PORT'], 8000)).toBe(8200);
    expect(resolvePort(undefined, {}, ['PORT', 'APP_PORT'], 8000)).toBe(8000);
    expect(() => resolvePort(undefined, { PORT: 'http' }, ['PORT'], 8000)).toThrow(/PORT/);
  });
});
